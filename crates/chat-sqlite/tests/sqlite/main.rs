//! chat-sqlite's tests, on real SQLite files: the shared storage contract,
//! plus what only a database file can show (reopening, a full disk, bad
//! paths, migrations, group commit under load, listings of many rooms).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod connect;
mod contract;
mod durability;
mod group_commit;
mod history;
mod listing;
mod scratch;
mod upgrade;
