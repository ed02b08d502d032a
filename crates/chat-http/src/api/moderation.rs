//! Mutes, kicks, letting members in and slow mode: `PUT`/`DELETE
//! /api/rooms/{room}/mutes/{name}`, `.../members/{name}` and
//! `/api/rooms/{room}/slow_mode`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use chat_domain::{ErrorCode, Moderation, RoomName, Username};

use crate::auth::Viewer;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::wire::{MuteIn, SlowModeIn};

fn parse_target(room: &str, name: &str) -> Result<(RoomName, Username), ApiError> {
    Ok((RoomName::parse(room)?, Username::parse(name)?))
}

/// The mute body is optional (absent: until lifted), so it cannot go through
/// `ApiJson`; an empty body is allowed, a non-empty one must be JSON. Only a
/// JSON body is read for the same CSRF reason as `ApiJson` — and a
/// cross-site form cannot send a PUT at all.
fn mute_body(headers: &HeaderMap, body: &Bytes) -> Result<MuteIn, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(MuteIn::default());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("application/json")
                || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if !json {
        return Err(ApiError::invalid(
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Mutes a member for `seconds` (absent: until lifted): 204.
pub(super) async fn mute(
    State(moderation): State<Arc<Moderation>>,
    viewer: Viewer,
    ApiPath((room, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    viewer.require_user()?;
    let (room, name) = parse_target(&room, &name)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(ErrorCode::TooLarge, "the request body is too large")
        } else {
            ApiError::invalid(e.body_text())
        }
    })?;
    let duration = mute_body(&headers, &body)?.try_into_domain()?;
    moderation
        .mute(&viewer.actor, &room, &name, duration)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a mute: 204.
pub(super) async fn unmute(
    State(moderation): State<Arc<Moderation>>,
    viewer: Viewer,
    ApiPath((room, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    viewer.require_user()?;
    let (room, name) = parse_target(&room, &name)?;
    moderation.unmute(&viewer.actor, &room, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Kicks a member (they cannot re-join until let back): 204.
pub(super) async fn kick(
    State(moderation): State<Arc<Moderation>>,
    viewer: Viewer,
    ApiPath((room, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    viewer.require_user()?;
    let (room, name) = parse_target(&room, &name)?;
    moderation.kick(&viewer.actor, &room, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a member to a private room, or lets a kicked user back: 204.
pub(super) async fn allow(
    State(moderation): State<Arc<Moderation>>,
    viewer: Viewer,
    ApiPath((room, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    viewer.require_user()?;
    let (room, name) = parse_target(&room, &name)?;
    moderation.allow(&viewer.actor, &room, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns slow mode on (or changes it): `{"seconds": N}`, 1 to 3600 → 204.
pub(super) async fn set_slow_mode(
    State(moderation): State<Arc<Moderation>>,
    viewer: Viewer,
    ApiPath(room): ApiPath<String>,
    ApiJson(body): ApiJson<SlowModeIn>,
) -> Result<StatusCode, ApiError> {
    viewer.require_user()?;
    let room = RoomName::parse(&room)?;
    let interval = body.try_into_domain()?;
    moderation
        .set_slow_mode(&viewer.actor, &room, Some(interval))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts slow mode: 204.
pub(super) async fn lift_slow_mode(
    State(moderation): State<Arc<Moderation>>,
    viewer: Viewer,
    ApiPath(room): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    viewer.require_user()?;
    let room = RoomName::parse(&room)?;
    moderation.set_slow_mode(&viewer.actor, &room, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
