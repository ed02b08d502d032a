//! History pages on SQLite come with the access read, in one statement.

use chat_testkit::message_log::access_with_page_reads_its_own_page;

use crate::scratch;

/// Unlike the contract, which lets a store leave the page to the log, the
/// SQLite store reads it with the access row, and it equals `before`'s.
#[tokio::test]
async fn access_with_page_reads_the_page_in_the_same_statement() {
    let dir = scratch::dir();
    let store = scratch::open(&dir.path().join("history.db")).await;
    access_with_page_reads_its_own_page(&store).await;
}
