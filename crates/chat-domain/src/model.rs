//! The entities: users, sessions, rooms, moderation state, messages and the
//! events that travel between nodes.
//!
//! These are plain data; the rules about them live in `policy` and the
//! services, and how they are stored lives in the adapters.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::names::{ClientId, Description, MessageText, PermissionName, RoomName, Seq, Username};
use crate::policy::Standing;

/// A registered user as the rest of the program sees it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Unique name.
    pub name: Username,
    /// Granted permissions, sorted, without duplicates.
    pub permissions: BTreeSet<PermissionName>,
    /// When the account was made.
    pub created_at: Timestamp,
}

impl User {
    /// Whether the user holds `perm`; `admin` implies every permission.
    pub fn has(&self, perm: &PermissionName) -> bool {
        self.permissions.contains(perm) || self.permissions.contains(&PermissionName::admin())
    }
    /// Whether the user holds `admin`.
    pub fn is_admin(&self) -> bool {
        self.permissions.contains(&PermissionName::admin())
    }
}

/// An argon2id hash in PHC string form. Never a plain password.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string read back from storage.
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }
    /// The PHC string, for storage.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// A user to be stored.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique name.
    pub name: Username,
    /// The hash of the chosen password.
    pub password_hash: PasswordHash,
    /// Initial permissions.
    pub permissions: BTreeSet<PermissionName>,
    /// When it is made.
    pub created_at: Timestamp,
}

/// An opaque, unguessable session token (256 random bits, hex).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random session id.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
    /// Reads a token presented by a client; `None` if it cannot be one of ours.
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(raw.to_ascii_lowercase()))
    }
    /// The token text (for the cookie and for storage).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A session id is a credential: never let it reach a log.
        f.write_str("SessionId(..)")
    }
}

/// A logged-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The token.
    pub id: SessionId,
    /// Whose session it is.
    pub user: Username,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops being valid.
    pub expires_at: Timestamp,
}

/// Who may see and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Anyone may join; guests may read.
    Public,
    /// Only members; the creator and admins manage the member list.
    Private,
}

impl Visibility {
    /// `"public"` or `"private"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
    /// Parses `"public"` or `"private"`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "public" => Some(Self::Public),
            "private" => Some(Self::Private),
            _ => None,
        }
    }
}

/// A chat room; direct rooms (`@a+b`) are private rooms of exactly two members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Unique name.
    pub name: RoomName,
    /// Free text shown in the room list.
    pub description: Description,
    /// Public or private.
    pub visibility: Visibility,
    /// Who made it.
    pub created_by: Username,
    /// When it was made.
    pub created_at: Timestamp,
}

impl Room {
    /// Whether this is a direct room.
    pub fn is_direct(&self) -> bool {
        self.name.is_direct()
    }
}

/// A room to be stored, with the members it starts with.
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// The room.
    pub room: Room,
    /// Its first members (the creator; both users of a direct room).
    pub members: Vec<Username>,
}

/// A room as listed: the room plus its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room.
    pub room: Room,
    /// How many members it has.
    pub members: u64,
    /// The seq of its newest message (`Seq::ZERO` when it has none).
    pub last_seq: Seq,
}

/// A room with one caller's relation to it, as [`RoomRepository::access`]
/// reads it for every send.
///
/// [`RoomRepository::access`]: crate::ports::RoomRepository::access
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAccess {
    /// The room.
    pub room: Room,
    /// The caller's membership and bar.
    pub standing: Standing,
    /// The mute on the caller active at the time asked about.
    pub mute: Option<Mute>,
    /// The room's slow-mode interval.
    pub slow_mode: Option<std::time::Duration>,
}

/// A mute on one user in one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mute {
    /// When it ends by itself; `None`: until lifted.
    pub until: Option<Timestamp>,
}

impl Mute {
    /// Whether the mute still holds at `now`.
    pub fn active_at(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Something a user said.
    Chat,
    /// A system notice (a moderation action), authored by the acting user.
    Notice,
}

impl MessageKind {
    /// `"chat"` or `"notice"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Notice => "notice",
        }
    }
    /// Parses `"chat"` or `"notice"`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "chat" => Some(Self::Chat),
            "notice" => Some(Self::Notice),
            _ => None,
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The room it was sent to.
    pub room: RoomName,
    /// Its position in the room.
    pub seq: Seq,
    /// Who sent it.
    pub from: Username,
    /// What it says.
    pub text: MessageText,
    /// When the server stored it.
    pub ts: Timestamp,
    /// The sender's idempotency key, if it gave one.
    pub cid: Option<ClientId>,
    /// Chat or notice.
    pub kind: MessageKind,
}

/// A message to be stored; the log assigns its seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Target room; it MUST exist.
    pub room: RoomName,
    /// Sender.
    pub from: Username,
    /// Text.
    pub text: MessageText,
    /// Server time of the send.
    pub ts: Timestamp,
    /// Idempotency key.
    pub cid: Option<ClientId>,
    /// Chat or notice.
    pub kind: MessageKind,
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored message (the earlier one, for a repeated `cid`).
    pub message: Message,
    /// True when `cid` had been seen and nothing new was stored.
    pub duplicate: bool,
}

/// A slice of a room's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The messages, in ascending seq order.
    pub messages: Vec<Message>,
    /// Whether more messages exist beyond this page in the direction read.
    pub more: bool,
}

/// Whether a user came or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceChange {
    /// Now online in the room.
    Join,
    /// No longer online in the room.
    Leave,
}

/// Something that happened in a room, as carried by the event bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A stored message (ordered by seq; the feed fills any gap).
    Message(Message),
    /// A user came online in the room or left it.
    Presence {
        /// Who.
        user: Username,
        /// Came or went.
        change: PresenceChange,
    },
    /// A user is typing.
    Typing {
        /// Who.
        user: Username,
    },
    /// A member was removed (kicked, or dropped from a private room): their
    /// connections MUST leave the room at once.
    Removed {
        /// Who.
        user: Username,
    },
    /// A user was muted (`until: None`: until lifted) or unmuted.
    Muted {
        /// Who.
        user: Username,
        /// `Some(mute)` when muted, `None` when the mute was lifted.
        mute: Option<Mute>,
    },
    /// Slow mode was turned on, changed, or lifted.
    SlowMode {
        /// Members may send one message per this many seconds; `None`: off.
        seconds: Option<u64>,
    },
}

/// Something that concerns one user wherever they are connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserEvent {
    /// A direct room with this user now exists: their connections subscribe to it.
    DirectRoom {
        /// The direct room.
        room: RoomName,
    },
    /// Some or all of the user's sessions ended (deleted, password reset or
    /// changed, logged out): each of their connections checks its own
    /// session and closes if it was one of them.
    SessionsEnded,
    /// The user's permissions changed.
    PermissionsChanged,
}

/// What a subscription yields.
#[derive(Debug, Clone)]
pub enum Delivery<E> {
    /// An event, shared by every subscriber on this node.
    Event(Arc<E>),
    /// Some events were dropped before this point (a lagging reader, a lost
    /// connection to the bus). Ordered consumers fill the gap from the store.
    Lagged,
}

/// What an audited action was: every admin and moderation action has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// An account was made (by an admin, the CLI or the first start).
    UserCreated,
    /// An account was deleted.
    UserDeleted,
    /// An admin set another user's password.
    PasswordReset,
    /// A user changed their own password.
    PasswordChanged,
    /// A user's permission set was replaced (grants and revokes included).
    PermissionsSet,
    /// A new permission name was defined.
    PermissionDefined,
    /// A room was created.
    RoomCreated,
    /// A member was muted in a room.
    Muted,
    /// A mute was lifted.
    Unmuted,
    /// A member was kicked from a room.
    Kicked,
    /// A user was let back into a room, or added to a private one.
    MemberAdded,
    /// A room's slow mode was set or lifted.
    SlowMode,
}

impl AuditAction {
    /// Every action, in declaration order.
    pub const ALL: [Self; 12] = [
        Self::UserCreated,
        Self::UserDeleted,
        Self::PasswordReset,
        Self::PasswordChanged,
        Self::PermissionsSet,
        Self::PermissionDefined,
        Self::RoomCreated,
        Self::Muted,
        Self::Unmuted,
        Self::Kicked,
        Self::MemberAdded,
        Self::SlowMode,
    ];

    /// The stable name, e.g. `"user_created"` (stored, and shown by the API).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user_created",
            Self::UserDeleted => "user_deleted",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::PermissionsSet => "permissions_set",
            Self::PermissionDefined => "permission_defined",
            Self::RoomCreated => "room_created",
            Self::Muted => "muted",
            Self::Unmuted => "unmuted",
            Self::Kicked => "kicked",
            Self::MemberAdded => "member_added",
            Self::SlowMode => "slow_mode",
        }
    }

    /// Parses a name written by [`AuditAction::as_str`].
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the audit trail: who did what to whom, when.
///
/// Names are kept as plain text, not newtypes: the trail must still read
/// back after the user or room it names is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it happened (server time).
    pub at: Timestamp,
    /// Who did it: a username, or [`AuditEntry::SYSTEM`] for the command
    /// line and the first start.
    pub actor: String,
    /// What was done.
    pub action: AuditAction,
    /// To whom or what: a username, a room name or a permission name.
    pub target: String,
    /// The particulars, for people (the room and duration of a mute, the
    /// new permission set); may be empty.
    pub detail: String,
}

impl AuditEntry {
    /// The actor recorded for the trusted operator (`Actor::System`).
    /// `system` is a reserved username, so no user can be confused with it.
    pub const SYSTEM: &str = "system";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_audit_action_round_trips_through_its_name() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        let names: std::collections::BTreeSet<_> =
            AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), AuditAction::ALL.len(), "names are distinct");
        assert_eq!(AuditAction::parse("Muted"), None);
        assert_eq!(AuditAction::parse(""), None);
    }
}
