//! The contract of [`Presence`]: connections with expiry, a join reported
//! once per user and room, a leave reported once, by `remove` or `expire`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chat_domain::{ConnectionId, Presence, RoomName, Username};

use crate::fixtures::{T0, at, name, room_name};

fn conn(raw: &str) -> ConnectionId {
    ConnectionId(raw.to_owned())
}

fn users(raw: &[&str]) -> Vec<Username> {
    let mut v: Vec<Username> = raw.iter().map(|n| name(n)).collect();
    v.sort();
    v
}

/// A user's first connection in a room reports them coming online; more
/// connections and renewals do not; each room counts apart.
pub async fn the_first_connection_brings_a_user_online<S: Presence>(store: Arc<S>) {
    let (r, other) = (room_name("lobby"), room_name("other"));
    let (alice, bob) = (name("alice"), name("bob"));
    assert!(store.touch(&r, &alice, &conn("a1"), at(60)).await.unwrap());
    assert!(!store.touch(&r, &alice, &conn("a2"), at(60)).await.unwrap());
    assert!(!store.touch(&r, &alice, &conn("a1"), at(120)).await.unwrap());
    assert!(store.touch(&r, &bob, &conn("b1"), at(60)).await.unwrap());
    assert!(
        store
            .touch(&other, &alice, &conn("a1"), at(60))
            .await
            .unwrap()
    );
    assert_eq!(
        store.online(&r, T0).await.unwrap(),
        users(&["alice", "bob"])
    );
    assert_eq!(store.online(&other, T0).await.unwrap(), users(&["alice"]));
    assert_eq!(store.online(&room_name("empty"), T0).await.unwrap(), vec![]);
}

/// `online` lists users with a live connection, sorted, and leaves out those
/// whose connections have all expired (even before `expire` runs).
pub async fn online_lists_users_with_live_connections_sorted<S: Presence>(store: Arc<S>) {
    let r = room_name("闲聊-1");
    for (u, c, until) in [
        ("小明", "x1", 60),
        ("carol", "c1", 10),
        ("alice", "a1", 10),
        ("alice", "a2", 60),
        ("Bob", "b1", 60),
    ] {
        store
            .touch(&r, &name(u), &conn(c), at(until))
            .await
            .unwrap();
    }
    assert_eq!(
        store.online(&r, T0).await.unwrap(),
        users(&["小明", "carol", "alice", "Bob"])
    );
    assert_eq!(
        store.online(&r, at(30)).await.unwrap(),
        users(&["小明", "alice", "Bob"])
    );
    assert_eq!(store.online(&r, at(90)).await.unwrap(), vec![]);
    // A renewal keeps the user online past the old expiry.
    store
        .touch(&r, &name("carol"), &conn("c1"), at(200))
        .await
        .unwrap();
    assert_eq!(store.online(&r, at(90)).await.unwrap(), users(&["carol"]));
}

/// Removing a connection reports the user offline only when it was their
/// last live one in that room.
pub async fn removing_the_last_connection_takes_a_user_offline<S: Presence>(store: Arc<S>) {
    let (r, other) = (room_name("lobby"), room_name("other"));
    let alice = name("alice");
    store.touch(&r, &alice, &conn("a1"), at(60)).await.unwrap();
    store.touch(&r, &alice, &conn("a2"), at(60)).await.unwrap();
    store
        .touch(&other, &alice, &conn("a3"), at(60))
        .await
        .unwrap();
    assert!(!store.remove(&r, &alice, &conn("a1"), T0).await.unwrap());
    assert_eq!(store.online(&r, T0).await.unwrap(), users(&["alice"]));
    assert!(store.remove(&r, &alice, &conn("a2"), T0).await.unwrap());
    assert_eq!(store.online(&r, T0).await.unwrap(), vec![]);
    assert_eq!(store.online(&other, T0).await.unwrap(), users(&["alice"]));
    // Back again: that is a new arrival.
    assert!(store.touch(&r, &alice, &conn("a4"), at(60)).await.unwrap());
}

/// An expired connection does not keep a user online when their live one goes.
pub async fn removing_ignores_expired_connections<S: Presence>(store: Arc<S>) {
    let r = room_name("lobby");
    let alice = name("alice");
    store
        .touch(&r, &alice, &conn("stale"), at(10))
        .await
        .unwrap();
    store
        .touch(&r, &alice, &conn("live"), at(60))
        .await
        .unwrap();
    assert!(
        store
            .remove(&r, &alice, &conn("live"), at(30))
            .await
            .unwrap()
    );
    assert_eq!(store.online(&r, at(30)).await.unwrap(), vec![]);
    // The leave was reported by `remove`: `expire` must not report it again.
    assert_eq!(store.expire(at(30)).await.unwrap(), vec![]);
}

/// `expire` drops expired connections and reports each (room, user) that
/// went offline exactly once; users with a live connection stay.
pub async fn expiry_reports_each_user_that_went_offline_once<S: Presence>(store: Arc<S>) {
    let (r, s) = (room_name("lobby"), room_name("闲聊-1"));
    for (room, u, c, until) in [
        (&r, "alice", "a1", 10),
        (&r, "alice", "a2", 60),
        (&r, "bob", "b1", 10),
        (&r, "bob", "b2", 20),
        (&s, "alice", "a3", 10),
        (&s, "小明", "x1", 60),
    ] {
        store
            .touch(room, &name(u), &conn(c), at(until))
            .await
            .unwrap();
    }
    assert_eq!(store.expire(T0).await.unwrap(), vec![]);
    let mut gone = store.expire(at(30)).await.unwrap();
    gone.sort();
    let mut expected: Vec<(RoomName, Username)> =
        vec![(r.clone(), name("bob")), (s.clone(), name("alice"))];
    expected.sort();
    assert_eq!(gone, expected);
    assert_eq!(store.expire(at(30)).await.unwrap(), vec![]);
    assert_eq!(store.online(&r, at(30)).await.unwrap(), users(&["alice"]));
    assert_eq!(store.online(&s, at(30)).await.unwrap(), users(&["小明"]));
    // Alice's remaining connection in `lobby` is still hers to remove.
    assert!(
        store
            .remove(&r, &name("alice"), &conn("a2"), at(30))
            .await
            .unwrap()
    );
    // Bob was reported gone, so his return is a new arrival.
    assert!(
        store
            .touch(&r, &name("bob"), &conn("b3"), at(90))
            .await
            .unwrap()
    );
    let mut later = store.expire(at(100)).await.unwrap();
    later.sort();
    let mut expected = vec![(r.clone(), name("bob")), (s.clone(), name("小明"))];
    expected.sort();
    assert_eq!(later, expected);
}

/// Once `expire` has reported a user gone, removing their dead connection
/// (its socket closing late) reports nothing: one leave, not two. Removing
/// a connection that was never recorded reports nothing either.
pub async fn removing_after_expiry_reported_the_leave_takes_nobody_offline<S: Presence>(
    store: Arc<S>,
) {
    let r = room_name("闲聊-1");
    let alice = name("alice");
    store
        .touch(&r, &alice, &conn("dead"), at(10))
        .await
        .unwrap();
    assert_eq!(
        store.expire(at(20)).await.unwrap(),
        vec![(r.clone(), alice.clone())]
    );
    assert!(
        !store
            .remove(&r, &alice, &conn("dead"), at(25))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove(
                &room_name("elsewhere"),
                &name("bob"),
                &conn("never"),
                at(25)
            )
            .await
            .unwrap()
    );
    assert_eq!(store.expire(at(30)).await.unwrap(), vec![]);
    // Back again: a new arrival, whose own leave is reported once.
    assert!(store.touch(&r, &alice, &conn("new"), at(90)).await.unwrap());
    assert!(
        store
            .remove(&r, &alice, &conn("new"), at(40))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove(&r, &alice, &conn("new"), at(41))
            .await
            .unwrap()
    );
}
