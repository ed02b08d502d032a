//! Flood control from outside (CONTRACT §1, §4): with the default limit of
//! 10 messages a second and bursts of 20, the 21st message of a burst gets
//! `rate_limited` with the wait, while everyone else in the room carries on;
//! and a moderator's slow mode holds members to one message per interval.

use std::time::Duration;

use chat_tests::{Ws, encode, expect_status, seqs, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The answer (ack or error) to each cid, in the order asked.
async fn answers(ws: &mut Ws, cids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for cid in cids {
        out.push(
            ws.wait_for(&format!("the answer to {cid}"), |f| {
                (f["type"] == "ack" || f["type"] == "error") && f["cid"] == cid.as_str()
            })
            .await,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_twenty_first_message_of_a_burst_is_rate_limited_and_others_are_unaffected() {
    // Settings::for_tests keeps the contract's default limit: 10/s, burst 20.
    let app = spawn_app().await;
    let alice = app.user_client("alice", &["create_room"]).await;
    let bob = app.user_client("bob", &[]).await;
    alice.create_room_ok("闲聊-1").await;
    let mut b = bob.ws().await;
    b.join("闲聊-1", None).await;

    // A burst of 21, each over its own socket of alice's (the limit is per
    // user and room, whatever the connection), so that no send waits for the
    // one before it to be stored: all 21 reach the limiter within a few
    // milliseconds, far less than the 0.1 s in which one token comes back.
    let mut sockets = Vec::new();
    for _ in 0..21 {
        let mut ws = alice.ws().await;
        ws.wait_for("welcome", |f| f["type"] == "welcome").await;
        sockets.push(ws);
    }
    let cid = |i: usize| format!("burst-{i}");
    for (i, ws) in sockets.iter_mut().enumerate() {
        ws.send_message("闲聊-1", &format!("burst {i}"), &cid(i))
            .await;
    }
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for (i, ws) in sockets.iter_mut().enumerate() {
        let answer = answers(ws, &[cid(i)]).await.remove(0);
        match answer["type"].as_str() {
            Some("ack") => acked.push(answer),
            _ => refused.push(answer),
        }
    }
    assert_eq!(acked.len(), 20, "the burst of 20 is stored: {refused:?}");
    assert_eq!(refused.len(), 1, "{refused:?}");
    let refused = &refused[0];
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("rate_limited")),
        "{refused}"
    );
    assert_eq!(refused["room"], "闲聊-1");
    let wait = refused["retry_after"].as_f64().expect("a retry_after");
    assert!(
        wait > 0.0 && wait <= 0.1,
        "a token comes back every 0.1 s: {wait}"
    );
    let mut stored: Vec<u64> = acked.iter().filter_map(|a| a["seq"].as_u64()).collect();
    stored.sort_unstable();
    assert_eq!(stored, (1..=20).collect::<Vec<_>>());

    // Bob is not held back, and receives everything that was stored.
    let ack = b.send_and_wait("闲聊-1", "bob here", "bob-1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["seq"], 21, "the refused message took no seq");
    let seen = b.messages("闲聊-1", 21).await;
    assert_eq!(seqs(&seen), (1..=21).collect::<Vec<_>>());
    assert_eq!(seen[20]["text"], "bob here");
    let refused_text = format!(
        "burst {}",
        refused["cid"]
            .as_str()
            .unwrap()
            .trim_start_matches("burst-")
    );
    assert!(seen.iter().all(|m| m["text"] != refused_text.as_str()));

    // After the wait, alice may send again.
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    let ack = sockets[0].send_and_wait("闲聊-1", "patient", "after").await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mode_holds_members_to_one_message_per_interval_and_spares_moderators() {
    let app = spawn_app().await;
    let alice = app.user_client("alice", &["create_room"]).await;
    let bob = app.user_client("bob", &[]).await;
    let carol = app.user_client("carol", &[]).await;
    alice.create_room_ok("闲聊-1").await;
    let slow_path = format!("/api/rooms/{}/slow_mode", encode("闲聊-1"));
    let mut a = alice.ws().await;
    let mut b = bob.ws().await;
    let mut c = carol.ws().await;
    assert_eq!(a.join("闲聊-1", None).await["slow_mode"], Value::Null);
    b.join("闲聊-1", None).await;
    c.join("闲聊-1", None).await;

    // A member may not set it; the creator may.
    let r = bob.put_json(&slow_path, &json!({ "seconds": 60 })).await;
    expect_status(r, StatusCode::FORBIDDEN, "bob sets slow mode").await;
    let r = alice.put_json(&slow_path, &json!({ "seconds": 60 })).await;
    expect_status(r, StatusCode::NO_CONTENT, "alice sets slow mode").await;
    for ws in [&mut a, &mut b, &mut c] {
        let frame = ws
            .wait_for("the slow_mode frame", |f| f["type"] == "slow_mode")
            .await;
        assert_eq!(
            frame,
            json!({ "type": "slow_mode", "room": "闲聊-1", "seconds": 60 })
        );
    }
    let mut late = carol.ws().await;
    assert_eq!(late.join("闲聊-1", None).await["slow_mode"], 60);

    let first = b.send_and_wait("闲聊-1", "one", "b-1").await;
    assert_eq!(first["type"], "ack", "{first}");
    let second = b.send_and_wait("闲聊-1", "two", "b-2").await;
    assert_eq!(second["code"], "rate_limited", "{second}");
    let wait = second["retry_after"].as_f64().unwrap();
    assert!(wait > 55.0 && wait <= 60.0, "{second}");
    // Carol has her own interval; the creator is not slowed at all.
    assert_eq!(
        c.send_and_wait("闲聊-1", "carol", "c-1").await["type"],
        "ack"
    );
    for i in 0..3 {
        let ack = a
            .send_and_wait("闲聊-1", &format!("alice {i}"), &format!("a-{i}"))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }

    let r = alice.delete(&slow_path).await;
    expect_status(r, StatusCode::NO_CONTENT, "alice lifts slow mode").await;
    b.wait_for("slow mode lifted", |f| {
        f["type"] == "slow_mode" && f["seconds"].is_null()
    })
    .await;
    assert_eq!(b.send_and_wait("闲聊-1", "two", "b-3").await["type"], "ack");
    assert_eq!(
        b.send_and_wait("闲聊-1", "three", "b-4").await["type"],
        "ack"
    );
    let texts: Vec<String> = bob
        .all_messages("闲聊-1")
        .await
        .iter()
        .filter(|m| m["from"] == "bob")
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
}
