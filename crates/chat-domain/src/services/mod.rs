//! The services: concrete use cases over the ports, each enforcing its own
//! permission checks so every door (HTML, JSON, WebSocket, CLI) gets the same
//! answers.

mod accounts;
mod chat;
mod feed;
mod moderation;
mod retention;
mod rooms;

pub use accounts::{Accounts, Bootstrap, LOGIN_ATTEMPTS, LOGIN_WINDOW, SESSION_TTL};
pub use chat::{BotReply, Chat, Resume, Sent};
pub use feed::{FeedItem, RoomFeed};
pub use moderation::Moderation;
pub use retention::Retention;
pub use rooms::{DirectSummary, Joined, Rooms};

use std::sync::Arc;

use crate::error::RoomError;
use crate::model::Room;
use crate::names::RoomName;
use crate::policy::{self, Actor, Standing};
use crate::ports::RoomRepository;

/// Loads a room with the caller's standing in it, answering `NotFound` for
/// rooms the caller may not see so that private rooms cannot be discovered.
async fn visible_room(
    rooms: &Arc<dyn RoomRepository>,
    actor: &Actor,
    name: &RoomName,
) -> Result<(Room, Standing), RoomError> {
    let room = rooms.room(name).await?.ok_or(RoomError::NotFound)?;
    let standing = standing(rooms, actor, name).await?;
    if !policy::may_see(actor, &room, standing) {
        return Err(RoomError::NotFound);
    }
    Ok((room, standing))
}

async fn standing(
    rooms: &Arc<dyn RoomRepository>,
    actor: &Actor,
    name: &RoomName,
) -> Result<Standing, RoomError> {
    Ok(match actor.user() {
        Some(u) => Standing {
            member: rooms.is_member(name, &u.name).await?,
            banned: rooms.is_banned(name, &u.name).await?,
        },
        None => Standing::default(),
    })
}
