//! The storage contract shared by every adapter: on a fresh SQLite file
//! per test, and on an in-memory database, whose hot reads take the other
//! road (the pool's one connection instead of the rusqlite readers).

use std::sync::Arc;

use chat_sqlite::SqliteStore;

use crate::scratch;

async fn fresh() -> Arc<SqliteStore> {
    Arc::new(scratch::open(&scratch::lasting_db_path()).await)
}

chat_testkit::storage_tests!(fresh);
chat_testkit::audit_log_tests!(fresh);

mod in_memory {
    use std::sync::Arc;

    use chat_sqlite::SqliteStore;

    async fn fresh() -> Arc<SqliteStore> {
        Arc::new(SqliteStore::connect("sqlite::memory:").await.unwrap())
    }

    chat_testkit::storage_tests!(fresh);
}
