//! Turning rows back into domain values, and domain numbers into SQLite's.
//!
//! Everything read from the database goes through the domain's constructors
//! again, so a corrupt row surfaces as `StoreError::Unexpected` rather than
//! as a malformed value deep inside the program.

use chat_domain::{
    ClientId, Message, MessageKind, MessageText, RoomName, Seq, StoreError, StoreResult, Timestamp,
    Username,
};

use crate::error::{corrupt_number, parse};

/// A `messages` row, selected as `room, seq, sender, text, ts, cid, kind`.
pub(crate) type MessageRow = (String, i64, String, String, i64, Option<String>, String);

/// Builds a message from a row.
pub(crate) fn message(row: MessageRow) -> StoreResult<Message> {
    let (room, seq, sender, text, ts, cid, kind) = row;
    Ok(Message {
        room: parse(room, RoomName::parse, "room name")?,
        seq: seq_from_db(seq)?,
        from: parse(sender, Username::parse, "username")?,
        text: parse(text, MessageText::parse, "message text")?,
        ts: Timestamp::from_millis(ts),
        cid: cid
            .map(|c| parse(c, ClientId::parse, "client id"))
            .transpose()?,
        kind: message_kind(kind)?,
    })
}

/// Parses a stored message kind.
pub(crate) fn message_kind(raw: String) -> StoreResult<MessageKind> {
    match MessageKind::parse(&raw) {
        Some(kind) => Ok(kind),
        None => Err(StoreError::unexpected(format!(
            "stored message kind {raw:?} is invalid"
        ))),
    }
}

/// Reads a stored seq.
pub(crate) fn seq_from_db(raw: i64) -> StoreResult<Seq> {
    u64::try_from(raw)
        .map(Seq::new)
        .map_err(|_| corrupt_number("seq", raw))
}

/// A seq as a bound for a query; seqs beyond SQLite's integers cannot exist,
/// so clamping keeps the comparison's meaning.
pub(crate) fn seq_bound(seq: Seq) -> i64 {
    i64::try_from(seq.get()).unwrap_or(i64::MAX)
}

/// A row count or limit as a bound for a query.
pub(crate) fn count_bound(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A count read back from SQLite (never negative).
pub(crate) fn count_from_db(raw: i64) -> StoreResult<u64> {
    u64::try_from(raw).map_err(|_| corrupt_number("count", raw))
}
