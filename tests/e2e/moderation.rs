//! Moderation and account safety from outside: a mute that ends by itself,
//! a kick that takes a live socket out of the room and keeps it out, a
//! deleted user's socket closed at once, and login throttling over HTTP.

use std::time::Duration;

use chat_tests::{
    RecvError, TestUser, encode, expect_status, is_error_for, spawn_app_with, without_rate_limit,
};
use reqwest::StatusCode;
use serde_json::json;

const ROOM: &str = "闲聊-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_refuses_sends_with_the_time_left_and_ends_by_itself() {
    let app = spawn_app_with(without_rate_limit).await;
    let cora = app.user_client("cora", &["create_room"]).await;
    let tess = app.user_client("小明", &[]).await;
    cora.create_room_ok(ROOM).await;
    let mut c = cora.ws().await;
    let mut t = tess.ws().await;
    c.join(ROOM, None).await;
    assert_eq!(t.join(ROOM, None).await["type"], "joined");

    let r = cora
        .put_json(
            &format!("/api/rooms/{}/mutes/{}", encode(ROOM), encode("小明")),
            &json!({ "seconds": 1 }),
        )
        .await;
    expect_status(r, StatusCode::NO_CONTENT, "mute for one second").await;
    let muted = t.wait_for("muted", |f| f["type"] == "muted").await;
    assert_eq!(
        (muted["room"].as_str(), muted["user"].as_str()),
        (Some(ROOM), Some("小明"))
    );
    assert!(
        muted["until"].is_string(),
        "a timed mute says when it ends: {muted}"
    );

    let refused = t.send_and_wait(ROOM, "can I talk?", "m-1").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert!(
        refused["retry_after"].as_f64().is_some_and(|s| s <= 1.0),
        "the error says how long is left: {refused}"
    );

    // The server's wall clock ends the mute; nothing lifts it by hand.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ack = t.send_and_wait(ROOM, "free again", "m-2").await;
    assert_eq!(ack["type"], "ack", "{ack}");

    let texts: Vec<String> = cora
        .all_messages(ROOM)
        .await
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m["kind"].as_str().unwrap_or("?"),
                m["text"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        texts,
        ["notice:小明 was muted for 1 s", "chat:free again"],
        "the mute is a notice in the room, the refused message is nowhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_socket_leaves_the_room_at_once_and_cannot_rejoin_until_let_back() {
    let app = spawn_app_with(without_rate_limit).await;
    let cora = app.user_client("cora", &["create_room"]).await;
    let tess = app.user_client("tess", &[]).await;
    cora.create_room_ok(ROOM).await;
    let mut c = cora.ws().await;
    let mut t = tess.ws().await;
    c.join(ROOM, None).await;
    t.join(ROOM, None).await;
    assert_eq!(c.send_and_wait(ROOM, "before", "c-1").await["type"], "ack");
    t.messages(ROOM, 1).await;

    let member = format!("/api/rooms/{}/members/tess", encode(ROOM));
    expect_status(cora.delete(&member).await, StatusCode::NO_CONTENT, "kick").await;
    let removed = t.wait_for("removed", |f| f["type"] == "removed").await;
    assert_eq!(
        (removed["room"].as_str(), removed["user"].as_str()),
        (Some(ROOM), Some("tess"))
    );

    // The kicked socket no longer receives the room.
    assert_eq!(
        c.send_and_wait(ROOM, "after the kick", "c-2").await["type"],
        "ack"
    );
    let seen = t.drain(Duration::from_millis(500)).await;
    assert!(
        seen.iter()
            .all(|f| f["type"] != "message" || f["room"] != ROOM),
        "the kicked socket still got the room's messages: {seen:?}"
    );

    // Re-joining, sending, over the socket or the API: refused.
    let again = t.join(ROOM, None).await;
    assert!(is_error_for(&again, ROOM, None), "{again}");
    assert_eq!(again["code"], "forbidden", "{again}");
    let sent = t.send_and_wait(ROOM, "let me in", "t-1").await;
    assert_eq!(
        (sent["type"].as_str(), sent["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    let r = tess
        .post_json(
            &format!("/api/rooms/{}/messages", encode(ROOM)),
            &json!({ "text": "http?" }),
        )
        .await;
    expect_status(r, StatusCode::FORBIDDEN, "a kicked user posts").await;
    // Tess cannot let herself back.
    let r = tess.put_json(&member, &json!({})).await;
    expect_status(r, StatusCode::FORBIDDEN, "a kicked user pardons herself").await;

    expect_status(
        cora.put_json(&member, &json!({})).await,
        StatusCode::NO_CONTENT,
        "let back",
    )
    .await;
    assert_eq!(t.join(ROOM, None).await["type"], "joined");
    assert_eq!(t.send_and_wait(ROOM, "thanks", "t-2").await["type"], "ack");
    let texts: Vec<String> = cora
        .all_messages(ROOM)
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        texts,
        [
            "before",
            "tess was removed from the room",
            "after the kick",
            "thanks"
        ]
    );
}

/// Reads until the server closes the socket; the close code.
async fn close_code(ws: &mut chat_tests::Ws) -> Option<u16> {
    loop {
        match ws.read_frame(Duration::from_secs(10)).await {
            Ok(_) => continue,
            Err(RecvError::Closed(frame)) => return frame.map(|f| u16::from(f.code)),
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_or_resetting_their_password_closes_their_live_sockets_with_1008() {
    let app = spawn_app_with(without_rate_limit).await;
    let admin = app.admin_client().await;
    let cora = app.user_client("cora", &["create_room"]).await;
    let tess = app.user_client("tess", &[]).await;
    cora.create_room_ok(ROOM).await;
    let mut t = tess.ws().await;
    t.join(ROOM, None).await;
    let mut c = cora.ws().await;
    c.join(ROOM, None).await;

    let r = admin.delete("/api/admin/users/tess").await;
    expect_status(r, StatusCode::NO_CONTENT, "delete tess").await;
    assert_eq!(close_code(&mut t).await, Some(1008));
    let me = expect_status(tess.get("/api/me").await, StatusCode::OK, "me").await;
    assert_eq!(me["user"]["guest"], true, "{me}");

    let r = admin
        .put_json(
            "/api/admin/users/cora/password",
            &json!({ "password": "cora-new-pw" }),
        )
        .await;
    expect_status(r, StatusCode::NO_CONTENT, "reset cora's password").await;
    assert_eq!(close_code(&mut c).await, Some(1008));

    // Someone else's socket is untouched.
    let bob = app.user_client("bob", &[]).await;
    let mut b = bob.ws().await;
    assert_eq!(b.join(ROOM, None).await["type"], "joined");
    let r = admin.delete("/api/admin/users/cora").await;
    expect_status(r, StatusCode::NO_CONTENT, "delete cora").await;
    b.send_json(json!({ "type": "ping", "cid": "still-here" }))
        .await;
    let pong = b.wait_for("pong", |f| f["type"] == "pong").await;
    assert_eq!(pong["cid"], "still-here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_bad_login_is_429_with_retry_after_and_other_accounts_still_log_in() {
    let app = spawn_app_with(without_rate_limit).await;
    let alice = app.create_user("alice", &[]).await;
    let bob = app.create_user("bob", &[]).await;
    let wrong = TestUser {
        name: "alice".to_owned(),
        password: "not-her-password".to_owned(),
    };
    let client = app.guest();
    for attempt in 1..=5 {
        let r = client.login(&wrong).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let sixth = client.login(&wrong).await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = sixth.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=15 * 60).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = sixth.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");

    // The account stays throttled, even for the right password, until the
    // window passes; other accounts are not affected.
    let right = client.login(&alice).await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(client.cookie(chat_tests::SESSION_COOKIE).is_none());
    app.guest().login_ok(&bob).await;

    // The login form answers the same way.
    let page = app.guest();
    let token = page.csrf_token("/login").await;
    let r = page
        .post_form(
            "/login",
            &[
                ("csrf", &token),
                ("username", "alice"),
                ("password", &alice.password),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
}
