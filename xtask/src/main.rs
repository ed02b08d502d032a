//! Project automation, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `test`: build the `hihichat` binary (the end-to-end tests start it),
//!   run every test of the workspace, then `tidy`.
//! - `tidy`: check the architecture's invariants (see `tidy.rs`).
//! - `e2e`: the browser tests alone (headless Chromium through chromedriver;
//!   they fail, saying what to install, when either is missing).
//! - `bench`: not written yet; it fails loudly rather than pretend.

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
  bench   benchmarks (not implemented yet)";

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    let result = match task.as_deref() {
        Some("test") => test(),
        Some("tidy") => tidy::run(&workspace_root()),
        Some("e2e") => e2e(),
        Some(name @ "bench") => {
            // Exit 2, not 0: a CI step that calls this must not go green on nothing.
            eprintln!("cargo xtask {name}: not implemented yet (issue 7)");
            return ExitCode::from(2);
        }
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
