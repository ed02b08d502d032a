//! The cross-node event bus: Redis pub/sub on a dedicated subscriber
//! connection, fanned out on this node with one tokio broadcast channel per
//! topic (room or user).
//!
//! Redis pub/sub is at-most-once: a message published while our subscriber
//! is reconnecting is gone, and a local reader that falls behind its
//! broadcast buffer loses the oldest events. Neither may be silent, because
//! the room feed fills gaps from the log only when told: so a lagging local
//! receiver yields `Delivery::Lagged` (tokio's broadcast reports it), a
//! lagging reader of fred's own message channel sends `Lagged` to every
//! topic, and after every reconnect of the subscriber we subscribe again and
//! then send `Lagged` to every topic.
//!
//! One Redis subscription per topic is shared by every local subscriber; the
//! last one to drop its stream unsubscribes (via the janitor task, because
//! `Drop` cannot await). SUBSCRIBE and UNSUBSCRIBE of a channel must reach
//! Redis in the order we decided them, or a late UNSUBSCRIBE could cancel a
//! fresh subscription, so they are serialised by one async mutex.
//!
//! Because the Redis subscription outlives a local one (the janitor drops it
//! later, and messages already read from the socket wait in fred's channel
//! until our reader gets to them), a message published before a subscriber
//! arrived could otherwise still reach it. So the reader numbers every
//! message by its place in fred's channel, and a new subscriber starts at
//! the number the next message gets once Redis has confirmed the SUBSCRIBE:
//! anything numbered earlier was published before `subscribe` returned and
//! is the caller's snapshot's business, not the stream's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chat_domain::{Delivery, EventStream, RoomEvent, StoreError, StoreResult, UserEvent};
use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::{Message as BusMessage, Value};
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::codec;
use crate::error::from_fred;

/// What the local fan-out carries: a delivery, events stamped with their
/// place in the subscriber connection's message stream so each subscriber
/// can skip those from before it subscribed. A lag has no place: it is news
/// to every subscriber.
#[derive(Clone)]
enum Stamped<T> {
    Event { at: u64, event: Arc<T> },
    Lagged,
}

/// The local fan-out of one channel.
#[derive(Clone)]
enum Topic {
    Room(broadcast::Sender<Stamped<RoomEvent>>),
    User(broadcast::Sender<Stamped<UserEvent>>),
}

impl Topic {
    fn receiver_count(&self) -> usize {
        match self {
            Topic::Room(tx) => tx.receiver_count(),
            Topic::User(tx) => tx.receiver_count(),
        }
    }

    fn lagged(&self) {
        // No receivers is not an error: the janitor is about to drop the topic.
        match self {
            Topic::Room(tx) => drop(tx.send(Stamped::Lagged)),
            Topic::User(tx) => drop(tx.send(Stamped::Lagged)),
        }
    }
}

/// What the bus tasks share.
struct Shared {
    /// Channel name → local fan-out. A std mutex: held only for map lookups,
    /// never across an await.
    topics: Mutex<HashMap<String, Topic>>,
    /// Orders SUBSCRIBE/UNSUBSCRIBE (see the module docs); held across the
    /// command, hence a tokio mutex.
    order: tokio::sync::Mutex<()>,
}

impl Shared {
    fn topics(&self) -> MutexGuard<'_, HashMap<String, Topic>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every change is a single insert or remove), so poison is harmless.
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn all_lagged(&self) {
        let topics: Vec<Topic> = self.topics().values().cloned().collect();
        for topic in topics {
            topic.lagged();
        }
    }
}

/// The subscriber side of the bus.
pub(crate) struct Bus {
    subscriber: SubscriberClient,
    shared: Arc<Shared>,
    janitor: mpsc::UnboundedSender<String>,
    /// Asks the reader where it is in fred's message channel (see the
    /// module docs).
    marks: mpsc::UnboundedSender<oneshot::Sender<u64>>,
    capacity: usize,
    tasks: Vec<JoinHandle<()>>,
}

impl Bus {
    /// Starts the reader, reconnect and janitor tasks on a connected subscriber.
    /// `capacity` is the local buffer per topic.
    pub(crate) fn start(subscriber: SubscriberClient, capacity: usize) -> Self {
        let shared = Arc::new(Shared {
            topics: Mutex::new(HashMap::new()),
            order: tokio::sync::Mutex::new(()),
        });
        let (janitor, idle) = mpsc::unbounded_channel();
        let (marks, mark_requests) = mpsc::unbounded_channel();
        // Take the receivers before any SUBSCRIBE so no message can slip by.
        let messages = subscriber.message_rx();
        let reconnects = subscriber.reconnect_rx();
        let tasks = vec![
            tokio::spawn(read_messages(messages, mark_requests, Arc::clone(&shared))),
            tokio::spawn(resubscribe_on_reconnect(
                reconnects,
                subscriber.clone(),
                Arc::clone(&shared),
            )),
            tokio::spawn(unsubscribe_idle(
                idle,
                subscriber.clone(),
                Arc::clone(&shared),
            )),
        ];
        Self {
            subscriber,
            shared,
            janitor,
            marks,
            capacity: capacity.max(1),
            tasks,
        }
    }

    /// The subscriber client, for shutdown.
    pub(crate) fn client(&self) -> &SubscriberClient {
        &self.subscriber
    }

    pub(crate) async fn subscribe_room(
        &self,
        channel: String,
    ) -> StoreResult<EventStream<RoomEvent>> {
        let capacity = self.capacity;
        let (subscription, from) = self
            .subscribe(
                channel,
                || Topic::Room(broadcast::channel(capacity).0),
                |topic| match topic {
                    Topic::Room(tx) => Some(tx.subscribe()),
                    Topic::User(_) => None,
                },
            )
            .await?;
        Ok(stream(subscription, from))
    }

    pub(crate) async fn subscribe_user(
        &self,
        channel: String,
    ) -> StoreResult<EventStream<UserEvent>> {
        let capacity = self.capacity;
        let (subscription, from) = self
            .subscribe(
                channel,
                || Topic::User(broadcast::channel(capacity).0),
                |topic| match topic {
                    Topic::User(tx) => Some(tx.subscribe()),
                    Topic::Room(_) => None,
                },
            )
            .await?;
        Ok(stream(subscription, from))
    }

    /// Joins the local topic (making it if needed), then makes sure Redis
    /// has the subscription before returning, so the caller may read its
    /// snapshot knowing every later publish will reach it. Also returns the
    /// stamp of the first event that is the subscriber's: earlier ones may
    /// have been published before it came (see the module docs).
    async fn subscribe<T>(
        &self,
        channel: String,
        make: impl FnOnce() -> Topic,
        join: impl FnOnce(&Topic) -> Option<broadcast::Receiver<Stamped<T>>>,
    ) -> StoreResult<(Subscription<T>, u64)> {
        let _order = self.shared.order.lock().await;
        let (rx, subscribed) = {
            let mut topics = self.shared.topics();
            let topic = topics.entry(channel.clone()).or_insert_with(make);
            // Another local receiver means Redis already has the channel: a
            // subscriber got it under this lock, and one whose SUBSCRIBE
            // failed dropped its receiver before letting the lock go.
            let subscribed = topic.receiver_count() > 0;
            let rx = join(topic)
                .ok_or_else(|| StoreError::unexpected("a room and a user channel share a name"))?;
            (rx, subscribed)
        };
        // From here on, dropping the guard hands an idle topic to the janitor.
        let guard = Guard {
            channel: channel.clone(),
            janitor: self.janitor.clone(),
        };
        if !self.subscriber.is_connected() {
            // Queueing behind a reconnect would hold the order lock for the
            // whole command timeout and stall every other subscriber.
            return Err(StoreError::unavailable(
                "the Redis subscriber is not connected",
            ));
        }
        // A channel another local receiver already has needs no round trip
        // to Redis: a user's thirtieth tab, or a room's thousandth member on
        // this node, costs a map lookup. (Were the subscriber to reconnect,
        // it subscribes again to every topic and tells every receiver, this
        // one too, that it lagged.)
        if !subscribed {
            self.subscriber
                .subscribe(channel)
                .await
                .map_err(from_fred)?;
            confirm(&self.subscriber).await?;
        }
        // Asked only now: every message published before Redis took the
        // SUBSCRIBE came in before the PING's answer, so it is already in
        // fred's channel and counted in the mark. On a channel Redis already
        // had, a message still on its way was published about as this
        // subscriber came, and consumers drop what their snapshot holds.
        let from = self.mark().await?;
        Ok((Subscription { rx, _guard: guard }, from))
    }

    /// The stamp the reader will give the next message published from now
    /// on.
    async fn mark(&self) -> StoreResult<u64> {
        let stopped = || StoreError::unexpected("the Redis bus reader has stopped");
        let (reply, mark) = oneshot::channel();
        self.marks.send(reply).map_err(|_| stopped())?;
        mark.await.map_err(|_| stopped())
    }
}

/// Waits until Redis has processed every command sent on the subscriber
/// connection so far.
///
/// fred resolves SUBSCRIBE when it is written, not when Redis confirms it
/// (the confirmation arrives out of band), and publishes travel on another
/// connection, so without this a publish made right after `subscribe`
/// returned could reach Redis first and be lost. Redis answers commands on
/// one connection in order, so the answer to a PING proves the SUBSCRIBE
/// before it took effect.
async fn confirm(subscriber: &SubscriberClient) -> StoreResult<()> {
    let _pong: Value = subscriber.ping(None).await.map_err(from_fred)?;
    Ok(())
}

impl Drop for Bus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Tells the janitor when a subscriber's stream is dropped.
struct Guard {
    channel: String,
    janitor: mpsc::UnboundedSender<String>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // If the bus is gone there is nothing left to unsubscribe from.
        let _ = self.janitor.send(std::mem::take(&mut self.channel));
    }
}

/// One subscriber's receiver; `rx` is declared first so it is dropped before
/// the guard tells the janitor to look at the receiver count.
struct Subscription<T> {
    rx: broadcast::Receiver<Stamped<T>>,
    _guard: Guard,
}

/// The subscriber's stream: events stamped `from` on, and every lag.
fn stream<T: Clone + Send + Sync + 'static>(
    subscription: Subscription<T>,
    from: u64,
) -> EventStream<T> {
    futures::stream::unfold(subscription, move |mut sub| async move {
        loop {
            let delivery = match sub.rx.recv().await {
                Ok(Stamped::Event { at, .. }) if at < from => continue,
                Ok(Stamped::Event { event, .. }) => Delivery::Event(event),
                Ok(Stamped::Lagged) => Delivery::Lagged,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    debug!(missed, "a local bus reader lagged");
                    Delivery::Lagged
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            return Some((delivery, sub));
        }
    })
    .boxed()
}

/// Decodes each pub/sub message once and hands it to the local receivers,
/// stamped with its place in fred's channel; answers mark requests with the
/// stamp the next message sent into that channel will get.
async fn read_messages(
    mut messages: broadcast::Receiver<BusMessage>,
    mut mark_requests: mpsc::UnboundedReceiver<oneshot::Sender<u64>>,
    shared: Arc<Shared>,
) {
    // The stamp of the next message `messages` yields. A lag skips stamps
    // as it skips messages, so stamps stay places in fred's channel.
    let mut next: u64 = 0;
    loop {
        tokio::select! {
            // A subscriber waits on its mark with the order lock held.
            biased;
            Some(reply) = mark_requests.recv() => {
                // `len` counts what fred has sent and we have not read yet,
                // so this is the stamp of whatever fred sends next. The
                // subscriber may have gone (its future dropped): fine.
                let waiting = u64::try_from(messages.len()).unwrap_or(u64::MAX);
                let _ = reply.send(next.saturating_add(waiting));
            }
            received = messages.recv() => match received {
                Ok(message) => {
                    dispatch(&shared, next, &message);
                    next += 1;
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    warn!(missed, "the Redis bus reader lagged; receivers will refill");
                    next += missed;
                    shared.all_lagged();
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

fn dispatch(shared: &Shared, at: u64, message: &BusMessage) {
    let Some(topic) = shared.topics().get(&*message.channel).cloned() else {
        return;
    };
    let Some(payload) = message.value.as_bytes() else {
        warn!(channel = %message.channel, "a bus message without a payload");
        return;
    };
    match topic {
        Topic::Room(tx) => match codec::decode_room_event(payload) {
            Ok(event) => drop(tx.send(Stamped::Event { at, event })),
            Err(e) => {
                warn!(channel = %message.channel, error = %e, "undecodable room event");
                // A dropped message would be a gap: let the feed refill.
                drop(tx.send(Stamped::Lagged));
            }
        },
        Topic::User(tx) => match codec::decode_user_event(payload) {
            Ok(event) => drop(tx.send(Stamped::Event { at, event })),
            Err(e) => warn!(channel = %message.channel, error = %e, "undecodable user event"),
        },
    }
}

/// After each reconnect: subscribe to every live topic again, then tell
/// every receiver it may have missed events. In that order, so the refill a
/// receiver does on `Lagged` cannot miss a message published in between.
async fn resubscribe_on_reconnect(
    mut reconnects: broadcast::Receiver<fred::types::config::Server>,
    subscriber: SubscriberClient,
    shared: Arc<Shared>,
) {
    loop {
        match reconnects.recv().await {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
        {
            let _order = shared.order.lock().await;
            let channels: Vec<String> = shared.topics().keys().cloned().collect();
            if !channels.is_empty() {
                let resubscribed = match subscriber.subscribe(channels).await {
                    Ok(()) => confirm(&subscriber).await,
                    Err(e) => Err(from_fred(e)),
                };
                if let Err(e) = resubscribed {
                    // The next reconnect tries again; meanwhile the feeds'
                    // periodic checks keep messages flowing from the log.
                    warn!(error = %e, "resubscribing after a Redis reconnect failed");
                }
            }
        }
        debug!("Redis subscriber reconnected; receivers will refill");
        shared.all_lagged();
    }
}

/// Unsubscribes from channels whose last local receiver went away.
async fn unsubscribe_idle(
    mut idle: mpsc::UnboundedReceiver<String>,
    subscriber: SubscriberClient,
    shared: Arc<Shared>,
) {
    while let Some(channel) = idle.recv().await {
        let _order = shared.order.lock().await;
        let unused = {
            let mut topics = shared.topics();
            let unused = topics
                .get(&channel)
                .is_some_and(|topic| topic.receiver_count() == 0);
            if unused {
                topics.remove(&channel);
            }
            unused
        };
        if unused {
            if let Err(e) = subscriber.unsubscribe(channel).await {
                // Harmless: messages for a channel without a topic are dropped.
                debug!(error = %e, "unsubscribing an idle channel failed");
            }
        }
    }
}
