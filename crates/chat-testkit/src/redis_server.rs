//! A private `redis-server` for tests: started on a free loopback port in a
//! temporary directory, killed when dropped.
//!
//! Tests must never touch a Redis they did not start (a developer's own
//! Redis on 6379 holds real data), so every test binary starts its own:
//!
//! ```no_run
//! use chat_testkit::redis_server::RedisServer;
//!
//! let server = RedisServer::start().expect("a private redis-server");
//! let url = server.url(); // redis://127.0.0.1:PORT
//! # let _ = url;
//! ```
//!
//! If `CHAT_TEST_REDIS_URL` is set, [`RedisServer::start`] uses that server
//! instead of starting one (a CI service container, say); such a server is
//! not ours, so [`RedisServer::kill`] and [`RedisServer::restart`] refuse to
//! touch it. [`RedisServer::start_with_aof`] always starts a private server,
//! because the durability tests it exists for must kill it.
//!
//! # Why a shell sits between us and `redis-server`
//!
//! A server kept in a `static` is never dropped, and `unsafe` (needed for
//! `PR_SET_PDEATHSIG`) is forbidden in this workspace. So each server is
//! started by a tiny `sh` watchdog that blocks reading its stdin, a pipe we
//! hold: when this process exits for any reason the pipe closes, the read
//! returns, and the watchdog SIGKILLs the server and removes its directory.
//! Dropping a [`RedisServer`] closes the pipe the same way.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variable naming an existing Redis to use instead of a private one.
pub const TEST_REDIS_URL_VAR: &str = "CHAT_TEST_REDIS_URL";

/// What the error says when no server binary can be found.
const NOT_FOUND: &str =
    "redis-server not found: install it (apt-get install redis-server) or set CHAT_TEST_REDIS_URL";

/// How long a fresh server may take to answer PING (an AOF replay included).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The watchdog: starts the server in the background, prints its pid, waits
/// for a line on stdin or its end, then kills the server and reaps it. Unless
/// the line was `keep` (a deliberate kill before a restart), it also removes
/// the directory: the end of stdin without a word means this process died.
/// `$1` is the binary, `$2` the directory, the rest the server's arguments.
const WATCHDOG: &str = r#"bin="$1"; dir="$2"; shift 2
"$bin" "$@" >/dev/null 2>&1 </dev/null &
pid=$!
echo "$pid"
read word
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ "$word" != keep ]; then rm -rf "$dir"; fi
"#;

/// A Redis server for one test binary (or one test).
#[derive(Debug)]
pub struct RedisServer {
    url: String,
    private: Option<Private>,
}

/// The parts only a server we started has.
#[derive(Debug)]
struct Private {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    aof: bool,
    /// `None` while killed.
    running: Option<Watchdog>,
}

/// One running `redis-server` under its watchdog shell.
#[derive(Debug)]
struct Watchdog {
    shell: Child,
    /// Closing this tells the watchdog to kill the server.
    stdin: Option<ChildStdin>,
}

impl RedisServer {
    /// A server for tests: the one named by `CHAT_TEST_REDIS_URL` if set,
    /// otherwise a private `redis-server` without persistence.
    ///
    /// # Errors
    /// When no `redis-server` can be found (the message says how to fix it)
    /// or it does not start.
    pub fn start() -> io::Result<Self> {
        if let Ok(url) = std::env::var(TEST_REDIS_URL_VAR) {
            if !url.trim().is_empty() {
                return Ok(Self {
                    url: url.trim().to_owned(),
                    private: None,
                });
            }
        }
        Self::start_private(false)
    }

    /// A private `redis-server` with the append-only file on and
    /// `appendfsync always`, so every acknowledged write survives a SIGKILL.
    ///
    /// # Errors
    /// As [`RedisServer::start`].
    pub fn start_with_aof() -> io::Result<Self> {
        Self::start_private(true)
    }

    /// `redis://127.0.0.1:PORT` (or the external URL).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The port of a private server; `None` for an external one.
    pub fn port(&self) -> Option<u16> {
        self.private.as_ref().map(|p| p.port)
    }

    /// Whether this server was started by us (and so may be killed).
    pub fn is_private(&self) -> bool {
        self.private.is_some()
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it is gone.
    /// Its directory (and append-only file) is kept for [`RedisServer::restart`].
    ///
    /// # Errors
    /// For an external server, which is not ours to kill.
    pub fn kill(&mut self) -> io::Result<()> {
        let private = self.private_mut("kill")?;
        if let Some(mut watchdog) = private.running.take() {
            watchdog.stop()?;
        }
        Ok(())
    }

    /// Starts the server again on the same port and directory (after
    /// [`RedisServer::kill`], an AOF server replays its log) and waits until
    /// it answers.
    ///
    /// # Errors
    /// For an external server, or when it does not come back.
    pub fn restart(&mut self) -> io::Result<()> {
        let private = self.private_mut("restart")?;
        if let Some(mut watchdog) = private.running.take() {
            watchdog.stop()?;
        }
        // The port was ours a moment ago; the kernel may take a moment to
        // release it, and another process could grab it meanwhile (then we fail).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut watchdog =
                spawn_watchdog(&private.binary, &private.dir, private.port, private.aof)?;
            match wait_ready(&mut watchdog, &private.dir, private.port) {
                Ok(()) => {
                    private.running = Some(watchdog);
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn private_mut(&mut self, what: &str) -> io::Result<&mut Private> {
        self.private.as_mut().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "cannot {what} the Redis at {} (from {TEST_REDIS_URL_VAR}): it is not ours",
                    self.url
                ),
            )
        })
    }

    fn start_private(aof: bool) -> io::Result<Self> {
        let binary = find_binary()?;
        let dir = fresh_dir()?;
        // Another process may take the free port between our probe and the
        // server's bind; a few tries with fresh ports make that harmless.
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            let mut watchdog = spawn_watchdog(&binary, &dir, port, aof)?;
            match wait_ready(&mut watchdog, &dir, port) {
                Ok(()) => {
                    return Ok(Self {
                        url: format!("redis://127.0.0.1:{port}"),
                        private: Some(Private {
                            binary,
                            dir,
                            port,
                            aof,
                            running: Some(watchdog),
                        }),
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(private) = &mut self.private {
            if let Some(mut watchdog) = private.running.take() {
                let _ = watchdog.stop();
            }
            let _ = std::fs::remove_dir_all(&private.dir);
        }
    }
}

impl Watchdog {
    /// Tells the shell to SIGKILL the server and keep its directory, then
    /// waits for the shell, which waits for the server, so the port is free
    /// afterwards.
    fn stop(&mut self) -> io::Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            // A shell that already ended cannot read this; waiting still works.
            let _ = stdin.write_all(b"keep\n");
        }
        self.shell.wait().map(|_| ())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn find_binary() -> io::Result<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(
            [
                "/usr/bin",
                "/usr/local/bin",
                "/usr/sbin",
                "/opt/homebrew/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, NOT_FOUND))
}

fn fresh_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "hihichat-redis-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn spawn_watchdog(binary: &Path, dir: &Path, port: u16, aof: bool) -> io::Result<Watchdog> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(binary)
        .arg(dir)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", if aof { "yes" } else { "no" }])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .args(["--daemonize", "no"]);
    if aof {
        command.args(["--appendfsync", "always"]);
    }
    let mut shell = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run sh to start redis-server: {e}"),
            )
        })?;
    let stdin = shell.stdin.take();
    // The first line is the server's pid: proof that the shell got that far.
    let mut line = String::new();
    if let Some(stdout) = shell.stdout.take() {
        BufReader::new(stdout).read_line(&mut line)?;
    }
    let watchdog = Watchdog { shell, stdin };
    if line.trim().parse::<u32>().is_err() {
        return Err(io::Error::other(format!(
            "the redis-server watchdog did not start {}",
            binary.display()
        )));
    }
    Ok(watchdog)
}

/// Waits until the server answers PING, or reports why it did not.
fn wait_ready(watchdog: &mut Watchdog, dir: &Path, port: u16) -> io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if ping(addr).unwrap_or(false) {
            return Ok(());
        }
        if let Some(status) = watchdog.shell.try_wait()? {
            return Err(io::Error::other(format!(
                "redis-server on port {port} exited ({status}): {}",
                log_tail(dir)
            )));
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "redis-server on port {port} did not answer PING within {READY_TIMEOUT:?}: {}",
                    log_tail(dir)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a server answers `PING` with `+PONG` (`-LOADING` while it replays its AOF).
fn ping(addr: SocketAddr) -> io::Result<bool> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf)?;
    Ok(buf[..n].starts_with(b"+PONG"))
}

/// The end of the server's log, for error messages.
fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(no log)".to_owned()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_private_server_answers_and_is_gone_after_drop() {
        let server = RedisServer::start_private(false).unwrap();
        let port = server.port().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(ping(addr).unwrap());
        assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
        drop(server);
        assert!(!ping(addr).unwrap_or(false));
    }

    #[test]
    fn a_server_we_did_not_start_is_never_killed() {
        let mut external = RedisServer {
            url: "redis://127.0.0.1:6379".to_owned(),
            private: None,
        };
        assert_eq!(
            external.kill().unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
        assert!(external.restart().is_err());
        assert_eq!(external.port(), None);
    }

    #[test]
    fn kill_and_restart_keep_the_port() {
        let mut server = RedisServer::start_with_aof().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], server.port().unwrap()));
        server.kill().unwrap();
        assert!(!ping(addr).unwrap_or(false));
        server.restart().unwrap();
        assert!(ping(addr).unwrap());
    }
}
