//! The contract of [`MessageLog`]: gap-free seqs under concurrency, idempotent
//! sends, paging both ways, retention, and exact Unicode round trips.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{
    Message, MessageKind, MessageLog, Mute, NewMessage, RoomName, RoomRepository, Seq, StoreError,
    Timestamp, UserRepository,
};

use crate::fixtures::{at, cid, create_users, message, name, new_direct_room, new_room, room_name};

/// How many tasks append at once in the concurrency tests.
pub const WRITERS: u64 = 8;
/// How many messages each of those tasks appends.
pub const PER_WRITER: u64 = 50;

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq.get()).collect()
}

fn range(lo: u64, hi: u64) -> Vec<u64> {
    (lo..=hi).collect()
}

async fn setup<S: MessageLog + RoomRepository + UserRepository>(store: &S, rooms: &[&str]) {
    create_users(store, &["alice", "bob"]).await;
    for r in rooms {
        store.create_room(new_room(r, "alice")).await.unwrap();
    }
}

async fn append_n<S: MessageLog>(store: &S, room: &str, n: u64, ts_secs: u64) {
    for i in 0..n {
        let mut m = message(room, "alice", &format!("message {i}"));
        m.ts = at(ts_secs);
        store.append(m).await.unwrap();
    }
}

/// Appends get seqs 1, 2, 3, … and the stored message is what was sent.
pub async fn appends_get_seqs_from_one_without_gaps<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["lobby"]).await;
    let lobby = room_name("lobby");
    assert_eq!(store.last_seq(&lobby).await.unwrap(), Seq::ZERO);
    for i in 1..=5u64 {
        let mut m = message("lobby", "bob", &format!("hello {i}"));
        m.ts = at(i);
        let appended = store.append(m.clone()).await.unwrap();
        assert!(!appended.duplicate);
        assert_eq!(
            appended.message,
            Message {
                room: m.room,
                seq: Seq::new(i),
                from: m.from,
                text: m.text,
                ts: m.ts,
                cid: None,
                kind: MessageKind::Chat,
            }
        );
        assert_eq!(store.last_seq(&lobby).await.unwrap(), Seq::new(i));
    }
    let page = store.after(&lobby, Seq::ZERO, 100).await.unwrap();
    assert_eq!(seqs(&page.messages), range(1, 5));
    assert_eq!(page.messages[2].text.as_str(), "hello 3");
    assert_eq!(page.messages[2].ts, at(3));
    assert!(!page.more);
}

/// Every field of a message is kept: kind, cid, timestamp.
pub async fn every_field_of_a_message_is_kept<S: MessageLog + RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["lobby"]).await;
    let mut notice = message("lobby", "alice", "bob was muted for 10 min");
    notice.kind = MessageKind::Notice;
    notice.ts = Timestamp::from_millis(1_795_428_000_123);
    let mut chat = message("lobby", "bob", "hi");
    chat.cid = Some(cid("c-1:xyz"));
    chat.ts = Timestamp::from_millis(1_795_428_000_999);
    let first = store.append(notice.clone()).await.unwrap().message;
    let second = store.append(chat.clone()).await.unwrap().message;
    let page = store
        .after(&room_name("lobby"), Seq::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(page.messages, vec![first.clone(), second.clone()]);
    assert_eq!(first.kind, MessageKind::Notice);
    assert_eq!(first.ts, notice.ts);
    assert_eq!(first.cid, None);
    assert_eq!(second.kind, MessageKind::Chat);
    assert_eq!(second.cid, chat.cid);
    assert_eq!(second.ts, chat.ts);
}

/// Each room counts its own seqs.
pub async fn seqs_are_counted_per_room<S: MessageLog + RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["a", "b"]).await;
    for i in 1..=3u64 {
        for r in ["a", "b"] {
            let got = store.append(message(r, "alice", "x")).await.unwrap();
            assert_eq!(got.message.seq, Seq::new(i));
            assert_eq!(got.message.room, room_name(r));
        }
    }
    assert_eq!(store.last_seq(&room_name("a")).await.unwrap(), Seq::new(3));
    assert_eq!(store.last_seq(&room_name("b")).await.unwrap(), Seq::new(3));
}

/// `last_seqs` answers what `last_seq` answers for each room, in the order
/// asked, with `Seq::ZERO` for rooms without messages and missing rooms;
/// one room and no rooms work too.
pub async fn last_seqs_agree_with_last_seq<S: MessageLog + RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["a", "b", "quiet"]).await;
    append_n(store.as_ref(), "a", 3, 1).await;
    append_n(store.as_ref(), "b", 1, 1).await;
    let direct = store
        .create_room(new_direct_room("alice", "bob"))
        .await
        .unwrap()
        .name;
    store
        .append(message(direct.as_str(), "alice", "hi"))
        .await
        .unwrap();
    let asked = [
        room_name("b"),
        room_name("missing"),
        room_name("a"),
        room_name("quiet"),
        direct,
    ];
    let mut one_by_one = Vec::new();
    for room in &asked {
        one_by_one.push(store.last_seq(room).await.unwrap());
    }
    assert_eq!(
        one_by_one,
        [1, 0, 3, 0, 1].map(Seq::new).to_vec(),
        "the single reads"
    );
    assert_eq!(store.last_seqs(&asked).await.unwrap(), one_by_one);
    assert_eq!(
        store.last_seqs(&[room_name("a")]).await.unwrap(),
        vec![Seq::new(3)]
    );
    assert!(store.last_seqs(&[]).await.unwrap().is_empty());
}

/// Eight tasks appending fifty messages each into one room get exactly the
/// seqs 1..=400: no gap, no repeat, and the log agrees.
pub async fn concurrent_appends_get_every_seq_exactly_once<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["busy"]).await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..PER_WRITER {
                    let from = if w % 2 == 0 { "alice" } else { "bob" };
                    let mut m = message("busy", from, &format!("w{w} m{i}"));
                    m.cid = Some(cid(&format!("w{w}-m{i}")));
                    let a = store.append(m).await.unwrap();
                    assert!(!a.duplicate);
                    got.push(a.message.seq.get());
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        // One writer's own appends are ordered.
        assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
        all.extend(got);
    }
    all.sort_unstable();
    let total = WRITERS * PER_WRITER;
    assert_eq!(all, range(1, total));
    let busy = room_name("busy");
    assert_eq!(store.last_seq(&busy).await.unwrap(), Seq::new(total));
    let page = store.after(&busy, Seq::ZERO, 1000).await.unwrap();
    assert_eq!(seqs(&page.messages), range(1, total));
    assert!(!page.more);
}

/// A repeated cid from the same sender in the same room returns the first
/// message with `duplicate: true` and stores nothing.
pub async fn a_repeated_cid_returns_the_first_message_and_stores_nothing<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["lobby"]).await;
    let mut first = message("lobby", "bob", "first");
    first.cid = Some(cid("abc-1"));
    let stored = store.append(first).await.unwrap();
    assert!(!stored.duplicate);
    store
        .append(message("lobby", "alice", "between"))
        .await
        .unwrap();

    let mut retry = message("lobby", "bob", "a different text");
    retry.cid = Some(cid("abc-1"));
    retry.ts = at(30);
    let again = store.append(retry).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message, stored.message);

    let lobby = room_name("lobby");
    assert_eq!(store.last_seq(&lobby).await.unwrap(), Seq::new(2));
    let page = store.after(&lobby, Seq::ZERO, 10).await.unwrap();
    assert_eq!(seqs(&page.messages), vec![1, 2]);
    assert_eq!(page.messages[0].text.as_str(), "first");
}

/// The same cid from another sender, or in another room, is a new message;
/// messages without a cid are never duplicates.
pub async fn the_same_cid_from_another_sender_or_room_is_a_new_message<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["a", "b"]).await;
    let with_cid = |room: &str, from: &str| {
        let mut m = message(room, from, "same cid");
        m.cid = Some(cid("shared"));
        m
    };
    let first = store.append(with_cid("a", "alice")).await.unwrap();
    let other_sender = store.append(with_cid("a", "bob")).await.unwrap();
    let other_room = store.append(with_cid("b", "alice")).await.unwrap();
    assert!(!first.duplicate && !other_sender.duplicate && !other_room.duplicate);
    assert_eq!(other_sender.message.seq, Seq::new(2));
    assert_eq!(other_room.message.seq, Seq::new(1));
    for _ in 0..2 {
        let plain = store
            .append(message("a", "alice", "same cid"))
            .await
            .unwrap();
        assert!(!plain.duplicate);
    }
    assert_eq!(store.last_seq(&room_name("a")).await.unwrap(), Seq::new(4));
    let again = store.append(with_cid("a", "bob")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message, other_sender.message);
}

/// Many tasks retrying the same cid at once store it once and all get it back.
pub async fn concurrent_retries_of_one_cid_store_it_once<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["lobby"]).await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut m = message("lobby", "bob", "only once");
                m.cid = Some(cid("retry-me"));
                store.append(m).await.unwrap()
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|a| !a.duplicate).count(), 1);
    assert!(results.iter().all(|a| a.message.seq == Seq::new(1)));
    assert_eq!(
        store.last_seq(&room_name("lobby")).await.unwrap(),
        Seq::new(1)
    );
}

/// Appending to a missing room is `NotFound` and stores nothing.
pub async fn appending_to_a_missing_room_is_not_found_and_stores_nothing<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &[]).await;
    let ghost = room_name("ghost");
    let mut m = message("ghost", "alice", "anyone?");
    m.cid = Some(cid("k"));
    assert!(matches!(
        store.append(m.clone()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.last_seq(&ghost).await.unwrap(), Seq::ZERO);
    assert!(
        store
            .after(&ghost, Seq::ZERO, 10)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    store.create_room(new_room("ghost", "alice")).await.unwrap();
    let a = store.append(m).await.unwrap();
    assert!(!a.duplicate, "the failed append left no cid behind");
    assert_eq!(a.message.seq, Seq::new(1));
}

/// A missing or empty room reads as an empty page with nothing more.
pub async fn a_missing_or_empty_room_reads_as_empty<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["empty"]).await;
    for r in ["empty", "missing"] {
        let r = room_name(r);
        let before = store.before(&r, None, 50).await.unwrap();
        assert!(before.messages.is_empty() && !before.more);
        let after = store.after(&r, Seq::ZERO, 50).await.unwrap();
        assert!(after.messages.is_empty() && !after.more);
        assert_eq!(store.last_seq(&r).await.unwrap(), Seq::ZERO);
    }
}

/// `before` pages backwards from the newest, ascending within a page, with
/// `more` saying whether older messages remain.
pub async fn before_pages_backwards_with_more<S: MessageLog + RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["lobby", "other"]).await;
    append_n(store.as_ref(), "lobby", 10, 0).await;
    append_n(store.as_ref(), "other", 3, 0).await;
    let lobby = room_name("lobby");

    let p = store.before(&lobby, None, 4).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (range(7, 10), true));
    let p = store.before(&lobby, Some(Seq::new(7)), 4).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (range(3, 6), true));
    let p = store.before(&lobby, Some(Seq::new(3)), 4).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (vec![1, 2], false));
    let p = store.before(&lobby, Some(Seq::new(1)), 4).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (vec![], false));
    let p = store.before(&lobby, Some(Seq::new(5)), 4).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (range(1, 4), false));

    let p = store.before(&lobby, None, 10).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (range(1, 10), false));
    let p = store.before(&lobby, None, 50).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (range(1, 10), false));
    let p = store.before(&lobby, Some(Seq::new(100)), 3).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (range(8, 10), true));
    assert!(p.messages.iter().all(|m| m.room == lobby));
}

/// `after` pages forwards, ascending, with `more` saying whether newer
/// messages remain.
pub async fn after_pages_forwards_with_more<S: MessageLog + RoomRepository + UserRepository>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["lobby", "other"]).await;
    append_n(store.as_ref(), "other", 3, 0).await;
    append_n(store.as_ref(), "lobby", 10, 0).await;
    let lobby = room_name("lobby");

    let p = store.after(&lobby, Seq::ZERO, 4).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (range(1, 4), true));
    let p = store.after(&lobby, Seq::new(4), 4).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (range(5, 8), true));
    let p = store.after(&lobby, Seq::new(8), 4).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (vec![9, 10], false));
    let p = store.after(&lobby, Seq::new(8), 2).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (vec![9, 10], false));
    let p = store.after(&lobby, Seq::new(10), 4).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (vec![], false));
    let p = store.after(&lobby, Seq::new(99), 4).await.unwrap();
    assert_eq!((seqs(&p.messages), p.more), (vec![], false));
    assert!(
        store
            .after(&lobby, Seq::ZERO, 10)
            .await
            .unwrap()
            .messages
            .iter()
            .all(|m| m.room == lobby)
    );
}

/// `delete_before` removes messages stamped before the cutoff from every
/// room, direct rooms included, at most `batch` per call; newer messages and
/// `last_seq` stay, and later appends never reuse a seq.
pub async fn retention_deletes_old_messages_in_batches_everywhere<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["a", "b", "c"]).await;
    let direct = new_direct_room("alice", "bob");
    let dm = direct.room.name.clone();
    store.create_room(direct).await.unwrap();

    // Old (T0) messages first, then new ones a day later.
    append_n(store.as_ref(), "a", 5, 0).await;
    append_n(store.as_ref(), "b", 4, 0).await;
    append_n(store.as_ref(), dm.as_str(), 3, 0).await;
    append_n(store.as_ref(), "c", 2, 0).await;
    append_n(store.as_ref(), "a", 2, 86_400).await;
    append_n(store.as_ref(), "b", 2, 86_400).await;
    append_n(store.as_ref(), dm.as_str(), 2, 86_400).await;

    let cutoff = at(3600);
    let mut batches = Vec::new();
    loop {
        let n = store.delete_before(cutoff, 5).await.unwrap();
        assert!(n <= 5);
        batches.push(n);
        if n == 0 {
            break;
        }
        assert!(batches.len() < 10, "delete_before never finished");
    }
    assert_eq!(batches, vec![5, 5, 4, 0]);

    let expect = [("a", 6, 7), ("b", 5, 6), (dm.as_str(), 4, 5)];
    for (r, first, last) in expect {
        let r = room_name(r);
        let page = store.after(&r, Seq::ZERO, 100).await.unwrap();
        assert_eq!(seqs(&page.messages), range(first, last), "room {r}");
        assert!(page.messages.iter().all(|m| m.ts >= cutoff));
        let back = store.before(&r, None, 100).await.unwrap();
        assert_eq!(back.messages, page.messages);
        assert!(!back.more);
        assert_eq!(store.last_seq(&r).await.unwrap(), Seq::new(last));
    }
    // A room whose every message went keeps its last seq and counts on.
    let c = room_name("c");
    assert!(
        store
            .before(&c, None, 10)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert_eq!(store.last_seq(&c).await.unwrap(), Seq::new(2));
    let next = store.append(message("c", "bob", "after the sweep")).await;
    assert_eq!(next.unwrap().message.seq, Seq::new(3));
    let next = store
        .append(message(dm.as_str(), "bob", "still here"))
        .await;
    assert_eq!(next.unwrap().message.seq, Seq::new(6));
}

/// A sweep with nothing old enough deletes nothing.
pub async fn retention_keeps_messages_newer_than_the_cutoff<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["a"]).await;
    append_n(store.as_ref(), "a", 3, 100).await;
    assert_eq!(store.delete_before(at(100), 1000).await.unwrap(), 0);
    assert_eq!(store.delete_before(at(50), 1000).await.unwrap(), 0);
    assert_eq!(
        store
            .after(&room_name("a"), Seq::ZERO, 10)
            .await
            .unwrap()
            .messages
            .len(),
        3
    );
    assert_eq!(
        store
            .delete_before(at(100).plus(Duration::from_millis(1)), 1000)
            .await
            .unwrap(),
        3
    );
}

/// Unicode room names, sender names and texts (Chinese, emoji, right-to-left
/// and zero-width characters, newlines) come back byte for byte.
pub async fn unicode_messages_round_trip_exactly<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["小明", "alice"]).await;
    store.create_room(new_room("闲聊-1", "小明")).await.unwrap();
    let texts = [
        "你好,世界!今天天气很好。",
        "🎉👍🏽 family: 👨\u{200d}👩\u{200d}👧\u{200d}👦 flag: 🇨🇳",
        "مرحبا بالعالم \u{200f}שלום עולם\u{200e}",
        "zero\u{200b}width\u{200c}non\u{200d}joiner \u{202e}reversed\u{202c} \u{feff}bom",
        "line one\nline two\ttabbed\r\nthree",
        "  spaced out  ",
        "combining: e\u{301} n\u{303} 한국어 日本語",
        "<script>alert('x')</script> & \"quotes\" 'single'",
    ];
    let room = room_name("闲聊-1");
    let mut sent = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let mut m = message("闲聊-1", "小明", t);
        m.cid = Some(cid(&format!("u{i}")));
        sent.push(store.append(m).await.unwrap().message);
    }
    let page = store.after(&room, Seq::ZERO, 100).await.unwrap();
    assert_eq!(page.messages, sent);
    for (m, t) in page.messages.iter().zip(texts) {
        assert_eq!(m.text.as_str(), t);
        assert_eq!(m.from.as_str(), "小明");
        assert_eq!(m.room.as_str(), "闲聊-1");
    }
    let back = store.before(&room, None, 100).await.unwrap();
    assert_eq!(back.messages, sent);
    let mut retry = message("闲聊-1", "小明", "ignored");
    retry.cid = Some(cid("u1"));
    assert_eq!(store.append(retry).await.unwrap().message, sent[1]);
}

/// A deleted user's messages stay in history under their name.
pub async fn a_deleted_users_messages_stay_in_history<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["lobby"]).await;
    store
        .add_member(&room_name("lobby"), &name("bob"))
        .await
        .unwrap();
    let said = store
        .append(message("lobby", "bob", "bye"))
        .await
        .unwrap()
        .message;
    store.delete_user(&name("bob")).await.unwrap();
    let page = store
        .after(&room_name("lobby"), Seq::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(page.messages, vec![said]);
}

/// Direct rooms keep their own history like any other room.
pub async fn direct_rooms_have_their_own_history<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    create_users(store.as_ref(), &["alice", "bob", "小明"]).await;
    let dm = new_direct_room("小明", "alice");
    let name_ = dm.room.name.clone();
    store.create_room(dm).await.unwrap();
    let m: NewMessage = message(name_.as_str(), "小明", "私聊 🙂");
    let a = store.append(m).await.unwrap();
    assert_eq!(a.message.seq, Seq::new(1));
    assert_eq!(a.message.room, name_);
    let page = store.before(&name_, None, 10).await.unwrap();
    assert_eq!(page.messages, vec![a.message]);
    assert_eq!(
        RoomName::direct(&name("alice"), &name("小明")).unwrap(),
        name_
    );
}

/// `access_with_page` answers what `access` does, and a page, when it reads
/// one, equal to what `before` answers, for members, outsiders and guests
/// alike; a missing room is `None`.
pub async fn access_with_page_agrees_with_access_and_before<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: Arc<S>,
) {
    setup(store.as_ref(), &["lobby", "other"]).await;
    append_n(store.as_ref(), "lobby", 10, 0).await;
    append_n(store.as_ref(), "other", 3, 0).await;
    store.create_room(new_room("empty", "alice")).await.unwrap();
    let (alice, bob) = (name("alice"), name("bob"));
    store
        .set_mute(
            &room_name("lobby"),
            &bob,
            Some(Mute {
                until: Some(at(600)),
            }),
        )
        .await
        .unwrap();
    for r in ["lobby", "other", "empty"] {
        let r = room_name(r);
        for user in [Some(&alice), Some(&bob), None] {
            for (before, limit) in [
                (None, 4),
                (Some(Seq::new(7)), 4),
                (Some(Seq::new(3)), 4),
                (Some(Seq::new(1)), 4),
                (None, 50),
            ] {
                let (access, page) = store
                    .access_with_page(&r, user, at(1), before, limit)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    Some(access),
                    store.access(&r, user, at(1)).await.unwrap(),
                    "{r} {user:?}"
                );
                if let Some(page) = page {
                    assert_eq!(
                        page,
                        store.before(&r, before, limit).await.unwrap(),
                        "{r} {before:?} {limit}"
                    );
                }
            }
        }
    }
    let missing = store
        .access_with_page(&room_name("missing"), Some(&alice), at(1), None, 50)
        .await
        .unwrap();
    assert!(missing.is_none());
}

/// For a store that reads the page with the access row (SQLite, Redis; not
/// part of the contract, which lets a store leave the page to the log):
/// `access_with_page` on a room of 120 messages always returns a page, and
/// it is the page `before` answers, for a member and for a guest.
pub async fn access_with_page_reads_its_own_page<
    S: MessageLog + RoomRepository + UserRepository,
>(
    store: &S,
) {
    create_users(store, &["alice"]).await;
    store.create_room(new_room("lobby", "alice")).await.unwrap();
    append_n(store, "lobby", 120, 0).await;
    let lobby = room_name("lobby");
    for before in [
        None,
        Some(Seq::new(71)),
        Some(Seq::new(51)),
        Some(Seq::new(2)),
    ] {
        let (access, page) = store
            .access_with_page(&lobby, Some(&name("alice")), at(1), before, 50)
            .await
            .unwrap()
            .unwrap();
        assert!(access.standing.member);
        let page = page.expect("the store reads the page with the access row");
        assert_eq!(page, store.before(&lobby, before, 50).await.unwrap());
    }
    let (access, page) = store
        .access_with_page(&lobby, None, at(1), Some(Seq::new(71)), 50)
        .await
        .unwrap()
        .unwrap();
    assert!(!access.standing.member);
    let page = page.unwrap();
    assert_eq!(seqs(&page.messages), range(21, 70));
    assert!(page.more);
    let missing = store
        .access_with_page(&room_name("missing"), None, at(1), None, 50)
        .await
        .unwrap();
    assert!(missing.is_none());
}
