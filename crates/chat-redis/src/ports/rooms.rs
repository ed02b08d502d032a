//! `RoomRepository` on Redis: a hash per room, sets of members and barred
//! users kept in both directions (room → users for listing, user → rooms so
//! deleting a user needs no scan), and a hash of mutes per room.
//!
//! `access` runs on every send, so it reads all of that for one caller in a
//! single script instead of asking key by key.

use std::time::Duration;

use async_trait::async_trait;
use chat_domain::{
    Description, Mute, NewRoom, Page, Room, RoomAccess, RoomName, RoomRepository, Seq, Standing,
    StoreError, StoreResult, Timestamp, Username, Visibility,
};
use fred::interfaces::{ClientLike as _, HashesInterface, SetsInterface};
use fred::types::Value;

use super::{array, integer, millis, strings};
use crate::RedisStore;
use crate::codec::corrupt;
use crate::error::from_fred;
use crate::scripts;

/// How a mute that lasts until lifted is stored.
const FOREVER: &str = "inf";

/// The field of the room hash holding the slow-mode interval in seconds
/// (absent: off).
const SLOW_MODE: &str = "slow";

fn room_from(name: RoomName, desc: &str, vis: &str, by: &str, at: &str) -> StoreResult<Room> {
    Ok(Room {
        name,
        description: Description::parse(desc).map_err(corrupt)?,
        visibility: Visibility::parse(vis).ok_or_else(|| corrupt(format!("visibility {vis:?}")))?,
        created_by: Username::parse(by).map_err(corrupt)?,
        created_at: millis(at)?,
    })
}

fn parse_mute(raw: &str) -> StoreResult<Mute> {
    if raw == FOREVER {
        Ok(Mute { until: None })
    } else {
        millis(raw).map(|until| Mute { until: Some(until) })
    }
}

/// The mute stored in a field (`None`: no field) if it still holds at `now`.
fn active_mute(raw: Option<&str>, now: Timestamp) -> StoreResult<Option<Mute>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let mute = parse_mute(raw)?;
    Ok(mute.active_at(now).then_some(mute))
}

/// The slow-mode interval stored in the room hash (`None`: no field, off).
fn parse_slow_mode(raw: Option<&str>) -> StoreResult<Option<Duration>> {
    raw.map(|s| {
        s.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| corrupt(format!("slow mode {s:?}")))
    })
    .transpose()
}

/// -1 from a room script means the room does not exist.
fn found(reply: &Value) -> StoreResult<i64> {
    match integer(reply)? {
        -1 => Err(StoreError::NotFound),
        n => Ok(n),
    }
}

impl RedisStore {
    /// Every room named in the set at `index`, sorted by name.
    async fn rooms_in(&self, index: String) -> StoreResult<Vec<Room>> {
        let flat = strings(
            self.run(
                &scripts::ROOMS_IN_SET,
                vec![index],
                vec![self.keys.prefix().to_owned()],
            )
            .await?,
        )?;
        let mut rooms = flat
            .chunks_exact(5)
            .map(|row| {
                let name = RoomName::parse(&row[0]).map_err(corrupt)?;
                room_from(name, &row[1], &row[2], &row[3], &row[4])
            })
            .collect::<StoreResult<Vec<_>>>()?;
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rooms)
    }

    /// Adds (`add`) or removes a user in a room-side set and its mirror.
    async fn room_user_set(
        &self,
        room: &RoomName,
        user: &Username,
        room_side: String,
        user_side: String,
        add: bool,
    ) -> StoreResult<bool> {
        let reply = self
            .run(
                &scripts::ROOM_USER_SET,
                vec![self.keys.room(room), room_side, user_side],
                vec![
                    user.as_str().to_owned(),
                    room.as_str().to_owned(),
                    if add { "add" } else { "rem" }.to_owned(),
                ],
            )
            .await?;
        Ok(found(&reply)? == 1)
    }
}

#[async_trait]
impl RoomRepository for RedisStore {
    async fn create_room(&self, new: NewRoom) -> StoreResult<Room> {
        let room = new.room;
        let mut args = vec![
            self.keys.prefix().to_owned(),
            room.name.as_str().to_owned(),
            room.description.as_str().to_owned(),
            room.visibility.as_str().to_owned(),
            room.created_by.as_str().to_owned(),
            room.created_at.as_millis().to_string(),
            if room.is_direct() { "1" } else { "0" }.to_owned(),
        ];
        args.extend(new.members.iter().map(|m| m.as_str().to_owned()));
        let created = self
            .run(
                &scripts::CREATE_ROOM,
                vec![self.keys.room(&room.name), self.keys.rooms()],
                args,
            )
            .await?;
        if integer(&created)? == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(room)
    }

    async fn room(&self, name: &RoomName) -> StoreResult<Option<Room>> {
        let (desc, vis, by, at): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = self
            .client
            .hmget(self.keys.room(name), vec!["desc", "vis", "by", "at"])
            .await
            .map_err(from_fred)?;
        let Some(at) = at else {
            return Ok(None);
        };
        room_from(
            name.clone(),
            desc.as_deref().unwrap_or(""),
            vis.as_deref().unwrap_or(""),
            by.as_deref().unwrap_or(""),
            &at,
        )
        .map(Some)
    }

    async fn rooms(&self) -> StoreResult<Vec<Room>> {
        self.rooms_in(self.keys.rooms()).await
    }

    async fn rooms_of(&self, user: &Username) -> StoreResult<Vec<Room>> {
        self.rooms_in(self.keys.user_rooms(user)).await
    }

    async fn add_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        let (room_side, user_side) = (self.keys.room_members(room), self.keys.user_rooms(user));
        self.room_user_set(room, user, room_side, user_side, true)
            .await
    }

    async fn remove_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        let (room_side, user_side) = (self.keys.room_members(room), self.keys.user_rooms(user));
        self.room_user_set(room, user, room_side, user_side, false)
            .await
    }

    async fn members(&self, room: &RoomName) -> StoreResult<Vec<Username>> {
        let reply = self
            .run(
                &scripts::ROOM_MEMBERS,
                vec![self.keys.room(room), self.keys.room_members(room)],
                Vec::new(),
            )
            .await?;
        if reply.as_i64() == Some(-1) {
            return Err(StoreError::NotFound);
        }
        let mut members = strings(reply)?
            .iter()
            .map(|m| Username::parse(m).map_err(corrupt))
            .collect::<StoreResult<Vec<_>>>()?;
        members.sort();
        Ok(members)
    }

    async fn member_count(&self, room: &RoomName) -> StoreResult<u64> {
        self.client
            .scard(self.keys.room_members(room))
            .await
            .map_err(from_fred)
    }

    async fn member_counts(&self, rooms: &[RoomName]) -> StoreResult<Vec<u64>> {
        let keys = rooms.iter().map(|r| self.keys.room_members(r)).collect();
        self.each_key("SCARD", keys)
            .await?
            .iter()
            .map(|reply| {
                let n = integer(reply)?;
                u64::try_from(n).map_err(|_| corrupt(format!("member count {n}")))
            })
            .collect()
    }

    async fn is_member(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        self.client
            .sismember(self.keys.room_members(room), user.as_str())
            .await
            .map_err(from_fred)
    }

    async fn set_banned(&self, room: &RoomName, user: &Username, banned: bool) -> StoreResult<()> {
        let (room_side, user_side) = (self.keys.room_banned(room), self.keys.user_banned(user));
        self.room_user_set(room, user, room_side, user_side, banned)
            .await
            .map(drop)
    }

    async fn is_banned(&self, room: &RoomName, user: &Username) -> StoreResult<bool> {
        self.client
            .sismember(self.keys.room_banned(room), user.as_str())
            .await
            .map_err(from_fred)
    }

    async fn set_mute(
        &self,
        room: &RoomName,
        user: &Username,
        mute: Option<Mute>,
    ) -> StoreResult<()> {
        let stored = match mute {
            None => String::new(),
            Some(Mute { until: None }) => FOREVER.to_owned(),
            Some(Mute { until: Some(t) }) => t.as_millis().to_string(),
        };
        let reply = self
            .run(
                &scripts::SET_MUTE,
                vec![
                    self.keys.room(room),
                    self.keys.room_mutes(room),
                    self.keys.user_muted(user),
                ],
                vec![user.as_str().to_owned(), room.as_str().to_owned(), stored],
            )
            .await?;
        found(&reply).map(drop)
    }

    async fn mute(
        &self,
        room: &RoomName,
        user: &Username,
        now: Timestamp,
    ) -> StoreResult<Option<Mute>> {
        let raw: Option<String> = self
            .client
            .hget(self.keys.room_mutes(room), user.as_str())
            .await
            .map_err(from_fred)?;
        active_mute(raw.as_deref(), now)
    }

    async fn mutes(&self, room: &RoomName, now: Timestamp) -> StoreResult<Vec<(Username, Mute)>> {
        let all: Vec<(String, String)> = self
            .client
            .hgetall::<std::collections::HashMap<String, String>, _>(self.keys.room_mutes(room))
            .await
            .map_err(from_fred)?
            .into_iter()
            .collect();
        let mut active = Vec::new();
        for (user, raw) in all {
            if let Some(mute) = active_mute(Some(&raw), now)? {
                active.push((Username::parse(&user).map_err(corrupt)?, mute));
            }
        }
        active.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(active)
    }

    async fn set_slow_mode(&self, room: &RoomName, interval: Option<Duration>) -> StoreResult<()> {
        let value = interval.map_or_else(String::new, |d| d.as_secs().to_string());
        let reply = self
            .run(
                &scripts::SET_ROOM_FIELD,
                vec![self.keys.room(room)],
                vec![SLOW_MODE.to_owned(), value],
            )
            .await?;
        found(&reply).map(drop)
    }

    async fn slow_mode(&self, room: &RoomName) -> StoreResult<Option<Duration>> {
        let raw: Option<String> = self
            .client
            .hget(self.keys.room(room), SLOW_MODE)
            .await
            .map_err(from_fred)?;
        parse_slow_mode(raw.as_deref())
    }

    async fn access(
        &self,
        room: &RoomName,
        user: Option<&Username>,
        now: Timestamp,
    ) -> StoreResult<Option<RoomAccess>> {
        Ok(self
            .access_reply(room, user, now, None)
            .await?
            .map(|(access, _)| access))
    }

    async fn access_with_page(
        &self,
        room: &RoomName,
        user: Option<&Username>,
        now: Timestamp,
        before: Option<Seq>,
        limit: usize,
    ) -> StoreResult<Option<(RoomAccess, Option<Page>)>> {
        let Some((access, members)) = self
            .access_reply(room, user, now, Some((before, limit)))
            .await?
        else {
            return Ok(None);
        };
        let page = Self::page_before(room, members, limit)?;
        Ok(Some((access, Some(page))))
    }
}

impl RedisStore {
    /// Reads a room's access for one caller, with the page below `before`
    /// when `page` is set: the access read and the page's members (newest
    /// first, as [`RedisStore::page_before`] takes them), `None` for a
    /// missing room.
    ///
    /// Plain commands in one pipeline (one round trip), not a script: none
    /// of it needs to be atomic (a send re-checks the room as it appends,
    /// and SQLite's access read is not one snapshot either), and a script
    /// costs Redis its Lua machinery on top of the commands, about half of
    /// Redis's time in `ingest` (fix 25 in docs/BENCHMARKS.md).
    async fn access_reply(
        &self,
        room: &RoomName,
        user: Option<&Username>,
        now: Timestamp,
        page: Option<(Option<Seq>, usize)>,
    ) -> StoreResult<Option<(RoomAccess, Vec<Value>)>> {
        let pipeline = self.client.pipeline();
        // Each call only queues its command (`()` is the "queued" reply);
        // `all` sends them together and answers each in order.
        let queued: Result<(), fred::error::Error> = async {
            let () = pipeline
                .hmget(self.keys.room(room), ROOM_FIELDS.to_vec())
                .await?;
            if let Some(user) = user {
                let () = pipeline
                    .sismember(self.keys.room_members(room), user.as_str())
                    .await?;
                let () = pipeline
                    .sismember(self.keys.room_banned(room), user.as_str())
                    .await?;
                let () = pipeline
                    .hget(self.keys.room_mutes(room), user.as_str())
                    .await?;
            }
            if let Some((before, limit)) = page {
                let (command, args) = self.page_before_command(room, before, limit);
                let () = pipeline.custom(command, args).await?;
            }
            Ok(())
        }
        .await;
        queued.map_err(from_fred)?;
        let mut replies = array(pipeline.all::<Value>().await.map_err(from_fred)?)?.into_iter();
        let mut next = || {
            replies
                .next()
                .ok_or_else(|| corrupt("room access pipeline answered too little"))
        };
        let fields = array(next()?)?;
        let [desc, vis, by, at, slow] = fields.as_slice() else {
            return Err(corrupt(format!("room hash of {} fields", fields.len())));
        };
        if at.is_null() {
            return Ok(None);
        }
        let (member, banned, mute) = match user {
            Some(_) => (integer(&next()?)? == 1, integer(&next()?)? == 1, next()?),
            None => (false, false, Value::Null),
        };
        let members = match page {
            Some(_) => array(next()?)?,
            None => Vec::new(),
        };
        let access = RoomAccess {
            room: room_from(
                room.clone(),
                &text(desc)?,
                &text(vis)?,
                &text(by)?,
                &text(at)?,
            )?,
            standing: Standing {
                member,
                // A member is never barred, and the port lets `banned` read
                // false for one.
                banned: banned && !member,
            },
            mute: active_mute(optional_text(&mute)?.as_deref(), now)?,
            slow_mode: parse_slow_mode(optional_text(slow)?.as_deref())?,
        };
        Ok(Some((access, members)))
    }
}

/// The fields of a room's hash that its access read needs, in the order
/// [`RedisStore::access_reply`] reads them.
const ROOM_FIELDS: [&str; 5] = ["desc", "vis", "by", "at", SLOW_MODE];

/// A field of a reply that should be text; absent reads as empty.
fn text(value: &Value) -> StoreResult<std::borrow::Cow<'_, str>> {
    Ok(optional_text(value)?.unwrap_or_default())
}

/// A field of a reply that is text or absent (nil).
fn optional_text(value: &Value) -> StoreResult<Option<std::borrow::Cow<'_, str>>> {
    if value.is_null() {
        return Ok(None);
    }
    value
        .as_str()
        .map(Some)
        .ok_or_else(|| corrupt(format!("expected text, got {:?}", value.kind())))
}
