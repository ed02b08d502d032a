//! The `hihichat` server as a library: [`Settings`] (layered configuration),
//! [`Application`] (wiring, serving, graceful shutdown) and the command line
//! ([`commands`]). `main.rs` only parses arguments, starts tracing and calls
//! [`commands::run`]; tests build an [`Application`] directly.

pub mod commands;
pub mod settings;
pub mod startup;

pub use settings::{ConfigText, Flags, SettingError, Settings};
pub use startup::{Application, DEFAULT_CORPUS};
