//! Connections of our own for the hot reads (`access`, history pages,
//! `last_seq`), lent out without going through sqlx's pool.
//!
//! sqlx's pool checks every connection it takes back by sending a ping to
//! the connection's worker thread, from a task it spawns for that: a
//! second thread hand-off (futex wake, two context switches) after each
//! statement, which on one core costs as much as the statement. These
//! connections go back into a list as they are, so a read is one hand-off.
//!
//! That check exists for connections left mid-transaction or mid-stream by
//! a cancelled caller. These connections only ever run single read-only
//! statements outside any transaction: a cancelled read leaves at most a
//! command queued on the worker, which runs it, finds nobody listening and
//! goes on with the next command in order, so the connection is as good as
//! before.

use chat_domain::{StoreError, StoreResult};
use sqlx::{Connection as _, SqliteConnection};
use thiserror::Error;
use tokio::sync::{Mutex, MutexGuard, Semaphore, SemaphorePermit};

/// Why no reading connection could be lent.
#[derive(Debug, Error)]
enum ReadersError {
    /// The store was closed.
    #[error("the SQLite store is closed")]
    Closed,
    /// A permit was granted with every connection taken: a bug in the lending.
    #[error("no free reading connection behind a granted permit")]
    Missing,
}

fn closed() -> StoreError {
    StoreError::Unavailable(Box::new(ReadersError::Closed))
}

/// A fixed set of reading connections; a caller waits for a free one.
pub(crate) struct Readers {
    /// The connections, each locked while lent out; `None` once closed.
    slots: Vec<Mutex<Option<SqliteConnection>>>,
    /// One permit per slot, so a caller holding a permit always finds an
    /// unlocked slot; closed by [`Readers::close`].
    free: Semaphore,
}

impl Readers {
    /// Lends out `connections`, each to one caller at a time.
    pub(crate) fn new(connections: Vec<SqliteConnection>) -> Self {
        let free = Semaphore::new(connections.len());
        Self {
            slots: connections
                .into_iter()
                .map(|conn| Mutex::new(Some(conn)))
                .collect(),
            free,
        }
    }

    /// A free connection, once there is one.
    ///
    /// # Errors
    /// `Unavailable` once the store is closed.
    pub(crate) async fn get(&self) -> StoreResult<Reader<'_>> {
        let permit = self.free.acquire().await.map_err(|_| closed())?;
        for slot in &self.slots {
            if let Ok(conn) = slot.try_lock() {
                return Ok(Reader {
                    conn,
                    _permit: permit,
                });
            }
        }
        Err(StoreError::unexpected(ReadersError::Missing))
    }

    /// Refuses further reads, waits for the reads in flight, then closes
    /// every connection.
    pub(crate) async fn close(&self) {
        let all = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        let in_flight_done = self.free.acquire_many(all).await;
        self.free.close();
        drop(in_flight_done);
        for slot in &self.slots {
            if let Some(conn) = slot.lock().await.take() {
                // Best effort: the file is consistent either way.
                let _ = conn.close().await;
            }
        }
    }
}

/// A lent connection; it is free again when this is dropped.
pub(crate) struct Reader<'a> {
    // Declared before the permit, so the slot is unlocked before the permit
    // is given back: whoever gets the permit next finds it free.
    conn: MutexGuard<'a, Option<SqliteConnection>>,
    _permit: SemaphorePermit<'a>,
}

impl Reader<'_> {
    /// The connection, to run one read on.
    ///
    /// # Errors
    /// `Unavailable` when the store was closed.
    pub(crate) fn conn(&mut self) -> StoreResult<&mut SqliteConnection> {
        self.conn.as_mut().ok_or_else(closed)
    }
}

/// Runs one read statement on a [`Reader`] of `$store.readers`, or on the
/// pool when the store has none (in memory: one connection for
/// everything). `$query` is a sqlx query, `$fetch` its fetch method.
macro_rules! read {
    ($store:expr, $query:expr, $fetch:ident) => {
        match &$store.readers {
            Some(readers) => {
                let mut reader = readers.get().await?;
                $query
                    .$fetch(reader.conn()?)
                    .await
                    .map_err($crate::error::store_error)
            }
            None => $query
                .$fetch(&$store.pool)
                .await
                .map_err($crate::error::store_error),
        }
    };
}
pub(crate) use read;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chat_domain::StoreError;
    use futures::FutureExt as _;
    use sqlx::{Connection as _, SqliteConnection};

    use super::Readers;

    async fn connection() -> SqliteConnection {
        SqliteConnection::connect("sqlite::memory:").await.unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_lent_to_one_caller_at_a_time() {
        let readers = Readers::new(vec![connection().await]);
        let mut first = readers.get().await.unwrap();
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(first.conn().unwrap())
            .await
            .unwrap();
        assert_eq!(one, 1);
        assert!(
            readers.get().now_or_never().is_none(),
            "the only connection is lent out"
        );
        drop(first);
        let mut again = readers.get().now_or_never().unwrap().unwrap();
        assert!(again.conn().is_ok());
    }

    #[tokio::test]
    async fn a_closed_set_refuses_as_unavailable() {
        let readers = Readers::new(vec![connection().await, connection().await]);
        drop(readers.get().await.unwrap());
        readers.close().await;
        assert!(matches!(
            readers.get().await.err(),
            Some(StoreError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn closing_waits_for_the_reads_in_flight() {
        let readers = Readers::new(vec![connection().await]);
        let lent = readers.get().await.unwrap();
        let mut closing = Box::pin(readers.close());
        assert!(
            (&mut closing).now_or_never().is_none(),
            "a read is still in flight"
        );
        drop(lent);
        closing.await;
        assert!(readers.get().await.is_err());
    }
}
