//! The measuring instrument of hihichat (issue 7): an open-loop WebSocket
//! load generator speaking the CONTRACT §4 protocol with many connections
//! from one process, a minimal baseline broadcast server to compare with,
//! the named scenarios, and the reports and charts they produce.
//!
//! The binary is `chat-loadgen`: `run [--quick] [--scenario NAME]… [--out DIR]`
//! measures; `baseline --listen ADDR` is the baseline server (started by
//! `run` as a separate, pinned process). See docs/BENCHMARKS.md.

pub mod accounting;
pub mod baseline;
pub mod charts;
pub mod client;
pub mod clock;
pub mod deploy;
pub mod load;
pub mod process;
pub mod procfs;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod stats;
pub mod wire;
