//! The JSON API of CONTRACT §3 (except `/api/admin/*`, which chat-admin
//! serves): sessions, rooms, history, sending, direct rooms, moderation
//! (slow mode included) and the health probes.

mod health;
mod moderation;
mod rooms;
mod session;

use axum::Router;
use axum::routing::{get, post, put};

use crate::AppState;

/// The API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/session", post(session::login).delete(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/rooms", get(rooms::list).post(rooms::create))
        .route(
            "/api/rooms/{room}/messages",
            get(rooms::history).post(rooms::send),
        )
        .route("/api/dms", get(rooms::directs))
        .route(
            "/api/rooms/{room}/mutes/{name}",
            put(moderation::mute).delete(moderation::unmute),
        )
        .route(
            "/api/rooms/{room}/members/{name}",
            put(moderation::allow).delete(moderation::kick),
        )
        .route(
            "/api/rooms/{room}/slow_mode",
            put(moderation::set_slow_mode).delete(moderation::lift_slow_mode),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
}
