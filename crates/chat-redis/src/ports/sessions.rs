//! `SessionStore` on Redis: a hash per session that Redis expires by itself,
//! plus a set per user so "log out everywhere" needs no scan.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chat_domain::{Session, SessionId, SessionStore, StoreResult, Timestamp, Username};
use fred::interfaces::HashesInterface;

use super::{integer, millis};
use crate::RedisStore;
use crate::codec::corrupt;
use crate::error::from_fred;
use crate::scripts;

/// How long a session outlives its expiry in Redis when the expiry is
/// already past by the wall clock. Expiry is judged by the caller's clock
/// (`now`), which may differ from Redis's (tests drive a manual clock), so
/// Redis's own expiry only collects garbage and must never be the earlier one.
const GRACE: Duration = Duration::from_secs(24 * 3600);

/// When Redis should drop the session's key: its expiry, or a day from the
/// wall clock if that is later.
fn expire_key_at(expires_at: Timestamp) -> i64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    expires_at
        .as_millis()
        .max(Timestamp::from_millis(wall).plus(GRACE).as_millis())
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create_session(&self, session: Session) -> StoreResult<()> {
        self.run(
            &scripts::CREATE_SESSION,
            vec![
                self.keys.session(&session.id),
                self.keys.user_sessions(&session.user),
            ],
            vec![
                self.keys.prefix().to_owned(),
                session.id.as_str().to_owned(),
                session.user.as_str().to_owned(),
                session.created_at.as_millis().to_string(),
                session.expires_at.as_millis().to_string(),
                expire_key_at(session.expires_at).to_string(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn session(&self, id: &SessionId, now: Timestamp) -> StoreResult<Option<Session>> {
        let (user, at, exp): (Option<String>, Option<String>, Option<String>) = self
            .client
            .hmget(self.keys.session(id), vec!["user", "at", "exp"])
            .await
            .map_err(from_fred)?;
        let (Some(user), Some(at), Some(exp)) = (user, at, exp) else {
            return Ok(None);
        };
        let session = Session {
            id: id.clone(),
            user: Username::parse(&user).map_err(corrupt)?,
            created_at: millis(&at)?,
            expires_at: millis(&exp)?,
        };
        Ok((now < session.expires_at).then_some(session))
    }

    async fn delete_session(&self, id: &SessionId) -> StoreResult<()> {
        self.run(
            &scripts::DELETE_SESSION,
            vec![self.keys.session(id)],
            vec![self.keys.prefix().to_owned(), id.as_str().to_owned()],
        )
        .await?;
        Ok(())
    }

    async fn delete_user_sessions(
        &self,
        user: &Username,
        keep: Option<&SessionId>,
    ) -> StoreResult<u64> {
        let gone = self
            .run(
                &scripts::DELETE_USER_SESSIONS,
                vec![self.keys.user_sessions(user)],
                vec![
                    self.keys.prefix().to_owned(),
                    keep.map(|k| k.as_str().to_owned()).unwrap_or_default(),
                ],
            )
            .await?;
        Ok(u64::try_from(integer(&gone)?).unwrap_or(0))
    }
}
