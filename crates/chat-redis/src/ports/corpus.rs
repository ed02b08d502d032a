//! `BotCorpus` on Redis: a list keeps the insertion order, a set of the same
//! encoded pairs makes adding idempotent.

use async_trait::async_trait;
use chat_domain::{BotCorpus, QaPair, StoreError, StoreResult};
use fred::interfaces::ListInterface;

use super::integer;
use crate::RedisStore;
use crate::codec::corrupt;
use crate::error::from_fred;
use crate::scripts;

/// A pair as a two-element JSON array: stable, so equal pairs encode equally.
fn encode(pair: &QaPair) -> StoreResult<String> {
    serde_json::to_string(&[&pair.question, &pair.answer]).map_err(StoreError::unexpected)
}

fn decode(raw: &str) -> StoreResult<QaPair> {
    let [question, answer]: [String; 2] = serde_json::from_str(raw).map_err(corrupt)?;
    Ok(QaPair { question, answer })
}

#[async_trait]
impl BotCorpus for RedisStore {
    async fn add_pairs(&self, pairs: &[QaPair]) -> StoreResult<u64> {
        if pairs.is_empty() {
            return Ok(0);
        }
        let encoded = pairs.iter().map(encode).collect::<StoreResult<Vec<_>>>()?;
        let added = self
            .run(
                &scripts::ADD_PAIRS,
                vec![self.keys.corpus(), self.keys.corpus_set()],
                encoded,
            )
            .await?;
        Ok(u64::try_from(integer(&added)?).unwrap_or(0))
    }

    async fn pairs(&self) -> StoreResult<Vec<QaPair>> {
        let raw: Vec<String> = self
            .client
            .lrange(self.keys.corpus(), 0, -1)
            .await
            .map_err(from_fred)?;
        raw.iter().map(|r| decode(r)).collect()
    }
}
