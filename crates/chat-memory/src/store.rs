//! `MemoryStore`: users, sessions, rooms, history, the bot corpus and the
//! audit trail in one lock-protected state, plus the in-process bus and
//! presence.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{
    AUDIT_KEPT, Appended, AuditEntry, AuditLog, BotCorpus, ClientId, ConnectionId, EventStream,
    HealthCheck, Message, MessageLog, Mute, NewMessage, NewRoom, NewUser, Page, PasswordHash,
    PermissionName, Presence, QaPair, Room, RoomEvent, RoomEvents, RoomName, RoomRepository, Seq,
    Session, SessionId, SessionStore, StoreError, StoreResult, Timestamp, User, UserEvent,
    UserRepository, Username,
};

use crate::bus::MemoryBus;
use crate::presence::MemoryPresence;

struct UserRow {
    user: User,
    hash: PasswordHash,
}

struct RoomRow {
    room: Room,
    members: BTreeSet<Username>,
    banned: BTreeSet<Username>,
    mutes: BTreeMap<Username, Mute>,
    messages: BTreeMap<Seq, Message>,
    /// Kept apart from `messages` so that it never goes down when retention
    /// deletes the newest messages of a quiet room.
    last_seq: Seq,
    /// (sender, cid) → seq of the stored message, for idempotent sends.
    cids: HashMap<(Username, ClientId), Seq>,
    /// One message per this interval per member; `None`: off.
    slow_mode: Option<Duration>,
}

impl RoomRow {
    fn new(room: Room, members: Vec<Username>) -> Self {
        Self {
            room,
            members: members.into_iter().collect(),
            banned: BTreeSet::new(),
            mutes: BTreeMap::new(),
            messages: BTreeMap::new(),
            last_seq: Seq::ZERO,
            cids: HashMap::new(),
            slow_mode: None,
        }
    }
}

#[derive(Default)]
struct State {
    users: BTreeMap<Username, UserRow>,
    /// Defined permissions other than the built-ins, which are always there.
    permissions: BTreeSet<PermissionName>,
    sessions: HashMap<SessionId, Session>,
    rooms: BTreeMap<RoomName, RoomRow>,
    corpus: Vec<QaPair>,
    corpus_seen: HashSet<(String, String)>,
    /// Oldest first; capped at `AUDIT_KEPT` so a long-lived process does
    /// not grow without bound.
    audit: VecDeque<AuditEntry>,
}

impl State {
    fn room_mut(&mut self, name: &RoomName) -> StoreResult<&mut RoomRow> {
        self.rooms.get_mut(name).ok_or(StoreError::NotFound)
    }
}

/// Every port in memory: the reference adapter that the SQLite and Redis
/// adapters are measured against, and a complete store for embedding.
///
/// All data sits behind one std `Mutex`. Each method takes it once, does a
/// few map operations and lets go without awaiting, so an async mutex would
/// only add cost; holding it for a whole operation is also what makes seq
/// assignment and the cid check atomic.
pub struct MemoryStore {
    state: Mutex<State>,
    bus: MemoryBus,
    presence: MemoryPresence,
}

impl MemoryStore {
    /// An empty store: no users, no rooms; the built-in permissions defined.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            bus: MemoryBus::new(),
            presence: MemoryPresence::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-made change that
        // matters more than stopping every later call would, so keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStore")
    }
}

#[async_trait]
impl UserRepository for MemoryStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let mut state = self.state();
        if state.users.contains_key(&user.name) {
            return Err(StoreError::Conflict);
        }
        let stored = User {
            name: user.name.clone(),
            permissions: user.permissions,
            created_at: user.created_at,
        };
        state.users.insert(
            user.name,
            UserRow {
                user: stored.clone(),
                hash: user.password_hash,
            },
        );
        Ok(stored)
    }

    async fn user(&self, name: &Username) -> StoreResult<Option<User>> {
        Ok(self.state().users.get(name).map(|row| row.user.clone()))
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        Ok(self
            .state()
            .users
            .values()
            .map(|row| row.user.clone())
            .collect())
    }

    async fn count_users(&self) -> StoreResult<u64> {
        Ok(self.state().users.len() as u64)
    }

    async fn password_hash(&self, name: &Username) -> StoreResult<Option<PasswordHash>> {
        Ok(self.state().users.get(name).map(|row| row.hash.clone()))
    }

    async fn set_password_hash(&self, name: &Username, hash: PasswordHash) -> StoreResult<()> {
        let mut state = self.state();
        let row = state.users.get_mut(name).ok_or(StoreError::NotFound)?;
        row.hash = hash;
        Ok(())
    }

    async fn set_permissions(
        &self,
        name: &Username,
        permissions: &BTreeSet<PermissionName>,
    ) -> StoreResult<User> {
        let mut state = self.state();
        let row = state.users.get_mut(name).ok_or(StoreError::NotFound)?;
        row.user.permissions = permissions.clone();
        Ok(row.user.clone())
    }

    async fn delete_user(&self, name: &Username) -> StoreResult<()> {
        let mut state = self.state();
        state.users.remove(name).ok_or(StoreError::NotFound)?;
        state.sessions.retain(|_, s| &s.user != name);
        for room in state.rooms.values_mut() {
            room.members.remove(name);
            room.banned.remove(name);
            room.mutes.remove(name);
        }
        Ok(())
    }

    async fn define_permission(&self, name: &PermissionName) -> StoreResult<()> {
        let mut state = self.state();
        if name.is_builtin() || !state.permissions.insert(name.clone()) {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    async fn permissions(&self) -> StoreResult<Vec<PermissionName>> {
        let mut all = self.state().permissions.clone();
        all.extend(PermissionName::builtins());
        Ok(all.into_iter().collect())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, session: Session) -> StoreResult<()> {
        let mut state = self.state();
        // Sweeping expired sessions here keeps the map bounded without a timer.
        let now = session.created_at;
        if state.sessions.len() >= 1024 && state.sessions.len().is_power_of_two() {
            state.sessions.retain(|_, s| s.expires_at > now);
        }
        state.sessions.insert(session.id.clone(), session);
        Ok(())
    }

    async fn session(&self, id: &SessionId, now: Timestamp) -> StoreResult<Option<Session>> {
        Ok(self
            .state()
            .sessions
            .get(id)
            .filter(|s| now < s.expires_at)
            .cloned())
    }

    async fn delete_session(&self, id: &SessionId) -> StoreResult<()> {
        self.state().sessions.remove(id);
        Ok(())
    }

    async fn delete_user_sessions(
        &self,
        user: &Username,
        keep: Option<&SessionId>,
    ) -> StoreResult<u64> {
        let mut state = self.state();
        let before = state.sessions.len();
        state
            .sessions
            .retain(|id, s| &s.user != user || Some(id) == keep);
        Ok((before - state.sessions.len()) as u64)
    }
}

#[async_trait]
impl RoomRepository for MemoryStore {
    async fn create_room(&self, room: NewRoom) -> StoreResult<Room> {
        let mut state = self.state();
        if state.rooms.contains_key(&room.room.name) {
            return Err(StoreError::Conflict);
        }
        let stored = room.room.clone();
        state.rooms.insert(
            room.room.name.clone(),
            RoomRow::new(room.room, room.members),
        );
        Ok(stored)
    }

    async fn room(&self, name: &RoomName) -> StoreResult<Option<Room>> {
        Ok(self.state().rooms.get(name).map(|r| r.room.clone()))
    }

    async fn rooms(&self) -> StoreResult<Vec<Room>> {
        Ok(self
            .state()
            .rooms
            .values()
            .filter(|r| !r.room.is_direct())
            .map(|r| r.room.clone())
            .collect())
    }

    async fn rooms_of(&self, user: &Username) -> StoreResult<Vec<Room>> {
        Ok(self
            .state()
            .rooms
            .values()
            .filter(|r| r.members.contains(user))
            .map(|r| r.room.clone())
            .collect())
    }

    async fn add_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        Ok(self.state().room_mut(room)?.members.insert(user.clone()))
    }

    async fn remove_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        Ok(self.state().room_mut(room)?.members.remove(user))
    }

    async fn members(&self, room: &RoomName) -> StoreResult<Vec<Username>> {
        let state = self.state();
        let row = state.rooms.get(room).ok_or(StoreError::NotFound)?;
        Ok(row.members.iter().cloned().collect())
    }

    async fn member_count(&self, room: &RoomName) -> StoreResult<u64> {
        Ok(self
            .state()
            .rooms
            .get(room)
            .map_or(0, |r| r.members.len() as u64))
    }

    async fn member_counts(&self, rooms: &[RoomName]) -> StoreResult<Vec<u64>> {
        let state = self.state();
        Ok(rooms
            .iter()
            .map(|room| state.rooms.get(room).map_or(0, |r| r.members.len() as u64))
            .collect())
    }

    async fn is_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        Ok(self
            .state()
            .rooms
            .get(room)
            .is_some_and(|r| r.members.contains(user)))
    }

    async fn set_banned(&self, room: &RoomName, user: &Username, banned: bool) -> StoreResult<()> {
        let mut state = self.state();
        let row = state.room_mut(room)?;
        if banned {
            row.banned.insert(user.clone());
        } else {
            row.banned.remove(user);
        }
        Ok(())
    }

    async fn is_banned(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        Ok(self
            .state()
            .rooms
            .get(room)
            .is_some_and(|r| r.banned.contains(user)))
    }

    async fn set_mute(
        &self,
        room: &RoomName,
        user: &Username,
        mute: Option<Mute>,
    ) -> StoreResult<()> {
        let mut state = self.state();
        let row = state.room_mut(room)?;
        match mute {
            Some(m) => row.mutes.insert(user.clone(), m),
            None => row.mutes.remove(user),
        };
        Ok(())
    }

    async fn mute(
        &self,
        room: &RoomName,
        user: &Username,
        now: Timestamp,
    ) -> StoreResult<Option<Mute>> {
        Ok(self
            .state()
            .rooms
            .get(room)
            .and_then(|r| r.mutes.get(user))
            .filter(|m| m.active_at(now))
            .copied())
    }

    async fn mutes(&self, room: &RoomName, now: Timestamp) -> StoreResult<Vec<(Username, Mute)>> {
        Ok(self
            .state()
            .rooms
            .get(room)
            .into_iter()
            .flat_map(|r| r.mutes.iter())
            .filter(|(_, m)| m.active_at(now))
            .map(|(u, m)| (u.clone(), *m))
            .collect())
    }

    async fn set_slow_mode(&self, room: &RoomName, interval: Option<Duration>) -> StoreResult<()> {
        self.state().room_mut(room)?.slow_mode = interval;
        Ok(())
    }

    async fn slow_mode(&self, room: &RoomName) -> StoreResult<Option<Duration>> {
        Ok(self.state().rooms.get(room).and_then(|r| r.slow_mode))
    }
}

#[async_trait]
impl MessageLog for MemoryStore {
    async fn append(&self, message: NewMessage) -> StoreResult<Appended> {
        // One lock for the cid check, the seq and the insert: two appends
        // can never see the same last seq or both miss the same cid.
        let mut state = self.state();
        let row = state.room_mut(&message.room)?;
        if let Some(cid) = &message.cid {
            let key = (message.from.clone(), cid.clone());
            if let Some(earlier) = row.cids.get(&key).and_then(|s| row.messages.get(s)) {
                return Ok(Appended {
                    message: earlier.clone(),
                    duplicate: true,
                });
            }
        }
        let seq = row.last_seq.next();
        let stored = Message {
            room: message.room,
            seq,
            from: message.from,
            text: message.text,
            ts: message.ts,
            cid: message.cid,
            kind: message.kind,
        };
        if let Some(cid) = &stored.cid {
            row.cids.insert((stored.from.clone(), cid.clone()), seq);
        }
        row.messages.insert(seq, stored.clone());
        row.last_seq = seq;
        Ok(Appended {
            message: stored,
            duplicate: false,
        })
    }

    async fn before(
        &self,
        room: &RoomName,
        before: Option<Seq>,
        limit: usize,
    ) -> StoreResult<Page> {
        let state = self.state();
        let Some(row) = state.rooms.get(room) else {
            return Ok(Page::default());
        };
        let upper = before.map_or(Bound::Unbounded, Bound::Excluded);
        let mut older = row.messages.range((Bound::Unbounded, upper)).rev();
        let mut messages: Vec<Message> =
            older.by_ref().take(limit).map(|(_, m)| m.clone()).collect();
        let more = older.next().is_some();
        messages.reverse();
        Ok(Page { messages, more })
    }

    async fn after(&self, room: &RoomName, after: Seq, limit: usize) -> StoreResult<Page> {
        let state = self.state();
        let Some(row) = state.rooms.get(room) else {
            return Ok(Page::default());
        };
        let mut newer = row
            .messages
            .range((Bound::Excluded(after), Bound::Unbounded));
        let messages: Vec<Message> = newer.by_ref().take(limit).map(|(_, m)| m.clone()).collect();
        let more = newer.next().is_some();
        Ok(Page { messages, more })
    }

    async fn last_seq(&self, room: &RoomName) -> StoreResult<Seq> {
        Ok(self
            .state()
            .rooms
            .get(room)
            .map_or(Seq::ZERO, |r| r.last_seq))
    }

    async fn last_seqs(&self, rooms: &[RoomName]) -> StoreResult<Vec<Seq>> {
        let state = self.state();
        Ok(rooms
            .iter()
            .map(|room| state.rooms.get(room).map_or(Seq::ZERO, |r| r.last_seq))
            .collect())
    }

    async fn delete_before(&self, cutoff: Timestamp, batch: usize) -> StoreResult<u64> {
        let mut state = self.state();
        let mut left = batch;
        for row in state.rooms.values_mut() {
            if left == 0 {
                break;
            }
            let old: Vec<Seq> = row
                .messages
                .values()
                .filter(|m| m.ts < cutoff)
                .take(left)
                .map(|m| m.seq)
                .collect();
            left -= old.len();
            for seq in old {
                if let Some(m) = row.messages.remove(&seq) {
                    // The cid goes with its message, as a row delete takes it in SQL.
                    if let Some(cid) = m.cid {
                        row.cids.remove(&(m.from, cid));
                    }
                }
            }
            // `last_seq` is deliberately left alone.
        }
        Ok((batch - left) as u64)
    }
}

#[async_trait]
impl BotCorpus for MemoryStore {
    async fn add_pairs(&self, pairs: &[QaPair]) -> StoreResult<u64> {
        let mut state = self.state();
        let mut added = 0;
        for pair in pairs {
            if state
                .corpus_seen
                .insert((pair.question.clone(), pair.answer.clone()))
            {
                state.corpus.push(pair.clone());
                added += 1;
            }
        }
        Ok(added)
    }

    async fn pairs(&self) -> StoreResult<Vec<QaPair>> {
        Ok(self.state().corpus.clone())
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn record(&self, entry: AuditEntry) -> StoreResult<()> {
        let mut state = self.state();
        if state.audit.len() == AUDIT_KEPT {
            state.audit.pop_front();
        }
        state.audit.push_back(entry);
        Ok(())
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        Ok(self
            .state()
            .audit
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl HealthCheck for MemoryStore {
    fn component(&self) -> &'static str {
        "memory"
    }

    async fn check(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl RoomEvents for MemoryStore {
    async fn publish(&self, room: &RoomName, event: RoomEvent) -> StoreResult<()> {
        self.bus.publish(room, event).await
    }

    async fn subscribe(&self, room: &RoomName) -> StoreResult<EventStream<RoomEvent>> {
        self.bus.subscribe(room).await
    }

    async fn publish_user(&self, user: &Username, event: UserEvent) -> StoreResult<()> {
        self.bus.publish_user(user, event).await
    }

    async fn subscribe_user(&self, user: &Username) -> StoreResult<EventStream<UserEvent>> {
        self.bus.subscribe_user(user).await
    }
}

#[async_trait]
impl Presence for MemoryStore {
    async fn touch(
        &self,
        room: &RoomName,
        user: &Username,
        conn: &ConnectionId,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        self.presence.touch(room, user, conn, expires_at).await
    }

    async fn remove(
        &self,
        room: &RoomName,
        user: &Username,
        conn: &ConnectionId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.presence.remove(room, user, conn, now).await
    }

    async fn online(&self, room: &RoomName, now: Timestamp) -> StoreResult<Vec<Username>> {
        self.presence.online(room, now).await
    }

    async fn expire(&self, now: Timestamp) -> StoreResult<Vec<(RoomName, Username)>> {
        self.presence.expire(now).await
    }
}
