//! The key schema: every Redis key and pub/sub channel hihichat uses, in one place.
//!
//! Every key starts with the configured prefix (`hihichat:` by default) so
//! several installations, or several tests, can share one Redis. Names are
//! joined with `:` and `|`, which no username, room name or permission name
//! may contain, so no two different names ever produce the same key.
//!
//! Some Lua scripts build keys of their own from the prefix (to follow an
//! index set they read); they use exactly the shapes below, and a comment in
//! the script names the function here each string mirrors.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `users` | set | every username (the index: no `KEYS` anywhere) |
//! | `user:{name}` | hash | `at` (created, ms), `perms` (space-separated), `pw` (PHC hash) |
//! | `user:{name}:rooms` / `:banned` / `:muted` | set | rooms the user is a member of / barred from / muted in |
//! | `user:{name}:sessions` | set | the user's session ids |
//! | `perms` | set | permissions defined beyond the built-ins |
//! | `session:{id}` | hash | `user`, `at`, `exp`; expires with the session |
//! | `rooms` | set | ordinary (non-direct) room names |
//! | `room:{name}` | hash | `desc`, `vis`, `by`, `at`, `slow` (slow-mode seconds, absent when off) |
//! | `room:{name}:members` / `:banned` | set | usernames |
//! | `room:{name}:mutes` | hash | username → mute end in ms, or `inf` |
//! | `room:{name}:seq` | string | the last seq ever assigned (never goes down) |
//! | `room:{name}:msgs` | sorted set | `{seq}\|{json}` scored by seq |
//! | `room:{name}:cids` | hash | `{sender}\|{cid}` → seq |
//! | `msgs:ts` | sorted set | `{room}\|{seq}` scored by timestamp, for retention |
//! | `pres:{room}` | sorted set | username scored by their latest presence expiry |
//! | `pres:{room}:{user}` | sorted set | connection id scored by its expiry |
//! | `presence:due` | sorted set | `{room}\|{user}` scored by when they go offline |
//! | `corpus` / `corpus:set` | list / set | the bot's pairs in order / for dedup |
//! | `audit` | list | audit entries as JSON, newest at the head, capped at `AUDIT_KEPT` |
//! | channel `ev:r:{room}` / `ev:u:{user}` | pub/sub | room and user events |

use chat_domain::{RoomName, SessionId, Username};

/// Builds keys under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix itself, for scripts that build keys from index entries.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{}", self.prefix, rest)
    }

    pub(crate) fn users(&self) -> String {
        self.key(format_args!("users"))
    }
    pub(crate) fn user(&self, name: &Username) -> String {
        self.key(format_args!("user:{name}"))
    }
    pub(crate) fn user_rooms(&self, name: &Username) -> String {
        self.key(format_args!("user:{name}:rooms"))
    }
    pub(crate) fn user_banned(&self, name: &Username) -> String {
        self.key(format_args!("user:{name}:banned"))
    }
    pub(crate) fn user_muted(&self, name: &Username) -> String {
        self.key(format_args!("user:{name}:muted"))
    }
    pub(crate) fn user_sessions(&self, name: &Username) -> String {
        self.key(format_args!("user:{name}:sessions"))
    }
    pub(crate) fn perms(&self) -> String {
        self.key(format_args!("perms"))
    }
    pub(crate) fn session(&self, id: &SessionId) -> String {
        self.key(format_args!("session:{}", id.as_str()))
    }
    pub(crate) fn rooms(&self) -> String {
        self.key(format_args!("rooms"))
    }
    pub(crate) fn room(&self, room: &RoomName) -> String {
        self.key(format_args!("room:{room}"))
    }
    pub(crate) fn room_members(&self, room: &RoomName) -> String {
        self.key(format_args!("room:{room}:members"))
    }
    pub(crate) fn room_banned(&self, room: &RoomName) -> String {
        self.key(format_args!("room:{room}:banned"))
    }
    pub(crate) fn room_mutes(&self, room: &RoomName) -> String {
        self.key(format_args!("room:{room}:mutes"))
    }
    pub(crate) fn room_seq(&self, room: &RoomName) -> String {
        self.key(format_args!("room:{room}:seq"))
    }
    pub(crate) fn room_msgs(&self, room: &RoomName) -> String {
        self.key(format_args!("room:{room}:msgs"))
    }
    pub(crate) fn room_cids(&self, room: &RoomName) -> String {
        self.key(format_args!("room:{room}:cids"))
    }
    pub(crate) fn msgs_by_ts(&self) -> String {
        self.key(format_args!("msgs:ts"))
    }
    pub(crate) fn presence_room(&self, room: &RoomName) -> String {
        self.key(format_args!("pres:{room}"))
    }
    pub(crate) fn presence_conns(&self, room: &RoomName, user: &Username) -> String {
        self.key(format_args!("pres:{room}:{user}"))
    }
    pub(crate) fn presence_due(&self) -> String {
        self.key(format_args!("presence:due"))
    }
    pub(crate) fn corpus(&self) -> String {
        self.key(format_args!("corpus"))
    }
    pub(crate) fn corpus_set(&self) -> String {
        self.key(format_args!("corpus:set"))
    }
    pub(crate) fn audit(&self) -> String {
        self.key(format_args!("audit"))
    }
    pub(crate) fn room_channel(&self, room: &RoomName) -> String {
        self.key(format_args!("ev:r:{room}"))
    }
    pub(crate) fn user_channel(&self, user: &Username) -> String {
        self.key(format_args!("ev:u:{user}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn unicode_names_make_distinct_prefixed_keys() {
        let keys = Keys::new("t:");
        let room = RoomName::parse("闲聊-1").unwrap();
        let user = Username::parse("小明").unwrap();
        assert_eq!(keys.room_members(&room), "t:room:闲聊-1:members");
        assert_eq!(keys.presence_conns(&room, &user), "t:pres:闲聊-1:小明");
        // A room named "due" must not collide with the presence index.
        let due = RoomName::parse("due").unwrap();
        assert_ne!(keys.presence_room(&due), keys.presence_due());
    }
}
