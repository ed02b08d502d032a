//! Several `hihichat serve` processes on one Redis (CONTRACT §5.4): fan-out
//! across nodes with every guarantee intact, sessions valid on every node,
//! and a Redis crash that loses nothing acked.
//!
//! Each test starts its own Redis (`chat_testkit::redis_server`), never one
//! it did not start; with `CHAT_TEST_REDIS_URL` the fan-out and session
//! tests use that server instead, so their names carry a per-run tag.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_testkit::redis_server::RedisServer;
use chat_tests::{Client, ServerCommand, ServerProcess, Ws, expect_status};
use reqwest::StatusCode;
use serde_json::Value;

/// Runs a blocking call (starting, killing a Redis) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A tag that keeps this run's rooms apart from an earlier run's in a shared Redis.
fn run_tag() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

async fn two_nodes(redis_url: &str, dir: &std::path::Path) -> (ServerProcess, ServerProcess) {
    let command = ServerCommand::sqlite_in(dir).with_redis(redis_url);
    // One after the other: the first start creates the admin in the shared database.
    let a = command.start().await;
    let b = command.start().await;
    (a, b)
}

async fn joined_ws(client: &Client, rooms: &[String]) -> Ws {
    let mut ws = client.ws().await;
    for room in rooms {
        let joined = ws.join(room, None).await;
        assert_eq!(joined["type"], "joined", "{joined}");
    }
    ws
}

/// Every room's messages arrived once each, seqs 1..=`last` in order.
fn assert_gap_free(who: &str, got: &BTreeMap<String, Vec<Value>>, room: &str, last: u64) {
    let seqs: Vec<u64> = got
        .get(room)
        .map(|frames| frames.iter().filter_map(|f| f["seq"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "{who} in {room}");
}

/// History as (seq, from, text, ts), for comparing nodes.
fn summary(history: &[Value]) -> Vec<(u64, String, String, String)> {
    history
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap_or(0),
                m["from"].as_str().unwrap_or_default().to_owned(),
                m["text"].as_str().unwrap_or_default().to_owned(),
                m["ts"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_redis_deliver_every_message_once_in_seq_order() {
    const SENDERS: usize = 6;
    const ROUNDS: usize = 8;
    let redis = blocking(RedisServer::start)
        .await
        .expect("a redis-server for the test");
    let dir = tempfile::tempdir().unwrap();
    let (node_a, node_b) = two_nodes(&redis.url(), dir.path()).await;
    let nodes = [&node_a, &node_b];
    let tag = run_tag();
    let rooms: Vec<String> = (0..4).map(|r| format!("room{r}-{tag}")).collect();
    let admin = node_a.admin_client().await;
    for room in &rooms {
        admin.create_room_ok(room).await;
    }

    // Listeners on both nodes follow only rooms 0 and 1; they join before
    // anyone sends, so everything reaches them live.
    let mut listeners = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let user = admin.create_user(&format!("listener{i}"), &[]).await;
        listeners.push(joined_ws(&node.login(&user).await, &rooms[..2]).await);
    }

    // Every sender joins before the first one sends: a late joiner would
    // get the first messages in `joined`, not live.
    let mut sockets = Vec::new();
    for i in 0..SENDERS {
        let user = admin.create_user(&format!("sender{i}"), &[]).await;
        sockets.push(joined_ws(&nodes[i % 2].login(&user).await, &rooms).await);
    }
    let mut senders = Vec::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        let rooms = rooms.clone();
        senders.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..ROUNDS {
                // One message into every room at once, then the four acks.
                for (r, room) in rooms.iter().enumerate() {
                    ws.send_message(
                        room,
                        &format!("sender{i} #{n} in room{r}"),
                        &format!("s{i}-r{r}-{n}"),
                    )
                    .await;
                }
                for (r, room) in rooms.iter().enumerate() {
                    let cid = format!("s{i}-r{r}-{n}");
                    let ack = ws
                        .wait_for(&cid, |f| {
                            (f["type"] == "ack" || f["type"] == "error") && f["cid"] == cid.as_str()
                        })
                        .await;
                    assert_eq!(ack["type"], "ack", "{ack}");
                    acked.push((
                        room.clone(),
                        format!("sender{i} #{n} in room{r}"),
                        ack["seq"].as_u64().unwrap(),
                    ));
                }
            }
            (ws, acked)
        }));
    }
    let mut acked = Vec::new();
    let mut sender_sockets = Vec::new();
    for task in senders {
        let (ws, mine) = task.await.unwrap();
        acked.extend(mine);
        sender_sockets.push(ws);
    }

    let last = (SENDERS * ROUNDS) as u64;
    let all: Vec<(String, u64)> = rooms.iter().map(|r| (r.clone(), last)).collect();
    for (i, ws) in sender_sockets.iter_mut().enumerate() {
        let got = ws.collect_messages(&all, Duration::from_millis(300)).await;
        for room in &rooms {
            assert_gap_free(&format!("sender{i} on node {}", i % 2), &got, room, last);
        }
    }
    for (i, ws) in listeners.iter_mut().enumerate() {
        let got = ws
            .collect_messages(&all[..2], Duration::from_millis(300))
            .await;
        for room in &rooms[..2] {
            assert_gap_free(&format!("listener on node {i}"), &got, room, last);
        }
        for room in &rooms[2..] {
            assert!(
                !got.contains_key(room),
                "a listener got messages of {room}, which it never joined"
            );
        }
    }

    let b_admin = node_b.admin_client().await;
    for room in &rooms {
        let on_a = admin.all_messages(room).await;
        let on_b = b_admin.all_messages(room).await;
        assert_eq!(
            summary(&on_a),
            summary(&on_b),
            "history of {room} is the same on both nodes"
        );
        assert_eq!(on_a.len() as u64, last);
        for (acked_room, text, seq) in acked.iter().filter(|(r, _, _)| r == room) {
            let stored = &on_a[(*seq - 1) as usize];
            assert_eq!(
                stored["text"],
                text.as_str(),
                "acked {text:?} as seq {seq} of {acked_room}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_node_works_on_the_other() {
    let redis = blocking(RedisServer::start)
        .await
        .expect("a redis-server for the test");
    let dir = tempfile::tempdir().unwrap();
    let (node_a, node_b) = two_nodes(&redis.url(), dir.path()).await;

    let on_a = node_a.admin_client().await;
    let on_b = on_a.with_cookies_for(&node_b.base_url);
    let me = expect_status(
        on_b.get("/api/me").await,
        StatusCode::OK,
        "GET /api/me on node B",
    )
    .await;
    assert_eq!(me["user"]["name"], "admin", "{me}");
    assert_eq!(me["user"]["guest"], false, "{me}");
    let mut ws = on_b.ws().await;
    let welcome = ws.wait_for("welcome", |f| f["type"] == "welcome").await;
    assert_eq!(welcome["user"]["name"], "admin", "{welcome}");

    // Logging out on B ends the session on A too.
    let out = on_b.delete("/api/session").await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let me = expect_status(
        on_a.get("/api/me").await,
        StatusCode::OK,
        "GET /api/me on node A",
    )
    .await;
    assert_eq!(
        me["user"]["guest"], true,
        "the session made on A was ended on B: {me}"
    );
}

/// How one sender of the Redis-crash test fared.
#[derive(Debug, Default)]
struct Sent {
    acked: Vec<(String, u64)>,
    unavailable: usize,
}

/// Sends `count` messages, each retried with its cid after `unavailable`
/// until acked, as a client that never gives up would.
async fn send_through_outage(
    mut ws: Ws,
    name: String,
    room: String,
    count: usize,
    total: Arc<AtomicUsize>,
) -> (Ws, Sent) {
    let mut sent = Sent::default();
    for n in 0..count {
        let (cid, text) = (format!("{name}-{n}"), format!("{name} says {n}"));
        loop {
            let answer = ws.send_and_wait(&room, &text, &cid).await;
            if answer["type"] == "ack" {
                sent.acked.push((text, answer["seq"].as_u64().unwrap()));
                total.fetch_add(1, Ordering::Relaxed);
                break;
            }
            assert_eq!(
                answer["code"], "unavailable",
                "{name}: the only error an outage may cause: {answer}"
            );
            sent.unavailable += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    (ws, sent)
}

async fn status_of(url: &str) -> Option<StatusCode> {
    let client = reqwest::Client::new();
    let answer = client.get(url).timeout(Duration::from_secs(3)).send().await;
    answer.ok().map(|r| r.status())
}

async fn wait_for_status(url: &str, wanted: StatusCode, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let got = status_of(url).await;
        if got == Some(wanted) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} answered {got:?}, not {wanted}, for {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_crash_mid_run_loses_no_acked_message_and_the_run_completes() {
    const SENDERS: usize = 4;
    const EACH: usize = 30;
    let redis = blocking(RedisServer::start_with_aof)
        .await
        .expect("a private redis-server with AOF");
    let dir = tempfile::tempdir().unwrap();
    let (node_a, node_b) = two_nodes(&redis.url(), dir.path()).await;
    let nodes = [&node_a, &node_b];
    let room = format!("durable-{}", run_tag());
    let rooms = vec![room.clone()];
    let admin = node_a.admin_client().await;
    admin.create_room_ok(&room).await;

    let mut listeners = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let user = admin.create_user(&format!("listener{i}"), &[]).await;
        let mut ws = joined_ws(&node.login(&user).await, &rooms).await;
        // Reads may wait out the whole outage.
        ws.timeout = Duration::from_secs(90);
        listeners.push(ws);
    }
    let probe_user = admin.create_user("probe", &[]).await;
    let mut probe = joined_ws(&node_b.login(&probe_user).await, &rooms).await;
    probe.timeout = Duration::from_secs(60);

    let mut sockets = Vec::new();
    for i in 0..SENDERS {
        let name = format!("sender{i}");
        let user = admin.create_user(&name, &[]).await;
        let mut ws = joined_ws(&nodes[i % 2].login(&user).await, &rooms).await;
        ws.timeout = Duration::from_secs(60);
        sockets.push((name, ws));
    }
    let total = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for (name, ws) in sockets {
        senders.push(tokio::spawn(send_through_outage(
            ws,
            name,
            room.clone(),
            EACH,
            Arc::clone(&total),
        )));
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while total.load(Ordering::Relaxed) < EACH {
        assert!(
            tokio::time::Instant::now() < deadline,
            "too few acks before the crash"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let redis = blocking(move || {
        let mut redis = redis;
        redis.kill().expect("killing our redis-server");
        redis
    })
    .await;

    // While Redis is down: sends are refused as `unavailable`, /readyz says
    // 503, /healthz stays 200, and the sockets stay open.
    let answer = probe.send_and_wait(&room, "probe", "probe-1").await;
    assert_eq!(
        (answer["type"].as_str(), answer["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{answer}"
    );
    for node in nodes {
        wait_for_status(
            &format!("{}/readyz", node.base_url),
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(
            status_of(&format!("{}/healthz", node.base_url)).await,
            Some(StatusCode::OK)
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let redis = blocking(move || {
        let mut redis = redis;
        redis
            .restart()
            .expect("restarting our redis-server on its AOF");
        redis
    })
    .await;
    for node in nodes {
        wait_for_status(
            &format!("{}/readyz", node.base_url),
            StatusCode::OK,
            Duration::from_secs(60),
        )
        .await;
    }
    let probe_seq = loop {
        let answer = probe.send_and_wait(&room, "probe", "probe-1").await;
        if answer["type"] == "ack" {
            break answer["seq"].as_u64().unwrap();
        }
        assert_eq!(answer["code"], "unavailable", "{answer}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let mut acked = vec![("probe".to_owned(), probe_seq)];
    for task in senders {
        let (_ws, sent) = tokio::time::timeout(Duration::from_secs(180), task)
            .await
            .expect("the senders finish once Redis is back")
            .unwrap();
        acked.extend(sent.acked);
    }
    let last = (SENDERS * EACH + 1) as u64;
    assert_eq!(acked.len() as u64, last);

    let on_a = admin.all_messages(&room).await;
    let on_b = node_b.admin_client().await.all_messages(&room).await;
    assert_eq!(
        summary(&on_a),
        summary(&on_b),
        "both nodes read the same history"
    );
    let seqs: Vec<u64> = on_a.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "every send stored exactly once, no gaps"
    );
    for (text, seq) in &acked {
        assert_eq!(
            on_a[(*seq - 1) as usize]["text"],
            text.as_str(),
            "acked {text:?} as seq {seq}"
        );
    }

    let targets = vec![(room.clone(), last)];
    for (i, ws) in listeners.iter_mut().enumerate() {
        let got = ws
            .collect_messages(&targets, Duration::from_millis(300))
            .await;
        assert_gap_free(&format!("listener on node {i}"), &got, &room, last);
    }
    drop(redis);
}
