//! `SessionStore` on SQLite.

use async_trait::async_trait;
use chat_domain::{Session, SessionId, SessionStore, StoreResult, Timestamp, Username};

use crate::SqliteStore;
use crate::error::{parse, store_error};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: Session) -> StoreResult<()> {
        // Nothing else ever removes expired sessions, so each login sweeps
        // them; the expiry index keeps this cheap.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1")
            .bind(session.created_at.as_millis())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO sessions (id, user, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(session.id.as_str())
        .bind(session.user.as_str())
        .bind(session.created_at.as_millis())
        .bind(session.expires_at.as_millis())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn session(&self, id: &SessionId, now: Timestamp) -> StoreResult<Option<Session>> {
        let row: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT user, created_at, expires_at FROM sessions WHERE id = ?1 AND expires_at > ?2",
        )
        .bind(id.as_str())
        .bind(now.as_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(|(user, created_at, expires_at)| {
            Ok(Session {
                id: id.clone(),
                user: parse(user, Username::parse, "username")?,
                created_at: Timestamp::from_millis(created_at),
                expires_at: Timestamp::from_millis(expires_at),
            })
        })
        .transpose()
    }

    async fn delete_session(&self, id: &SessionId) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id = ?1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn delete_user_sessions(
        &self,
        user: &Username,
        keep: Option<&SessionId>,
    ) -> StoreResult<u64> {
        // `id IS NOT ?2` keeps every row when `keep` is NULL.
        let done = sqlx::query("DELETE FROM sessions WHERE user = ?1 AND id IS NOT ?2")
            .bind(user.as_str())
            .bind(keep.map(SessionId::as_str))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
