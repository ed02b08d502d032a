//! `cargo xtask tidy`: the invariants of docs/ARCHITECTURE.md, checked.
//!
//! 1. Dependencies, read from `cargo metadata --no-deps`:
//!    - `chat-domain` uses no storage, web or wire-format crate and none of ours;
//!    - the adapters depend on `chat-domain` and on no other adapter or front;
//!    - `chat-http` and `chat-admin` depend on no adapter (`chat-memory` only
//!      as a dev-dependency, for their unit tests);
//!    - `chat-testkit` is only ever a dev-dependency;
//!    - nothing but `chat-tests` depends on `chat-server`.
//! 2. Every `.rs` file under `crates/`, `xtask/` and `tests/` opens with a `//!` line.
//! 3. No `KEYS` command in `chat-redis` (it scans the whole keyspace).
//!
//! The checks are plain functions over data so that a unit test can feed
//! them a broken workspace and see them fail, and a `#[test]` runs them on
//! the real one, so `cargo test --workspace` enforces them too.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// The crate every other one builds on.
const DOMAIN: &str = "chat-domain";
/// Storage and bus adapters, named after their technology.
const ADAPTERS: [&str; 3] = ["chat-memory", "chat-sqlite", "chat-redis"];
/// The crates that talk to people and must see only the domain.
const FRONTS: [&str; 2] = ["chat-http", "chat-admin"];
/// Contract suites and fixtures: test-only code.
const TESTKIT: &str = "chat-testkit";
/// The binary's crate, which sees everything.
const SERVER: &str = "chat-server";
/// The end-to-end tests, which may see everything too.
const E2E: &str = "chat-tests";
/// Every package the workspace must have; a check over a missing one would pass vacuously.
const EXPECTED: [&str; 10] = [
    DOMAIN,
    "chat-memory",
    "chat-sqlite",
    "chat-redis",
    TESTKIT,
    "chat-http",
    "chat-admin",
    SERVER,
    E2E,
    "xtask",
];
/// What the domain must not pull in: I/O, web and wire-format crates.
const DOMAIN_FORBIDDEN: [&str; 11] = [
    "sqlx",
    "fred",
    "redis",
    "axum",
    "hyper",
    "tokio-tungstenite",
    "tungstenite",
    "tower",
    "tower-http",
    "reqwest",
    "serde_json",
];
/// tokio features that would give the domain sockets, files or processes.
const TOKIO_IO_FEATURES: [&str; 5] = ["full", "net", "fs", "process", "io-std"];
/// The folders whose Rust files must open with `//!`.
const SOURCE_DIRS: [&str; 3] = ["crates", "xtask", "tests"];
/// Where Redis commands are written.
const REDIS_CRATE: &str = "crates/chat-redis";

/// Runs every check on the workspace at `root`; fails listing every problem.
///
/// # Errors
/// When a check finds problems or cannot run (no cargo, unreadable files).
pub fn run(root: &Path) -> anyhow::Result<()> {
    let problems = problems(root)?;
    if problems.is_empty() {
        println!("tidy: dependencies, `//!` headers and Redis commands are in order");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("tidy: {problem}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

/// Every problem in the workspace at `root`, empty when it is tidy.
///
/// # Errors
/// When a check cannot run.
pub fn problems(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = dependency_problems(&metadata(root)?);
    for file in rust_files(root)? {
        let text = std::fs::read_to_string(root.join(&file))
            .with_context(|| format!("cannot read {}", file.display()))?;
        problems.extend(header_problem(&file, &text));
    }
    for file in redis_sources(root)? {
        let text = std::fs::read_to_string(root.join(&file))
            .with_context(|| format!("cannot read {}", file.display()))?;
        problems.extend(keys_problems(&file, &text));
    }
    Ok(problems)
}

fn metadata(root: &Path) -> anyhow::Result<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("cannot run `cargo metadata`")?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout)
        .context("`cargo metadata` printed something other than JSON")
}

/// How a package uses a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Dev,
    Build,
}

/// One dependency line of one package, as `cargo metadata` reports it.
#[derive(Debug)]
struct Dep<'a> {
    name: &'a str,
    kind: Kind,
    optional: bool,
    features: Vec<&'a str>,
}

impl Dep<'_> {
    /// Whether the dependency reaches the built library or binary (not only tests).
    fn ships(&self) -> bool {
        self.kind != Kind::Dev
    }
}

fn deps_of(package: &Value) -> Vec<Dep<'_>> {
    let Some(deps) = package["dependencies"].as_array() else {
        return Vec::new();
    };
    deps.iter()
        .filter_map(|d| {
            Some(Dep {
                name: d["name"].as_str()?,
                kind: match d["kind"].as_str() {
                    Some("dev") => Kind::Dev,
                    Some("build") => Kind::Build,
                    _ => Kind::Normal,
                },
                optional: d["optional"].as_bool().unwrap_or(false),
                features: d["features"]
                    .as_array()
                    .map(|f| f.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// The dependency rules over `cargo metadata --format-version 1 --no-deps` output.
pub fn dependency_problems(metadata: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let packages: Vec<&Value> = metadata["packages"]
        .as_array()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    let name_of = |p: &Value| p["name"].as_str().unwrap_or("?").to_owned();
    for expected in EXPECTED {
        if !packages.iter().any(|p| name_of(p) == expected) {
            problems.push(format!("the workspace has no package `{expected}`"));
        }
    }

    for package in &packages {
        let name = name_of(package);
        let deps = deps_of(package);
        let name = name.as_str();

        if name == DOMAIN {
            for dep in deps.iter().filter(|d| d.ships()) {
                if DOMAIN_FORBIDDEN.contains(&dep.name) {
                    problems.push(format!(
                        "{DOMAIN} depends on `{}`: the domain does no I/O and knows no wire format",
                        dep.name
                    ));
                }
                if dep.name == "serde" && !dep.optional {
                    problems.push(format!(
                        "{DOMAIN} depends on `serde` unconditionally: keep it behind the optional `serde` feature"
                    ));
                }
                if dep.name == "tokio" {
                    for feature in dep
                        .features
                        .iter()
                        .filter(|f| TOKIO_IO_FEATURES.contains(f))
                    {
                        problems.push(format!(
                            "{DOMAIN} enables tokio's `{feature}` feature: the domain opens no sockets, files or processes"
                        ));
                    }
                }
                if dep.name.starts_with("chat-") {
                    problems.push(format!(
                        "{DOMAIN} depends on `{}`: the domain depends on none of our crates",
                        dep.name
                    ));
                }
            }
        }

        if ADAPTERS.contains(&name) {
            if !deps
                .iter()
                .any(|d| d.name == DOMAIN && d.kind == Kind::Normal)
            {
                problems.push(format!("adapter {name} does not depend on {DOMAIN}"));
            }
            for dep in &deps {
                let other_adapter = ADAPTERS.contains(&dep.name) && dep.name != name;
                if other_adapter || FRONTS.contains(&dep.name) || dep.name == SERVER {
                    problems.push(format!(
                        "adapter {name} depends on `{}`: adapters depend on {DOMAIN} only",
                        dep.name
                    ));
                }
            }
        }

        if FRONTS.contains(&name) {
            for dep in &deps {
                let allowed_for_tests = dep.name == "chat-memory" && dep.kind == Kind::Dev;
                if ADAPTERS.contains(&dep.name) && !allowed_for_tests {
                    problems.push(format!(
                        "{name} depends on adapter `{}`{}: it must see only {DOMAIN} (chat-memory is allowed as a dev-dependency)",
                        dep.name,
                        if dep.kind == Kind::Dev { " (dev)" } else { "" }
                    ));
                }
            }
        }

        for dep in &deps {
            if dep.name == TESTKIT && dep.ships() && name != TESTKIT {
                problems.push(format!(
                    "{name} depends on {TESTKIT} outside [dev-dependencies]: it is test-only code"
                ));
            }
            if dep.name == SERVER && name != E2E {
                problems.push(format!(
                    "{name} depends on {SERVER}: only the end-to-end tests may"
                ));
            }
        }
    }
    problems
}

/// The problem with a Rust file's first line, if it is not a `//!` doc line.
pub fn header_problem(path: &Path, text: &str) -> Option<String> {
    let first = text
        .trim_start_matches('\u{feff}')
        .lines()
        .next()
        .unwrap_or("");
    (!first.starts_with("//!")).then(|| {
        format!(
            "{} does not start with a `//!` line saying what it is for",
            path.display()
        )
    })
}

/// Every `KEYS` command written in a chat-redis source (Rust or Lua), by line.
///
/// Lua's `KEYS[1]` (the script's key arguments) is fine; `KEYS pattern`,
/// `"KEYS"` and `redis.call('keys', …)` are not. Comments are skipped, so
/// a comment may say why there is no `KEYS`.
pub fn keys_problems(path: &Path, text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.trim_start();
            !(code.starts_with("//") || code.starts_with("--"))
        })
        .filter(|(_, line)| {
            let lower = line.to_lowercase();
            line.contains("KEYS ") || lower.contains("\"keys\"") || lower.contains("'keys'")
        })
        .map(|(i, _)| {
            format!(
                "{}:{}: a KEYS command scans the whole keyspace; keep lists in their own keys",
                path.display(),
                i + 1
            )
        })
        .collect()
}

/// The `.rs` files under the source folders, relative to `root`: those git
/// tracks or would track (untracked but not ignored), or every one on disk
/// outside `target/` when git cannot answer.
fn rust_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let from_git = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
        ])
        .args(SOURCE_DIRS)
        .current_dir(root)
        .output();
    let mut files: Vec<PathBuf> = match from_git {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|f| f.ends_with(".rs"))
            .map(PathBuf::from)
            // A tracked file deleted in the work tree is no longer ours to check.
            .filter(|f| root.join(f).is_file())
            .collect(),
        _ => {
            let mut all = Vec::new();
            for dir in SOURCE_DIRS {
                walk(root, Path::new(dir), &["rs"], &mut all)?;
            }
            all
        }
    };
    files.sort();
    files.dedup();
    Ok(files)
}

fn redis_sources(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    walk(root, Path::new(REDIS_CRATE), &["rs", "lua"], &mut files)?;
    Ok(files)
}

/// Collects files with one of `extensions` under `root/dir`, skipping build
/// output and hidden folders.
fn walk(
    root: &Path,
    dir: &Path,
    extensions: &[&str],
    out: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let full = root.join(dir);
    if !full.is_dir() {
        return Ok(());
    }
    for entry in
        std::fs::read_dir(&full).with_context(|| format!("cannot list {}", full.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        let rel = dir.join(name.as_ref());
        if entry.file_type()?.is_dir() {
            walk(root, &rel, extensions, out)?;
        } else if rel
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e))
        {
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn the_workspace_is_tidy() {
        let root = crate::workspace_root();
        let problems = problems(&root).unwrap();
        assert!(
            problems.is_empty(),
            "tidy problems:\n{}",
            problems.join("\n")
        );
    }

    /// A dependency entry as `cargo metadata` prints it.
    fn dep(name: &str, kind: Option<&str>) -> Value {
        json!({ "name": name, "kind": kind, "optional": false, "features": [] })
    }

    /// The workspace as it should be, as (package, dependencies) pairs.
    fn tidy_workspace() -> Vec<(&'static str, Vec<Value>)> {
        vec![
            (
                DOMAIN,
                vec![
                    json!({ "name": "serde", "kind": null, "optional": true, "features": ["derive"] }),
                    json!({ "name": "tokio", "kind": null, "optional": false, "features": ["sync", "time"] }),
                    dep("thiserror", None),
                    dep("chat-memory", Some("dev")),
                ],
            ),
            (
                "chat-memory",
                vec![dep(DOMAIN, None), dep(TESTKIT, Some("dev"))],
            ),
            (
                "chat-sqlite",
                vec![
                    dep(DOMAIN, None),
                    dep("sqlx", None),
                    dep(TESTKIT, Some("dev")),
                ],
            ),
            (
                "chat-redis",
                vec![
                    dep(DOMAIN, None),
                    dep("fred", None),
                    dep(TESTKIT, Some("dev")),
                ],
            ),
            (TESTKIT, vec![dep(DOMAIN, None)]),
            (
                "chat-http",
                vec![
                    dep(DOMAIN, None),
                    dep("axum", None),
                    dep("chat-memory", Some("dev")),
                ],
            ),
            (
                "chat-admin",
                vec![
                    dep(DOMAIN, None),
                    dep("chat-http", None),
                    dep("chat-memory", Some("dev")),
                ],
            ),
            (
                SERVER,
                vec![
                    dep(DOMAIN, None),
                    dep("chat-memory", None),
                    dep("chat-sqlite", None),
                    dep("chat-redis", None),
                    dep("chat-http", None),
                    dep("chat-admin", None),
                ],
            ),
            (E2E, vec![dep(SERVER, None), dep(TESTKIT, Some("dev"))]),
            ("xtask", vec![dep("serde_json", None)]),
        ]
    }

    fn metadata_of(packages: &[(&str, Vec<Value>)]) -> Value {
        json!({
            "packages": packages
                .iter()
                .map(|(name, deps)| json!({ "name": name, "dependencies": deps }))
                .collect::<Vec<_>>()
        })
    }

    /// The tidy workspace with one dependency added to one package.
    fn with_extra(package: &str, extra: Value) -> Value {
        let mut packages = tidy_workspace();
        for (name, deps) in &mut packages {
            if *name == package {
                deps.push(extra.clone());
            }
        }
        metadata_of(&packages)
    }

    #[test]
    fn a_tidy_workspace_has_no_dependency_problems() {
        assert_eq!(
            dependency_problems(&metadata_of(&tidy_workspace())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_broken_dependency_rule_is_reported() {
        let cases = [
            (DOMAIN, dep("sqlx", None), "chat-domain depends on `sqlx`"),
            (
                DOMAIN,
                dep("serde_json", None),
                "chat-domain depends on `serde_json`",
            ),
            (
                DOMAIN,
                dep("axum", Some("build")),
                "chat-domain depends on `axum`",
            ),
            (DOMAIN, dep("serde", None), "`serde` unconditionally"),
            (
                DOMAIN,
                json!({ "name": "tokio", "kind": null, "optional": false, "features": ["net"] }),
                "tokio's `net` feature",
            ),
            (
                DOMAIN,
                dep("chat-sqlite", None),
                "chat-domain depends on `chat-sqlite`",
            ),
            (
                "chat-memory",
                dep("chat-sqlite", None),
                "adapter chat-memory depends on `chat-sqlite`",
            ),
            (
                "chat-redis",
                dep("chat-memory", Some("dev")),
                "adapter chat-redis depends on `chat-memory`",
            ),
            (
                "chat-sqlite",
                dep("chat-http", None),
                "adapter chat-sqlite depends on `chat-http`",
            ),
            (
                "chat-http",
                dep("chat-sqlite", None),
                "chat-http depends on adapter `chat-sqlite`",
            ),
            (
                "chat-http",
                dep("chat-redis", Some("dev")),
                "chat-http depends on adapter `chat-redis` (dev)",
            ),
            (
                "chat-admin",
                dep("chat-memory", None),
                "chat-admin depends on adapter `chat-memory`",
            ),
            (
                SERVER,
                dep(TESTKIT, None),
                "chat-server depends on chat-testkit outside",
            ),
            (
                "chat-http",
                dep(SERVER, None),
                "chat-http depends on chat-server",
            ),
        ];
        for (package, extra, expected) in cases {
            let problems = dependency_problems(&with_extra(package, extra.clone()));
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{package} + {extra}: expected a problem containing {expected:?}, got {problems:?}"
            );
        }
    }

    #[test]
    fn an_adapter_without_the_domain_and_a_missing_package_are_reported() {
        let mut packages = tidy_workspace();
        packages.retain(|(name, _)| *name != "chat-admin");
        for (name, deps) in &mut packages {
            if *name == "chat-memory" {
                deps.retain(|d| d["name"] != DOMAIN);
            }
        }
        let problems = dependency_problems(&metadata_of(&packages));
        assert!(
            problems.contains(&"the workspace has no package `chat-admin`".to_owned()),
            "{problems:?}"
        );
        assert!(
            problems.contains(&"adapter chat-memory does not depend on chat-domain".to_owned()),
            "{problems:?}"
        );
    }

    #[test]
    fn a_file_must_open_with_a_doc_line() {
        let path = Path::new("crates/x/src/lib.rs");
        assert_eq!(
            header_problem(path, "//! What this is for.\nfn f() {}\n"),
            None
        );
        assert!(header_problem(path, "// not a doc comment\n").is_some());
        assert!(header_problem(path, "\n//! too late\n").is_some());
        assert!(header_problem(path, "#![allow(clippy::unwrap_used)]\n//! after\n").is_some());
        assert!(header_problem(path, "").is_some());
    }

    #[test]
    fn keys_commands_are_found_and_lua_key_arguments_are_not() {
        let path = Path::new("crates/chat-redis/src/x.rs");
        let fine = "let seq = redis.call('INCR', KEYS[1])\n// no KEYS here: rooms live in their own set\n-- KEYS * would be slow\n";
        assert_eq!(keys_problems(path, fine), Vec::<String>::new());
        for bad in [
            "let cmd = \"KEYS room:*\";",
            "client.custom(cmd!(\"KEYS\"), vec![\"room:*\"])",
            "local rooms = redis.call('keys', 'room:*')",
        ] {
            assert_eq!(keys_problems(path, bad).len(), 1, "{bad}");
        }
    }
}
