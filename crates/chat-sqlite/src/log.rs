//! `MessageLog` on SQLite. Appends go through the group-commit writer;
//! pages and `last_seq` use the hot readers (`readers.rs`, on the caller's
//! thread), retention the pool.

use async_trait::async_trait;
use chat_domain::model::Page;
use chat_domain::{
    Appended, ClientId, Message, MessageKind, MessageLog, MessageText, NewMessage, RoomName, Seq,
    StoreResult, Timestamp, Username,
};
use rusqlite::OptionalExtension as _;

use crate::SqliteStore;
use crate::error::store_error;
use crate::rows::{count_bound, message_kind, seq_bound, seq_from_db};

/// A history page's statement; `$where` and `$limit` name their
/// parameters, the room is `?1`. It reads one row past the page's limit,
/// which tells whether more messages remain.
///
/// `LIMIT (?n + 0)`: a bare `LIMIT ?n` lets SQLite specialise the plan to
/// the bound value and so re-prepare the statement every time it is bound
/// again; an expression is evaluated at run time instead.
macro_rules! page_query {
    ($order:literal, $where:literal, $limit:literal) => {
        concat!(
            "SELECT seq, sender, text, ts, cid, kind FROM messages WHERE room = ?1 AND ",
            $where,
            " ORDER BY seq ",
            $order,
            " LIMIT (",
            $limit,
            " + 0)"
        )
    };
}

/// The page before a seq, newest first.
const BEFORE: &str = page_query!("DESC", "seq < ?2", "?3");
/// The page after a seq, oldest first.
const AFTER: &str = page_query!("ASC", "seq > ?2", "?3");
/// The room's counter, not MAX(seq): it survives retention deletes.
const LAST_SEQ: &str = "SELECT last_seq FROM rooms WHERE name = ?1";

/// One row of a [`page_query`]: seq, sender, text, ts, cid, kind.
///
/// The kind is parsed as the row is read, from SQLite's own buffer, so a
/// page allocates nothing for it; the raw text is kept only when it is not
/// a kind, for the error.
#[derive(Debug, Clone)]
pub(crate) struct MessageRow {
    seq: i64,
    sender: String,
    text: String,
    ts: i64,
    cid: Option<String>,
    kind: Result<MessageKind, String>,
}

/// A [`MessageRow`] as sqlx reads it (the in-memory store's pages).
type SqlxMessageRow = (i64, String, String, i64, Option<String>, String);

impl MessageRow {
    /// Reads the current row of a [`page_query`] on a hot reader.
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let kind = r.get_ref(5)?.as_str()?;
        Ok(Self {
            seq: r.get(0)?,
            sender: r.get(1)?,
            text: r.get(2)?,
            ts: r.get(3)?,
            cid: r.get(4)?,
            kind: MessageKind::parse(kind).ok_or_else(|| kind.to_owned()),
        })
    }
}

impl From<SqlxMessageRow> for MessageRow {
    fn from((seq, sender, text, ts, cid, kind): SqlxMessageRow) -> Self {
        Self {
            seq,
            sender,
            text,
            ts,
            cid,
            kind: MessageKind::parse(&kind).ok_or(kind),
        }
    }
}

/// The message a [`MessageRow`] stores in `room`.
///
/// Rows of `messages` were written by this store from values that had
/// already been parsed into domain types, so names and text are taken as
/// they are (`from_trusted`): parsing them again cost as much as the rest
/// of reading a page. The numbers and the kind are still checked, which is
/// free.
fn into_message(row: MessageRow, room: &RoomName) -> StoreResult<Message> {
    Ok(Message {
        room: room.clone(),
        seq: seq_from_db(row.seq)?,
        from: Username::from_trusted(row.sender),
        text: MessageText::from_trusted(row.text),
        ts: Timestamp::from_millis(row.ts),
        cid: row.cid.map(ClientId::from_trusted),
        // The raw text of a kind that did not parse goes through the same
        // parser as the writer's rows, for the same error.
        kind: row.kind.or_else(message_kind)?,
    })
}

/// Turns the rows of a [`page_query`], read with one row past `limit`, into
/// a page (oldest first); `newest_first`: the query read backwards in time,
/// so the row past the limit is the oldest one.
pub(crate) fn page(
    room: &RoomName,
    mut rows: Vec<MessageRow>,
    limit: usize,
    newest_first: bool,
) -> StoreResult<Page> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    if newest_first {
        rows.reverse();
    }
    Ok(Page {
        messages: rows
            .into_iter()
            .map(|row| into_message(row, room))
            .collect::<StoreResult<_>>()?,
        more,
    })
}

impl SqliteStore {
    /// The rows of a [`page_query`] (`sql`) from `room` past `bound`, at most
    /// `rows` of them: on a hot reader, or on the pool in memory.
    pub(crate) async fn page_rows(
        &self,
        sql: &'static str,
        room: &RoomName,
        bound: i64,
        rows: i64,
    ) -> StoreResult<Vec<MessageRow>> {
        match &self.readers {
            Some(readers) => readers.pages.read(|c| {
                c.prepare_cached(sql)?
                    .query_map(
                        rusqlite::params![room.as_str(), bound, rows],
                        MessageRow::read,
                    )?
                    .collect()
            }),
            None => Ok(sqlx::query_as::<_, SqlxMessageRow>(sql)
                .bind(room.as_str())
                .bind(bound)
                .bind(rows)
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?
                .into_iter()
                .map(MessageRow::from)
                .collect()),
        }
    }

    /// The page of `room` before `before` (the newest when `None`).
    pub(crate) async fn page_before(
        &self,
        room: &RoomName,
        before: Option<Seq>,
        limit: usize,
    ) -> StoreResult<Page> {
        let (below, rows) = before_bounds(before, limit);
        let rows = self.page_rows(BEFORE, room, below, rows).await?;
        page(room, rows, limit, true)
    }
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
        self.page_before(room, before, limit).await
    }

    async fn after(&self, room: &RoomName, after: Seq, limit: usize) -> StoreResult<Page> {
        let rows = count_bound(limit.saturating_add(1));
        let rows = self.page_rows(AFTER, room, seq_bound(after), rows).await?;
        page(room, rows, limit, false)
    }

    async fn last_seq(&self, room: &RoomName) -> StoreResult<Seq> {
        let last: Option<i64> = match &self.readers {
            Some(readers) => readers.checks.read(|c| {
                c.prepare_cached(LAST_SEQ)?
                    .query_row([room.as_str()], |r| r.get(0))
                    .optional()
            })?,
            None => sqlx::query_scalar(LAST_SEQ)
                .bind(room.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?,
        };
        last.map_or(Ok(Seq::ZERO), seq_from_db)
    }

    async fn last_seqs(&self, rooms: &[RoomName]) -> StoreResult<Vec<Seq>> {
        self.keyed_integers(
            "SELECT name, last_seq FROM rooms WHERE name IN (",
            ")",
            rooms,
        )
        .await?
        .into_iter()
        .map(seq_from_db)
        .collect()
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

    use super::{MessageRow, page};

    fn lobby() -> RoomName {
        RoomName::parse("lobby").unwrap()
    }

    fn row(seq: i64, sender: &str, text: &str, cid: Option<&str>, kind: &str) -> MessageRow {
        MessageRow::from((
            seq,
            sender.to_owned(),
            text.to_owned(),
            seq * 10,
            cid.map(str::to_owned),
            kind.to_owned(),
        ))
    }

    fn seqs(page: &chat_domain::model::Page) -> Vec<u64> {
        page.messages.iter().map(|m| m.seq.get()).collect()
    }

    #[test]
    fn a_page_read_newest_first_comes_out_oldest_first_with_more() {
        let rows = vec![
            row(3, "bob", "three", None, "chat"),
            row(2, "alice", "two \"quoted\"\n", Some("c-2"), "notice"),
            row(1, "alice", "one", None, "chat"),
        ];
        let page = page(&lobby(), rows, 2, true).unwrap();
        assert!(page.more);
        assert_eq!(seqs(&page), [2, 3]);
        let two = &page.messages[0];
        assert_eq!(two.room, lobby());
        assert_eq!(two.from.as_str(), "alice");
        assert_eq!(two.text.as_str(), "two \"quoted\"\n");
        assert_eq!(two.ts.as_millis(), 20);
        assert_eq!(two.cid.as_ref().map(|c| c.as_str()), Some("c-2"));
        assert_eq!(two.kind, MessageKind::Notice);
    }

    #[test]
    fn a_page_read_oldest_first_keeps_its_order_and_cuts_the_newest() {
        let rows = vec![
            row(4, "bob", "four", None, "chat"),
            row(5, "bob", "five", None, "chat"),
            row(6, "bob", "six", None, "chat"),
        ];
        let page = page(&lobby(), rows.clone(), 2, false).unwrap();
        assert!(page.more);
        assert_eq!(page.messages[0].seq, Seq::new(4));
        assert_eq!(page.messages[1].seq, Seq::new(5));
        let whole = page_of(rows, 3);
        assert!(!whole.more);
        assert_eq!(seqs(&whole), [4, 5, 6]);
    }

    fn page_of(rows: Vec<MessageRow>, limit: usize) -> chat_domain::model::Page {
        page(&lobby(), rows, limit, false).unwrap()
    }

    #[test]
    fn an_empty_room_is_an_empty_page() {
        let page = page(&lobby(), Vec::new(), 50, true).unwrap();
        assert!(page.messages.is_empty());
        assert!(!page.more);
    }

    #[test]
    fn corrupt_rows_are_unexpected_errors() {
        for bad in [
            row(1, "bob", "x", None, "shout"),
            row(-1, "bob", "x", None, "chat"),
        ] {
            assert!(
                matches!(
                    page(&lobby(), vec![bad.clone()], 50, true),
                    Err(StoreError::Unexpected(_))
                ),
                "{bad:?}"
            );
        }
    }
}
