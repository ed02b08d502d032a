//! The WebSocket gateway of CONTRACT §4 over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chat_domain::{
    Actor, MessageText, Password, Ports, RoomEvents as _, RoomName, Session, SessionId,
    SessionStore, StoreError, StoreResult, SystemClock, Timestamp, UserEvent, Username,
};
use chat_http::HttpConfig;
use chat_memory::MemoryStore;
use common::{
    Ended, PASSWORD, TestApp, Ws, close_code, spawn_app, spawn_app_on, spawn_app_with,
    test_services,
};
use serde_json::json;
use tokio_tungstenite::tungstenite;

#[tokio::test]
async fn the_first_frame_says_who_the_connection_is() {
    let app = spawn_app().await;
    app.user("alice", &[]).await;
    let cookie = app.login("alice").await;
    let mut ws = app.ws_raw(Some(&cookie), None).await.unwrap();
    assert_eq!(
        ws.recv().await,
        json!({"type": "welcome", "user": {"name": "alice", "guest": false}})
    );
    let mut guest = app.ws_raw(None, None).await.unwrap();
    assert_eq!(
        guest.recv().await,
        json!({"type": "welcome", "user": {"name": "guest", "guest": true}})
    );
}

#[tokio::test]
async fn messages_reach_every_member_in_order_and_the_sender_gets_acks() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    app.room("alice", "闲聊").await;
    let mut a = app.ws(Some(&alice)).await;
    let mut b = app.ws(Some(&bob)).await;
    let joined = a.join("闲聊", None).await;
    assert_eq!(joined["messages"], json!([]));
    assert_eq!(joined["more"], false);
    assert_eq!(joined["member"], true);
    let joined = b.join("闲聊", None).await;
    assert_eq!(joined["members"], json!(["alice", "bob"]));
    assert!(joined["online"].as_array().unwrap().contains(&json!("bob")));

    for i in 1..=3 {
        a.send(json!({"type": "send", "room": "闲聊", "text": format!("你好 {i}"), "cid": format!("c-{i}")}))
            .await;
    }
    let mut acks = Vec::new();
    let mut seen_a = Vec::new();
    while acks.len() < 3 || seen_a.len() < 3 {
        let f = a.recv().await;
        match f["type"].as_str().unwrap() {
            "ack" => acks.push((f["cid"].clone(), f["seq"].as_u64().unwrap())),
            "message" => seen_a.push(f["seq"].as_u64().unwrap()),
            other => panic!("unexpected {other}: {f}"),
        }
    }
    assert_eq!(
        acks,
        [(json!("c-1"), 1), (json!("c-2"), 2), (json!("c-3"), 3)]
    );
    assert_eq!(seen_a, [1, 2, 3]);
    for i in 1..=3u64 {
        let m = b.recv().await;
        assert_eq!(m["type"], "message");
        assert_eq!(m["seq"], i);
        assert_eq!(m["from"], "alice");
        assert_eq!(m["room"], "闲聊");
        assert_eq!(m["text"], format!("你好 {i}"));
        assert_eq!(m["cid"], format!("c-{i}"));
    }
    b.expect_silence(Duration::from_millis(200)).await;
}

/// A client may send without waiting for acks: the sends are stored in the
/// order they were written and answered in that order, a refused one in its
/// place, while other commands are answered meanwhile.
#[tokio::test]
async fn pipelined_sends_are_stored_and_answered_in_the_order_written() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    let room = app.room("alice", "r").await;
    let mut a = app.ws(Some(&alice)).await;
    a.join("r", None).await;
    const N: usize = 40;
    const REFUSED: usize = 17;
    for i in 1..=N {
        let target = if i == REFUSED { "nowhere" } else { "r" };
        a.send(json!({"type": "send", "room": target, "text": format!("m{i}"), "cid": format!("c-{i}")}))
            .await;
        if i % 10 == 0 {
            a.send(json!({"type": "ping", "cid": format!("p-{i}")}))
                .await;
        }
    }
    let mut answers = Vec::new();
    let mut pongs = 0;
    let mut delivered = Vec::new();
    while answers.len() < N || pongs < N / 10 || delivered.len() < N - 1 {
        let f = a.recv().await;
        match f["type"].as_str().unwrap() {
            "ack" => answers.push((f["cid"].clone(), f["seq"].as_u64())),
            "error" => {
                assert_eq!(f["code"], "not_found", "{f}");
                answers.push((f["cid"].clone(), None));
            }
            "pong" => pongs += 1,
            "message" => delivered.push(f["text"].as_str().unwrap().to_owned()),
            other => panic!("unexpected {other}: {f}"),
        }
    }
    let mut seq = 0;
    let expected: Vec<(serde_json::Value, Option<u64>)> = (1..=N)
        .map(|i| {
            let answer = (i != REFUSED).then(|| {
                seq += 1;
                seq
            });
            (json!(format!("c-{i}")), answer)
        })
        .collect();
    assert_eq!(answers, expected);
    let written: Vec<String> = (1..=N)
        .filter(|&i| i != REFUSED)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(delivered, written);
    let stored = app
        .services
        .chat
        .history(&app.actor("alice").await, &room, None, 100)
        .await
        .unwrap();
    let stored: Vec<String> = stored
        .messages
        .iter()
        .map(|m| m.text.as_str().to_owned())
        .collect();
    assert_eq!(stored, written);
}

#[tokio::test]
async fn rejoining_with_since_gets_exactly_what_was_missed() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    let room = app.room("alice", "r").await;
    let actor = app.actor("alice").await;
    let say = |text: &'static str| {
        let (app, room, actor) = (&app, &room, &actor);
        async move {
            app.services
                .chat
                .send(actor, room, MessageText::parse(text).unwrap(), None)
                .await
                .unwrap();
        }
    };
    say("one").await;
    say("two").await;
    let mut b = app.ws(Some(&bob)).await;
    let joined = b.join("r", None).await;
    assert_eq!(joined["messages"].as_array().unwrap().len(), 2);
    drop(b);

    say("three").await;
    say("four").await;
    let mut a = app.ws(Some(&alice)).await;
    a.join("r", None).await;

    let mut b = app.ws(Some(&bob)).await;
    let joined = b.join("r", Some(2)).await;
    let texts: Vec<&str> = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["three", "four"]);
    assert_eq!(joined["expired"], false);

    // And live from there, without repeats.
    a.send(json!({"type": "send", "room": "r", "text": "five"}))
        .await;
    let m = b.recv().await;
    assert_eq!(
        (m["seq"].as_u64(), m["text"].as_str()),
        (Some(5), Some("five"))
    );
    b.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_resume_beyond_the_join_limit_streams_the_rest_before_live_messages() {
    let app = spawn_app().await;
    app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    let room = app.room("alice", "r").await;
    let actor = app.actor("alice").await;
    let say = |text: String| {
        let (app, room, actor) = (&app, &room, &actor);
        async move {
            let text = MessageText::parse(&text).unwrap();
            app.services
                .chat
                .send(actor, room, text, None)
                .await
                .unwrap();
        }
    };
    for i in 0..1100 {
        say(format!("m{i}")).await;
    }

    let mut b = app.ws(Some(&bob)).await;
    let joined = b.join("r", Some(0)).await;
    let first: Vec<u64> = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(first, (1..=1000).collect::<Vec<_>>());
    assert_eq!(joined["more"], true);

    // A live message beyond the hole: the connection first sends 1001..=1100.
    say("live".to_owned()).await;
    for want in 1001..=1101 {
        let m = b.recv_type("message").await;
        assert_eq!(m["seq"].as_u64(), Some(want));
    }
    b.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_retried_cid_gets_the_first_ack_and_no_second_message() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    app.room("alice", "r").await;
    let mut a = app.ws(Some(&alice)).await;
    let mut b = app.ws(Some(&bob)).await;
    a.join("r", None).await;
    b.join("r", None).await;
    let frame = json!({"type": "send", "room": "r", "text": "once", "cid": "c-1"});
    a.send(frame.clone()).await;
    let ack1 = a.recv_type("ack").await;
    a.send(frame).await;
    let ack2 = a.recv_type("ack").await;
    assert_eq!(ack1, ack2);
    assert_eq!(
        ack1,
        json!({"type": "ack", "cid": "c-1", "room": "r", "seq": 1})
    );
    assert_eq!(b.recv().await["seq"], 1);
    b.expect_silence(Duration::from_millis(300)).await;
    let page = app
        .services
        .chat
        .history(&Actor::Guest, &RoomName::parse("r").unwrap(), None, 50)
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 1);
}

#[tokio::test]
async fn bad_frames_get_errors_and_everyone_carries_on() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    app.room("alice", "r").await;
    let mut a = app.ws(Some(&alice)).await;
    let mut b = app.ws(Some(&bob)).await;
    a.join("r", None).await;
    b.join("r", None).await;

    a.send_text(format!(
        r#"{{"type":"send","room":"r","text":"{}"}}"#,
        "x".repeat(100 * 1024)
    ))
    .await;
    let e = a.recv().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("too_large"))
    );

    a.send_text("{not json".to_owned()).await;
    let e = a.recv().await;
    assert_eq!(e["code"], "invalid");

    a.send(json!({"type": "fly", "room": "r", "cid": "c-9"}))
        .await;
    let e = a.recv().await;
    assert_eq!(
        (e["code"].as_str(), e["cid"].as_str()),
        (Some("invalid"), Some("c-9"))
    );

    a.send(json!({"type": "send", "room": "r"})).await;
    assert_eq!(a.recv().await["code"], "invalid");

    a.send(json!({"type": "send", "room": "r", "text": "字".repeat(4001), "cid": "long"}))
        .await;
    let e = a.recv().await;
    assert_eq!(
        (e["code"].as_str(), e["cid"].as_str()),
        (Some("invalid"), Some("long"))
    );

    a.send(json!({"type": "join", "room": "nowhere"})).await;
    let e = a.recv().await;
    assert_eq!(
        (e["code"].as_str(), e["room"].as_str()),
        (Some("not_found"), Some("nowhere"))
    );

    // Nothing bad was stored or broadcast; both sockets still work.
    b.expect_silence(Duration::from_millis(200)).await;
    a.send(json!({"type": "ping", "cid": "p-1"})).await;
    assert_eq!(a.recv().await, json!({"type": "pong", "cid": "p-1"}));
    a.send(json!({"type": "send", "room": "r", "text": "still here"}))
        .await;
    let m = b.recv().await;
    assert_eq!(
        (m["seq"].as_u64(), m["text"].as_str()),
        (Some(1), Some("still here"))
    );
}

#[tokio::test]
async fn a_frame_over_a_mebibyte_closes_the_socket_with_1009() {
    let app = spawn_app().await;
    let mut guest = app.ws(None).await;
    let mut other = app.ws(None).await;
    // The write may fail half-way: the server stops reading at the header.
    let _ = futures::SinkExt::send(
        &mut guest.inner,
        tungstenite::Message::text(format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(2 * 1024 * 1024)
        )),
    )
    .await;
    let ended = guest.until_end(Duration::from_secs(10)).await;
    match &ended {
        Ended::Closed(_) => assert_eq!(close_code(&ended), Some(1009), "{ended:?}"),
        // The peer may reset the connection while the client is still
        // writing the rest of the frame; the server must survive either way.
        Ended::Error(_) | Ended::Eof => {}
    }
    other.send(json!({"type": "ping"})).await;
    assert_eq!(other.recv().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn a_foreign_origin_is_refused_at_the_upgrade() {
    let app = spawn_app().await;
    match app.ws_raw(None, Some("http://evil.example")).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a foreign origin was let in"),
    }
    let own = format!("http://{}", app.addr);
    let mut ws = app.ws_raw(None, Some(&own)).await.unwrap();
    assert_eq!(ws.recv().await["type"], "welcome");

    let config = HttpConfig {
        allowed_origins: vec!["https://chat.example.com".to_owned()],
        ..HttpConfig::default()
    };
    let app = spawn_app_with(config, Vec::new()).await;
    assert!(
        app.ws_raw(None, Some("https://chat.example.com"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_guest_talks_to_the_bot_privately_and_nothing_is_stored() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.room("alice", "lobby").await;
    let mut member = app.ws(Some(&alice)).await;
    member.join("lobby", None).await;
    let mut guest = app.ws(None).await;
    let joined = guest.join("lobby", None).await;
    assert_eq!(joined["member"], false);
    // Right after `joined`, the bot greets the guest, privately.
    let greeting = guest.recv().await;
    assert_eq!(greeting["type"], "message");
    assert_eq!(greeting["from"], "bot");
    assert_eq!(greeting["bot_name"], chat_domain::DEFAULT_BOT_NAME);
    assert_eq!(greeting["text"], chat_domain::DEFAULT_BOT_GREETING);
    assert_eq!(greeting["room"], "lobby");
    assert_eq!(greeting["private"], true);
    assert!(greeting.get("seq").is_none());
    assert!(greeting["ts"].as_str().unwrap().ends_with('Z'));
    guest
        .send(json!({"type": "send", "room": "lobby", "text": "你好", "cid": "g-1"}))
        .await;
    let reply = guest.recv().await;
    assert_eq!(reply["type"], "message");
    assert_eq!(reply["from"], "bot");
    assert_eq!(reply["private"], true);
    assert_eq!(reply["room"], "lobby");
    assert!(reply.get("seq").is_none());
    assert!(!reply["bot_name"].as_str().unwrap().is_empty());
    member.expect_silence(Duration::from_millis(300)).await;
    let page = app
        .services
        .chat
        .history(&Actor::Guest, &RoomName::parse("lobby").unwrap(), None, 50)
        .await
        .unwrap();
    assert!(page.messages.is_empty());
}

#[tokio::test]
async fn a_guest_flooding_the_bot_is_rate_limited() {
    let app = spawn_app().await;
    app.user("alice", &["create_room"]).await;
    app.room("alice", "lobby").await;
    let mut guest = app.ws(None).await;
    for _ in 0..10 {
        guest
            .send(json!({"type": "send", "room": "lobby", "text": "hi"}))
            .await;
    }
    let mut limited = None;
    for _ in 0..10 {
        let f = guest.recv().await;
        if f["type"] == "error" {
            limited = Some(f);
        }
    }
    let e = limited.expect("the guest was limited");
    assert_eq!(e["code"], "rate_limited");
    assert!(e["retry_after"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn a_flood_of_frames_gets_errors_then_a_close() {
    let app = spawn_app().await;
    let mut flooder = app.ws(None).await;
    let mut other = app.ws(None).await;

    // A little too fast: errors, and the socket lives on.
    for i in 0..80 {
        flooder
            .send(json!({"type": "ping", "cid": format!("p{i}")}))
            .await;
    }
    // Every ping is answered once, by a pong or by a refusal carrying its
    // cid (refused unread, but the client can still tell which it was).
    let mut limited = 0;
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..80 {
        let f = flooder.recv().await;
        if f["type"] == "error" {
            assert_eq!(f["code"], "rate_limited");
            assert!(f["retry_after"].as_f64().unwrap() > 0.0, "{f}");
            limited += 1;
        } else {
            assert_eq!(f["type"], "pong");
        }
        assert!(
            answered.insert(f["cid"].as_str().unwrap().to_owned()),
            "{f}"
        );
    }
    assert!(limited > 0);
    assert_eq!(answered.len(), 80);

    // Far too fast: closed with 1008.
    for i in 0..400 {
        let frame = json!({"type": "ping", "cid": format!("q{i}")}).to_string();
        if futures::SinkExt::send(&mut flooder.inner, tungstenite::Message::text(frame))
            .await
            .is_err()
        {
            break;
        }
    }
    let ended = flooder.until_end(Duration::from_secs(5)).await;
    assert_eq!(close_code(&ended), Some(1008), "{ended:?}");
    other.send(json!({"type": "ping"})).await;
    assert_eq!(other.recv().await, json!({"type": "pong"}));
}

#[tokio::test]
async fn direct_messages_reach_both_users_without_joining() {
    let app = spawn_app().await;
    app.user("alice", &[]).await;
    app.user("bob", &[]).await;
    let alice = app.login("alice").await;
    let bob = app.login("bob").await;
    let mut a = app.ws(Some(&alice)).await;
    let mut b = app.ws(Some(&bob)).await;
    a.send(json!({"type": "dm", "to": "bob", "text": "hi bob", "cid": "d-1"}))
        .await;

    let mut got_ack = false;
    let mut got_opened = false;
    let mut a_messages = Vec::new();
    while !(got_ack && got_opened && !a_messages.is_empty()) {
        let f = a.recv().await;
        match f["type"].as_str().unwrap() {
            "ack" => {
                assert_eq!(
                    f,
                    json!({"type": "ack", "cid": "d-1", "room": "@alice+bob", "seq": 1})
                );
                got_ack = true;
            }
            "dm_opened" => {
                assert_eq!(
                    f,
                    json!({"type": "dm_opened", "room": "@alice+bob", "with": "bob"})
                );
                got_opened = true;
            }
            "message" => a_messages.push(f),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(a_messages.len(), 1);

    assert_eq!(
        b.recv().await,
        json!({"type": "dm_opened", "room": "@alice+bob", "with": "alice"})
    );
    let m = b.recv().await;
    assert_eq!(
        (m["seq"].as_u64(), m["text"].as_str()),
        (Some(1), Some("hi bob"))
    );

    // Later messages of the pair arrive live, once each.
    b.send(json!({"type": "dm", "to": "alice", "text": "hi alice"}))
        .await;
    assert_eq!(b.recv_type("message").await["seq"], 2);
    assert_eq!(a.recv_type("message").await["seq"], 2);
    a.expect_silence(Duration::from_millis(200)).await;

    // A new connection follows existing direct rooms from the start.
    let mut b2 = app.ws(Some(&bob)).await;
    a.send(json!({"type": "dm", "to": "bob", "text": "third"}))
        .await;
    let m = b2.recv().await;
    assert_eq!(
        (m["seq"].as_u64(), m["text"].as_str()),
        (Some(3), Some("third"))
    );
}

#[tokio::test]
async fn typing_is_shown_to_others_but_not_echoed() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    app.room("alice", "r").await;
    let mut a = app.ws(Some(&alice)).await;
    let mut b = app.ws(Some(&bob)).await;
    a.join("r", None).await;
    b.join("r", None).await;
    a.send(json!({"type": "typing", "room": "r"})).await;
    assert_eq!(
        b.recv_type("typing").await,
        json!({"type": "typing", "room": "r", "user": "alice", "expires_in": 5})
    );
    a.send(json!({"type": "ping"})).await;
    loop {
        let f = a.recv_any().await;
        assert_ne!(f["type"], "typing", "typing was echoed");
        if f["type"] == "pong" {
            break;
        }
    }
}

#[tokio::test]
async fn presence_announces_joins_and_leaves() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    app.room("alice", "r").await;
    let mut a = app.ws(Some(&alice)).await;
    a.join("r", None).await;
    let mut b = app.ws(Some(&bob)).await;
    b.join("r", None).await;
    loop {
        let f = a.recv_type("presence").await;
        if f["user"] == "bob" {
            assert_eq!(f["event"], "join");
            break;
        }
    }
    drop(b);
    loop {
        let f = a.recv_type("presence").await;
        if f["user"] == "bob" {
            assert_eq!(f["event"], "leave");
            break;
        }
    }
}

#[tokio::test]
async fn a_kicked_member_leaves_the_room_at_once() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    let room = app.room("alice", "r").await;
    let mut a = app.ws(Some(&alice)).await;
    let mut b = app.ws(Some(&bob)).await;
    a.join("r", None).await;
    b.join("r", None).await;
    app.services
        .moderation
        .kick(
            &app.actor("alice").await,
            &room,
            &Username::parse("bob").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        b.recv_type("removed").await,
        json!({"type": "removed", "room": "r", "user": "bob"})
    );
    assert_eq!(a.recv_type("removed").await["user"], "bob");
    // Bob no longer follows the room; his sends are refused.
    a.send(json!({"type": "send", "room": "r", "text": "after"}))
        .await;
    a.recv_type("ack").await;
    b.send(json!({"type": "send", "room": "r", "text": "me too", "cid": "k"}))
        .await;
    let e = b.recv_type("error").await;
    assert_eq!(
        (e["code"].as_str(), e["cid"].as_str()),
        (Some("forbidden"), Some("k"))
    );
    b.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_muted_member_is_refused_and_everyone_is_told() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    let room = app.room("alice", "r").await;
    let mut a = app.ws(Some(&alice)).await;
    let mut b = app.ws(Some(&bob)).await;
    a.join("r", None).await;
    b.join("r", None).await;
    app.services
        .moderation
        .mute(
            &app.actor("alice").await,
            &room,
            &Username::parse("bob").unwrap(),
            Some(Duration::from_secs(300)),
        )
        .await
        .unwrap();
    let muted = a.recv_type("muted").await;
    assert_eq!(muted["user"], "bob");
    assert!(muted["until"].as_str().unwrap().ends_with('Z'));
    b.recv_type("muted").await;
    b.send(json!({"type": "send", "room": "r", "text": "hello?"}))
        .await;
    assert_eq!(b.recv_type("error").await["code"], "forbidden");
}

#[tokio::test]
async fn a_deleted_user_is_disconnected_with_1008() {
    let app = spawn_app().await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    let mut b = app.ws(Some(&bob)).await;
    app.services
        .accounts
        .delete_user(&Actor::System, &Username::parse("bob").unwrap())
        .await
        .unwrap();
    let ended = b.until_end(Duration::from_secs(5)).await;
    assert_eq!(close_code(&ended), Some(1008), "{ended:?}");
}

#[tokio::test]
async fn history_pages_backwards() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    let room = app.room("alice", "r").await;
    let actor = app.actor("alice").await;
    for i in 0..5 {
        app.services
            .chat
            .send(
                &actor,
                &room,
                MessageText::parse(&format!("m{i}")).unwrap(),
                None,
            )
            .await
            .unwrap();
    }
    let mut a = app.ws(Some(&alice)).await;
    a.send(json!({"type": "history", "room": "r", "before": 4, "limit": 2}))
        .await;
    let h = a.recv().await;
    assert_eq!(h["type"], "history");
    assert_eq!(h["more"], true);
    let seqs: Vec<u64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3]);
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_instead_of_buffered_forever() {
    let config = HttpConfig {
        outbound_queue: 4,
        ..HttpConfig::default()
    };
    let app = spawn_app_with(config, Vec::new()).await;
    let alice = app.creator("alice").await;
    let room = app.room("alice", "r").await;
    let actor = app.actor("alice").await;
    let mut slow = app.ws(None).await;
    slow.join("r", None).await;

    // The slow client reads nothing while a lot is said: far more than the
    // socket buffers, the outgoing queue and the room's channel hold.
    let text = "字".repeat(4000);
    let sent = 2000;
    for _ in 0..sent {
        app.services
            .chat
            .send(&actor, &room, MessageText::parse(&text).unwrap(), None)
            .await
            .unwrap();
    }
    drop(alice);
    // Now it reads: some of the messages, then the end — not all of them.
    let mut received = 0;
    let ended = loop {
        match tokio::time::timeout(
            Duration::from_secs(15),
            futures::StreamExt::next(&mut slow.inner),
        )
        .await
        .expect("the socket ends")
        {
            Some(Ok(tungstenite::Message::Text(_))) => received += 1,
            Some(Ok(tungstenite::Message::Close(f))) => break Ended::Closed(f),
            Some(Ok(_)) => {}
            Some(Err(e)) => break Ended::Error(e.to_string()),
            None => break Ended::Eof,
        }
    };
    assert!(received < sent, "received {received} of {sent}");
    if let Ended::Closed(Some(_)) = &ended {
        assert_eq!(close_code(&ended), Some(1013));
    }
    tokio::time::timeout(Duration::from_secs(10), app.shutdown.drained())
        .await
        .expect("the server let go of the slow socket");
}

#[tokio::test]
async fn a_silent_client_is_dropped_and_a_listening_one_kept() {
    let config = HttpConfig {
        heartbeat: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    };
    let app = spawn_app_with(config, Vec::new()).await;
    let mut listening = app.ws(None).await;
    let mut silent = app.ws(None).await;
    // Reading answers the server's pings (tungstenite sends the pongs).
    listening.expect_silence(Duration::from_millis(900)).await;
    // It was dropped long ago: reading finds the close frame, or (when the
    // client first tries to send its overdue pongs) a broken pipe.
    let ended = silent.until_end(Duration::from_secs(5)).await;
    match &ended {
        Ended::Closed(_) => assert_eq!(close_code(&ended), Some(1001), "{ended:?}"),
        Ended::Error(_) | Ended::Eof => {}
    }
    listening
        .send(json!({"type": "ping", "cid": "still"}))
        .await;
    assert_eq!(listening.recv().await["cid"], "still");
}

#[tokio::test]
async fn logging_out_elsewhere_ends_the_socket_with_1008() {
    let config = HttpConfig {
        heartbeat: Duration::from_millis(50),
        ..HttpConfig::default()
    };
    let app = spawn_app_with(config, Vec::new()).await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    let mut ws = app.ws(Some(&bob)).await;
    let (status, _) = app
        .send_json(reqwest::Method::DELETE, "/api/session", Some(&bob), None)
        .await;
    assert_eq!(status, 204);
    let ended = ws.until_end(Duration::from_secs(5)).await;
    assert_eq!(close_code(&ended), Some(1008), "{ended:?}");
}

/// Logs `name` in twice and opens a socket on each session: the default
/// heartbeat (20 s, a session check every third beat) is far longer than
/// the tests below wait, so only the user-event notice can close a socket.
async fn two_sessions(app: &TestApp, name: &str) -> ((String, Ws), (String, Ws)) {
    app.user(name, &[]).await;
    let here = app.login(name).await;
    let there = app.login(name).await;
    let (ws_here, ws_there) = (app.ws(Some(&here)).await, app.ws(Some(&there)).await);
    ((here, ws_here), (there, ws_there))
}

/// The socket still answers.
async fn still_open(ws: &mut Ws) {
    ws.send(json!({"type": "ping", "cid": "still"})).await;
    let pong = ws.recv_type("pong").await;
    assert_eq!(pong["cid"], "still");
}

#[tokio::test]
async fn changing_my_password_closes_my_other_sockets_at_once_but_not_this_one() {
    let app = spawn_app().await;
    let ((here, mut ws_here), (_, mut ws_there)) = two_sessions(&app, "bob").await;
    // The account API lives in chat-admin; this is the service it calls.
    let session = SessionId::parse(here.split_once('=').unwrap().1).unwrap();
    app.services
        .accounts
        .change_own_password(
            &app.actor("bob").await,
            Some(&session),
            PASSWORD,
            Password::parse("a-new-password").unwrap(),
        )
        .await
        .unwrap();
    let ended = ws_there.until_end(Duration::from_secs(5)).await;
    assert_eq!(close_code(&ended), Some(1008), "{ended:?}");
    still_open(&mut ws_here).await;
}

#[tokio::test]
async fn logging_out_closes_that_sessions_sockets_at_once_and_no_others() {
    let app = spawn_app().await;
    let ((_, mut ws_here), (there, mut ws_there)) = two_sessions(&app, "bob").await;
    let (status, _) = app
        .send_json(reqwest::Method::DELETE, "/api/session", Some(&there), None)
        .await;
    assert_eq!(status, 204);
    let ended = ws_there.until_end(Duration::from_secs(5)).await;
    assert_eq!(close_code(&ended), Some(1008), "{ended:?}");
    still_open(&mut ws_here).await;
}

/// The sessions of a [`MemoryStore`], with reads that can be made to fail
/// as a store that cannot be reached does.
struct FlakySessions {
    inner: Arc<MemoryStore>,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl SessionStore for FlakySessions {
    async fn create_session(&self, session: Session) -> StoreResult<()> {
        self.inner.create_session(session).await
    }

    async fn session(&self, id: &SessionId, now: Timestamp) -> StoreResult<Option<Session>> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("the session store is down (test)"));
        }
        self.inner.session(id, now).await
    }

    async fn delete_session(&self, id: &SessionId) -> StoreResult<()> {
        self.inner.delete_session(id).await
    }

    async fn delete_user_sessions(
        &self,
        user: &Username,
        keep: Option<&SessionId>,
    ) -> StoreResult<u64> {
        self.inner.delete_user_sessions(user, keep).await
    }
}

#[tokio::test]
async fn a_revocation_notice_the_store_cannot_check_closes_with_1013() {
    let store = Arc::new(MemoryStore::new());
    let sessions = Arc::new(FlakySessions {
        inner: Arc::clone(&store),
        down: AtomicBool::new(false),
    });
    let mut ports = Ports::single(Arc::clone(&store), Arc::new(SystemClock));
    ports.sessions = Arc::clone(&sessions) as Arc<dyn SessionStore>;
    let app = spawn_app_on(&ports, Vec::new(), HttpConfig::default(), test_services()).await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    let mut ws = app.ws(Some(&bob)).await;

    sessions.down.store(true, Ordering::SeqCst);
    store
        .publish_user(&Username::parse("bob").unwrap(), UserEvent::SessionsEnded)
        .await
        .unwrap();
    let ended = ws.until_end(Duration::from_secs(5)).await;
    assert_eq!(close_code(&ended), Some(1013), "{ended:?}");
}

#[tokio::test]
async fn shutdown_sends_every_socket_a_close_frame_and_drains() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.room("alice", "r").await;
    let mut a = app.ws(Some(&alice)).await;
    a.join("r", None).await;
    let mut g = app.ws(None).await;
    assert_eq!(app.shutdown.active(), 2);
    app.shutdown.trigger();
    for ws in [&mut a, &mut g] {
        let ended = ws.until_end(Duration::from_secs(5)).await;
        assert_eq!(close_code(&ended), Some(1001), "{ended:?}");
    }
    tokio::time::timeout(Duration::from_secs(10), app.shutdown.drained())
        .await
        .expect("every socket is gone");
    assert!(app.ws_raw(None, None).await.is_err());
}

#[tokio::test]
async fn a_guest_is_greeted_once_per_join_and_users_are_not() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.room("alice", "lobby").await;
    app.room("alice", "闲聊-1").await;
    let mut user = app.ws(Some(&alice)).await;
    user.join("lobby", None).await;
    user.send(json!({"type": "ping", "cid": "p"})).await;
    assert_eq!(user.recv().await["type"], "pong", "users are not greeted");

    let mut guest = app.ws(None).await;
    guest.join("lobby", None).await;
    assert_eq!(guest.recv().await["from"], "bot");
    // Joining again on the same socket does not greet again; another room does.
    guest.join("lobby", None).await;
    guest.join("闲聊-1", None).await;
    let greeting = guest.recv().await;
    assert_eq!(
        (greeting["from"].as_str(), greeting["room"].as_str()),
        (Some("bot"), Some("闲聊-1"))
    );
    guest.send(json!({"type": "ping", "cid": "p"})).await;
    assert_eq!(guest.recv().await["type"], "pong");
    user.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn an_empty_greeting_greets_nobody() {
    let services = chat_domain::ServiceConfig {
        bot_greeting: String::new(),
        ..common::test_services()
    };
    let app = common::spawn_app_with_services(HttpConfig::default(), Vec::new(), services).await;
    app.creator("alice").await;
    app.room("alice", "lobby").await;
    let mut guest = app.ws(None).await;
    guest.join("lobby", None).await;
    guest.send(json!({"type": "ping", "cid": "p"})).await;
    assert_eq!(guest.recv().await["type"], "pong");
}

#[tokio::test]
async fn slow_mode_is_set_by_moderators_over_the_api_and_announced() {
    let app = spawn_app().await;
    let alice = app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    app.room("alice", "闲聊-1").await;
    let path = "/api/rooms/%E9%97%B2%E8%81%8A-1/slow_mode";
    let mut b = app.ws(Some(&bob)).await;
    assert_eq!(b.join("闲聊-1", None).await["slow_mode"], json!(null));

    let put = reqwest::Method::PUT;
    let (status, _) = app
        .send_json(put.clone(), path, None, Some(json!({"seconds": 30})))
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .send_json(put.clone(), path, Some(&bob), Some(json!({"seconds": 30})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    for bad in [
        json!({"seconds": 0}),
        json!({"seconds": 3601}),
        json!({"seconds": "x"}),
        json!({}),
    ] {
        let (status, body) = app
            .send_json(put.clone(), path, Some(&alice), Some(bad.clone()))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("invalid")),
            "{bad}"
        );
    }
    let (status, _) = app
        .send_json(
            reqwest::Method::PUT,
            "/api/rooms/nowhere/slow_mode",
            Some(&alice),
            Some(json!({"seconds": 30})),
        )
        .await;
    assert_eq!(status, 404);

    let (status, _) = app
        .send_json(put, path, Some(&alice), Some(json!({"seconds": 30})))
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        b.recv_type("slow_mode").await,
        json!({"type": "slow_mode", "room": "闲聊-1", "seconds": 30})
    );
    let mut again = app.ws(Some(&bob)).await;
    assert_eq!(again.join("闲聊-1", None).await["slow_mode"], 30);

    let (status, _) = app
        .send_json(reqwest::Method::DELETE, path, Some(&alice), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        b.recv_type("slow_mode").await,
        json!({"type": "slow_mode", "room": "闲聊-1", "seconds": null})
    );
}

#[tokio::test]
async fn a_client_that_stops_answering_goes_offline_once_within_the_presence_timeout() {
    let ttl = Duration::from_millis(900);
    let services = chat_domain::ServiceConfig {
        presence_ttl: ttl,
        ..common::test_services()
    };
    let config = HttpConfig::default().for_presence_ttl(ttl);
    let app = common::spawn_app_with_services(config, Vec::new(), services).await;
    let alice = app.creator("alice").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    app.room("alice", "r").await;
    let mut a = app.ws(Some(&alice)).await;
    a.join("r", None).await;
    let mut silent = app.ws(Some(&bob)).await;
    silent.join("r", None).await;
    let presence_of_bob = |f: &serde_json::Value| f["type"] == "presence" && f["user"] == "bob";
    let join = loop {
        let f = a.recv_any().await;
        if presence_of_bob(&f) {
            break f;
        }
    };
    assert_eq!(join["event"], "join");
    // From here on bob's client reads nothing, so it answers no ping.
    let started = tokio::time::Instant::now();
    let leave = loop {
        let f = a.recv_any().await;
        if presence_of_bob(&f) {
            break f;
        }
    };
    assert_eq!(leave["event"], "leave");
    let waited = started.elapsed();
    assert!(waited >= ttl / 2, "bob was dropped after only {waited:?}");
    // Exactly one leave, and he is no longer online.
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + 2 * ttl;
    while let Ok(Some(Ok(m))) =
        tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut a.inner)).await
    {
        if let tungstenite::Message::Text(t) = m {
            frames.push(serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap());
        }
    }
    assert!(!frames.iter().any(presence_of_bob), "{frames:?}");
    let mut fresh = app.ws(Some(&alice)).await;
    assert_eq!(fresh.join("r", None).await["online"], json!(["alice"]));
    drop(silent);
}
