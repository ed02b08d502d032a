//! Support for hihichat's end-to-end tests: a real server on `127.0.0.1:0`
//! (in-process with [`spawn_app`], or the real `hihichat` binary with
//! [`ServerProcess`]), HTTP clients with their own cookie jars, and
//! WebSocket clients that never hang a test.
//!
//! Tracing output is off unless `TEST_LOG` is set (`TEST_LOG=1 cargo test
//! -p chat-tests -- --nocapture`); `RUST_LOG` then picks the filter.
//!
//! Helpers panic with a message saying what failed: in a test that is the
//! failure report, and it keeps the tests short.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::HeaderValue;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The first admin's name on every test server.
pub const ADMIN_NAME: &str = "admin";
/// The first admin's password on every test server (`Settings::for_tests`
/// uses it, and [`ServerProcess`] passes it as `CHAT_ADMIN_PASSWORD`).
pub const ADMIN_PASSWORD: &str = "admin-password";
/// The session cookie's name (CONTRACT §3 and the brief).
pub const SESSION_COOKIE: &str = "hihichat_session";
/// The CSRF cookie's name; forms carry the token in the field `csrf`.
pub const CSRF_COOKIE: &str = "hihichat_csrf";
/// How long a WebSocket read waits before the test fails instead of hanging.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// Turns tracing on once per test binary when `TEST_LOG` is set.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
    });
}

fn test_log() -> bool {
    std::env::var_os("TEST_LOG").is_some()
}

/// A user's name and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    /// The username.
    pub name: String,
    /// The plain password (only tests know it).
    pub password: String,
}

impl TestUser {
    /// A user with a password derived from the name (at least 6 characters).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            password: format!("{name}-password"),
        }
    }
}

/// A hihichat server running in this test's runtime, on `127.0.0.1:0`.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// `ws://127.0.0.1:PORT/ws`.
    pub ws_url: String,
    /// The first admin.
    pub admin: TestUser,
    /// Holds the SQLite file and the secret key; removed when the app is dropped.
    pub tempdir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Starts a server with `Settings::for_tests` in a fresh temporary directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server after `configure` has adjusted its settings.
pub async fn spawn_app_with(configure: impl FnOnce(&mut chat_server::Settings)) -> TestApp {
    init_tracing();
    let tempdir = tempfile::tempdir().expect("a temporary directory for the server");
    let mut settings = chat_server::Settings::for_tests(tempdir.path());
    configure(&mut settings);
    let app = chat_server::Application::build(settings)
        .await
        .expect("the application builds with test settings");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        ws_url: format!("ws://{addr}/ws"),
        admin: TestUser {
            name: ADMIN_NAME.to_owned(),
            password: ADMIN_PASSWORD.to_owned(),
        },
        tempdir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// For [`spawn_app_with`]: turns flood control off, for tests that send
/// more than a burst (flood control has tests of its own).
pub fn without_rate_limit(settings: &mut chat_server::Settings) {
    settings.rate_limit = None;
}

impl TestApp {
    /// Asks the server to shut down gracefully and waits until it has.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }

    /// A client without a session: a guest.
    pub fn guest(&self) -> Client {
        Client::new(&self.base_url)
    }

    /// A client logged in as the first admin.
    pub async fn admin_client(&self) -> Client {
        let admin = self.admin.clone();
        self.login(&admin).await
    }

    /// A client logged in as `user`; panics unless the login succeeds.
    pub async fn login(&self, user: &TestUser) -> Client {
        let mut client = self.guest();
        client.login_ok(user).await;
        client.user = Some(user.clone());
        client
    }

    /// Creates `name` through the admin API with exactly `permissions`.
    pub async fn create_user(&self, name: &str, permissions: &[&str]) -> TestUser {
        let admin = self.admin_client().await;
        admin.create_user(name, permissions).await
    }

    /// Creates `name` with `permissions` and logs in as them.
    pub async fn user_client(&self, name: &str, permissions: &[&str]) -> Client {
        let user = self.create_user(name, permissions).await;
        self.login(&user).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An HTTP client with its own cookie jar (so each is its own browser).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    jar: Arc<Jar>,
    /// `http://127.0.0.1:PORT` of the server it talks to.
    pub base_url: String,
    /// Who it is logged in as, if anyone.
    pub user: Option<TestUser>,
}

impl Client {
    /// A fresh client for the server at `base_url`, without cookies.
    pub fn new(base_url: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            // Tests look at the redirect itself (a form POST answers 303).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Self {
            http,
            jar,
            base_url: base_url.trim_end_matches('/').to_owned(),
            user: None,
        }
    }

    /// The same cookies, pointed at another server (another node).
    pub fn with_cookies_for(&self, base_url: &str) -> Self {
        let other = Self::new(base_url);
        if let Some(cookies) = self.cookie_header() {
            let url = other.url("/");
            for cookie in cookies.to_str().unwrap_or_default().split("; ") {
                other.jar.add_cookie_str(&format!("{cookie}; Path=/"), &url);
            }
        }
        Self {
            user: self.user.clone(),
            ..other
        }
    }

    /// The absolute URL of `path` (which starts with `/` and is already percent-encoded).
    pub fn url(&self, path: &str) -> reqwest::Url {
        reqwest::Url::parse(&format!("{}{path}", self.base_url)).expect("a valid URL")
    }

    /// The `Cookie` header this client would send to its server.
    pub fn cookie_header(&self) -> Option<HeaderValue> {
        self.jar.cookies(&self.url("/"))
    }

    /// The value of one cookie, if the jar holds it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let header = self.cookie_header()?;
        header.to_str().ok()?.split("; ").find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.http
            .delete(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"))
    }

    /// `POST path` with an HTML form body.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} (form): {e}"))
    }

    /// `POST /api/session`; the answer is returned whatever it is.
    pub async fn login(&self, user: &TestUser) -> Response {
        self.post_json(
            "/api/session",
            &json!({ "username": user.name, "password": user.password }),
        )
        .await
    }

    /// Logs in and panics unless it worked and a session cookie was set.
    pub async fn login_ok(&self, user: &TestUser) -> Value {
        let response = self.login(user).await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "login as {}: {body}", user.name);
        assert!(
            self.cookie(SESSION_COOKIE).is_some(),
            "login as {} set no {SESSION_COOKIE} cookie",
            user.name
        );
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    /// Creates a user through the admin API (this client must be an admin):
    /// `POST /api/admin/users`, then `PUT .../permissions`.
    pub async fn create_user(&self, name: &str, permissions: &[&str]) -> TestUser {
        let user = TestUser::new(name);
        let response = self
            .post_json(
                "/api/admin/users",
                &json!({ "username": user.name, "password": user.password }),
            )
            .await;
        expect_status(
            response,
            StatusCode::CREATED,
            &format!("create user {name}"),
        )
        .await;
        let response = self
            .put_json(
                &format!("/api/admin/users/{}/permissions", encode(name)),
                &json!({ "permissions": permissions }),
            )
            .await;
        expect_status(
            response,
            StatusCode::OK,
            &format!("set {name}'s permissions"),
        )
        .await;
        user
    }

    /// `POST /api/rooms`; the answer is returned whatever it is.
    pub async fn create_room(&self, name: &str, visibility: &str) -> Response {
        self.post_json(
            "/api/rooms",
            &json!({ "name": name, "description": format!("room {name}"), "visibility": visibility }),
        )
        .await
    }

    /// Creates a public room and panics unless it answers 201.
    pub async fn create_room_ok(&self, name: &str) -> Value {
        let response = self.create_room(name, "public").await;
        expect_status(
            response,
            StatusCode::CREATED,
            &format!("create room {name}"),
        )
        .await
    }

    /// Every message of `room` through `GET /api/rooms/{room}/messages`, oldest first,
    /// paging back with `before` 200 at a time.
    pub async fn all_messages(&self, room: &str) -> Vec<Value> {
        let mut pages: Vec<Vec<Value>> = Vec::new();
        let mut before: Option<u64> = None;
        loop {
            let query = match before {
                Some(seq) => format!("?before={seq}&limit=200"),
                None => "?limit=200".to_owned(),
            };
            let response = self
                .get(&format!("/api/rooms/{}/messages{query}", encode(room)))
                .await;
            let body = expect_status(response, StatusCode::OK, &format!("history of {room}")).await;
            let messages = body["messages"].as_array().cloned().unwrap_or_default();
            let more = body["more"].as_bool().unwrap_or(false);
            before = messages.first().and_then(|m| m["seq"].as_u64());
            pages.push(messages);
            if !more || before.is_none() {
                break;
            }
        }
        pages.into_iter().rev().flatten().collect()
    }

    /// A WebSocket to this client's server, carrying its session cookie.
    pub async fn ws(&self) -> Ws {
        let ws_url = format!(
            "{}/ws",
            self.base_url
                .replacen("http://", "ws://", 1)
                .replacen("https://", "wss://", 1)
        );
        Ws::connect(&ws_url, self.cookie_header(), None)
            .await
            .unwrap_or_else(|e| panic!("WebSocket upgrade at {ws_url}: {e}"))
    }

    /// Fetches `page` and returns a CSRF token for its forms: the value of
    /// the page's first `csrf` field, or the `hihichat_csrf` cookie when the
    /// page has no form (double-submit: field and cookie match).
    pub async fn csrf_token(&self, page: &str) -> String {
        let response = self.get(page).await;
        let html = response.text().await.unwrap_or_default();
        form_field(&html, "csrf")
            .or_else(|| self.cookie(CSRF_COOKIE))
            .unwrap_or_else(|| {
                panic!("{page} gave no CSRF token (no `csrf` field, no {CSRF_COOKIE} cookie)")
            })
    }
}

/// Panics unless `response` has `status`; returns the JSON body (`Null` if none).
pub async fn expect_status(response: Response, status: StatusCode, what: &str) -> Value {
    let got = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(got, status, "{what}: answered {got} with {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The `value` of the first `<input name="NAME" value="...">` in `html`.
pub fn form_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\"");
    let at = html.find(&marker)?;
    // The attribute order inside the tag is free: look at the whole tag.
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let value_at = tag.find("value=\"")? + "value=\"".len();
    let value = &tag[value_at..];
    Some(value[..value.find('"')?].to_owned())
}

/// Percent-encodes one path segment (UTF-8 bytes), as a browser does for `闲聊-1`.
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() * 3);
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A WebSocket client speaking hihichat's JSON frames.
///
/// Frames read while waiting for a particular one are kept in order (see
/// [`Ws::wait_for`]) unless a method says it discards them.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    held: VecDeque<Value>,
    /// How long one read may take before the test fails.
    pub timeout: Duration,
    /// The close frame, once the server has closed the socket.
    pub closed: Option<Option<CloseFrame>>,
}

/// How a read ended without a frame.
#[derive(Debug)]
pub enum RecvError {
    /// Nothing arrived in time.
    Timeout,
    /// The server closed the socket (with this frame, if it sent one).
    Closed(Option<CloseFrame>),
    /// The connection broke.
    Broken(String),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("no frame in time"),
            Self::Closed(frame) => write!(f, "socket closed ({frame:?})"),
            Self::Broken(e) => write!(f, "connection broken: {e}"),
        }
    }
}

impl Ws {
    /// Connects to `ws_url` with an optional `Cookie` and `Origin` header.
    ///
    /// # Errors
    /// When the upgrade is refused or the connection fails.
    pub async fn connect(
        ws_url: &str,
        cookie: Option<HeaderValue>,
        origin: Option<&str>,
    ) -> Result<Ws, tungstenite::Error> {
        let mut request = ws_url.into_client_request()?;
        if let Some(cookie) = cookie {
            request.headers_mut().insert("cookie", cookie);
        }
        if let Some(origin) = origin {
            if let Ok(value) = origin.parse() {
                request.headers_mut().insert("origin", value);
            }
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Ws {
            stream,
            held: VecDeque::new(),
            timeout: RECV_TIMEOUT,
            closed: None,
        })
    }

    /// Sends one JSON frame.
    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    /// Sends one text frame as it is (for malformed input).
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.try_send_text(text)
            .await
            .unwrap_or_else(|e| panic!("sending a frame: {e}"));
    }

    /// Sends one text frame, reporting a broken connection instead of panicking.
    ///
    /// # Errors
    /// When the socket is closed or broken.
    pub async fn try_send_text(
        &mut self,
        text: impl Into<String>,
    ) -> Result<(), tungstenite::Error> {
        self.stream.send(Message::text(text.into())).await
    }

    /// The next JSON frame from the socket (not the held ones), or why none came.
    pub async fn read_frame(&mut self, timeout: Duration) -> Result<Value, RecvError> {
        if let Some(frame) = &self.closed {
            return Err(RecvError::Closed(frame.clone()));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            let message = match next {
                Err(_) => return Err(RecvError::Timeout),
                Ok(None) => {
                    self.closed = Some(None);
                    return Err(RecvError::Closed(None));
                }
                Ok(Some(Err(e))) => {
                    self.closed = Some(None);
                    return Err(RecvError::Broken(e.to_string()));
                }
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    return Ok(serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                        panic!("the server sent a text frame that is not JSON ({e}): {text}")
                    }));
                }
                Message::Close(frame) => {
                    self.closed = Some(frame.clone());
                    return Err(RecvError::Closed(frame));
                }
                Message::Binary(_) => panic!("the server sent a binary frame"),
                // tungstenite answers pings by itself.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// The next frame (held ones first); panics after [`Ws::timeout`].
    pub async fn recv_json(&mut self) -> Value {
        if let Some(frame) = self.held.pop_front() {
            return frame;
        }
        let timeout = self.timeout;
        self.read_frame(timeout)
            .await
            .unwrap_or_else(|e| panic!("waiting for a frame: {e}"))
    }

    /// The next frame of type `ty`, discarding every other frame before it.
    pub async fn recv_until(&mut self, ty: &str) -> Value {
        loop {
            let frame = self.recv_json().await;
            if frame["type"] == ty {
                return frame;
            }
        }
    }

    /// The first frame (held or new) matching `pred`; other frames are kept,
    /// in order, for later reads. Panics if none comes within [`Ws::timeout`]
    /// of the last frame.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(at) = self.held.iter().position(&pred) {
            return self.held.remove(at).unwrap();
        }
        let timeout = self.timeout;
        loop {
            match self.read_frame(timeout).await {
                Ok(frame) if pred(&frame) => return frame,
                Ok(frame) => self.held.push_back(frame),
                Err(e) => panic!("waiting for {what}: {e}; frames meanwhile: {:?}", self.held),
            }
        }
    }

    /// Every frame that arrives within `window` (held ones first), without failing.
    pub async fn drain(&mut self, window: Duration) -> Vec<Value> {
        let mut frames: Vec<Value> = self.held.drain(..).collect();
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(left).await {
                Ok(frame) => frames.push(frame),
                Err(_) => return frames,
            }
        }
    }

    /// `join` and wait for its `joined` (other frames are kept).
    pub async fn join(&mut self, room: &str, since: Option<u64>) -> Value {
        let mut frame = json!({ "type": "join", "room": room });
        if let Some(since) = since {
            frame["since"] = json!(since);
        }
        self.send_json(frame).await;
        self.wait_for(&format!("joined {room}"), |f| {
            (f["type"] == "joined" && f["room"] == room) || is_error_for(f, room, None)
        })
        .await
    }

    /// `send` with a cid, without waiting.
    pub async fn send_message(&mut self, room: &str, text: &str, cid: &str) {
        self.send_json(json!({ "type": "send", "room": room, "text": text, "cid": cid }))
            .await;
    }

    /// `send` and wait for its `ack` (or an `error` with the same cid); other
    /// frames are kept. Returns the frame that answered.
    ///
    /// Like a real client, it honours the server's per-socket flood guard:
    /// a `rate_limited` error without a `cid` (the guard refuses the frame
    /// unread) means wait `retry_after` and send the same frame again.
    pub async fn send_and_wait(&mut self, room: &str, text: &str, cid: &str) -> Value {
        loop {
            self.send_message(room, text, cid).await;
            let answer = self
                .wait_for(&format!("the ack of {cid}"), |f| {
                    ((f["type"] == "ack" || f["type"] == "error") && f["cid"] == cid)
                        || flood_wait(f).is_some()
                })
                .await;
            match flood_wait(&answer) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return answer,
            }
        }
    }

    /// The next `n` `message` frames of `room`, discarding every other frame.
    pub async fn messages(&mut self, room: &str, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let frame = self.recv_json().await;
            if frame["type"] == "message" && frame["room"] == room {
                out.push(frame);
            }
        }
        out
    }

    /// Reads until, for every `(room, last)` given, a `message` of that room
    /// with seq ≥ `last` has arrived, then for `settle` more (so a late
    /// duplicate would be caught). Returns every `message` frame by room, in
    /// arrival order; other frames are discarded. Panics when a read times out.
    pub async fn collect_messages(
        &mut self,
        targets: &[(String, u64)],
        settle: Duration,
    ) -> BTreeMap<String, Vec<Value>> {
        let mut by_room: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let reached = |by_room: &BTreeMap<String, Vec<Value>>| {
            targets.iter().all(|(room, last)| {
                *last == 0
                    || by_room
                        .get(room)
                        .is_some_and(|m| m.iter().any(|f| f["seq"].as_u64() >= Some(*last)))
            })
        };
        let keep = |frame: Value, by_room: &mut BTreeMap<String, Vec<Value>>| {
            if frame["type"] == "message" {
                let room = frame["room"].as_str().unwrap_or_default().to_owned();
                by_room.entry(room).or_default().push(frame);
            }
        };
        while !reached(&by_room) {
            let frame = self.recv_json().await;
            keep(frame, &mut by_room);
        }
        for frame in self.drain(settle).await {
            keep(frame, &mut by_room);
        }
        by_room
    }

    /// Closes the socket politely.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// Whether `frame` is an `error` about `room` (or with `cid`).
pub fn is_error_for(frame: &Value, room: &str, cid: Option<&str>) -> bool {
    frame["type"] == "error" && (frame["room"] == room || cid.is_some_and(|c| frame["cid"] == c))
}

/// The seqs of `message` frames, in the order they came.
pub fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().filter_map(|f| f["seq"].as_u64()).collect()
}

/// The `hihichat` binary next to this test binary in the target directory
/// (`CARGO_TARGET_DIR` is respected because the test binary lives there too).
///
/// # Panics
/// When it has not been built, with the command that builds it.
pub fn server_binary() -> PathBuf {
    let name = format!("hihichat{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    // target/debug/deps/e2e-HASH → target/debug/hihichat
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join(&name));
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                workspace.join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    candidates.push(target.join("debug").join(&name));
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no hihichat binary at {candidates:?}: run `cargo build -p chat-server` first \
                 (`cargo xtask test` does)"
            )
        })
}

/// A free port on the loopback interface (free a moment ago: the binary
/// takes `--listen` and cannot report a port chosen by the kernel).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("a local address").port()
}

/// How to start a `hihichat serve` process.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    /// `--database`, e.g. `sqlite:///tmp/x/db.sqlite`.
    pub database_url: String,
    /// `--redis`, if any.
    pub redis_url: Option<String>,
    /// The working directory (config files and `./data` are looked up here).
    pub dir: PathBuf,
    /// More flags after `serve`.
    pub extra_args: Vec<String>,
}

impl ServerCommand {
    /// A server on one SQLite file in `dir`, with flood control off (tests
    /// send as fast as they can; flood control has its own tests).
    pub fn sqlite_in(dir: &Path) -> Self {
        Self {
            database_url: format!("sqlite://{}", dir.join("db.sqlite").display()),
            redis_url: None,
            dir: dir.to_path_buf(),
            extra_args: vec!["--rate-limit".to_owned(), "off".to_owned()],
        }
    }

    /// The same, with `--redis URL`.
    pub fn with_redis(mut self, url: &str) -> Self {
        self.redis_url = Some(url.to_owned());
        self
    }

    /// Starts the binary on a free port and waits until `/healthz` answers.
    pub async fn start(&self) -> ServerProcess {
        let mut last = String::new();
        // The free port may be taken between the probe and the bind: try again.
        for _ in 0..3 {
            match ServerProcess::try_start(self, free_port()).await {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("hihichat serve did not start: {last}")
    }
}

/// A running `hihichat serve` process, SIGKILLed when dropped.
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// `ws://127.0.0.1:PORT/ws`.
    pub ws_url: String,
    output: Arc<Mutex<VecDeque<String>>>,
}

/// How many lines of a server's output are kept for failure messages.
const KEPT_LINES: usize = 200;

impl ServerProcess {
    async fn try_start(command: &ServerCommand, port: u16) -> Result<Self, String> {
        init_tracing();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(server_binary());
        cmd.arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--database")
            .arg(&command.database_url);
        if let Some(redis) = &command.redis_url {
            cmd.arg("--redis").arg(redis);
        }
        // A developer's own CHAT_* settings (CHAT_ENV=production, say) must
        // not leak into the server under test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CHAT_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(&command.extra_args)
            .current_dir(&command.dir)
            .env("CHAT_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", server_binary().display()))?;
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let prefix = format!("[hihichat :{port}]");
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(collect_lines(stdout, Arc::clone(&output), prefix.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect_lines(stderr, Arc::clone(&output), prefix));
        }
        let mut server = ServerProcess {
            child,
            addr,
            base_url: format!("http://{addr}"),
            ws_url: format!("ws://{addr}/ws"),
            output,
        };
        server.wait_healthy(Duration::from_secs(30)).await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self, limit: Duration) -> Result<(), String> {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the output readers catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(format!("it exited ({status}): {}", self.output_tail()));
            }
            let answer = client
                .get(format!("{}/healthz", self.base_url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "/healthz did not answer in {limit:?}: {}",
                    self.output_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A guest client for this server.
    pub fn guest(&self) -> Client {
        Client::new(&self.base_url)
    }

    /// A client logged in as `user`.
    pub async fn login(&self, user: &TestUser) -> Client {
        let mut client = self.guest();
        client.login_ok(user).await;
        client.user = Some(user.clone());
        client
    }

    /// A client logged in as the first admin.
    pub async fn admin_client(&self) -> Client {
        self.login(&TestUser {
            name: ADMIN_NAME.to_owned(),
            password: ADMIN_PASSWORD.to_owned(),
        })
        .await
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub async fn kill(&mut self) {
        // tokio's `start_kill` sends SIGKILL on Unix: no shutdown code runs.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines the server printed, for failure messages.
    pub fn output_tail(&self) -> String {
        let lines = self
            .output
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>());
        lines.unwrap_or_default().join("\n")
    }
}

async fn collect_lines(
    stream: impl tokio::io::AsyncRead + Unpin,
    sink: Arc<Mutex<VecDeque<String>>>,
    prefix: String,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if test_log() {
            eprintln!("{prefix} {line}");
        }
        // A std Mutex is fine: it is never held across an await.
        if let Ok(mut kept) = sink.lock() {
            if kept.len() == KEPT_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    }
}

/// How long to wait before sending again, when `frame` is the server's
/// per-socket flood guard refusing a frame (it refuses frames unread and
/// echoes their `cid`; unlike a room's rate limit, which a test may want to
/// see, it is not about the message, so helpers wait and resend).
pub fn flood_wait(frame: &Value) -> Option<Duration> {
    let refused = frame["type"] == "error"
        && frame["code"] == "rate_limited"
        && frame["message"] == "too many frames; slow down";
    refused.then(|| Duration::from_secs_f64(frame["retry_after"].as_f64().unwrap_or(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded_as_utf8() {
        assert_eq!(encode("闲聊-1"), "%E9%97%B2%E8%81%8A-1");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(encode("alice_1.x~"), "alice_1.x~");
    }

    #[test]
    fn form_fields_are_found_whatever_the_attribute_order() {
        let html = r#"<form><input type="hidden" value="t0k" name="csrf"><input name="x" value="1"></form>"#;
        assert_eq!(form_field(html, "csrf").as_deref(), Some("t0k"));
        assert_eq!(form_field(html, "x").as_deref(), Some("1"));
        assert_eq!(form_field(html, "missing"), None);
    }
}
