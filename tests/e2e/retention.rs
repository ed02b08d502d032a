//! Retention end to end (CONTRACT §2, F13): the real binary with a short
//! `--retention` sweeps old messages from rooms and direct rooms, while
//! `last_seq` keeps counting and a resume from before the cut-off says that
//! older messages expired.

use std::time::Duration;

use chat_tests::{Client, ServerCommand, encode, expect_status};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The retention age the server runs with; the sweep runs every second
/// for short ages.
const AGE: &str = "3s";

async fn history(client: &Client, room: &str) -> Vec<Value> {
    let body = expect_status(
        client
            .get(&format!("/api/rooms/{}/messages?limit=200", encode(room)))
            .await,
        StatusCode::OK,
        &format!("history of {room}"),
    )
    .await;
    body["messages"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_messages_are_swept_everywhere_while_last_seq_counts_on_and_resume_says_expired() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = ServerCommand::sqlite_in(dir.path());
    command
        .extra_args
        .extend(["--retention".into(), AGE.into()]);
    let server = command.start().await;
    let admin = server.admin_client().await;
    let alice = admin.create_user("alice", &["create_room"]).await;
    admin.create_user("小明", &[]).await;
    let alice = server.login(&alice).await;
    alice.create_room_ok("闲聊-1").await;
    for i in 1..=3 {
        let r = alice
            .post_json(
                &format!("/api/rooms/{}/messages", encode("闲聊-1")),
                &json!({ "text": format!("old {i}") }),
            )
            .await;
        expect_status(r, StatusCode::CREATED, "an old message").await;
    }
    let mut ws = alice.ws().await;
    ws.send_json(json!({ "type": "dm", "to": "小明", "text": "old dm", "cid": "dm-1" }))
        .await;
    let ack = ws.wait_for("the dm's ack", |f| f["cid"] == "dm-1").await;
    let dm = ack["room"].as_str().expect("the direct room").to_owned();
    assert_eq!(history(&alice, "闲聊-1").await.len(), 3);
    assert_eq!(history(&alice, &dm).await.len(), 1);

    // The age passes and the next sweep runs; a process cannot be paused,
    // so poll, with a bound far above age + sweep period.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if history(&alice, "闲聊-1").await.is_empty() && history(&alice, &dm).await.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention never swept: {}",
            server.output_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The counters did not go down.
    let rooms = expect_status(alice.get("/api/rooms").await, StatusCode::OK, "rooms").await;
    let room = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "闲聊-1")
        .cloned()
        .unwrap();
    assert_eq!(room["last_seq"], 3, "{room}");
    let dms = expect_status(alice.get("/api/dms").await, StatusCode::OK, "dms").await;
    assert_eq!(dms["rooms"][0]["last_seq"], 1, "{dms}");

    // A new message takes the next seq, and a resume across the cut-off
    // gets what is left with `expired: true`; one from the newest does not.
    let ack = ws.send_and_wait("闲聊-1", "new", "new-1").await;
    assert_eq!(ack["seq"], 4, "{ack}");
    let joined = ws.join("闲聊-1", Some(1)).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["expired"], true, "{joined}");
    let seqs: Vec<u64> = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [4], "{joined}");
    let mut other = alice.ws().await;
    let joined = other.join("闲聊-1", Some(3)).await;
    assert_eq!(joined["expired"], false, "{joined}");
    // Nothing at all is left before a resume from 0 in the direct room.
    let joined = other.join(&dm, Some(0)).await;
    assert_eq!(
        (
            joined["expired"].as_bool(),
            joined["messages"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0)),
        "{joined}"
    );
}
