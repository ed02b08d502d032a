//! hihichat's core: users, rooms, permissions and messages, the ports the
//! core needs from the outside world, and the services that enforce the rules.
//!
//! It does no I/O of its own. Storage, the event bus and the bot are ports
//! ([`ports`]); `chat-memory`, `chat-sqlite` and `chat-redis` implement them.
//! The services ([`Accounts`], [`Rooms`], [`Chat`], [`Moderation`],
//! [`Retention`]) check every permission themselves, so every entry point
//! gets the same rules.
//!
//! # Embedding
//!
//! Another Rust service can run hihichat's core in-process with the
//! in-memory adapters: make a user and a room, subscribe to the room, send,
//! and receive.
//!
//! ```
//! use std::sync::Arc;
//!
//! use chat_domain::{
//!     Actor, Description, MessageText, Password, PermissionName, Ports, RoomEvent, RoomName,
//!     Seq, Sent, ServiceConfig, Services, SystemClock, Username, Visibility,
//! };
//! use chat_memory::MemoryStore;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let store = Arc::new(MemoryStore::new());
//!     let services = Services::new(&Ports::single(store, Arc::new(SystemClock)), ServiceConfig::default());
//!
//!     // `Actor::System` is the trusted operator, as at the command line.
//!     let alice = services
//!         .accounts
//!         .create_user(
//!             &Actor::System,
//!             Username::parse("alice")?,
//!             Password::parse("correct horse")?,
//!             [PermissionName::create_room()].into(),
//!         )
//!         .await?;
//!     let alice = Actor::User(alice);
//!
//!     let room = RoomName::parse("闲聊")?;
//!     services.rooms.create(&alice, room.clone(), Description::empty(), Visibility::Public).await?;
//!
//!     // Subscribe first, then send: the feed yields every message in seq order.
//!     let mut feed = services.chat.subscribe(&alice, &room, Seq::ZERO).await?;
//!     let Sent::Stored(ack) = services.chat.send(&alice, &room, MessageText::parse("你好")?, None).await? else {
//!         unreachable!("users' messages are stored");
//!     };
//!     assert_eq!(ack.message.seq, Seq::new(1));
//!
//!     let event = feed.next().await.expect("the feed is live");
//!     let RoomEvent::Message(message) = &*event else { unreachable!("only a message was sent") };
//!     assert_eq!((message.from.as_str(), message.text.as_str()), ("alice", "你好"));
//!     Ok(())
//! }
//! ```

pub mod bot;
pub mod clock;
pub mod error;
pub mod model;
pub mod names;
pub mod password;
pub mod policy;
pub mod ports;
pub mod ratelimit;
pub mod services;

use std::sync::Arc;
use std::time::Duration;

pub use bot::{CorpusBot, DEFAULT_BOT_GREETING, DEFAULT_BOT_NAME, parse_corpus};
pub use clock::{Clock, ManualClock, Rfc3339, SystemClock, Timestamp};
pub use error::{AccountError, Coded, ErrorCode, LoginError, RoomError, SendError};
pub use model::{
    Appended, AuditAction, AuditEntry, Delivery, Message, MessageKind, Mute, NewMessage, NewRoom,
    NewUser, Page, PasswordHash, PresenceChange, Room, RoomAccess, RoomEvent, RoomSummary, Session,
    SessionId, User, UserEvent, Visibility,
};
pub use names::{
    ClientId, Description, InvalidInput, MessageText, PermissionName, RoomName, Seq, Username,
};
pub use password::{Password, PasswordHasher};
pub use policy::{Actor, Standing};
pub use ports::{
    AUDIT_KEPT, AuditLog, Bot, BotCorpus, ConnectionId, EventStream, HealthCheck, MessageLog,
    PRESENCE_TTL, Presence, QaPair, RoomEvents, RoomRepository, SessionStore, StoreError,
    StoreResult, UserRepository,
};
pub use ratelimit::{RateLimit, RateLimiter};
pub use services::{
    Accounts, Bootstrap, BotReply, Chat, DirectSummary, FeedItem, Joined, MAX_SLOW_MODE,
    Moderation, Resume, Retention, RoomFeed, Rooms, Sent, TYPING_TTL,
};

/// Every port, as handed to the services at start-up.
///
/// This exists only for wiring: services receive the ports they need, and
/// handlers receive services, never this bundle.
#[derive(Clone)]
pub struct Ports {
    /// Users and permissions.
    pub users: Arc<dyn UserRepository>,
    /// Login sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Rooms, members, moderation state. A store that fills the page of
    /// [`RoomRepository::access_with_page`] MUST also be `log`.
    pub rooms: Arc<dyn RoomRepository>,
    /// Message history.
    pub log: Arc<dyn MessageLog>,
    /// Fan-out.
    pub events: Arc<dyn RoomEvents>,
    /// Who is online.
    pub presence: Arc<dyn Presence>,
    /// The bot's corpus.
    pub corpus: Arc<dyn BotCorpus>,
    /// The audit trail of admin and moderation actions.
    pub audit: Arc<dyn AuditLog>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl Ports {
    /// All ports from one store that implements them all (memory, Redis).
    pub fn single<S>(store: Arc<S>, clock: Arc<dyn Clock>) -> Self
    where
        S: UserRepository
            + SessionStore
            + RoomRepository
            + MessageLog
            + RoomEvents
            + Presence
            + BotCorpus
            + AuditLog,
    {
        Self {
            users: store.clone(),
            sessions: store.clone(),
            rooms: store.clone(),
            log: store.clone(),
            events: store.clone(),
            presence: store.clone(),
            corpus: store.clone(),
            audit: store,
            clock,
        }
    }
}

/// Settings the services need.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Flood control per user per room; `None` turns it off.
    pub rate_limit: Option<RateLimit>,
    /// Delete messages older than this; `None` keeps everything.
    pub retention: Option<Duration>,
    /// The bot's display name.
    pub bot_name: String,
    /// What the bot says when nothing in its corpus is close.
    pub bot_fallback: String,
    /// What the bot says privately to a guest who opens a public room;
    /// empty: nothing.
    pub bot_greeting: String,
    /// How long a connection's presence lasts unless renewed by a heartbeat:
    /// a user whose connections all stop renewing (a dead node, a vanished
    /// client) goes offline this long after the last renewal.
    pub presence_ttl: Duration,
    /// Password hashing.
    pub hasher: PasswordHasher,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            rate_limit: Some(RateLimit::DEFAULT),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            bot_name: DEFAULT_BOT_NAME.to_owned(),
            bot_fallback: "嘎嘎!我还不太明白。登录后就可以和大家聊天了。 (Quack! I don't know that one yet — log in to chat with everyone.)".to_owned(),
            bot_greeting: DEFAULT_BOT_GREETING.to_owned(),
            presence_ttl: PRESENCE_TTL,
            hasher: PasswordHasher::owasp(),
        }
    }
}

/// The services, built from the ports.
#[derive(Clone)]
pub struct Services {
    /// Users, sessions, permissions.
    pub accounts: Arc<Accounts>,
    /// Rooms and membership.
    pub rooms: Arc<Rooms>,
    /// Messaging.
    pub chat: Arc<Chat>,
    /// Moderation.
    pub moderation: Arc<Moderation>,
    /// Retention sweeps.
    pub retention: Arc<Retention>,
}

impl Services {
    /// Builds every service over `ports`.
    pub fn new(ports: &Ports, config: ServiceConfig) -> Self {
        let bot: Arc<dyn Bot> = Arc::new(
            CorpusBot::new(
                config.bot_name.clone(),
                config.bot_fallback.clone(),
                Arc::clone(&ports.corpus),
            )
            .with_greeting(config.bot_greeting.clone()),
        );
        Self::with_config(ports, config, bot)
    }

    /// Builds every service with a bot of your own and the other settings
    /// at their defaults.
    pub fn with_bot(
        ports: &Ports,
        rate_limit: Option<RateLimit>,
        retention: Option<Duration>,
        hasher: PasswordHasher,
        bot: Arc<dyn Bot>,
    ) -> Self {
        let config = ServiceConfig {
            rate_limit,
            retention,
            hasher,
            ..ServiceConfig::default()
        };
        Self::with_config(ports, config, bot)
    }

    /// Builds every service with a bot of your own; the bot settings of
    /// `config` are not used (the bot brings its own).
    pub fn with_config(ports: &Ports, config: ServiceConfig, bot: Arc<dyn Bot>) -> Self {
        let ServiceConfig {
            rate_limit,
            retention,
            presence_ttl,
            hasher,
            ..
        } = config;
        let p = ports.clone();
        Self {
            accounts: Arc::new(
                Accounts::new(
                    p.users.clone(),
                    p.sessions.clone(),
                    p.events.clone(),
                    p.audit.clone(),
                    p.clock.clone(),
                )
                .with_hasher(hasher),
            ),
            rooms: Arc::new(Rooms::new(
                p.rooms.clone(),
                p.log.clone(),
                p.audit.clone(),
                p.clock.clone(),
            )),
            chat: Arc::new(
                Chat::new(
                    p.rooms.clone(),
                    p.users.clone(),
                    p.log.clone(),
                    p.events.clone(),
                    p.presence.clone(),
                    bot,
                    p.clock.clone(),
                    rate_limit,
                )
                .with_presence_ttl(presence_ttl),
            ),
            moderation: Arc::new(Moderation::new(
                p.rooms.clone(),
                p.users.clone(),
                p.log.clone(),
                p.events.clone(),
                p.audit.clone(),
                p.clock.clone(),
            )),
            retention: Arc::new(Retention::new(p.log, p.clock, retention)),
        }
    }
}
