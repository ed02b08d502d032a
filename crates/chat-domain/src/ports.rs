//! The ports: what the domain needs from storage, the event bus and the bot.
//!
//! Every adapter (`chat-memory`, `chat-sqlite`, `chat-redis`) implements these
//! traits and passes the same contract suite in `chat-testkit`. Each method
//! says what it MUST do; "MUST return `X`" means exactly that error variant,
//! because the services turn it into a user-facing answer.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use thiserror::Error;

use crate::clock::Timestamp;
use crate::model::{
    Appended, AuditEntry, Delivery, Mute, NewMessage, NewRoom, NewUser, Page, PasswordHash, Room,
    RoomAccess, RoomEvent, Session, SessionId, User, UserEvent,
};
use crate::names::{PermissionName, RoomName, Seq, Username};
use crate::policy::Standing;

/// A boxed error from a driver, kept as the source of an opaque variant.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a port call can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique name is already taken.
    #[error("already exists")]
    Conflict,
    /// The thing addressed does not exist.
    #[error("not found")]
    NotFound,
    /// The backing store cannot be reached right now; retrying later may work.
    /// Nothing was changed.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Anything else: a bug, corrupt data, a full disk.
    #[error("unexpected store error: {0}")]
    Unexpected(#[source] BoxError),
}

impl StoreError {
    /// Wraps any error as [`StoreError::Unexpected`].
    pub fn unexpected(e: impl Into<BoxError>) -> Self {
        Self::Unexpected(e.into())
    }
    /// Wraps any error as [`StoreError::Unavailable`].
    pub fn unavailable(e: impl Into<BoxError>) -> Self {
        Self::Unavailable(e.into())
    }
}

/// Result of a port call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Users and the catalogue of permission names.
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new user.
    ///
    /// # Errors
    /// MUST return `Conflict` when the name is taken, storing nothing.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;

    /// The user of that name, if any.
    ///
    /// # Errors
    /// Only store failures.
    async fn user(&self, name: &Username) -> StoreResult<Option<User>>;

    /// Every user, sorted by name.
    ///
    /// # Errors
    /// Only store failures.
    async fn users(&self) -> StoreResult<Vec<User>>;

    /// How many users exist.
    ///
    /// # Errors
    /// Only store failures.
    async fn count_users(&self) -> StoreResult<u64>;

    /// The stored password hash of a user, if the user exists.
    ///
    /// # Errors
    /// Only store failures.
    async fn password_hash(&self, name: &Username) -> StoreResult<Option<PasswordHash>>;

    /// Replaces a user's password hash.
    ///
    /// # Errors
    /// MUST return `NotFound` when the user does not exist.
    async fn set_password_hash(&self, name: &Username, hash: PasswordHash) -> StoreResult<()>;

    /// Replaces a user's permission set and returns the updated user.
    ///
    /// # Errors
    /// MUST return `NotFound` when the user does not exist. Callers pass only
    /// defined permissions; the store need not check.
    async fn set_permissions(
        &self,
        name: &Username,
        permissions: &BTreeSet<PermissionName>,
    ) -> StoreResult<User>;

    /// Deletes a user, their sessions and their room memberships, mutes and
    /// bans. Their messages stay in history.
    ///
    /// # Errors
    /// MUST return `NotFound` when the user does not exist.
    async fn delete_user(&self, name: &Username) -> StoreResult<()>;

    /// Adds a permission name to the catalogue.
    ///
    /// # Errors
    /// MUST return `Conflict` when it is already defined (built-ins included).
    async fn define_permission(&self, name: &PermissionName) -> StoreResult<()>;

    /// Every defined permission, built-ins included, sorted.
    ///
    /// # Errors
    /// Only store failures.
    async fn permissions(&self) -> StoreResult<Vec<PermissionName>>;
}

/// Login sessions, shared by every node.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a session.
    ///
    /// # Errors
    /// Only store failures.
    async fn create_session(&self, session: Session) -> StoreResult<()>;

    /// The session with that id if it exists and has not expired at `now`.
    ///
    /// # Errors
    /// Only store failures.
    async fn session(&self, id: &SessionId, now: Timestamp) -> StoreResult<Option<Session>>;

    /// Deletes one session; deleting a missing one is not an error.
    ///
    /// # Errors
    /// Only store failures.
    async fn delete_session(&self, id: &SessionId) -> StoreResult<()>;

    /// Deletes every session of `user` except `keep`; returns how many went.
    ///
    /// # Errors
    /// Only store failures.
    async fn delete_user_sessions(
        &self,
        user: &Username,
        keep: Option<&SessionId>,
    ) -> StoreResult<u64>;
}

/// Rooms, their members and their moderation state.
#[async_trait]
pub trait RoomRepository: Send + Sync + 'static {
    /// Stores a room with its first members.
    ///
    /// # Errors
    /// MUST return `Conflict` when the name is taken, storing nothing.
    async fn create_room(&self, room: NewRoom) -> StoreResult<Room>;

    /// The room of that name, if any.
    ///
    /// # Errors
    /// Only store failures.
    async fn room(&self, name: &RoomName) -> StoreResult<Option<Room>>;

    /// Every ordinary room (no direct rooms), sorted by name.
    ///
    /// # Errors
    /// Only store failures.
    async fn rooms(&self) -> StoreResult<Vec<Room>>;

    /// Every room `user` is a member of, direct rooms included, sorted by name.
    ///
    /// # Errors
    /// Only store failures.
    async fn rooms_of(&self, user: &Username) -> StoreResult<Vec<Room>>;

    /// Makes `user` a member; returns false if already one.
    ///
    /// # Errors
    /// MUST return `NotFound` when the room does not exist.
    async fn add_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool>;

    /// Removes `user` from the members; returns false if not one.
    ///
    /// # Errors
    /// MUST return `NotFound` when the room does not exist.
    async fn remove_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool>;

    /// The members, sorted by name.
    ///
    /// # Errors
    /// MUST return `NotFound` when the room does not exist.
    async fn members(&self, room: &RoomName) -> StoreResult<Vec<Username>>;

    /// How many members the room has (0 for a missing room).
    ///
    /// # Errors
    /// Only store failures.
    async fn member_count(&self, room: &RoomName) -> StoreResult<u64>;

    /// [`RoomRepository::member_count`] of each of `rooms`, in their order
    /// (0 for a missing room), for listings: an adapter whose reads cost a
    /// round trip SHOULD answer in one; the default asks room by room.
    ///
    /// # Errors
    /// Only store failures.
    async fn member_counts(&self, rooms: &[RoomName]) -> StoreResult<Vec<u64>> {
        let mut counts = Vec::with_capacity(rooms.len());
        for room in rooms {
            counts.push(self.member_count(room).await?);
        }
        Ok(counts)
    }

    /// Whether `user` is a member (false for a missing room).
    ///
    /// # Errors
    /// Only store failures.
    async fn is_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool>;

    /// Bars (`true`) or re-admits (`false`) `user`; a barred user cannot re-join.
    ///
    /// # Errors
    /// MUST return `NotFound` when the room does not exist.
    async fn set_banned(&self, room: &RoomName, user: &Username, banned: bool) -> StoreResult<()>;

    /// Whether `user` is barred from the room.
    ///
    /// # Errors
    /// Only store failures.
    async fn is_banned(&self, room: &RoomName, user: &Username) -> StoreResult<bool>;

    /// Sets (`Some`) or lifts (`None`) a mute.
    ///
    /// # Errors
    /// MUST return `NotFound` when the room does not exist.
    async fn set_mute(
        &self,
        room: &RoomName,
        user: &Username,
        mute: Option<Mute>,
    ) -> StoreResult<()>;

    /// The mute on `user` in the room if one is active at `now`. Expired mutes
    /// MUST read as `None`.
    ///
    /// # Errors
    /// Only store failures.
    async fn mute(
        &self,
        room: &RoomName,
        user: &Username,
        now: Timestamp,
    ) -> StoreResult<Option<Mute>>;

    /// Every mute active at `now` in the room, sorted by user.
    ///
    /// # Errors
    /// Only store failures.
    async fn mutes(&self, room: &RoomName, now: Timestamp) -> StoreResult<Vec<(Username, Mute)>>;

    /// Turns slow mode on (`Some(interval)`: a member may send one message
    /// per `interval`) or off (`None`). The interval MUST be kept to the
    /// second (callers pass whole seconds, at least one) and MUST read back
    /// from [`RoomRepository::slow_mode`] on every node.
    ///
    /// # Errors
    /// MUST return `NotFound` when the room does not exist, storing nothing.
    async fn set_slow_mode(&self, room: &RoomName, interval: Option<Duration>) -> StoreResult<()>;

    /// The room's slow-mode interval; `None` when it is off, and for a
    /// missing room.
    ///
    /// # Errors
    /// Only store failures.
    async fn slow_mode(&self, room: &RoomName) -> StoreResult<Option<Duration>>;

    /// Everything a send or a history page needs about the room and `user`
    /// (`None`: a guest), read together: the room, the user's standing,
    /// the mute on them active at `now` and the room's slow mode. `None`
    /// when the room does not exist.
    ///
    /// It MUST agree with [`RoomRepository::room`], [`RoomRepository::is_member`],
    /// [`RoomRepository::mute`] and [`RoomRepository::slow_mode`], and with
    /// [`RoomRepository::is_banned`] for a user who is not a member (a member
    /// is never barred, so `banned` MAY read false for members). A guest is
    /// neither member nor barred nor muted. Adapters SHOULD answer in one
    /// round trip: this runs on every send. The default asks piece by piece.
    ///
    /// # Errors
    /// Only store failures.
    async fn access(
        &self,
        room: &RoomName,
        user: Option<&Username>,
        now: Timestamp,
    ) -> StoreResult<Option<RoomAccess>> {
        let Some(found) = self.room(room).await? else {
            return Ok(None);
        };
        let (standing, mute) = match user {
            None => (Standing::default(), None),
            Some(user) => {
                let member = self.is_member(room, user).await?;
                let banned = !member && self.is_banned(room, user).await?;
                (
                    Standing { member, banned },
                    self.mute(room, user, now).await?,
                )
            }
        };
        Ok(Some(RoomAccess {
            room: found,
            standing,
            mute,
            slow_mode: self.slow_mode(room).await?,
        }))
    }

    /// [`RoomRepository::access`] together with, from a store that also
    /// keeps the room's messages, the page [`MessageLog::before`] answers
    /// for `before` and `limit`: every history page needs both, and reading
    /// them in one round trip instead of two is most of what a page costs.
    /// `None` when the room does not exist.
    ///
    /// The page MAY be `None` (the default does not read it): the caller
    /// then asks the log. When it is `Some`, it MUST equal what `before`
    /// on the [`MessageLog`] wired with this repository answers, so only a
    /// store that is that log may fill it. It is read before anybody
    /// checked that `user` may see the room; the caller checks and drops it.
    ///
    /// # Errors
    /// Only store failures.
    async fn access_with_page(
        &self,
        room: &RoomName,
        user: Option<&Username>,
        now: Timestamp,
        before: Option<Seq>,
        limit: usize,
    ) -> StoreResult<Option<(RoomAccess, Option<Page>)>> {
        let _ = (before, limit);
        Ok(self
            .access(room, user, now)
            .await?
            .map(|access| (access, None)))
    }
}

/// The durable, ordered history of every room.
#[async_trait]
pub trait MessageLog: Send + Sync + 'static {
    /// Stores a message and assigns it the room's next seq in the same
    /// atomic step, so seqs are 1, 2, 3, … with no gap or repeat however
    /// many callers append at once. When it returns `Ok`, the message is
    /// durable.
    ///
    /// When `cid` is set and the same sender already stored a message with
    /// that `cid` in that room, MUST store nothing and return that earlier
    /// message with `duplicate: true`.
    ///
    /// # Errors
    /// MUST return `NotFound` when the room does not exist, and
    /// `Unavailable` when the store cannot be reached; on any error nothing
    /// is stored.
    async fn append(&self, message: NewMessage) -> StoreResult<Appended>;

    /// Up to `limit` of the newest messages with seq < `before` (all seqs when
    /// `None`), in ascending order; `more` says whether older ones remain.
    ///
    /// # Errors
    /// Only store failures; a missing room reads as empty.
    async fn before(
        &self,
        room: &RoomName,
        before: Option<Seq>,
        limit: usize,
    ) -> StoreResult<crate::model::Page>;

    /// Up to `limit` of the oldest messages with seq > `after`, in ascending
    /// order; `more` says whether newer ones remain.
    ///
    /// # Errors
    /// Only store failures; a missing room reads as empty.
    async fn after(
        &self,
        room: &RoomName,
        after: Seq,
        limit: usize,
    ) -> StoreResult<crate::model::Page>;

    /// The highest seq ever assigned in the room (`Seq::ZERO` if none). It
    /// MUST NOT go down when old messages are deleted.
    ///
    /// # Errors
    /// Only store failures.
    async fn last_seq(&self, room: &RoomName) -> StoreResult<Seq>;

    /// [`MessageLog::last_seq`] of each of `rooms`, in their order
    /// (`Seq::ZERO` for a missing room), for listings: an adapter whose
    /// reads cost a round trip SHOULD answer in one; the default asks room
    /// by room.
    ///
    /// # Errors
    /// Only store failures.
    async fn last_seqs(&self, rooms: &[RoomName]) -> StoreResult<Vec<Seq>> {
        let mut seqs = Vec::with_capacity(rooms.len());
        for room in rooms {
            seqs.push(self.last_seq(room).await?);
        }
        Ok(seqs)
    }

    /// Deletes up to `batch` messages stamped before `cutoff`, in any rooms,
    /// direct rooms included; returns how many went.
    ///
    /// # Errors
    /// Only store failures.
    async fn delete_before(&self, cutoff: Timestamp, batch: usize) -> StoreResult<u64>;
}

/// A live stream of deliveries from the event bus.
pub type EventStream<E> = BoxStream<'static, Delivery<E>>;

/// The event bus: fan-out of room and user events to every node.
///
/// Delivery is at most once and, per topic, in publish order from one
/// publisher; consumers that need every message (the room feed) fill gaps
/// from the [`MessageLog`].
#[async_trait]
pub trait RoomEvents: Send + Sync + 'static {
    /// Sends an event to every current subscriber of the room, on every node.
    ///
    /// # Errors
    /// `Unavailable` when the bus cannot be reached.
    async fn publish(&self, room: &RoomName, event: RoomEvent) -> StoreResult<()>;

    /// Subscribes to a room. The stream MUST yield `Delivery::Lagged` when it
    /// knows it dropped events (a full buffer, a reconnect to the bus).
    ///
    /// # Errors
    /// `Unavailable` when the bus cannot be reached.
    async fn subscribe(&self, room: &RoomName) -> StoreResult<EventStream<RoomEvent>>;

    /// Sends an event to every connection of a user, on every node.
    ///
    /// # Errors
    /// `Unavailable` when the bus cannot be reached.
    async fn publish_user(&self, user: &Username, event: UserEvent) -> StoreResult<()>;

    /// Subscribes to a user's events; same rules as [`RoomEvents::subscribe`].
    ///
    /// # Errors
    /// `Unavailable` when the bus cannot be reached.
    async fn subscribe_user(&self, user: &Username) -> StoreResult<EventStream<UserEvent>>;
}

/// An opaque id for one live connection (unique across nodes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub String);

/// Who is online where, kept by heartbeats with expiry rather than by trust
/// in disconnect events (a node that dies must not leave its users online).
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Records that connection `conn` of `user` is in `room` until `expires_at`.
    /// Returns true when `user` was not online in the room before.
    ///
    /// # Errors
    /// Only store failures.
    async fn touch(
        &self,
        room: &RoomName,
        user: &Username,
        conn: &ConnectionId,
        expires_at: Timestamp,
    ) -> StoreResult<bool>;

    /// Removes one connection. Returns true when this call takes `user`
    /// offline in the room: they had at least one connection recorded there
    /// (live, or expired but not yet dropped by [`Presence::expire`]) and no
    /// other live one remains at `now`. It MUST return false when nothing of
    /// theirs was recorded in the room — in particular after `expire`
    /// already reported them gone — so that a leave is announced only once.
    ///
    /// # Errors
    /// Only store failures.
    async fn remove(
        &self,
        room: &RoomName,
        user: &Username,
        conn: &ConnectionId,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Users with at least one connection in the room that has not expired at
    /// `now`, sorted.
    ///
    /// # Errors
    /// Only store failures.
    async fn online(&self, room: &RoomName, now: Timestamp) -> StoreResult<Vec<Username>>;

    /// Drops every connection expired at `now` and returns the (room, user)
    /// pairs that thereby went offline, so a leave can be announced once.
    ///
    /// # Errors
    /// Only store failures.
    async fn expire(&self, now: Timestamp) -> StoreResult<Vec<(RoomName, Username)>>;
}

/// How many of the newest audit entries every [`AuditLog`] keeps at least.
pub const AUDIT_KEPT: usize = 10_000;

/// The audit trail: every admin and moderation action, who did it to whom
/// and when, for admins to read.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends an entry, exactly as given (text byte for byte, `at` to the
    /// millisecond).
    ///
    /// An adapter MAY drop the oldest entries beyond [`AUDIT_KEPT`], never
    /// newer ones.
    ///
    /// # Errors
    /// `Unavailable` when the store cannot be reached; nothing is stored then.
    async fn record(&self, entry: AuditEntry) -> StoreResult<()>;

    /// Up to `limit` of the most recently recorded entries, newest first:
    /// the reverse of the order in which `record` calls returned, whatever
    /// their `at` (entries of one instant keep their order, and clocks of
    /// different nodes may disagree). `limit` 0 reads nothing.
    ///
    /// # Errors
    /// Only store failures.
    async fn recent(&self, limit: usize) -> StoreResult<Vec<AuditEntry>>;
}

/// One question/answer pair of the bot's corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QaPair {
    /// What someone might say.
    pub question: String,
    /// What the bot answers.
    pub answer: String,
}

/// Where the bot's corpus is kept.
#[async_trait]
pub trait BotCorpus: Send + Sync + 'static {
    /// Adds pairs; an identical (question, answer) pair is stored once.
    /// Returns how many were new.
    ///
    /// # Errors
    /// Only store failures.
    async fn add_pairs(&self, pairs: &[QaPair]) -> StoreResult<u64>;

    /// Every stored pair, in insertion order.
    ///
    /// # Errors
    /// Only store failures.
    async fn pairs(&self) -> StoreResult<Vec<QaPair>>;
}

/// The guests' conversation partner (the original's "小黄鸭").
#[async_trait]
pub trait Bot: Send + Sync + 'static {
    /// The name shown as the author of its replies.
    fn name(&self) -> &str;

    /// What it says, privately, to a guest who opens a public room; `None`
    /// (the default) says nothing.
    fn greeting(&self) -> Option<&str> {
        None
    }

    /// An answer to `text`; never empty.
    ///
    /// # Errors
    /// Only failures to reach its corpus.
    async fn reply(&self, text: &str) -> StoreResult<String>;
}

/// How long a presence heartbeat lasts unless renewed, by default
/// (`ServiceConfig::presence_ttl` sets it; `presence_timeout` in chat-server).
pub const PRESENCE_TTL: Duration = Duration::from_secs(60);

/// A store that `/readyz` asks whether it answers.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// A short name for logs and the readiness answer ("sqlite", "redis").
    fn component(&self) -> &'static str;

    /// Succeeds when the store answers a trivial request right now.
    ///
    /// # Errors
    /// `Unavailable` when it does not.
    async fn check(&self) -> StoreResult<()>;
}
