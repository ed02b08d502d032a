//! Bad input never hurts others: oversized frames, malformed JSON, unknown
//! frame types and foreign origins get an answer, and everyone else carries on.

use chat_tests::{Ws, spawn_app};
use serde_json::{Value, json};

fn is_error(frame: &Value) -> bool {
    frame["type"] == "error"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_invalid_json_and_an_unknown_type_each_get_an_error_while_others_carry_on()
 {
    let app = spawn_app().await;
    let alice = app.user_client("alice", &["create_room"]).await;
    let bob = app.user_client("bob", &[]).await;
    alice.create_room_ok("lobby").await;
    let mut a = alice.ws().await;
    a.join("lobby", None).await;
    let mut b = bob.ws().await;
    b.join("lobby", None).await;

    // 100 KB: over the 64 KiB frame limit, far under the abusive 1 MiB.
    let big = json!({ "type": "send", "room": "lobby", "text": "x".repeat(100_000), "cid": "big" });
    a.send_text(big.to_string()).await;
    let error = a.wait_for("an error for the big frame", is_error).await;
    assert_eq!(error["code"], "too_large", "{error}");

    a.send_text("{this is not json").await;
    let error = a.wait_for("an error for invalid JSON", is_error).await;
    assert_eq!(error["code"], "invalid", "{error}");

    a.send_json(json!({ "type": "dance", "room": "lobby" }))
        .await;
    let error = a.wait_for("an error for an unknown type", is_error).await;
    assert_eq!(error["code"], "invalid", "{error}");

    // Within the frame limit but over 4,000 characters of text.
    a.send_message("lobby", &"字".repeat(4_001), "long").await;
    let error = a.wait_for("an error for a long text", is_error).await;
    assert!(
        error["code"] == "invalid" || error["code"] == "too_large",
        "{error}"
    );

    // The sender's socket lives on…
    a.send_json(json!({ "type": "ping", "cid": "p-1" })).await;
    let pong = a.wait_for("pong", |f| f["type"] == "pong").await;
    assert_eq!(pong["cid"], "p-1");
    // …and so do the others', and nothing bad was stored.
    let ack = a.send_and_wait("lobby", "still here", "ok-1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(
        ack["seq"], 1,
        "none of the bad frames stored anything: {ack}"
    );
    let seen = b.messages("lobby", 1).await;
    assert_eq!(seen[0]["text"], "still here");
    let ack = b.send_and_wait("lobby", "me too", "ok-2").await;
    assert_eq!(ack["seq"], 2, "{ack}");
    let history = alice.all_messages("lobby").await;
    assert_eq!(history.len(), 2);
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused_at_the_upgrade() {
    let app = spawn_app().await;
    let alice = app.user_client("alice", &[]).await;

    let foreign = Ws::connect(
        &app.ws_url,
        alice.cookie_header(),
        Some("http://evil.example"),
    )
    .await;
    assert!(foreign.is_err(), "a foreign Origin must be refused");

    let mut own = Ws::connect(&app.ws_url, alice.cookie_header(), Some(&app.base_url))
        .await
        .unwrap_or_else(|e| panic!("the server's own origin is accepted: {e}"));
    let welcome = own.wait_for("welcome", |f| f["type"] == "welcome").await;
    assert_eq!(welcome["user"]["name"], "alice");
}
