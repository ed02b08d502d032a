//! History pages on SQLite: read with the access row in one statement, and
//! a stored row that is not a message is an error, not a page.

use std::str::FromStr;

use chat_domain::{MessageLog, RoomRepository, StoreError};
use chat_testkit::fixtures::{create_users, message, new_room, room_name};
use chat_testkit::message_log::access_with_page_reads_its_own_page;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use crate::scratch;

/// Unlike the contract, which lets a store leave the page to the log, the
/// SQLite store reads it with the access row, and it equals `before`'s.
#[tokio::test]
async fn access_with_page_reads_the_page_in_the_same_statement() {
    let dir = scratch::dir();
    let store = scratch::open(&dir.path().join("history.db")).await;
    access_with_page_reads_its_own_page(&store).await;
}

/// The hot readers parse a row's kind in place; a kind edited behind the
/// store's back must still fail the page with the value it found.
#[tokio::test]
async fn a_page_with_a_corrupt_kind_is_an_unexpected_error_naming_it() {
    let dir = scratch::dir();
    let path = dir.path().join("corrupt.db");
    let store = scratch::open(&path).await;
    create_users(&store, &["alice"]).await;
    store.create_room(new_room("lobby", "alice")).await.unwrap();
    for body in ["one", "two"] {
        store.append(message("lobby", "alice", body)).await.unwrap();
    }
    let room = room_name("lobby");
    assert_eq!(
        store.before(&room, None, 50).await.unwrap().messages.len(),
        2
    );

    let options = SqliteConnectOptions::from_str(&scratch::url(&path)).unwrap();
    let mut outside = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut outside)
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET kind = 'shout' WHERE seq = 2")
        .execute(&mut outside)
        .await
        .unwrap();

    match store.before(&room, None, 50).await {
        Err(StoreError::Unexpected(e)) => assert!(e.to_string().contains("shout"), "{e}"),
        other => panic!("expected an unexpected-data error, got {other:?}"),
    }
}
