//! Server processes under test: started under a watchdog shell so they die
//! with the load generator, optionally pinned to a core with `taskset`, and
//! identified by pid so `/proc` can be read.
//!
//! Why a shell sits between us and the server: `unsafe` (needed for
//! `PR_SET_PDEATHSIG`) is forbidden in this workspace, and a benchmark that
//! is interrupted must not leave servers running on a shared machine. The
//! shell starts the server in the background, prints its pid and blocks
//! reading its stdin, a pipe we hold; when this process exits for any reason
//! the pipe closes, the read returns, and the shell SIGKILLs the server.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

use crate::procfs;

const WATCHDOG: &str = r#"log="$1"; shift
"$@" >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid"
read word
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
"#;

/// What to start.
#[derive(Debug, Clone)]
pub struct Spec {
    /// A short name for messages (`hihichat-0`, `baseline`, `redis`).
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables to set (the rest is inherited, less `remove_env`).
    pub env: Vec<(String, String)>,
    /// Environment variables to remove.
    pub remove_env: Vec<String>,
    /// Working directory.
    pub dir: PathBuf,
    /// Run on these cores (`taskset -c` syntax: `0`, `0-1`), when `taskset`
    /// exists; otherwise the load generator's own affinity is inherited.
    pub cores: Option<String>,
}

/// A running server process; killed when dropped.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    pid: u32,
    log: PathBuf,
    pinned: Option<String>,
    shell: Child,
    stdin: Option<ChildStdin>,
}

impl Supervised {
    /// Starts `spec`, its output going to `log`.
    ///
    /// # Errors
    /// When the shell cannot be started or does not report a pid.
    pub fn start(spec: &Spec, log: &Path) -> anyhow::Result<Supervised> {
        let pinned = spec.cores.clone().filter(|_| taskset_available());
        let mut command = Command::new("sh");
        command.arg("-c").arg(WATCHDOG).arg("sh").arg(log);
        if let Some(cores) = &pinned {
            command.args(["taskset", "-c", cores]);
        }
        command.arg(&spec.program).args(&spec.args);
        for key in &spec.remove_env {
            command.env_remove(key);
        }
        command
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut shell = command
            .spawn()
            .with_context(|| format!("cannot run sh to start {}", spec.name))?;
        let stdin = shell.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = shell.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        let Ok(pid) = line.trim().parse::<u32>() else {
            let _ = shell.kill();
            bail!("the watchdog did not start {}", spec.name);
        };
        Ok(Supervised {
            name: spec.name.clone(),
            pid,
            log: log.to_path_buf(),
            pinned,
            shell,
            stdin,
        })
    }

    /// The server's pid (`taskset` execs it, so it is the same process).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The cores it is pinned to, if it is.
    pub fn pinned(&self) -> Option<&str> {
        self.pinned.as_deref()
    }

    /// Whether it still runs.
    pub fn alive(&self) -> bool {
        procfs::alive(self.pid)
    }

    /// CPU and memory now.
    ///
    /// # Errors
    /// When `/proc` cannot be read (the process is gone).
    pub fn sample(&self) -> anyhow::Result<procfs::Sample> {
        procfs::sample(self.pid).with_context(|| format!("{} (pid {})", self.name, self.pid))
    }

    /// The last lines of its output, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n  ");
        if tail.is_empty() {
            "(no output)".to_owned()
        } else {
            tail
        }
    }

    /// Kills the server and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.shell.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether `taskset` can be run.
pub fn taskset_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Pins this process (and the threads it starts afterwards) to `core`, so
/// the load generator does not compete with a server pinned elsewhere.
/// Returns whether it worked.
pub fn pin_self(core: usize) -> bool {
    taskset_available()
        && Command::new("taskset")
            .args([
                "-p",
                "-c",
                &core.to_string(),
                &std::process::id().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// How many cores this process could use when it started (remembered on
/// first call, which comes before the load generator pins itself to one).
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

/// Every core, in `taskset -c` syntax: for helpers (Redis) that must not
/// inherit the load generator's single core.
pub fn all_cores() -> String {
    format!("0-{}", cores().saturating_sub(1))
}

/// A loopback port that was free a moment ago. Another process may take it
/// before the server binds it; callers retry with a fresh port.
///
/// # Errors
/// When no port can be bound at all.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Finds an executable named `name` on `PATH` or in the usual places.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(["/usr/bin", "/usr/local/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_supervised_process_is_sampled_and_killed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            name: "sleep".into(),
            program: PathBuf::from("sleep"),
            args: vec!["30".into()],
            env: vec![],
            remove_env: vec![],
            dir: dir.path().to_path_buf(),
            cores: Some("0".into()),
        };
        let process = Supervised::start(&spec, &dir.path().join("log")).unwrap();
        let pid = process.pid();
        assert!(process.alive());
        let s = process.sample().unwrap();
        assert!(s.rss_kib > 0);
        drop(process);
        assert!(!procfs::alive(pid));
    }
}
