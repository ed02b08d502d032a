//! Rooms, history, sending and direct rooms.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chat_domain::{Chat, RoomName, RoomSummary, Rooms, Sent, Seq};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Viewer;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::wire::{
    BotReplyOut, CreateRoomIn, DirectOut, MessageOut, RoomOut, SendIn, messages_out,
};

/// Default history page.
const DEFAULT_LIMIT: usize = 50;
/// Largest history page.
const MAX_LIMIT: usize = 200;

/// The rooms the caller may see.
pub(super) async fn list(
    State(rooms): State<Arc<Rooms>>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    let list = rooms.list(&viewer.actor).await?;
    let out: Vec<RoomOut<'_>> = list.iter().map(RoomOut::from).collect();
    Ok(axum::Json(json!({ "rooms": out })).into_response())
}

/// Creates a room: 201 with the room as listed.
pub(super) async fn create(
    State(rooms): State<Arc<Rooms>>,
    viewer: Viewer,
    ApiJson(body): ApiJson<CreateRoomIn>,
) -> Result<Response, ApiError> {
    // Who you are comes before what you sent: a guest learns it must log in,
    // not that its room name was bad.
    viewer.require_user()?;
    let new = body.try_into_domain()?;
    let room = rooms
        .create(&viewer.actor, new.name, new.description, new.visibility)
        .await?;
    let summary = RoomSummary {
        room,
        members: 1,
        last_seq: Seq::ZERO,
    };
    Ok((StatusCode::CREATED, axum::Json(RoomOut::from(&summary))).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct HistoryQuery {
    before: Option<u64>,
    limit: Option<usize>,
}

/// A page of history, newest last: `limit` (default 50) messages before
/// `before`. A `limit` above 200 is served as 200; 0 is refused.
pub(super) async fn history(
    State(chat): State<Arc<Chat>>,
    viewer: Viewer,
    ApiPath(room): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    let room = RoomName::parse(&room)?;
    let limit = match q.limit {
        None => DEFAULT_LIMIT,
        Some(0) => return Err(ApiError::invalid("limit must be at least 1")),
        Some(n) => n.min(MAX_LIMIT),
    };
    let page = chat
        .history(&viewer.actor, &room, q.before.map(Seq::new), limit)
        .await?;
    Ok(axum::Json(json!({
        "messages": messages_out(&page.messages),
        "more": page.more,
    }))
    .into_response())
}

/// Sends a message: 201 with the stored message, the same object the
/// WebSocket broadcasts, sent only once it is durably stored. A retry with
/// the same `cid` answers 200 with the first message and stores nothing.
///
/// A guest may not post to a room, but the contract lets guests talk to the
/// bot; so a guest's POST is answered like its WebSocket `send`: 200 with the
/// bot's private reply (`"from":"bot"`, `"private":true`, no `seq`), and
/// nothing is stored or broadcast. (A 403 would hide the bot from API clients
/// for no gain in safety.)
pub(super) async fn send(
    State(chat): State<Arc<Chat>>,
    viewer: Viewer,
    ApiPath(room): ApiPath<String>,
    ApiJson(body): ApiJson<SendIn>,
) -> Result<Response, ApiError> {
    let room = RoomName::parse(&room)?;
    let (text, cid) = body.try_into_domain()?;
    match chat.send(&viewer.actor, &room, text, cid).await? {
        Sent::Stored(appended) => {
            let status = if appended.duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((status, axum::Json(MessageOut::from(&appended.message))).into_response())
        }
        Sent::Bot(reply) => Ok(axum::Json(BotReplyOut::from(&reply)).into_response()),
    }
}

/// My direct conversations.
pub(super) async fn directs(
    State(rooms): State<Arc<Rooms>>,
    viewer: Viewer,
) -> Result<Response, ApiError> {
    viewer.require_user()?;
    let list = rooms.directs(&viewer.actor).await?;
    let out: Vec<DirectOut<'_>> = list.iter().map(DirectOut::from).collect();
    Ok(axum::Json(json!({ "rooms": out })).into_response())
}
