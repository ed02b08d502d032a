//! `MessageLog` on SQLite. Appends go through the group-commit writer;
//! reads and retention use the pool.

use async_trait::async_trait;
use chat_domain::model::Page;
use chat_domain::{
    Appended, MessageLog, NewMessage, RoomName, Seq, StoreError, StoreResult, Timestamp,
};

use crate::SqliteStore;
use crate::error::store_error;
use crate::rows::{count_bound, message, seq_bound, seq_from_db};

/// A page's rows as one JSON array: `[[seq, sender, text, ts, cid, kind], …]`.
///
/// sqlx hands every result row from its SQLite thread to the async side
/// separately (a channel send and often a thread wake-up each), which for a
/// 51-row page costs far more than the B-tree read. Aggregating the rows
/// into one JSON text makes the page one row, one hand-off.
///
/// `LIMIT (?n + 0)`: a bare `LIMIT ?n` lets SQLite specialise the plan to
/// the bound value and so re-prepare the statement every time it is bound
/// again; an expression is evaluated at run time instead.
macro_rules! page_query {
    ($order:literal, $where:literal) => {
        concat!(
            "SELECT json_group_array(json_array(seq, sender, text, ts, cid, kind) ORDER BY seq ",
            $order,
            ") FROM (SELECT seq, sender, text, ts, cid, kind FROM messages WHERE room = ?1 AND ",
            $where,
            " ORDER BY seq ",
            $order,
            " LIMIT (?3 + 0))"
        )
    };
}

/// One message of a [`page_query`] result.
type JsonRow = (i64, String, String, i64, Option<String>, String);

/// Turns a [`page_query`] result, fetched with one row past `limit`, into a
/// page (oldest first); `newest_first`: the rows run backwards in time.
fn page(room: &RoomName, json: &str, limit: usize, newest_first: bool) -> StoreResult<Page> {
    let mut rows: Vec<JsonRow> = serde_json::from_str(json)
        .map_err(|e| StoreError::unexpected(format!("stored page is not valid JSON: {e}")))?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    if newest_first {
        rows.reverse();
    }
    Ok(Page {
        messages: rows
            .into_iter()
            .map(|(seq, sender, text, ts, cid, kind)| {
                message((room.as_str().to_owned(), seq, sender, text, ts, cid, kind))
            })
            .collect::<StoreResult<_>>()?,
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
        let json: String = sqlx::query_scalar(page_query!("DESC", "seq < ?2"))
            .bind(room.as_str())
            .bind(below)
            .bind(count_bound(limit.saturating_add(1)))
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        page(room, &json, limit, true)
    }

    async fn after(&self, room: &RoomName, after: Seq, limit: usize) -> StoreResult<Page> {
        let json: String = sqlx::query_scalar(page_query!("ASC", "seq > ?2"))
            .bind(room.as_str())
            .bind(seq_bound(after))
            .bind(count_bound(limit.saturating_add(1)))
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        page(room, &json, limit, false)
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
            "DELETE FROM messages WHERE (room, seq) IN \
             (SELECT room, seq FROM messages WHERE ts < ?1 ORDER BY ts LIMIT (?2 + 0))",
        )
        .bind(cutoff.as_millis())
        .bind(count_bound(batch))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
