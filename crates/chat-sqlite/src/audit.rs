//! `AuditLog` on SQLite: an append-only table read newest first.
//!
//! Admin and moderation actions are rare, so the whole trail is kept (the
//! port allows dropping entries beyond `AUDIT_KEPT`, but need not).

use async_trait::async_trait;
use chat_domain::{AuditAction, AuditEntry, AuditLog, StoreError, StoreResult, Timestamp};

use crate::SqliteStore;
use crate::error::store_error;
use crate::rows::count_bound;

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, entry: AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(entry.at.as_millis())
        .bind(entry.actor.as_str())
        .bind(entry.action.as_str())
        .bind(entry.target.as_str())
        .bind(entry.detail.as_str())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
        )
        .bind(count_bound(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|(at, actor, action, target, detail)| {
                Ok(AuditEntry {
                    at: Timestamp::from_millis(at),
                    actor,
                    action: AuditAction::parse(&action).ok_or_else(|| {
                        StoreError::unexpected(format!("stored audit action {action:?} is invalid"))
                    })?,
                    target,
                    detail,
                })
            })
            .collect()
    }
}
