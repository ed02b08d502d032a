//! Opening databases: creating what is missing, refusing what cannot be
//! written, and migrating exactly once.

use std::path::Path;
use std::str::FromStr;

use chat_domain::{
    HealthCheck, MessageLog, PermissionName, RoomRepository, Seq, StoreError, UserRepository,
};
use chat_sqlite::{MIGRATOR, SqliteStore};
use chat_testkit::fixtures::{create_users, message, name, new_room, room_name};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use crate::scratch;

/// A connection of the test's own, to look at the file from outside.
async fn inspect(path: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::from_str(&scratch::url(path))
        .unwrap()
        .read_only(true);
    SqliteConnection::connect_with(&options).await.unwrap()
}

#[tokio::test]
async fn a_missing_directory_and_file_are_created() {
    let dir = scratch::dir();
    let path = dir.path().join("data").join("新").join("hihichat.db");
    let store = scratch::open(&path).await;
    assert!(path.is_file());
    store.check().await.unwrap();
    store.close().await;

    let mut conn = inspect(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn an_unwritable_path_is_an_error_that_names_it() {
    let dir = scratch::dir();
    // A regular file where a directory should be: refused even to root.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let path = blocker.join("hihichat.db");
    let err = SqliteStore::connect(&scratch::url(&path))
        .await
        .unwrap_err();
    // The top-level message, as a one-line error at start-up shows it.
    let shown = err.to_string();
    assert!(
        shown.contains(&path.display().to_string()),
        "{shown:?} does not name {}",
        path.display()
    );

    // A directory where the database file should be.
    let taken = dir.path().join("a-directory.db");
    std::fs::create_dir(&taken).unwrap();
    let err = SqliteStore::connect(&scratch::url(&taken))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&taken.display().to_string()),
        "{err:#}"
    );
}

#[tokio::test]
async fn a_malformed_url_is_an_error_that_quotes_it() {
    let err = SqliteStore::connect("sqlite://x.db?mode=sideways")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("sqlite://x.db?mode=sideways"),
        "{err:#}"
    );
}

#[tokio::test]
async fn migrations_apply_to_an_empty_file_and_a_second_connect_is_a_no_op() {
    let dir = scratch::dir();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();

    let store = scratch::open(&path).await;
    create_users(&store, &["小明"]).await;
    let deploy = PermissionName::parse("deploy").unwrap();
    store.define_permission(&deploy).await.unwrap();
    store.close().await;
    drop(store);

    let applied = |rows: Vec<(i64, bool, Vec<u8>)>| rows;
    let mut conn = inspect(&path).await;
    let first = applied(
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap(),
    );
    let expected: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    assert_eq!(first.iter().map(|r| r.0).collect::<Vec<_>>(), expected);
    assert!(first.iter().all(|r| r.1));
    conn.close().await.unwrap();

    let store = scratch::open(&path).await;
    let mut conn = inspect(&path).await;
    let second: Vec<(i64, bool, Vec<u8>)> =
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(second, first);
    // The built-ins were inserted once, and the data is untouched.
    let mut expected = PermissionName::builtins().to_vec();
    expected.push(deploy);
    expected.sort();
    assert_eq!(store.permissions().await.unwrap(), expected);
    assert!(store.user(&name("小明")).await.unwrap().is_some());
}

#[tokio::test]
async fn an_in_memory_store_works_without_any_file() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    create_users(&store, &["alice"]).await;
    store
        .create_room(new_room("闲聊-1", "alice"))
        .await
        .unwrap();
    let a = store
        .append(message("闲聊-1", "alice", "你好"))
        .await
        .unwrap();
    assert_eq!(a.message.seq, Seq::new(1));
    let page = store
        .after(&room_name("闲聊-1"), Seq::ZERO, 10)
        .await
        .unwrap();
    assert_eq!(page.messages, vec![a.message]);
    store.check().await.unwrap();
    store.close().await;
    assert!(matches!(
        store.check().await,
        Err(StoreError::Unavailable(_))
    ));
}

/// Commits leave the WAL to grow well past SQLite's default checkpoint
/// threshold (1,000 pages, 4 MiB) before it is copied back: with the
/// default, a busy writer checkpointed after nearly every group.
#[tokio::test]
async fn the_wal_is_checkpointed_only_after_many_pages() {
    let dir = scratch::dir();
    let path = dir.path().join("wal.db");
    let store = scratch::open(&path).await;
    create_users(&store, &["alice"]).await;
    store.create_room(new_room("lobby", "alice")).await.unwrap();
    // ≈ 10 MiB in commits of 12 KiB each (one append at a time).
    let body = "字".repeat(4000);
    for _ in 0..800 {
        store
            .append(message("lobby", "alice", &body))
            .await
            .unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
        .unwrap()
        .len();
    // At the default threshold a checkpoint would have sent the WAL back
    // to its beginning every 4 MiB, so the file would stay near that size.
    assert!(wal > 6 << 20, "the WAL is only {wal} bytes");
}
