//! Turning rows back into domain values, and domain numbers into SQLite's.
//!
//! Values read from the database go through the domain's constructors
//! again, so a corrupt row surfaces as `StoreError::Unexpected` rather than
//! as a malformed value deep inside the program. The one exception is the
//! names and text of history pages (`log.rs`), which are taken as trusted:
//! they are the hottest read, and this store wrote them from parsed values.

use chat_domain::{MessageKind, Seq, StoreError, StoreResult};

use crate::error::corrupt_number;

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
