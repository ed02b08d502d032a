//! Test support shared by chat-admin's test files: a real server on
//! 127.0.0.1:0 over the in-memory adapters with the admin routes mounted,
//! clients that keep cookies, and page/form helpers.
// Each test file uses its own subset of these.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use chat_domain::{
    Actor, Password, PermissionName, Ports, ServiceConfig, Services, SystemClock, Username,
};
use chat_http::{AppState, HttpConfig, Shutdown};
use chat_memory::MemoryStore;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running server and the services behind it.
pub struct App {
    pub base: String,
    pub services: Services,
}

/// A server whose users are `users` (name and permissions), each with the
/// password `{name}-password`. Flood control is off.
pub async fn spawn_app(users: &[(&str, &[PermissionName])]) -> App {
    let store = Arc::new(MemoryStore::new());
    let services = Services::new(
        &Ports::single(store, Arc::new(SystemClock)),
        ServiceConfig {
            hasher: chat_domain::PasswordHasher::with_params(1024, 1, 1),
            rate_limit: None,
            ..ServiceConfig::default()
        },
    );
    for (name, perms) in users {
        services
            .accounts
            .create_user(
                &Actor::System,
                Username::parse(name).unwrap(),
                Password::parse(&format!("{name}-password")).unwrap(),
                perms.iter().cloned().collect(),
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
    let router = chat_http::router(state, chat_admin::router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    App {
        base: format!("http://{addr}"),
        services,
    }
}

/// A client that keeps cookies and does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client logged in as `name` with `password`.
    pub async fn login_with(&self, name: &str, password: &str) -> reqwest::Client {
        let c = client();
        let r = c
            .post(self.url("/api/session"))
            .json(&json!({ "username": name, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "login as {name}");
        c
    }

    /// A client logged in as `name` with the password it was made with.
    pub async fn login(&self, name: &str) -> reqwest::Client {
        self.login_with(name, &format!("{name}-password")).await
    }
}

/// The status and the JSON error code of a response.
pub async fn code(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// The value of the first `name="csrf"` field in a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// GET a page: its status and body.
pub async fn page(c: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// POST a form: its status and the redirect's location, or the body.
pub async fn post_form(
    c: &reqwest::Client,
    url: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let r = c.post(url).form(fields).send().await.unwrap();
    let status = r.status();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let body = r.text().await.unwrap();
    (status, location.unwrap_or(body))
}
