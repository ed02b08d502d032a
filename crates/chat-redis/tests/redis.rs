//! What only the Redis adapter has to prove: several nodes on one Redis
//! (gap-free seqs, idempotent cids, fan-out across nodes), a Redis crash
//! with the append-only file on, an outage, lagging subscribers, and a
//! clear failure at start-up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_domain::{
    Delivery, EventStream, HealthCheck, MessageLog, RoomEvent, RoomEvents, RoomFeed,
    RoomRepository, Seq, StoreError,
};
use chat_redis::{RedisConfig, RedisStore};
use chat_testkit::fixtures::{T0, cid, create_users, message, name, new_room, room_name};
use chat_testkit::message_log::access_with_page_reads_its_own_page;
use chat_testkit::redis_server::RedisServer;
use futures::StreamExt;

static SERVER: LazyLock<RedisServer> =
    LazyLock::new(|| RedisServer::start().expect("a Redis for these tests"));

/// Guards against hangs; no test asserts on speed.
const PATIENCE: Duration = Duration::from_secs(30);

/// A key prefix no other test uses: the "nodes" of one test share it.
fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "hihichat-test:{}:{run}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn config(prefix: &str) -> RedisConfig {
    RedisConfig {
        key_prefix: prefix.to_owned(),
        command_timeout: Duration::from_secs(1),
        ..RedisConfig::default()
    }
}

/// One "node": its own connections to `url`, sharing the keyspace of `prefix`.
async fn node(url: &str, config: RedisConfig) -> Arc<RedisStore> {
    Arc::new(RedisStore::connect(url, config).await.expect("connect"))
}

/// Makes `room` with `users` as members.
async fn room_with(store: &RedisStore, room: &str, users: &[&str]) {
    create_users(store, users).await;
    store.create_room(new_room(room, users[0])).await.unwrap();
    for u in users {
        store.add_member(&room_name(room), &name(u)).await.unwrap();
    }
}

async fn next<E>(stream: &mut EventStream<E>) -> Delivery<E> {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream is live")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_appending_at_once_get_every_seq_exactly_once() {
    let prefix = fresh_prefix();
    let (a, b) = (
        node(&SERVER.url(), config(&prefix)).await,
        node(&SERVER.url(), config(&prefix)).await,
    );
    room_with(&a, "闲聊-1", &["alice", "小明"]).await;
    let (per_task, tasks_per_node) = (40u64, 4);
    let mut handles = Vec::new();
    for (store, sender) in [(&a, "alice"), (&b, "小明")] {
        for t in 0..tasks_per_node {
            let store = Arc::clone(store);
            handles.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..per_task {
                    let m = message("闲聊-1", sender, &format!("{sender} {t} {i}"));
                    let appended = store.append(m).await.unwrap();
                    assert!(!appended.duplicate);
                    seqs.push(appended.message.seq.get());
                }
                seqs
            }));
        }
    }
    let mut seqs = Vec::new();
    for h in handles {
        seqs.extend(h.await.unwrap());
    }
    seqs.sort_unstable();
    let total = per_task * 2 * tasks_per_node as u64;
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());

    // Both nodes read the same history, gap-free.
    let r = room_name("闲聊-1");
    let on_a = a.after(&r, Seq::ZERO, 1000).await.unwrap();
    let on_b = b.after(&r, Seq::ZERO, 1000).await.unwrap();
    assert_eq!(on_a, on_b);
    let read: Vec<u64> = on_a.messages.iter().map(|m| m.seq.get()).collect();
    assert_eq!(read, (1..=total).collect::<Vec<_>>());
    assert_eq!(b.last_seq(&r).await.unwrap(), Seq::new(total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cid_is_idempotent_across_nodes() {
    let prefix = fresh_prefix();
    let (a, b) = (
        node(&SERVER.url(), config(&prefix)).await,
        node(&SERVER.url(), config(&prefix)).await,
    );
    room_with(&a, "lobby", &["alice"]).await;
    let with_cid = |raw: &str| {
        let mut m = message("lobby", "alice", "once");
        m.cid = Some(cid(raw));
        m
    };

    let first = a.append(with_cid("c-1")).await.unwrap();
    let again = b.append(with_cid("c-1")).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.message, first.message);

    // Retries racing on both nodes store the message once.
    let mut handles = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(if i % 2 == 0 { &a } else { &b });
        let m = with_cid("c-2");
        handles.push(tokio::spawn(async move { store.append(m).await.unwrap() }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
    let seqs: BTreeSet<Seq> = results.iter().map(|r| r.message.seq).collect();
    assert_eq!(seqs, BTreeSet::from([Seq::new(2)]));
    assert_eq!(a.last_seq(&room_name("lobby")).await.unwrap(), Seq::new(2));
}

#[tokio::test]
async fn an_event_published_on_one_node_reaches_subscribers_on_another() {
    let prefix = fresh_prefix();
    let (a, b) = (
        node(&SERVER.url(), config(&prefix)).await,
        node(&SERVER.url(), config(&prefix)).await,
    );
    let r = room_name("闲聊-1");
    let mut on_b = b.subscribe(&r).await.unwrap();
    let typing = RoomEvent::Typing {
        user: name("小明")
    };
    a.publish(&r, typing.clone()).await.unwrap();
    match next(&mut on_b).await {
        Delivery::Event(e) => assert_eq!(*e, typing),
        Delivery::Lagged => panic!("nothing was dropped"),
    }
}

/// Many senders on node A; a room feed on node B whose bus reader is held
/// up (a local buffer of 4 events, not read until everything is sent) still
/// yields every message once, in seq order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_still_delivers_every_message_in_order() {
    let prefix = fresh_prefix();
    let a = node(&SERVER.url(), config(&prefix)).await;
    let b = node(
        &SERVER.url(),
        RedisConfig {
            event_buffer: 4,
            ..config(&prefix)
        },
    )
    .await;
    room_with(&a, "flood", &["alice", "bob"]).await;
    let r = room_name("flood");
    let log: Arc<dyn MessageLog> = b.clone();
    let mut feed = RoomFeed::new(r.clone(), log, b.subscribe(&r).await.unwrap(), Seq::ZERO);

    let (senders, each) = (4u64, 50u64);
    let mut handles = Vec::new();
    for s in 0..senders {
        let a = Arc::clone(&a);
        let r = r.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..each {
                let from = if s % 2 == 0 { "alice" } else { "bob" };
                let m = a
                    .append(message("flood", from, &format!("{s}/{i}")))
                    .await
                    .unwrap();
                a.publish(&r, RoomEvent::Message(m.message)).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }

    let total = senders * each;
    let mut seen = Vec::new();
    while seen.len() < total as usize {
        let item = tokio::time::timeout(PATIENCE, feed.next())
            .await
            .expect("the feed delivers in time")
            .expect("the feed is live");
        if let RoomEvent::Message(m) = &*item {
            seen.push(m.seq.get());
        }
    }
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_subscriber_whose_receiver_lags_is_told() {
    let prefix = fresh_prefix();
    let store = node(
        &SERVER.url(),
        RedisConfig {
            event_buffer: 4,
            ..config(&prefix)
        },
    )
    .await;
    let r = room_name("lobby");
    let mut slow = store.subscribe(&r).await.unwrap();
    for _ in 0..32 {
        store
            .publish(&r, RoomEvent::Typing { user: name("bob") })
            .await
            .unwrap();
    }
    let marker = RoomEvent::Removed { user: name("eve") };
    store.publish(&r, marker.clone()).await.unwrap();
    // 33 events into a buffer of 4 that nobody read: the reader must be
    // told before it reaches the last one, and cannot have got them all.
    let (mut lagged, mut received) = (false, 0);
    loop {
        match next(&mut slow).await {
            Delivery::Event(e) if *e == marker => break,
            Delivery::Event(_) => received += 1,
            Delivery::Lagged => lagged = true,
        }
    }
    assert!(
        lagged,
        "a reader 33 events behind a buffer of 4 was never told"
    );
    assert!(received < 32, "lagged, yet nothing was dropped");
}

#[tokio::test]
async fn connecting_to_a_dead_url_fails_at_once_naming_it() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let result = tokio::time::timeout(PATIENCE, RedisStore::connect(&url, RedisConfig::default()))
        .await
        .expect("start-up does not retry forever");
    let error = result.expect_err("nobody is listening");
    assert!(error.to_string().contains(&url), "{error}");
}

/// SIGKILL Redis (AOF on, `appendfsync always`) after some acknowledged
/// appends: while it is down appends and health checks fail as unavailable
/// within the command timeout; once it is back the store reconnects by
/// itself, every acknowledged message is there, seqs go on without a gap,
/// and subscribers are told they may have missed events.
#[tokio::test]
async fn acked_messages_survive_a_redis_crash_and_the_store_reconnects() {
    let mut server = RedisServer::start_with_aof().expect("a private Redis with AOF");
    let store = node(&server.url(), config(&fresh_prefix())).await;
    room_with(&store, "闲聊-1", &["alice"]).await;
    let r = room_name("闲聊-1");
    let mut acked = Vec::new();
    for i in 0..20 {
        let m = store
            .append(message("闲聊-1", "alice", &format!("before {i}")))
            .await
            .unwrap();
        acked.push(m.message);
    }
    let mut events = store.subscribe(&r).await.unwrap();

    server.kill().unwrap();
    let mut retry = message("闲聊-1", "alice", "during the outage");
    retry.cid = Some(cid("outage-1"));
    let down = tokio::time::timeout(PATIENCE, store.append(retry.clone()))
        .await
        .expect("an append fails instead of hanging");
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    let health = tokio::time::timeout(PATIENCE, store.check())
        .await
        .expect("a health check fails instead of hanging");
    assert!(
        matches!(health, Err(StoreError::Unavailable(_))),
        "{health:?}"
    );

    server.restart().unwrap();
    // The client retries the send (same cid) until Redis is back.
    let stored = tokio::time::timeout(PATIENCE, async {
        loop {
            match store.append(retry.clone()).await {
                Ok(appended) => return appended,
                Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("unexpected error after restart: {e}"),
            }
        }
    })
    .await
    .expect("the store reconnects by itself");
    assert_eq!(stored.message.seq, Seq::new(21));

    let history = store.after(&r, Seq::ZERO, 100).await.unwrap().messages;
    assert_eq!(&history[..20], &acked[..]);
    assert_eq!(history.len(), 21);
    store.check().await.unwrap();

    // The subscriber was told, and still works.
    if let Delivery::Event(e) = next(&mut events).await {
        panic!("nothing was published, yet got {e:?} before the lag");
    }
    let typing = RoomEvent::Typing {
        user: name("alice"),
    };
    store.publish(&r, typing.clone()).await.unwrap();
    loop {
        match next(&mut events).await {
            Delivery::Event(e) if *e == typing => break,
            Delivery::Event(e) => panic!("unexpected event {e:?}"),
            Delivery::Lagged => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_keeps_the_newest_entries_up_to_its_cap_across_nodes() {
    use chat_domain::{AUDIT_KEPT, AuditAction, AuditLog};
    use chat_testkit::audit_log::entry;
    use chat_testkit::fixtures::at;

    let prefix = fresh_prefix();
    let (a, b) = (
        node(&SERVER.url(), config(&prefix)).await,
        node(&SERVER.url(), config(&prefix)).await,
    );
    let total = AUDIT_KEPT as u64 + 5;
    for i in 0..total {
        let e = entry(at(i), "admin", AuditAction::Kicked, &format!("u{i}"), "");
        let store = if i % 2 == 0 { &a } else { &b };
        store.record(e).await.unwrap();
    }
    let kept = b.recent(AUDIT_KEPT + 100).await.unwrap();
    assert_eq!(kept.len(), AUDIT_KEPT);
    assert_eq!(kept[0].target, format!("u{}", total - 1));
    assert_eq!(kept[AUDIT_KEPT - 1].target, "u5", "the five oldest went");
    assert_eq!(a.recent(3).await.unwrap(), kept[..3].to_vec());
}

/// How many `command`s (lower case, as INFO names them) `server` has run
/// since it started.
async fn calls(server: &RedisServer, command: &str) -> u64 {
    use fred::interfaces::ClientLike as _;
    let client = fred::clients::Client::new(
        fred::types::config::Config::from_url(&server.url()).unwrap(),
        None,
        None,
        None,
    );
    client.init().await.unwrap();
    let info: String = client
        .custom(fred::cmd!("INFO"), vec!["commandstats"])
        .await
        .unwrap();
    // A line such as `cmdstat_subscribe:calls=3,usec=…`; absent when none ran.
    let field = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(field.as_str()))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// Later local subscribers of a channel share the first one's Redis
/// subscription (no SUBSCRIBE and confirming PING each: thirty tabs of one
/// user used to make sixty round trips, one after another), and each still
/// gets what is published once its subscribe returned.
#[tokio::test]
async fn later_local_subscribers_share_the_redis_subscription() {
    // A private server, so that the command counts are this test's alone.
    let server = RedisServer::start_with_aof().expect("a private redis-server");
    let store = node(&server.url(), config(&fresh_prefix())).await;
    let r = room_name("lobby");
    let before = calls(&server, "subscribe").await;
    let mut subscribers = Vec::new();
    for _ in 0..5 {
        subscribers.push(store.subscribe(&r).await.unwrap());
    }
    assert_eq!(calls(&server, "subscribe").await - before, 1);
    let typing = RoomEvent::Typing { user: name("bob") };
    store.publish(&r, typing.clone()).await.unwrap();
    for on in &mut subscribers {
        match next(on).await {
            Delivery::Event(e) => assert_eq!(*e, typing),
            Delivery::Lagged => panic!("nothing was dropped"),
        }
    }
    // Once every subscriber is gone, the next one subscribes afresh (the
    // janitor may not have unsubscribed the idle channel yet: either way).
    drop(subscribers);
    let mut again = store.subscribe(&r).await.unwrap();
    assert_eq!(calls(&server, "subscribe").await - before, 2);
    store.publish(&r, typing.clone()).await.unwrap();
    match next(&mut again).await {
        Delivery::Event(e) => assert_eq!(*e, typing),
        Delivery::Lagged => panic!("nothing was dropped"),
    }
}

/// A history page comes with the access read in one pipeline of plain
/// commands (no script: Lua costs Redis more than the commands), each run
/// once, and it is the page `before` answers.
#[tokio::test]
async fn access_with_page_reads_the_page_with_plain_commands() {
    // A private server, so that the command counts are this test's alone.
    let server = RedisServer::start_with_aof().expect("a private redis-server");
    let store = node(&server.url(), config(&fresh_prefix())).await;
    access_with_page_reads_its_own_page(store.as_ref()).await;
    let counted = [
        "evalsha",
        "eval",
        "hmget",
        "sismember",
        "hget",
        "zrevrangebyscore",
    ];
    let counts = || async {
        let mut all = Vec::new();
        for command in counted {
            all.push(calls(&server, command).await);
        }
        all
    };
    let ran = counts().await;
    let (_, page) = store
        .access_with_page(&room_name("lobby"), Some(&name("alice")), T0, None, 50)
        .await
        .unwrap()
        .unwrap();
    let now = counts().await;
    let delta: Vec<u64> = now.iter().zip(&ran).map(|(n, r)| n - r).collect();
    assert_eq!(
        delta,
        [0, 0, 1, 2, 1, 1],
        "{counted:?}: no script, the room, membership and ban, mute, page"
    );
    assert_eq!(page.map(|p| p.messages.len()), Some(50));
}
