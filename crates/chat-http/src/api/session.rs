//! `POST`/`DELETE /api/session` and `GET /api/me`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_domain::{Accounts, Actor};
use serde_json::json;

use crate::auth::{Viewer, expired_session_cookie, session_cookie};
use crate::config::HttpConfig;
use crate::error::{ApiError, ApiJson};
use crate::wire::{LoginIn, UserOut};

/// Logs in. Every login makes a new session id (no fixation), and a session
/// the browser already held is ended. A wrong name and a wrong password get
/// the same 401; too many failures get 429 with `Retry-After`.
pub(super) async fn login(
    State(accounts): State<Arc<Accounts>>,
    State(config): State<Arc<HttpConfig>>,
    viewer: Viewer,
    ApiJson(body): ApiJson<LoginIn>,
) -> Result<Response, ApiError> {
    let (user, session) = accounts.login(&body.username, &body.password).await?;
    if let Some(old) = &viewer.session {
        accounts.logout(old).await?;
    }
    let actor = Actor::User(user);
    let body = json!({ "user": UserOut::from(&actor) });
    Ok((
        [(
            header::SET_COOKIE,
            session_cookie(&session.id, config.secure_cookies),
        )],
        axum::Json(body),
    )
        .into_response())
}

/// Logs out: ends the session and clears the cookie. Logging out without a
/// session is not an error (the caller wanted to be logged out, and is), so
/// this always answers 204.
pub(super) async fn logout(
    State(accounts): State<Arc<Accounts>>,
    State(config): State<Arc<HttpConfig>>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    if let Some(session) = &viewer.session {
        accounts.logout(session).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            expired_session_cookie(config.secure_cookies),
        )],
    )
        .into_response())
}

/// Who am I: a user with permissions, or `{"name":"guest","guest":true,"permissions":[]}`.
pub(super) async fn me(viewer: Viewer) -> Response {
    axum::Json(json!({ "user": UserOut::from(&viewer.actor) })).into_response()
}
