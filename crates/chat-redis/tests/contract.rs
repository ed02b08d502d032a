//! The whole chat-testkit contract suite against a private `redis-server`:
//! one server for this test binary, a fresh key prefix for every test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use chat_redis::{RedisConfig, RedisStore};
use chat_testkit::redis_server::RedisServer;

static SERVER: LazyLock<RedisServer> =
    LazyLock::new(|| RedisServer::start().expect("a Redis for the contract suite"));

/// A store over an empty keyspace: a prefix no other test (or earlier run
/// against a shared `CHAT_TEST_REDIS_URL`) has used.
async fn fresh() -> Arc<RedisStore> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let config = RedisConfig {
        key_prefix: format!(
            "hihichat-test:{}:{run}:{}:",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
        ..RedisConfig::default()
    };
    Arc::new(
        RedisStore::connect(&SERVER.url(), config)
            .await
            .expect("connect to the test Redis"),
    )
}

chat_testkit::storage_tests!(fresh);
chat_testkit::audit_log_tests!(fresh);
chat_testkit::room_events_tests!(fresh);
chat_testkit::presence_tests!(fresh);
