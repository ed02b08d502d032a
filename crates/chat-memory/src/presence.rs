//! `MemoryPresence`: who is online in which room, kept as connections that
//! expire unless renewed by heartbeats.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chat_domain::{ConnectionId, Presence, RoomName, StoreResult, Timestamp, Username};

/// room → user → connection → expiry. Empty inner maps are removed, so the
/// size is bounded by the live (or not yet expired) connections.
type Connections = HashMap<RoomName, HashMap<Username, HashMap<ConnectionId, Timestamp>>>;

/// Presence inside one process.
///
/// A connection counts until its expiry; `online` and `remove` ignore expired
/// ones even before [`Presence::expire`] drops them.
#[derive(Default)]
pub struct MemoryPresence {
    // A std Mutex: each call is a few map operations and never awaits while
    // holding it.
    conns: Mutex<Connections>,
}

impl MemoryPresence {
    /// Nobody online.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryPresence")
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn touch(
        &self,
        room: &RoomName,
        user: &Username,
        conn: &ConnectionId,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        let mut all = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let conns = all
            .entry(room.clone())
            .or_default()
            .entry(user.clone())
            .or_default();
        // `touch` is not told the time, so connections that expired but were
        // not yet swept still count; the next `expire` reports the user only
        // if no connection is left, so join and leave still pair up.
        let was_online = !conns.is_empty();
        conns.insert(conn.clone(), expires_at);
        Ok(!was_online)
    }

    async fn remove(
        &self,
        room: &RoomName,
        user: &Username,
        conn: &ConnectionId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut all = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        // Nothing recorded: never here, or `expire` already reported the
        // leave. Either way this call takes nobody offline.
        let Some(users) = all.get_mut(room) else {
            return Ok(false);
        };
        let Some(conns) = users.get_mut(user) else {
            return Ok(false);
        };
        conns.remove(conn);
        let offline = conns.values().all(|&exp| exp <= now);
        if offline {
            // Drop the expired leftovers too: this call reports the leave,
            // so a later `expire` must not report it again.
            users.remove(user);
            if users.is_empty() {
                all.remove(room);
            }
        }
        Ok(offline)
    }

    async fn online(&self, room: &RoomName, now: Timestamp) -> StoreResult<Vec<Username>> {
        let all = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let mut users: Vec<Username> = all
            .get(room)
            .into_iter()
            .flatten()
            .filter(|(_, conns)| conns.values().any(|&exp| exp > now))
            .map(|(user, _)| user.clone())
            .collect();
        drop(all);
        users.sort();
        Ok(users)
    }

    async fn expire(&self, now: Timestamp) -> StoreResult<Vec<(RoomName, Username)>> {
        let mut all = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        let mut gone = BTreeSet::new();
        all.retain(|room, users| {
            users.retain(|user, conns| {
                conns.retain(|_, &mut exp| exp > now);
                if conns.is_empty() {
                    gone.insert((room.clone(), user.clone()));
                }
                !conns.is_empty()
            });
            !users.is_empty()
        });
        Ok(gone.into_iter().collect())
    }
}
