//! The seam between the drivers' errors (sqlx's, and rusqlite's for the hot
//! reads) and the domain's `StoreError`.
//!
//! Every driver error is translated here and nowhere else, so the rest of the
//! crate can use `?` and the domain never sees a driver's type.

use std::sync::Arc;

use chat_domain::ports::BoxError;
use chat_domain::{InvalidInput, StoreError};
use thiserror::Error;

// SQLite's primary result codes (the low byte of an extended code).
// https://www.sqlite.org/rescode.html
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;

/// What a driver error means to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A unique or primary key was already taken.
    Conflict,
    /// A referenced row (room, user) does not exist.
    MissingParent,
    /// Contention or a connection problem: another writer held the lock past
    /// the busy timeout, the pool had no connection, the store is closed.
    Unavailable,
    /// The database hit its size cap or the disk is full.
    Full,
    /// Anything else.
    Unexpected,
}

/// Classifies a driver error.
pub(crate) fn classify(e: &sqlx::Error) -> Kind {
    match e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return Kind::Conflict;
            }
            if db.is_foreign_key_violation() {
                return Kind::MissingParent;
            }
            db.code()
                .and_then(|c| c.parse::<i64>().ok())
                .map_or(Kind::Unexpected, classify_code)
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => Kind::Unavailable,
        _ => Kind::Unexpected,
    }
}

/// Classifies an SQLite result code (primary or extended), whichever
/// driver reported it.
fn classify_code(code: i64) -> Kind {
    match code & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED => Kind::Unavailable,
        SQLITE_FULL => Kind::Full,
        SQLITE_IOERR | SQLITE_CANTOPEN => Kind::Unavailable,
        _ => Kind::Unexpected,
    }
}

/// Classifies a rusqlite error.
fn classify_rusqlite(e: &rusqlite::Error) -> Kind {
    match e.sqlite_error() {
        Some(f) => match f.extended_code {
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => Kind::Conflict,
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Kind::MissingParent,
            code => classify_code(i64::from(code)),
        },
        None => Kind::Unexpected,
    }
}

/// Translates an error of a hot read (`readers.rs`, rusqlite).
pub(crate) fn read_error(e: rusqlite::Error) -> StoreError {
    to_store_error(classify_rusqlite(&e), Box::new(e))
}

/// An error of the append writer, whichever driver it ran on (rusqlite on
/// a file, sqlx in memory).
#[derive(Debug, Error)]
pub(crate) enum WriteError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Classifies a writer's error.
pub(crate) fn classify_write(e: &WriteError) -> Kind {
    match e {
        WriteError::Sqlx(e) => classify(e),
        WriteError::Sqlite(e) => classify_rusqlite(e),
    }
}

/// Translates a writer's error.
pub(crate) fn write_store_error(e: WriteError) -> StoreError {
    let kind = classify_write(&e);
    to_store_error(kind, Box::new(e))
}

/// The database refused to grow.
#[derive(Debug, Error)]
#[error("the SQLite database or the disk holding it is full")]
struct Full(#[source] BoxError);

/// Turns a classified error into the domain's error, keeping it as the source.
fn to_store_error(kind: Kind, source: BoxError) -> StoreError {
    match kind {
        Kind::Conflict => StoreError::Conflict,
        // Only meaningful where the caller knows which parent was missing;
        // elsewhere it is a broken invariant.
        Kind::MissingParent | Kind::Unexpected => StoreError::Unexpected(source),
        Kind::Unavailable => StoreError::Unavailable(source),
        // A full disk is reported as unavailable: nothing was stored, and
        // the same request can succeed once an operator frees space.
        Kind::Full => StoreError::Unavailable(Box::new(Full(source))),
    }
}

/// Translates a driver error.
pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    let kind = classify(&e);
    to_store_error(kind, Box::new(e))
}

/// Translates a driver error where a foreign key violation means a missing
/// room or user, i.e. `NotFound`.
pub(crate) fn store_error_or_not_found(e: sqlx::Error) -> StoreError {
    match classify(&e) {
        Kind::MissingParent => StoreError::NotFound,
        kind => to_store_error(kind, Box::new(e)),
    }
}

/// Translates one writer error for each of several callers (a failed group
/// commit answers every append in it).
pub(crate) fn shared_store_error(e: &Arc<WriteError>) -> StoreError {
    to_store_error(classify_write(e), Box::new(Shared(Arc::clone(e))))
}

#[derive(Debug, Error)]
#[error(transparent)]
struct Shared(Arc<WriteError>);

/// A stored value that no longer parses as its domain type.
#[derive(Debug, Error)]
#[error("stored {what} {value:?} is invalid")]
pub(crate) struct Corrupt {
    what: &'static str,
    value: String,
    #[source]
    source: BoxError,
}

/// Parses a value read back from the database with a domain constructor.
pub(crate) fn parse<T>(
    value: String,
    parse: impl FnOnce(&str) -> Result<T, InvalidInput>,
    what: &'static str,
) -> Result<T, StoreError> {
    parse(&value).map_err(|e| {
        StoreError::unexpected(Corrupt {
            what,
            value,
            source: Box::new(e),
        })
    })
}

/// A stored integer out of the domain's range.
pub(crate) fn corrupt_number(what: &'static str, value: i64) -> StoreError {
    StoreError::unexpected(Corrupt {
        what,
        value: value.to_string(),
        source: "out of range".into(),
    })
}
