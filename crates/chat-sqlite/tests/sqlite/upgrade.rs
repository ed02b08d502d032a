//! A database made by an earlier version keeps everything through the
//! migrations that came after it.

use chat_domain::{MessageLog, Seq};
use chat_testkit::fixtures::{cid, message, name, room_name};
use sqlx::Connection as _;

use crate::scratch;

/// 0003 rebuilds `messages` clustered on (room, seq): every message, its
/// order and its idempotency key must survive the copy.
#[tokio::test]
async fn messages_survive_the_move_to_a_clustered_table() {
    let dir = scratch::dir();
    let path = dir.path().join("old.db");
    // The schema as version 0002 left it, from the migration files themselves.
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    for file in ["0001_initial.sql", "0002_slow_mode.sql"] {
        std::fs::copy(here.join(file), old.join(file)).unwrap();
    }
    let url = format!("{}?mode=rwc", scratch::url(&path));
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    for statement in [
        "INSERT INTO users (name, password_hash, created_at) VALUES ('alice', 'x', 0)",
        "INSERT INTO rooms (name, description, visibility, created_by, created_at, last_seq) \
         VALUES ('lobby', '', 'public', 'alice', 0, 3), ('闲聊', '', 'public', 'alice', 0, 1)",
        "INSERT INTO messages (room, seq, sender, text, ts, cid, kind) VALUES \
         ('lobby', 1, 'alice', 'one', 10, 'c-1', 'chat'), \
         ('lobby', 2, 'alice', 'two', 20, NULL, 'notice'), \
         ('闲聊', 1, 'alice', '你好', 15, 'c-1', 'chat'), \
         ('lobby', 3, 'alice', 'three', 30, 'c-3', 'chat')",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = scratch::open(&path).await;
    let lobby = room_name("lobby");
    let page = store.before(&lobby, None, 10).await.unwrap();
    let texts: Vec<&str> = page.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["one", "two", "three"]);
    assert!(!page.more);
    let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq.get()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let other = store
        .after(&room_name("闲聊"), Seq::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(other.messages[0].text.as_str(), "你好");

    // The cid index came back: a retry of c-3 is the stored message, and a
    // new message gets the next seq.
    let mut retry = message("lobby", "alice", "three");
    retry.cid = Some(cid("c-3"));
    let again = store.append(retry).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.seq, Seq::new(3));
    let fresh = store
        .append(message("lobby", "alice", "four"))
        .await
        .unwrap();
    assert_eq!(fresh.message.seq, Seq::new(4));
    assert_eq!(fresh.message.from, name("alice"));
}
