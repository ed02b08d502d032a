//! Direct messages are private (CONTRACT §4): a third user and a guest can
//! neither read, post to, join, list nor even detect a conversation, over
//! HTTP and over the WebSocket — an existing direct room answers exactly
//! like one that does not exist.

use std::time::Duration;

use chat_tests::{Client, Ws, encode, expect_status, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The direct room of alice and 小明 ('a' sorts before '小'), and its two users.
const DM: (&str, &str, &str) = ("@alice+小明", "alice", "小明");
/// A direct room of two other users that was never opened.
const NEVER: (&str, &str, &str) = ("@alice+zoe", "alice", "zoe");

/// Every spelling of a direct room's history path a client might use: `@`
/// and `+` percent-encoded, and left as they are (both may appear in a path).
fn history_paths((room, a, b): (&str, &str, &str)) -> Vec<String> {
    vec![
        format!("/api/rooms/{}/messages", encode(room)),
        format!("/api/rooms/@{}+{}/messages", encode(a), encode(b)),
    ]
}

/// What `client` learns about `room` through every door: the answers, with
/// the room's name blanked out so that answers about two rooms compare.
async fn probe(
    client: &Client,
    ws: &mut Ws,
    dm: (&'static str, &'static str, &'static str),
    n: usize,
) -> Vec<String> {
    let room = dm.0;
    let mut seen = Vec::new();
    for path in history_paths(dm) {
        let r = client.get(&path).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        seen.push(format!("GET history {status} {}", body["error"]["code"]));
        let r = client
            .post_json(&path, &json!({ "text": format!("let me in {n}") }))
            .await;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        seen.push(format!(
            "POST {status} {} from={}",
            body["error"]["code"], body["from"]
        ));
    }
    let page = client.get(&format!("/rooms/{}", encode(room))).await;
    seen.push(format!("page {}", page.status()));
    let cid = format!("probe-{n}");
    for frame in [
        json!({ "type": "join", "room": room }),
        json!({ "type": "join", "room": room, "since": 0 }),
        json!({ "type": "history", "room": room, "limit": 50 }),
        json!({ "type": "send", "room": room, "text": "hello?", "cid": cid }),
        json!({ "type": "typing", "room": room }),
    ] {
        ws.send_json(frame.clone()).await;
        let answer = ws
            .wait_for(&format!("the answer to {frame}"), |f| {
                f["room"] == room && f["type"] != "presence"
            })
            .await;
        seen.push(format!(
            "ws {} → {} {} {}",
            frame["type"], answer["type"], answer["code"], answer["message"]
        ));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_but_the_two_users_can_read_post_to_join_list_or_detect_a_direct_room() {
    let app = spawn_app().await;
    let alice = app.user_client("alice", &[]).await;
    let xiaoming = app.user_client("小明", &[]).await;
    let eve = app.user_client("eve", &["create_room", "moderate"]).await;
    app.create_user("zoe", &[]).await;
    let guest = app.guest();

    // Eve is online before the conversation starts: she must see none of it.
    let mut e = eve.ws().await;
    e.wait_for("welcome", |f| f["type"] == "welcome").await;
    let mut x = xiaoming.ws().await;
    x.wait_for("welcome", |f| f["type"] == "welcome").await;
    let mut a = alice.ws().await;
    a.send_json(json!({ "type": "dm", "to": "小明", "text": "只给你看", "cid": "d-1" }))
        .await;
    let ack = a.wait_for("the dm's ack", |f| f["cid"] == "d-1").await;
    assert_eq!(
        (ack["type"].as_str(), ack["room"].as_str()),
        (Some("ack"), Some(DM.0)),
        "{ack}"
    );
    let got = x
        .wait_for("the dm", |f| f["type"] == "message" && f["room"] == DM.0)
        .await;
    assert_eq!(got["text"], "只给你看");
    // Both users read it over HTTP, by either spelling of the path.
    for c in [&alice, &xiaoming] {
        for path in history_paths(DM) {
            let history = expect_status(c.get(&path).await, StatusCode::OK, &path).await;
            assert_eq!(history["messages"][0]["text"], "只给你看", "{history}");
        }
        let dms = expect_status(c.get("/api/dms").await, StatusCode::OK, "/api/dms").await;
        assert_eq!(dms["rooms"][0]["name"], DM.0, "{dms}");
        assert_eq!(dms["rooms"][0]["last_seq"], 1, "{dms}");
    }

    for (who, client) in [("eve", &eve), ("a guest", &guest)] {
        let mut ws = client.ws().await;
        ws.wait_for("welcome", |f| f["type"] == "welcome").await;
        let existing = probe(client, &mut ws, DM, 1).await;
        let never = probe(client, &mut ws, NEVER, 2).await;
        // An existing direct room and one never opened get the same answers.
        assert_eq!(
            existing
                .iter()
                .map(|s| s.replace(DM.0, "?"))
                .collect::<Vec<_>>(),
            never
                .iter()
                .map(|s| s.replace(NEVER.0, "?"))
                .collect::<Vec<_>>(),
            "{who} can tell that {} exists",
            DM.0
        );
        for line in &existing {
            assert!(
                line.contains("404") || line.contains("not_found"),
                "{who}: {line}"
            );
            assert!(!line.contains("\"bot\""), "{who} got the bot: {line}");
        }
        let rooms =
            expect_status(client.get("/api/rooms").await, StatusCode::OK, "/api/rooms").await;
        assert!(
            rooms["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| !r["name"].as_str().unwrap_or_default().starts_with('@')),
            "{who} sees a direct room listed: {rooms}"
        );
        ws.close().await;
    }
    let dms = expect_status(eve.get("/api/dms").await, StatusCode::OK, "eve's dms").await;
    assert_eq!(dms["rooms"], json!([]), "{dms}");
    let dms = guest.get("/api/dms").await;
    assert_eq!(dms.status(), StatusCode::UNAUTHORIZED);

    // Eve writing to alice opens a separate conversation, and changes nothing here.
    e.send_json(json!({ "type": "dm", "to": "alice", "text": "hi alice", "cid": "e-1" }))
        .await;
    let ack = e.wait_for("eve's ack", |f| f["cid"] == "e-1").await;
    assert_eq!(ack["room"], "@alice+eve", "{ack}");
    a.send_json(json!({ "type": "dm", "to": "小明", "text": "第二条", "cid": "d-2" }))
        .await;
    x.wait_for("the second dm", |f| f["text"] == "第二条").await;
    let frames = e.drain(Duration::from_millis(500)).await;
    assert!(
        frames.iter().all(|f| f["room"] != DM.0),
        "eve saw the conversation: {frames:?}"
    );
    let texts: Vec<Value> = alice
        .all_messages(DM.0)
        .await
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [json!("只给你看"), json!("第二条")],
        "nothing was added"
    );
}
