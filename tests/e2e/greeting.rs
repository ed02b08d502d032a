//! The guests' bot greets a guest who opens a public room: right after
//! `joined`, one private `message` from the bot with the configured name
//! and greeting, never stored and never seen by anyone else.

use std::time::Duration;

use chat_tests::spawn_app_with;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_opening_a_public_room_gets_the_configured_greeting_privately() {
    let app = spawn_app_with(|s| {
        s.bot_name = "鸭鸭".to_owned();
        s.bot_greeting = "欢迎光临!Welcome, guest!".to_owned();
    })
    .await;
    let alice = app.user_client("alice", &["create_room"]).await;
    alice.create_room_ok("闲聊-1").await;
    let mut a = alice.ws().await;
    let joined = a.join("闲聊-1", None).await;
    assert_eq!(joined["type"], "joined");

    let mut g = app.guest().ws().await;
    g.wait_for("welcome", |f| f["type"] == "welcome").await;
    g.send_json(json!({ "type": "join", "room": "闲聊-1" }))
        .await;
    let first = g.recv_until("joined").await;
    assert_eq!(first["room"], "闲聊-1");
    let greeting = g.recv_json().await;
    let ts = greeting["ts"].as_str().expect("a timestamp").to_owned();
    assert!(ts.ends_with('Z') && ts.contains('T'), "{greeting}");
    assert_eq!(
        greeting,
        json!({
            "type": "message",
            "room": "闲聊-1",
            "from": "bot",
            "bot_name": "鸭鸭",
            "text": "欢迎光临!Welcome, guest!",
            "ts": ts,
            "private": true,
        })
    );

    // Alice is not greeted, saw nothing of it, and nothing was stored.
    a.send_json(json!({ "type": "ping", "cid": "p-1" })).await;
    let frames = a.drain(Duration::from_millis(300)).await;
    assert!(
        frames.iter().all(|f| f["from"] != "bot"),
        "the greeting reached a user: {frames:?}"
    );
    assert!(frames.iter().any(|f| f["type"] == "pong"), "{frames:?}");
    assert!(alice.all_messages("闲聊-1").await.is_empty());

    // The page names the same bot as the WebSocket: one setting, one name.
    let page = app
        .guest()
        .get("/rooms/%E9%97%B2%E8%81%8A-1")
        .await
        .text()
        .await
        .expect("the room page");
    assert!(page.contains("data-bot=\"鸭鸭\""), "{page}");
}
