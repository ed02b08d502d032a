//! The `hihichat` binary: parses the command line, starts tracing, runs.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use chat_server::commands::{Cli, Command};
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: after a storm of connections glibc
/// kept the memory their transient buffers had used (so an idle connection
/// seemed to cost 12–22 KiB instead of 8), and its `malloc_consolidate` was
/// a sixth of the CPU of a history page. See docs/BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs at info; one-shot commands only warn, so their output
    // is the one line they print (and a first admin's generated password).
    let default = match cli.command {
        None | Some(Command::Serve(_)) => "info",
        Some(_) => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // The log goes to standard output; standard error carries only the one
    // `error: …` line of a failed start or command, so it can be read alone.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    chat_server::commands::run(cli)
}
