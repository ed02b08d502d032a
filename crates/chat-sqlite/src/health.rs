//! `HealthCheck` on SQLite: the database answers a trivial query.

use async_trait::async_trait;
use chat_domain::{HealthCheck, StoreError, StoreResult};

use crate::SqliteStore;

#[async_trait]
impl HealthCheck for SqliteStore {
    fn component(&self) -> &'static str {
        "sqlite"
    }

    async fn check(&self) -> StoreResult<()> {
        // Any failure here means "not ready", whatever its cause.
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }
}
