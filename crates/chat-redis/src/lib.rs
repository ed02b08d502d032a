//! chat-redis: every hihichat port on Redis (through fred), and the
//! cross-node event bus, so any number of `hihichat serve` processes can
//! share rooms, history, presence, sessions and fan-out.
//!
//! [`RedisStore::connect`] opens two connections: one for commands and a
//! dedicated subscriber for pub/sub (a subscribed RESP2 connection can do
//! nothing else). The key schema is documented in `keys.rs`; every change
//! that touches more than one key is one Lua script (`scripts.rs`), so it is
//! atomic across nodes. In particular [`MessageLog::append`](chat_domain::MessageLog::append) checks the room
//! and the sender's `cid`, assigns the next seq and stores the message in a
//! single script: two nodes sending into one room at once never make a gap
//! or a repeat.
//!
//! # Failure behaviour
//!
//! - At start-up an unreachable Redis is one error naming the URL (no retry).
//! - While running, a lost connection is re-established by fred's reconnect
//!   policy (exponential backoff, no limit). Meanwhile commands wait in a
//!   bounded buffer and fail after the command timeout with
//!   [`StoreError::Unavailable`]: a send is answered `unavailable`, never
//!   acknowledged falsely, and nothing hangs.
//! - A command is written at most once (fred's `max_command_attempts = 1`):
//!   a connection that dies with an append in flight fails the append
//!   instead of replaying it, which could store the message twice.
//! - A command that times out after it reached Redis may still have been
//!   applied; a client retrying a send with the same `cid` then gets the
//!   stored message back instead of a second copy.
//! - Durability of an acknowledged message is Redis's: with
//!   `appendonly yes` and `appendfsync always` it survives a crash of Redis.

mod bus;
mod codec;
mod error;
mod keys;
mod ports;
mod scripts;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use chat_domain::{StoreError, StoreResult};
use fred::clients::Client;
use fred::interfaces::{ClientLike, LuaInterface};
use fred::types::Builder;
use fred::types::Value;
use fred::types::config::{Config, ReconnectPolicy, UnresponsiveConfig};

use crate::bus::Bus;
use crate::error::from_fred;
use crate::keys::Keys;
use crate::scripts::Script;

/// How to reconnect after losing Redis: exponential backoff without limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconnect {
    /// The first wait after a lost connection.
    pub min_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Settings of the Redis adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Put before every key and channel, so several installations (or
    /// tests) can share one Redis. Default `hihichat:`.
    pub key_prefix: String,
    /// How long a command may take, waiting out a reconnect included,
    /// before it fails as unavailable. Default 3 s.
    pub command_timeout: Duration,
    /// How long opening a connection may take. Default 5 s.
    pub connect_timeout: Duration,
    /// Backoff while reconnecting.
    pub reconnect: Reconnect,
    /// Commands that may wait for a connection at once; beyond that they
    /// fail at once as unavailable instead of piling up. Default 10,000.
    pub max_command_buffer: usize,
    /// Events buffered per room or user on this node for a slow reader;
    /// a reader further behind gets `Delivery::Lagged`. Default 1,024.
    pub event_buffer: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            key_prefix: "hihichat:".to_owned(),
            command_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(5),
            reconnect: Reconnect::default(),
            max_command_buffer: 10_000,
            event_buffer: 1024,
        }
    }
}

/// Every hihichat port on one Redis: users, sessions, rooms, the message
/// log, the event bus, presence, the bot's corpus, the audit trail and a
/// health check.
pub struct RedisStore {
    client: Client,
    keys: Keys,
    bus: Bus,
    /// Script source → SHA1 from `SCRIPT LOAD`. A std mutex: only map
    /// lookups happen under it.
    shas: Mutex<HashMap<&'static str, String>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host:port[/db]`).
    ///
    /// # Errors
    /// One error naming the URL (password hidden) when the URL is invalid or
    /// Redis cannot be reached now: start-up does not retry.
    pub async fn connect(url: &str, config: RedisConfig) -> anyhow::Result<RedisStore> {
        let shown = redact(url);
        let mut fred_config =
            Config::from_url(url).with_context(|| format!("invalid Redis URL {shown}"))?;
        // Fail the first connection at once; the reconnect policy is for later.
        fred_config.fail_fast = true;
        let mut builder = Builder::from_config(fred_config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = config.connect_timeout;
                c.internal_command_timeout = config.command_timeout;
                c.max_command_attempts = 1;
                c.max_command_buffer_len = config.max_command_buffer;
                // A connection that stops answering (a paused server, a
                // silent network) is dropped and re-made instead of
                // swallowing commands until each times out.
                c.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(config.command_timeout.saturating_mul(2)),
                    interval: Duration::from_millis(500),
                };
            })
            .with_performance_config(|p| {
                p.default_command_timeout = config.command_timeout;
                // fred's own pub/sub channel: our reader drains it at once,
                // this only absorbs bursts; an overflow still reports Lagged.
                p.broadcast_channel_capacity = 4096;
            })
            .set_policy(ReconnectPolicy::new_exponential(
                0,
                millis(config.reconnect.min_delay),
                millis(config.reconnect.max_delay),
                2,
            ));
        let client = builder
            .build()
            .with_context(|| format!("invalid Redis settings for {shown}"))?;
        let subscriber = builder
            .build_subscriber_client()
            .with_context(|| format!("invalid Redis settings for {shown}"))?;
        let unreachable =
            |e: fred::error::Error| anyhow::anyhow!("cannot reach Redis at {shown}: {e}");
        client.init().await.map_err(unreachable)?;
        subscriber.init().await.map_err(unreachable)?;
        let _: Value = client.ping(None).await.map_err(unreachable)?;

        let mut shas = HashMap::new();
        for script in scripts::ALL {
            let sha: String = client.script_load(script.lua).await.map_err(|e| {
                anyhow::anyhow!(
                    "cannot load Lua script {} into Redis at {shown}: {e}",
                    script.name
                )
            })?;
            shas.insert(script.lua, sha);
        }
        Ok(RedisStore {
            client,
            keys: Keys::new(config.key_prefix),
            bus: Bus::start(subscriber, config.event_buffer),
            shas: Mutex::new(shas),
        })
    }

    /// The prefix of every key and channel this store uses.
    pub fn key_prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Closes both connections (waiting for commands in flight); the store
    /// answers `Unavailable` afterwards.
    pub async fn close(&self) {
        let _ = self.client.quit().await;
        let _ = self.bus.client().quit().await;
    }

    /// Runs a script by hash, falling back to its source when Redis does
    /// not know it (a restarted server has an empty script cache).
    async fn run(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> StoreResult<Value> {
        let sha = self
            .shas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(script.lua)
            .cloned();
        if let Some(sha) = sha {
            match self.client.evalsha(sha, keys.clone(), args.clone()).await {
                Err(e) if e.details().starts_with("NOSCRIPT") => {}
                result => return result.map_err(|e| script_error(script, e)),
            }
        }
        // EVAL caches the script again, so the next EVALSHA finds it.
        self.client
            .eval(script.lua, keys, args)
            .await
            .map_err(|e| script_error(script, e))
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // Without QUIT the reconnect policy (no attempt limit) would keep
        // the dropped clients reconnecting forever if Redis were down.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let subscriber = self.bus.client().clone();
            runtime.spawn(async move {
                let _ = client.quit().await;
                let _ = subscriber.quit().await;
            });
        }
    }
}

fn script_error(script: &Script, e: fred::error::Error) -> StoreError {
    tracing::debug!(script = script.name, error = %e, "Redis script failed");
    from_fred(e)
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// The URL with any password replaced by `***`, for error messages and logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{scheme}://{hidden}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_error_messages() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact("redis://app:s3cr@t@host/1"),
            "redis://app:***@host/1"
        );
        assert_eq!(redact("redis://token@host"), "redis://***@host");
    }
}
