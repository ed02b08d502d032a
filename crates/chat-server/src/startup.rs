//! Wiring: connects the stores the settings ask for, builds the services,
//! runs the first-start chores, and serves HTTP until told to stop.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use chat_domain::{
    Bootstrap, HealthCheck, Password, Ports, QaPair, ServiceConfig, Services, SystemClock,
    parse_corpus,
};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::settings::{SettingError, Settings, expose, io_reason, sqlite_path};

/// The bot's built-in bilingual corpus, loaded when the corpus is empty.
pub const DEFAULT_CORPUS: &str = include_str!("../../../config/bot/default.txt");

/// The longest pause between retention sweeps (one also runs at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// How often to sweep: hourly, or a quarter of a short retention age so
/// that a message outlives its age by at most a quarter of it.
fn sweep_every(max_age: Option<Duration>) -> Duration {
    max_age.map_or(RETENTION_EVERY, |age| {
        (age / 4).clamp(Duration::from_secs(1), RETENTION_EVERY)
    })
}
/// The longest pause between presence expiry runs.
const PRESENCE_EVERY: Duration = Duration::from_secs(10);

/// How often stale presence is expired: at most a third of the presence
/// timeout (and at most every 10 s), so a vanished node's users are
/// announced gone within the timeout plus this.
fn expire_every(presence_timeout: Duration) -> Duration {
    (presence_timeout / 3).clamp(Duration::from_millis(100), PRESENCE_EVERY)
}
/// Start-up gives up on a Redis that does not answer within this.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The services over the stores the settings name, and the health checks of
/// those stores.
pub struct Wired {
    /// The domain services.
    pub services: Services,
    /// What `/readyz` asks.
    pub health: Vec<Arc<dyn HealthCheck>>,
    /// The bot corpus port (for `hihichat bot train`).
    pub corpus: Arc<dyn chat_domain::BotCorpus>,
    sqlite: Option<Arc<chat_sqlite::SqliteStore>>,
    redis: Option<Arc<chat_redis::RedisStore>>,
}

impl Wired {
    /// Stores every write still queued and closes the connections.
    pub async fn close(&self) {
        if let Some(s) = &self.sqlite {
            s.close().await;
        }
        if let Some(r) = &self.redis {
            r.close().await;
        }
    }
}

/// Connects the stores named by `settings` (running SQLite migrations),
/// builds the services and creates the first admin on an empty store.
///
/// # Errors
/// A [`SettingError`] (inside the `anyhow::Error`) for an unusable database
/// or an unreachable Redis; store failures.
pub async fn wire(settings: &Settings) -> anyhow::Result<Wired> {
    let clock: Arc<dyn chat_domain::Clock> = Arc::new(SystemClock);
    let mut health: Vec<Arc<dyn HealthCheck>> = Vec::new();

    let sqlite = if settings.accounts_in_redis {
        None
    } else {
        let store = Arc::new(open_sqlite(&settings.database_url).await?);
        health.push(store.clone());
        Some(store)
    };

    let mut redis_store = None;
    let ports = match (&settings.redis_url, sqlite.clone()) {
        (None, Some(sqlite)) => Ports {
            users: sqlite.clone(),
            sessions: sqlite.clone(),
            rooms: sqlite.clone(),
            log: sqlite.clone(),
            events: Arc::new(chat_memory::MemoryBus::new()),
            presence: Arc::new(chat_memory::MemoryPresence::new()),
            corpus: sqlite.clone(),
            audit: sqlite,
            clock,
        },
        (Some(url), sqlite) => {
            let redis = Arc::new(open_redis(url, &settings.redis_key_prefix).await?);
            health.push(redis.clone());
            redis_store = Some(redis.clone());
            match sqlite {
                // The audit trail lives with the accounts it is mostly about.
                Some(sqlite) => Ports {
                    users: sqlite.clone(),
                    sessions: redis.clone(),
                    rooms: redis.clone(),
                    log: redis.clone(),
                    events: redis.clone(),
                    presence: redis,
                    corpus: sqlite.clone(),
                    audit: sqlite,
                    clock,
                },
                None => Ports::single(redis, clock),
            }
        }
        (None, None) => {
            return Err(SettingError::new(
                "redis.accounts",
                "\"redis\" needs a Redis URL (CHAT_REDIS_URL / --redis)",
            )
            .into());
        }
    };

    let services = Services::new(
        &ports,
        ServiceConfig {
            rate_limit: settings.rate_limit,
            retention: settings.retention,
            bot_name: settings.bot_name.clone(),
            bot_greeting: settings.bot_greeting.clone(),
            presence_ttl: settings.presence_timeout,
            hasher: settings.password_hasher.clone(),
            ..ServiceConfig::default()
        },
    );
    bootstrap_admin(&services, settings.admin_password.as_ref()).await?;
    Ok(Wired {
        services,
        health,
        corpus: ports.corpus,
        sqlite,
        redis: redis_store,
    })
}

async fn open_sqlite(url: &str) -> anyhow::Result<chat_sqlite::SqliteStore> {
    let bad = |why: String| SettingError::new("CHAT_DATABASE_URL / --database", why);
    if let Some(path) = sqlite_path(url) {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if dir.exists() && !dir.is_dir() {
                return Err(bad(format!("{} is not a directory", dir.display())).into());
            }
            std::fs::create_dir_all(dir).map_err(|e| {
                bad(format!(
                    "cannot create the directory {}: {}",
                    dir.display(),
                    io_reason(&e)
                ))
            })?;
        }
        // Opening for append creates an empty file SQLite accepts as new, and
        // proves the path writable before the driver's vaguer errors could.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| {
                bad(format!(
                    "cannot write the database {}: {}",
                    path.display(),
                    io_reason(&e)
                ))
            })?;
    }
    chat_sqlite::SqliteStore::connect(url).await.map_err(|e| {
        bad(format!(
            "cannot open {url}: {}",
            one_line(&format!("{e:#}"))
        ))
        .into()
    })
}

async fn open_redis(url: &str, key_prefix: &str) -> anyhow::Result<chat_redis::RedisStore> {
    let bad = |why: String| SettingError::new("CHAT_REDIS_URL / --redis", why);
    let shown = redact_url(url);
    match tokio::time::timeout(
        REDIS_CONNECT_TIMEOUT,
        chat_redis::RedisStore::connect(
            url,
            chat_redis::RedisConfig {
                key_prefix: key_prefix.to_owned(),
                ..chat_redis::RedisConfig::default()
            },
        ),
    )
    .await
    {
        Ok(Ok(store)) => Ok(store),
        // The adapter's message already names the (redacted) URL.
        Ok(Err(e)) => Err(bad(one_line(&format!("{e:#}"))).into()),
        Err(_) => Err(bad(format!(
            "cannot reach Redis at {shown}: no answer within {} s",
            REDIS_CONNECT_TIMEOUT.as_secs()
        ))
        .into()),
    }
}

/// A URL without its password, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn bootstrap_admin(
    services: &Services,
    password: Option<&SecretString>,
) -> anyhow::Result<()> {
    let password = password
        .map(|p| Password::parse(expose(p)))
        .transpose()
        .map_err(|e| SettingError::new("CHAT_ADMIN_PASSWORD", e.why))?;
    match services
        .accounts
        .bootstrap(password)
        .await
        .context("creating the first admin")?
    {
        Bootstrap::AlreadyInitialised => {}
        Bootstrap::AdminCreated { generated: None } => {
            info!(
                "first start: created the user \"admin\" with the password from CHAT_ADMIN_PASSWORD"
            );
        }
        Bootstrap::AdminCreated {
            generated: Some(pw),
        } => {
            // The one place a password is ever shown: the contract asks for
            // the generated first password to be printed once.
            warn!(
                "first start: created the user \"admin\" with the password {} — it is shown only this once; log in and change it",
                pw.expose()
            );
        }
    }
    Ok(())
}

/// Adds the built-in corpus when the bot knows nothing yet.
async fn seed_corpus(corpus: &dyn chat_domain::BotCorpus) -> anyhow::Result<()> {
    if !corpus
        .pairs()
        .await
        .context("reading the bot corpus")?
        .is_empty()
    {
        return Ok(());
    }
    let pairs: Vec<QaPair> =
        parse_corpus(DEFAULT_CORPUS).context("the built-in config/bot/default.txt")?;
    let added = corpus
        .add_pairs(&pairs)
        .await
        .context("loading the bot corpus")?;
    info!(pairs = added, "loaded the built-in bot corpus");
    Ok(())
}

/// The cookie/signing secret: `CHAT_SECRET_KEY`, else the key kept beside the
/// database, else (first start) a new one written there with mode 0600.
fn secret_key(settings: &Settings) -> anyhow::Result<SecretString> {
    if let Some(key) = &settings.secret_key {
        return Ok(key.clone());
    }
    let Some(path) = settings.secret_key_path() else {
        return Ok(generate_key());
    };
    load_or_create_key(&path)
}

fn generate_key() -> SecretString {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let key: String = (0..64)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect();
    SecretString::from(key)
}

fn load_or_create_key(path: &Path) -> anyhow::Result<SecretString> {
    let bad = |why: String| SettingError::new("CHAT_SECRET_KEY", why);
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim();
            if key.chars().count() < crate::settings::MIN_SECRET_KEY_CHARS {
                return Err(bad(format!(
                    "the key in {} is too short; delete it to generate a new one",
                    path.display()
                ))
                .into());
            }
            return Ok(SecretString::from(key.to_owned()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(bad(format!("cannot read {}: {}", path.display(), io_reason(&e))).into());
        }
    }
    let key = generate_key();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            use std::io::Write as _;
            file.write_all(format!("{}\n", expose(&key)).as_bytes())
                .map_err(|e| {
                    bad(format!(
                        "cannot write {}: {}",
                        path.display(),
                        io_reason(&e)
                    ))
                })?;
            info!(path = %path.display(), "generated the secret key");
            Ok(key)
        }
        // Another process sharing the directory wrote it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
        Err(e) => Err(bad(format!(
            "cannot write {}: {}",
            path.display(),
            io_reason(&e)
        ))
        .into()),
    }
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    wired: Wired,
    shutdown: chat_http::Shutdown,
    grace: Duration,
    presence_timeout: Duration,
    secret: SecretString,
}

impl Application {
    /// Connects the stores, runs migrations, creates the first admin, loads
    /// the bot corpus, and binds the listener.
    ///
    /// # Errors
    /// A [`SettingError`] (inside the `anyhow::Error`) naming the setting for
    /// an unusable database, an unreachable Redis or an unbindable address;
    /// store failures.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let wired = wire(&settings).await?;
        seed_corpus(wired.corpus.as_ref()).await?;
        let secret = secret_key(&settings)?;

        let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
            SettingError::new(
                "CHAT_LISTEN / --listen",
                format!("cannot listen on {}: {}", settings.listen, io_reason(&e)),
            )
        })?;
        let local_addr = listener.local_addr().context("reading the bound address")?;

        let shutdown = chat_http::Shutdown::new();
        let config = chat_http::HttpConfig {
            allowed_origins: settings.allowed_origins.clone(),
            secure_cookies: settings.secure_cookies,
            ..chat_http::HttpConfig::default()
        }
        .for_presence_ttl(settings.presence_timeout);
        let state = chat_http::AppState::new(
            &wired.services,
            wired.health.clone(),
            config,
            shutdown.clone(),
        );
        let router = chat_http::router(state, chat_admin::router());
        info!(%local_addr, "listening");
        Ok(Application {
            listener,
            local_addr,
            router,
            wired,
            shutdown,
            grace: settings.shutdown_grace,
            presence_timeout: settings.presence_timeout,
            secret,
        })
    }

    /// The bound port (useful when the settings asked for port 0).
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The cookie/signing secret in use (from `CHAT_SECRET_KEY` or the key
    /// file). Session ids are random and the CSRF check is double-submit, so
    /// nothing signs with it yet; it is settled at start-up so that anything
    /// that will gets the same key on every node and after every restart.
    pub fn secret_key(&self) -> &SecretString {
        &self.secret
    }

    /// The services this server runs on (tests use them to arrange data).
    pub fn services(&self) -> &Services {
        &self.wired.services
    }

    /// Serves until `shutdown` completes, then closes WebSockets with a close
    /// frame, lets in-flight requests finish (bounded by the grace period)
    /// and stops the background tasks.
    ///
    /// # Errors
    /// The server failing to accept connections.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            router,
            wired,
            shutdown: stop,
            grace,
            presence_timeout,
            ..
        } = self;
        let tasks = spawn_background(&wired.services, &stop, expire_every(presence_timeout));

        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let trigger = stop.clone();
        // TCP_NODELAY: chat frames are small and each should leave at once.
        // With Nagle's algorithm a frame written while the previous one is
        // unacknowledged waits for the peer's delayed ACK (up to 40 ms on
        // Linux); the writer already coalesces queued frames into one write.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            info!("shutting down");
            trigger.trigger();
            let _ = stopping_tx.send(());
        });

        // After the signal, in-flight HTTP requests get `grace` to finish;
        // a client holding a request open cannot keep the process alive.
        let overdue = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = server => served.context("serving HTTP")?,
            () = overdue => warn!("requests still open after the grace period; closing them"),
        }
        // The server can also end without the signal (an accept error path);
        // make sure sockets are told either way.
        stop.trigger();
        if tokio::time::timeout(grace, stop.drained()).await.is_err() {
            warn!("WebSockets still open after the grace period; closing them");
        }
        for task in tasks {
            task.abort();
        }
        // Sockets are closed, so no send is in flight: whatever was queued
        // for the database is written before the process exits.
        wired.close().await;
        info!("stopped");
        Ok(())
    }
}

fn spawn_background(
    services: &Services,
    stop: &chat_http::Shutdown,
    expire_every: Duration,
) -> Vec<JoinHandle<()>> {
    let retention = services.retention.clone();
    let chat = services.chat.clone();
    let (stop_a, stop_b) = (stop.clone(), stop.clone());
    vec![
        tokio::spawn(async move {
            let mut every = tokio::time::interval(sweep_every(retention.max_age()));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop_a.triggered() => break,
                    _ = every.tick() => match retention.sweep().await {
                        Ok(0) => {}
                        Ok(n) => info!(deleted = n, "retention sweep"),
                        Err(e) => warn!(error = %e, "retention sweep failed"),
                    },
                }
            }
        }),
        tokio::spawn(async move {
            let mut every = tokio::time::interval(expire_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop_b.triggered() => break,
                    _ = every.tick() => {
                        if let Err(e) = chat.expire_presence().await {
                            warn!(error = %e, "presence expiry failed");
                        }
                    }
                }
            }
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_retention_ages_are_swept_often_and_long_ones_hourly() {
        let secs = Duration::from_secs;
        assert_eq!(sweep_every(None), secs(3600));
        assert_eq!(sweep_every(Some(secs(7 * 86_400))), secs(3600));
        assert_eq!(sweep_every(Some(secs(60))), secs(15));
        assert_eq!(sweep_every(Some(secs(2))), secs(1));
    }

    #[test]
    fn presence_is_expired_at_least_three_times_per_timeout() {
        let secs = Duration::from_secs;
        assert_eq!(expire_every(secs(60)), secs(10));
        assert_eq!(expire_every(secs(3)), secs(1));
        assert_eq!(expire_every(secs(15)), secs(5));
        assert_eq!(expire_every(secs(3600)), secs(10));
    }

    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(
            redact_url("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
