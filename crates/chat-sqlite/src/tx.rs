//! `WriteTx`: a `BEGIN IMMEDIATE` transaction on a pooled connection.
//!
//! Why not sqlx's `Transaction`: it counts nesting depth itself, and when
//! SQLite rolls a transaction back on its own (it may, after `SQLITE_FULL`
//! or an I/O error) sqlx's `ROLLBACK` fails, the count stays at one, and the
//! connection goes back to the pool unable to begin again. Here a
//! transaction that cannot be ended cleanly takes its connection down with
//! it instead: closing an SQLite connection rolls back whatever it had open.
//!
//! Why `IMMEDIATE`: a deferred transaction that reads first and writes later
//! can fail at once with `SQLITE_BUSY` when another writer got in between,
//! without waiting for the busy timeout. Taking the write lock up front makes
//! every writer queue on the busy handler instead.

use chat_domain::StoreResult;
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use crate::error::store_error;

/// An open write transaction; see the module docs.
pub(crate) struct WriteTx {
    conn: PoolConnection<Sqlite>,
    /// True once COMMIT or ROLLBACK succeeded, so the connection is clean.
    ended: bool,
}

impl WriteTx {
    /// Takes a connection from the pool and the database's write lock.
    pub(crate) async fn begin(pool: &SqlitePool) -> Result<Self, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        // If BEGIN itself fails no transaction is open, so the connection
        // goes back to the pool as it came.
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        Ok(Self { conn, ended: false })
    }

    /// The connection, for statements inside the transaction.
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// Commits; on failure rolls back and returns the commit's error.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        match sqlx::query("COMMIT").execute(&mut *self.conn).await {
            Ok(_) => {
                self.ended = true;
                Ok(())
            }
            Err(e) => {
                self.rollback_in_place().await;
                Err(e)
            }
        }
    }

    /// Rolls back.
    pub(crate) async fn rollback(mut self) {
        self.rollback_in_place().await;
    }

    /// Commits when `result` is `Ok`, rolls back otherwise, and returns it.
    pub(crate) async fn finish<T>(self, result: StoreResult<T>) -> StoreResult<T> {
        match result {
            Ok(value) => {
                self.commit().await.map_err(store_error)?;
                Ok(value)
            }
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    async fn rollback_in_place(&mut self) {
        // A failed ROLLBACK leaves `ended` false, and Drop closes the
        // connection rather than return it in an unknown state.
        if sqlx::query("ROLLBACK")
            .execute(&mut *self.conn)
            .await
            .is_ok()
        {
            self.ended = true;
        }
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.ended {
            // Reached on an early return or a cancelled future, and after a
            // failed ROLLBACK: never hand a connection with a transaction
            // that may still be open back to the pool.
            self.conn.close_on_drop();
        }
    }
}
