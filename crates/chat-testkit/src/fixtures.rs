//! Small builders for test data: users with a cheap fake hash, rooms, messages
//! and fixed timestamps, so contract tests read as what they check.
#![allow(clippy::expect_used)]

use std::time::Duration;

use chat_domain::{
    ClientId, Description, MessageKind, MessageText, NewMessage, NewRoom, NewUser, PasswordHash,
    Room, RoomName, Timestamp, UserRepository, Username, Visibility,
};

/// A fixed "now" for tests: 2026-11-23T10:00:00Z.
pub const T0: Timestamp = Timestamp::from_millis(1_795_428_000_000);

/// `T0` plus `secs` seconds.
pub fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

/// A username; panics on an invalid one (a broken test, not a failed contract).
pub fn name(raw: &str) -> Username {
    Username::parse(raw).expect("fixture usernames are valid")
}

/// A room name; panics on an invalid one.
pub fn room_name(raw: &str) -> RoomName {
    RoomName::parse(raw).expect("fixture room names are valid")
}

/// Message text; panics on invalid text.
pub fn text(raw: &str) -> MessageText {
    MessageText::parse(raw).expect("fixture texts are valid")
}

/// A client id; panics on an invalid one.
pub fn cid(raw: &str) -> ClientId {
    ClientId::parse(raw).expect("fixture cids are valid")
}

/// A stand-in password hash: stores need not verify it, and real argon2
/// would make every test slow.
pub fn fake_hash(seed: &str) -> PasswordHash {
    PasswordHash::from_phc(format!("$fake$v=1${seed}"))
}

/// A user without permissions, created at [`T0`].
pub fn new_user(raw: &str) -> NewUser {
    NewUser {
        name: name(raw),
        password_hash: fake_hash(raw),
        permissions: Default::default(),
        created_at: T0,
    }
}

/// Creates each named user in `store`, panicking if any fails.
pub async fn create_users<S: UserRepository + ?Sized>(store: &S, names: &[&str]) {
    for n in names {
        store
            .create_user(new_user(n))
            .await
            .expect("fixture users can be created");
    }
}

/// A room made by `creator` at [`T0`].
pub fn room(raw: &str, creator: &str, visibility: Visibility) -> Room {
    Room {
        name: room_name(raw),
        description: Description::empty(),
        visibility,
        created_by: name(creator),
        created_at: T0,
    }
}

/// A public room whose only member is its creator.
pub fn new_room(raw: &str, creator: &str) -> NewRoom {
    NewRoom {
        room: room(raw, creator, Visibility::Public),
        members: vec![name(creator)],
    }
}

/// The direct room of `a` and `b` (a private room with both as members).
pub fn new_direct_room(a: &str, b: &str) -> NewRoom {
    let (a, b) = (name(a), name(b));
    let direct = RoomName::direct(&a, &b).expect("two different users");
    NewRoom {
        room: Room {
            name: direct,
            description: Description::empty(),
            visibility: Visibility::Private,
            created_by: a.clone(),
            created_at: T0,
        },
        members: vec![a, b],
    }
}

/// A chat message from `from` in `room`, stamped [`T0`], without a cid.
pub fn message(room: &str, from: &str, body: &str) -> NewMessage {
    NewMessage {
        room: room_name(room),
        from: name(from),
        text: text(body),
        ts: T0,
        cid: None,
        kind: MessageKind::Chat,
    }
}
