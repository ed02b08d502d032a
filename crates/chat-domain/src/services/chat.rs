//! `Chat`: sending, direct messages, history, resume, typing, presence and
//! live subscriptions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{instrument, warn};

use super::feed::RoomFeed;
use super::moderation::MAX_SLOW_MODE;
use super::rooms::{Joined, open_direct};
use super::{check_visible, visible_access, visible_room};
use crate::clock::{Clock, Timestamp};
use crate::error::{RoomError, SendError};
use crate::model::{
    Appended, MessageKind, Mute, NewMessage, Page, PresenceChange, RoomEvent, UserEvent, Visibility,
};
use crate::names::{ClientId, MessageText, RoomName, Seq, Username};
use crate::policy::{self, Actor};
use crate::ports::{
    Bot, ConnectionId, EventStream, MessageLog, PRESENCE_TTL, Presence, RoomEvents, RoomRepository,
    UserRepository,
};
use crate::ratelimit::{RateLimit, RateLimiter};

/// Largest history page.
pub const MAX_PAGE: usize = 200;

/// What a `typing` event means: "typing for the next this long". Clients
/// hide the indicator when it runs out unless the typer says so again.
pub const TYPING_TTL: Duration = Duration::from_secs(5);

/// Above this many remembered senders the slow-mode memory drops the ones
/// that can no longer hold anybody back.
const SLOW_MODE_PRUNE_AT: usize = 50_000;

/// What a send produced.
#[derive(Debug, Clone)]
pub enum Sent {
    /// A user's message, durably stored (or the earlier one, for a repeated cid).
    Stored(Appended),
    /// A guest's message, answered privately by the bot; nothing was stored.
    Bot(BotReply),
}

/// The bot's private answer to a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotReply {
    /// The room the guest wrote in.
    pub room: RoomName,
    /// The bot's name.
    pub from: String,
    /// The answer.
    pub text: String,
    /// When it answered.
    pub ts: Timestamp,
}

/// The messages a reconnecting client missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// Messages after the client's `since`, oldest first.
    pub page: Page,
    /// True when messages right after `since` were deleted by retention.
    pub expired: bool,
}

/// Messaging.
pub struct Chat {
    rooms: Arc<dyn RoomRepository>,
    users: Arc<dyn UserRepository>,
    log: Arc<dyn MessageLog>,
    events: Arc<dyn RoomEvents>,
    presence: Arc<dyn Presence>,
    bot: Arc<dyn Bot>,
    clock: Arc<dyn Clock>,
    limiter: Option<RateLimiter<(Username, RoomName)>>,
    presence_ttl: Duration,
    slow: SlowModeMemory,
}

/// What stands between a user's message and the log, read before the append.
struct Gate {
    /// The time of the send.
    now: Timestamp,
    /// The mute on the sender active at `now`.
    mute: Option<Mute>,
    /// The slow-mode interval that applies to this sender.
    interval: Option<Duration>,
}

/// When each user last sent to each room, for slow mode.
///
/// Kept in this process, like the rate limiter: with several nodes each
/// node enforces slow mode on the sends it handles, so a user spreading
/// their connections over N nodes could send up to N messages per interval.
/// That is good enough for a courtesy limit, and keeps a store round trip
/// off every send. A std `Mutex`: a map lookup, never held across `.await`.
#[derive(Default)]
struct SlowModeMemory {
    last: Mutex<HashMap<(Username, RoomName), Timestamp>>,
}

/// A slow-mode slot taken by a send, given back if nothing gets sent.
struct SlowSlot {
    key: (Username, RoomName),
    previous: Option<Timestamp>,
    at: Timestamp,
}

impl SlowModeMemory {
    /// Takes the sender's slot at `now`, or says how long until one is free.
    fn take(
        &self,
        user: &Username,
        room: &RoomName,
        interval: Duration,
        now: Timestamp,
    ) -> Result<SlowSlot, Duration> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.len() > SLOW_MODE_PRUNE_AT {
            // Nobody is held back for longer than the longest interval.
            last.retain(|_, at| at.plus(MAX_SLOW_MODE) > now);
        }
        let key = (user.clone(), room.clone());
        let previous = last.get(&key).copied();
        if let Some(free_at) = previous.map(|at| at.plus(interval)) {
            if now < free_at {
                return Err(now.until(free_at));
            }
        }
        last.insert(key.clone(), now);
        Ok(SlowSlot {
            key,
            previous,
            at: now,
        })
    }

    /// Gives a slot back: the send it was taken for stored nothing new.
    fn give_back(&self, slot: SlowSlot) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // Only if no later send has taken the slot since.
        if last.get(&slot.key) == Some(&slot.at) {
            match slot.previous {
                Some(previous) => last.insert(slot.key, previous),
                None => last.remove(&slot.key),
            };
        }
    }
}

impl Chat {
    /// Wires the service to its ports; `rate_limit: None` turns flood control off.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rooms: Arc<dyn RoomRepository>,
        users: Arc<dyn UserRepository>,
        log: Arc<dyn MessageLog>,
        events: Arc<dyn RoomEvents>,
        presence: Arc<dyn Presence>,
        bot: Arc<dyn Bot>,
        clock: Arc<dyn Clock>,
        rate_limit: Option<RateLimit>,
    ) -> Self {
        Self {
            rooms,
            users,
            log,
            events,
            presence,
            bot,
            clock,
            limiter: rate_limit.map(RateLimiter::new),
            presence_ttl: PRESENCE_TTL,
            slow: SlowModeMemory::default(),
        }
    }

    /// The same service with presence lasting `ttl` after each heartbeat
    /// (default [`PRESENCE_TTL`]).
    #[must_use]
    pub fn with_presence_ttl(mut self, ttl: Duration) -> Self {
        self.presence_ttl = ttl;
        self
    }

    /// How long presence lasts after each heartbeat: connections must renew
    /// it more often than this.
    pub fn presence_ttl(&self) -> Duration {
        self.presence_ttl
    }

    /// The current time on this service's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Sends `text` to `room`.
    ///
    /// A user must be a member (sending to a public room joins it); the
    /// message is stored, then broadcast. A guest's text is answered by the
    /// bot, privately, and never stored. A repeated `cid` returns the first
    /// message again and stores nothing. In slow mode a member who is not
    /// one of the room's moderators may send one message per interval.
    ///
    /// # Errors
    /// `NotFound` for missing or invisible rooms; `Forbidden` for non-members,
    /// kicked users and the CLI; `Muted`; `RateLimited` (flood control or
    /// slow mode, with the wait); `Store` (nothing was stored or broadcast).
    #[instrument(skip_all, fields(room = %room))]
    pub async fn send(
        &self,
        actor: &Actor,
        room: &RoomName,
        text: MessageText,
        cid: Option<ClientId>,
    ) -> Result<Sent, SendError> {
        let now = self.clock.now();
        let access = visible_access(&self.rooms, actor, room, now).await?;
        let (r, standing) = (&access.room, access.standing);
        let user = match actor {
            Actor::Guest => {
                let text = self.bot.reply(text.as_str()).await?;
                let reply = BotReply {
                    room: room.clone(),
                    from: self.bot.name().to_owned(),
                    text,
                    ts: now,
                };
                return Ok(Sent::Bot(reply));
            }
            Actor::System => return Err(SendError::Forbidden("the command line does not chat")),
            Actor::User(u) => u,
        };
        if !standing.member {
            if !policy::may_join(actor, r, standing) {
                return Err(SendError::Forbidden(if standing.banned {
                    "you were removed from this room"
                } else {
                    "only members may send here"
                }));
            }
            self.rooms.add_member(room, &user.name).await?;
        }
        // Moderators are not held back by slow mode.
        let interval = access.slow_mode.filter(|_| !policy::may_moderate(actor, r));
        let gate = Gate {
            now,
            mute: access.mute,
            interval,
        };
        self.store_and_publish(&user.name, room, text, cid, gate)
            .await
    }

    /// Stores and broadcasts a user's message once `gate` lets it through.
    async fn store_and_publish(
        &self,
        from: &Username,
        room: &RoomName,
        text: MessageText,
        cid: Option<ClientId>,
        gate: Gate,
    ) -> Result<Sent, SendError> {
        let Gate {
            now,
            mute,
            interval,
        } = gate;
        if let Some(mute) = mute {
            return Err(SendError::Muted {
                until: mute.until,
                left: mute.until.map(|u| now.until(u)),
            });
        }
        let slot = interval
            .map(|interval| self.slow.take(from, room, interval, now))
            .transpose()
            .map_err(|retry_after| SendError::RateLimited { retry_after })?;
        let give_back = |slot: Option<SlowSlot>| {
            if let Some(slot) = slot {
                self.slow.give_back(slot);
            }
        };
        if let Some(limiter) = &self.limiter {
            if let Err(retry_after) = limiter.check(&(from.clone(), room.clone()), now) {
                give_back(slot);
                return Err(SendError::RateLimited { retry_after });
            }
        }
        let appended = match self
            .log
            .append(NewMessage {
                room: room.clone(),
                from: from.clone(),
                text,
                ts: now,
                cid,
                kind: MessageKind::Chat,
            })
            .await
        {
            Ok(appended) => appended,
            Err(e) => {
                give_back(slot);
                return Err(e.into());
            }
        };
        if appended.duplicate {
            // A retry of a message already sent: not a new message.
            give_back(slot);
        } else {
            if let Err(e) = self
                .events
                .publish(room, RoomEvent::Message(appended.message.clone()))
                .await
            {
                // Stored is what counts: feeds find it in the log at their next
                // gap check, so the ack is still true.
                warn!(error = %e, "publish failed after store");
            }
        }
        Ok(Sent::Stored(appended))
    }

    /// Sends a direct message to `to`, creating the pair's room on first use
    /// and telling both users' connections about it.
    ///
    /// # Errors
    /// `Forbidden` for guests; `NoSuchUser`; `Invalid` for oneself; as [`Chat::send`].
    #[instrument(skip_all, fields(to = %to))]
    pub async fn direct(
        &self,
        actor: &Actor,
        to: &Username,
        text: MessageText,
        cid: Option<ClientId>,
    ) -> Result<Appended, SendError> {
        let me = actor
            .user()
            .ok_or(SendError::Forbidden("log in to send direct messages"))?;
        let (room, created) = open_direct(
            &self.rooms,
            self.users.as_ref(),
            self.clock.as_ref(),
            &me.name,
            to,
        )
        .await?;
        if created {
            for who in [&me.name, to] {
                let event = UserEvent::DirectRoom {
                    room: room.name.clone(),
                };
                if let Err(e) = self.events.publish_user(who, event).await {
                    warn!(error = %e, "could not announce a new direct room");
                }
            }
        }
        let now = self.clock.now();
        let gate = Gate {
            now,
            mute: self.rooms.mute(&room.name, &me.name, now).await?,
            // Nobody moderates a direct room, so it never has slow mode.
            interval: None,
        };
        match self
            .store_and_publish(&me.name, &room.name, text, cid, gate)
            .await?
        {
            Sent::Stored(a) => Ok(a),
            Sent::Bot(_) => Err(SendError::Forbidden("direct rooms have no bot")),
        }
    }

    /// A page of history: up to `limit` (1–200) messages before `before`
    /// (newest when `None`), oldest first.
    ///
    /// # Errors
    /// `NotFound` for missing or invisible rooms; store failures.
    pub async fn history(
        &self,
        actor: &Actor,
        room: &RoomName,
        before: Option<Seq>,
        limit: usize,
    ) -> Result<Page, RoomError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let user = actor.user().map(|u| &u.name);
        // One read for the access check and the page where the store can
        // (SQLite: one statement); the page is dropped unless visible.
        let (access, page) = self
            .rooms
            .access_with_page(room, user, self.clock.now(), before, limit)
            .await?
            .ok_or(RoomError::NotFound)?;
        check_visible(actor, &access)?;
        match page {
            Some(page) => Ok(page),
            None => Ok(self.log.before(room, before, limit).await?),
        }
    }

    /// What a client that last saw `since` missed: up to `limit` messages.
    ///
    /// # Errors
    /// `NotFound` for missing or invisible rooms; store failures.
    pub async fn resume(
        &self,
        actor: &Actor,
        room: &RoomName,
        since: Seq,
        limit: usize,
    ) -> Result<Resume, RoomError> {
        // The one-statement access read, not `visible_room` (the room, then
        // the membership, and the bar for non-members: up to three reads).
        visible_access(&self.rooms, actor, room, self.clock.now()).await?;
        let page = self.log.after(room, since, limit.max(1)).await?;
        let expired = match page.messages.first() {
            Some(m) => m.seq > since.next(),
            None => self.log.last_seq(room).await? > since,
        };
        Ok(Resume { page, expired })
    }

    /// Subscribes to a room's events, in order and without gaps, starting
    /// after `after`. Subscribe before reading the snapshot `after` comes from.
    ///
    /// # Errors
    /// `NotFound` for missing or invisible rooms; store failures.
    pub async fn subscribe(
        &self,
        actor: &Actor,
        room: &RoomName,
        after: Seq,
    ) -> Result<RoomFeed, RoomError> {
        visible_room(&self.rooms, actor, room).await?;
        let stream = self.events.subscribe(room).await?;
        Ok(RoomFeed::new(
            room.clone(),
            Arc::clone(&self.log),
            stream,
            after,
        ))
    }

    /// Subscribes to a room's events from now on: it subscribes to the bus
    /// first and then reads the room's newest seq, so a message stored in
    /// between arrives both on the bus and above the starting point, and is
    /// delivered at once (the reverse order would leave it to the feed's
    /// periodic check).
    ///
    /// # Errors
    /// `NotFound` for missing or invisible rooms; store failures.
    pub async fn subscribe_live(
        &self,
        actor: &Actor,
        room: &RoomName,
    ) -> Result<RoomFeed, RoomError> {
        visible_room(&self.rooms, actor, room).await?;
        let stream = self.events.subscribe(room).await?;
        let after = self.log.last_seq(room).await?;
        Ok(RoomFeed::new(
            room.clone(),
            Arc::clone(&self.log),
            stream,
            after,
        ))
    }

    /// The highest seq of a room the caller may see.
    ///
    /// # Errors
    /// `NotFound` for missing or invisible rooms; store failures.
    pub async fn last_seq(&self, actor: &Actor, room: &RoomName) -> Result<Seq, RoomError> {
        visible_room(&self.rooms, actor, room).await?;
        Ok(self.log.last_seq(room).await?)
    }

    /// Subscribes to the caller's own events (new direct rooms, ended sessions).
    ///
    /// # Errors
    /// `Unauthenticated` for guests; store failures.
    pub async fn subscribe_user(&self, actor: &Actor) -> Result<EventStream<UserEvent>, RoomError> {
        let me = actor.user().ok_or(RoomError::Unauthenticated)?;
        Ok(self.events.subscribe_user(&me.name).await?)
    }

    /// Tells the room the caller is typing: for the next [`TYPING_TTL`],
    /// unless they say so again. Guests and non-members are refused.
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`; store failures.
    pub async fn typing(&self, actor: &Actor, room: &RoomName) -> Result<(), RoomError> {
        let (_, standing) = visible_room(&self.rooms, actor, room).await?;
        let user = actor.user().ok_or(RoomError::Unauthenticated)?;
        if !standing.member {
            return Err(RoomError::Forbidden("only members may type here"));
        }
        if self
            .rooms
            .mute(room, &user.name, self.clock.now())
            .await?
            .is_some()
        {
            return Err(RoomError::Forbidden("you are muted in this room"));
        }
        self.events
            .publish(
                room,
                RoomEvent::Typing {
                    user: user.name.clone(),
                },
            )
            .await?;
        Ok(())
    }

    /// Marks connection `conn` of the caller as present in `room` (call on
    /// join and on every heartbeat); announces the user when newly online.
    /// Guests are not tracked.
    ///
    /// # Errors
    /// Store failures.
    pub async fn present(
        &self,
        actor: &Actor,
        room: &RoomName,
        conn: &ConnectionId,
    ) -> Result<(), RoomError> {
        let Some(user) = actor.user() else {
            return Ok(());
        };
        let expires = self.clock.now().plus(self.presence_ttl);
        if self.presence.touch(room, &user.name, conn, expires).await? {
            self.announce(room, &user.name, PresenceChange::Join).await;
        }
        Ok(())
    }

    /// Marks connection `conn` of the caller as gone from `room`; announces
    /// the user's leave when it was their last connection there.
    ///
    /// # Errors
    /// Store failures.
    pub async fn absent(
        &self,
        actor: &Actor,
        room: &RoomName,
        conn: &ConnectionId,
    ) -> Result<(), RoomError> {
        let Some(user) = actor.user() else {
            return Ok(());
        };
        if self
            .presence
            .remove(room, &user.name, conn, self.clock.now())
            .await?
        {
            self.announce(room, &user.name, PresenceChange::Leave).await;
        }
        Ok(())
    }

    /// The name the guests' bot answers under.
    pub fn bot_name(&self) -> &str {
        self.bot.name()
    }

    /// The bot's private greeting for a guest who has just opened a public
    /// room (`joined` is what [`Rooms::join`](super::Rooms::join) returned);
    /// `None` for users, for other rooms, and when the bot has no greeting.
    pub fn greeting(&self, actor: &Actor, joined: &Joined) -> Option<BotReply> {
        if !actor.is_guest()
            || joined.room.visibility != Visibility::Public
            || joined.room.is_direct()
        {
            return None;
        }
        Some(BotReply {
            room: joined.room.name.clone(),
            from: self.bot.name().to_owned(),
            text: self.bot.greeting()?.to_owned(),
            ts: self.clock.now(),
        })
    }

    /// Who is online in a room the caller may see.
    ///
    /// # Errors
    /// `NotFound`; store failures.
    pub async fn online(&self, actor: &Actor, room: &RoomName) -> Result<Vec<Username>, RoomError> {
        visible_room(&self.rooms, actor, room).await?;
        Ok(self.presence.online(room, self.clock.now()).await?)
    }

    /// Drops expired presence (connections that stopped heartbeating, nodes
    /// that died) and announces the leaves. Run periodically.
    ///
    /// # Errors
    /// Store failures.
    pub async fn expire_presence(&self) -> Result<usize, RoomError> {
        let gone = self.presence.expire(self.clock.now()).await?;
        for (room, user) in &gone {
            self.announce(room, user, PresenceChange::Leave).await;
        }
        Ok(gone.len())
    }

    async fn announce(&self, room: &RoomName, user: &Username, change: PresenceChange) {
        let event = RoomEvent::Presence {
            user: user.clone(),
            change,
        };
        if let Err(e) = self.events.publish(room, event).await {
            warn!(error = %e, "could not announce presence");
        }
    }
}
