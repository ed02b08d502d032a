//! `RoomEvents` on Redis pub/sub: publishing goes through the command
//! connection; subscribing through the bus (see `bus.rs`).

use async_trait::async_trait;
use chat_domain::{EventStream, RoomEvent, RoomEvents, RoomName, StoreResult, UserEvent, Username};
use fred::interfaces::PubsubInterface;

use crate::RedisStore;
use crate::codec;
use crate::error::from_fred;

#[async_trait]
impl RoomEvents for RedisStore {
    async fn publish(&self, room: &RoomName, event: RoomEvent) -> StoreResult<()> {
        let payload = codec::encode_room_event(&event)?;
        let _receivers: i64 = self
            .client
            .publish(self.keys.room_channel(room), payload)
            .await
            .map_err(from_fred)?;
        Ok(())
    }

    async fn subscribe(&self, room: &RoomName) -> StoreResult<EventStream<RoomEvent>> {
        self.bus.subscribe_room(self.keys.room_channel(room)).await
    }

    async fn publish_user(&self, user: &Username, event: UserEvent) -> StoreResult<()> {
        let payload = codec::encode_user_event(&event)?;
        let _receivers: i64 = self
            .client
            .publish(self.keys.user_channel(user), payload)
            .await
            .map_err(from_fred)?;
        Ok(())
    }

    async fn subscribe_user(&self, user: &Username) -> StoreResult<EventStream<UserEvent>> {
        self.bus.subscribe_user(self.keys.user_channel(user)).await
    }
}
