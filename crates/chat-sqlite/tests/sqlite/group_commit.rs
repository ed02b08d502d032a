//! The group-commit writer under many concurrent callers.

use std::collections::BTreeMap;
use std::sync::Arc;

use chat_domain::{MessageLog, RoomRepository, Seq, StoreError};
use chat_sqlite::SqliteStore;
use chat_testkit::fixtures::{cid, create_users, message, new_room, room_name};
use futures::future::join_all;

use crate::scratch;

const ROOMS: usize = 10;
const APPENDS: usize = 2_000;

async fn store_with_rooms(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    let store = scratch::open(&dir.path().join("group.db")).await;
    create_users(&store, &["alice", "bob"]).await;
    for r in 0..ROOMS {
        store
            .create_room(new_room(&format!("房间-{r}"), "alice"))
            .await
            .unwrap();
    }
    Arc::new(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_across_rooms_get_gap_free_seqs_per_room() {
    let dir = scratch::dir();
    let store = store_with_rooms(&dir).await;
    // Every tenth send is also retried at once under the same cid, so
    // repeats land in the same group as their first send, or the next one.
    let sends: Vec<(usize, String)> = (0..APPENDS)
        .flat_map(|i| {
            let copies = if i % 10 == 0 { 2 } else { 1 };
            std::iter::repeat_n((i % ROOMS, format!("c{i}")), copies)
        })
        .collect();
    let answers = join_all(sends.iter().map(|(room, id)| {
        let store = Arc::clone(&store);
        let mut m = message(&format!("房间-{room}"), "bob", id);
        m.cid = Some(cid(id));
        tokio::spawn(async move { store.append(m).await.unwrap() })
    }))
    .await;

    let mut by_cid: BTreeMap<String, Vec<chat_domain::Appended>> = BTreeMap::new();
    for answer in answers {
        let answer = answer.unwrap();
        let key = answer.message.cid.clone().unwrap().into_string();
        by_cid.entry(key).or_default().push(answer);
    }
    assert_eq!(by_cid.len(), APPENDS);
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for answers in by_cid.values() {
        // One send stored, any repeat answered with the same message.
        assert_eq!(answers.iter().filter(|a| !a.duplicate).count(), 1);
        assert!(answers.iter().all(|a| a.message == answers[0].message));
        let m = &answers[0].message;
        assert_eq!(m.text.as_str(), m.cid.as_ref().unwrap().as_str());
        seqs.entry(m.room.to_string())
            .or_default()
            .push(m.seq.get());
    }
    let per_room = (APPENDS / ROOMS) as u64;
    for r in 0..ROOMS {
        let room = format!("房间-{r}");
        let mut got = seqs.remove(&room).unwrap();
        got.sort_unstable();
        assert_eq!(got, (1..=per_room).collect::<Vec<_>>(), "{room}");
        let stored = store
            .after(&room_name(&room), Seq::ZERO, APPENDS)
            .await
            .unwrap();
        assert_eq!(stored.messages.len() as u64, per_room);
        assert!(
            stored
                .messages
                .iter()
                .zip(1..)
                .all(|(m, s)| m.seq.get() == s)
        );
        assert_eq!(
            store.last_seq(&room_name(&room)).await.unwrap(),
            Seq::new(per_room)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_to_a_missing_room_fails_alone_among_many() {
    let dir = scratch::dir();
    let store = store_with_rooms(&dir).await;
    let targets: Vec<String> = (0..500)
        .map(|i| {
            if i == 250 {
                "没有这个房间".to_owned()
            } else {
                format!("房间-{}", i % 2)
            }
        })
        .collect();
    let answers = join_all(targets.iter().map(|room| {
        let store = Arc::clone(&store);
        let m = message(room, "alice", "hi");
        tokio::spawn(async move { store.append(m).await })
    }))
    .await;
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap();
        if i == 250 {
            assert!(matches!(answer, Err(StoreError::NotFound)), "{answer:?}");
        } else {
            assert!(answer.is_ok(), "append {i}: {answer:?}");
        }
    }
    for r in 0..2 {
        let room = format!("房间-{r}");
        let sent = targets.iter().filter(|t| **t == room).count() as u64;
        let room = room_name(&room);
        assert_eq!(store.last_seq(&room).await.unwrap(), Seq::new(sent));
        let stored = store.after(&room, Seq::ZERO, 1_000).await.unwrap();
        assert!(
            stored
                .messages
                .iter()
                .zip(1..)
                .all(|(m, s)| m.seq.get() == s)
        );
        assert_eq!(stored.messages.len() as u64, sent);
    }
    assert_eq!(
        store.last_seq(&room_name("没有这个房间")).await.unwrap(),
        Seq::ZERO
    );
}
