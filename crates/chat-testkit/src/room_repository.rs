//! The contract of [`RoomRepository`]: rooms, members, bans and mutes.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chat_domain::{
    Description, Mute, NewRoom, RoomName, RoomRepository, Standing, StoreError, UserRepository,
    Username, Visibility,
};

use crate::fixtures::{T0, at, create_users, name, new_direct_room, new_room, room, room_name};

fn names(raw: &[&str]) -> Vec<Username> {
    raw.iter().map(|n| name(n)).collect()
}

fn sorted_names(raw: &[&str]) -> Vec<Username> {
    let mut v = names(raw);
    v.sort();
    v
}

/// A created room reads back exactly, with its first members sorted.
pub async fn a_created_room_reads_back_with_its_members<S: RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["carol", "alice", "bob"]).await;
    let mut r = room("闲聊-1", "carol", Visibility::Private);
    r.description = Description::parse("聊天 🎉 about anything").unwrap();
    let created = store
        .create_room(NewRoom {
            room: r.clone(),
            members: names(&["carol", "alice"]),
        })
        .await
        .unwrap();
    assert_eq!(created, r);
    assert_eq!(store.room(&r.name).await.unwrap(), Some(r.clone()));
    assert_eq!(
        store.members(&r.name).await.unwrap(),
        sorted_names(&["carol", "alice"])
    );
    assert_eq!(store.member_count(&r.name).await.unwrap(), 2);
    assert!(store.is_member(&r.name, &name("alice")).await.unwrap());
    assert!(!store.is_member(&r.name, &name("bob")).await.unwrap());
}

/// A second room of the same name is a `Conflict` and changes nothing.
pub async fn a_taken_room_name_is_a_conflict_and_changes_nothing<
    S: RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice", "bob"]).await;
    let first = store.create_room(new_room("lobby", "alice")).await.unwrap();
    let mut again = new_room("lobby", "bob");
    again.room.description = Description::parse("another").unwrap();
    again.room.visibility = Visibility::Private;
    assert!(matches!(
        store.create_room(again).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.room(&first.name).await.unwrap(), Some(first.clone()));
    assert_eq!(store.members(&first.name).await.unwrap(), names(&["alice"]));
}

/// A missing room reads as absent or empty, and changing it is `NotFound`.
pub async fn a_missing_room_is_not_found<S: RoomRepository + UserRepository>(store: Arc<S>) {
    create_users(store.as_ref(), &["alice"]).await;
    let (r, u) = (room_name("nowhere"), name("alice"));
    assert_eq!(store.room(&r).await.unwrap(), None);
    assert!(matches!(
        store.add_member(&r, &u).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.remove_member(&r, &u).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(store.members(&r).await, Err(StoreError::NotFound)));
    assert_eq!(store.member_count(&r).await.unwrap(), 0);
    assert!(!store.is_member(&r, &u).await.unwrap());
    assert!(matches!(
        store.set_banned(&r, &u, true).await,
        Err(StoreError::NotFound)
    ));
    assert!(!store.is_banned(&r, &u).await.unwrap());
    assert!(matches!(
        store.set_mute(&r, &u, Some(Mute { until: None })).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.mute(&r, &u, T0).await.unwrap(), None);
    assert_eq!(store.mutes(&r, T0).await.unwrap(), vec![]);
    assert_eq!(store.room(&r).await.unwrap(), None);
    assert_eq!(store.rooms().await.unwrap(), vec![]);
    assert_eq!(store.rooms_of(&u).await.unwrap(), vec![]);
}

/// `rooms` lists ordinary rooms sorted by name and never direct rooms.
pub async fn rooms_are_listed_sorted_without_direct_rooms<S: RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice", "bob"]).await;
    for n in ["zeta", "闲聊-1", "Alpha", "beta.2"] {
        store.create_room(new_room(n, "alice")).await.unwrap();
    }
    let mut private = new_room("secret", "bob");
    private.room.visibility = Visibility::Private;
    store.create_room(private).await.unwrap();
    store
        .create_room(new_direct_room("alice", "bob"))
        .await
        .unwrap();
    let listed: Vec<RoomName> = store
        .rooms()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    let mut expected: Vec<RoomName> = ["zeta", "闲聊-1", "Alpha", "beta.2", "secret"]
        .iter()
        .map(|n| room_name(n))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
}

/// `rooms_of` lists exactly the rooms the user belongs to, direct rooms
/// included, sorted by name.
pub async fn rooms_of_a_user_include_direct_rooms<S: RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice", "bob", "carol"]).await;
    for n in ["b-room", "a-room", "c-room"] {
        store.create_room(new_room(n, "alice")).await.unwrap();
    }
    store.create_room(new_room("bobs", "bob")).await.unwrap();
    store
        .create_room(new_direct_room("alice", "bob"))
        .await
        .unwrap();
    store
        .create_room(new_direct_room("bob", "carol"))
        .await
        .unwrap();
    store
        .remove_member(&room_name("c-room"), &name("alice"))
        .await
        .unwrap();
    let of_alice: Vec<RoomName> = store
        .rooms_of(&name("alice"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    let mut expected: Vec<RoomName> = ["b-room", "a-room", "@alice+bob"]
        .iter()
        .map(|n| room_name(n))
        .collect();
    expected.sort();
    assert_eq!(of_alice, expected);
    let direct = store.room(&room_name("@alice+bob")).await.unwrap().unwrap();
    assert!(direct.is_direct());
    assert_eq!(direct.visibility, Visibility::Private);
    assert_eq!(
        store.members(&direct.name).await.unwrap(),
        names(&["alice", "bob"])
    );
}

/// Adding and removing members report whether anything changed.
pub async fn members_are_added_and_removed_once<S: RoomRepository + UserRepository>(store: Arc<S>) {
    create_users(store.as_ref(), &["alice", "bob"]).await;
    let r = store.create_room(new_room("lobby", "alice")).await.unwrap();
    let bob = name("bob");
    assert!(store.add_member(&r.name, &bob).await.unwrap());
    assert!(!store.add_member(&r.name, &bob).await.unwrap());
    assert_eq!(store.member_count(&r.name).await.unwrap(), 2);
    assert!(store.is_member(&r.name, &bob).await.unwrap());
    assert!(store.remove_member(&r.name, &bob).await.unwrap());
    assert!(!store.remove_member(&r.name, &bob).await.unwrap());
    assert!(!store.is_member(&r.name, &bob).await.unwrap());
    assert_eq!(store.member_count(&r.name).await.unwrap(), 1);
    assert_eq!(store.members(&r.name).await.unwrap(), names(&["alice"]));
}

/// `member_counts` answers what `member_count` answers for each room, in
/// the order asked, with 0 for a missing room; one room and no rooms work
/// too.
pub async fn member_counts_agree_with_member_count<S: RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice", "bob", "carol"]).await;
    let big = store.create_room(new_room("big", "alice")).await.unwrap();
    for n in ["bob", "carol"] {
        store.add_member(&big.name, &name(n)).await.unwrap();
    }
    let small = store.create_room(new_room("small", "bob")).await.unwrap();
    let direct = store
        .create_room(new_direct_room("alice", "carol"))
        .await
        .unwrap();
    let asked = [
        small.name,
        room_name("missing"),
        big.name.clone(),
        direct.name,
    ];
    let mut one_by_one = Vec::new();
    for room in &asked {
        one_by_one.push(store.member_count(room).await.unwrap());
    }
    assert_eq!(one_by_one, vec![1, 0, 3, 2], "the single reads");
    assert_eq!(store.member_counts(&asked).await.unwrap(), one_by_one);
    assert_eq!(store.member_counts(&[big.name]).await.unwrap(), vec![3]);
    assert!(store.member_counts(&[]).await.unwrap().is_empty());
}

/// Members are listed sorted by name, whatever order they joined in.
pub async fn members_are_sorted_by_name<S: RoomRepository + UserRepository>(store: Arc<S>) {
    let all = ["zed", "小明", "alice", "Bob", "mike"];
    create_users(store.as_ref(), &all).await;
    let r = store.create_room(new_room("lobby", "mike")).await.unwrap();
    for n in all {
        store.add_member(&r.name, &name(n)).await.unwrap();
    }
    assert_eq!(store.members(&r.name).await.unwrap(), sorted_names(&all));
    assert_eq!(store.member_count(&r.name).await.unwrap(), 5);
}

/// A ban is set and lifted, per room and per user.
pub async fn a_ban_is_set_and_lifted<S: RoomRepository + UserRepository>(store: Arc<S>) {
    create_users(store.as_ref(), &["alice", "bob"]).await;
    let a = store.create_room(new_room("a", "alice")).await.unwrap();
    let b = store.create_room(new_room("b", "alice")).await.unwrap();
    let bob = name("bob");
    assert!(!store.is_banned(&a.name, &bob).await.unwrap());
    store.set_banned(&a.name, &bob, true).await.unwrap();
    store.set_banned(&a.name, &bob, true).await.unwrap();
    assert!(store.is_banned(&a.name, &bob).await.unwrap());
    assert!(!store.is_banned(&b.name, &bob).await.unwrap());
    assert!(!store.is_banned(&a.name, &name("alice")).await.unwrap());
    store.set_banned(&a.name, &bob, false).await.unwrap();
    assert!(!store.is_banned(&a.name, &bob).await.unwrap());
    store.set_banned(&a.name, &bob, false).await.unwrap();
    assert!(!store.is_banned(&a.name, &bob).await.unwrap());
}

/// A timed mute holds until its end and then reads as `None` by itself; an
/// open-ended mute holds until lifted.
pub async fn a_mute_holds_until_it_ends_or_is_lifted<S: RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice", "bob", "carol"]).await;
    let r = store.create_room(new_room("lobby", "alice")).await.unwrap();
    let other = store.create_room(new_room("other", "alice")).await.unwrap();
    let (bob, carol) = (name("bob"), name("carol"));
    let timed = Mute {
        until: Some(at(600)),
    };
    let open = Mute { until: None };
    store.set_mute(&r.name, &bob, Some(timed)).await.unwrap();
    store.set_mute(&r.name, &carol, Some(open)).await.unwrap();

    assert_eq!(store.mute(&r.name, &bob, T0).await.unwrap(), Some(timed));
    assert_eq!(
        store.mute(&r.name, &bob, at(599)).await.unwrap(),
        Some(timed)
    );
    assert_eq!(store.mute(&r.name, &bob, at(601)).await.unwrap(), None);
    assert_eq!(store.mute(&other.name, &bob, T0).await.unwrap(), None);
    assert_eq!(
        store.mute(&r.name, &carol, at(10_000_000)).await.unwrap(),
        Some(open)
    );

    assert_eq!(
        store.mutes(&r.name, T0).await.unwrap(),
        vec![(bob.clone(), timed), (carol.clone(), open)]
    );
    assert_eq!(
        store.mutes(&r.name, at(601)).await.unwrap(),
        vec![(carol.clone(), open)]
    );

    store.set_mute(&r.name, &carol, None).await.unwrap();
    assert_eq!(store.mute(&r.name, &carol, T0).await.unwrap(), None);
    store.set_mute(&r.name, &carol, None).await.unwrap();
    assert_eq!(
        store.mutes(&r.name, T0).await.unwrap(),
        vec![(bob.clone(), timed)]
    );

    let longer = Mute {
        until: Some(at(3600)),
    };
    store.set_mute(&r.name, &bob, Some(longer)).await.unwrap();
    assert_eq!(
        store.mute(&r.name, &bob, at(601)).await.unwrap(),
        Some(longer)
    );
}

/// Active mutes are listed sorted by user.
pub async fn mutes_are_sorted_by_user<S: RoomRepository + UserRepository>(store: Arc<S>) {
    let all = ["zed", "小明", "alice", "Bob"];
    create_users(store.as_ref(), &all).await;
    let r = store.create_room(new_room("lobby", "alice")).await.unwrap();
    for n in all {
        store
            .set_mute(&r.name, &name(n), Some(Mute { until: None }))
            .await
            .unwrap();
    }
    let listed: Vec<Username> = store
        .mutes(&r.name, T0)
        .await
        .unwrap()
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(listed, sorted_names(&all));
}

/// Deleting a user removes their memberships, mutes and bans everywhere.
pub async fn deleting_a_user_removes_memberships_mutes_and_bans<
    S: RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice", "bob"]).await;
    let a = store.create_room(new_room("a", "alice")).await.unwrap();
    let b = store.create_room(new_room("b", "alice")).await.unwrap();
    let bob = name("bob");
    store.add_member(&a.name, &bob).await.unwrap();
    store
        .set_mute(&a.name, &bob, Some(Mute { until: None }))
        .await
        .unwrap();
    store.set_banned(&b.name, &bob, true).await.unwrap();

    store.delete_user(&bob).await.unwrap();
    assert_eq!(store.members(&a.name).await.unwrap(), names(&["alice"]));
    assert!(!store.is_member(&a.name, &bob).await.unwrap());
    assert_eq!(store.mute(&a.name, &bob, T0).await.unwrap(), None);
    assert_eq!(store.mutes(&a.name, T0).await.unwrap(), vec![]);
    assert!(!store.is_banned(&b.name, &bob).await.unwrap());
    assert_eq!(store.rooms_of(&bob).await.unwrap(), vec![]);

    // A new account of the same name starts with a clean slate.
    create_users(store.as_ref(), &["bob"]).await;
    assert!(!store.is_member(&a.name, &bob).await.unwrap());
    assert!(!store.is_banned(&b.name, &bob).await.unwrap());
    assert_eq!(store.mute(&a.name, &bob, T0).await.unwrap(), None);
}

/// Slow mode is off for a new room, is set per room to the second, can be
/// changed and lifted, and reads back the same from any handle; a missing
/// room reads as off and cannot be given one.
pub async fn slow_mode_is_set_per_room_and_lifted<S: RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice"]).await;
    let r = store
        .create_room(new_room("闲聊-1", "alice"))
        .await
        .unwrap();
    let other = store.create_room(new_room("other", "alice")).await.unwrap();
    assert_eq!(store.slow_mode(&r.name).await.unwrap(), None);

    let secs = std::time::Duration::from_secs;
    store.set_slow_mode(&r.name, Some(secs(30))).await.unwrap();
    assert_eq!(store.slow_mode(&r.name).await.unwrap(), Some(secs(30)));
    assert_eq!(store.slow_mode(&other.name).await.unwrap(), None);
    // The room itself is unchanged by it.
    assert_eq!(store.room(&r.name).await.unwrap(), Some(r.clone()));

    store
        .set_slow_mode(&r.name, Some(secs(3600)))
        .await
        .unwrap();
    assert_eq!(store.slow_mode(&r.name).await.unwrap(), Some(secs(3600)));
    store.set_slow_mode(&r.name, Some(secs(1))).await.unwrap();
    assert_eq!(store.slow_mode(&r.name).await.unwrap(), Some(secs(1)));

    store.set_slow_mode(&r.name, None).await.unwrap();
    assert_eq!(store.slow_mode(&r.name).await.unwrap(), None);
    // Lifting it again is fine.
    store.set_slow_mode(&r.name, None).await.unwrap();
    assert_eq!(store.slow_mode(&r.name).await.unwrap(), None);

    let missing = room_name("nowhere");
    assert_eq!(store.slow_mode(&missing).await.unwrap(), None);
    for interval in [Some(secs(10)), None] {
        assert!(matches!(
            store.set_slow_mode(&missing, interval).await,
            Err(StoreError::NotFound)
        ));
    }
    assert_eq!(store.room(&missing).await.unwrap(), None);
    assert_eq!(store.slow_mode(&missing).await.unwrap(), None);
}

/// `access` reads the room with one user's standing, active mute and the
/// slow mode together, agreeing with the single reads.
pub async fn access_agrees_with_the_single_reads<S: RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice", "bob", "carol", "dave"]).await;
    let r = store
        .create_room(new_room("闲聊-1", "alice"))
        .await
        .unwrap();
    let other = store.create_room(new_room("other", "alice")).await.unwrap();
    let (alice, bob, carol, dave) = (name("alice"), name("bob"), name("carol"), name("dave"));
    let secs = std::time::Duration::from_secs;

    // Nothing set: the creator is a member, others are not; a guest is nobody.
    let a = store
        .access(&r.name, Some(&alice), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.room, r);
    assert_eq!(
        a.standing,
        Standing {
            member: true,
            banned: false
        }
    );
    assert_eq!((a.mute, a.slow_mode), (None, None));
    let b = store
        .access(&r.name, Some(&bob), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.standing, Standing::default());
    let guest = store.access(&r.name, None, T0).await.unwrap().unwrap();
    assert_eq!(guest.room, r);
    assert_eq!(guest.standing, Standing::default());
    assert_eq!(guest.mute, None);

    // Barred, muted (timed and open-ended), slow mode: each read back.
    store.set_banned(&r.name, &bob, true).await.unwrap();
    store.add_member(&r.name, &carol).await.unwrap();
    let timed = Mute {
        until: Some(at(600)),
    };
    let open = Mute { until: None };
    store.set_mute(&r.name, &carol, Some(timed)).await.unwrap();
    store.set_mute(&r.name, &dave, Some(open)).await.unwrap();
    store.set_slow_mode(&r.name, Some(secs(30))).await.unwrap();

    let b = store
        .access(&r.name, Some(&bob), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        b.standing,
        Standing {
            member: false,
            banned: true
        }
    );
    assert_eq!(b.slow_mode, Some(secs(30)));
    let c = store
        .access(&r.name, Some(&carol), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c.standing,
        Standing {
            member: true,
            banned: false
        }
    );
    assert_eq!(c.mute, Some(timed));
    let c_later = store
        .access(&r.name, Some(&carol), at(601))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c_later.mute, None, "an ended mute reads as none");
    let d = store
        .access(&r.name, Some(&dave), at(10_000_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.mute, Some(open));
    assert!(!d.standing.member);
    let guest = store.access(&r.name, None, T0).await.unwrap().unwrap();
    assert_eq!((guest.mute, guest.slow_mode), (None, Some(secs(30))));

    // All of it is per room.
    let o = store
        .access(&other.name, Some(&bob), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.room, other);
    assert_eq!(o.standing, Standing::default());
    assert_eq!((o.mute, o.slow_mode), (None, None));
    let o = store
        .access(&other.name, Some(&carol), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.mute, None);

    // And it follows changes.
    store.set_mute(&r.name, &carol, None).await.unwrap();
    store.set_slow_mode(&r.name, None).await.unwrap();
    store.remove_member(&r.name, &carol).await.unwrap();
    let c = store
        .access(&r.name, Some(&carol), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.standing, Standing::default());
    assert_eq!((c.mute, c.slow_mode), (None, None));

    assert_eq!(
        store
            .access(&room_name("nowhere"), Some(&alice), T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.access(&room_name("nowhere"), None, T0).await.unwrap(),
        None
    );
}
