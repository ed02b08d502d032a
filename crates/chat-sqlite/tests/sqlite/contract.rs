//! The storage contract shared by every adapter, on a fresh SQLite file
//! per test.

use std::sync::Arc;

use chat_sqlite::SqliteStore;

use crate::scratch;

async fn fresh() -> Arc<SqliteStore> {
    Arc::new(scratch::open(&scratch::lasting_db_path()).await)
}

chat_testkit::storage_tests!(fresh);
chat_testkit::audit_log_tests!(fresh);
