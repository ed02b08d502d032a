//! The real `hihichat` binary: bad settings, the first start, the admin
//! commands against a database, `bot train`, and SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use chat_domain::{
    Actor, Description, MessageText, PasswordHasher, PermissionName, RoomName, Sent, Username,
    Visibility,
};
use chat_server::{Application, Settings};
use common::{Server, hihichat, login, run, session_cookie, stderr, stdout};
use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[test]
fn every_bad_setting_exits_non_zero_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = format!("redis://127.0.0.1:{closed}");
    // Arguments, environment, and the setting the error must name.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["serve", "--listen", "nope"], vec![], "--listen"),
        (vec!["serve"], vec![("CHAT_LISTEN", "nope")], "CHAT_LISTEN"),
        (vec!["serve", "--listen", &taken], vec![], "--listen"),
        (
            vec!["serve", "--rate-limit", "lots"],
            vec![],
            "--rate-limit",
        ),
        (
            vec!["serve"],
            vec![("CHAT_RATE_LIMIT", "10/h")],
            "CHAT_RATE_LIMIT",
        ),
        (vec!["serve", "--retention", "1y"], vec![], "--retention"),
        (
            vec!["serve"],
            vec![("CHAT_RETENTION", "forever")],
            "CHAT_RETENTION",
        ),
        (
            vec!["serve", "--database", "sqlite:///dev/null/nope/hihichat.db"],
            vec![],
            "--database",
        ),
        (
            vec!["serve"],
            vec![("CHAT_DATABASE_URL", "sqlite:///dev/null/x.db")],
            "CHAT_DATABASE_URL",
        ),
        (vec!["serve", "--redis", &redis], vec![], "--redis"),
        (
            vec!["serve"],
            vec![("CHAT_REDIS_URL", "nope")],
            "CHAT_REDIS_URL",
        ),
        (
            vec!["serve"],
            vec![("CHAT_ADMIN_PASSWORD", "abc")],
            "CHAT_ADMIN_PASSWORD",
        ),
        (
            vec!["serve"],
            vec![("CHAT_SECRET_KEY", "too-short")],
            "CHAT_SECRET_KEY",
        ),
        (
            vec!["serve", "--config", "missing.toml"],
            vec![],
            "--config",
        ),
        (vec!["serve"], vec![("CHAT_ENV", "nope")], "CHAT_ENV"),
        (
            vec!["user", "list", "--database", "sqlite:///dev/null/x.db"],
            vec![],
            "--database",
        ),
    ];
    for (args, env, setting) in cases {
        let mut cmd = hihichat(dir.path());
        cmd.args(&args).envs(env.iter().copied());
        // Nothing may listen for long: a case that wrongly starts would hang.
        cmd.env("CHAT_SHUTDOWN_GRACE", "1s");
        let out = run_bounded(cmd);
        let err = stderr(&out);
        let what = format!("{args:?} {env:?}");
        assert!(!out.status.success(), "{what} should fail");
        assert_eq!(err.lines().count(), 1, "{what}: one line, got {err:?}");
        assert!(err.starts_with("error: "), "{what}: {err:?}");
        assert!(err.contains(setting), "{what}: names {setting}: {err:?}");
        assert!(!err.contains("panicked"), "{what}: {err:?}");
    }
}

/// Runs a command that should fail at once; kills it after 30 s.
fn run_bounded(mut cmd: std::process::Command) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn generated_password(log: &[String]) -> Option<String> {
    log.iter().find_map(|line| {
        line.split("with the password ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    })
}

#[tokio::test]
async fn the_first_start_creates_admin_and_prints_a_generated_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut cmd = hihichat(dir.path());
        cmd.env("CHAT_ENV", "testing");
        Server::start(cmd)
    };

    let server = start();
    let password = generated_password(&server.startup_log).expect("a generated password");
    assert_eq!(password.len(), 20);
    login(&server.base(), "admin", &password)
        .await
        .expect("admin logs in with it");
    let data = dir.path().join("data");
    assert!(data.join("hihichat.db").is_file());
    let key = std::fs::read_to_string(data.join("secret.key")).unwrap();
    assert!(key.trim().len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    server.terminate();
    let (code, rest) = server.wait();
    assert_eq!(code, Some(0));
    assert!(
        generated_password(&rest).is_none(),
        "printed once, at creation"
    );

    let server = start();
    assert_eq!(
        generated_password(&server.startup_log),
        None,
        "a second start prints no password"
    );
    assert!(
        !server.startup_log.iter().any(|l| l.contains(&password)),
        "nor the old one"
    );
    login(&server.base(), "admin", &password)
        .await
        .expect("the password still works");
    assert_eq!(
        std::fs::read_to_string(data.join("secret.key")).unwrap(),
        key,
        "the key is kept"
    );
    server.terminate();
    assert_eq!(server.wait().0, Some(0));
}

fn admin_cmd(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = hihichat(dir);
    cmd.env("CHAT_ENV", "testing")
        .env("CHAT_ADMIN_PASSWORD", "admin-password")
        .args(args);
    cmd
}

fn ok(dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = run(admin_cmd(dir, args), stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out).trim_end().to_owned()
}

fn refused(dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = run(admin_cmd(dir, args), stdin);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
    err.trim_end().to_owned()
}

fn test_settings(dir: &Path) -> Settings {
    let mut settings = Settings::for_tests(&dir.join("data"));
    settings.password_hasher = PasswordHasher::with_params(1024, 1, 1);
    settings
}

#[tokio::test]
async fn the_user_commands_work_on_the_database_the_server_uses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    assert_eq!(
        ok(
            d,
            &[
                "user",
                "add",
                "alice",
                "--password-stdin",
                "--grant",
                "create_room"
            ],
            "alice-password\n"
        ),
        "created user alice (permissions: create_room)"
    );
    assert_eq!(
        refused(
            d,
            &["user", "add", "alice", "--password-stdin"],
            "other-pw\n"
        ),
        "error: that username is taken"
    );
    assert!(
        refused(d, &["user", "add", "bob", "--password-stdin"], "short\n").contains("password")
    );
    assert_eq!(
        refused(d, &["grant", "alice", "nope"], ""),
        "error: no such permission: nope"
    );
    assert_eq!(
        ok(d, &["grant", "alice", "moderate"], ""),
        "alice now has: create_room, moderate"
    );
    assert_eq!(
        ok(d, &["revoke", "alice", "create_room"], ""),
        "alice now has: moderate"
    );
    // Without --password-stdin and without a terminal, the first line of input is read.
    assert_eq!(
        ok(d, &["user", "passwd", "alice"], "alice-new-pw\r\n"),
        "password of alice changed; their sessions were ended"
    );
    assert_eq!(
        ok(
            d,
            &["user", "add", "小明", "--password-stdin"],
            "xiaoming-pw\n"
        ),
        "created user 小明 (permissions: none)"
    );
    let list = ok(d, &["user", "list"], "");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("admin ") && lines[0].ends_with("admin, create_room, moderate"));
    assert!(lines[1].starts_with("alice ") && lines[1].ends_with(" moderate"));
    assert!(lines[2].starts_with("小明 ") && lines[2].ends_with(" none"));

    // The server on the same database sees what the commands did.
    let app = Application::build(test_settings(d)).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    assert_eq!(
        login(&base, "alice", "alice-password").await.err(),
        Some(401)
    );
    let alice = login(&base, "alice", "alice-new-pw").await.unwrap();
    let me: serde_json::Value = alice
        .get(format!("{base}/api/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["permissions"], serde_json::json!(["moderate"]));
    login(&base, "小明", "xiaoming-pw").await.unwrap();
    login(&base, "admin", "admin-password").await.unwrap();

    assert_eq!(ok(d, &["user", "del", "alice"], ""), "deleted user alice");
    assert_eq!(
        refused(d, &["user", "del", "alice"], ""),
        "error: no such user"
    );
    assert_eq!(login(&base, "alice", "alice-new-pw").await.err(), Some(401));
    let me: serde_json::Value = alice
        .get(format!("{base}/api/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["guest"], true, "alice's session ended with her");

    // The commands' actions are in the audit trail the server shows, by `system`.
    let admin = login(&base, "admin", "admin-password").await.unwrap();
    let trail: serde_json::Value = admin
        .get(format!("{base}/api/admin/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lines: Vec<String> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {} {}", e["actor"], e["action"], e["target"]).replace('"', ""))
        .collect();
    assert_eq!(
        lines,
        [
            "system user_deleted alice",
            "system user_created 小明",
            "system password_reset alice",
            "system permissions_set alice",
            "system permissions_set alice",
            "system user_created alice",
            "system user_created admin",
        ],
        "{trail}"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn bot_train_loads_a_corpus_the_bot_answers_from() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("duck.txt"),
        "# a tiny corpus\nQ: what is the wifi password\nQ: wifi password\nA: It is on the fridge.\n",
    )
    .unwrap();
    std::fs::write(d.join("broken.txt"), "Q: a question without an answer\n").unwrap();

    assert_eq!(
        ok(d, &["bot", "train", "duck.txt"], ""),
        "read 2 question/answer pairs from duck.txt: 2 new, 2 in the corpus"
    );
    assert!(
        refused(d, &["bot", "train", "broken.txt"], "").starts_with("error: broken.txt: corpus:")
    );
    assert!(refused(d, &["bot", "train", "missing.txt"], "").contains("missing.txt"));

    let app = Application::build(test_settings(d)).await.unwrap();
    let services = app.services();
    let admin = services
        .accounts
        .user(&Actor::System, &Username::parse("admin").unwrap())
        .await
        .unwrap();
    let room = RoomName::parse("大厅").unwrap();
    services
        .rooms
        .create(
            &Actor::User(admin),
            room.clone(),
            Description::empty(),
            Visibility::Public,
        )
        .await
        .unwrap();
    let ask = |text: &'static str| {
        let room = room.clone();
        async move {
            match services
                .chat
                .send(
                    &Actor::Guest,
                    &room,
                    MessageText::parse(text).unwrap(),
                    None,
                )
                .await
                .unwrap()
            {
                Sent::Bot(reply) => reply.text,
                Sent::Stored(_) => panic!("a guest's message is never stored"),
            }
        }
    };
    assert_eq!(
        ask("What is the WiFi password?").await,
        "It is on the fridge."
    );
    // The corpus was not empty at start, so the built-in one was not added.
    assert!(!ask("你是谁").await.contains("我是小黄鸭"));
}

#[tokio::test]
async fn the_built_in_corpus_answers_on_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(test_settings(dir.path())).await.unwrap();
    let services = app.services();
    let admin = services
        .accounts
        .user(&Actor::System, &Username::parse("admin").unwrap())
        .await
        .unwrap();
    assert!(admin.has(&PermissionName::admin()));
    let room = RoomName::parse("lobby").unwrap();
    services
        .rooms
        .create(
            &Actor::User(admin),
            room.clone(),
            Description::empty(),
            Visibility::Public,
        )
        .await
        .unwrap();
    for (question, needle) in [
        ("你好", "小黄鸭"),
        ("who are you?", "小黄鸭"),
        ("怎么创建聊天室", "create_room"),
        ("how do I log in", "Log in"),
    ] {
        let Sent::Bot(reply) = services
            .chat
            .send(
                &Actor::Guest,
                &room,
                MessageText::parse(question).unwrap(),
                None,
            )
            .await
            .unwrap()
        else {
            panic!("guests get the bot");
        };
        assert!(reply.text.contains(needle), "{question} → {}", reply.text);
    }
}

#[tokio::test]
async fn sigterm_closes_websockets_with_a_close_frame_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = hihichat(dir.path());
    cmd.env("CHAT_ENV", "testing")
        .env("CHAT_ADMIN_PASSWORD", "admin-password");
    let server = Server::start(cmd);
    let cookie = session_cookie(&server.base(), "admin", "admin-password").await;

    let mut request = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    request
        .headers_mut()
        .insert("origin", server.base().parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let welcome = ws.next().await.unwrap().unwrap();
    assert!(
        welcome.to_text().unwrap().contains("welcome"),
        "{welcome:?}"
    );
    ws.send(Message::text(r#"{"type":"ping","cid":"p-1"}"#))
        .await
        .unwrap();

    server.terminate();
    let close = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Close(frame)) => return frame,
                Ok(_) => {}
                Err(e) => panic!("the socket broke without a close frame: {e}"),
            }
        }
        panic!("the socket ended without a close frame")
    })
    .await
    .expect("a close frame within 20 s");
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    let (code, _) = server.wait();
    assert_eq!(code, Some(0), "a graceful stop exits 0");
}
