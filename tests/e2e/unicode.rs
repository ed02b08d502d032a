//! Unicode names (`小明`, `闲聊-1`) in usernames, room names, percent-encoded
//! paths and message text.

use chat_tests::{encode, expect_status, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinese_names_work_in_rooms_paths_and_messages() {
    let app = spawn_app().await;
    let xiaoming = app.user_client("小明", &["create_room"]).await;
    let xiaohong = app.user_client("小红", &[]).await;
    let room = "闲聊-1";
    let path_room = encode(room);

    let me = expect_status(xiaoming.get("/api/me").await, StatusCode::OK, "GET /api/me").await;
    assert_eq!(me["user"]["name"], "小明", "{me}");
    assert_eq!(me["user"]["guest"], false);

    let created = xiaoming.create_room_ok(room).await;
    assert_eq!(created["name"], room, "{created}");
    let rooms = expect_status(
        xiaohong.get("/api/rooms").await,
        StatusCode::OK,
        "GET /api/rooms",
    )
    .await;
    let listed = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == room)
        .cloned()
        .unwrap_or_else(|| panic!("{room} is not listed: {rooms}"));
    assert_eq!(listed["created_by"], "小明");

    let mut m = xiaoming.ws().await;
    let mut h = xiaohong.ws().await;
    assert_eq!(m.join(room, None).await["type"], "joined");
    assert_eq!(h.join(room, None).await["type"], "joined");
    let text = "你好,小红!🌏 <b>不是 HTML</b> & \"引号\"";
    let ack = m.send_and_wait(room, text, "zh-1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["room"], room);
    let seen = h.messages(room, 1).await;
    assert_eq!(seen[0]["from"], "小明");
    assert_eq!(seen[0]["text"], text, "the text round-trips byte for byte");

    // Percent-encoded paths: history, posting, the chat page, the avatar.
    let history = expect_status(
        xiaohong
            .get(&format!("/api/rooms/{path_room}/messages"))
            .await,
        StatusCode::OK,
        "history by encoded path",
    )
    .await;
    assert_eq!(history["messages"][0]["text"], text, "{history}");
    let posted = xiaohong
        .post_json(
            &format!("/api/rooms/{path_room}/messages"),
            &json!({ "text": "收到 👍" }),
        )
        .await;
    let posted = expect_status(posted, StatusCode::CREATED, "POST by encoded path").await;
    assert_eq!(
        (posted["from"].as_str(), posted["seq"].as_u64()),
        (Some("小红"), Some(2)),
        "{posted}"
    );
    let seen = m.messages(room, 2).await;
    assert_eq!(
        seen.last().map(|f| f["text"].clone()),
        Some(json!("收到 👍"))
    );

    let page = xiaohong.get(&format!("/rooms/{path_room}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(room), "the chat page names the room");

    let avatar = xiaohong
        .get(&format!("/avatars/{}.svg", encode("小明")))
        .await;
    assert_eq!(avatar.status(), StatusCode::OK);
    let content_type = avatar
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("image/svg+xml"), "{content_type}");

    // A username in a path: the room's creator mutes and unmutes 小红.
    let mute_path = format!("/api/rooms/{path_room}/mutes/{}", encode("小红"));
    let muted = xiaoming
        .put_json(&mute_path, &json!({ "seconds": 300 }))
        .await;
    expect_status(muted, StatusCode::NO_CONTENT, "mute 小红").await;
    let refused = h.send_and_wait(room, "我被禁言了吗", "mute-1").await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{refused}"
    );
    expect_status(
        xiaoming.delete(&mute_path).await,
        StatusCode::NO_CONTENT,
        "unmute 小红",
    )
    .await;
    let ack = h.send_and_wait(room, "没有了", "mute-2").await;
    assert_eq!(ack["type"], "ack", "{ack}");
}
