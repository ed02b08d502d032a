//! The WebSocket frames of CONTRACT §4: what clients send (parsed into
//! domain newtypes before anything else sees them) and what the server sends.

use axum::extract::ws::Utf8Bytes;
use chat_domain::{
    ClientId, ErrorCode, InvalidInput, Message, MessageText, PresenceChange, RoomEvent, RoomName,
    Seq, TYPING_TTL, Username,
};
use serde::{Deserialize, Serialize};

use crate::wire::{MessageOut, messages_out};

/// Default `history` page.
pub const DEFAULT_HISTORY: usize = 50;
/// Largest `history` page.
pub const MAX_HISTORY: usize = 200;

/// A client frame as it arrives; see [`ClientFrame::try_into_domain`].
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Open a room; `since` is the last seq the client saw.
    Join {
        /// Room name.
        room: String,
        /// Last seq seen.
        since: Option<u64>,
    },
    /// Stop following a room.
    Leave {
        /// Room name.
        room: String,
    },
    /// Say something.
    Send {
        /// Room name.
        room: String,
        /// Text.
        text: String,
        /// Idempotency key.
        cid: Option<String>,
    },
    /// Read older messages.
    History {
        /// Room name.
        room: String,
        /// Read messages before this seq (newest when absent).
        before: Option<u64>,
        /// How many (default 50, at most 200).
        limit: Option<usize>,
    },
    /// "I am typing."
    Typing {
        /// Room name.
        room: String,
    },
    /// A direct message.
    Dm {
        /// Recipient.
        to: String,
        /// Text.
        text: String,
        /// Idempotency key.
        cid: Option<String>,
    },
    /// Are you there?
    Ping {
        /// Echoed in the `pong`.
        cid: Option<String>,
    },
}

/// A client command, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// See [`ClientFrame::Join`].
    Join {
        /// Room.
        room: RoomName,
        /// Last seq seen.
        since: Option<Seq>,
    },
    /// See [`ClientFrame::Leave`].
    Leave {
        /// Room.
        room: RoomName,
    },
    /// See [`ClientFrame::Send`].
    Send {
        /// Room.
        room: RoomName,
        /// Text.
        text: MessageText,
        /// Idempotency key.
        cid: Option<ClientId>,
    },
    /// See [`ClientFrame::History`].
    History {
        /// Room.
        room: RoomName,
        /// Upper bound (exclusive).
        before: Option<Seq>,
        /// Page size, 1–200.
        limit: usize,
    },
    /// See [`ClientFrame::Typing`].
    Typing {
        /// Room.
        room: RoomName,
    },
    /// See [`ClientFrame::Dm`].
    Dm {
        /// Recipient.
        to: Username,
        /// Text.
        text: MessageText,
        /// Idempotency key.
        cid: Option<ClientId>,
    },
    /// See [`ClientFrame::Ping`].
    Ping {
        /// Echoed.
        cid: Option<ClientId>,
    },
}

fn cid(raw: Option<&str>) -> Result<Option<ClientId>, InvalidInput> {
    raw.map(ClientId::parse).transpose()
}

impl ClientFrame {
    /// Parses the fields into domain values.
    ///
    /// # Errors
    /// [`InvalidInput`] for the first field that is not acceptable.
    pub fn try_into_domain(self) -> Result<Command, InvalidInput> {
        Ok(match self {
            Self::Join { room, since } => Command::Join {
                room: RoomName::parse(&room)?,
                since: since.map(Seq::new),
            },
            Self::Leave { room } => Command::Leave {
                room: RoomName::parse(&room)?,
            },
            Self::Send { room, text, cid: c } => Command::Send {
                room: RoomName::parse(&room)?,
                text: MessageText::parse(&text)?,
                cid: cid(c.as_deref())?,
            },
            Self::History {
                room,
                before,
                limit,
            } => Command::History {
                room: RoomName::parse(&room)?,
                before: before.map(Seq::new),
                limit: match limit {
                    None => DEFAULT_HISTORY,
                    Some(0) => {
                        return Err(InvalidInput {
                            what: "limit",
                            why: "must be at least 1",
                        });
                    }
                    Some(n) => n.min(MAX_HISTORY),
                },
            },
            Self::Typing { room } => Command::Typing {
                room: RoomName::parse(&room)?,
            },
            Self::Dm { to, text, cid: c } => Command::Dm {
                to: Username::parse(&to)?,
                text: MessageText::parse(&text)?,
                cid: cid(c.as_deref())?,
            },
            Self::Ping { cid: c } => Command::Ping {
                cid: cid(c.as_deref())?,
            },
        })
    }
}

/// Why a frame was refused, with whatever of `cid` and `room` could be read
/// from it so the client can match the error to its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// What is wrong.
    pub message: String,
    /// The frame's `cid`, if it had a readable one.
    pub cid: Option<String>,
    /// The frame's `room`, if it had a readable one.
    pub room: Option<String>,
}

/// The `cid` and `room` of a frame refused before it was read (by the
/// per-socket flood guard), so the client can tell which request it was.
/// A light parse: every other field is skipped without being built, and a
/// frame that is not an object with string `cid`/`room` gives nothing.
pub fn ids(text: &str) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct Ids<'a> {
        #[serde(borrow, default)]
        cid: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        room: Option<std::borrow::Cow<'a, str>>,
    }
    // Echo only something short, as for any refused frame.
    let short = |s: Option<std::borrow::Cow<'_, str>>| {
        s.filter(|s| s.len() <= 256)
            .map(std::borrow::Cow::into_owned)
    };
    match serde_json::from_str::<Ids<'_>>(text) {
        Ok(ids) => (short(ids.cid), short(ids.room)),
        Err(_) => (None, None),
    }
}

/// Parses one text frame: JSON, then the frame's shape, then its values.
///
/// # Errors
/// [`Refused`] for malformed JSON, an unknown `type`, missing or mistyped
/// fields, or values the domain does not accept.
pub fn parse(text: &str) -> Result<Command, Refused> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Refused {
        message: format!("malformed JSON: {e}"),
        cid: None,
        room: None,
    })?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            // Echo only something short: the error must not amplify a big frame.
            .filter(|s| s.len() <= 256)
            .map(str::to_owned)
    };
    let (cid, room) = (field("cid"), field("room"));
    if !value.is_object() {
        return Err(Refused {
            message: "a frame is a JSON object with a \"type\"".to_owned(),
            cid,
            room,
        });
    }
    let frame = ClientFrame::deserialize(&value).map_err(|e| Refused {
        message: e.to_string(),
        cid: cid.clone(),
        room: room.clone(),
    })?;
    frame.try_into_domain().map_err(|e| Refused {
        message: e.to_string(),
        cid,
        room,
    })
}

/// The user in a `welcome`.
#[derive(Debug, Serialize)]
pub struct WelcomeUser<'a> {
    /// Username, or `"guest"`.
    pub name: &'a str,
    /// Whether a guest.
    pub guest: bool,
}

/// A server frame other than `message` (which is [`MessageOut`]).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// The first frame of every connection.
    Welcome {
        /// Who the connection is.
        user: WelcomeUser<'a>,
    },
    /// The answer to `join`.
    Joined {
        /// Room.
        room: &'a str,
        /// Members, sorted.
        members: Vec<&'a str>,
        /// Who is online, sorted.
        online: Vec<&'a str>,
        /// The snapshot.
        messages: Vec<MessageOut<'a>>,
        /// More beyond the snapshot.
        more: bool,
        /// Messages right after `since` were deleted by retention.
        expired: bool,
        /// Whether the caller is a member (guests only watch).
        member: bool,
        /// Slow mode: members who do not moderate the room may send one
        /// message per this many seconds; `null` when off.
        slow_mode: Option<u64>,
    },
    /// The answer to `leave`.
    Left {
        /// Room.
        room: &'a str,
    },
    /// A stored message's acknowledgement.
    Ack {
        /// The client's key.
        #[serde(skip_serializing_if = "Option::is_none")]
        cid: Option<&'a str>,
        /// Room.
        room: &'a str,
        /// The message's seq.
        seq: u64,
    },
    /// The answer to `history`.
    History {
        /// Room.
        room: &'a str,
        /// Messages, oldest first.
        messages: Vec<MessageOut<'a>>,
        /// Older ones remain.
        more: bool,
    },
    /// Someone came online in a room or left it.
    Presence {
        /// Room.
        room: &'a str,
        /// Who.
        user: &'a str,
        /// `join` or `leave`.
        event: &'static str,
    },
    /// Someone is typing, for the next `expires_in` seconds unless repeated.
    Typing {
        /// Room.
        room: &'a str,
        /// Who.
        user: &'a str,
        /// Seconds the indicator lasts ([`TYPING_TTL`]).
        expires_in: u64,
    },
    /// A member was removed from the room.
    Removed {
        /// Room.
        room: &'a str,
        /// Who.
        user: &'a str,
    },
    /// A member was muted.
    Muted {
        /// Room.
        room: &'a str,
        /// Who.
        user: &'a str,
        /// When it ends; `null`: until lifted.
        until: Option<String>,
    },
    /// A mute was lifted.
    Unmuted {
        /// Room.
        room: &'a str,
        /// Who.
        user: &'a str,
    },
    /// Slow mode was set, changed or lifted.
    SlowMode {
        /// Room.
        room: &'a str,
        /// One message per this many seconds; `null`: off.
        seconds: Option<u64>,
    },
    /// A direct room with the user now exists.
    DmOpened {
        /// The direct room.
        room: &'a str,
        /// The other person.
        with: &'a str,
    },
    /// Something the client asked for failed.
    Error {
        /// Wire code (CONTRACT §3).
        code: &'static str,
        /// What went wrong.
        message: &'a str,
        /// The request's `cid`.
        #[serde(skip_serializing_if = "Option::is_none")]
        cid: Option<&'a str>,
        /// The request's room.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        /// Seconds to wait before retrying.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<f64>,
    },
    /// The answer to `ping`.
    Pong {
        /// The ping's `cid`.
        #[serde(skip_serializing_if = "Option::is_none")]
        cid: Option<&'a str>,
    },
}

/// Serialises a frame to a text payload.
pub fn encode<T: Serialize>(frame: &T) -> Utf8Bytes {
    match serde_json::to_string(frame) {
        Ok(s) => s.into(),
        Err(e) => {
            // Only non-string map keys can fail, and no frame has a map.
            tracing::error!(error = %e, "could not encode a frame");
            Utf8Bytes::from_static(
                r#"{"type":"error","code":"internal","message":"the server could not encode a frame"}"#,
            )
        }
    }
}

/// An error frame.
pub fn error_frame(
    code: ErrorCode,
    message: &str,
    cid: Option<&str>,
    room: Option<&str>,
    retry_after: Option<std::time::Duration>,
) -> Utf8Bytes {
    encode(&ServerFrame::Error {
        code: code.as_str(),
        message,
        cid,
        room,
        // Milliseconds are enough; a long float helps nobody.
        retry_after: retry_after.map(|d| (d.as_secs_f64() * 1000.0).ceil() / 1000.0),
    })
}

/// What a relayed room event is, so each connection can decide what to do
/// with it without parsing the JSON again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum About {
    /// A stored message with this seq.
    Message(Seq),
    /// Someone typing (not echoed to them).
    Typing(Username),
    /// Someone removed (their connections leave the room).
    Removed(Username),
    /// Anything else, forwarded as is.
    Other,
}

/// A room event, serialised once for every local connection.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// What it is.
    pub about: About,
    /// The frame's JSON text (cheap to clone).
    pub text: Utf8Bytes,
}

/// Serialises a room event.
pub fn relay_event(room: &RoomName, event: &RoomEvent) -> Relayed {
    let r = room.as_str();
    match event {
        RoomEvent::Message(m) => Relayed {
            about: About::Message(m.seq),
            text: message_frame(m),
        },
        RoomEvent::Presence { user, change } => Relayed {
            about: About::Other,
            text: encode(&ServerFrame::Presence {
                room: r,
                user: user.as_str(),
                event: match change {
                    PresenceChange::Join => "join",
                    PresenceChange::Leave => "leave",
                },
            }),
        },
        RoomEvent::Typing { user } => Relayed {
            about: About::Typing(user.clone()),
            text: encode(&ServerFrame::Typing {
                room: r,
                user: user.as_str(),
                expires_in: TYPING_TTL.as_secs(),
            }),
        },
        RoomEvent::Removed { user } => Relayed {
            about: About::Removed(user.clone()),
            text: encode(&ServerFrame::Removed {
                room: r,
                user: user.as_str(),
            }),
        },
        RoomEvent::Muted { user, mute } => Relayed {
            about: About::Other,
            text: match mute {
                Some(m) => encode(&ServerFrame::Muted {
                    room: r,
                    user: user.as_str(),
                    until: m.until.map(|t| t.to_rfc3339()),
                }),
                None => encode(&ServerFrame::Unmuted {
                    room: r,
                    user: user.as_str(),
                }),
            },
        },
        RoomEvent::SlowMode { seconds } => Relayed {
            about: About::Other,
            text: encode(&ServerFrame::SlowMode {
                room: r,
                seconds: *seconds,
            }),
        },
    }
}

/// A `message` frame.
pub fn message_frame(m: &Message) -> Utf8Bytes {
    encode(&MessageOut::from(m))
}

/// A `joined` or `history` message list.
pub fn message_list(messages: &[Message]) -> Vec<MessageOut<'_>> {
    messages_out(messages)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_frame_refused_unread_still_gives_its_cid_and_room() {
        assert_eq!(
            ids(r#"{"type":"send","room":"闲聊","text":"hi","cid":"c-1","extra":[1,{"a":2}]}"#),
            (Some("c-1".to_owned()), Some("闲聊".to_owned()))
        );
        assert_eq!(
            ids(r#"{"type":"ping","cid":"p\"1"}"#),
            (Some("p\"1".to_owned()), None)
        );
        assert_eq!(ids(r#"{"type":"ping","cid":7}"#), (None, None));
        assert_eq!(ids("not json"), (None, None));
        assert_eq!(
            ids(&format!(r#"{{"cid":"{}"}}"#, "x".repeat(300))),
            (None, None)
        );
    }

    #[test]
    fn parses_every_client_frame() {
        assert_eq!(
            parse(r#"{"type":"join","room":"闲聊","since":17}"#).unwrap(),
            Command::Join {
                room: RoomName::parse("闲聊").unwrap(),
                since: Some(Seq::new(17))
            }
        );
        assert!(matches!(
            parse(r#"{"type":"send","room":"闲聊","text":"你好","cid":"c-1"}"#).unwrap(),
            Command::Send { cid: Some(_), .. }
        ));
        assert!(matches!(
            parse(r#"{"type":"history","room":"a","before":120,"limit":500}"#).unwrap(),
            Command::History { limit: 200, .. }
        ));
        assert!(matches!(
            parse(r#"{"type":"dm","to":"bob","text":"hi"}"#).unwrap(),
            Command::Dm { cid: None, .. }
        ));
        assert!(matches!(
            parse(r#"{"type":"ping","cid":"p-1"}"#).unwrap(),
            Command::Ping { cid: Some(_) }
        ));
        assert!(matches!(
            parse(r#"{"type":"leave","room":"a","extra":1}"#).unwrap(),
            Command::Leave { .. }
        ));
    }

    #[test]
    fn bad_frames_are_refused_with_their_cid_and_room() {
        for bad in [
            "not json",
            "[1,2]",
            r#"{"room":"a"}"#,
            r#"{"type":"fly","room":"a"}"#,
            r#"{"type":"send","room":"a"}"#,
            r#"{"type":"send","room":"a b","text":"x"}"#,
            r#"{"type":"join","room":"a","since":-1}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let long = "字".repeat(4001);
        let e = parse(&format!(
            r#"{{"type":"send","room":"闲聊","text":"{long}","cid":"c-9"}}"#
        ))
        .unwrap_err();
        assert_eq!(e.cid.as_deref(), Some("c-9"));
        assert_eq!(e.room.as_deref(), Some("闲聊"));
    }

    #[test]
    fn typing_says_how_long_it_lasts_and_slow_mode_says_the_interval() {
        let room = RoomName::parse("闲聊").unwrap();
        let typing = relay_event(
            &room,
            &RoomEvent::Typing {
                user: Username::parse("小明").unwrap(),
            },
        );
        let v: serde_json::Value = serde_json::from_str(typing.text.as_str()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "typing", "room": "闲聊", "user": "小明", "expires_in": 5})
        );
        for (seconds, wire) in [
            (Some(30), serde_json::json!(30)),
            (None, serde_json::Value::Null),
        ] {
            let f = relay_event(&room, &RoomEvent::SlowMode { seconds });
            assert_eq!(f.about, About::Other);
            let v: serde_json::Value = serde_json::from_str(f.text.as_str()).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"type": "slow_mode", "room": "闲聊", "seconds": wire})
            );
        }
    }

    #[test]
    fn error_frames_carry_their_context() {
        let f = error_frame(
            ErrorCode::RateLimited,
            "slow down",
            Some("c-1"),
            Some("r"),
            Some(std::time::Duration::from_millis(1500)),
        );
        let v: serde_json::Value = serde_json::from_str(f.as_str()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "rate_limited");
        assert_eq!(v["cid"], "c-1");
        assert_eq!(v["retry_after"], 1.5);
    }
}
