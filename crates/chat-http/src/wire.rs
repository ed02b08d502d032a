//! Wire DTOs shared by the JSON API and the WebSocket: what goes out is built
//! from domain values; what comes in converts into domain newtypes with
//! `try_into_domain()`, so nothing unparsed reaches a service.

use chat_domain::{
    Actor, BotReply, ClientId, Description, DirectSummary, InvalidInput, Message, MessageText,
    Rfc3339, RoomName, RoomSummary, Visibility,
};
use serde::{Deserialize, Serialize};

/// The name `/api/me` and `welcome` give a guest.
pub const GUEST_NAME: &str = "guest";

/// The author shown on the bot's private replies.
pub const BOT_AUTHOR: &str = "bot";

/// A stored message, as on the WebSocket (`"type":"message"`) and in the API.
#[derive(Debug, Serialize)]
pub struct MessageOut<'a> {
    /// Always `"message"`, so the object is the same everywhere.
    #[serde(rename = "type")]
    pub kind_tag: &'static str,
    /// The room.
    pub room: &'a str,
    /// Position in the room.
    pub seq: u64,
    /// Author.
    pub from: &'a str,
    /// Text.
    pub text: &'a str,
    /// Server time, RFC 3339 UTC with milliseconds.
    #[serde(serialize_with = "as_str")]
    pub ts: Rfc3339,
    /// `"chat"` or `"notice"`.
    pub kind: &'static str,
    /// The sender's idempotency key, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<&'a str>,
}

/// Serialises a timestamp formatted on the stack as the string it is.
fn as_str<S: serde::Serializer>(ts: &Rfc3339, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(ts.as_str())
}

impl<'a> From<&'a Message> for MessageOut<'a> {
    fn from(m: &'a Message) -> Self {
        Self {
            kind_tag: "message",
            room: m.room.as_str(),
            seq: m.seq.get(),
            from: m.from.as_str(),
            text: m.text.as_str(),
            ts: m.ts.rfc3339(),
            kind: m.kind.as_str(),
            cid: m.cid.as_ref().map(ClientId::as_str),
        }
    }
}

/// Messages as a list.
pub fn messages_out(messages: &[Message]) -> Vec<MessageOut<'_>> {
    messages.iter().map(MessageOut::from).collect()
}

/// The bot's private answer to a guest: a `message` without a seq.
#[derive(Debug, Serialize)]
pub struct BotReplyOut<'a> {
    /// Always `"message"`.
    #[serde(rename = "type")]
    pub kind_tag: &'static str,
    /// The room the guest wrote in.
    pub room: &'a str,
    /// Always `"bot"`.
    pub from: &'static str,
    /// The bot's display name.
    pub bot_name: &'a str,
    /// The answer.
    pub text: &'a str,
    /// When it answered.
    pub ts: String,
    /// Always true: nobody else sees it and it is not stored.
    pub private: bool,
}

impl<'a> From<&'a BotReply> for BotReplyOut<'a> {
    fn from(r: &'a BotReply) -> Self {
        Self {
            kind_tag: "message",
            room: r.room.as_str(),
            from: BOT_AUTHOR,
            bot_name: &r.from,
            text: &r.text,
            ts: r.ts.to_rfc3339(),
            private: true,
        }
    }
}

/// A room as listed.
#[derive(Debug, Serialize)]
pub struct RoomOut<'a> {
    /// Name.
    pub name: &'a str,
    /// Description.
    pub description: &'a str,
    /// `"public"` or `"private"`.
    pub visibility: &'static str,
    /// Member count.
    pub members: u64,
    /// Creator.
    pub created_by: &'a str,
    /// Newest seq.
    pub last_seq: u64,
}

impl<'a> From<&'a RoomSummary> for RoomOut<'a> {
    fn from(s: &'a RoomSummary) -> Self {
        Self {
            name: s.room.name.as_str(),
            description: s.room.description.as_str(),
            visibility: s.room.visibility.as_str(),
            members: s.members,
            created_by: s.room.created_by.as_str(),
            last_seq: s.last_seq.get(),
        }
    }
}

/// One of my direct conversations.
#[derive(Debug, Serialize)]
pub struct DirectOut<'a> {
    /// The direct room's name (`@alice+bob`).
    pub name: &'a str,
    /// The other person.
    pub with: &'a str,
    /// Newest seq.
    pub last_seq: u64,
}

impl<'a> From<&'a DirectSummary> for DirectOut<'a> {
    fn from(d: &'a DirectSummary) -> Self {
        Self {
            name: d.room.as_str(),
            with: d.with.as_str(),
            last_seq: d.last_seq.get(),
        }
    }
}

/// Who the caller is, as `/api/me` and the login answer show it.
#[derive(Debug, Serialize)]
pub struct UserOut<'a> {
    /// The username, or `"guest"`.
    pub name: &'a str,
    /// Whether the caller is a guest.
    pub guest: bool,
    /// Granted permissions, sorted.
    pub permissions: Vec<&'a str>,
}

impl<'a> From<&'a Actor> for UserOut<'a> {
    fn from(actor: &'a Actor) -> Self {
        match actor.user() {
            Some(u) => Self {
                name: u.name.as_str(),
                guest: false,
                permissions: u.permissions.iter().map(|p| p.as_str()).collect(),
            },
            None => Self {
                name: GUEST_NAME,
                guest: true,
                permissions: Vec::new(),
            },
        }
    }
}

/// `POST /api/session`.
#[derive(Debug, Deserialize)]
pub struct LoginIn {
    /// Username as typed (checked by the domain, which answers wrong names
    /// and wrong passwords alike).
    pub username: String,
    /// Password as typed.
    pub password: String,
}

/// `POST /api/rooms`.
#[derive(Debug, Deserialize)]
pub struct CreateRoomIn {
    /// Room name.
    pub name: String,
    /// Description; absent means empty.
    #[serde(default)]
    pub description: String,
    /// `"public"` (default) or `"private"`.
    pub visibility: Option<String>,
}

/// A room to create, parsed.
#[derive(Debug)]
pub struct NewRoomRequest {
    /// Name.
    pub name: RoomName,
    /// Description.
    pub description: Description,
    /// Visibility.
    pub visibility: Visibility,
}

impl CreateRoomIn {
    /// Parses into domain values.
    ///
    /// # Errors
    /// [`InvalidInput`] for a bad name, description or visibility.
    pub fn try_into_domain(self) -> Result<NewRoomRequest, InvalidInput> {
        let visibility = match self.visibility.as_deref() {
            None => Visibility::Public,
            Some(v) => Visibility::parse(v).ok_or(InvalidInput {
                what: "visibility",
                why: "must be \"public\" or \"private\"",
            })?,
        };
        Ok(NewRoomRequest {
            name: RoomName::parse(&self.name)?,
            description: Description::parse(&self.description)?,
            visibility,
        })
    }
}

/// `POST /api/rooms/{room}/messages`.
#[derive(Debug, Deserialize)]
pub struct SendIn {
    /// Text.
    pub text: String,
    /// Optional idempotency key.
    pub cid: Option<String>,
}

impl SendIn {
    /// Parses into domain values.
    ///
    /// # Errors
    /// [`InvalidInput`] for bad text or cid.
    pub fn try_into_domain(self) -> Result<(MessageText, Option<ClientId>), InvalidInput> {
        Ok((
            MessageText::parse(&self.text)?,
            self.cid.as_deref().map(ClientId::parse).transpose()?,
        ))
    }
}

/// `PUT /api/rooms/{room}/mutes/{name}`.
#[derive(Debug, Deserialize, Default)]
pub struct MuteIn {
    /// How long, in seconds; absent: until lifted.
    pub seconds: Option<u64>,
}

/// The longest mute with a duration: ten years. Longer is "until lifted".
pub const MAX_MUTE_SECONDS: u64 = 10 * 365 * 24 * 3600;

impl MuteIn {
    /// Parses into a duration (`None`: until lifted).
    ///
    /// # Errors
    /// [`InvalidInput`] for zero or more than ten years.
    pub fn try_into_domain(self) -> Result<Option<std::time::Duration>, InvalidInput> {
        match self.seconds {
            None => Ok(None),
            Some(0) => Err(InvalidInput {
                what: "seconds",
                why: "must be at least 1; leave it out to mute until lifted",
            }),
            Some(s) if s > MAX_MUTE_SECONDS => Err(InvalidInput {
                what: "seconds",
                why: "must be at most ten years; leave it out to mute until lifted",
            }),
            Some(s) => Ok(Some(std::time::Duration::from_secs(s))),
        }
    }
}

/// `PUT /api/rooms/{room}/slow_mode`.
#[derive(Debug, Deserialize)]
pub struct SlowModeIn {
    /// One message per this many seconds per member (1 to 3600).
    pub seconds: u64,
}

impl SlowModeIn {
    /// Parses into the slow-mode interval.
    ///
    /// # Errors
    /// [`InvalidInput`] for 0 or more than an hour.
    pub fn try_into_domain(self) -> Result<std::time::Duration, InvalidInput> {
        let max = chat_domain::MAX_SLOW_MODE.as_secs();
        if (1..=max).contains(&self.seconds) {
            Ok(std::time::Duration::from_secs(self.seconds))
        } else {
            Err(InvalidInput {
                what: "seconds",
                why: "must be from 1 to 3600; DELETE lifts slow mode",
            })
        }
    }
}
