//! Project automation, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `test`: build the `hihichat` binary (the end-to-end tests start it),
//!   run every test of the workspace, then `tidy`.
//! - `tidy`: check the architecture's invariants (see `tidy.rs`).
//! - `e2e`: the browser tests alone (headless Chromium through chromedriver;
//!   they fail, saying what to install, when either is missing).
//! - `bench [--quick] [--debug] [chat-loadgen run options]`: build the server
//!   and the load generator (release unless `--debug`), then run the
//!   benchmarks of `crates/chat-loadgen` (see docs/BENCHMARKS.md). It fails
//!   only when messages are lost, duplicated or misordered, or a scenario
//!   cannot run — never on timing.

mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  test    build hihichat, run every test of the workspace, then tidy
  tidy    check dependency invariants, `//!` headers and Redis commands
  e2e     build hihichat, then run the browser tests (needs chromium and chromedriver)
  bench   build hihichat and chat-loadgen (release unless --debug), then run
          the benchmarks; other options go to `chat-loadgen run` (--quick,
          --scenario NAME, --out DIR, ...)";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("test") => test(),
        Some("tidy") => tidy::run(&workspace_root()),
        Some("e2e") => e2e(),
        Some("bench") => bench(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask always lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// The cargo that runs us (so `cargo +toolchain xtask` stays on that toolchain).
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn test() -> anyhow::Result<()> {
    let root = workspace_root();
    // The end-to-end tests start the real binary (the kill test, the
    // multi-node tests); `--all-targets` does not build a package's binary
    // for another package's tests, so build it first.
    run_cargo(&root, &["build", "-p", "chat-server", "--bin", "hihichat"])?;
    run_cargo(&root, &["test", "--workspace", "--all-targets"])?;
    // `--all-targets` leaves out doctests, and the embedding example in
    // chat-domain's crate docs is one.
    run_cargo(&root, &["test", "--workspace", "--doc"])?;
    tidy::run(&root)?;
    println!("xtask test: every step passed");
    Ok(())
}

fn e2e() -> anyhow::Result<()> {
    let root = workspace_root();
    run_cargo(&root, &["build", "-p", "chat-server", "--bin", "hihichat"])?;
    run_cargo(&root, &["test", "-p", "chat-tests", "--test", "browser"])?;
    println!(
        "xtask e2e: the browser tests passed; screenshots are in the target directory, under e2e/"
    );
    Ok(())
}

fn bench(args: &[String]) -> anyhow::Result<()> {
    let root = workspace_root();
    // CI's smoke run uses the debug build it already has: it checks delivery
    // (nothing lost, duplicated or misordered), for which speed is irrelevant.
    let debug = args.iter().any(|a| a == "--debug");
    let profile: &[&str] = if debug { &[] } else { &["--release"] };
    let mut build = vec!["build", "-p", "chat-server", "--bin", "hihichat"];
    build.extend(["-p", "chat-loadgen", "--bin", "chat-loadgen"]);
    build.extend(profile);
    run_cargo(&root, &build)?;
    let mut run = vec!["run", "-q", "-p", "chat-loadgen", "--bin", "chat-loadgen"];
    run.extend(profile);
    run.extend(["--", "run"]);
    run.extend(args.iter().map(String::as_str).filter(|a| *a != "--debug"));
    run_cargo(&root, &run)
}

fn run_cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let shown = format!("cargo {}", args.join(" "));
    println!("xtask: {shown}");
    let status = Command::new(cargo())
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}
