//! Who may do what, checked from outside: guests, room creation through the
//! API and through the HTML form, logins.

use std::time::Duration;

use chat_tests::{TestUser, expect_status, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_can_read_history_but_what_it_sends_never_reaches_the_room() {
    let app = spawn_app().await;
    let alice = app.user_client("alice", &["create_room"]).await;
    let bob = app.user_client("bob", &[]).await;
    alice.create_room_ok("lobby").await;
    for i in 1..=3 {
        let response = alice
            .post_json(
                "/api/rooms/lobby/messages",
                &json!({ "text": format!("hello {i}") }),
            )
            .await;
        let message = expect_status(response, StatusCode::CREATED, "POST a message").await;
        assert_eq!(message["seq"], i, "{message}");
    }
    let mut b = bob.ws().await;
    b.join("lobby", None).await;

    let guest = app.guest();
    let me = expect_status(guest.get("/api/me").await, StatusCode::OK, "GET /api/me").await;
    assert_eq!(me["user"]["guest"], true, "{me}");
    let history = expect_status(
        guest.get("/api/rooms/lobby/messages").await,
        StatusCode::OK,
        "a guest reads history",
    )
    .await;
    assert_eq!(
        history["messages"].as_array().map(Vec::len),
        Some(3),
        "{history}"
    );

    let mut g = guest.ws().await;
    let welcome = g.wait_for("welcome", |f| f["type"] == "welcome").await;
    assert_eq!(welcome["user"]["guest"], true, "{welcome}");
    let joined = g.join("lobby", None).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(
        joined["messages"].as_array().map(Vec::len),
        Some(3),
        "{joined}"
    );

    // The bot greets a guest who opens a public room; its answer comes next.
    let greeting = g
        .wait_for("the bot's greeting", |f| f["from"] == "bot")
        .await;
    assert_eq!(greeting["private"], true, "{greeting}");
    g.send_message("lobby", "小黄鸭你好", "g-1").await;
    let reply = g
        .wait_for("the bot's reply", |f| {
            (f["type"] == "message" && f["from"] == "bot") || f["type"] == "error"
        })
        .await;
    assert_eq!(reply["type"], "message", "{reply}");
    assert_eq!(reply["private"], true, "{reply}");
    assert_eq!(reply["room"], "lobby");
    assert!(
        reply.get("seq").is_none_or(Value::is_null),
        "a bot reply has no seq: {reply}"
    );
    assert!(
        reply["text"].as_str().is_some_and(|t| !t.is_empty()),
        "{reply}"
    );
    assert!(
        reply["bot_name"].as_str().is_some_and(|t| !t.is_empty()),
        "{reply}"
    );

    // The guest's words went nowhere: the next message bob sees is alice's,
    // with the next seq, and history holds no trace of them.
    let ack = alice
        .post_json(
            "/api/rooms/lobby/messages",
            &json!({ "text": "after the guest" }),
        )
        .await;
    expect_status(ack, StatusCode::CREATED, "POST after the guest").await;
    let seen = b.messages("lobby", 1).await;
    assert_eq!(
        (seen[0]["seq"].as_u64(), seen[0]["text"].as_str()),
        (Some(4), Some("after the guest"))
    );
    let frames = b.drain(Duration::from_millis(300)).await;
    assert!(
        frames
            .iter()
            .all(|f| f["text"] != "小黄鸭你好" && f["from"] != "bot"),
        "bob saw the guest's words or the bot: {frames:?}"
    );
    let posted = guest
        .post_json("/api/rooms/lobby/messages", &json!({ "text": "via http" }))
        .await;
    assert_ne!(
        posted.status(),
        StatusCode::CREATED,
        "a guest cannot post over HTTP"
    );
    let texts: Vec<String> = alice
        .all_messages("lobby")
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(texts, ["hello 1", "hello 2", "hello 3", "after the guest"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_create_room_gets_403_from_the_api_and_from_the_form() {
    let app = spawn_app().await;
    let alice = app.user_client("alice", &["create_room"]).await;
    let bob = app.user_client("bob", &[]).await;

    let response = bob.create_room("bobs-room", "public").await;
    let body = expect_status(
        response,
        StatusCode::FORBIDDEN,
        "POST /api/rooms without create_room",
    )
    .await;
    assert_eq!(body["error"]["code"], "forbidden", "{body}");

    let csrf = bob.csrf_token("/rooms").await;
    let response = bob
        .post_form(
            "/rooms",
            &[
                ("name", "bobs-form-room"),
                ("description", ""),
                ("visibility", "public"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "the form's POST without create_room"
    );

    // The same form from someone allowed works, so the 403 above was about
    // the permission and not a broken token; without a token it fails.
    let csrf = alice.csrf_token("/rooms").await;
    let without_token = alice
        .post_form(
            "/rooms",
            &[
                ("name", "no-token"),
                ("description", ""),
                ("visibility", "public"),
            ],
        )
        .await;
    assert!(
        !without_token.status().is_success() && !without_token.status().is_redirection(),
        "a form POST without a CSRF token is refused, got {}",
        without_token.status()
    );
    let response = alice
        .post_form(
            "/rooms",
            &[
                ("name", "alices-room"),
                ("description", "made by form"),
                ("visibility", "public"),
                ("csrf", &csrf),
            ],
        )
        .await;
    let status = response.status();
    assert!(
        status.is_success() || status.is_redirection(),
        "a form POST with create_room and a token creates the room, got {status}: {}",
        response.text().await.unwrap_or_default()
    );

    let rooms = expect_status(
        bob.get("/api/rooms").await,
        StatusCode::OK,
        "GET /api/rooms",
    )
    .await;
    let names: Vec<&str> = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["alices-room"], "only the allowed creation happened");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    app.create_user("alice", &[]).await;
    let client = app.guest();

    let wrong = client
        .login(&TestUser {
            name: "alice".into(),
            password: "not-her-password".into(),
        })
        .await;
    let (wrong_status, wrong_body) = (wrong.status(), wrong.text().await.unwrap());
    let unknown = client
        .login(&TestUser {
            name: "nobody".into(),
            password: "not-her-password".into(),
        })
        .await;
    let (unknown_status, unknown_body) = (unknown.status(), unknown.text().await.unwrap());

    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED, "{wrong_body}");
    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED, "{unknown_body}");
    assert_eq!(
        wrong_body, unknown_body,
        "the answer does not say which part was wrong"
    );
    assert!(client.cookie(chat_tests::SESSION_COOKIE).is_none());
}
