//! The contract of [`RoomEvents`]: per-topic fan-out in publish order, user
//! topics apart from room topics, every event shape carried intact, and
//! `Delivery::Lagged` for a reader that fell behind.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{
    Delivery, EventStream, Message, MessageKind, Mute, PresenceChange, RoomEvent, RoomEvents,
    RoomName, Seq, UserEvent,
};
use futures::StreamExt;

use crate::fixtures::{T0, at, cid, name, room_name, text};

/// How many events the lag test publishes without reading: more than any
/// adapter may buffer for one subscriber (the memory bus holds 1,024).
pub const LAG_BURST: u64 = 5000;

/// How long a test waits for an event that must come before calling the bus
/// broken. This guards against hangs; no test asserts on speed.
const PATIENCE: Duration = Duration::from_secs(20);

async fn next<E>(stream: &mut EventStream<E>) -> Delivery<E> {
    match tokio::time::timeout(PATIENCE, stream.next()).await {
        Ok(Some(d)) => d,
        Ok(None) => panic!("the subscription ended"),
        Err(_) => panic!("no event within {PATIENCE:?}"),
    }
}

async fn next_event<E: std::fmt::Debug>(stream: &mut EventStream<E>) -> Arc<E> {
    match next(stream).await {
        Delivery::Event(e) => e,
        Delivery::Lagged => panic!("unexpected lag"),
    }
}

fn msg(room: &RoomName, seq: u64, body: &str) -> RoomEvent {
    RoomEvent::Message(Message {
        room: room.clone(),
        seq: Seq::new(seq),
        from: name("alice"),
        text: text(body),
        ts: at(seq),
        cid: None,
        kind: MessageKind::Chat,
    })
}

fn typing(user: &str) -> RoomEvent {
    RoomEvent::Typing { user: name(user) }
}

/// A subscriber gets its room's events, all of them, in publish order, and
/// nothing published to other rooms.
pub async fn a_subscriber_gets_its_rooms_events_in_order<S: RoomEvents>(bus: Arc<S>) {
    let (a, b) = (room_name("a"), room_name("b"));
    let mut sub_a = bus.subscribe(&a).await.unwrap();
    let mut sub_b = bus.subscribe(&b).await.unwrap();
    let for_a = [
        msg(&a, 1, "one"),
        typing("bob"),
        msg(&a, 2, "two"),
        msg(&a, 3, "three"),
    ];
    bus.publish(&a, for_a[0].clone()).await.unwrap();
    bus.publish(&b, msg(&b, 1, "other room")).await.unwrap();
    bus.publish(&a, for_a[1].clone()).await.unwrap();
    bus.publish(&a, for_a[2].clone()).await.unwrap();
    bus.publish(&b, typing("carol")).await.unwrap();
    bus.publish(&a, for_a[3].clone()).await.unwrap();
    for expected in &for_a {
        assert_eq!(&*next_event(&mut sub_a).await, expected);
    }
    assert_eq!(*next_event(&mut sub_b).await, msg(&b, 1, "other room"));
    assert_eq!(*next_event(&mut sub_b).await, typing("carol"));
    // Whatever comes next in `a` is the next thing published to `a`.
    bus.publish(&b, typing("dave")).await.unwrap();
    bus.publish(&a, typing("erin")).await.unwrap();
    assert_eq!(*next_event(&mut sub_a).await, typing("erin"));
    assert_eq!(*next_event(&mut sub_b).await, typing("dave"));
}

/// Every subscriber of a room gets every event; one leaving does not
/// disturb the others.
pub async fn every_subscriber_of_a_room_gets_every_event<S: RoomEvents>(bus: Arc<S>) {
    let r = room_name("lobby");
    let mut first = bus.subscribe(&r).await.unwrap();
    let mut second = bus.subscribe(&r).await.unwrap();
    let third = bus.subscribe(&r).await.unwrap();
    for i in 1..=20 {
        bus.publish(&r, msg(&r, i, "fan out")).await.unwrap();
    }
    drop(third);
    bus.publish(&r, typing("bob")).await.unwrap();
    for sub in [&mut first, &mut second] {
        for i in 1..=20 {
            assert_eq!(*next_event(sub).await, msg(&r, i, "fan out"));
        }
        assert_eq!(*next_event(sub).await, typing("bob"));
    }
}

/// Publishing to a room nobody follows succeeds, and a later subscriber
/// sees only what is published after it subscribed.
pub async fn publishing_without_subscribers_is_fine<S: RoomEvents>(bus: Arc<S>) {
    let r = room_name("quiet");
    bus.publish(&r, msg(&r, 1, "into the void")).await.unwrap();
    bus.publish_user(&name("nobody"), UserEvent::SessionsEnded)
        .await
        .unwrap();
    let mut sub = bus.subscribe(&r).await.unwrap();
    bus.publish(&r, msg(&r, 2, "heard")).await.unwrap();
    assert_eq!(*next_event(&mut sub).await, msg(&r, 2, "heard"));
    drop(sub);
    bus.publish(&r, msg(&r, 3, "after the last one left"))
        .await
        .unwrap();
    let mut again = bus.subscribe(&r).await.unwrap();
    bus.publish(&r, msg(&r, 4, "back")).await.unwrap();
    assert_eq!(*next_event(&mut again).await, msg(&r, 4, "back"));
}

/// Every shape of room event arrives exactly as published.
pub async fn every_room_event_arrives_intact<S: RoomEvents>(bus: Arc<S>) {
    let r = room_name("闲聊-1");
    let mut sub = bus.subscribe(&r).await.unwrap();
    let events = vec![
        RoomEvent::Message(Message {
            room: r.clone(),
            seq: Seq::new(41),
            from: name("小明"),
            text: text("你好 🎉 \u{200f}שלום\u{200b}\nnext line"),
            ts: chat_domain::Timestamp::from_millis(1_795_428_000_123),
            cid: Some(cid("c-7")),
            kind: MessageKind::Chat,
        }),
        RoomEvent::Message(Message {
            room: r.clone(),
            seq: Seq::new(42),
            from: name("alice"),
            text: text("小明 was muted for 10 min"),
            ts: T0,
            cid: None,
            kind: MessageKind::Notice,
        }),
        RoomEvent::Presence {
            user: name("小明"),
            change: PresenceChange::Join,
        },
        RoomEvent::Presence {
            user: name("bob"),
            change: PresenceChange::Leave,
        },
        typing("小明"),
        RoomEvent::Removed { user: name("bob") },
        RoomEvent::Muted {
            user: name("bob"),
            mute: Some(Mute {
                until: Some(at(600)),
            }),
        },
        RoomEvent::Muted {
            user: name("bob"),
            mute: Some(Mute { until: None }),
        },
        RoomEvent::Muted {
            user: name("bob"),
            mute: None,
        },
        RoomEvent::SlowMode { seconds: Some(30) },
        RoomEvent::SlowMode { seconds: None },
    ];
    for e in &events {
        bus.publish(&r, e.clone()).await.unwrap();
    }
    for e in &events {
        assert_eq!(&*next_event(&mut sub).await, e);
    }
}

/// User events reach that user's subscribers only, in order, and every
/// shape arrives intact.
pub async fn user_events_reach_only_that_user<S: RoomEvents>(bus: Arc<S>) {
    let (alice, bob) = (name("alice"), name("小明"));
    let mut sub_alice = bus.subscribe_user(&alice).await.unwrap();
    let mut sub_alice_2 = bus.subscribe_user(&alice).await.unwrap();
    let mut sub_bob = bus.subscribe_user(&bob).await.unwrap();
    let dm = RoomName::direct(&alice, &bob).unwrap();
    let for_alice = [
        UserEvent::DirectRoom { room: dm.clone() },
        UserEvent::PermissionsChanged,
        UserEvent::SessionsEnded,
    ];
    bus.publish_user(&alice, for_alice[0].clone())
        .await
        .unwrap();
    bus.publish_user(&bob, UserEvent::DirectRoom { room: dm.clone() })
        .await
        .unwrap();
    bus.publish_user(&alice, for_alice[1].clone())
        .await
        .unwrap();
    bus.publish_user(&alice, for_alice[2].clone())
        .await
        .unwrap();
    for sub in [&mut sub_alice, &mut sub_alice_2] {
        for e in &for_alice {
            assert_eq!(&*next_event(sub).await, e);
        }
    }
    assert_eq!(
        *next_event(&mut sub_bob).await,
        UserEvent::DirectRoom { room: dm }
    );
    bus.publish_user(&alice, UserEvent::SessionsEnded)
        .await
        .unwrap();
    bus.publish_user(&bob, UserEvent::PermissionsChanged)
        .await
        .unwrap();
    assert_eq!(
        *next_event(&mut sub_bob).await,
        UserEvent::PermissionsChanged
    );
}

/// A user and a room of the same name are different topics.
pub async fn a_user_topic_and_a_room_topic_of_one_name_are_apart<S: RoomEvents>(bus: Arc<S>) {
    let (room, user) = (room_name("alice"), name("alice"));
    let mut room_sub = bus.subscribe(&room).await.unwrap();
    let mut user_sub = bus.subscribe_user(&user).await.unwrap();
    bus.publish_user(&user, UserEvent::SessionsEnded)
        .await
        .unwrap();
    bus.publish(&room, typing("bob")).await.unwrap();
    bus.publish_user(&user, UserEvent::PermissionsChanged)
        .await
        .unwrap();
    assert_eq!(*next_event(&mut room_sub).await, typing("bob"));
    assert_eq!(*next_event(&mut user_sub).await, UserEvent::SessionsEnded);
    assert_eq!(
        *next_event(&mut user_sub).await,
        UserEvent::PermissionsChanged
    );
}

/// A subscriber that stops reading while many events are published gets
/// `Delivery::Lagged`, then later events still in order, and stays usable.
pub async fn a_subscriber_that_falls_behind_is_told_it_lagged<S: RoomEvents>(bus: Arc<S>) {
    let r = room_name("flood");
    let mut slow = bus.subscribe(&r).await.unwrap();
    for i in 1..=LAG_BURST {
        bus.publish(&r, msg(&r, i, "flood")).await.unwrap();
    }
    let (mut lagged, mut received, mut last) = (false, 0u64, 0u64);
    while last < LAG_BURST {
        match next(&mut slow).await {
            Delivery::Lagged => lagged = true,
            Delivery::Event(e) => {
                let RoomEvent::Message(m) = &*e else {
                    panic!("only messages were published: {e:?}")
                };
                assert!(m.seq.get() > last, "out of order: {} after {last}", m.seq);
                last = m.seq.get();
                received += 1;
            }
        }
    }
    assert!(lagged, "a reader {LAG_BURST} events behind was never told");
    assert!(received < LAG_BURST, "lagged, yet nothing was dropped");
    bus.publish(&r, typing("bob")).await.unwrap();
    assert_eq!(*next_event(&mut slow).await, typing("bob"));
}
