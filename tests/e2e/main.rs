//! End-to-end tests of hihichat over real sockets: one test binary, real
//! servers on `127.0.0.1:0`, real WebSocket and HTTP clients.
//!
//! `TEST_LOG=1 cargo test -p chat-tests -- --nocapture` shows the servers' logs.
//! The kill and multi-node tests start the real `hihichat` binary: build it
//! first with `cargo build -p chat-server` (`cargo xtask test` does).
#![allow(clippy::unwrap_used)]

mod access;
mod authz;
mod dms;
mod flood;
mod greeting;
mod kill;
mod messaging;
mod moderation;
mod presence;
mod retention;
mod robustness;
mod scaleout;
mod unicode;
