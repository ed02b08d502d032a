//! `MessageLog` on SQLite. Appends go through the group-commit writer;
//! reads and retention use the pool.

use async_trait::async_trait;
use chat_domain::model::Page;
use chat_domain::{Appended, MessageLog, NewMessage, RoomName, Seq, StoreResult, Timestamp};

use crate::SqliteStore;
use crate::error::store_error;
use crate::rows::{MessageRow, count_bound, message, seq_bound, seq_from_db};

/// Turns rows fetched newest-or-oldest-first with one extra row into a page.
fn page(mut rows: Vec<MessageRow>, limit: usize, newest_first: bool) -> StoreResult<Page> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    if newest_first {
        rows.reverse();
    }
    Ok(Page {
        messages: rows.into_iter().map(message).collect::<StoreResult<_>>()?,
        more,
    })
}

#[async_trait]
impl MessageLog for SqliteStore {
    async fn append(&self, message: NewMessage) -> StoreResult<Appended> {
        self.writer.append(message).await
    }

    async fn before(
        &self,
        room: &RoomName,
        before: Option<Seq>,
        limit: usize,
    ) -> StoreResult<Page> {
        let below = before.map_or(i64::MAX, seq_bound);
        // One row past the limit tells whether older messages remain.
        let rows: Vec<MessageRow> = sqlx::query_as(
            "SELECT room, seq, sender, text, ts, cid, kind FROM messages \
             WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        )
        .bind(room.as_str())
        .bind(below)
        .bind(count_bound(limit.saturating_add(1)))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        page(rows, limit, true)
    }

    async fn after(&self, room: &RoomName, after: Seq, limit: usize) -> StoreResult<Page> {
        let rows: Vec<MessageRow> = sqlx::query_as(
            "SELECT room, seq, sender, text, ts, cid, kind FROM messages \
             WHERE room = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3",
        )
        .bind(room.as_str())
        .bind(seq_bound(after))
        .bind(count_bound(limit.saturating_add(1)))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        page(rows, limit, false)
    }

    async fn last_seq(&self, room: &RoomName) -> StoreResult<Seq> {
        // The room's counter, not MAX(seq): it survives retention deletes.
        let last: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM rooms WHERE name = ?1")
            .bind(room.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        last.map_or(Ok(Seq::ZERO), seq_from_db)
    }

    async fn delete_before(&self, cutoff: Timestamp, batch: usize) -> StoreResult<u64> {
        // One bounded DELETE per call keeps the write lock short, so appends
        // queued behind a sweep wait for one batch, not for the whole backlog.
        let done = sqlx::query(
            "DELETE FROM messages WHERE rowid IN \
             (SELECT rowid FROM messages WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
        )
        .bind(cutoff.as_millis())
        .bind(count_bound(batch))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
