//! Multi-node wiring: two `Application`s on one private Redis share users,
//! sessions, rooms and history.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chat_server::{Application, Settings};
use chat_testkit::redis_server::RedisServer;
use serde_json::{Value, json};

struct Node {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn node(settings: Settings) -> Node {
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Node { base, stop, task }
}

impl Node {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

fn settings(dir: &std::path::Path, redis: &RedisServer, prefix: &str, accounts: bool) -> Settings {
    let mut s = Settings::for_tests(dir);
    s.redis_url = Some(redis.url());
    s.redis_key_prefix = prefix.to_owned();
    s.accounts_in_redis = accounts;
    s
}

fn unique_prefix() -> String {
    // Several runs may share one external CHAT_TEST_REDIS_URL server.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-{}-{nanos}:", std::process::id())
}

#[tokio::test]
async fn two_nodes_on_one_redis_share_accounts_rooms_and_history() {
    let redis = RedisServer::start().unwrap();
    let prefix = unique_prefix();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(settings(d1.path(), &redis, &prefix, true)).await;
    let b = node(settings(d2.path(), &redis, &prefix, true)).await;

    for n in [&a, &b] {
        let r = reqwest::get(format!("{}/readyz", n.base)).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // One admin for both: the second node found users already there.
    let on_a = common::login(&a.base, "admin", "admin-password")
        .await
        .unwrap();
    let r = on_a
        .post(format!("{}/api/admin/users", a.base))
        .json(&json!({"username": "小明", "password": "xiaoming-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = on_a
        .post(format!("{}/api/rooms", a.base))
        .json(&json!({"name": "闲聊-1", "description": "", "visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = on_a
        .post(format!(
            "{}/api/rooms/%E9%97%B2%E8%81%8A-1/messages",
            a.base
        ))
        .json(&json!({"text": "你好 from a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let xiaoming = common::login(&b.base, "小明", "xiaoming-pw").await.unwrap();
    let page: Value = xiaoming
        .get(format!(
            "{}/api/rooms/%E9%97%B2%E8%81%8A-1/messages",
            b.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["你好 from a"]);

    // The audit trail is shared too: b shows what an admin did on a.
    let on_b = common::login(&b.base, "admin", "admin-password")
        .await
        .unwrap();
    let trail: Value = on_b
        .get(format!("{}/api/admin/audit?limit=2", b.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = trail["entries"].as_array().unwrap();
    assert_eq!(
        (&entries[0]["action"], &entries[0]["target"]),
        (&json!("room_created"), &json!("闲聊-1")),
        "{trail}"
    );
    assert_eq!(
        (&entries[1]["action"], &entries[1]["target"]),
        (&json!("user_created"), &json!("小明")),
        "{trail}"
    );

    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn with_accounts_in_sqlite_users_stay_in_the_file_and_rooms_go_to_redis() {
    let redis = RedisServer::start().unwrap();
    let prefix = unique_prefix();
    let dir = tempfile::tempdir().unwrap();
    let a = node(settings(dir.path(), &redis, &prefix, false)).await;
    let admin = common::login(&a.base, "admin", "admin-password")
        .await
        .unwrap();
    let r = admin
        .post(format!("{}/api/rooms", a.base))
        .json(&json!({"name": "lobby", "description": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    a.stop().await;
    assert!(dir.path().join("hihichat.db").is_file());

    // A node with its own, empty SQLite file sees the room (Redis) but has
    // its own first admin (SQLite).
    let other = tempfile::tempdir().unwrap();
    let mut s = settings(other.path(), &redis, &prefix, false);
    s.admin_password = Some("other-admin-pw".to_owned().into());
    let b = node(s).await;
    let rooms: Value = reqwest::get(format!("{}/api/rooms", b.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rooms["rooms"][0]["name"], "lobby");
    assert_eq!(
        common::login(&b.base, "admin", "admin-password")
            .await
            .err(),
        Some(401)
    );
    common::login(&b.base, "admin", "other-admin-pw")
        .await
        .unwrap();
    b.stop().await;
}
