//! The admin JSON API and pages over a real server on 127.0.0.1:0 with the
//! in-memory adapters: who gets which status, and what each action changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chat_domain::{Actor, PermissionName, Username};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod common;

use common::{App, client, code, csrf_of, page};

/// `admin` (admin) and `bob` (create_room).
async fn spawn_app() -> App {
    common::spawn_app(&[
        ("admin", &[PermissionName::admin()]),
        ("bob", &[PermissionName::create_room()]),
    ])
    .await
}

impl App {
    async fn admin(&self) -> reqwest::Client {
        self.login("admin").await
    }

    async fn user(&self, name: &str) -> Option<chat_domain::User> {
        self.services
            .accounts
            .user(&Actor::System, &Username::parse(name).unwrap())
            .await
            .ok()
    }
}

/// Every admin route with a body that would succeed for an admin.
fn routes() -> Vec<(reqwest::Method, &'static str, Option<Value>)> {
    use reqwest::Method;
    vec![
        (Method::GET, "/api/admin/users", None),
        (
            Method::POST,
            "/api/admin/users",
            Some(json!({"username": "carol", "password": "carol-password"})),
        ),
        (Method::DELETE, "/api/admin/users/bob", None),
        (
            Method::PUT,
            "/api/admin/users/bob/password",
            Some(json!({"password": "new-password"})),
        ),
        (
            Method::PUT,
            "/api/admin/users/bob/permissions",
            Some(json!({"permissions": ["admin"]})),
        ),
        (Method::GET, "/api/admin/permissions", None),
        (
            Method::POST,
            "/api/admin/permissions",
            Some(json!({"name": "vip"})),
        ),
    ]
}

#[tokio::test]
async fn guests_get_401_and_users_get_403_on_every_admin_route_and_nothing_changes() {
    let app = spawn_app().await;
    let guest = client();
    let bob = app.login("bob").await;
    for (who, c, status, wire) in [
        ("guest", &guest, StatusCode::UNAUTHORIZED, "unauthenticated"),
        ("bob", &bob, StatusCode::FORBIDDEN, "forbidden"),
    ] {
        for (method, path, body) in routes() {
            let mut req = c.request(method.clone(), app.url(path));
            if let Some(b) = &body {
                req = req.json(b);
            }
            let got = code(req.send().await.unwrap()).await;
            assert_eq!(got, (status, wire.to_owned()), "{who} {method} {path}");
        }
        // A malformed body is still refused for who the caller is, not for the body.
        let r = c
            .post(app.url("/api/admin/users"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{who} with a malformed body");
    }
    let bob_user = app.user("bob").await.expect("bob still exists");
    assert_eq!(bob_user.permissions, [PermissionName::create_room()].into());
    assert!(app.user("carol").await.is_none());
    app.login("bob").await;
    let perms = app
        .services
        .accounts
        .permissions(&Actor::System)
        .await
        .unwrap();
    assert!(!perms.iter().any(|p| p.as_str() == "vip"));
}

#[tokio::test]
async fn an_admin_creates_lists_and_deletes_users() {
    let app = spawn_app().await;
    let admin = app.admin().await;

    let r = admin
        .post(app.url("/api/admin/users"))
        .json(&json!({"username": "小明", "password": "xiaoming-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["name"], "小明");

    let again = admin
        .post(app.url("/api/admin/users"))
        .json(&json!({"username": "小明", "password": "other-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(code(again).await, (StatusCode::CONFLICT, "conflict".into()));

    for bad in [
        json!({"username": "bad name", "password": "long-enough"}),
        json!({"username": "", "password": "long-enough"}),
        json!({"username": "dave", "password": "short"}),
        json!({"username": "dave"}),
    ] {
        let r = admin
            .post(app.url("/api/admin/users"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(
            code(r).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid".into()),
            "{bad}"
        );
    }
    assert!(app.user("dave").await.is_none());

    let list: Value = admin
        .get(app.url("/api/admin/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "bob", "小明"]);
    let bob = &list["users"][1];
    assert_eq!(bob["permissions"], json!(["create_room"]));
    assert!(bob["created_at"].as_str().unwrap().ends_with('Z'));

    // The path carries the name percent-encoded.
    let r = admin
        .delete(app.url("/api/admin/users/%E5%B0%8F%E6%98%8E"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(app.user("小明").await.is_none());
    let r = admin
        .delete(app.url("/api/admin/users/%E5%B0%8F%E6%98%8E"))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "not_found".into()));

    let me = admin
        .delete(app.url("/api/admin/users/admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(code(me).await, (StatusCode::FORBIDDEN, "forbidden".into()));
    assert!(app.user("admin").await.is_some());
}

#[tokio::test]
async fn permissions_are_replaced_not_appended() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let put = |perms: Value| {
        admin
            .put(app.url("/api/admin/users/bob/permissions"))
            .json(&json!({ "permissions": perms }))
            .send()
    };

    let r = put(json!(["moderate", "moderate"])).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["permissions"], json!(["moderate"]));
    assert_eq!(
        app.user("bob").await.unwrap().permissions,
        [PermissionName::moderate()].into()
    );

    let r = put(json!(["no_such_perm"])).await.unwrap();
    assert_eq!(
        code(r).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid".into())
    );
    let r = put(json!(["Not A Name"])).await.unwrap();
    assert_eq!(
        code(r).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid".into())
    );
    assert_eq!(
        app.user("bob").await.unwrap().permissions,
        [PermissionName::moderate()].into(),
        "a refused change leaves the set alone"
    );

    let r = put(json!([])).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(app.user("bob").await.unwrap().permissions.is_empty());

    let r = admin
        .put(app.url("/api/admin/users/nobody/permissions"))
        .json(&json!({"permissions": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "not_found".into()));

    let r = admin
        .put(app.url("/api/admin/users/admin/permissions"))
        .json(&json!({"permissions": ["create_room"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (StatusCode::FORBIDDEN, "forbidden".into()));
}

#[tokio::test]
async fn an_admin_defines_permissions_and_grants_them() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let define = |name: &str| {
        admin
            .post(app.url("/api/admin/permissions"))
            .json(&json!({ "name": name }))
            .send()
    };
    assert_eq!(define("vip").await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(
        code(define("vip").await.unwrap()).await,
        (StatusCode::CONFLICT, "conflict".into())
    );
    assert_eq!(
        code(define("Bad Name").await.unwrap()).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid".into())
    );
    let list: Value = admin
        .get(app.url("/api/admin/permissions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let perms = list["permissions"].as_array().unwrap();
    for p in ["admin", "create_room", "moderate", "vip"] {
        assert!(perms.contains(&json!(p)), "{p} in {list}");
    }
    let r = admin
        .put(app.url("/api/admin/users/bob/permissions"))
        .json(&json!({"permissions": ["vip", "create_room"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let bob = app.user("bob").await.unwrap();
    assert!(bob.has(&PermissionName::parse("vip").unwrap()));
}

#[tokio::test]
async fn a_password_reset_ends_the_users_sessions_and_the_new_one_works() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let bob = app.login("bob").await;

    let short = admin
        .put(app.url("/api/admin/users/bob/password"))
        .json(&json!({"password": "abc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(short).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid".into())
    );

    let r = admin
        .put(app.url("/api/admin/users/bob/password"))
        .json(&json!({"password": "brand-new-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let me: Value = bob
        .get(app.url("/api/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["guest"], true, "bob's old session ended: {me}");
    let r = client()
        .post(app.url("/api/session"))
        .json(&json!({"username": "bob", "password": "bob-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.login_with("bob", "brand-new-pw").await;

    let r = admin
        .put(app.url("/api/admin/users/nobody/password"))
        .json(&json!({"password": "whatever-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (StatusCode::NOT_FOUND, "not_found".into()));
}

// ------------------------------------------------------------------ pages

#[tokio::test]
async fn admin_pages_are_for_admins_only() {
    let app = spawn_app().await;
    let guest = client();
    let bob = app.login("bob").await;
    for path in [
        "/admin/users",
        "/admin/users/new",
        "/admin/users/bob",
        "/admin/users/bob/delete",
        "/admin/permissions",
    ] {
        let r = guest.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "guest {path}");
        let to = r.headers()["location"].to_str().unwrap();
        assert!(to.starts_with("/login"), "guest {path} → {to}");
        let (status, _) = page(&bob, &app.url(path)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "bob {path}");
    }
    // A user with a valid CSRF token still cannot act.
    let (_, html) = page(&bob, &app.url("/rooms")).await;
    let token = csrf_of(&html);
    let r = bob
        .post(app.url("/admin/users/new"))
        .form(&[
            ("csrf", token.as_str()),
            ("username", "mallory"),
            ("password", "mallory-pw"),
            ("password2", "mallory-pw"),
            ("perm:admin", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = bob
        .post(app.url("/admin/users/bob/permissions"))
        .form(&[("csrf", token.as_str()), ("perm:admin", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.user("mallory").await.is_none());
    assert!(!app.user("bob").await.unwrap().has(&PermissionName::admin()));
}

#[tokio::test]
async fn an_admin_manages_users_through_the_pages() {
    let app = spawn_app().await;
    let admin = app.admin().await;

    let (status, html) = page(&admin, &app.url("/admin/users")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("bob") && html.contains("create_room"),
        "{html}"
    );
    assert!(html.contains("UTC"), "creation dates are shown");

    let (_, form) = page(&admin, &app.url("/admin/users/new")).await;
    let token = csrf_of(&form);

    // Without the token nothing happens.
    let r = admin
        .post(app.url("/admin/users/new"))
        .form(&[
            ("username", "carol"),
            ("password", "carol-pw"),
            ("password2", "carol-pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(app.user("carol").await.is_none());

    // Passwords that differ are refused with a message, the name kept.
    let r = admin
        .post(app.url("/admin/users/new"))
        .form(&[
            ("csrf", token.as_str()),
            ("username", "carol"),
            ("password", "carol-pw"),
            ("password2", "carol-pX"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("differ") && html.contains("value=\"carol\""),
        "{html}"
    );
    assert!(app.user("carol").await.is_none());

    // A taken name says so.
    let r = admin
        .post(app.url("/admin/users/new"))
        .form(&[
            ("csrf", token.as_str()),
            ("username", "bob"),
            ("password", "other-pw"),
            ("password2", "other-pw"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("taken"));

    let r = admin
        .post(app.url("/admin/users/new"))
        .form(&[
            ("csrf", token.as_str()),
            ("username", "闲聊-1"),
            ("password", "carol-pw"),
            ("password2", "carol-pw"),
            ("perm:moderate", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let created = app.user("闲聊-1").await.expect("created");
    assert_eq!(created.permissions, [PermissionName::moderate()].into());

    // The user's page: permissions as checkboxes, replaced by the form.
    let (status, html) = page(&admin, &app.url("/admin/users/%E9%97%B2%E8%81%8A-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("name=\"perm:moderate\" value=\"on\" checked"),
        "{html}"
    );
    let r = admin
        .post(app.url("/admin/users/%E9%97%B2%E8%81%8A-1/permissions"))
        .form(&[("csrf", token.as_str()), ("perm:create_room", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.user("闲聊-1").await.unwrap().permissions,
        [PermissionName::create_room()].into()
    );

    // Password reset, twice the same.
    let r = admin
        .post(app.url("/admin/users/bob/password"))
        .form(&[
            ("csrf", token.as_str()),
            ("password", "reset-pw-1"),
            ("password2", "reset-pw-2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = admin
        .post(app.url("/admin/users/bob/password"))
        .form(&[
            ("csrf", token.as_str()),
            ("password", "reset-pw-1"),
            ("password2", "reset-pw-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.login_with("bob", "reset-pw-1").await;

    // Deleting takes a confirmation step.
    let (status, html) = page(&admin, &app.url("/admin/users/bob/delete")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"confirm\" value=\"yes\""));
    let r = admin
        .post(app.url("/admin/users/bob/delete"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "no confirmation: back to the question"
    );
    assert!(app.user("bob").await.is_some());
    let r = admin
        .post(app.url("/admin/users/bob/delete"))
        .form(&[("csrf", token.as_str()), ("confirm", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(app.user("bob").await.is_none());

    // Permissions page: list and define.
    let r = admin
        .post(app.url("/admin/permissions"))
        .form(&[("csrf", token.as_str()), ("name", "vip")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&admin, &app.url("/admin/permissions")).await;
    assert!(html.contains("<code>vip</code>"), "{html}");
    let r = admin
        .post(app.url("/admin/permissions"))
        .form(&[("csrf", token.as_str()), ("name", "vip")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
}
