//! The WebSocket gateway, `GET /ws` (CONTRACT §4): the upgrade with its
//! Origin check, the per-connection loop ([`connection`]), the frames
//! ([`frames`]) and the per-node fan-out ([`Hub`]).

mod connection;
pub mod frames;
mod hub;
mod outbox;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chat_domain::ErrorCode;

pub use hub::{Hub, RELAY_CAPACITY, RoomItem, RoomSubscription};

use crate::AppState;
use crate::auth::Viewer;
use crate::error::ApiError;

/// The largest WebSocket message read at all (1 MiB). Frames between
/// `HttpConfig::max_frame_bytes` (64 KiB) and this are read and answered
/// with `error` `too_large` while the socket lives on; beyond it the client
/// is abusive and the socket is closed with 1009.
pub const MAX_WS_MESSAGE_BYTES: usize = 1024 * 1024;

/// Read buffer of each socket. tungstenite allocates it up front (128 KiB by
/// default), which for 15,000 idle sockets would be 1.9 GB; 2 KiB holds any
/// ordinary chat frame in one read and grows on demand for the rare big one.
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// Frames queue in the write buffer until it holds this much, then go out in
/// one write; the connection flushes after each batch anyway. Small, because
/// the buffer keeps its capacity between batches.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

/// The gateway's route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

/// Whether a browser page from `Origin` may open a socket here: no Origin
/// (not a browser), the server's own origin, or a configured one. Anything
/// else could be another site riding the user's cookie (cross-site
/// WebSocket hijacking), so it is refused before the upgrade.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    ["http://", "https://"].iter().any(|scheme| {
        origin
            .strip_prefix(scheme)
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    })
}

async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !origin_allowed(&headers, &state.config.allowed_origins) {
        return ApiError::new(
            ErrorCode::Forbidden,
            "this origin may not open a WebSocket here",
        )
        .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    if state.shutdown.is_triggered() {
        return ApiError::new(ErrorCode::Unavailable, "the server is shutting down")
            .into_response();
    }
    let viewer = match Viewer::from_headers(&state.accounts, &headers).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    // Counted from here, so a shutdown that starts during the handshake
    // still waits for this socket's close frame.
    let guard = state.shutdown.track();
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(MAX_WS_MESSAGE_BYTES)
        .max_frame_size(MAX_WS_MESSAGE_BYTES)
        .on_upgrade(move |socket| connection::run(socket, state, viewer, guard))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(origin: Option<&'static str>, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(host));
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://chat.example.com".to_owned()];
        let cases = [
            (None, true),
            (Some("http://127.0.0.1:8080"), true),
            (Some("https://127.0.0.1:8080"), true),
            (Some("https://chat.example.com"), true),
            (Some("http://evil.example"), false),
            (Some("http://127.0.0.1:8081"), false),
            (Some("null"), false),
            (Some("http://127.0.0.1:8080.evil.example"), false),
        ];
        for (origin, ok) in cases {
            assert_eq!(
                origin_allowed(&headers(origin, "127.0.0.1:8080"), &allowed),
                ok,
                "{origin:?}"
            );
        }
    }
}
