//! `BotCorpus` on SQLite.

use async_trait::async_trait;
use chat_domain::{BotCorpus, QaPair, StoreResult};

use crate::SqliteStore;
use crate::error::store_error;
use crate::tx::WriteTx;

#[async_trait]
impl BotCorpus for SqliteStore {
    async fn add_pairs(&self, pairs: &[QaPair]) -> StoreResult<u64> {
        // One transaction for the lot: a corpus of thousands of pairs costs
        // one fsync, and a failure leaves the corpus as it was.
        let mut tx = WriteTx::begin(&self.pool).await.map_err(store_error)?;
        let result = async {
            let mut added = 0;
            for pair in pairs {
                let done = sqlx::query(
                    "INSERT INTO bot_corpus (question, answer) VALUES (?1, ?2) \
                     ON CONFLICT (question, answer) DO NOTHING",
                )
                .bind(pair.question.as_str())
                .bind(pair.answer.as_str())
                .execute(&mut *tx.conn())
                .await
                .map_err(store_error)?;
                added += done.rows_affected();
            }
            Ok(added)
        }
        .await;
        tx.finish(result).await
    }

    async fn pairs(&self) -> StoreResult<Vec<QaPair>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT question, answer FROM bot_corpus ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(|(question, answer)| QaPair { question, answer })
            .collect())
    }
}
