//! Runs every contract suite of `chat-testkit` against the in-memory adapters.

use std::sync::Arc;

use chat_memory::{MemoryBus, MemoryPresence, MemoryStore};

async fn fresh_store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}

async fn fresh_bus() -> Arc<MemoryBus> {
    Arc::new(MemoryBus::new())
}

async fn fresh_presence() -> Arc<MemoryPresence> {
    Arc::new(MemoryPresence::new())
}

chat_testkit::storage_tests!(fresh_store);
chat_testkit::audit_log_tests!(fresh_store);
chat_testkit::room_events_tests!(fresh_bus);
chat_testkit::presence_tests!(fresh_presence);

/// The store's own bus and presence delegate correctly.
mod through_the_store {
    use super::*;

    chat_testkit::room_events_tests!(fresh_store);
    chat_testkit::presence_tests!(fresh_store);
}
