//! `chat-loadgen`: `run` measures hihichat against the baseline and writes
//! reports; `baseline` serves the minimal broadcast server; `scenarios`
//! prints the presets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chat_loadgen::runner::{self, RunArgs, Verdict};
use chat_loadgen::scenarios::Scenario;
use clap::{Parser, Subcommand};

/// hihichat's load generator and baseline server.
#[derive(Debug, Parser)]
#[command(name = "chat-loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the benchmarks and write reports and charts.
    Run(RunArgs),
    /// Serve the minimal baseline broadcast server.
    Baseline {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
        /// Store every message in this new file, synced, before broadcasting
        /// or acking it (the durable baseline).
        #[arg(long, value_name = "FILE")]
        durable: Option<PathBuf>,
    },
    /// Print every scenario's parameters.
    Scenarios {
        /// The quick sizes.
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            // Before anything starts: servers inherit the limit, and threads
            // inherit the affinity.
            let _ = rlimit::increase_nofile_limit(65_536);
            let pinning = runner::pin_load_generator(!args.no_pin);
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            // One core for the load generator: a single-threaded runtime
            // wastes nothing on cross-thread wake-ups.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("chat-loadgen: cannot start the runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime.block_on(runner::run(args, command, pinning)) {
                Ok(Verdict::Passed) => ExitCode::SUCCESS,
                Ok(Verdict::DeliveryFault) => ExitCode::FAILURE,
                Ok(Verdict::Incomplete) => ExitCode::from(2),
                Err(e) => {
                    eprintln!("chat-loadgen: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Baseline { listen, durable } => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("chat-loadgen baseline: cannot start the runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match runtime.block_on(chat_loadgen::baseline::run(listen, durable.as_deref())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("chat-loadgen baseline: {listen}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Scenarios { quick } => {
            for s in Scenario::ALL {
                println!("{}:", s.name());
                for line in s.describe(quick) {
                    println!("  {line}");
                }
            }
            ExitCode::SUCCESS
        }
    }
}
