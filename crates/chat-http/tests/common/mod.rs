//! Test support: a real server on 127.0.0.1:0 over the in-memory adapters,
//! HTTP and WebSocket clients, and users to log in as.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_domain::{
    Actor, HealthCheck, Password, PasswordHasher, PermissionName, Ports, RoomName, ServiceConfig,
    Services, SystemClock, Username,
};
use chat_http::{AppState, HttpConfig, Shutdown};
use chat_memory::MemoryStore;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for anything the server should do promptly.
pub const WAIT: Duration = Duration::from_secs(5);

pub const PASSWORD: &str = "correct horse battery";

/// A running server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub services: Services,
    pub shutdown: Shutdown,
    pub http: reqwest::Client,
    pub server: tokio::task::JoinHandle<()>,
}

/// Logs to stderr only when `TEST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                    .unwrap_or_else(|_| "debug".into()),
            )
            .with_test_writer()
            .try_init();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(HttpConfig::default(), Vec::new()).await
}

pub async fn spawn_app_with(
    config: HttpConfig,
    extra_health: Vec<Arc<dyn HealthCheck>>,
) -> TestApp {
    spawn_app_with_services(config, extra_health, test_services()).await
}

/// The service settings of every test server: cheap hashes, no flood control.
pub fn test_services() -> ServiceConfig {
    ServiceConfig {
        hasher: PasswordHasher::with_params(1024, 1, 1),
        // Flood control is the domain's and tested there; here it would
        // only get in the way of tests that say a lot.
        rate_limit: None,
        ..Default::default()
    }
}

pub async fn spawn_app_with_services(
    config: HttpConfig,
    extra_health: Vec<Arc<dyn HealthCheck>>,
    service_config: ServiceConfig,
) -> TestApp {
    let store = Arc::new(MemoryStore::new());
    let ports = Ports::single(Arc::clone(&store), Arc::new(SystemClock));
    let mut health: Vec<Arc<dyn HealthCheck>> = vec![store];
    health.extend(extra_health);
    spawn_app_on(&ports, health, config, service_config).await
}

/// An app on the given ports (a test that swaps one for a failing one).
pub async fn spawn_app_on(
    ports: &Ports,
    health: Vec<Arc<dyn HealthCheck>>,
    config: HttpConfig,
    service_config: ServiceConfig,
) -> TestApp {
    init_tracing();
    let services = Services::new(ports, service_config);
    let shutdown = Shutdown::new();
    let state = AppState::new(&services, health, config, shutdown.clone());
    let app = chat_http::router(state, axum::Router::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.triggered().await })
            .await
            .unwrap();
    });
    TestApp {
        addr,
        services,
        shutdown,
        http: reqwest::Client::new(),
        server,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Creates a user with the given permissions.
    pub async fn user(&self, name: &str, perms: &[&str]) -> Username {
        let perms: BTreeSet<PermissionName> = perms
            .iter()
            .map(|p| PermissionName::parse(p).unwrap())
            .collect();
        self.services
            .accounts
            .create_user(
                &Actor::System,
                Username::parse(name).unwrap(),
                Password::parse(PASSWORD).unwrap(),
                perms,
            )
            .await
            .unwrap()
            .name
    }

    /// The domain actor of a user.
    pub async fn actor(&self, name: &str) -> Actor {
        let user = self
            .services
            .accounts
            .user(&Actor::System, &Username::parse(name).unwrap())
            .await
            .unwrap();
        Actor::User(user)
    }

    /// Logs in over HTTP and returns the `Cookie` header value to send.
    pub async fn login(&self, name: &str) -> String {
        let resp = self
            .http
            .post(self.url("/api/session"))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "login of {name}");
        let set = resp
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        set.split(';').next().unwrap().to_owned()
    }

    /// A user who may create rooms, logged in.
    pub async fn creator(&self, name: &str) -> String {
        self.user(name, &["create_room"]).await;
        self.login(name).await
    }

    /// Creates a public room as `owner` (who must hold create_room).
    pub async fn room(&self, owner: &str, name: &str) -> RoomName {
        let room = RoomName::parse(name).unwrap();
        self.services
            .rooms
            .create(
                &self.actor(owner).await,
                room.clone(),
                chat_domain::Description::empty(),
                chat_domain::Visibility::Public,
            )
            .await
            .unwrap();
        room
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path, cookie, Some(body))
            .await
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Opens a WebSocket (as a guest without a cookie) and reads its welcome.
    pub async fn ws(&self, cookie: Option<&str>) -> Ws {
        let mut ws = self.ws_raw(cookie, None).await.unwrap();
        let welcome = ws.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        ws
    }

    pub async fn ws_raw(
        &self,
        cookie: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Ws, tungstenite::Error> {
        let mut req = self.ws_url().into_client_request().unwrap();
        if let Some(c) = cookie {
            req.headers_mut()
                .insert("cookie", HeaderValue::from_str(c).unwrap());
        }
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", HeaderValue::from_str(o).unwrap());
        }
        let (inner, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Ws { inner })
    }
}

/// A test WebSocket client.
pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended, as the client saw it.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<CloseFrame>),
    Error(String),
    Eof,
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        self.inner.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, s: String) {
        self.inner.send(Message::text(s)).await.unwrap();
    }

    /// The next JSON frame, skipping presence and typing frames and pings.
    pub async fn recv(&mut self) -> Value {
        loop {
            let v = self.recv_any().await;
            if v["type"] != "presence" && v["type"] != "typing" {
                return v;
            }
        }
    }

    /// The next JSON frame of any type.
    pub async fn recv_any(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("a frame within the wait")
                .expect("the socket is open")
                .expect("a readable frame");
            match msg {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next frame of type `ty`, skipping others.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.recv_any().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Asserts nothing but pings, presence or typing arrives for `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.inner.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    assert!(
                        v["type"] == "presence" || v["type"] == "typing",
                        "unexpected frame {v}"
                    );
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(other) => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Joins a room and returns the `joined` frame.
    pub async fn join(&mut self, room: &str, since: Option<u64>) -> Value {
        let mut frame = json!({"type": "join", "room": room});
        if let Some(s) = since {
            frame["since"] = json!(s);
        }
        self.send(frame).await;
        let joined = self.recv().await;
        assert_eq!(joined["type"], "joined", "{joined}");
        joined
    }

    /// Reads until the socket ends, ignoring data frames; returns how.
    pub async fn until_end(&mut self, limit: Duration) -> Ended {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.inner.next()).await {
                Err(_) => panic!("the socket did not end in time"),
                Ok(None) => return Ended::Eof,
                Ok(Some(Err(e))) => return Ended::Error(e.to_string()),
                Ok(Some(Ok(Message::Close(f)))) => return Ended::Closed(f),
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// The close code of an ended socket, if it got a close frame.
pub fn close_code(ended: &Ended) -> Option<u16> {
    match ended {
        Ended::Closed(Some(f)) => Some(f.code.into()),
        _ => None,
    }
}
