//! The audit trail (API and page), `/account` and `PUT /api/me/password`,
//! and a room's member-management page, over a real server on 127.0.0.1:0
//! with the in-memory adapters: who gets which status, and what changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chat_domain::{Actor, PermissionName, RoomName};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod common;

use common::{App, client, code, csrf_of, page, post_form};

/// `admin` (admin), `bob` (create_room), `carol` and `dave` (nothing), `mo` (moderate).
async fn spawn_app() -> App {
    common::spawn_app(&[
        ("admin", &[PermissionName::admin()]),
        ("bob", &[PermissionName::create_room()]),
        ("carol", &[]),
        ("dave", &[]),
        ("mo", &[PermissionName::moderate()]),
    ])
    .await
}

impl App {
    async fn me(&self, c: &reqwest::Client) -> Value {
        let r = c.get(self.url("/api/me")).send().await.unwrap();
        r.json::<Value>().await.unwrap()
    }

    async fn members(&self, room: &str) -> Vec<String> {
        self.services
            .rooms
            .members(&Actor::System, &RoomName::parse(room).unwrap())
            .await
            .unwrap()
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect()
    }

    async fn audit_actions(&self) -> Vec<String> {
        let admin = Actor::System;
        self.services
            .accounts
            .audit(&admin, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| format!("{} {} {}", e.actor, e.action.as_str(), e.target))
            .collect()
    }
}

async fn send(app: &App, c: &reqwest::Client, room: &str, text: &str) -> StatusCode {
    c.post(app.url(&format!("/api/rooms/{room}/messages")))
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap()
        .status()
}

// ------------------------------------------------------------------ audit

#[tokio::test]
async fn admins_read_the_audit_trail_newest_first_and_nobody_else_does() {
    let app = spawn_app().await;
    let admin = app.login("admin").await;
    let r = admin
        .post(app.url("/api/admin/users"))
        .json(&json!({ "username": "小明", "password": "xiaoming-pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = admin
        .delete(app.url("/api/admin/users/%E5%B0%8F%E6%98%8E"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let body: Value = admin
        .get(app.url("/api/admin/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries[0]["action"], "user_deleted", "{body}");
    assert_eq!(entries[0]["actor"], "admin");
    assert_eq!(entries[0]["target"], "小明");
    assert_eq!(entries[1]["action"], "user_created");
    assert!(entries[0]["at"].as_str().unwrap().ends_with('Z'), "{body}");
    // The five users made at start-up by the operator are there too.
    assert_eq!(entries.len(), 7, "{body}");
    assert_eq!(entries[6]["actor"], "system");

    let one: Value = admin
        .get(app.url("/api/admin/audit?limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
    for bad in ["?limit=0", "?limit=many", "?limit=-1"] {
        let r = admin
            .get(app.url(&format!("/api/admin/audit{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            code(r).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid".to_owned()),
            "{bad}"
        );
    }

    let guest = client();
    let carol = app.login("carol").await;
    let mo = app.login("mo").await;
    assert_eq!(
        code(guest.get(app.url("/api/admin/audit")).send().await.unwrap()).await,
        (StatusCode::UNAUTHORIZED, "unauthenticated".to_owned())
    );
    for c in [&carol, &mo] {
        assert_eq!(
            code(c.get(app.url("/api/admin/audit")).send().await.unwrap()).await,
            (StatusCode::FORBIDDEN, "forbidden".to_owned())
        );
        assert_eq!(
            page(c, &app.url("/admin/audit")).await.0,
            StatusCode::FORBIDDEN
        );
    }
    let r = guest.get(app.url("/admin/audit")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );

    let (status, html) = page(&admin, &app.url("/admin/audit")).await;
    assert_eq!(status, StatusCode::OK);
    let deleted = html.find("data-audit-action=\"user_deleted\"").unwrap();
    let created = html.find("data-audit-action=\"user_created\"").unwrap();
    assert!(deleted < created, "newest first");
    assert!(html.contains("小明") && html.contains("href=\"/admin/audit\""));
    assert!(
        html.contains("href=\"/account\""),
        "the admin nav links /account"
    );
}

// ---------------------------------------------------------------- account

#[tokio::test]
async fn a_user_changes_their_own_password_through_the_api() {
    let app = spawn_app().await;
    let carol = app.login("carol").await;
    let elsewhere = app.login("carol").await;
    let url = app.url("/api/me/password");

    let r = client()
        .put(&url)
        .json(&json!({ "old": "carol-password", "new": "new-carol-pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(r).await,
        (StatusCode::UNAUTHORIZED, "unauthenticated".to_owned())
    );
    let r = carol
        .put(&url)
        .json(&json!({ "old": "wrong", "new": "new-carol-pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(r).await,
        (StatusCode::FORBIDDEN, "forbidden".to_owned())
    );
    for body in [
        json!({ "old": "carol-password", "new": "x" }),
        json!({ "old": "carol-password" }),
        json!("nonsense"),
    ] {
        let r = carol.put(&url).json(&body).send().await.unwrap();
        assert_eq!(
            code(r).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid".to_owned()),
            "{body}"
        );
    }
    // Nothing changed so far: both sessions live, the old password works.
    assert_eq!(app.me(&elsewhere).await["user"]["name"], "carol");
    app.login("carol").await;

    let r = carol
        .put(&url)
        .json(&json!({ "old": "carol-password", "new": "new-carol-pw" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me(&carol).await["user"]["name"],
        "carol",
        "this session stays"
    );
    assert_eq!(
        app.me(&elsewhere).await["user"]["guest"],
        true,
        "others end"
    );
    let r = client()
        .post(app.url("/api/session"))
        .json(&json!({ "username": "carol", "password": "carol-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.login_with("carol", "new-carol-pw").await;
    assert_eq!(app.audit_actions().await[0], "carol password_changed carol");
}

#[tokio::test]
async fn a_user_changes_their_own_password_on_the_account_page() {
    let app = spawn_app().await;
    let guest = client();
    let r = guest.get(app.url("/account")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()["location"].to_str().unwrap();
    assert!(
        to.starts_with("/login?next=") && to.contains("account"),
        "{to}"
    );

    let dave = app.login("dave").await;
    let elsewhere = app.login("dave").await;
    let (status, html) = page(&dave, &app.url("/account")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-own-password") && html.contains("dave"));
    assert!(!html.contains("/admin/users"), "no admin links for a user");
    let token = csrf_of(&html);
    let url = app.url("/account");

    let (status, _) = post_form(
        &dave,
        &url,
        &[
            ("old", "dave-password"),
            ("new", "dave-new-pw"),
            ("new2", "dave-new-pw"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let (status, html) = post_form(
        &dave,
        &url,
        &[
            ("csrf", &token),
            ("old", "dave-password"),
            ("new", "dave-new-pw"),
            ("new2", "dave-new-pX"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("differ"), "{html}");
    let (status, html) = post_form(
        &dave,
        &url,
        &[
            ("csrf", &token),
            ("old", "not-it"),
            ("new", "dave-new-pw"),
            ("new2", "dave-new-pw"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("current password"), "{html}");
    assert_eq!(app.me(&elsewhere).await["user"]["name"], "dave");
    let (status, _) = post_form(
        &guest,
        &url,
        &[
            ("csrf", &token),
            ("old", "x"),
            ("new", "y-secret"),
            ("new2", "y-secret"),
        ],
    )
    .await;
    assert!(
        status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
        "a guest cannot post the form: {status}"
    );

    let (status, to) = post_form(
        &dave,
        &url,
        &[
            ("csrf", &token),
            ("old", "dave-password"),
            ("new", "dave-new-pw"),
            ("new2", "dave-new-pw"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, "/account?done=password");
    let (_, html) = page(&dave, &app.url(&to)).await;
    assert!(html.contains("Password changed"), "{html}");
    assert_eq!(app.me(&elsewhere).await["user"]["guest"], true);
    app.login_with("dave", "dave-new-pw").await;
}

// ---------------------------------------------------------------- members

#[tokio::test]
async fn a_room_creator_mutes_kicks_and_lets_back_in_from_the_members_page() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let r = bob
        .post(app.url("/api/rooms"))
        .json(&json!({ "name": "闲聊-1", "description": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let room = "%E9%97%B2%E8%81%8A-1";
    assert_eq!(send(&app, &carol, room, "hi").await, StatusCode::CREATED);
    let members_url = app.url(&format!("/rooms/{room}/members"));

    let (status, html) = page(&bob, &members_url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-member=\"carol\"") && html.contains("data-member=\"bob\""));
    let token = csrf_of(&html);
    let carol_url = |action: &str| format!("{members_url}/carol/{action}");

    // Muted for 5 minutes: the page shows the time left; carol's sends fail.
    let (status, to) = post_form(
        &bob,
        &carol_url("mute"),
        &[("csrf", &token), ("duration", "300")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    assert!(to.ends_with("/members?done=muted"), "{to}");
    let (_, html) = page(&bob, &members_url).await;
    assert!(
        html.contains("data-muted") && html.contains("min") && html.contains("left"),
        "{html}"
    );
    assert_eq!(
        send(&app, &carol, room, "hello?").await,
        StatusCode::FORBIDDEN
    );

    let (status, _) = post_form(&bob, &carol_url("unmute"), &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&app, &carol, room, "thanks").await,
        StatusCode::CREATED
    );

    let (status, _) = post_form(
        &bob,
        &carol_url("mute"),
        &[("csrf", &token), ("duration", "forever")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = page(&bob, &members_url).await;
    assert!(html.contains("Muted until lifted"), "{html}");
    let (status, _) = post_form(&bob, &carol_url("unmute"), &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Kicked: no longer a member, and cannot come back by sending.
    let (status, _) = post_form(&bob, &carol_url("kick"), &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(app.members("闲聊-1").await, ["bob"]);
    assert_eq!(
        send(&app, &carol, room, "back?").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.members("闲聊-1").await, ["bob"]);

    // Letting an unknown name in says so; letting carol back in works.
    let (status, html) =
        post_form(&bob, &members_url, &[("csrf", &token), ("name", "nobody")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        html.contains("no user named") && html.contains("value=\"nobody\""),
        "{html}"
    );
    let (status, _) = post_form(&bob, &members_url, &[("csrf", &token), ("name", "carol")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(send(&app, &carol, room, "back!").await, StatusCode::CREATED);

    // Bob cannot kick himself; the page says why.
    let (status, html) = post_form(
        &bob,
        &format!("{members_url}/bob/kick"),
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("cannot kick yourself"), "{html}");

    let trail = app.audit_actions().await;
    assert_eq!(
        &trail[..7],
        [
            "bob member_added carol",
            "bob kicked carol",
            "bob unmuted carol",
            "bob muted carol",
            "bob unmuted carol",
            "bob muted carol",
            "bob room_created 闲聊-1",
        ]
    );
}

#[tokio::test]
async fn the_members_page_is_for_moderators_and_hides_private_rooms() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let mo = app.login("mo").await;
    let admin = app.login("admin").await;
    let guest = client();
    for (name, visibility) in [("lobby", "public"), ("secret", "private")] {
        let r = bob
            .post(app.url("/api/rooms"))
            .json(&json!({ "name": name, "description": "", "visibility": visibility }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    assert_eq!(send(&app, &carol, "lobby", "hi").await, StatusCode::CREATED);

    // (who, room, status)
    let table = [
        (&carol, "lobby", StatusCode::FORBIDDEN),
        (&carol, "secret", StatusCode::NOT_FOUND),
        (&mo, "lobby", StatusCode::OK),
        (&mo, "secret", StatusCode::NOT_FOUND),
        (&admin, "lobby", StatusCode::OK),
        (&admin, "secret", StatusCode::OK),
        (&bob, "secret", StatusCode::OK),
        (&bob, "nowhere", StatusCode::NOT_FOUND),
    ];
    for (c, room, status) in table {
        let (got, _) = page(c, &app.url(&format!("/rooms/{room}/members"))).await;
        assert_eq!(got, status, "{room}");
    }
    let r = guest
        .get(app.url("/rooms/lobby/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // A moderator of a public room sees the form; the add form is only for
    // those who manage members.
    let (_, html) = page(&mo, &app.url("/rooms/lobby/members")).await;
    assert!(
        html.contains("data-kick") && html.contains("Let back in"),
        "{html}"
    );
    let (_, html) = page(&admin, &app.url("/rooms/secret/members")).await;
    assert!(html.contains("Add member"), "{html}");

    // Refused forms change nothing, with a valid token in hand.
    let (_, html) = page(&carol, &app.url("/rooms")).await;
    let token = csrf_of(&html);
    for (url, fields) in [
        (
            "/rooms/lobby/members/bob/kick",
            vec![("csrf", token.as_str())],
        ),
        (
            "/rooms/lobby/members/bob/mute",
            vec![("csrf", token.as_str()), ("duration", "300")],
        ),
        (
            "/rooms/secret/members",
            vec![("csrf", token.as_str()), ("name", "carol")],
        ),
    ] {
        let (status, _) = post_form(&carol, &app.url(url), &fields).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{url}: {status}"
        );
    }
    let (status, _) = post_form(
        &guest,
        &app.url("/rooms/lobby/members/bob/kick"),
        &[("csrf", &token)],
    )
    .await;
    assert!(status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED);
    assert_eq!(app.members("lobby").await, ["bob", "carol"]);
    assert_eq!(app.members("secret").await, ["bob"]);
    assert!(
        app.services
            .moderation
            .mutes(&Actor::System, &RoomName::parse("lobby").unwrap())
            .await
            .unwrap()
            .is_empty()
    );

    // The creator of the private room adds carol, who can then see it.
    let (_, html) = page(&bob, &app.url("/rooms/secret/members")).await;
    let bob_token = csrf_of(&html);
    let (status, _) = post_form(
        &bob,
        &app.url("/rooms/secret/members"),
        &[("csrf", &bob_token), ("name", "carol")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(app.members("secret").await, ["bob", "carol"]);
    assert_eq!(
        send(&app, &carol, "secret", "in").await,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_room_creator_sets_and_lifts_slow_mode_from_the_members_page() {
    let app = spawn_app().await;
    let bob = app.login("bob").await;
    let carol = app.login("carol").await;
    let r = bob
        .post(app.url("/api/rooms"))
        .json(&json!({ "name": "闲聊-1", "description": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let room = "%E9%97%B2%E8%81%8A-1";
    let members_url = app.url(&format!("/rooms/{room}/members"));
    let slow_url = app.url(&format!("/rooms/{room}/slow_mode"));
    let (status, html) = page(&bob, &members_url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-slow-mode=\"off\""), "{html}");
    assert!(
        html.contains(&format!("action=\"/rooms/{room}/slow_mode\"")),
        "{html}"
    );
    let token = csrf_of(&html);

    // A plain member may not; a bad value is a form mistake; no CSRF, no change.
    let (_, carol_html) = page(&carol, &members_url).await;
    assert!(!carol_html.contains("data-slow-mode"));
    let carol_token = csrf_of(&page(&carol, &app.url("/login")).await.1);
    let (status, _) = post_form(
        &carol,
        &slow_url,
        &[("csrf", &carol_token), ("seconds", "30")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, html) = post_form(&bob, &slow_url, &[("csrf", &token), ("seconds", "0")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("from 1 s to 1 h"), "{html}");
    let (status, _) = post_form(&bob, &slow_url, &[("seconds", "30")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        !app.audit_actions()
            .await
            .iter()
            .any(|a| a.contains("slow_mode"))
    );

    let (status, to) = post_form(&bob, &slow_url, &[("csrf", &token), ("seconds", "30")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    assert!(to.ends_with("/members?done=slow_mode"), "{to}");
    let (_, html) = page(&bob, &members_url).await;
    assert!(html.contains("data-slow-mode=\"30\""), "{html}");
    assert!(html.contains("<option value=\"30\" selected>"), "{html}");
    assert_eq!(send(&app, &carol, room, "one").await, StatusCode::CREATED);
    assert_eq!(
        send(&app, &carol, room, "two").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&app, &bob, room, "I moderate").await,
        StatusCode::CREATED
    );
    assert_eq!(
        send(&app, &bob, room, "so I may").await,
        StatusCode::CREATED
    );

    let (status, _) = post_form(&bob, &slow_url, &[("csrf", &token), ("seconds", "off")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, html) = page(&bob, &members_url).await;
    assert!(html.contains("data-slow-mode=\"off\""), "{html}");
    assert_eq!(send(&app, &carol, room, "two").await, StatusCode::CREATED);
    let trail = app.audit_actions().await;
    assert_eq!(
        &trail[..2],
        ["bob slow_mode 闲聊-1", "bob slow_mode 闲聊-1"]
    );
}
