//! Settings layering (flag > env > file > built-in default) and the
//! one-line refusal of every bad value, through the pure loader.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_domain::RateLimit;
use chat_server::settings::{config_files, parse_age};
use chat_server::{ConfigText, Flags, Settings};
use secrecy::ExposeSecret;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn file(text: &str) -> ConfigText {
    ConfigText {
        origin: "test.toml".to_owned(),
        text: text.to_owned(),
    }
}

fn load(flags: &Flags, env_: &[(&str, &str)], files: &[ConfigText]) -> Settings {
    Settings::from_sources(flags, &env(env_), files).unwrap()
}

fn refusal(flags: &Flags, env_: &[(&str, &str)], files: &[ConfigText]) -> String {
    Settings::from_sources(flags, &env(env_), files)
        .unwrap_err()
        .to_string()
}

#[test]
fn with_nothing_given_the_contract_defaults_apply() {
    let s = load(&Flags::default(), &[], &[]);
    assert_eq!(s.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(s.database_url, "sqlite://data/hihichat.db");
    assert_eq!(s.redis_url, None);
    assert!(!s.accounts_in_redis);
    assert_eq!(s.rate_limit, Some(RateLimit::DEFAULT));
    assert_eq!(s.retention, Some(Duration::from_secs(7 * 86_400)));
    assert!(s.admin_password.is_none() && s.secret_key.is_none());
    assert_eq!(s.bot_name, "小黄鸭");
    assert_eq!(s.bot_greeting, chat_domain::DEFAULT_BOT_GREETING);
    assert_eq!(s.presence_timeout, Duration::from_secs(60));
    assert_eq!(
        s.secret_key_path(),
        Some(PathBuf::from("data").join("secret.key"))
    );
}

#[test]
fn a_flag_beats_the_environment_which_beats_files_which_beat_defaults() {
    let f1 = file("listen = \"127.0.0.1:1001\"\nretention = \"12h\"\nrate_limit = \"5/s\"\n");
    let f2 = file("listen = \"127.0.0.1:1002\"\n");
    let files = [f1, f2];

    let s = load(&Flags::default(), &[], &files);
    assert_eq!(s.listen.port(), 1002, "a later file beats an earlier one");
    assert_eq!(s.retention, Some(Duration::from_secs(12 * 3600)));
    assert_eq!(
        s.rate_limit,
        Some(RateLimit {
            per_second: 5.0,
            burst: 5
        })
    );

    let e = [
        ("CHAT_LISTEN", "127.0.0.1:2000"),
        ("CHAT_RETENTION", "0"),
        ("CHAT_RATE_LIMIT", "off"),
    ];
    let s = load(&Flags::default(), &e, &files);
    assert_eq!(s.listen.port(), 2000, "env beats files");
    assert_eq!(s.retention, None, "0 keeps everything");
    assert_eq!(s.rate_limit, None, "off disables");

    let flags = Flags {
        listen: Some("127.0.0.1:3000".into()),
        retention: Some("30s".into()),
        rate_limit: Some("60/m,burst=3".into()),
        database: Some("sqlite:///tmp/x.db".into()),
        redis: Some("redis://127.0.0.1:6390".into()),
        config: None,
        presence_timeout: Some("5s".into()),
    };
    let s = load(
        &flags,
        &[
            ("CHAT_LISTEN", "127.0.0.1:2000"),
            ("CHAT_DATABASE_URL", "sqlite://env.db"),
            ("CHAT_REDIS_URL", "redis://127.0.0.1:6391"),
            ("CHAT_PRESENCE_TIMEOUT", "10s"),
        ],
        &files,
    );
    assert_eq!(s.listen.port(), 3000, "flags beat env");
    assert_eq!(s.presence_timeout, Duration::from_secs(5));
    assert_eq!(s.retention, Some(Duration::from_secs(30)));
    assert_eq!(
        s.rate_limit,
        Some(RateLimit {
            per_second: 1.0,
            burst: 3
        })
    );
    assert_eq!(s.database_url, "sqlite:///tmp/x.db");
    assert_eq!(s.redis_url.as_deref(), Some("redis://127.0.0.1:6390"));
}

#[test]
fn every_other_setting_is_read_from_files_and_environment() {
    let f = file(
        r#"
        allowed_origins = ["https://chat.example.com/"]
        secure_cookies = true
        presence_timeout = "3s"
        shutdown_grace = "3s"
        [bot]
        name = "Duck"
        greeting = "Quack, welcome!"
        [redis]
        url = "redis://127.0.0.1:7000"
        accounts = "redis"
        key_prefix = "t1:"
        [argon2]
        memory_kib = 1024
        iterations = 1
        lanes = 1
        "#,
    );
    let s = load(&Flags::default(), &[], std::slice::from_ref(&f));
    assert_eq!(s.allowed_origins, ["https://chat.example.com"]);
    assert!(s.secure_cookies);
    assert_eq!(s.bot_name, "Duck");
    assert_eq!(s.bot_greeting, "Quack, welcome!");
    assert_eq!(s.presence_timeout, Duration::from_secs(3));
    assert_eq!(s.shutdown_grace, Duration::from_secs(3));
    assert!(s.accounts_in_redis);
    assert_eq!(s.redis_key_prefix, "t1:");

    let s = load(
        &Flags::default(),
        &[
            ("CHAT_ADMIN_PASSWORD", "s3cret-admin"),
            ("CHAT_SECRET_KEY", &"k".repeat(40)),
            ("CHAT_SECURE_COOKIES", "false"),
            ("CHAT_ALLOWED_ORIGINS", "http://a.test, http://b.test"),
            ("CHAT_REDIS_ACCOUNTS", "sqlite"),
            ("CHAT_BOT_NAME", "鸭鸭"),
            ("CHAT_BOT_GREETING", ""),
            ("CHAT_PRESENCE_TIMEOUT", "2m"),
        ],
        &[f],
    );
    assert_eq!(s.bot_name, "鸭鸭");
    assert_eq!(s.bot_greeting, "", "an empty greeting turns it off");
    assert_eq!(s.presence_timeout, Duration::from_secs(120));
    // The older top-level `bot_name` is still read.
    let old = load(&Flags::default(), &[], &[file("bot_name = \"Old Duck\"\n")]);
    assert_eq!(old.bot_name, "Old Duck");
    assert_eq!(
        s.admin_password.as_ref().unwrap().expose_secret(),
        "s3cret-admin"
    );
    assert_eq!(s.secret_key.as_ref().unwrap().expose_secret().len(), 40);
    assert!(!s.secure_cookies);
    assert!(!s.accounts_in_redis);
    assert_eq!(s.allowed_origins, ["http://a.test", "http://b.test"]);
    // Secrets never show in Debug output.
    assert!(!format!("{s:?}").contains("s3cret-admin"));
}

#[test]
fn ages_take_seconds_minutes_hours_and_days() {
    assert_eq!(parse_age("30s").unwrap(), Some(Duration::from_secs(30)));
    assert_eq!(parse_age("15m").unwrap(), Some(Duration::from_secs(900)));
    assert_eq!(parse_age("12h").unwrap(), Some(Duration::from_secs(43_200)));
    assert_eq!(parse_age("7d").unwrap(), Some(Duration::from_secs(604_800)));
    assert_eq!(parse_age("0").unwrap(), None);
    for bad in ["", "7", "d", "7y", "-1d", "1.5h", "99999999999999999d"] {
        assert!(parse_age(bad).is_err(), "{bad}");
    }
}

/// Flags, environment, files, and the start of the expected message.
type Case = (
    Flags,
    Vec<(&'static str, &'static str)>,
    Vec<ConfigText>,
    &'static str,
);

#[test]
fn every_bad_value_is_one_line_naming_its_setting_and_source() {
    let none = Flags::default();
    let cases: Vec<Case> = vec![
        (
            none.clone(),
            vec![("CHAT_LISTEN", "nope")],
            vec![],
            "CHAT_LISTEN / --listen: \"nope\" is not a socket address",
        ),
        (
            Flags {
                listen: Some("localhost".into()),
                ..Flags::default()
            },
            vec![],
            vec![],
            "CHAT_LISTEN / --listen: \"localhost\" is not a socket address",
        ),
        (
            none.clone(),
            vec![],
            vec![file("listen = \"x:y\"")],
            "listen in test.toml: \"x:y\" is not a socket address",
        ),
        (
            none.clone(),
            vec![("CHAT_RATE_LIMIT", "fast")],
            vec![],
            "CHAT_RATE_LIMIT / --rate-limit: \"fast\" is not a rate limit",
        ),
        (
            Flags {
                retention: Some("forever".into()),
                ..Flags::default()
            },
            vec![],
            vec![],
            "CHAT_RETENTION / --retention: \"forever\" is not an age",
        ),
        (
            none.clone(),
            vec![("CHAT_DATABASE_URL", "postgres://db/x")],
            vec![],
            "CHAT_DATABASE_URL / --database: \"postgres://db/x\" is not an SQLite URL",
        ),
        (
            none.clone(),
            vec![("CHAT_REDIS_URL", "http://127.0.0.1")],
            vec![],
            "CHAT_REDIS_URL / --redis: \"http://127.0.0.1\" is not a Redis URL",
        ),
        (
            none.clone(),
            vec![("CHAT_ADMIN_PASSWORD", "abc")],
            vec![],
            "CHAT_ADMIN_PASSWORD: must be at least 6 characters",
        ),
        (
            none.clone(),
            vec![("CHAT_SECRET_KEY", "short")],
            vec![],
            "CHAT_SECRET_KEY: must be at least 32 characters",
        ),
        (
            none.clone(),
            vec![("CHAT_REDIS_ACCOUNTS", "redis")],
            vec![],
            "CHAT_REDIS_ACCOUNTS: \"redis\" needs a Redis URL",
        ),
        (
            none.clone(),
            vec![("CHAT_SECURE_COOKIES", "maybe")],
            vec![],
            "CHAT_SECURE_COOKIES: \"maybe\" must be true or false",
        ),
        (
            none.clone(),
            vec![],
            vec![file("listn = \"127.0.0.1:1\"\n")],
            "config file test.toml: unknown field `listn`",
        ),
        (
            none.clone(),
            vec![],
            vec![file("[argon2]\nlanes = 0\n")],
            "argon2.lanes in test.toml: 0 must be between 1 and 64",
        ),
        (
            none.clone(),
            vec![],
            vec![file("retention = [1, 2]\n")],
            "retention in test.toml: expected a string or a number, found array",
        ),
        (
            none.clone(),
            vec![("CHAT_PRESENCE_TIMEOUT", "2s")],
            vec![],
            "CHAT_PRESENCE_TIMEOUT / --presence-timeout: \"2s\" is too short: it must be at least 3s",
        ),
        (
            Flags {
                presence_timeout: Some("0".into()),
                ..Flags::default()
            },
            vec![],
            vec![],
            "CHAT_PRESENCE_TIMEOUT / --presence-timeout: \"0\" is too short",
        ),
        (
            none.clone(),
            vec![],
            vec![file("presence_timeout = \"soon\"\n")],
            "presence_timeout in test.toml: \"soon\" is not a duration",
        ),
        (
            none.clone(),
            vec![],
            vec![file("[bot]\nnickname = \"x\"\n")],
            "config file test.toml: unknown field `nickname`",
        ),
    ];
    for (flags, e, files, expected) in cases {
        let message = refusal(&flags, &e, &files);
        assert!(
            message.starts_with(expected),
            "expected {expected:?}, got {message:?}"
        );
        assert!(!message.contains('\n'), "one line: {message:?}");
    }
}

#[test]
fn config_files_are_found_from_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    assert!(
        config_files(cwd, &env(&[]), &Flags::default())
            .unwrap()
            .is_empty()
    );

    // A known environment works without its file, from the built-in copy.
    let files = config_files(cwd, &env(&[("CHAT_ENV", "testing")]), &Flags::default()).unwrap();
    assert_eq!(files.len(), 1);
    let s = Settings::from_sources(&Flags::default(), &env(&[]), &files).unwrap();
    assert_eq!(s.listen.port(), 0);
    assert_eq!(s.rate_limit, None);

    // An unknown one is a typo worth stopping for.
    let err = config_files(cwd, &env(&[("CHAT_ENV", "prod")]), &Flags::default()).unwrap_err();
    assert!(err.to_string().starts_with("CHAT_ENV: \"prod\""), "{err}");

    // Files on disk: default.toml, then $CHAT_ENV.toml, then --config over CHAT_CONFIG.
    std::fs::create_dir(cwd.join("config")).unwrap();
    std::fs::write(
        cwd.join("config/default.toml"),
        "listen = \"127.0.0.1:4001\"\nretention = \"1d\"\n",
    )
    .unwrap();
    std::fs::write(
        cwd.join("config/staging.toml"),
        "listen = \"127.0.0.1:4002\"\n",
    )
    .unwrap();
    std::fs::write(cwd.join("mine.toml"), "listen = \"127.0.0.1:4003\"\n").unwrap();
    std::fs::write(cwd.join("theirs.toml"), "listen = \"127.0.0.1:4004\"\n").unwrap();
    let load_with = |e: &[(&str, &str)], flags: &Flags| {
        let e = env(e);
        let files = config_files(cwd, &e, flags).unwrap();
        Settings::from_sources(flags, &e, &files).unwrap()
    };
    let s = load_with(&[], &Flags::default());
    assert_eq!(
        (s.listen.port(), s.retention),
        (4001, Some(Duration::from_secs(86_400)))
    );
    assert_eq!(
        load_with(&[("CHAT_ENV", "staging")], &Flags::default())
            .listen
            .port(),
        4002
    );
    assert_eq!(
        load_with(
            &[("CHAT_ENV", "staging"), ("CHAT_CONFIG", "theirs.toml")],
            &Flags::default()
        )
        .listen
        .port(),
        4004
    );
    let flags = Flags {
        config: Some("mine.toml".into()),
        ..Flags::default()
    };
    assert_eq!(
        load_with(&[("CHAT_CONFIG", "theirs.toml")], &flags)
            .listen
            .port(),
        4003
    );
    assert_eq!(
        load_with(
            &[
                ("CHAT_CONFIG", "theirs.toml"),
                ("CHAT_LISTEN", "127.0.0.1:4005")
            ],
            &flags
        )
        .listen
        .port(),
        4005,
        "the environment still beats every file"
    );

    let missing = Flags {
        config: Some("missing.toml".into()),
        ..Flags::default()
    };
    let err = config_files(cwd, &env(&[]), &missing).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("CHAT_CONFIG / --config: cannot read"),
        "{err}"
    );
}
