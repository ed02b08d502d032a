//! What must hold across restarts and when the disk is full.

use std::sync::Arc;

use chat_domain::{
    AuditAction, AuditEntry, AuditLog, BotCorpus, HealthCheck, MessageLog, Mute, QaPair,
    RoomRepository, Seq, SessionStore, StoreError, UserRepository,
};
use chat_sqlite::{SqliteConfig, SqliteStore};
use chat_testkit::fixtures::{at, cid, create_users, message, name, new_room, room_name};
use futures::future::join_all;

use crate::scratch;

#[tokio::test]
async fn data_survives_closing_and_reopening() {
    let dir = scratch::dir();
    let path = dir.path().join("数据").join("hihichat.db");
    let room = room_name("闲聊-1");

    let store = scratch::open(&path).await;
    create_users(&store, &["小明", "bob"]).await;
    store.create_room(new_room("闲聊-1", "小明")).await.unwrap();
    store.add_member(&room, &name("bob")).await.unwrap();
    store
        .set_mute(&room, &name("bob"), Some(Mute { until: None }))
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 1..=3 {
        let mut m = message("闲聊-1", "小明", &format!("第{i}条 🎉"));
        m.cid = Some(cid(&format!("c{i}")));
        sent.push(store.append(m).await.unwrap().message);
    }
    let pair = QaPair {
        question: "你好".into(),
        answer: "嘎嘎".into(),
    };
    store.add_pairs(std::slice::from_ref(&pair)).await.unwrap();
    let audit = AuditEntry {
        at: at(7),
        actor: AuditEntry::SYSTEM.to_owned(),
        action: AuditAction::Muted,
        target: "bob".to_owned(),
        detail: "闲聊-1, until lifted".to_owned(),
    };
    store.record(audit.clone()).await.unwrap();
    store.close().await;
    drop(store);

    let store = scratch::open(&path).await;
    assert_eq!(store.count_users().await.unwrap(), 2);
    assert_eq!(
        store.members(&room).await.unwrap(),
        vec![name("bob"), name("小明")]
    );
    assert_eq!(
        store.mute(&room, &name("bob"), at(0)).await.unwrap(),
        Some(Mute { until: None })
    );
    assert_eq!(store.last_seq(&room).await.unwrap(), Seq::new(3));
    assert_eq!(
        store.after(&room, Seq::ZERO, 10).await.unwrap().messages,
        sent
    );
    assert_eq!(store.pairs().await.unwrap(), vec![pair]);
    assert_eq!(store.recent(10).await.unwrap(), vec![audit]);
    // The cids are remembered: a retry after a restart is still a duplicate.
    let mut retry = message("闲聊-1", "小明", "第2条 again");
    retry.cid = Some(cid("c2"));
    let again = store.append(retry).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message, sent[1]);
    // And counting goes on where it stopped.
    let next = store
        .append(message("闲聊-1", "bob", "next"))
        .await
        .unwrap();
    assert_eq!(next.message.seq, Seq::new(4));
    assert!(
        store
            .session(&chat_domain::SessionId::generate(), at(0))
            .await
            .unwrap()
            .is_none()
    );
}

/// Every seq from 1 to `n`, read back from the log.
async fn history(store: &SqliteStore, room: &str) -> Vec<u64> {
    let page = store
        .after(&room_name(room), Seq::ZERO, 10_000)
        .await
        .unwrap();
    page.messages.iter().map(|m| m.seq.get()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_appends_acks_nothing_and_leaves_no_gap() {
    let dir = scratch::dir();
    let path = dir.path().join("full.db");
    // The empty schema takes a few dozen pages; a cap of 80 leaves room for
    // a few dozen large messages, then the database is "full".
    let capped = SqliteConfig {
        max_page_count: Some(80),
        ..SqliteConfig::new(scratch::url(&path))
    };
    let store = Arc::new(SqliteStore::connect_with(capped).await.unwrap());
    create_users(store.as_ref(), &["alice"]).await;
    store.create_room(new_room("lobby", "alice")).await.unwrap();
    let big = |i: usize| message("lobby", "alice", &format!("{i:04}{}", "x".repeat(3000)));

    let mut acked = Vec::new();
    let mut refusal = None;
    for i in 0..1_000 {
        match store.append(big(i)).await {
            Ok(a) => acked.push(a.message.seq.get()),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("the capped database fills up");
    assert!(!acked.is_empty(), "some messages fit before the cap");
    assert!(matches!(refusal, StoreError::Unavailable(_)), "{refusal:?}");
    assert!(refusal.to_string().contains("full"), "{refusal}");

    // A burst while full, so the writer meets the error in a group too.
    let burst = join_all((0..50).map(|i| {
        let store = Arc::clone(&store);
        async move { store.append(big(10_000 + i)).await }
    }))
    .await;
    assert!(
        burst.iter().all(Result::is_err),
        "nothing is acked while full"
    );

    // What was acked is there, and nothing else: no gap, no phantom.
    let n = acked.len() as u64;
    assert_eq!(acked, (1..=n).collect::<Vec<_>>());
    assert_eq!(history(&store, "lobby").await, acked);
    assert_eq!(
        store.last_seq(&room_name("lobby")).await.unwrap(),
        Seq::new(n)
    );
    store.check().await.unwrap();
    store.close().await;
    drop(store);

    // With the cap lifted, the log carries on from the last acked seq.
    let store = scratch::open(&path).await;
    let next = store.append(big(20_000)).await.unwrap();
    assert_eq!(next.message.seq, Seq::new(n + 1));
    let mut expected = acked.clone();
    expected.push(n + 1);
    assert_eq!(history(&store, "lobby").await, expected);
}

#[tokio::test]
async fn a_writer_locked_out_fails_as_unavailable_and_recovers_when_the_lock_goes() {
    let dir = scratch::dir();
    let path = dir.path().join("locked.db");
    let config = SqliteConfig {
        busy_timeout: std::time::Duration::from_millis(200),
        ..SqliteConfig::new(scratch::url(&path))
    };
    let store = SqliteStore::connect_with(config).await.unwrap();
    create_users(&store, &["alice"]).await;
    store.create_room(new_room("lobby", "alice")).await.unwrap();
    store
        .append(message("lobby", "alice", "before"))
        .await
        .unwrap();

    // Another process (here: another connection) holds the write lock past
    // the busy timeout, so the group's BEGIN fails and nothing is open to
    // roll back.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let refused = store.append(message("lobby", "alice", "locked out")).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    drop(other);

    // The writer goes on (on a fresh connection) and the refused append
    // took no seq.
    let after = store
        .append(message("lobby", "alice", "after"))
        .await
        .unwrap();
    assert_eq!(after.message.seq, Seq::new(2));
    assert_eq!(history(&store, "lobby").await, [1, 2]);
}
