//! History pages on SQLite come with the access read, in one statement.

use chat_domain::{MessageLog, RoomRepository, Seq};
use chat_testkit::fixtures::{T0, create_users, message, name, new_room, room_name};

use crate::scratch;

/// Unlike the contract, which lets a store leave the page to the log, the
/// SQLite store reads it with the access row, and it equals `before`'s.
#[tokio::test]
async fn access_with_page_reads_the_page_in_the_same_statement() {
    let dir = scratch::dir();
    let store = scratch::open(&dir.path().join("history.db")).await;
    create_users(&store, &["alice"]).await;
    store.create_room(new_room("lobby", "alice")).await.unwrap();
    for i in 0..120 {
        store
            .append(message("lobby", "alice", &format!("m{i}")))
            .await
            .unwrap();
    }
    let lobby = room_name("lobby");
    for before in [None, Some(Seq::new(71)), Some(Seq::new(51))] {
        let (access, page) = store
            .access_with_page(&lobby, Some(&name("alice")), T0, before, 50)
            .await
            .unwrap()
            .unwrap();
        assert!(access.standing.member);
        let page = page.expect("SQLite reads the page with the access row");
        assert_eq!(page, store.before(&lobby, before, 50).await.unwrap());
    }
    let (_, page) = store
        .access_with_page(&lobby, None, T0, Some(Seq::new(71)), 50)
        .await
        .unwrap()
        .unwrap();
    let page = page.unwrap();
    assert_eq!(page.messages.first().map(|m| m.seq), Some(Seq::new(21)));
    assert_eq!(page.messages.last().map(|m| m.seq), Some(Seq::new(70)));
    assert!(page.more);
}
