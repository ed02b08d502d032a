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
pub use chat::{BotReply, Chat, Resume, Sent, TYPING_TTL};
pub use feed::{FeedItem, RoomFeed};
pub use moderation::{MAX_SLOW_MODE, Moderation};
pub use retention::Retention;
pub use rooms::{DirectSummary, Joined, Rooms};

use std::sync::Arc;

use crate::clock::{Clock, Timestamp};
use crate::error::RoomError;
use crate::model::{AuditAction, AuditEntry, Room, RoomAccess};
use crate::names::RoomName;
use crate::policy::{self, Actor, Standing};
use crate::ports::{AuditLog, RoomRepository};

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

/// As [`visible_room`], with the caller's mute active at `now` and the
/// room's slow mode, in one store read: the path of every send and history
/// page.
async fn visible_access(
    rooms: &Arc<dyn RoomRepository>,
    actor: &Actor,
    name: &RoomName,
    now: Timestamp,
) -> Result<RoomAccess, RoomError> {
    let access = rooms
        .access(name, actor.user().map(|u| &u.name), now)
        .await?
        .ok_or(RoomError::NotFound)?;
    check_visible(actor, &access)?;
    Ok(access)
}

/// `NotFound` unless the caller may see the room `access` was read for:
/// rooms the caller may not see answer as if they did not exist.
fn check_visible(actor: &Actor, access: &RoomAccess) -> Result<(), RoomError> {
    if policy::may_see(actor, &access.room, access.standing) {
        Ok(())
    } else {
        Err(RoomError::NotFound)
    }
}

async fn standing(
    rooms: &Arc<dyn RoomRepository>,
    actor: &Actor,
    name: &RoomName,
) -> Result<Standing, RoomError> {
    let Some(u) = actor.user() else {
        return Ok(Standing::default());
    };
    // A kick removes the membership and a join refuses the barred, so a
    // member is never barred; the policy ignores `banned` for members, and
    // skipping the read saves a query on every send.
    if rooms.is_member(name, &u.name).await? {
        return Ok(Standing {
            member: true,
            banned: false,
        });
    }
    Ok(Standing {
        member: false,
        banned: rooms.is_banned(name, &u.name).await?,
    })
}

/// Writes one line of the audit trail for an action that has just been done.
///
/// Called only after the action succeeded. A failed write is logged, not
/// returned: the change is already in the store, so failing the request
/// would tell the caller it did not happen and invite a retry that then
/// fails differently ("no such user"); and an audit store that is down must
/// not stop admins and moderators from acting during an incident. The
/// `error`-level log line keeps the action on record in the server's logs.
pub(crate) struct Auditor {
    log: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
}

impl Auditor {
    pub(crate) fn new(log: Arc<dyn AuditLog>, clock: Arc<dyn Clock>) -> Self {
        Self { log, clock }
    }

    pub(crate) async fn record(
        &self,
        actor: &Actor,
        action: AuditAction,
        target: &str,
        detail: String,
    ) {
        let entry = AuditEntry {
            at: self.clock.now(),
            actor: match actor {
                Actor::User(u) => u.name.as_str().to_owned(),
                Actor::System => AuditEntry::SYSTEM.to_owned(),
                // Services refuse guests before acting; never reached.
                Actor::Guest => "guest".to_owned(),
            },
            action,
            target: target.to_owned(),
            detail,
        };
        if let Err(e) = self.log.record(entry.clone()).await {
            tracing::error!(
                error = %e,
                actor = %entry.actor,
                action = %entry.action,
                target = %entry.target,
                detail = %entry.detail,
                "could not write the audit trail; the action itself was done"
            );
        }
    }

    /// The newest `limit` entries, newest first.
    pub(crate) async fn recent(
        &self,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, crate::ports::StoreError> {
        self.log.recent(limit).await
    }
}
