//! The port implementations, one module per port in the order `ports.rs`
//! declares them, and the helpers that read Redis replies into domain values.

mod audit;
mod corpus;
mod events;
mod health;
mod log;
mod presence;
mod rooms;
mod sessions;
mod users;

use chat_domain::{StoreResult, Timestamp};
use fred::types::Value;

use crate::codec::corrupt;

/// A reply that should be an array of strings (nil reads as empty).
fn strings(value: Value) -> StoreResult<Vec<String>> {
    array(value)?.iter().map(string).collect()
}

/// A reply that should be an array (nil reads as empty), its items as
/// they came: a history page decodes its members from the reply's own
/// buffers instead of copying each into a `String` first.
fn array(value: Value) -> StoreResult<Vec<Value>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items),
        other => Err(corrupt(format!(
            "expected an array, got {:?}",
            other.kind()
        ))),
    }
}

/// A reply that should be one string.
fn string(value: &Value) -> StoreResult<String> {
    value
        .as_string()
        .ok_or_else(|| corrupt(format!("expected a string, got {:?}", value.kind())))
}

/// A reply that should be an integer.
fn integer(value: &Value) -> StoreResult<i64> {
    value
        .as_i64()
        .ok_or_else(|| corrupt(format!("expected an integer, got {:?}", value.kind())))
}

/// Milliseconds since the epoch, as stored.
fn millis(raw: &str) -> StoreResult<Timestamp> {
    raw.parse::<i64>()
        .map(Timestamp::from_millis)
        .map_err(|e| corrupt(format!("timestamp {raw:?}: {e}")))
}
