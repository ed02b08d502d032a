//! chat-http: hihichat over HTTP — the JSON API, the WebSocket gateway, the
//! server-rendered pages, the wire DTOs and the one `ApiError`.
//!
//! Handlers are thin: they parse the wire into domain newtypes, call a
//! service from [`AppState`], and map the service's error. Every permission
//! check lives in the services.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod pages;
pub mod security;
pub mod shutdown;
pub mod wire;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath};
use axum::http::Request;
use chat_domain::{Accounts, Chat, HealthCheck, Moderation, Rooms, Services};
use tower_http::trace::TraceLayer;

pub use auth::{SESSION_COOKIE, Viewer, expired_session_cookie, session_cookie};
pub use config::HttpConfig;
pub use error::{ApiError, ApiJson};
pub use shutdown::{ConnectionGuard, Shutdown};

/// What every handler may reach: the services, never a store.
///
/// Handlers take the part they need (`State<Arc<Chat>>`, `State<Arc<HttpConfig>>`)
/// through the `FromRef` impls below.
#[derive(Clone)]
pub struct AppState {
    /// Users, sessions, permissions.
    pub accounts: Arc<Accounts>,
    /// Rooms and membership.
    pub rooms: Arc<Rooms>,
    /// Messaging.
    pub chat: Arc<Chat>,
    /// Moderation.
    pub moderation: Arc<Moderation>,
    /// The stores `/readyz` asks.
    pub health: Arc<[Arc<dyn HealthCheck>]>,
    /// Edge settings.
    pub config: Arc<HttpConfig>,
    /// This node's WebSocket fan-out.
    pub hub: Arc<ws::Hub>,
    /// The shutdown signal and the open-socket count.
    pub shutdown: Shutdown,
}

impl AppState {
    /// Builds the state from the services; starts no task until a socket joins a room.
    pub fn new(
        services: &Services,
        health: Vec<Arc<dyn HealthCheck>>,
        config: HttpConfig,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            accounts: Arc::clone(&services.accounts),
            rooms: Arc::clone(&services.rooms),
            chat: Arc::clone(&services.chat),
            moderation: Arc::clone(&services.moderation),
            health: health.into(),
            config: Arc::new(config),
            hub: Arc::new(ws::Hub::new(Arc::clone(&services.chat))),
            shutdown,
        }
    }
}

macro_rules! from_ref {
    ($($field:ident: $t:ty),* $(,)?) => {$(
        impl FromRef<AppState> for $t {
            fn from_ref(state: &AppState) -> Self {
                state.$field.clone()
            }
        }
    )*};
}

from_ref!(
    accounts: Arc<Accounts>,
    rooms: Arc<Rooms>,
    chat: Arc<Chat>,
    moderation: Arc<Moderation>,
    health: Arc<[Arc<dyn HealthCheck>]>,
    config: Arc<HttpConfig>,
    hub: Arc<ws::Hub>,
    shutdown: Shutdown,
);

/// The whole HTTP application: the JSON API, `/ws`, the pages and `extra`
/// (chat-admin's routes), with request tracing, a 64 KiB body limit and the
/// security headers on every response.
pub fn router(state: AppState, extra: Router<AppState>) -> Router {
    let body_limit = state.config.max_frame_bytes;
    let app = Router::new()
        .merge(api::routes())
        .merge(ws::routes())
        .merge(pages::routes())
        .merge(extra)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                // The matched route, not the raw path: `/api/rooms/{room}/messages`
                // groups requests without putting user input in the span name.
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("<unmatched>", MatchedPath::as_str);
                tracing::info_span!("http", method = %req.method(), route, user = tracing::field::Empty)
            }),
        );
    security::with_security_headers(app).with_state(state)
}
