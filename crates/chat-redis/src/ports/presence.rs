//! `Presence` on Redis: connections scored by their expiry, so a node that
//! dies without saying goodbye leaves nobody online once the TTL passes.
//!
//! Per (room, user) a sorted set of connections; per room a sorted set of
//! users scored by their latest expiry (so `online` is one range read); and
//! one `presence:due` set scored the same way across rooms, so `expire`
//! finds exactly the users whose last connection ran out, without a scan.

use async_trait::async_trait;
use chat_domain::{ConnectionId, Presence, RoomName, StoreResult, Timestamp, Username};
use fred::interfaces::SortedSetsInterface;

use super::{integer, strings};
use crate::RedisStore;
use crate::codec::corrupt;
use crate::error::from_fred;
use crate::scripts;

impl RedisStore {
    fn presence_keys(&self, room: &RoomName, user: &Username) -> Vec<String> {
        vec![
            self.keys.presence_room(room),
            self.keys.presence_conns(room, user),
            self.keys.presence_due(),
        ]
    }
}

/// `room|user`: neither name may contain `|`.
fn pair(room: &RoomName, user: &Username) -> String {
    format!("{room}|{user}")
}

#[async_trait]
impl Presence for RedisStore {
    async fn touch(
        &self,
        room: &RoomName,
        user: &Username,
        conn: &ConnectionId,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        let arrived = self
            .run(
                &scripts::PRESENCE_TOUCH,
                self.presence_keys(room, user),
                vec![
                    user.as_str().to_owned(),
                    conn.0.clone(),
                    expires_at.as_millis().to_string(),
                    pair(room, user),
                ],
            )
            .await?;
        Ok(integer(&arrived)? == 1)
    }

    async fn remove(
        &self,
        room: &RoomName,
        user: &Username,
        conn: &ConnectionId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let left = self
            .run(
                &scripts::PRESENCE_REMOVE,
                self.presence_keys(room, user),
                vec![
                    user.as_str().to_owned(),
                    conn.0.clone(),
                    now.as_millis().to_string(),
                    pair(room, user),
                ],
            )
            .await?;
        Ok(integer(&left)? == 1)
    }

    async fn online(&self, room: &RoomName, now: Timestamp) -> StoreResult<Vec<Username>> {
        // Live means expiring after `now`, so the lower bound is exclusive.
        let names: Vec<String> = self
            .client
            .zrangebyscore(
                self.keys.presence_room(room),
                format!("({}", now.as_millis()),
                "+inf",
                false,
                None,
            )
            .await
            .map_err(from_fred)?;
        let mut users = names
            .iter()
            .map(|n| Username::parse(n).map_err(corrupt))
            .collect::<StoreResult<Vec<_>>>()?;
        users.sort();
        Ok(users)
    }

    async fn expire(&self, now: Timestamp) -> StoreResult<Vec<(RoomName, Username)>> {
        let pairs = strings(
            self.run(
                &scripts::PRESENCE_EXPIRE,
                vec![self.keys.presence_due()],
                vec![self.keys.prefix().to_owned(), now.as_millis().to_string()],
            )
            .await?,
        )?;
        pairs
            .iter()
            .map(|p| {
                let (room, user) = p
                    .split_once('|')
                    .ok_or_else(|| corrupt(format!("presence entry {p:?}")))?;
                Ok((
                    RoomName::parse(room).map_err(corrupt)?,
                    Username::parse(user).map_err(corrupt)?,
                ))
            })
            .collect()
    }
}
