//! The JSON API of CONTRACT §3 over a real socket: statuses, bodies, cookies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use chat_domain::{HealthCheck, StoreError, StoreResult};
use chat_http::HttpConfig;
use common::{PASSWORD, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn login_sets_an_http_only_lax_cookie_and_me_shows_the_user() {
    let app = spawn_app().await;
    app.user("alice", &["create_room"]).await;
    let resp = app
        .http
        .post(app.url("/api/session"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("hihichat_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"user": {"name": "alice", "guest": false, "permissions": ["create_room"]}})
    );

    let cookie = cookie.split(';').next().unwrap();
    let (status, me) = app.get("/api/me", Some(cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["name"], "alice");
    assert_eq!(me["user"]["guest"], false);
}

#[tokio::test]
async fn every_login_gets_a_new_session() {
    let app = spawn_app().await;
    app.user("alice", &[]).await;
    let a = app.login("alice").await;
    let b = app.login("alice").await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn wrong_name_and_wrong_password_get_the_same_401() {
    let app = spawn_app().await;
    app.user("alice", &[]).await;
    let (s1, b1) = app
        .post(
            "/api/session",
            None,
            json!({"username": "alice", "password": "wrong password"}),
        )
        .await;
    let (s2, b2) = app
        .post(
            "/api/session",
            None,
            json!({"username": "nobody", "password": PASSWORD}),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2);
    assert_eq!(b1["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_with_retry_after() {
    let app = spawn_app().await;
    app.user("alice", &[]).await;
    let wrong = json!({"username": "alice", "password": "wrong password"});
    let mut last = None;
    for _ in 0..=chat_domain::services::LOGIN_ATTEMPTS {
        let resp = app
            .http
            .post(app.url("/api/session"))
            .json(&wrong)
            .send()
            .await
            .unwrap();
        last = Some(resp);
    }
    let resp = last.unwrap();
    assert_eq!(resp.status(), 429);
    let after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after >= 1);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn a_guest_is_a_guest() {
    let app = spawn_app().await;
    let (status, me) = app.get("/api/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        me,
        json!({"user": {"name": "guest", "guest": true, "permissions": []}})
    );
    let (status, _) = app
        .get("/api/me", Some("hihichat_session=not-a-session"))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    app.user("alice", &[]).await;
    let cookie = app.login("alice").await;
    let resp = app
        .http
        .delete(app.url("/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (_, me) = app.get("/api/me", Some(&cookie)).await;
    assert_eq!(me["user"]["guest"], true);
}

#[tokio::test]
async fn creating_rooms_checks_who_asks_and_what_they_ask_for() {
    let app = spawn_app().await;
    let maker = app.creator("maker").await;
    app.user("plain", &[]).await;
    let plain = app.login("plain").await;
    let body = json!({"name": "闲聊-1", "description": "chat"});

    let (status, err) = app.post("/api/rooms", None, body.clone()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, err) = app.post("/api/rooms", Some(&plain), body.clone()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    let (status, room) = app.post("/api/rooms", Some(&maker), body.clone()).await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(
        room,
        json!({"name": "闲聊-1", "description": "chat", "visibility": "public",
               "members": 1, "created_by": "maker", "last_seq": 0})
    );
    let (status, err) = app.post("/api/rooms", Some(&maker), body).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (status, err) = app
        .post("/api/rooms", Some(&maker), json!({"name": "bad name"}))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("invalid"))
    );
    let (status, _) = app
        .post(
            "/api/rooms",
            Some(&maker),
            json!({"name": "x", "visibility": "secret"}),
        )
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn private_rooms_are_listed_only_to_their_members() {
    let app = spawn_app().await;
    let maker = app.creator("maker").await;
    app.user("other", &[]).await;
    let other = app.login("other").await;
    let (s, _) = app
        .post(
            "/api/rooms",
            Some(&maker),
            json!({"name": "secret", "description": "", "visibility": "private"}),
        )
        .await;
    assert_eq!(s, 201);
    app.post("/api/rooms", Some(&maker), json!({"name": "open"}))
        .await;
    let names = |v: serde_json::Value| -> Vec<String> {
        v["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(app.get("/api/rooms", Some(&maker)).await.1),
        ["open", "secret"]
    );
    assert_eq!(names(app.get("/api/rooms", Some(&other)).await.1), ["open"]);
    assert_eq!(names(app.get("/api/rooms", None).await.1), ["open"]);
    let (status, _) = app.get("/api/rooms/secret/messages", Some(&other)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn messages_are_sent_and_read_back_newest_last_through_encoded_unicode_paths() {
    let app = spawn_app().await;
    let maker = app.creator("小明").await;
    app.room("小明", "闲聊-1").await;
    let path = "/api/rooms/%E9%97%B2%E8%81%8A-1/messages";
    for i in 1..=5 {
        let (status, m) = app
            .post(path, Some(&maker), json!({"text": format!("第{i}条")}))
            .await;
        assert_eq!(status, 201, "{m}");
        assert_eq!(m["type"], "message");
        assert_eq!(m["room"], "闲聊-1");
        assert_eq!(m["seq"], i);
        assert_eq!(m["from"], "小明");
        assert_eq!(m["kind"], "chat");
        assert!(m["ts"].as_str().unwrap().ends_with('Z'));
    }
    let (status, page) = app.get(path, None).await;
    assert_eq!(status, 200);
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(page["more"], false);

    let (_, page) = app.get(&format!("{path}?before=5&limit=2"), None).await;
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4]);
    assert_eq!(page["more"], true);

    let (status, _) = app.get(&format!("{path}?limit=0"), None).await;
    assert_eq!(status, 422);
    let (status, _) = app.get(&format!("{path}?before=abc"), None).await;
    assert_eq!(status, 422);
    let (status, page) = app.get(&format!("{path}?limit=1000"), None).await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"].as_array().unwrap().len(), 5);
    let (status, _) = app.get("/api/rooms/nowhere/messages", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn history_pages_are_capped_at_200() {
    let app = spawn_app().await;
    app.user("alice", &["create_room"]).await;
    let room = app.room("alice", "big").await;
    let alice = app.actor("alice").await;
    for i in 0..205 {
        app.services
            .chat
            .send(
                &alice,
                &room,
                chat_domain::MessageText::parse(&format!("m{i}")).unwrap(),
                None,
            )
            .await
            .unwrap();
    }
    let (_, page) = app.get("/api/rooms/big/messages?limit=1000", None).await;
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 200);
    assert_eq!(messages.last().unwrap()["seq"], 205);
    assert_eq!(page["more"], true);
    let (_, page) = app.get("/api/rooms/big/messages", None).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 50);
}

#[tokio::test]
async fn a_retried_cid_stores_one_message() {
    let app = spawn_app().await;
    let maker = app.creator("maker").await;
    app.room("maker", "r").await;
    let body = json!({"text": "once", "cid": "c-1"});
    let (s1, m1) = app
        .post("/api/rooms/r/messages", Some(&maker), body.clone())
        .await;
    let (s2, m2) = app.post("/api/rooms/r/messages", Some(&maker), body).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(m1, m2);
    assert_eq!(m1["cid"], "c-1");
    let (_, page) = app.get("/api/rooms/r/messages", None).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_guest_post_is_answered_by_the_bot_and_not_stored() {
    let app = spawn_app().await;
    app.user("maker", &["create_room"]).await;
    app.room("maker", "lobby").await;
    let (status, reply) = app
        .post("/api/rooms/lobby/messages", None, json!({"text": "你好"}))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["from"], "bot");
    assert_eq!(reply["private"], true);
    assert!(reply.get("seq").is_none());
    assert!(!reply["text"].as_str().unwrap().is_empty());
    let (_, page) = app.get("/api/rooms/lobby/messages", None).await;
    assert!(page["messages"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn json_posts_need_the_json_content_type_and_a_small_body() {
    let app = spawn_app().await;
    let maker = app.creator("maker").await;
    app.room("maker", "r").await;
    // A cross-site form can send text/plain; it must not get through.
    let resp = app
        .http
        .post(app.url("/api/rooms/r/messages"))
        .header("cookie", &maker)
        .header("content-type", "text/plain")
        .body(r#"{"text":"csrf"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid");

    let big = "x".repeat(70 * 1024);
    let (status, body) = app
        .post("/api/rooms/r/messages", Some(&maker), json!({"text": big}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );

    let (status, _) = app
        .post(
            "/api/rooms/r/messages",
            Some(&maker),
            json!({"text": "字".repeat(4001)}),
        )
        .await;
    assert_eq!(status, 422);
    let resp = app
        .http
        .post(app.url("/api/rooms/r/messages"))
        .header("cookie", &maker)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let (_, page) = app.get("/api/rooms/r/messages", None).await;
    assert!(page["messages"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn dms_lists_my_direct_conversations() {
    let app = spawn_app().await;
    app.user("alice", &[]).await;
    app.user("bob", &[]).await;
    let alice = app.login("alice").await;
    let (status, _) = app.get("/api/dms", None).await;
    assert_eq!(status, 401);
    let (status, body) = app.get("/api/dms", Some(&alice)).await;
    assert_eq!((status, body), (200, json!({"rooms": []})));
    app.services
        .chat
        .direct(
            &app.actor("alice").await,
            &chat_domain::Username::parse("bob").unwrap(),
            chat_domain::MessageText::parse("hi").unwrap(),
            None,
        )
        .await
        .unwrap();
    let (_, body) = app.get("/api/dms", Some(&alice)).await;
    assert_eq!(
        body,
        json!({"rooms": [{"name": "@alice+bob", "with": "bob", "last_seq": 1}]})
    );
}

#[tokio::test]
async fn moderators_mute_kick_and_let_back() {
    let app = spawn_app().await;
    let owner = app.creator("owner").await;
    app.user("bob", &[]).await;
    let bob = app.login("bob").await;
    app.room("owner", "r").await;
    let say = |who: String| {
        let app = &app;
        async move {
            app.post("/api/rooms/r/messages", Some(&who), json!({"text": "hi"}))
                .await
                .0
        }
    };
    assert_eq!(say(bob.clone()).await, 201);

    // Guests and ordinary members may not moderate.
    let (s, _) = app
        .send_json(Method::PUT, "/api/rooms/r/mutes/owner", None, None)
        .await;
    assert_eq!(s, 401);
    let (s, _) = app
        .send_json(Method::PUT, "/api/rooms/r/mutes/owner", Some(&bob), None)
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .send_json(Method::PUT, "/api/rooms/r/mutes/ghost", Some(&owner), None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .send_json(
            Method::PUT,
            "/api/rooms/r/mutes/bob",
            Some(&owner),
            Some(json!({"seconds": 0})),
        )
        .await;
    assert_eq!(s, 422);

    let (s, _) = app
        .send_json(
            Method::PUT,
            "/api/rooms/r/mutes/bob",
            Some(&owner),
            Some(json!({"seconds": 300})),
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(say(bob.clone()).await, 403);
    let (s, _) = app
        .send_json(Method::DELETE, "/api/rooms/r/mutes/bob", Some(&owner), None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(say(bob.clone()).await, 201);

    // Until lifted: no body at all.
    let (s, _) = app
        .send_json(Method::PUT, "/api/rooms/r/mutes/bob", Some(&owner), None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(say(bob.clone()).await, 403);
    app.send_json(Method::DELETE, "/api/rooms/r/mutes/bob", Some(&owner), None)
        .await;

    let (s, _) = app
        .send_json(
            Method::DELETE,
            "/api/rooms/r/members/bob",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(say(bob.clone()).await, 403);
    let (s, _) = app
        .send_json(Method::PUT, "/api/rooms/r/members/bob", Some(&owner), None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(say(bob.clone()).await, 201);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let (s, _) = app.get("/healthz", None).await;
    assert_eq!(s, 200);
    let (s, body) = app.get("/readyz", None).await;
    assert_eq!(s, 200, "{body}");
}

/// A store that cannot be reached, as `/readyz` would meet it.
struct Unreachable;

#[async_trait]
impl HealthCheck for Unreachable {
    fn component(&self) -> &'static str {
        "redis"
    }
    async fn check(&self) -> StoreResult<()> {
        Err(StoreError::unavailable("connection refused"))
    }
}

#[tokio::test]
async fn readiness_fails_when_a_store_does_not_answer() {
    let app = spawn_app_with(HttpConfig::default(), vec![Arc::new(Unreachable)]).await;
    let (s, body) = app.get("/readyz", None).await;
    assert_eq!(s, 503);
    assert_eq!(body["failed"], json!(["redis"]));
    assert_eq!(body["error"]["code"], "unavailable");
    let (s, _) = app.get("/healthz", None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in [
        "/api/me",
        "/healthz",
        "/api/does-not-exist",
        "/api/rooms/nowhere/messages",
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
    }
}
