//! A deployment under test: the baseline server, one `hihichat` node on
//! SQLite, one node on Redis, or two nodes sharing a private Redis — each a
//! separate process so its CPU time and memory can be read from `/proc`.
//! Also the HTTP side the load generator needs: users created through the
//! admin API and logged in, rooms created as the admin.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use serde_json::json;

use crate::client::Credential;
use crate::process::{self, Spec, Supervised};
use crate::procfs::{self, Sample, ThreadCpu};

/// The first admin's password in every benchmark server: a throwaway
/// database on loopback, deleted after the run.
const ADMIN_PASSWORD: &str = "bench-admin-password";

/// The cookie hihichat's session lives in.
const SESSION_COOKIE: &str = "hihichat_session";

/// How long a server may take to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Concurrent admin-API requests while creating users and rooms.
const HTTP_CONCURRENCY: usize = 8;

/// What is being measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The minimal broadcast server of this crate: no storage, no checks.
    Baseline,
    /// The baseline storing each message durably (one append and one
    /// fdatasync per group) before broadcasting or acking it: the floor
    /// for a server that keeps every message (fanout and ingest only).
    DurableBaseline,
    /// One `hihichat serve` on its SQLite file, in-process fan-out.
    Embedded,
    /// One `hihichat serve` with `--redis` (rooms, log, fan-out, accounts in Redis).
    Redis,
    /// Two `hihichat serve` processes sharing one Redis; clients alternate between them.
    TwoNode,
}

impl Mode {
    /// The name used in reports.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::DurableBaseline => "baseline+fsync",
            Mode::Embedded => "hihichat",
            Mode::Redis => "hihichat+redis",
            Mode::TwoNode => "hihichat×2+redis",
        }
    }

    /// Whether this is the real server (not a baseline).
    pub fn is_hihichat(self) -> bool {
        !matches!(self, Mode::Baseline | Mode::DurableBaseline)
    }

    fn nodes(self) -> usize {
        if self == Mode::TwoNode { 2 } else { 1 }
    }
}

/// Where the programs are and how to run them.
#[derive(Debug, Clone)]
pub struct Environment {
    /// The `hihichat` binary.
    pub server_bin: PathBuf,
    /// This binary (it serves the baseline).
    pub self_bin: PathBuf,
    /// A Redis to use instead of a private `redis-server` (keys get a unique prefix).
    pub redis_url: Option<String>,
    /// Pin servers with `taskset`.
    pub pin: bool,
}

/// One server process and where it listens.
#[derive(Debug)]
struct Node {
    process: Supervised,
    addr: SocketAddr,
}

/// A running deployment; everything is stopped and deleted when dropped.
#[derive(Debug)]
pub struct Deployment {
    mode: Mode,
    nodes: Vec<Node>,
    redis: Option<Supervised>,
    http: reqwest::Client,
    admin: Option<reqwest::Client>,
    users: Vec<Credential>,
    // Declared last: dropped after the processes that write into it.
    dir: tempfile::TempDir,
}

impl Deployment {
    /// Starts `mode` and waits until every node is ready.
    ///
    /// # Errors
    /// When a program is missing, a process dies or does not become ready,
    /// or the admin cannot log in.
    pub async fn start(mode: Mode, env: &Environment) -> anyhow::Result<Deployment> {
        let dir = tempfile::Builder::new()
            .prefix("hihichat-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let mut deployment = Deployment {
            mode,
            nodes: Vec::new(),
            redis: None,
            http,
            admin: None,
            users: Vec::new(),
            dir,
        };
        let dir = deployment.dir.path().to_path_buf();
        if !mode.is_hihichat() {
            let node = start_node(
                |addr| Spec {
                    name: "baseline".into(),
                    program: env.self_bin.clone(),
                    args: {
                        let mut args = vec!["baseline".into(), "--listen".into(), addr.to_string()];
                        if mode == Mode::DurableBaseline {
                            // Named by port: a retry on another port gets a
                            // new file (the journal is always created new).
                            let journal = dir.join(format!("baseline-{}.journal", addr.port()));
                            args.extend(["--durable".into(), journal.display().to_string()]);
                        }
                        args
                    },
                    env: vec![],
                    remove_env: vec![],
                    dir: dir.clone(),
                    cores: env.pin.then(|| "0".to_owned()),
                },
                &dir.join("baseline.log"),
                Readiness::Tcp,
            )
            .await?;
            deployment.nodes.push(node);
            return Ok(deployment);
        }

        if !env.server_bin.is_file() {
            bail!(
                "the hihichat binary is not at {} (build it: cargo build --release -p chat-server --bin hihichat, or pass --server-bin)",
                env.server_bin.display()
            );
        }
        let redis_url = match (mode, &env.redis_url) {
            (Mode::Embedded, _) => None,
            (_, Some(url)) => Some(url.clone()),
            (_, None) => {
                let (redis, url) = start_redis(&dir).await?;
                deployment.redis = Some(redis);
                Some(url)
            }
        };
        let config = dir.join("bench.toml");
        std::fs::write(&config, bench_config(redis_url.is_some()))?;
        let secret = random_hex(32)?;
        for n in 0..mode.nodes() {
            let database = format!("sqlite://{}", dir.join(format!("node{n}.db")).display());
            let config = config.clone();
            let redis_url = redis_url.clone();
            let secret = secret.clone();
            let server_bin = env.server_bin.clone();
            let spec_dir = dir.clone();
            let cores = env.pin.then(|| (n % process::cores()).to_string());
            let node = start_node(
                move |addr| {
                    let mut args = vec![
                        "serve".to_owned(),
                        "--listen".into(),
                        addr.to_string(),
                        "--database".into(),
                        database.clone(),
                        "--config".into(),
                        config.display().to_string(),
                    ];
                    if let Some(url) = &redis_url {
                        args.extend(["--redis".to_owned(), url.clone()]);
                    }
                    Spec {
                        name: format!("hihichat-{n}"),
                        program: server_bin.clone(),
                        args,
                        env: vec![
                            ("CHAT_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
                            ("CHAT_SECRET_KEY".into(), secret.clone()),
                            ("CHAT_RATE_LIMIT".into(), "off".into()),
                            ("RUST_LOG".into(), "warn".into()),
                        ],
                        remove_env: inherited_chat_vars(),
                        dir: spec_dir.clone(),
                        cores: cores.clone(),
                    }
                },
                &dir.join(format!("hihichat-{n}.log")),
                Readiness::Http,
            )
            .await?;
            // The first node creates the admin; the second starts on that.
            deployment.nodes.push(node);
        }
        deployment.admin = Some(deployment.login_client().await?);
        Ok(deployment)
    }

    /// What this deployment is.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// How many server nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The WebSocket URL of node `n` (modulo the node count).
    pub fn ws_url(&self, n: usize) -> String {
        format!("ws://{}/ws", self.nodes[n % self.nodes.len()].addr)
    }

    fn http_base(&self, n: usize) -> String {
        format!("http://{}", self.nodes[n % self.nodes.len()].addr)
    }

    /// The cores each server is pinned to (empty when not pinned).
    pub fn pinned_cores(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| n.process.pinned().map(str::to_owned))
            .collect()
    }

    /// CPU and memory of all server nodes together.
    ///
    /// # Errors
    /// When a node has died.
    pub fn sample(&self) -> anyhow::Result<Sample> {
        let mut total = Sample::default();
        for node in &self.nodes {
            if !node.process.alive() {
                bail!(
                    "{} died; its last output:\n  {}",
                    self.mode.label(),
                    node.process.log_tail()
                );
            }
            total = total.plus(node.process.sample()?);
        }
        Ok(total)
    }

    /// CPU seconds so far of every server node's threads, by thread id
    /// (ids are unique across processes); a node whose threads cannot be
    /// read adds none.
    pub fn thread_cpu(&self) -> BTreeMap<u32, ThreadCpu> {
        self.nodes
            .iter()
            .flat_map(|node| procfs::thread_cpu(node.process.pid()).unwrap_or_default())
            .collect()
    }

    /// CPU and memory of the private Redis, if there is one.
    pub fn redis_sample(&self) -> Option<Sample> {
        self.redis.as_ref().and_then(|r| r.sample().ok())
    }

    /// Credential number `i`, cycling over the users created so far.
    pub fn credential(&self, i: usize) -> Credential {
        if self.users.is_empty() {
            Credential {
                name: format!("anon{i}"),
                cookie: None,
            }
        } else {
            self.users[i % self.users.len()].clone()
        }
    }

    /// Makes sure `n` users exist and are logged in (the baseline has no
    /// accounts: nothing to do). Users are created through the admin API
    /// (`POST /api/admin/users`) and log in with `POST /api/session`; the
    /// benchmark config makes argon2 cheap so thousands take seconds.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn ensure_users(&mut self, n: usize) -> anyhow::Result<()> {
        let Some(admin) = self.admin.clone() else {
            return Ok(());
        };
        let have = self.users.len();
        if have >= n {
            return Ok(());
        }
        let http = self.http.clone();
        let bases: Vec<String> = (0..self.nodes.len()).map(|i| self.http_base(i)).collect();
        let created: Vec<Credential> = futures::stream::iter(have..n)
            .map(|i| {
                let admin = admin.clone();
                let http = http.clone();
                let base = bases[i % bases.len()].clone();
                let admin_base = bases[0].clone();
                async move {
                    let name = format!("bench{i}");
                    let password = format!("bench-password-{i}");
                    let created = admin
                        .post(format!("{admin_base}/api/admin/users"))
                        .json(&json!({"username": name, "password": password}))
                        .send()
                        .await?;
                    let status = created.status();
                    if !(status.is_success() || status == reqwest::StatusCode::CONFLICT) {
                        bail!(
                            "creating user {name}: {status} {}",
                            created.text().await.unwrap_or_default()
                        );
                    }
                    let cookie = login(&http, &base, &name, &password).await?;
                    Ok::<_, anyhow::Error>(Credential {
                        name,
                        cookie: Some(cookie),
                    })
                }
            })
            .buffered(HTTP_CONCURRENCY)
            .try_collect()
            .await?;
        self.users.extend(created);
        Ok(())
    }

    /// Creates public rooms (the baseline creates rooms on first join:
    /// nothing to do). A room that exists already is fine.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn create_rooms(&self, names: &[String]) -> anyhow::Result<()> {
        let Some(admin) = self.admin.clone() else {
            return Ok(());
        };
        let base = self.http_base(0);
        futures::stream::iter(names.iter().cloned())
            .map(|name| {
                let admin = admin.clone();
                let base = base.clone();
                async move {
                    let response = admin
                        .post(format!("{base}/api/rooms"))
                        .json(&json!({"name": name, "description": "benchmark room", "visibility": "public"}))
                        .send()
                        .await?;
                    let status = response.status();
                    if !(status.is_success() || status == reqwest::StatusCode::CONFLICT) {
                        bail!(
                            "creating room {name}: {status} {}",
                            response.text().await.unwrap_or_default()
                        );
                    }
                    Ok(())
                }
            })
            .buffer_unordered(HTTP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn login_client(&self) -> anyhow::Result<reqwest::Client> {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .timeout(Duration::from_secs(60))
            .build()?;
        let response = client
            .post(format!("{}/api/session", self.http_base(0)))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "the admin cannot log in: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        Ok(client)
    }
}

/// Logs `name` in and returns the `Cookie` header value of its session.
async fn login(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{base}/api/session"))
        .json(&json!({"username": name, "password": password}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("{name} cannot log in: {}", response.status());
    }
    session_cookie(
        response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
    .with_context(|| format!("no {SESSION_COOKIE} cookie in {name}'s login answer"))
}

/// `hihichat_session=VALUE` from a list of `Set-Cookie` header values.
pub fn session_cookie<'a>(set_cookies: impl Iterator<Item = &'a str>) -> Option<String> {
    set_cookies
        .filter_map(|c| c.split(';').next())
        .map(str::trim)
        .find(|pair| {
            pair.split_once('=')
                .is_some_and(|(k, v)| k == SESSION_COOKIE && !v.is_empty())
        })
        .map(str::to_owned)
}

/// The config file of every benchmark server: no rate limit (the load is
/// the point), keep every message, cheap argon2 so thousands of users can be
/// created in seconds, and with Redis, accounts in Redis (two nodes must
/// share users and sessions) under a prefix no other run uses.
fn bench_config(redis: bool) -> String {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let mut text = String::from(
        "# Written by chat-loadgen for one benchmark run.\n\
         rate_limit = \"off\"\nretention = \"0\"\nshutdown_grace = \"1s\"\n\
         [argon2]\nmemory_kib = 1024\niterations = 1\nlanes = 1\n",
    );
    if redis {
        text.push_str(&format!(
            "[redis]\naccounts = \"redis\"\nkey_prefix = \"hihichat-bench-{}-{}:\"\n",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
    }
    text
}

/// Every `CHAT_*` variable of our environment: the servers under test get
/// their settings from the benchmark only.
fn inherited_chat_vars() -> Vec<String> {
    std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("CHAT_"))
        .collect()
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[derive(Clone, Copy)]
enum Readiness {
    /// The port accepts connections.
    Tcp,
    /// `GET /readyz` answers 200.
    Http,
}

/// Starts a server on a fresh port (retrying with another port if it dies
/// at once, e.g. because something took the port) and waits until it is ready.
async fn start_node(
    spec: impl Fn(SocketAddr) -> Spec,
    log: &Path,
    readiness: Readiness,
) -> anyhow::Result<Node> {
    let mut last_error = None;
    for _ in 0..3 {
        let addr = SocketAddr::from(([127, 0, 0, 1], process::free_port()?));
        let spec = spec(addr);
        let process = Supervised::start(&spec, log)?;
        match wait_ready(&process, addr, readiness).await {
            Ok(()) => return Ok(Node { process, addr }),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("the server did not start")))
}

async fn wait_ready(
    process: &Supervised,
    addr: SocketAddr,
    readiness: Readiness,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let ready = match readiness {
            Readiness::Tcp => TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
            Readiness::Http => http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
        };
        if ready {
            return Ok(());
        }
        if !process.alive() {
            bail!(
                "the server exited before it was ready; its last output:\n  {}",
                process.log_tail()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the server on {addr} was not ready within {READY_TIMEOUT:?}; its last output:\n  {}",
                process.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a private `redis-server` (no persistence) and returns it with its URL.
async fn start_redis(dir: &Path) -> anyhow::Result<(Supervised, String)> {
    let binary = process::find_on_path("redis-server").context(
        "redis-server not found: install it (apt-get install redis-server) or pass --redis URL",
    )?;
    let redis_dir = dir.join("redis");
    std::fs::create_dir_all(&redis_dir)?;
    let node = start_node(
        |addr| Spec {
            name: "redis".into(),
            program: binary.clone(),
            args: vec![
                "--port".into(),
                addr.port().to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
                "--dir".into(),
                redis_dir.display().to_string(),
            ],
            env: vec![],
            remove_env: vec![],
            dir: redis_dir.clone(),
            cores: Some(process::all_cores()),
        },
        &dir.join("redis.log"),
        Readiness::Tcp,
    )
    .await?;
    let url = format!("redis://{}", node.addr);
    Ok((node.process, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_picked_from_set_cookie_headers() {
        let headers = [
            "hihichat_csrf=abc; Path=/",
            "hihichat_session=s3cr3t; HttpOnly; SameSite=Lax; Path=/; Max-Age=100",
        ];
        assert_eq!(
            session_cookie(headers.into_iter()).as_deref(),
            Some("hihichat_session=s3cr3t")
        );
        assert_eq!(
            session_cookie(["hihichat_session=; Max-Age=0"].into_iter()),
            None
        );
    }

    #[test]
    fn the_bench_config_turns_limits_off_and_isolates_redis_keys() {
        let plain = bench_config(false);
        assert!(plain.contains("rate_limit = \"off\""));
        assert!(!plain.contains("[redis]"));
        let a = bench_config(true);
        let b = bench_config(true);
        assert!(a.contains("accounts = \"redis\""));
        assert_ne!(a, b, "every deployment gets its own key prefix");
    }
}
