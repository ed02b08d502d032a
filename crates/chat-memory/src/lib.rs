//! In-memory adapters for every hihichat port: a real implementation, for
//! embedding the chat core in another program and for fast tests.
//!
//! - [`MemoryBus`]: the event bus, a tokio broadcast channel per topic.
//! - [`MemoryPresence`]: who is online, with expiring connections.
//! - [`MemoryStore`]: users, sessions, rooms, history, the bot corpus and the audit trail,
//!   plus the bus and presence, so `Ports::single` can wire everything from one value.
//!
//! Everything lives in this process and is lost when it exits; run several
//! nodes with the Redis adapter instead.

mod bus;
mod presence;
mod store;

pub use bus::{BUS_CAPACITY, MemoryBus};
pub use presence::MemoryPresence;
pub use store::MemoryStore;
