//! How messages and bus events are written into Redis: small JSON documents
//! of our own, because the domain types deliberately carry no serde.
//!
//! Reading a bus event parses every name again through the domain newtypes,
//! so a corrupt or foreign record becomes a clear error instead of an
//! invalid value. Stored messages, which only the append script writes and
//! history pages read fifty at a time, are taken as they are (see
//! `into_stored_message`); their JSON and kind are still checked.
//! Field names are short but stable: changing them breaks stored history
//! and mixed-version clusters, so add fields, never rename.

use std::sync::Arc;

use chat_domain::{
    AuditAction, AuditEntry, ClientId, Message, MessageKind, MessageText, Mute, PresenceChange,
    RoomEvent, RoomName, Seq, StoreError, StoreResult, Timestamp, UserEvent, Username,
};
use serde::{Deserialize, Serialize};

/// What a stored message holds besides its room (the key) and seq (assigned
/// by the append script, which writes the member as `{seq}|{body}`).
///
/// The retention script reads `from` and `cid` to drop the idempotency
/// entry with the message: keep those names.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MessageBody {
    from: String,
    text: String,
    ts: i64,
    cid: Option<String>,
    kind: Kind,
}

/// A message's kind as stored: `"chat"` or `"notice"`, read straight into
/// the domain's enum (no `String` per message on a history page).
#[derive(Debug, Clone, Copy)]
struct Kind(MessageKind);

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Kind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"a message kind, "chat" or "notice""#)
            }
            fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<Kind, E> {
                MessageKind::parse(raw)
                    .map(Kind)
                    .ok_or_else(|| E::custom(format!("message kind {raw:?}")))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl MessageBody {
    pub(crate) fn new(
        from: &Username,
        text: &MessageText,
        ts: Timestamp,
        cid: Option<&ClientId>,
        kind: MessageKind,
    ) -> Self {
        Self {
            from: from.as_str().to_owned(),
            text: text.as_str().to_owned(),
            ts: ts.as_millis(),
            cid: cid.map(|c| c.as_str().to_owned()),
            kind: Kind(kind),
        }
    }

    pub(crate) fn to_json(&self) -> StoreResult<String> {
        serde_json::to_string(self).map_err(StoreError::unexpected)
    }

    fn into_message(self, room: RoomName, seq: Seq) -> StoreResult<Message> {
        Ok(Message {
            room,
            seq,
            from: Username::parse(&self.from).map_err(corrupt)?,
            text: MessageText::parse(&self.text).map_err(corrupt)?,
            ts: Timestamp::from_millis(self.ts),
            cid: self
                .cid
                .as_deref()
                .map(ClientId::parse)
                .transpose()
                .map_err(corrupt)?,
            kind: self.kind.0,
        })
    }

    /// Like [`MessageBody::into_message`], for a member of a room's message
    /// set: the append script stored it from values that had already been
    /// parsed into domain types, so names and text are taken as they are
    /// (`from_trusted`, as SQLite's history rows are); re-parsing them was
    /// a fifth of decoding a history page. The kind is still checked (as
    /// it is read).
    fn into_stored_message(self, room: RoomName, seq: Seq) -> StoreResult<Message> {
        let kind = self.kind.0;
        Ok(Message {
            room,
            seq,
            from: Username::from_trusted(self.from),
            text: MessageText::from_trusted(self.text),
            ts: Timestamp::from_millis(self.ts),
            cid: self.cid.map(ClientId::from_trusted),
            kind,
        })
    }
}

/// Reads a member of `room:{name}:msgs` (`{seq}|{json}`).
pub(crate) fn decode_stored(room: &RoomName, member: &str) -> StoreResult<Message> {
    let (seq, json) = member
        .split_once('|')
        .ok_or_else(|| corrupt("stored message without a seq"))?;
    let seq = seq.parse::<u64>().map_err(corrupt)?;
    let body: MessageBody = serde_json::from_str(json).map_err(corrupt)?;
    body.into_stored_message(room.clone(), Seq::new(seq))
}

/// A room event on the bus.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum WireRoomEvent {
    Message {
        room: String,
        seq: u64,
        #[serde(flatten)]
        body: MessageBody,
    },
    Presence {
        user: String,
        join: bool,
    },
    Typing {
        user: String,
    },
    Removed {
        user: String,
    },
    Muted {
        user: String,
        /// `None`: unmuted; `Some(None)` is impossible in JSON, hence the struct.
        mute: Option<WireMute>,
    },
    SlowMode {
        /// `None`: lifted.
        seconds: Option<u64>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct WireMute {
    /// Ms since the epoch; `None`: until lifted.
    until: Option<i64>,
}

/// A user event on the bus.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum WireUserEvent {
    DirectRoom { room: String },
    SessionsEnded,
    PermissionsChanged,
}

pub(crate) fn encode_room_event(event: &RoomEvent) -> StoreResult<String> {
    let wire = match event {
        RoomEvent::Message(m) => WireRoomEvent::Message {
            room: m.room.as_str().to_owned(),
            seq: m.seq.get(),
            body: MessageBody::new(&m.from, &m.text, m.ts, m.cid.as_ref(), m.kind),
        },
        RoomEvent::Presence { user, change } => WireRoomEvent::Presence {
            user: user.as_str().to_owned(),
            join: *change == PresenceChange::Join,
        },
        RoomEvent::Typing { user } => WireRoomEvent::Typing {
            user: user.as_str().to_owned(),
        },
        RoomEvent::Removed { user } => WireRoomEvent::Removed {
            user: user.as_str().to_owned(),
        },
        RoomEvent::Muted { user, mute } => WireRoomEvent::Muted {
            user: user.as_str().to_owned(),
            mute: mute.map(|m| WireMute {
                until: m.until.map(Timestamp::as_millis),
            }),
        },
        RoomEvent::SlowMode { seconds } => WireRoomEvent::SlowMode { seconds: *seconds },
    };
    serde_json::to_string(&wire).map_err(StoreError::unexpected)
}

pub(crate) fn decode_room_event(json: &[u8]) -> StoreResult<Arc<RoomEvent>> {
    let wire: WireRoomEvent = serde_json::from_slice(json).map_err(corrupt)?;
    let user = |u: &str| Username::parse(u).map_err(corrupt);
    let event = match wire {
        WireRoomEvent::Message { room, seq, body } => {
            let room = RoomName::parse(&room).map_err(corrupt)?;
            RoomEvent::Message(body.into_message(room, Seq::new(seq))?)
        }
        WireRoomEvent::Presence { user: u, join } => RoomEvent::Presence {
            user: user(&u)?,
            change: if join {
                PresenceChange::Join
            } else {
                PresenceChange::Leave
            },
        },
        WireRoomEvent::Typing { user: u } => RoomEvent::Typing { user: user(&u)? },
        WireRoomEvent::Removed { user: u } => RoomEvent::Removed { user: user(&u)? },
        WireRoomEvent::Muted { user: u, mute } => RoomEvent::Muted {
            user: user(&u)?,
            mute: mute.map(|m| Mute {
                until: m.until.map(Timestamp::from_millis),
            }),
        },
        WireRoomEvent::SlowMode { seconds } => RoomEvent::SlowMode { seconds },
    };
    Ok(Arc::new(event))
}

pub(crate) fn encode_user_event(event: &UserEvent) -> StoreResult<String> {
    let wire = match event {
        UserEvent::DirectRoom { room } => WireUserEvent::DirectRoom {
            room: room.as_str().to_owned(),
        },
        UserEvent::SessionsEnded => WireUserEvent::SessionsEnded,
        UserEvent::PermissionsChanged => WireUserEvent::PermissionsChanged,
    };
    serde_json::to_string(&wire).map_err(StoreError::unexpected)
}

pub(crate) fn decode_user_event(json: &[u8]) -> StoreResult<Arc<UserEvent>> {
    let wire: WireUserEvent = serde_json::from_slice(json).map_err(corrupt)?;
    Ok(Arc::new(match wire {
        WireUserEvent::DirectRoom { room } => UserEvent::DirectRoom {
            room: RoomName::parse(&room).map_err(corrupt)?,
        },
        WireUserEvent::SessionsEnded => UserEvent::SessionsEnded,
        WireUserEvent::PermissionsChanged => UserEvent::PermissionsChanged,
    }))
}

/// An audit entry as stored in the `audit` list.
#[derive(Debug, Serialize, Deserialize)]
struct AuditBody {
    at: i64,
    actor: String,
    action: String,
    target: String,
    detail: String,
}

pub(crate) fn encode_audit(entry: &AuditEntry) -> StoreResult<String> {
    serde_json::to_string(&AuditBody {
        at: entry.at.as_millis(),
        actor: entry.actor.clone(),
        action: entry.action.as_str().to_owned(),
        target: entry.target.clone(),
        detail: entry.detail.clone(),
    })
    .map_err(StoreError::unexpected)
}

pub(crate) fn decode_audit(json: &str) -> StoreResult<AuditEntry> {
    let body: AuditBody = serde_json::from_str(json).map_err(corrupt)?;
    Ok(AuditEntry {
        at: Timestamp::from_millis(body.at),
        action: AuditAction::parse(&body.action)
            .ok_or_else(|| corrupt(format!("audit action {:?}", body.action)))?,
        actor: body.actor,
        target: body.target,
        detail: body.detail,
    })
}

/// A record that does not parse: a bug, or someone else's data under our prefix.
pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::unexpected(format!("corrupt record in Redis: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn message() -> Message {
        Message {
            room: RoomName::parse("闲聊").unwrap(),
            seq: Seq::new(42),
            from: Username::parse("小明").unwrap(),
            text: MessageText::parse("你好 | \"quoted\"\n🎉").unwrap(),
            ts: Timestamp::from_millis(1_795_428_000_123),
            cid: Some(ClientId::parse("c|1").unwrap()),
            kind: MessageKind::Chat,
        }
    }

    #[test]
    fn every_room_event_survives_the_wire() {
        let user = Username::parse("bob").unwrap();
        let events = [
            RoomEvent::Message(message()),
            RoomEvent::Presence {
                user: user.clone(),
                change: PresenceChange::Leave,
            },
            RoomEvent::Typing { user: user.clone() },
            RoomEvent::Removed { user: user.clone() },
            RoomEvent::Muted {
                user: user.clone(),
                mute: Some(Mute { until: None }),
            },
            RoomEvent::Muted {
                user: user.clone(),
                mute: Some(Mute {
                    until: Some(Timestamp::from_millis(5)),
                }),
            },
            RoomEvent::Muted { user, mute: None },
            RoomEvent::SlowMode { seconds: Some(30) },
            RoomEvent::SlowMode { seconds: None },
        ];
        for event in events {
            let json = encode_room_event(&event).unwrap();
            assert_eq!(*decode_room_event(json.as_bytes()).unwrap(), event);
        }
    }

    #[test]
    fn every_user_event_survives_the_wire() {
        for event in [
            UserEvent::DirectRoom {
                room: RoomName::parse("@alice+bob").unwrap(),
            },
            UserEvent::SessionsEnded,
            UserEvent::PermissionsChanged,
        ] {
            let json = encode_user_event(&event).unwrap();
            assert_eq!(*decode_user_event(json.as_bytes()).unwrap(), event);
        }
    }

    #[test]
    fn an_audit_entry_survives_storage() {
        for action in AuditAction::ALL {
            let entry = AuditEntry {
                at: Timestamp::from_millis(1_795_428_000_123),
                actor: "小明".to_owned(),
                action,
                target: "闲聊-1".to_owned(),
                detail: "in 闲聊-1, \"for\" | 5 min\n".to_owned(),
            };
            let json = encode_audit(&entry).unwrap();
            assert_eq!(decode_audit(&json).unwrap(), entry);
        }
        assert!(
            decode_audit(r#"{"at":1,"actor":"a","action":"nope","target":"b","detail":""}"#)
                .is_err()
        );
    }

    #[test]
    fn a_stored_member_splits_at_the_first_bar() {
        let m = message();
        let body = MessageBody::new(&m.from, &m.text, m.ts, m.cid.as_ref(), m.kind);
        let member = format!("42|{}", body.to_json().unwrap());
        assert_eq!(decode_stored(&m.room, &member).unwrap(), m);
        assert!(decode_stored(&m.room, "nonsense").is_err());
        assert!(decode_room_event(b"{\"t\":\"typing\",\"user\":\"bad name\"}").is_err());
    }

    #[test]
    fn a_stored_kind_is_checked_as_it_is_read() {
        let m = message();
        let body = MessageBody::new(&m.from, &m.text, m.ts, m.cid.as_ref(), MessageKind::Notice);
        let json = body.to_json().unwrap();
        assert!(json.contains(r#""kind":"notice""#), "{json}");
        let notice = decode_stored(&m.room, &format!("7|{json}")).unwrap();
        assert_eq!(notice.kind, MessageKind::Notice);
        let shout = json.replace(r#""kind":"notice""#, r#""kind":"shout""#);
        match decode_stored(&m.room, &format!("7|{shout}")) {
            Err(StoreError::Unexpected(e)) => assert!(e.to_string().contains("shout"), "{e}"),
            other => panic!("expected corrupt data, got {other:?}"),
        }
    }
}
