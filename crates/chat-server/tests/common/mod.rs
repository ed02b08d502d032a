//! Helpers shared by the tests that run the real `hihichat` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `hihichat` in `dir`, with no `CHAT_*` variable of the test's own
/// environment leaking in.
pub fn hihichat(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hihichat"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("CHAT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs a one-shot command with `stdin` as its input.
pub fn run(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The standard error of a finished command as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The standard output of a finished command as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A running `hihichat serve`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every log line up to and including "listening".
    pub startup_log: Vec<String>,
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `cmd serve` and waits until it listens.
    pub fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut log = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let addr = line
                        .contains("listening")
                        .then(|| line.split("local_addr=").nth(1))
                        .flatten()
                        .and_then(|rest| rest.split_whitespace().next())
                        .map(|a| a.parse::<SocketAddr>().unwrap());
                    log.push(line);
                    if let Some(addr) = addr {
                        return Server {
                            child,
                            addr,
                            startup_log: log,
                            lines: rx,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the server did not start; log so far:\n{}", log.join("\n"));
                }
            }
        }
    }

    /// `http://ADDR`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to end and returns its exit code and
    /// the rest of its log.
    pub fn wait(mut self) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let rest: Vec<String> = self.lines.try_iter().collect();
                return (status.code(), rest);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not stop within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Logs in over HTTP and returns a client holding the session cookie.
pub async fn login(base: &str, name: &str, password: &str) -> Result<reqwest::Client, u16> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/api/session"))
        .json(&serde_json::json!({ "username": name, "password": password }))
        .send()
        .await
        .unwrap();
    if r.status().is_success() {
        Ok(client)
    } else {
        Err(r.status().as_u16())
    }
}

/// The raw session cookie after a login (`hihichat_session=...`).
pub async fn session_cookie(base: &str, name: &str, password: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/session"))
        .json(&serde_json::json!({ "username": name, "password": password }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "login {name}: {}", r.status());
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("hihichat_session="))
        .expect("a session cookie");
    cookie.split(';').next().unwrap().to_owned()
}
