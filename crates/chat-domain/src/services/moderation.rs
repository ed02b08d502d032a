//! `Moderation`: per-room mutes, kicks and letting people (back) in.
//!
//! Every action is announced to the room as an event, and recorded in its
//! history as a notice, so members see what happened, and in the audit
//! trail, so admins see who did it.

use std::sync::Arc;
use std::time::Duration;

use tracing::{instrument, warn};

use super::{Auditor, visible_room};
use crate::clock::Clock;
use crate::error::RoomError;
use crate::model::{AuditAction, MessageKind, Mute, NewMessage, RoomEvent, Visibility};
use crate::names::{MessageText, RoomName, Username};
use crate::policy::{self, Actor};
use crate::ports::{AuditLog, MessageLog, RoomEvents, RoomRepository, UserRepository};

/// The longest slow-mode interval: one hour.
pub const MAX_SLOW_MODE: Duration = Duration::from_secs(3600);

/// Room moderation.
pub struct Moderation {
    rooms: Arc<dyn RoomRepository>,
    users: Arc<dyn UserRepository>,
    log: Arc<dyn MessageLog>,
    events: Arc<dyn RoomEvents>,
    audit: Auditor,
    clock: Arc<dyn Clock>,
}

impl Moderation {
    /// Wires the service to its ports; every action is written to `audit`.
    pub fn new(
        rooms: Arc<dyn RoomRepository>,
        users: Arc<dyn UserRepository>,
        log: Arc<dyn MessageLog>,
        events: Arc<dyn RoomEvents>,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            rooms,
            users,
            log,
            events,
            audit: Auditor::new(audit, Arc::clone(&clock)),
            clock,
        }
    }

    async fn authorise(
        &self,
        actor: &Actor,
        room: &RoomName,
        target: &Username,
        manage: bool,
    ) -> Result<(), RoomError> {
        let (r, _) = visible_room(&self.rooms, actor, room).await?;
        let allowed = if manage {
            policy::may_manage_members(actor, &r)
        } else {
            policy::may_moderate(actor, &r)
        };
        if actor.is_guest() {
            return Err(RoomError::Unauthenticated);
        }
        if !allowed {
            return Err(RoomError::Forbidden("you may not moderate this room"));
        }
        if self.users.user(target).await?.is_none() {
            return Err(RoomError::NoSuchUser);
        }
        Ok(())
    }

    /// Mutes `target` in `room` for `duration` (`None`: until lifted).
    ///
    /// # Errors
    /// `NotFound`, `Unauthenticated`, `Forbidden`, `NoSuchUser`; store failures.
    #[instrument(skip_all, fields(room = %room, user = %target))]
    pub async fn mute(
        &self,
        actor: &Actor,
        room: &RoomName,
        target: &Username,
        duration: Option<Duration>,
    ) -> Result<Mute, RoomError> {
        self.authorise(actor, room, target, false).await?;
        let mute = Mute {
            until: duration.map(|d| self.clock.now().plus(d)),
        };
        self.rooms.set_mute(room, target, Some(mute)).await?;
        let what = match duration {
            Some(d) => format!("{target} was muted for {}", human(d)),
            None => format!("{target} was muted until further notice"),
        };
        let detail = match duration {
            Some(d) => format!("in {room}, for {}", human(d)),
            None => format!("in {room}, until lifted"),
        };
        self.audit
            .record(actor, AuditAction::Muted, target.as_str(), detail)
            .await;
        self.announce(
            actor,
            room,
            RoomEvent::Muted {
                user: target.clone(),
                mute: Some(mute),
            },
            &what,
        )
        .await;
        Ok(mute)
    }

    /// Lifts a mute.
    ///
    /// # Errors
    /// As [`Moderation::mute`].
    #[instrument(skip_all, fields(room = %room, user = %target))]
    pub async fn unmute(
        &self,
        actor: &Actor,
        room: &RoomName,
        target: &Username,
    ) -> Result<(), RoomError> {
        self.authorise(actor, room, target, false).await?;
        self.rooms.set_mute(room, target, None).await?;
        self.audit
            .record(
                actor,
                AuditAction::Unmuted,
                target.as_str(),
                format!("in {room}"),
            )
            .await;
        let what = format!("{target} may speak again");
        self.announce(
            actor,
            room,
            RoomEvent::Muted {
                user: target.clone(),
                mute: None,
            },
            &what,
        )
        .await;
        Ok(())
    }

    /// Removes `target` from the room and bars them until let back in; their
    /// connections leave the room at once.
    ///
    /// # Errors
    /// As [`Moderation::mute`]; `Forbidden` for kicking oneself.
    #[instrument(skip_all, fields(room = %room, user = %target))]
    pub async fn kick(
        &self,
        actor: &Actor,
        room: &RoomName,
        target: &Username,
    ) -> Result<(), RoomError> {
        self.authorise(actor, room, target, false).await?;
        if actor.user().is_some_and(|u| &u.name == target) {
            return Err(RoomError::Forbidden("you cannot kick yourself"));
        }
        self.rooms.set_banned(room, target, true).await?;
        self.rooms.remove_member(room, target).await?;
        self.audit
            .record(
                actor,
                AuditAction::Kicked,
                target.as_str(),
                format!("from {room}"),
            )
            .await;
        let what = format!("{target} was removed from the room");
        self.announce(
            actor,
            room,
            RoomEvent::Removed {
                user: target.clone(),
            },
            &what,
        )
        .await;
        Ok(())
    }

    /// Lets a kicked user back, and in a private room makes `target` a member.
    ///
    /// # Errors
    /// As [`Moderation::mute`], with the member-management rule.
    #[instrument(skip_all, fields(room = %room, user = %target))]
    pub async fn allow(
        &self,
        actor: &Actor,
        room: &RoomName,
        target: &Username,
    ) -> Result<(), RoomError> {
        self.authorise(actor, room, target, true).await?;
        let was_banned = self.rooms.is_banned(room, target).await?;
        self.rooms.set_banned(room, target, false).await?;
        let r = self.rooms.room(room).await?.ok_or(RoomError::NotFound)?;
        let added =
            r.visibility == Visibility::Private && self.rooms.add_member(room, target).await?;
        let detail = match (was_banned, added) {
            (true, true) => format!("let back into and added to {room}"),
            (true, false) => format!("let back into {room}"),
            (false, true) => format!("added to {room}"),
            (false, false) => format!("allowed into {room} (no change)"),
        };
        self.audit
            .record(actor, AuditAction::MemberAdded, target.as_str(), detail)
            .await;
        if added {
            let what = format!("{target} was added to the room");
            self.record(actor, room, &what).await;
        }
        Ok(())
    }

    /// Turns slow mode on in `room` (`Some(interval)`: members who do not
    /// moderate the room may send one message per interval, a whole number
    /// of seconds from 1 s to [`MAX_SLOW_MODE`]) or lifts it (`None`).
    /// Moderators as for [`Moderation::mute`].
    ///
    /// # Errors
    /// `NotFound`, `Unauthenticated`, `Forbidden`; `Invalid` for an
    /// interval out of range or not in whole seconds; store failures.
    #[instrument(skip_all, fields(room = %room))]
    pub async fn set_slow_mode(
        &self,
        actor: &Actor,
        room: &RoomName,
        interval: Option<Duration>,
    ) -> Result<(), RoomError> {
        let (r, _) = visible_room(&self.rooms, actor, room).await?;
        if actor.is_guest() {
            return Err(RoomError::Unauthenticated);
        }
        if !policy::may_moderate(actor, &r) {
            return Err(RoomError::Forbidden("you may not moderate this room"));
        }
        if let Some(d) = interval {
            if d < Duration::from_secs(1) || d > MAX_SLOW_MODE || d.subsec_nanos() != 0 {
                return Err(RoomError::Invalid(crate::names::InvalidInput {
                    what: "slow mode",
                    why: "must be a whole number of seconds from 1 to 3600",
                }));
            }
        }
        self.rooms.set_slow_mode(room, interval).await?;
        let (what, detail) = match interval {
            Some(d) => (
                format!("slow mode is on: one message every {}", human(d)),
                format!("in {room}: one message every {}", human(d)),
            ),
            None => ("slow mode is off".to_owned(), format!("in {room}: off")),
        };
        self.audit
            .record(actor, AuditAction::SlowMode, room.as_str(), detail)
            .await;
        self.announce(
            actor,
            room,
            RoomEvent::SlowMode {
                seconds: interval.map(|d| d.as_secs()),
            },
            &what,
        )
        .await;
        Ok(())
    }

    /// Active mutes in a room (moderators only).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`; store failures.
    pub async fn mutes(
        &self,
        actor: &Actor,
        room: &RoomName,
    ) -> Result<Vec<(Username, Mute)>, RoomError> {
        let (r, _) = visible_room(&self.rooms, actor, room).await?;
        if !policy::may_moderate(actor, &r) {
            return Err(RoomError::Forbidden("you may not moderate this room"));
        }
        Ok(self.rooms.mutes(room, self.clock.now()).await?)
    }

    async fn announce(&self, actor: &Actor, room: &RoomName, event: RoomEvent, what: &str) {
        if let Err(e) = self.events.publish(room, event).await {
            warn!(error = %e, "could not announce a moderation action");
        }
        self.record(actor, room, what).await;
    }

    async fn record(&self, actor: &Actor, room: &RoomName, what: &str) {
        let (Some(user), Ok(text)) = (actor.user(), MessageText::parse(what)) else {
            return;
        };
        let notice = NewMessage {
            room: room.clone(),
            from: user.name.clone(),
            text,
            ts: self.clock.now(),
            cid: None,
            kind: MessageKind::Notice,
        };
        match self.log.append(notice).await {
            Ok(a) => {
                let _ = self
                    .events
                    .publish(room, RoomEvent::Message(a.message))
                    .await;
            }
            Err(e) => warn!(error = %e, "could not record a moderation notice"),
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 && s >= 3600 => format!("{} h", s / 3600),
        s if s % 60 == 0 && s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}
