//! `MessageLog` on SQLite. Appends go through the group-commit writer;
//! pages and `last_seq` use the hot readers (`readers.rs`), retention the
//! pool.

use std::borrow::Cow;

use async_trait::async_trait;
use chat_domain::model::Page;
use chat_domain::{
    Appended, ClientId, Message, MessageKind, MessageLog, MessageText, NewMessage, RoomName, Seq,
    StoreError, StoreResult, Timestamp, Username,
};
use serde::Deserialize;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::SqliteStore;
use crate::error::store_error;
use crate::readers::read;
use crate::rows::{count_bound, seq_bound, seq_from_db};

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
///
/// The aggregate has no `ORDER BY` of its own: with one, SQLite sorts the
/// rows again through a temporary B-tree, although the range scan already
/// yields them in order. Without it the order of the array is not
/// promised, so [`page`] sorts by seq (a no-op pass when already sorted).
///
/// `$where` and `$limit` name their parameters, so that the query can also
/// be a column of the `access` statement (`rooms.rs`); the room is `?1`.
macro_rules! page_query {
    ($order:literal, $where:literal, $limit:literal) => {
        concat!(
            "SELECT json_group_array(json_array(seq, sender, text, ts, cid, kind)) FROM (SELECT seq, sender, text, ts, cid, kind FROM messages WHERE room = ?1 AND ",
            $where,
            " ORDER BY seq ",
            $order,
            " LIMIT (",
            $limit,
            " + 0))"
        )
    };
}
pub(crate) use page_query;

/// One message of a [`page_query`] result, as SQLite's `json_array` wrote it.
///
/// The strings are owned because they become the message's own; the kind
/// is borrowed (`chat`/`notice` never needs escaping), as it only picks a
/// variant.
#[derive(Debug, Deserialize)]
struct JsonRow<'a>(
    i64,
    String,
    String,
    i64,
    Option<String>,
    #[serde(borrow)] Cow<'a, str>,
);

impl JsonRow<'_> {
    /// The message this row stores in `room`.
    ///
    /// Rows of `messages` were written by this store from values that had
    /// already been parsed into domain types, so names and text are taken
    /// as they are (`from_trusted`): parsing them again cost as much as the
    /// rest of decoding a page. The numbers and the kind are still checked,
    /// which is free.
    fn into_message(self, room: &RoomName) -> StoreResult<Message> {
        let JsonRow(seq, sender, text, ts, cid, kind) = self;
        Ok(Message {
            room: room.clone(),
            seq: seq_from_db(seq)?,
            from: Username::from_trusted(sender),
            text: MessageText::from_trusted(text),
            ts: Timestamp::from_millis(ts),
            cid: cid.map(ClientId::from_trusted),
            kind: MessageKind::parse(&kind).ok_or_else(|| {
                StoreError::unexpected(format!("stored message kind {kind:?} is invalid"))
            })?,
        })
    }
}

/// Turns a [`page_query`] result, fetched with one row past `limit`, into a
/// page (oldest first); `newest_first`: the query read backwards in time,
/// so the row past the limit is the oldest one.
pub(crate) fn page(
    room: &RoomName,
    json: &str,
    limit: usize,
    newest_first: bool,
) -> StoreResult<Page> {
    let mut rows: Vec<JsonRow<'_>> = serde_json::from_str(json)
        .map_err(|e| StoreError::unexpected(format!("stored page is not valid JSON: {e}")))?;
    rows.sort_unstable_by_key(|row| row.0);
    let more = rows.len() > limit;
    if more {
        let extra = rows.len() - limit;
        if newest_first {
            rows.drain(..extra);
        } else {
            rows.truncate(limit);
        }
    }
    Ok(Page {
        messages: rows
            .into_iter()
            .map(|row| row.into_message(room))
            .collect::<StoreResult<_>>()?,
        more,
    })
}

/// The bounds of a `before` page query: the seq to read below and how many
/// rows to read (one past the limit tells whether older messages remain).
pub(crate) fn before_bounds(before: Option<Seq>, limit: usize) -> (i64, i64) {
    (
        before.map_or(i64::MAX, seq_bound),
        count_bound(limit.saturating_add(1)),
    )
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
        let (below, rows) = before_bounds(before, limit);
        let query = sqlx::query(page_query!("DESC", "seq < ?2", "?3"))
            .bind(room.as_str())
            .bind(below)
            .bind(rows);
        let row: SqliteRow = read!(self, query, fetch_one)?;
        let json: &str = row.try_get(0).map_err(store_error)?;
        page(room, json, limit, true)
    }

    async fn after(&self, room: &RoomName, after: Seq, limit: usize) -> StoreResult<Page> {
        let query = sqlx::query(page_query!("ASC", "seq > ?2", "?3"))
            .bind(room.as_str())
            .bind(seq_bound(after))
            .bind(count_bound(limit.saturating_add(1)));
        let row: SqliteRow = read!(self, query, fetch_one)?;
        let json: &str = row.try_get(0).map_err(store_error)?;
        page(room, json, limit, false)
    }

    async fn last_seq(&self, room: &RoomName) -> StoreResult<Seq> {
        // The room's counter, not MAX(seq): it survives retention deletes.
        let query =
            sqlx::query_scalar("SELECT last_seq FROM rooms WHERE name = ?1").bind(room.as_str());
        let last: Option<i64> = read!(self, query, fetch_optional)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chat_domain::{MessageKind, RoomName, Seq, StoreError};

    use super::page;

    fn lobby() -> RoomName {
        RoomName::parse("lobby").unwrap()
    }

    #[test]
    fn a_page_read_newest_first_comes_out_oldest_first_with_more() {
        let json = r#"[[3,"bob","three",30,null,"chat"],[2,"alice","two \"quoted\"\n",20,"c-2","notice"],[1,"alice","one",10,null,"chat"]]"#;
        let page = page(&lobby(), json, 2, true).unwrap();
        assert!(page.more);
        let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq.get()).collect();
        assert_eq!(seqs, [2, 3]);
        let two = &page.messages[0];
        assert_eq!(two.room, lobby());
        assert_eq!(two.from.as_str(), "alice");
        assert_eq!(two.text.as_str(), "two \"quoted\"\n");
        assert_eq!(two.ts.as_millis(), 20);
        assert_eq!(two.cid.as_ref().map(|c| c.as_str()), Some("c-2"));
        assert_eq!(two.kind, MessageKind::Notice);
    }

    #[test]
    fn a_page_read_oldest_first_keeps_its_order() {
        let json = r#"[[4,"bob","four",40,null,"chat"],[5,"bob","five",50,null,"chat"]]"#;
        let page = page(&lobby(), json, 2, false).unwrap();
        assert!(!page.more);
        assert_eq!(page.messages[0].seq, Seq::new(4));
        assert_eq!(page.messages[1].seq, Seq::new(5));
    }

    #[test]
    fn rows_in_any_order_come_out_sorted_and_cut_at_the_right_end() {
        let json = r#"[[2,"bob","b",2,null,"chat"],[4,"bob","d",4,null,"chat"],[3,"bob","c",3,null,"chat"]]"#;
        let seqs = |page: chat_domain::model::Page| -> Vec<u64> {
            page.messages.iter().map(|m| m.seq.get()).collect()
        };
        assert_eq!(seqs(page(&lobby(), json, 2, true).unwrap()), [3, 4]);
        assert_eq!(seqs(page(&lobby(), json, 2, false).unwrap()), [2, 3]);
        assert_eq!(seqs(page(&lobby(), json, 3, true).unwrap()), [2, 3, 4]);
    }

    #[test]
    fn an_empty_room_is_an_empty_page() {
        let page = page(&lobby(), "[]", 50, true).unwrap();
        assert!(page.messages.is_empty());
        assert!(!page.more);
    }

    #[test]
    fn corrupt_pages_are_unexpected_errors() {
        for bad in [
            "not json",
            r#"[[1,"bob","x",1,null,"shout"]]"#,
            r#"[[-1,"bob","x",1,null,"chat"]]"#,
            r#"[[1,"bob"]]"#,
        ] {
            assert!(
                matches!(
                    page(&lobby(), bad, 50, true),
                    Err(StoreError::Unexpected(_))
                ),
                "{bad}"
            );
        }
    }
}
