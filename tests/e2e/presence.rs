//! Presence that tells the truth across nodes: the real binary on Redis with
//! a short `--presence-timeout`; when the node a user is connected to is
//! SIGKILLed, observers on the other node see that user leave within the
//! timeout plus the expiry period, and `online` no longer lists them.

use std::time::Duration;

use chat_testkit::redis_server::RedisServer;
use chat_tests::{ServerCommand, Ws};
use serde_json::Value;

/// The presence timeout the nodes run with (the smallest accepted).
const TIMEOUT: Duration = Duration::from_secs(3);
/// How often a node expires presence with that timeout: a third of it.
const EXPIRY_PERIOD: Duration = Duration::from_secs(1);

fn presence_of<'a>(user: &'a str, event: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |f| f["type"] == "presence" && f["user"] == user && f["event"] == event
}

async fn online(ws: &mut Ws, room: &str) -> Vec<String> {
    let joined = ws.join(room, None).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    joined["online"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_users_go_offline_on_the_other_node_within_the_timeout() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .expect("a redis-server for the test");
    let dir = tempfile::tempdir().unwrap();
    let mut command = ServerCommand::sqlite_in(dir.path()).with_redis(&redis.url());
    command.extra_args.extend([
        "--presence-timeout".into(),
        format!("{}s", TIMEOUT.as_secs()),
    ]);
    // One after the other: the first start creates the admin in the shared database.
    let mut node_a = command.start().await;
    let node_b = command.start().await;
    let admin = node_a.admin_client().await;
    admin.create_room_ok("闲聊-1").await;
    let xiaoming = admin.create_user("小明", &[]).await;
    let watcher = admin.create_user("watcher", &[]).await;

    let watcher = node_b.login(&watcher).await;
    let mut observer = watcher.ws().await;
    observer.join("闲聊-1", None).await;
    let mut on_a = node_a.login(&xiaoming).await.ws().await;
    on_a.join("闲聊-1", None).await;
    observer
        .wait_for("小明 coming online", presence_of("小明", "join"))
        .await;
    // Test clients answer pings only while they read: every socket here
    // that must stay up reads, the way a browser would.
    let mut check = watcher.ws().await;
    assert!(
        online(&mut check, "闲聊-1")
            .await
            .contains(&"小明".to_owned())
    );
    check.close().await;

    // 小明's client keeps reading (answering pings) until its node dies.
    let reader = tokio::spawn(async move { on_a.drain(Duration::from_secs(120)).await });
    // Several heartbeats pass: a live user stays online across the timeout.
    let early = observer.drain(TIMEOUT + EXPIRY_PERIOD).await;
    assert!(
        !early.iter().any(presence_of("小明", "leave")),
        "小明 left while connected: {early:?}"
    );

    let killed = tokio::time::Instant::now();
    node_a.kill().await;
    let leave = observer
        .wait_for("小明 going offline", presence_of("小明", "leave"))
        .await;
    let took = killed.elapsed();
    assert_eq!(leave["room"], "闲聊-1");
    // The last renewal was at most a heartbeat before the kill, so the
    // entry runs out within the timeout, and the next expiry run finds it.
    let bound = TIMEOUT + EXPIRY_PERIOD + Duration::from_secs(2);
    assert!(took <= bound, "the leave took {took:?} (bound {bound:?})");

    let mut check = watcher.ws().await;
    let now_online = online(&mut check, "闲聊-1").await;
    assert!(!now_online.contains(&"小明".to_owned()), "{now_online:?}");
    assert!(now_online.contains(&"watcher".to_owned()), "{now_online:?}");
    // Exactly one leave.
    let later = observer.drain(Duration::from_secs(2)).await;
    assert!(
        !later.iter().any(presence_of("小明", "leave")),
        "a second leave: {later:?}"
    );
    reader.abort();
}
