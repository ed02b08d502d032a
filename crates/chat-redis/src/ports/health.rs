//! `HealthCheck` for `/readyz`: Redis answers PING within the command timeout.

use async_trait::async_trait;
use chat_domain::{HealthCheck, StoreError, StoreResult};
use fred::interfaces::ClientLike;
use fred::types::Value;

use crate::RedisStore;

#[async_trait]
impl HealthCheck for RedisStore {
    fn component(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> StoreResult<()> {
        // While reconnecting the answer is known: don't make /readyz wait
        // out the command timeout to say so.
        if !self.client.is_connected() {
            return Err(StoreError::unavailable("not connected to Redis"));
        }
        // Whatever went wrong, the answer to "is Redis there?" is no.
        let _: Value = self
            .client
            .ping(None)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }
}
