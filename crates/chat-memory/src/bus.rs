//! `MemoryBus`: the event bus inside one process, a broadcast channel per
//! room topic and per user topic.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chat_domain::{
    Delivery, EventStream, RoomEvent, RoomEvents, RoomName, StoreResult, UserEvent, Username,
};
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// How many events one topic buffers for its slowest subscriber. A reader
/// further behind than this gets `Delivery::Lagged` and refills from the log,
/// so the bound costs correctness nothing and caps memory per busy room.
pub const BUS_CAPACITY: usize = 1024;

/// Below this many topics no sweep for abandoned ones is worth its time.
const MIN_SWEEP: usize = 64;

/// One kind of topic (rooms or users): a sender per topic that has subscribers.
struct Topics<K, E> {
    // A std Mutex, as in mini-redis: every critical section is a map lookup
    // or insert and never spans an `.await`, so an async mutex would only add cost.
    senders: Mutex<TopicMap<K, E>>,
}

struct TopicMap<K, E> {
    senders: HashMap<K, broadcast::Sender<Arc<E>>>,
    /// Sweep topics without subscribers when the map grows past this, so
    /// subscribers that come and go never make the map grow without bound
    /// (amortised: the mark doubles with the live size).
    sweep_at: usize,
}

impl<K: Eq + Hash + Clone, E: Send + Sync + 'static> Topics<K, E> {
    fn new() -> Self {
        Self {
            senders: Mutex::new(TopicMap {
                senders: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    fn publish(&self, topic: &K, event: E) {
        let mut map = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = map.senders.get(topic) else {
            // Nobody listens: at-most-once delivery means dropping it is right.
            return;
        };
        if sender.send(Arc::new(event)).is_err() {
            // Every receiver is gone; forget the topic so memory stays bounded.
            map.senders.remove(topic);
        }
    }

    fn subscribe(&self, topic: &K) -> EventStream<E>
    where
        E: Clone,
    {
        let mut map = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        if map.senders.len() >= map.sweep_at {
            map.senders.retain(|_, s| s.receiver_count() > 0);
            map.sweep_at = (map.senders.len() * 2).max(MIN_SWEEP);
        }
        let receiver = map
            .senders
            .entry(topic.clone())
            .or_insert_with(|| broadcast::channel(BUS_CAPACITY).0)
            .subscribe();
        drop(map);
        BroadcastStream::new(receiver)
            .map(|r| match r {
                Ok(event) => Delivery::Event(event),
                Err(BroadcastStreamRecvError::Lagged(_)) => Delivery::Lagged,
            })
            .boxed()
    }
}

/// The event bus of one process: fan-out of room and user events through a
/// tokio broadcast channel per topic.
///
/// Per topic, events arrive in the order they were published. A subscriber
/// more than [`BUS_CAPACITY`] events behind loses the oldest and is told so
/// with `Delivery::Lagged`. Topics without subscribers are dropped.
pub struct MemoryBus {
    rooms: Topics<RoomName, RoomEvent>,
    users: Topics<Username, UserEvent>,
}

impl MemoryBus {
    /// A bus with no topics yet.
    pub fn new() -> Self {
        Self {
            rooms: Topics::new(),
            users: Topics::new(),
        }
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryBus")
    }
}

#[async_trait]
impl RoomEvents for MemoryBus {
    async fn publish(&self, room: &RoomName, event: RoomEvent) -> StoreResult<()> {
        self.rooms.publish(room, event);
        Ok(())
    }

    async fn subscribe(&self, room: &RoomName) -> StoreResult<EventStream<RoomEvent>> {
        Ok(self.rooms.subscribe(room))
    }

    async fn publish_user(&self, user: &Username, event: UserEvent) -> StoreResult<()> {
        self.users.publish(user, event);
        Ok(())
    }

    async fn subscribe_user(&self, user: &Username) -> StoreResult<EventStream<UserEvent>> {
        Ok(self.users.subscribe(user))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn room(i: usize) -> RoomName {
        RoomName::parse(&format!("room-{i}")).unwrap()
    }

    #[tokio::test]
    async fn topics_whose_subscribers_left_are_forgotten() {
        let bus = MemoryBus::new();
        for i in 0..10_000 {
            drop(bus.subscribe(&room(i)).await.unwrap());
        }
        let live = bus.subscribe(&room(0)).await.unwrap();
        let size = bus.rooms.senders.lock().unwrap().senders.len();
        assert!(size < 2 * MIN_SWEEP + 1, "{size} topics kept");
        drop(live);
        bus.publish(
            &room(0),
            RoomEvent::Typing {
                user: Username::parse("bob").unwrap(),
            },
        )
        .await
        .unwrap();
        assert!(
            !bus.rooms
                .senders
                .lock()
                .unwrap()
                .senders
                .contains_key(&room(0))
        );
    }
}
