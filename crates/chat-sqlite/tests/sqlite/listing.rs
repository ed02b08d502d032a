//! Listings on SQLite: the keyed reads behind a room listing bind at most a
//! few hundred names per statement, so a listing of more rooms than that
//! takes several statements and must still answer every room, in order.

use chat_domain::{MessageLog, RoomRepository, Seq};
use chat_testkit::fixtures::{create_users, message, name, new_room, room_name};

use crate::scratch;

#[tokio::test]
async fn listing_reads_answer_every_room_when_they_take_several_statements() {
    const ROOMS: usize = 1_201;
    let dir = scratch::dir();
    let store = scratch::open(&dir.path().join("listing.db")).await;
    create_users(&store, &["alice", "bob"]).await;
    let mut names = Vec::with_capacity(ROOMS);
    for i in 0..ROOMS {
        let room = format!("room-{i:04}");
        store.create_room(new_room(&room, "alice")).await.unwrap();
        names.push(room_name(&room));
    }
    // Marks at both ends and across the statements' seams.
    for i in [0, 499, 500, 999, 1_000, ROOMS - 1] {
        store.add_member(&names[i], &name("bob")).await.unwrap();
        store
            .append(message(names[i].as_str(), "bob", "hi"))
            .await
            .unwrap();
    }
    names.reverse();
    let counts = store.member_counts(&names).await.unwrap();
    let seqs = store.last_seqs(&names).await.unwrap();
    assert_eq!((counts.len(), seqs.len()), (ROOMS, ROOMS));
    for (i, room) in names.iter().enumerate() {
        assert_eq!(counts[i], store.member_count(room).await.unwrap(), "{room}");
        assert_eq!(seqs[i], store.last_seq(room).await.unwrap(), "{room}");
    }
    assert_eq!(counts.iter().filter(|&&n| n == 2).count(), 6);
    assert_eq!(seqs.iter().filter(|&&s| s == Seq::new(1)).count(), 6);
}
