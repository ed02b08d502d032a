//! Live messaging between users: order, acks, room isolation, resume with
//! `since`, and idempotent sends with `cid`.

use std::time::Duration;

use chat_tests::{seqs, spawn_app, spawn_app_with, without_rate_limit};
use serde_json::Value;

fn texts(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_in_a_room_see_each_others_messages_in_order_with_acks() {
    let app = spawn_app().await;
    let alice = app.user_client("alice", &["create_room"]).await;
    let bob = app.user_client("bob", &[]).await;
    alice.create_room_ok("lobby").await;

    let mut a = alice.ws().await;
    let mut b = bob.ws().await;
    let welcome = a.wait_for("welcome", |f| f["type"] == "welcome").await;
    assert_eq!(welcome["user"]["name"], "alice");
    assert_eq!(welcome["user"]["guest"], false);
    assert_eq!(a.join("lobby", None).await["type"], "joined");
    let joined = b.join("lobby", None).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let members = joined["members"].as_array().cloned().unwrap_or_default();
    assert!(
        members.contains(&"alice".into()) && members.contains(&"bob".into()),
        "{joined}"
    );

    // Both send at once, without waiting for acks.
    for i in 0..10 {
        a.send_message("lobby", &format!("alice {i}"), &format!("a-{i}"))
            .await;
        b.send_message("lobby", &format!("bob {i}"), &format!("b-{i}"))
            .await;
    }

    let mut seen = Vec::new();
    for (ws, me) in [(&mut a, "a"), (&mut b, "b")] {
        let mut messages = Vec::new();
        let mut acks = Vec::new();
        while messages.len() < 20 || acks.len() < 10 {
            let frame = ws.recv_json().await;
            match frame["type"].as_str() {
                Some("message") => messages.push(frame),
                Some("ack") => acks.push(frame),
                Some("error") => panic!("{me} got an error: {frame}"),
                _ => {}
            }
        }
        assert_eq!(
            seqs(&messages),
            (1..=20).collect::<Vec<_>>(),
            "{me}: every message once, in seq order"
        );
        for ack in &acks {
            let cid = ack["cid"].as_str().unwrap();
            assert!(cid.starts_with(me), "{me} got someone else's ack {ack}");
            assert_eq!(ack["room"], "lobby");
            let message = messages
                .iter()
                .find(|m| m["seq"] == ack["seq"])
                .unwrap_or_else(|| panic!("no message with the acked seq {ack}"));
            assert_eq!(
                message["cid"], ack["cid"],
                "the acked seq is the message sent with that cid"
            );
        }
        // No chatter after the last message: exactly once means no late repeat.
        let late: Vec<Value> = ws
            .drain(Duration::from_millis(300))
            .await
            .into_iter()
            .filter(|f| f["type"] == "message" || f["type"] == "ack")
            .collect();
        assert!(late.is_empty(), "{me} got more than it should: {late:?}");
        seen.push(messages);
    }

    let (from_a, from_b) = (&seen[0], &seen[1]);
    assert_eq!(from_a, from_b, "both users see the same messages");
    for m in from_a {
        assert_eq!(m["kind"], "chat");
        assert!(
            m["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')),
            "ts is RFC 3339 UTC: {m}"
        );
    }
    for who in ["alice", "bob"] {
        let own: Vec<String> = from_a
            .iter()
            .filter(|m| m["from"] == who)
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = (0..10).map(|i| format!("{who} {i}")).collect();
        assert_eq!(
            own, expected,
            "{who}'s messages keep the order they were sent in"
        );
    }
    // History says the same as the live stream.
    let history = alice.all_messages("lobby").await;
    assert_eq!(texts(&history), texts(from_a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_user_in_another_room_sees_none_of_their_messages() {
    let app = spawn_app().await;
    let alice = app.user_client("alice", &["create_room"]).await;
    let bob = app.user_client("bob", &[]).await;
    let carol = app.user_client("carol", &[]).await;
    alice.create_room_ok("lobby").await;
    alice.create_room_ok("elsewhere").await;

    let mut a = alice.ws().await;
    let mut b = bob.ws().await;
    let mut c = carol.ws().await;
    a.join("lobby", None).await;
    b.join("lobby", None).await;
    c.join("elsewhere", None).await;

    for i in 0..5 {
        let answer = a
            .send_and_wait("lobby", &format!("secret {i}"), &format!("s-{i}"))
            .await;
        assert_eq!(answer["type"], "ack", "{answer}");
    }
    assert_eq!(b.messages("lobby", 5).await.len(), 5);

    // A marker in carol's own room, sent after everything in the lobby was
    // delivered: by the time it reaches her, a leak would have too.
    let marker = a.send_and_wait("elsewhere", "marker", "m-1").await;
    assert_eq!(marker["type"], "ack", "{marker}");
    let mut frames = Vec::new();
    loop {
        let frame = c.recv_json().await;
        let done = frame["type"] == "message" && frame["text"] == "marker";
        frames.push(frame);
        if done {
            break;
        }
    }
    frames.extend(c.drain(Duration::from_millis(300)).await);
    let leaked: Vec<&Value> = frames
        .iter()
        .filter(|f| {
            f["room"] == "lobby" || f["text"].as_str().is_some_and(|t| t.starts_with("secret"))
        })
        .collect();
    assert!(leaked.is_empty(), "carol saw the lobby: {leaked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_misses_twenty_messages_gets_exactly_those_when_it_rejoins_with_since() {
    let app = spawn_app_with(without_rate_limit).await;
    let alice = app.user_client("alice", &["create_room"]).await;
    let bob = app.user_client("bob", &[]).await;
    alice.create_room_ok("lobby").await;
    let mut a = alice.ws().await;
    a.join("lobby", None).await;
    let mut b = bob.ws().await;
    b.join("lobby", None).await;

    assert_eq!(
        a.send_and_wait("lobby", "before", "c-0").await["type"],
        "ack"
    );
    let first = b.messages("lobby", 1).await;
    let last_seen = first[0]["seq"].as_u64().unwrap();
    b.close().await;

    let mut missed = Vec::new();
    for i in 1..=20 {
        let ack = a
            .send_and_wait("lobby", &format!("missed {i}"), &format!("c-{i}"))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        missed.push((ack["seq"].as_u64().unwrap(), format!("missed {i}")));
    }

    let mut b = bob.ws().await;
    let joined = b.join("lobby", Some(last_seen)).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["more"], false);
    let got: Vec<(u64, String)> = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, missed, "exactly the 20 missed messages, in order");

    // Live delivery goes on after the catch-up, without repeating it.
    let ack = a.send_and_wait("lobby", "after", "c-21").await;
    let next = b.messages("lobby", 1).await;
    assert_eq!(next[0]["seq"], ack["seq"]);
    assert_eq!(next[0]["text"], "after");
    assert_eq!(next[0]["seq"].as_u64(), Some(last_seen + 21));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_cid_gives_one_message() {
    let app = spawn_app().await;
    let alice = app.user_client("alice", &["create_room"]).await;
    let bob = app.user_client("bob", &[]).await;
    alice.create_room_ok("lobby").await;
    let mut a = alice.ws().await;
    a.join("lobby", None).await;
    let mut b = bob.ws().await;
    b.join("lobby", None).await;

    let first = a.send_and_wait("lobby", "only once", "retry-1").await;
    assert_eq!(first["type"], "ack", "{first}");
    let again = a.send_and_wait("lobby", "only once", "retry-1").await;
    assert_eq!(
        again["type"], "ack",
        "a repeated cid is acked again: {again}"
    );
    assert_eq!(again["seq"], first["seq"], "with the first seq");

    // A retry after a lost ack comes on a new connection.
    a.close().await;
    let mut a = alice.ws().await;
    a.join("lobby", None).await;
    let third = a.send_and_wait("lobby", "only once", "retry-1").await;
    assert_eq!(third["seq"], first["seq"], "{third}");

    let next = a.send_and_wait("lobby", "the next one", "retry-2").await;
    assert_eq!(
        next["seq"].as_u64(),
        first["seq"].as_u64().map(|s| s + 1),
        "the retries used up no seq"
    );
    let received = b.messages("lobby", 2).await;
    assert_eq!(texts(&received), ["only once", "the next one"]);
    let history = alice.all_messages("lobby").await;
    assert_eq!(texts(&history), ["only once", "the next one"]);
}
