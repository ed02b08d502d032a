//! The contract of [`HealthCheck`]: a reachable store says so and names itself.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chat_domain::HealthCheck;

/// A store that is up answers its health check, and has a name for logs.
pub async fn a_reachable_store_is_healthy<S: HealthCheck>(store: Arc<S>) {
    store.check().await.unwrap();
    store.check().await.unwrap();
    let name = store.component();
    assert!(!name.is_empty());
    assert!(name.chars().all(|c| c.is_ascii_graphic()), "{name:?}");
}
