//! `Hub`: this node's fan-out of room events to its WebSocket connections.
//!
//! For each room with at least one local subscriber, one relay task follows
//! the domain's ordered, gap-free `RoomFeed`, serialises each event once, and
//! broadcasts it to the room's local connections. Ten thousand sockets in a
//! room cost one bus subscription and one `serde_json` call per event, not
//! ten thousand. The relay stops when the last local subscriber leaves.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, ready};

use chat_domain::{Actor, Chat, Coded, ConnectionId, ErrorCode, RoomError, RoomName, StoreError};
use futures::Stream;
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tracing::{Instrument, debug, info_span, warn};

use super::frames::{Relayed, relay_event};

/// How many events a room's channel keeps for readers that are behind.
///
/// A connection task reads its channel within microseconds unless the node
/// is overloaded; one that falls this far behind is disconnected (1013) and
/// resumes with `since`. The channel allocates its slots up front, so this is
/// per active room, not per connection: 1024 × ~40 B.
pub const RELAY_CAPACITY: usize = 1024;

/// One shared, already-serialised room event.
pub type Shared = Arc<Relayed>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum RelayState {
    Starting,
    Running,
    Failed(ErrorCode, String),
}

struct Slot {
    id: u64,
    tx: broadcast::Sender<Shared>,
    subscribers: usize,
    ready: watch::Receiver<RelayState>,
    task: AbortHandle,
}

struct Inner {
    chat: Arc<Chat>,
    // A std Mutex: every critical section is a map lookup plus a counter and
    // never spans an `.await`, so an async lock would only add cost.
    rooms: Mutex<HashMap<RoomName, Slot>>,
    next_slot: AtomicU64,
    node: String,
    next_conn: AtomicU64,
}

impl Inner {
    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomName, Slot>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (each update is one insert, remove or counter change), so go on.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remove_if_current(&self, room: &RoomName, id: u64) {
        let mut rooms = self.rooms();
        if rooms.get(room).is_some_and(|s| s.id == id) {
            if let Some(slot) = rooms.remove(room) {
                slot.task.abort();
            }
        }
    }
}

/// The per-node WebSocket fan-out.
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.inner.node)
            .field("active_rooms", &self.active_rooms())
            .finish()
    }
}

impl Hub {
    /// A hub relaying from `chat`; no task runs until a room is subscribed.
    pub fn new(chat: Arc<Chat>) -> Self {
        use rand::Rng;
        let node: u32 = rand::thread_rng().r#gen();
        Self {
            inner: Arc::new(Inner {
                chat,
                rooms: Mutex::new(HashMap::new()),
                next_slot: AtomicU64::new(1),
                node: format!("{node:08x}"),
                next_conn: AtomicU64::new(1),
            }),
        }
    }

    /// A connection id unique across nodes (random node prefix + counter).
    pub fn connection_id(&self) -> ConnectionId {
        let n = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        ConnectionId(format!("{}-{n}", self.inner.node))
    }

    /// How many rooms have a running relay on this node.
    pub fn active_rooms(&self) -> usize {
        self.inner.rooms().len()
    }

    /// Subscribes to a room's events. The caller MUST have checked that its
    /// actor may see the room: the relay reads as the system.
    ///
    /// When this returns, the relay follows the room from a seq no later than
    /// the log's newest at this moment, so a snapshot read afterwards plus the
    /// events with a higher seq leave no gap.
    ///
    /// # Errors
    /// The store's error when the relay cannot start.
    pub async fn subscribe(&self, room: &RoomName) -> Result<RoomSubscription, RoomError> {
        let (rx, mut ready, guard) = {
            let mut rooms = self.inner.rooms();
            let slot = match rooms.entry(room.clone()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(self.start_relay(room)),
            };
            slot.subscribers += 1;
            let guard = SlotGuard {
                hub: Arc::downgrade(&self.inner),
                room: room.clone(),
                id: slot.id,
            };
            (slot.tx.subscribe(), slot.ready.clone(), guard)
        };
        let state = ready
            .wait_for(|s| *s != RelayState::Starting)
            .await
            .map(|s| s.clone())
            .unwrap_or(RelayState::Failed(
                ErrorCode::Unavailable,
                "the room's relay stopped".to_owned(),
            ));
        match state {
            RelayState::Failed(code, why) => Err(match code {
                ErrorCode::NotFound => RoomError::NotFound,
                _ => RoomError::Store(StoreError::unavailable(why)),
            }),
            _ => Ok(RoomSubscription {
                rx: BroadcastStream::new(rx),
                done: false,
                _guard: guard,
            }),
        }
    }

    fn start_relay(&self, room: &RoomName) -> Slot {
        let id = self.inner.next_slot.fetch_add(1, Ordering::Relaxed);
        let (tx, _) = broadcast::channel(RELAY_CAPACITY);
        let (ready_tx, ready) = watch::channel(RelayState::Starting);
        let span = info_span!("relay", room = %room);
        let task = tokio::spawn(
            relay(
                Arc::downgrade(&self.inner),
                Arc::clone(&self.inner.chat),
                room.clone(),
                id,
                tx.clone(),
                ready_tx,
            )
            .instrument(span),
        );
        Slot {
            id,
            tx,
            subscribers: 0,
            ready,
            task: task.abort_handle(),
        }
    }
}

async fn relay(
    hub: Weak<Inner>,
    chat: Arc<Chat>,
    room: RoomName,
    id: u64,
    tx: broadcast::Sender<Shared>,
    ready: watch::Sender<RelayState>,
) {
    // `subscribe_live` subscribes to the bus before reading where the room
    // stands, so nothing stored meanwhile waits for the feed's periodic check.
    // Connections read their snapshot only after this relay is running, so
    // their snapshot reaches at least the relay's starting seq: no gap.
    let mut feed = match chat.subscribe_live(&Actor::System, &room).await {
        Ok(feed) => feed,
        Err(e) => {
            warn!(error = %e, "room relay could not start");
            ready.send_replace(RelayState::Failed(e.code(), e.to_string()));
            if let Some(hub) = hub.upgrade() {
                hub.remove_if_current(&room, id);
            }
            return;
        }
    };
    ready.send_replace(RelayState::Running);
    debug!("room relay started");
    while let Some(event) = feed.next().await {
        // An error means no local receiver right now; the slot's owner will
        // stop this task when the last one is gone.
        let _ = tx.send(Arc::new(relay_event(&room, &event)));
    }
    warn!("room feed ended; its connections will resume");
    if let Some(hub) = hub.upgrade() {
        hub.remove_if_current(&room, id);
    }
}

struct SlotGuard {
    hub: Weak<Inner>,
    room: RoomName,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut rooms = hub.rooms();
        if let Entry::Occupied(mut e) = rooms.entry(self.room.clone()) {
            if e.get().id == self.id {
                let slot = e.get_mut();
                slot.subscribers = slot.subscribers.saturating_sub(1);
                if slot.subscribers == 0 {
                    e.remove().task.abort();
                }
            }
        }
    }
}

/// What a [`RoomSubscription`] yields.
#[derive(Debug, Clone)]
pub enum RoomItem {
    /// An event, already serialised.
    Event(Shared),
    /// This subscriber fell more than [`RELAY_CAPACITY`] events behind.
    Lagged,
    /// The relay stopped; the stream ends after this.
    Closed,
}

/// One connection's subscription to a room; dropping it unsubscribes.
pub struct RoomSubscription {
    rx: BroadcastStream<Shared>,
    done: bool,
    _guard: SlotGuard,
}

impl std::fmt::Debug for RoomSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomSubscription")
            .field("room", &self._guard.room)
            .finish()
    }
}

impl Stream for RoomSubscription {
    type Item = RoomItem;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RoomItem>> {
        if self.done {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(match ready!(Pin::new(&mut self.rx).poll_next(cx)) {
            Some(Ok(event)) => RoomItem::Event(event),
            Some(Err(BroadcastStreamRecvError::Lagged(_))) => RoomItem::Lagged,
            None => {
                self.done = true;
                RoomItem::Closed
            }
        }))
    }
}
