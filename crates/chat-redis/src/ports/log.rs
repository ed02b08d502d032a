//! `MessageLog` on Redis: per room a seq counter and a sorted set of
//! messages scored by seq, plus one time index over all rooms for retention.

use async_trait::async_trait;
use chat_domain::{
    Appended, MessageLog, NewMessage, Page, RoomName, Seq, StoreError, StoreResult, Timestamp,
};
use fred::interfaces::{ClientLike as _, KeysInterface};
use fred::types::{ClusterHash, CustomCommand, Value};

use super::{array, integer, strings};
use crate::RedisStore;
use crate::codec::{self, MessageBody, corrupt};
use crate::error::from_fred;
use crate::scripts;

impl RedisStore {
    /// Decodes the members of a room's message set.
    fn decode_page(room: &RoomName, members: &[Value], limit: usize) -> StoreResult<Page> {
        let more = members.len() > limit;
        let messages = members
            .iter()
            .take(limit)
            .map(|m| {
                let member = m
                    .as_str()
                    .ok_or_else(|| corrupt(format!("message member of type {:?}", m.kind())))?;
                codec::decode_stored(room, &member)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { messages, more })
    }

    /// `ZREVRANGEBYSCORE` for the page below `before`: the score bound and
    /// the count, one more than asked to learn whether older ones remain.
    pub(crate) fn page_before_command(
        &self,
        room: &RoomName,
        before: Option<Seq>,
        limit: usize,
    ) -> (CustomCommand, Vec<String>) {
        let bound = before.map_or_else(|| "+inf".to_owned(), |s| format!("({}", s.get()));
        self.page_command(room, "ZREVRANGEBYSCORE", bound, "-inf", limit)
    }

    /// A page of a room's message set by score (seq) from `from` towards
    /// `to`, one more than `limit`. A plain command, not a script: a script
    /// costs Redis its Lua machinery on top of the command (fix 25 in
    /// docs/BENCHMARKS.md).
    fn page_command(
        &self,
        room: &RoomName,
        command: &'static str,
        from: String,
        to: &str,
        limit: usize,
    ) -> (CustomCommand, Vec<String>) {
        (
            CustomCommand::new_static(command, ClusterHash::FirstKey, false),
            vec![
                self.keys.room_msgs(room),
                from,
                to.to_owned(),
                "LIMIT".to_owned(),
                "0".to_owned(),
                (limit + 1).to_string(),
            ],
        )
    }

    /// The page `before` answers, from the members
    /// [`RedisStore::page_before_command`] read (newest first).
    pub(crate) fn page_before(
        room: &RoomName,
        mut members: Vec<Value>,
        limit: usize,
    ) -> StoreResult<Page> {
        let more = members.len() > limit;
        members.truncate(limit);
        members.reverse();
        let mut page = Self::decode_page(room, &members, limit)?;
        page.more = more;
        Ok(page)
    }
}

#[async_trait]
impl MessageLog for RedisStore {
    async fn append(&self, message: NewMessage) -> StoreResult<Appended> {
        let room = &message.room;
        let body = MessageBody::new(
            &message.from,
            &message.text,
            message.ts,
            message.cid.as_ref(),
            message.kind,
        )
        .to_json()?;
        let reply = strings(
            self.run(
                &scripts::APPEND,
                vec![
                    self.keys.room(room),
                    self.keys.room_seq(room),
                    self.keys.room_msgs(room),
                    self.keys.room_cids(room),
                    self.keys.msgs_by_ts(),
                ],
                vec![
                    room.as_str().to_owned(),
                    message.from.as_str().to_owned(),
                    message
                        .cid
                        .as_ref()
                        .map(|c| c.as_str().to_owned())
                        .unwrap_or_default(),
                    message.ts.as_millis().to_string(),
                    body,
                ],
            )
            .await?,
        )?;
        match reply.as_slice() {
            [status] if status == "missing" => Err(StoreError::NotFound),
            [status, member] if status == "new" || status == "dup" => Ok(Appended {
                message: codec::decode_stored(room, member)?,
                duplicate: status == "dup",
            }),
            other => Err(corrupt(format!("append script answered {other:?}"))),
        }
    }

    async fn before(
        &self,
        room: &RoomName,
        before: Option<Seq>,
        limit: usize,
    ) -> StoreResult<Page> {
        let (command, args) = self.page_before_command(room, before, limit);
        let members = array(self.client.custom(command, args).await.map_err(from_fred)?)?;
        Self::page_before(room, members, limit)
    }

    async fn after(&self, room: &RoomName, after: Seq, limit: usize) -> StoreResult<Page> {
        let (command, args) = self.page_command(
            room,
            "ZRANGEBYSCORE",
            format!("({}", after.get()),
            "+inf",
            limit,
        );
        let members = array(self.client.custom(command, args).await.map_err(from_fred)?)?;
        Self::decode_page(room, &members, limit)
    }

    async fn last_seq(&self, room: &RoomName) -> StoreResult<Seq> {
        let raw: Option<u64> = self
            .client
            .get(self.keys.room_seq(room))
            .await
            .map_err(from_fred)?;
        Ok(Seq::new(raw.unwrap_or(0)))
    }

    async fn last_seqs(&self, rooms: &[RoomName]) -> StoreResult<Vec<Seq>> {
        let keys = rooms.iter().map(|r| self.keys.room_seq(r)).collect();
        self.each_key("GET", keys)
            .await?
            .into_iter()
            .map(|reply| match reply {
                Value::Null => Ok(Seq::ZERO),
                other => other
                    .as_u64()
                    .map(Seq::new)
                    .ok_or_else(|| corrupt(format!("room seq {other:?}"))),
            })
            .collect()
    }

    async fn delete_before(&self, cutoff: Timestamp, batch: usize) -> StoreResult<u64> {
        if batch == 0 {
            return Ok(0);
        }
        let gone = self
            .run(
                &scripts::DELETE_BEFORE,
                vec![self.keys.msgs_by_ts()],
                vec![
                    self.keys.prefix().to_owned(),
                    cutoff.as_millis().to_string(),
                    batch.to_string(),
                ],
            )
            .await?;
        Ok(u64::try_from(integer(&gone)?).unwrap_or(0))
    }
}
