//! Settings: the built-in defaults, `config/*.toml`, `CHAT_*` variables and
//! command-line flags, layered in that order and parsed into [`Settings`].
//!
//! Loading is a pure function ([`Settings::from_sources`]) over the flags,
//! an environment map and the texts of the config files, so the layering is
//! testable without touching the process environment. Every refusal is one
//! [`SettingError`] line naming the setting and where its bad value came from.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_domain::{DEFAULT_BOT_GREETING, DEFAULT_BOT_NAME, Password, PasswordHasher, RateLimit};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The built-in `config/default.toml`, so the binary works from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// The built-in environment files, used when `config/$CHAT_ENV.toml` is not
/// in the working directory.
const BUILTIN_ENVS: [(&str, &str); 3] = [
    (
        "development",
        include_str!("../../../config/development.toml"),
    ),
    (
        "production",
        include_str!("../../../config/production.toml"),
    ),
    ("testing", include_str!("../../../config/testing.toml")),
];

/// The default `[redis] key_prefix`.
pub const DEFAULT_REDIS_PREFIX: &str = "hihichat:";

/// The shortest accepted `CHAT_SECRET_KEY`, in characters.
pub const MIN_SECRET_KEY_CHARS: usize = 32;

/// The shortest accepted `presence_timeout`: heartbeats go out every third
/// of it, and a beat shorter than a second would only add load.
pub const MIN_PRESENCE_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest accepted `[bot] greeting`, in characters (a message's limit).
pub const MAX_GREETING_CHARS: usize = 4000;

/// Everything the server needs to start, parsed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The SQLite database URL, e.g. `sqlite://data/hihichat.db`.
    pub database_url: String,
    /// Redis for multi-node mode; `None` runs on one node.
    pub redis_url: Option<String>,
    /// Users, sessions and the bot corpus live in Redis too (`[redis] accounts = "redis"`).
    pub accounts_in_redis: bool,
    /// Put before every Redis key, so installations can share one Redis.
    pub redis_key_prefix: String,
    /// The first admin's password; `None` generates one and logs it once.
    pub admin_password: Option<SecretString>,
    /// The cookie/signing secret; `None` generates one kept beside the database.
    pub secret_key: Option<SecretString>,
    /// Messages per user per room; `None` is off.
    pub rate_limit: Option<RateLimit>,
    /// Delete messages older than this; `None` keeps everything.
    pub retention: Option<Duration>,
    /// Origins besides the server's own that may open `/ws`.
    pub allowed_origins: Vec<String>,
    /// Whether cookies carry `Secure`.
    pub secure_cookies: bool,
    /// The guests' bot's display name.
    pub bot_name: String,
    /// What the bot says privately to a guest who opens a public room;
    /// empty: nothing.
    pub bot_greeting: String,
    /// How long a user stays online without a heartbeat: a connection that
    /// stops answering is dropped after about this long, and the users of a
    /// node that dies go offline within this plus the expiry period.
    pub presence_timeout: Duration,
    /// Password hashing cost.
    pub password_hasher: PasswordHasher,
    /// How long shutdown waits for connections to drain.
    pub shutdown_grace: Duration,
}

impl Settings {
    /// Settings for a throwaway server in tests: `127.0.0.1:0`, an SQLite file
    /// in `data_dir`, admin password `admin-password`, cheap argon2, the
    /// contract's default rate limit and retention, and a generated secret
    /// key written to `data_dir/secret.key`.
    pub fn for_tests(data_dir: &Path) -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: sqlite_url_for_path(&data_dir.join("hihichat.db")),
            redis_url: None,
            accounts_in_redis: false,
            redis_key_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            admin_password: Some(SecretString::from("admin-password".to_owned())),
            secret_key: None,
            rate_limit: Some(RateLimit::DEFAULT),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            allowed_origins: Vec::new(),
            secure_cookies: false,
            bot_name: DEFAULT_BOT_NAME.to_owned(),
            bot_greeting: DEFAULT_BOT_GREETING.to_owned(),
            presence_timeout: chat_domain::PRESENCE_TTL,
            password_hasher: PasswordHasher::with_params(1024, 1, 1),
            shutdown_grace: Duration::from_secs(5),
        }
    }

    /// Loads settings for this process: the built-in defaults, the config
    /// files found from the working directory, the process environment and
    /// `flags`.
    ///
    /// # Errors
    /// A [`SettingError`] naming the first bad setting.
    pub fn load(flags: &Flags) -> Result<Settings, SettingError> {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CHAT_"))
            .collect();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let files = config_files(&cwd, &env, flags)?;
        Settings::from_sources(flags, &env, &files)
    }

    /// Layers `files` (in order, later wins), then `env`, then `flags`, and
    /// parses the result. The built-in defaults always come first.
    ///
    /// # Errors
    /// A [`SettingError`] naming the first bad setting.
    pub fn from_sources(
        flags: &Flags,
        env: &HashMap<String, String>,
        files: &[ConfigText],
    ) -> Result<Settings, SettingError> {
        let mut raw = RawSettings::default();
        raw.apply_file(&ConfigText {
            origin: "the built-in config/default.toml".to_owned(),
            text: DEFAULT_TOML.to_owned(),
        })?;
        for file in files {
            raw.apply_file(file)?;
        }
        raw.apply_env(env);
        raw.apply_flags(flags);
        raw.parse()
    }

    /// Where the generated secret key is kept: `secret.key` beside the
    /// database file; `None` for an in-memory database.
    pub fn secret_key_path(&self) -> Option<PathBuf> {
        sqlite_path(&self.database_url).map(|db| {
            db.parent()
                .map_or_else(|| PathBuf::from("secret.key"), |d| d.join("secret.key"))
        })
    }
}

/// The SQLite URL for a database file path.
pub fn sqlite_url_for_path(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The file behind an SQLite URL; `None` for `:memory:` databases.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// The flags that override settings (`hihichat serve --listen …`); plain
/// strings so that they are parsed, and refused, like every other source.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--database`.
    pub database: Option<String>,
    /// `--redis`.
    pub redis: Option<String>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--rate-limit`.
    pub rate_limit: Option<String>,
    /// `--retention`.
    pub retention: Option<String>,
    /// `--presence-timeout`.
    pub presence_timeout: Option<String>,
}

/// The text of one config file and where it came from (for messages).
#[derive(Debug, Clone)]
pub struct ConfigText {
    /// Shown in errors, e.g. the path.
    pub origin: String,
    /// TOML.
    pub text: String,
}

/// The config files to layer over the built-in defaults, found from `cwd`:
/// `config/default.toml` if present, `config/$CHAT_ENV.toml` (or the built-in
/// copy of a known environment), then the `--config` / `CHAT_CONFIG` file.
///
/// # Errors
/// An unknown `CHAT_ENV` with no file, or an unreadable config file.
pub fn config_files(
    cwd: &Path,
    env: &HashMap<String, String>,
    flags: &Flags,
) -> Result<Vec<ConfigText>, SettingError> {
    let mut files = Vec::new();
    let default = cwd.join("config").join("default.toml");
    if let Some(text) = read_optional(&default, "config/default.toml")? {
        files.push(ConfigText {
            origin: default.display().to_string(),
            text,
        });
    }
    if let Some(name) = env
        .get("CHAT_ENV")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        let bad = |why: String| SettingError::new("CHAT_ENV", why);
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(format!("{name:?} is not an environment name")));
        }
        let path = cwd.join("config").join(format!("{name}.toml"));
        match read_optional(&path, "CHAT_ENV")? {
            Some(text) => files.push(ConfigText {
                origin: path.display().to_string(),
                text,
            }),
            None => match BUILTIN_ENVS.iter().find(|(n, _)| *n == name) {
                Some((n, text)) => files.push(ConfigText {
                    origin: format!("the built-in config/{n}.toml"),
                    text: (*text).to_owned(),
                }),
                None => {
                    return Err(bad(format!(
                        "{name:?}: there is no config/{name}.toml (built in: development, production, testing)"
                    )));
                }
            },
        }
    }
    let (explicit, label) = match (&flags.config, env.get("CHAT_CONFIG")) {
        (Some(p), _) => (Some(p.clone()), "--config"),
        (None, Some(p)) if !p.is_empty() => (Some(PathBuf::from(p)), "CHAT_CONFIG"),
        _ => (None, ""),
    };
    if let Some(path) = explicit {
        let path = if path.is_absolute() {
            path
        } else {
            cwd.join(path)
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            SettingError::new(
                "CHAT_CONFIG / --config",
                format!(
                    "cannot read {} ({label}): {}",
                    path.display(),
                    io_reason(&e)
                ),
            )
        })?;
        files.push(ConfigText {
            origin: path.display().to_string(),
            text,
        });
    }
    Ok(files)
}

fn read_optional(path: &Path, setting: &str) -> Result<Option<String>, SettingError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SettingError::new(
            setting,
            format!("cannot read {}: {}", path.display(), io_reason(&e)),
        )),
    }
}

/// An I/O error's reason without the "(os error N)" noise.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// A refused setting: which one, and why, as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    /// How the user names the setting, e.g. `CHAT_LISTEN / --listen`.
    pub setting: String,
    /// What is wrong with the value.
    pub message: String,
}

impl SettingError {
    /// A refusal of `setting` because of `message`.
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: one_line(&message.into()),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where a value came from, so an error can point at it.
#[derive(Debug, Clone)]
enum Source {
    File(String),
    Env,
    Flag,
}

/// One setting's names in each layer.
struct Key {
    file: &'static str,
    env: Option<&'static str>,
    flag: Option<&'static str>,
}

const LISTEN: Key = Key {
    file: "listen",
    env: Some("CHAT_LISTEN"),
    flag: Some("--listen"),
};
const DATABASE: Key = Key {
    file: "database_url",
    env: Some("CHAT_DATABASE_URL"),
    flag: Some("--database"),
};
const REDIS: Key = Key {
    file: "redis.url",
    env: Some("CHAT_REDIS_URL"),
    flag: Some("--redis"),
};
const REDIS_ACCOUNTS: Key = Key {
    file: "redis.accounts",
    env: Some("CHAT_REDIS_ACCOUNTS"),
    flag: None,
};
const REDIS_PREFIX: Key = Key {
    file: "redis.key_prefix",
    env: Some("CHAT_REDIS_PREFIX"),
    flag: None,
};
const RATE_LIMIT: Key = Key {
    file: "rate_limit",
    env: Some("CHAT_RATE_LIMIT"),
    flag: Some("--rate-limit"),
};
const RETENTION: Key = Key {
    file: "retention",
    env: Some("CHAT_RETENTION"),
    flag: Some("--retention"),
};
const ORIGINS: Key = Key {
    file: "allowed_origins",
    env: Some("CHAT_ALLOWED_ORIGINS"),
    flag: None,
};
const SECURE_COOKIES: Key = Key {
    file: "secure_cookies",
    env: Some("CHAT_SECURE_COOKIES"),
    flag: None,
};
const BOT_NAME: Key = Key {
    file: "bot.name",
    env: Some("CHAT_BOT_NAME"),
    flag: None,
};
const BOT_GREETING: Key = Key {
    file: "bot.greeting",
    env: Some("CHAT_BOT_GREETING"),
    flag: None,
};
const PRESENCE_TIMEOUT: Key = Key {
    file: "presence_timeout",
    env: Some("CHAT_PRESENCE_TIMEOUT"),
    flag: Some("--presence-timeout"),
};
const SHUTDOWN_GRACE: Key = Key {
    file: "shutdown_grace",
    env: Some("CHAT_SHUTDOWN_GRACE"),
    flag: None,
};
const ARGON2_MEMORY: Key = Key {
    file: "argon2.memory_kib",
    env: None,
    flag: None,
};
const ARGON2_ITERATIONS: Key = Key {
    file: "argon2.iterations",
    env: None,
    flag: None,
};
const ARGON2_LANES: Key = Key {
    file: "argon2.lanes",
    env: None,
    flag: None,
};

impl Key {
    /// How an error names this setting, given where its value came from.
    fn label(&self, source: &Source) -> String {
        let outside: Vec<&str> = self.env.iter().chain(self.flag.iter()).copied().collect();
        match source {
            Source::File(origin) => format!("{} in {origin}", self.file),
            Source::Env | Source::Flag if !outside.is_empty() => outside.join(" / "),
            Source::Env | Source::Flag => self.file.to_owned(),
        }
    }

    fn error(&self, source: &Source, message: impl Into<String>) -> SettingError {
        SettingError::new(self.label(source), message)
    }
}

/// A value not yet parsed, and where it came from.
#[derive(Debug, Clone)]
struct Raw<T> {
    value: T,
    source: Source,
}

type Slot<T> = Option<Raw<T>>;

fn set<T>(slot: &mut Slot<T>, value: Option<T>, source: &Source) {
    if let Some(value) = value {
        *slot = Some(Raw {
            value,
            source: source.clone(),
        });
    }
}

#[derive(Default)]
struct RawSettings {
    listen: Slot<String>,
    database: Slot<String>,
    redis: Slot<String>,
    redis_accounts: Slot<String>,
    redis_prefix: Slot<String>,
    rate_limit: Slot<String>,
    retention: Slot<String>,
    origins: Slot<Vec<String>>,
    secure_cookies: Slot<String>,
    bot_name: Slot<String>,
    bot_greeting: Slot<String>,
    presence_timeout: Slot<String>,
    shutdown_grace: Slot<String>,
    argon2_memory: Slot<i64>,
    argon2_iterations: Slot<i64>,
    argon2_lanes: Slot<i64>,
    admin_password: Option<String>,
    secret_key: Option<String>,
}

/// A TOML scalar as text, so `retention = 0` and `retention = "0"` both
/// work; tables and arrays are refused with the key's name.
fn scalar_text(
    value: Option<toml::Value>,
    key: &Key,
    origin: &str,
) -> Result<Option<String>, SettingError> {
    match value {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(toml::Value::Integer(n)) => Ok(Some(n.to_string())),
        Some(toml::Value::Boolean(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(key.error(
            &Source::File(origin.to_owned()),
            format!("expected a string or a number, found {}", other.type_str()),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLayer {
    listen: Option<String>,
    database_url: Option<String>,
    rate_limit: Option<String>,
    retention: Option<toml::Value>,
    allowed_origins: Option<Vec<String>>,
    secure_cookies: Option<toml::Value>,
    /// The older spelling of `[bot] name`, still read.
    bot_name: Option<String>,
    presence_timeout: Option<toml::Value>,
    shutdown_grace: Option<toml::Value>,
    bot: Option<BotLayer>,
    redis: Option<RedisLayer>,
    argon2: Option<Argon2Layer>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BotLayer {
    name: Option<String>,
    greeting: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedisLayer {
    url: Option<String>,
    accounts: Option<String>,
    key_prefix: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Argon2Layer {
    memory_kib: Option<i64>,
    iterations: Option<i64>,
    lanes: Option<i64>,
}

impl RawSettings {
    fn apply_file(&mut self, file: &ConfigText) -> Result<(), SettingError> {
        let layer: FileLayer = toml::from_str(&file.text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let line = file.text[..span.start.min(file.text.len())]
                        .matches('\n')
                        .count()
                        + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            SettingError::new(
                format!("config file {}", file.origin),
                format!("{}{at}", e.message()),
            )
        })?;
        let src = Source::File(file.origin.clone());
        set(&mut self.listen, layer.listen, &src);
        set(&mut self.database, layer.database_url, &src);
        set(&mut self.rate_limit, layer.rate_limit, &src);
        let origin = file.origin.as_str();
        set(
            &mut self.retention,
            scalar_text(layer.retention, &RETENTION, origin)?,
            &src,
        );
        set(&mut self.origins, layer.allowed_origins, &src);
        set(
            &mut self.secure_cookies,
            scalar_text(layer.secure_cookies, &SECURE_COOKIES, origin)?,
            &src,
        );
        set(&mut self.bot_name, layer.bot_name, &src);
        let bot = layer.bot.unwrap_or_default();
        set(&mut self.bot_name, bot.name, &src);
        set(&mut self.bot_greeting, bot.greeting, &src);
        set(
            &mut self.presence_timeout,
            scalar_text(layer.presence_timeout, &PRESENCE_TIMEOUT, origin)?,
            &src,
        );
        set(
            &mut self.shutdown_grace,
            scalar_text(layer.shutdown_grace, &SHUTDOWN_GRACE, origin)?,
            &src,
        );
        let redis = layer.redis.unwrap_or_default();
        set(&mut self.redis, redis.url, &src);
        set(&mut self.redis_accounts, redis.accounts, &src);
        set(&mut self.redis_prefix, redis.key_prefix, &src);
        let argon2 = layer.argon2.unwrap_or_default();
        set(&mut self.argon2_memory, argon2.memory_kib, &src);
        set(&mut self.argon2_iterations, argon2.iterations, &src);
        set(&mut self.argon2_lanes, argon2.lanes, &src);
        Ok(())
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) {
        let get = |k: &Key| k.env.and_then(|name| env.get(name)).cloned();
        let src = Source::Env;
        set(&mut self.listen, get(&LISTEN), &src);
        set(&mut self.database, get(&DATABASE), &src);
        set(&mut self.redis, get(&REDIS), &src);
        set(&mut self.redis_accounts, get(&REDIS_ACCOUNTS), &src);
        set(&mut self.redis_prefix, get(&REDIS_PREFIX), &src);
        set(&mut self.rate_limit, get(&RATE_LIMIT), &src);
        set(&mut self.retention, get(&RETENTION), &src);
        set(
            &mut self.origins,
            get(&ORIGINS).map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            &src,
        );
        set(&mut self.secure_cookies, get(&SECURE_COOKIES), &src);
        set(&mut self.bot_name, get(&BOT_NAME), &src);
        set(&mut self.bot_greeting, get(&BOT_GREETING), &src);
        set(&mut self.presence_timeout, get(&PRESENCE_TIMEOUT), &src);
        set(&mut self.shutdown_grace, get(&SHUTDOWN_GRACE), &src);
        self.admin_password = env.get("CHAT_ADMIN_PASSWORD").cloned();
        self.secret_key = env.get("CHAT_SECRET_KEY").cloned();
    }

    fn apply_flags(&mut self, flags: &Flags) {
        let src = Source::Flag;
        set(&mut self.listen, flags.listen.clone(), &src);
        set(&mut self.database, flags.database.clone(), &src);
        set(&mut self.redis, flags.redis.clone(), &src);
        set(&mut self.rate_limit, flags.rate_limit.clone(), &src);
        set(&mut self.retention, flags.retention.clone(), &src);
        set(
            &mut self.presence_timeout,
            flags.presence_timeout.clone(),
            &src,
        );
    }

    fn parse(self) -> Result<Settings, SettingError> {
        let listen = required(self.listen, &LISTEN, |v| {
            v.trim()
                .parse::<SocketAddr>()
                .map_err(|_| format!("{v:?} is not a socket address (like 127.0.0.1:8080)"))
        })?;
        let database_url = required(self.database, &DATABASE, |v| parse_database_url(&v))?;
        let redis_url = optional(self.redis, &REDIS, |v| parse_redis_url(&v))?.flatten();
        let accounts_in_redis = match &self.redis_accounts {
            None => false,
            Some(raw) => match raw.value.trim() {
                "redis" => true,
                "sqlite" => false,
                other => {
                    return Err(REDIS_ACCOUNTS.error(
                        &raw.source,
                        format!("{other:?} must be \"redis\" or \"sqlite\""),
                    ));
                }
            },
        };
        if accounts_in_redis && redis_url.is_none() {
            let source = self
                .redis_accounts
                .as_ref()
                .map_or(Source::Env, |r| r.source.clone());
            return Err(REDIS_ACCOUNTS.error(
                &source,
                "\"redis\" needs a Redis URL (CHAT_REDIS_URL / --redis)",
            ));
        }
        let redis_key_prefix = optional(self.redis_prefix, &REDIS_PREFIX, |v| {
            if v.is_empty()
                || v.len() > 64
                || v.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                Err(format!("{v:?} must be 1 to 64 characters without spaces"))
            } else {
                Ok(v)
            }
        })?
        .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.to_owned());
        let rate_limit = required(self.rate_limit, &RATE_LIMIT, |v| {
            RateLimit::parse(&v).map_err(|_| {
                format!("{v:?} is not a rate limit (like 10/s,burst=20, 30/m, or off)")
            })
        })?;
        let retention = required(self.retention, &RETENTION, |v| {
            parse_age(&v).map_err(|why| format!("{v:?} {why}"))
        })?;
        let allowed_origins = match self.origins {
            None => Vec::new(),
            Some(raw) => {
                for origin in &raw.value {
                    check_origin(origin).map_err(|why| ORIGINS.error(&raw.source, why))?;
                }
                raw.value
                    .into_iter()
                    .map(|o| o.trim_end_matches('/').to_owned())
                    .collect()
            }
        };
        let secure_cookies = optional(self.secure_cookies, &SECURE_COOKIES, |v| {
            parse_bool(&v).ok_or_else(|| format!("{v:?} must be true or false"))
        })?
        .unwrap_or(false);
        let bot_name = optional(self.bot_name, &BOT_NAME, |v| {
            let v = v.trim().to_owned();
            if v.is_empty() || v.chars().count() > 32 || v.chars().any(char::is_control) {
                Err(format!("{v:?} must be 1 to 32 printable characters"))
            } else {
                Ok(v)
            }
        })?
        .unwrap_or_else(|| DEFAULT_BOT_NAME.to_owned());
        let bot_greeting = optional(self.bot_greeting, &BOT_GREETING, |v| {
            let v = v.trim().to_owned();
            if v.chars().count() > MAX_GREETING_CHARS {
                Err(format!("is longer than {MAX_GREETING_CHARS} characters"))
            } else if v.chars().any(|c| c.is_control() && c != '\n') {
                Err("must be printable text (line breaks are fine)".to_owned())
            } else {
                Ok(v)
            }
        })?
        .unwrap_or_else(|| DEFAULT_BOT_GREETING.to_owned());
        let presence_timeout = optional(self.presence_timeout, &PRESENCE_TIMEOUT, |v| {
            let age = parse_age(&v)
                .map_err(|_| format!("{v:?} is not a duration (like 15s, 60s or 2m)"))?;
            match age {
                Some(d) if d >= MIN_PRESENCE_TIMEOUT => Ok(d),
                _ => Err(format!(
                    "{v:?} is too short: it must be at least {}s",
                    MIN_PRESENCE_TIMEOUT.as_secs()
                )),
            }
        })?
        .unwrap_or(chat_domain::PRESENCE_TTL);
        let shutdown_grace = optional(self.shutdown_grace, &SHUTDOWN_GRACE, |v| {
            parse_age(&v)
                .map_err(|why| format!("{v:?} {why}"))
                .map(|d| d.unwrap_or(Duration::ZERO))
        })?
        .unwrap_or(Duration::from_secs(10));
        let password_hasher = parse_argon2(
            self.argon2_memory,
            self.argon2_iterations,
            self.argon2_lanes,
        )?;
        let admin_password = match self.admin_password {
            None => None,
            Some(p) if p.is_empty() => None,
            Some(p) => {
                Password::parse(&p).map_err(|e| SettingError::new("CHAT_ADMIN_PASSWORD", e.why))?;
                Some(SecretString::from(p))
            }
        };
        let secret_key = match self.secret_key {
            None => None,
            Some(k) if k.is_empty() => None,
            Some(k) => {
                if k.trim().chars().count() < MIN_SECRET_KEY_CHARS {
                    return Err(SettingError::new(
                        "CHAT_SECRET_KEY",
                        format!("must be at least {MIN_SECRET_KEY_CHARS} characters"),
                    ));
                }
                Some(SecretString::from(k.trim().to_owned()))
            }
        };
        Ok(Settings {
            listen,
            database_url,
            redis_url,
            accounts_in_redis,
            redis_key_prefix,
            admin_password,
            secret_key,
            rate_limit,
            retention,
            allowed_origins,
            secure_cookies,
            bot_name,
            bot_greeting,
            presence_timeout,
            password_hasher,
            shutdown_grace,
        })
    }
}

fn required<T, U>(
    slot: Slot<T>,
    key: &Key,
    parse: impl FnOnce(T) -> Result<U, String>,
) -> Result<U, SettingError> {
    // The built-in default.toml sets every required key, so only a broken
    // build could get here without a value.
    let raw = slot.ok_or_else(|| SettingError::new(key.file, "is not set"))?;
    parse(raw.value).map_err(|why| key.error(&raw.source, why))
}

fn optional<T, U>(
    slot: Slot<T>,
    key: &Key,
    parse: impl FnOnce(T) -> Result<U, String>,
) -> Result<Option<U>, SettingError> {
    slot.map(|raw| parse(raw.value).map_err(|why| key.error(&raw.source, why)))
        .transpose()
}

fn parse_database_url(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() {
        return Err("is empty; expected like sqlite://data/hihichat.db".to_owned());
    }
    if v.starts_with("sqlite:") {
        return Ok(v.to_owned());
    }
    if v.contains("://") {
        return Err(format!(
            "{v:?} is not an SQLite URL (like sqlite://data/hihichat.db)"
        ));
    }
    // A bare path is taken as the database file.
    Ok(sqlite_url_for_path(Path::new(v)))
}

fn parse_redis_url(v: &str) -> Result<Option<String>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let rest = ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .find_map(|p| v.strip_prefix(p));
    match rest {
        Some(r) if !r.is_empty() => Ok(Some(v.to_owned())),
        _ => Err(format!(
            "{v:?} is not a Redis URL (like redis://127.0.0.1:6379)"
        )),
    }
}

/// Parses an age such as `30s`, `15m`, `12h` or `7d`; `0` means "none".
///
/// # Errors
/// Why the text is not an age.
pub fn parse_age(v: &str) -> Result<Option<Duration>, &'static str> {
    const WHY: &str = "is not an age (like 30s, 15m, 12h, 7d, or 0 to keep everything)";
    let v = v.trim();
    if v == "0" {
        return Ok(None);
    }
    let split = v.find(|c: char| !c.is_ascii_digit()).ok_or(WHY)?;
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().map_err(|_| WHY)?;
    let unit_secs: u64 = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(WHY),
    };
    let secs = n.checked_mul(unit_secs).ok_or("is too long")?;
    if secs > 100 * 365 * 86_400 {
        return Err("is too long (at most 100 years)");
    }
    Ok((secs > 0).then(|| Duration::from_secs(secs)))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn check_origin(origin: &str) -> Result<(), String> {
    let ok = ["http://", "https://"].iter().any(|p| {
        origin
            .strip_prefix(p)
            .is_some_and(|h| !h.is_empty() && !h.contains(char::is_whitespace))
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{origin:?} is not an origin (like https://chat.example.com)"
        ))
    }
}

fn parse_argon2(
    memory: Slot<i64>,
    iterations: Slot<i64>,
    lanes: Slot<i64>,
) -> Result<PasswordHasher, SettingError> {
    let check = |slot: Slot<i64>, key: &Key, default: u32, min: i64, max: i64| {
        optional(slot, key, |v| {
            if (min..=max).contains(&v) {
                u32::try_from(v).map_err(|_| format!("{v} is out of range"))
            } else {
                Err(format!("{v} must be between {min} and {max}"))
            }
        })
        .map(|v| v.unwrap_or(default))
    };
    let lanes_source = lanes.as_ref().map(|r| r.source.clone());
    let p = check(lanes, &ARGON2_LANES, 1, 1, 64)?;
    let t = check(iterations, &ARGON2_ITERATIONS, 2, 1, 100)?;
    let m = check(memory, &ARGON2_MEMORY, 19_456, 8, 4 * 1024 * 1024)?;
    if m < 8 * p {
        return Err(ARGON2_MEMORY.error(
            &lanes_source.unwrap_or(Source::Env),
            format!("{m} KiB is less than 8 KiB per lane"),
        ));
    }
    Ok(PasswordHasher::with_params(m, t, p))
}

/// Shows a secret only where it must be used (comparing, writing the key file).
pub(crate) fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

impl fmt::Display for Settings {
    /// A one-line summary for the start-up log, without secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "listen={} database={} redis={} accounts={} rate_limit={} retention={} presence_timeout={}s",
            self.listen,
            self.database_url,
            self.redis_url
                .as_deref()
                .map_or_else(|| "none".to_owned(), crate::startup::redact_url),
            if self.accounts_in_redis {
                "redis"
            } else {
                "sqlite"
            },
            match self.rate_limit {
                Some(r) => format!("{}/s,burst={}", r.per_second, r.burst),
                None => "off".to_owned(),
            },
            match self.retention {
                Some(d) => format!("{}s", d.as_secs()),
                None => "forever".to_owned(),
            },
            self.presence_timeout.as_secs(),
        )
    }
}
