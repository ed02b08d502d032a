//! The HTML pages over real sockets: login and CSRF, the room list and its
//! create form, the chat page, direct rooms, avatars, static assets, and the
//! escaping of everything users type.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use chat_domain::{
    Actor, Description, MessageText, Password, PasswordHasher, PermissionName, Ports, RoomName,
    ServiceConfig, Services, SystemClock, User, Username, Visibility,
};
use chat_http::{AppState, HttpConfig, Shutdown};
use chat_memory::MemoryStore;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};

struct TestApp {
    addr: SocketAddr,
    services: Services,
}

impl TestApp {
    async fn spawn() -> Self {
        let store = Arc::new(MemoryStore::new());
        let services = Services::new(
            &Ports::single(store, Arc::new(SystemClock)),
            ServiceConfig {
                hasher: PasswordHasher::with_params(8, 1, 1),
                rate_limit: None,
                ..ServiceConfig::default()
            },
        );
        for (name, perms) in [
            ("admin", vec![PermissionName::admin()]),
            ("alice", vec![PermissionName::create_room()]),
            ("bob", vec![]),
            ("carol", vec![]),
            ("小明", vec![PermissionName::create_room()]),
        ] {
            services
                .accounts
                .create_user(
                    &Actor::System,
                    Username::parse(name).unwrap(),
                    Password::parse("password-1").unwrap(),
                    perms.into_iter().collect(),
                )
                .await
                .unwrap();
        }
        let state = AppState::new(
            &services,
            Vec::new(),
            HttpConfig::default(),
            Shutdown::new(),
        );
        let app = chat_http::router(state, Router::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, services }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    async fn user(&self, name: &str) -> User {
        self.services
            .accounts
            .user(&Actor::System, &Username::parse(name).unwrap())
            .await
            .unwrap()
    }

    async fn room(&self, by: &str, name: &str, description: &str, visibility: Visibility) {
        let actor = Actor::User(self.user(by).await);
        self.services
            .rooms
            .create(
                &actor,
                RoomName::parse(name).unwrap(),
                Description::parse(description).unwrap(),
                visibility,
            )
            .await
            .unwrap();
    }

    async fn say(&self, by: &str, room: &str, text: &str) {
        let actor = Actor::User(self.user(by).await);
        self.services
            .chat
            .send(
                &actor,
                &RoomName::parse(room).unwrap(),
                MessageText::parse(text).unwrap(),
                None,
            )
            .await
            .unwrap();
    }

    async fn room_names(&self) -> Vec<String> {
        self.services
            .rooms
            .list(&Actor::System)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.room.name.into_string())
            .collect()
    }

    /// A logged-in browser (cookie jar) and its CSRF token.
    async fn login(&self, name: &str) -> (reqwest::Client, String) {
        let client = self.client();
        let token = csrf_of(&get_text(&client, &self.url("/login")).await);
        let res = client
            .post(self.url("/login"))
            .form(&[
                ("username", name),
                ("password", "password-1"),
                ("csrf", token.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "login of {name}");
        (client, token)
    }
}

async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The value of the first `csrf` hidden field of a page.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form with a csrf field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn enc(s: &str) -> String {
    chat_http::pages::text::encode_component(s)
}

/// What the CSP forbids: inline scripts, inline styles, inline handlers,
/// third-party URLs. User text is escaped, so every `<` starts a real tag.
fn assert_csp_clean(html: &str) {
    for tag in html.split('<').skip(1).filter_map(|t| t.split('>').next()) {
        let lower = tag.to_ascii_lowercase();
        if lower.starts_with("script") {
            assert!(lower.contains(" src=\"/static/"), "inline script: <{tag}>");
        }
        assert!(!lower.starts_with("style"), "inline style element");
        for attr in lower.split_whitespace().skip(1) {
            assert!(!attr.starts_with("style="), "inline style: <{tag}>");
            assert!(!attr.starts_with("on"), "inline handler: <{tag}>");
            for url_attr in ["src=\"", "href=\""] {
                if let Some(url) = attr.strip_prefix(url_attr) {
                    let external = url.starts_with("//")
                        || (url.starts_with("http") && !url.starts_with("https://example.com"));
                    assert!(
                        !external
                            || url_attr == "href=\""
                                && lower.contains("rel=\"noopener noreferrer\""),
                        "third-party resource: <{tag}>"
                    );
                    assert!(!url.starts_with("javascript:"), "script link: <{tag}>");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_form_post_needs_the_csrf_token_of_its_cookie() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let res = client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("hihichat_csrf="))
        .expect("a csrf cookie on the first visit");
    assert!(cookie.contains("SameSite=Lax") && cookie.contains("Path=/"));
    let token = csrf_of(&res.text().await.unwrap());
    assert!(cookie.starts_with(&format!("hihichat_csrf={token};")));

    let post =
        |fields: Vec<(&'static str, String)>| client.post(app.url("/login")).form(&fields).send();
    let creds = || {
        vec![
            ("username", "alice".to_owned()),
            ("password", "password-1".to_owned()),
        ]
    };
    // No token.
    let res = post(creds()).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("expired"));
    // A wrong token.
    let mut wrong = creds();
    wrong.push(("csrf", "0".repeat(64)));
    assert_eq!(post(wrong).await.unwrap().status(), StatusCode::FORBIDDEN);
    // The right token from a browser without the cookie (another site's form).
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut forged = creds();
    forged.push(("csrf", token.clone()));
    let res = stranger
        .post(app.url("/login"))
        .form(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // The right token with its cookie.
    let mut right = creds();
    right.push(("csrf", token.clone()));
    let res = post(right).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/rooms");
    let session = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("hihichat_session="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"));
    // Logged in now: the nav shows the name and a logout form.
    let html = get_text(&client, &app.url("/rooms")).await;
    assert!(html.contains("data-whoami>alice<"), "{html}");
    assert!(html.contains("action=\"/logout\""));
}

#[tokio::test]
async fn a_wrong_password_or_name_gets_one_clear_error() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let token = csrf_of(&get_text(&client, &app.url("/login")).await);
    for (user, pass) in [("alice", "nope-nope"), ("nobody", "password-1")] {
        let res = client
            .post(app.url("/login"))
            .form(&[("username", user), ("password", pass), ("csrf", &token)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let html = res.text().await.unwrap();
        assert!(html.contains("wrong username or password"), "{html}");
        // The name is kept in the form, the password is not.
        assert!(html.contains(&format!("value=\"{user}\"")));
        assert!(!html.contains(pass));
    }
}

#[tokio::test]
async fn login_goes_to_next_only_when_it_is_a_local_path() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let html = get_text(&client, &app.url("/login?next=/rooms/%E9%97%B2")).await;
    assert!(html.contains("name=\"next\" value=\"/rooms/闲\""), "{html}");
    let token = csrf_of(&html);
    for (next, expected) in [
        ("/rooms/x", "/rooms/x"),
        ("//evil.example/", "/rooms"),
        ("https://evil.example/", "/rooms"),
        ("/\\evil.example", "/rooms"),
    ] {
        let res = client
            .post(app.url("/login"))
            .form(&[
                ("username", "alice"),
                ("password", "password-1"),
                ("csrf", token.as_str()),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(res.headers()[LOCATION], expected, "next={next}");
    }
}

#[tokio::test]
async fn logout_needs_the_token_and_ends_the_session() {
    let app = TestApp::spawn().await;
    let (client, token) = app.login("alice").await;
    let res = client.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        get_text(&client, &app.url("/rooms"))
            .await
            .contains("data-whoami>alice<")
    );

    let res = client
        .post(app.url("/logout"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/login");
    let html = get_text(&client, &app.url("/rooms")).await;
    assert!(!html.contains("data-whoami"));
    assert!(html.contains(">Log in<"));
}

#[tokio::test]
async fn the_create_form_is_only_for_holders_of_create_room_and_the_post_is_refused_to_others() {
    let app = TestApp::spawn().await;
    app.room("alice", "lobby", "", Visibility::Public).await;

    let guest = app.client();
    let html = get_text(&guest, &app.url("/rooms")).await;
    assert!(html.contains("lobby"));
    assert!(!html.contains("action=\"/rooms\""));

    let (bob, bob_token) = app.login("bob").await;
    let html = get_text(&bob, &app.url("/rooms")).await;
    assert!(html.contains("lobby") && !html.contains("action=\"/rooms\""));
    // A hidden button is not a check: bob's well-formed POST is refused.
    let res = bob
        .post(app.url("/rooms"))
        .form(&[("name", "bobs"), ("description", ""), ("csrf", &bob_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("create_room"));
    // So is a guest's.
    let guest_token = csrf_of(&get_text(&guest, &app.url("/login")).await);
    let res = guest
        .post(app.url("/rooms"))
        .form(&[("name", "guests"), ("csrf", &guest_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.room_names().await, vec!["lobby".to_owned()]);

    let (alice, token) = app.login("alice").await;
    let html = get_text(&alice, &app.url("/rooms")).await;
    assert!(html.contains("action=\"/rooms\""));
    let res = alice
        .post(app.url("/rooms"))
        .form(&[
            ("name", "闲聊-1"),
            ("description", "随便聊"),
            ("visibility", "private"),
            ("csrf", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], format!("/rooms/{}", enc("闲聊-1")));
    let summaries = app.services.rooms.list(&Actor::System).await.unwrap();
    let made = summaries
        .iter()
        .find(|s| s.room.name.as_str() == "闲聊-1")
        .unwrap();
    assert_eq!(made.room.visibility, Visibility::Private);
    assert_eq!(made.room.description.as_str(), "随便聊");
}

#[tokio::test]
async fn a_refused_create_shows_the_form_again_with_the_reason() {
    let app = TestApp::spawn().await;
    app.room("alice", "lobby", "", Visibility::Public).await;
    let (alice, token) = app.login("alice").await;
    let res = alice
        .post(app.url("/rooms"))
        .form(&[("name", "a b"), ("description", "kept"), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("role=\"alert\"") && html.contains("Room name"),
        "{html}"
    );
    assert!(html.contains(">kept</textarea>"));
    assert!(html.contains("value=\"a b\""));

    let res = alice
        .post(app.url("/rooms"))
        .form(&[("name", "lobby"), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("exists"));
}

#[tokio::test]
async fn pages_work_with_chinese_names_and_text() {
    let app = TestApp::spawn().await;
    app.room("小明", "闲聊-1", "中文描述", Visibility::Public)
        .await;
    app.say("小明", "闲聊-1", "你好🎉 see https://example.com/a.")
        .await;
    let (client, _) = app.login("小明").await;

    let html = get_text(&client, &app.url("/rooms")).await;
    assert!(html.contains(">闲聊-1<") && html.contains("中文描述"));
    assert!(html.contains(&format!("href=\"/rooms/{}\"", enc("闲聊-1"))));
    assert!(html.contains("data-whoami>小明<"));
    assert!(html.contains(&format!("/avatars/{}.svg", enc("小明"))));

    let res = client
        .get(app.url(&format!("/rooms/{}", enc("闲聊-1"))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("data-room=\"闲聊-1\""));
    assert!(html.contains("data-me=\"小明\""));
    assert!(html.contains("data-last-seq=\"1\""));
    assert!(html.contains("你好🎉 see "));
    assert!(
        html.contains(
            "<a href=\"https://example.com/a\" rel=\"noopener noreferrer\" target=\"_blank\">https://example.com/a</a>."
        ),
        "{html}"
    );
    // The page is the viewer's own message: styled as "you".
    assert!(html.contains("class=\"msg mine\""));
    assert_csp_clean(&html);
}

#[tokio::test]
async fn everything_users_type_comes_out_escaped() {
    let app = TestApp::spawn().await;
    let evil = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
    app.room("alice", "xss", evil, Visibility::Public).await;
    app.say("alice", "xss", evil).await;
    app.say(
        "alice",
        "xss",
        "javascript:alert(3) &amp; \u{202e}rtl\u{200b}",
    )
    .await;
    let (client, _) = app.login("alice").await;
    for path in ["/rooms".to_owned(), "/rooms/xss".to_owned()] {
        let html = get_text(&client, &app.url(&path)).await;
        assert!(!html.contains("<script>alert"), "{path}: {html}");
        assert!(!html.contains("<img src=x"), "{path}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}"
        );
        assert_csp_clean(&html);
    }
    let html = get_text(&client, &app.url("/rooms/xss")).await;
    assert!(!html.contains("href=\"javascript:"));
    assert!(html.contains("&#38;amp;"));
    assert!(html.contains("\u{202e}rtl\u{200b}"));
    // A login page reflecting a hostile username escapes it too.
    let token = csrf_of(&get_text(&client, &app.url("/login")).await);
    let html = client
        .post(app.url("/login"))
        .form(&[("username", evil), ("password", "x"), ("csrf", &token)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>alert") && !html.contains("<img src=x"));
}

#[tokio::test]
async fn missing_and_invisible_rooms_are_not_found() {
    let app = TestApp::spawn().await;
    app.room("alice", "secret", "", Visibility::Private).await;
    let (bob, _) = app.login("bob").await;
    for path in [
        "/rooms/nope",
        "/rooms/secret",
        "/rooms/a%20b",
        "/rooms/@alice+carol",
    ] {
        let res = bob.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        let html = res.text().await.unwrap();
        assert!(
            html.contains("Not found") && !html.contains("secret"),
            "{path}"
        );
    }
    let (alice, _) = app.login("alice").await;
    let res = alice.get(app.url("/rooms/secret")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let guest = app.client();
    let res = guest.get(app.url("/rooms/secret")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_direct_room_page_works_before_and_after_its_first_message() {
    let app = TestApp::spawn().await;
    let (alice, token) = app.login("alice").await;
    // The reversed name is sent to the one canonical name.
    let res = alice
        .get(app.url("/rooms/@bob+alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[LOCATION],
        format!("/rooms/{}", enc("@alice+bob"))
    );

    let html = get_text(&alice, &app.url("/rooms/@alice+bob")).await;
    assert!(html.contains("data-exists=\"false\""));
    assert!(html.contains("data-dm-to=\"bob\""));
    assert!(html.contains("data-room=\"@alice+bob\""));

    // The first message without JavaScript: the form send makes the room.
    let res = alice
        .post(app.url(&format!("/rooms/{}", enc("@alice+bob"))))
        .form(&[("text", "hi bob"), ("cid", "form-1"), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let html = get_text(&alice, &app.url("/rooms/@alice+bob")).await;
    assert!(html.contains("data-exists=\"true\"") && html.contains("hi bob"));

    let (bob, _) = app.login("bob").await;
    let html = get_text(&bob, &app.url("/dms")).await;
    assert!(html.contains(">alice<") && html.contains(&enc("@alice+bob")));
    let html = get_text(&bob, &app.url("/rooms/@alice+bob")).await;
    assert!(html.contains("hi bob"));
    // Not carol's conversation.
    let (carol, _) = app.login("carol").await;
    let res = carol
        .get(app.url("/rooms/@alice+bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_chat_page_lists_members_with_direct_links_and_the_latest_50_messages() {
    let app = TestApp::spawn().await;
    app.room("alice", "lobby", "", Visibility::Public).await;
    for i in 1..=60 {
        app.say("alice", "lobby", &format!("message number {i}"))
            .await;
    }
    app.say("bob", "lobby", "bob was here").await;
    let (bob, _) = app.login("bob").await;
    let html = get_text(&bob, &app.url("/rooms/lobby")).await;
    assert!(html.contains("data-user=\"alice\"") && html.contains("data-user=\"bob\""));
    assert!(html.contains(&format!("href=\"/rooms/{}\"", enc("@alice+bob"))));
    assert!(!html.contains("message number 11<"));
    assert!(html.contains("message number 12<") && html.contains("bob was here"));
    assert!(html.contains("data-more=\"true\"") && html.contains("data-oldest-seq=\"12\""));
    assert!(html.contains("?before=12\""));
    // Without JavaScript, the older page is a link away.
    let html = get_text(&bob, &app.url("/rooms/lobby?before=12")).await;
    assert!(html.contains("message number 1<") && html.contains("message number 11<"));
    assert!(!html.contains("message number 12<"));
    assert!(html.contains("data-live=\"false\""));
}

#[tokio::test]
async fn the_room_links_its_member_page_for_moderators_and_the_nav_links_my_account() {
    let app = TestApp::spawn().await;
    app.room("alice", "lobby", "", Visibility::Public).await;
    let (alice, _) = app.login("alice").await;
    let (bob, _) = app.login("bob").await;
    let as_creator = get_text(&alice, &app.url("/rooms/lobby")).await;
    assert!(as_creator.contains("href=\"/rooms/lobby/members\""));
    assert!(as_creator.contains("href=\"/account\""));
    let as_member = get_text(&bob, &app.url("/rooms/lobby")).await;
    assert!(!as_member.contains("/rooms/lobby/members"));
    assert!(as_member.contains("href=\"/account\""));
    let as_guest = get_text(&app.client(), &app.url("/rooms/lobby")).await;
    assert!(!as_guest.contains("/account\"") && !as_guest.contains("/members\""));
}

#[tokio::test]
async fn the_composer_works_without_javascript_and_guests_get_the_bot() {
    let app = TestApp::spawn().await;
    app.room("alice", "lobby", "", Visibility::Public).await;
    let (bob, token) = app.login("bob").await;
    let res = bob
        .post(app.url("/rooms/lobby"))
        .form(&[
            ("text", "你好 from a form"),
            ("cid", "form-abc"),
            ("csrf", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/rooms/lobby#m1");
    // The same form sent twice (a double click) stores one message.
    let again = bob
        .post(app.url("/rooms/lobby"))
        .form(&[
            ("text", "你好 from a form"),
            ("cid", "form-abc"),
            ("csrf", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.headers()[LOCATION], "/rooms/lobby#m1");

    let guest = app.client();
    let html = get_text(&guest, &app.url("/rooms/lobby")).await;
    assert!(html.contains("data-guest=\"true\"") && html.contains("You are a guest"));
    let token = csrf_of(&html);
    let res = guest
        .post(app.url("/rooms/lobby"))
        .form(&[("text", "hello bot"), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("only you can see this"), "{html}");
    let page = app
        .services
        .chat
        .history(&Actor::System, &RoomName::parse("lobby").unwrap(), None, 50)
        .await
        .unwrap();
    let texts: Vec<&str> = page.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, vec!["你好 from a form"]);
}

#[tokio::test]
async fn avatars_are_cacheable_svg_that_never_contain_the_name() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let res = client
        .get(app.url(&format!("/avatars/{}.svg", enc("小明"))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "image/svg+xml");
    assert!(
        res.headers()[CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let svg = res.text().await.unwrap();
    assert!(svg.starts_with("<svg") && !svg.contains("小明"));
    let again = get_text(&client, &app.url(&format!("/avatars/{}.svg", enc("小明")))).await;
    assert_eq!(svg, again);

    let evil = "<script>alert(1)</script>";
    let svg = get_text(&client, &app.url(&format!("/avatars/{}.svg", enc(evil)))).await;
    assert!(!svg.contains("script") && svg.starts_with("<svg"));
    let res = client
        .get(app.url("/avatars/alice.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn static_assets_are_served_under_hashed_names_and_cached_for_good() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let html = get_text(&client, &app.url("/rooms")).await;
    let css = html
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with("/static/app.") && h.ends_with(".css"))
        .expect("a hashed stylesheet link")
        .to_owned();
    assert_ne!(css, "/static/app.css");
    let res = client.get(app.url(&css)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(
        res.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(res.text().await.unwrap().contains("[data-theme=\"dark\"]"));
    for js in ["chat.js", "theme.js"] {
        let url = chat_http::pages::assets::url(js);
        assert!(html.contains(&format!("src=\"{url}\"")), "{js}");
        let res = client.get(app.url(&url)).send().await.unwrap();
        assert!(
            res.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
    }
    let res = client.get(app.url("/static/app.css")).send().await.unwrap();
    assert_eq!(res.headers()[CACHE_CONTROL], "no-cache");
    let res = client
        .get(app.url("/static/app.00000000.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admins_see_the_admin_shortcuts_and_others_do_not() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.login("admin").await;
    let html = get_text(&admin, &app.url("/rooms")).await;
    for link in [
        "/admin/users\"",
        "/admin/users/new\"",
        "/admin/permissions\"",
    ] {
        assert!(html.contains(link), "{link}");
    }
    let (bob, _) = app.login("bob").await;
    let html = get_text(&bob, &app.url("/rooms")).await;
    assert!(!html.contains("/admin/"));
    let res = app.client().get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/rooms");
}
