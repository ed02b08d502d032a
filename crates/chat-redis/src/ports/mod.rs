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
use fred::interfaces::ClientLike as _;
use fred::types::{ClusterHash, CustomCommand, Value};

use crate::RedisStore;
use crate::codec::corrupt;
use crate::error::from_fred;

impl RedisStore {
    /// `command key` for each of `keys`, pipelined: one round trip however
    /// many keys (listings read one key per room), the replies in order.
    async fn each_key(&self, command: &'static str, keys: Vec<String>) -> StoreResult<Vec<Value>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = self.client.pipeline();
        for key in keys {
            // Only queues (`()` is the "queued" reply); `all` sends.
            let () = pipeline
                .custom(
                    CustomCommand::new_static(command, ClusterHash::FirstKey, false),
                    vec![key],
                )
                .await
                .map_err(from_fred)?;
        }
        array(pipeline.all::<Value>().await.map_err(from_fred)?)
    }
}

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
