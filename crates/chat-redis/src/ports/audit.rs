//! `AuditLog` on Redis: one list of JSON entries, newest at the head,
//! trimmed to the newest `AUDIT_KEPT` in the same script that pushes.

use async_trait::async_trait;
use chat_domain::{AUDIT_KEPT, AuditEntry, AuditLog, StoreResult};
use fred::interfaces::ListInterface;

use crate::RedisStore;
use crate::codec::{decode_audit, encode_audit};
use crate::error::from_fred;
use crate::scripts;

#[async_trait]
impl AuditLog for RedisStore {
    async fn record(&self, entry: AuditEntry) -> StoreResult<()> {
        // LPUSH and LTRIM in one script: a trail read between the two never
        // holds more than the cap, and a failure leaves neither half.
        self.run(
            &scripts::RECORD_AUDIT,
            vec![self.keys.audit()],
            vec![encode_audit(&entry)?, AUDIT_KEPT.to_string()],
        )
        .await?;
        Ok(())
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let last = i64::try_from(limit - 1).unwrap_or(i64::MAX);
        let raw: Vec<String> = self
            .client
            .lrange(self.keys.audit(), 0, last)
            .await
            .map_err(from_fred)?;
        raw.iter().map(|r| decode_audit(r)).collect()
    }
}
