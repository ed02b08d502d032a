//! `Hub`: this node's fan-out of room events to its WebSocket connections.
//!
//! For each room with at least one local subscriber, one relay task follows
//! the domain's ordered, gap-free `RoomFeed`, serialises each event once, and
//! hands the shared bytes to the room's local connections. Ten thousand
//! sockets in a room cost one bus subscription and one `serde_json` call per
//! event, not ten thousand.
//!
//! **Direct delivery.** In the common case the relay itself hands each
//! frame to the subscriber's outbox, which writes it to the socket in place
//! (or queues it for the connection's writer task), so a delivery wakes no
//! task of the connection's, or only its writer — never its loop as well. The relay only does what needs no connection state: the next seq
//! after the last one sent, a presence or typing frame, a drop of the
//! subscriber's own typing echo. Anything else — a gap, a full outbox, the
//! subscriber's own removal, or any event while the connection is busy with
//! the room (its join snapshot, a catch-up) — *pauses* the subscription:
//! from then on the relay appends events to the subscription's pending queue
//! and wakes the loop, which handles them one by one as before. When the
//! loop finds the queue empty it hands the room back to the relay. Every
//! change of mode happens under the subscription's lock, so each event is
//! handled exactly once and in order, by one side or the other.
//!
//! The relay stops when the last local subscriber leaves.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use axum::extract::ws::Message;
use chat_domain::{
    Actor, Chat, Coded, ConnectionId, ErrorCode, RoomError, RoomName, Seq, StoreError, Username,
};
use futures::Stream;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{Instrument, debug, info_span, warn};

use super::frames::{About, Relayed, message_frame, relay_event};
use super::outbox::{Outbox, Refused};

/// How many events a paused subscription keeps for its connection's loop.
///
/// A loop handles its pending events within microseconds unless the node is
/// overloaded; one that falls this far behind is disconnected (1013) and
/// resumes with `since`. The queue holds no memory while empty (the common,
/// direct case) and shared pointers to the events when not.
pub const RELAY_CAPACITY: usize = 1024;

/// One shared, already-serialised room event.
pub type Shared = Arc<Relayed>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum RelayState {
    Starting,
    Running,
    Failed(ErrorCode, String),
}

/// The local subscribers of one room, shared by its relay and its
/// subscriptions (which remove themselves when dropped).
type Members = Arc<Mutex<Vec<Arc<Member>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a few field updates with no await and
    // no call out that could panic half-way, so a poisoned lock is still
    // consistent: go on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Slot {
    id: u64,
    members: Members,
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
        lock(&self.rooms)
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

    /// Subscribes to a room's events on behalf of the connection whose
    /// writer drains `outbox`, as `user` (whose own typing is not echoed and
    /// whose removal the connection must handle). The caller MUST have
    /// checked that its actor may see the room: the relay reads as the system.
    ///
    /// When this returns, the relay follows the room from a seq no later than
    /// the log's newest at this moment, so a snapshot read afterwards plus the
    /// events with a higher seq leave no gap. The subscription starts paused:
    /// events wait for the connection until it has sent its snapshot and
    /// called [`RoomSubscription::sent_up_to`].
    ///
    /// # Errors
    /// The store's error when the relay cannot start.
    pub(super) async fn subscribe(
        &self,
        room: &RoomName,
        outbox: Arc<Outbox>,
        user: Option<Username>,
    ) -> Result<RoomSubscription, RoomError> {
        let member = Arc::new(Member {
            state: Mutex::new(MemberState::default()),
            outbox,
            user,
        });
        let (mut ready, guard) = {
            let mut rooms = self.inner.rooms();
            let slot = match rooms.entry(room.clone()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(self.start_relay(room)),
            };
            slot.subscribers += 1;
            lock(&slot.members).push(Arc::clone(&member));
            let guard = SlotGuard {
                hub: Arc::downgrade(&self.inner),
                room: room.clone(),
                id: slot.id,
                members: Arc::clone(&slot.members),
                member: Arc::clone(&member),
            };
            (slot.ready.clone(), guard)
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
                member,
                done: false,
                _guard: guard,
            }),
        }
    }

    fn start_relay(&self, room: &RoomName) -> Slot {
        let id = self.inner.next_slot.fetch_add(1, Ordering::Relaxed);
        let members = Members::default();
        let (ready_tx, ready) = watch::channel(RelayState::Starting);
        let span = info_span!("relay", room = %room);
        let task = tokio::spawn(
            relay(
                Arc::downgrade(&self.inner),
                Arc::clone(&self.inner.chat),
                room.clone(),
                id,
                Arc::clone(&members),
                ready_tx,
            )
            .instrument(span),
        );
        Slot {
            id,
            members,
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
    members: Members,
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
        let event = Arc::new(relay_event(&room, &event));
        // Held while offering to every member, so a subscription dropped
        // (left) is offered nothing after its drop returns. Each offer is a
        // few field updates and at most one socket write or queue push.
        for member in lock(&members).iter() {
            if let Some(waker) = member.offer(&event) {
                waker.wake();
            }
        }
    }
    warn!("room feed ended; its connections will resume");
    for member in lock(&members).iter() {
        if let Some(waker) = member.close() {
            waker.wake();
        }
    }
    if let Some(hub) = hub.upgrade() {
        hub.remove_if_current(&room, id);
    }
}

struct SlotGuard {
    hub: Weak<Inner>,
    room: RoomName,
    id: u64,
    members: Members,
    member: Arc<Member>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        {
            let mut members = lock(&self.members);
            if let Some(i) = members.iter().position(|m| Arc::ptr_eq(m, &self.member)) {
                members.swap_remove(i);
            }
        }
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

/// One subscriber as its room's relay sees it.
struct Member {
    state: Mutex<MemberState>,
    /// The connection's queue to its writer.
    outbox: Arc<Outbox>,
    /// Who the connection is (`None`: a guest).
    user: Option<Username>,
}

#[derive(Default)]
struct MemberState {
    /// The highest message seq the connection has sent (queued) to its
    /// client; `None` until it has sent its snapshot. Changed by the relay
    /// while direct and by the connection while paused, never both.
    last_sent: Option<Seq>,
    /// The relay queues this member's frames itself (see the module doc).
    direct: bool,
    /// Events for the connection's loop, oldest first (paused only).
    pending: VecDeque<Shared>,
    /// More than [`RELAY_CAPACITY`] events waited: the connection must resume.
    lagged: bool,
    /// The relay stopped.
    closed: bool,
    /// The connection's loop, waiting for pending events.
    waker: Option<Waker>,
}

/// What the relay may do with an event for a direct member.
enum Direct {
    /// Written or queued by the outbox (or nothing to do).
    Done,
    /// The connection's loop must handle it: pause.
    Defer,
}

impl Member {
    /// Hands `event` to this member: gives it to the outbox when direct
    /// and it needs no connection state, otherwise pauses and queues it for
    /// the loop. Returns the loop's waker when the loop must run.
    fn offer(&self, event: &Shared) -> Option<Waker> {
        let mut s = lock(&self.state);
        if s.direct {
            match self.deliver(&mut s, event) {
                Direct::Done => return None,
                Direct::Defer => s.direct = false,
            }
        }
        if !s.lagged {
            if s.pending.len() >= RELAY_CAPACITY {
                s.lagged = true;
                s.pending = VecDeque::new();
            } else {
                s.pending.push_back(Arc::clone(event));
            }
        }
        s.waker.take()
    }

    fn deliver(&self, s: &mut MemberState, event: &Shared) -> Direct {
        match &event.about {
            About::Message(seq) => {
                let last = s.last_sent.unwrap_or(Seq::ZERO);
                if *seq <= last {
                    return Direct::Done;
                }
                if *seq != last.next() {
                    return Direct::Defer;
                }
                match self.push(event) {
                    Direct::Done => {
                        s.last_sent = Some(*seq);
                        Direct::Done
                    }
                    Direct::Defer => Direct::Defer,
                }
            }
            About::Typing(user) if Some(user) == self.user.as_ref() => Direct::Done,
            About::Removed(user) if Some(user) == self.user.as_ref() => Direct::Defer,
            _ => self.push(event),
        }
    }

    fn push(&self, event: &Shared) -> Direct {
        match self.outbox.try_push(Message::Text(event.text.clone())) {
            // A closed outbox: the connection is ending and drops its
            // subscriptions next; nothing more to deliver.
            Ok(()) | Err(Refused::Closed) => Direct::Done,
            // The loop waits for room, bounded, and closes a socket that
            // stays full (1013): the relay must never wait for one client.
            Err(Refused::Full(_)) => Direct::Defer,
        }
    }

    fn close(&self) -> Option<Waker> {
        let mut s = lock(&self.state);
        s.direct = false;
        s.closed = true;
        s.waker.take()
    }
}

/// One connection's subscription to a room; dropping it unsubscribes.
///
/// As a stream it yields the events the connection's loop must handle
/// itself (see the module doc); polling it while nothing is pending hands
/// the room to the relay once the connection has called
/// [`RoomSubscription::sent_up_to`].
pub struct RoomSubscription {
    member: Arc<Member>,
    done: bool,
    _guard: SlotGuard,
}

impl RoomSubscription {
    /// The highest message seq the connection has sent for this room
    /// (`Seq::ZERO` before its snapshot).
    pub fn last_sent(&self) -> Seq {
        lock(&self.member.state).last_sent.unwrap_or(Seq::ZERO)
    }

    /// Records that every message up to `seq` has been sent (or was in the
    /// snapshot). Meant for the connection's loop while the subscription is
    /// paused (after [`RoomSubscription::pause`], or while handling what the
    /// stream yielded): later events at or below it are dropped. Returns
    /// whether `seq` was beyond what had been sent.
    pub fn sent_up_to(&self, seq: Seq) -> bool {
        let mut s = lock(&self.member.state);
        let beyond = s.last_sent.is_none_or(|last| seq > last);
        if beyond {
            s.last_sent = Some(seq);
        }
        beyond
    }

    /// Takes the room back from the relay: events wait in the stream until
    /// the connection has handled what it is doing and polls again.
    pub fn pause(&self) {
        lock(&self.member.state).direct = false;
    }

    /// Sends the connection's own message, just stored, together with
    /// `then` (its `ack`) in one socket write, if the relay would send that
    /// message next: the relay then finds it sent and skips it. A sender
    /// otherwise gets its ack and its copy in two writes, one from its loop
    /// and one from the room's relay. When the relay is behind or ahead,
    /// the room is paused or the queue is full, nothing is sent and `then`
    /// comes back: the message takes the usual way.
    pub(super) fn send_own(&self, message: &chat_domain::Message, then: Message) -> OwnSend {
        let mut s = lock(&self.member.state);
        let next = s.last_sent.map(Seq::next);
        if !s.direct || next != Some(message.seq) {
            return OwnSend::NotNow(then);
        }
        let own = Message::Text(message_frame(message));
        match self.member.outbox.try_push_pair(own, then) {
            Ok(()) => {
                s.last_sent = Some(message.seq);
                OwnSend::Sent
            }
            Err(Refused::Closed) => OwnSend::Closed,
            Err(Refused::Full((_, then))) => OwnSend::NotNow(then),
        }
    }
}

/// What [`RoomSubscription::send_own`] did.
pub(super) enum OwnSend {
    /// Both frames are written or queued, in order.
    Sent,
    /// The socket is closed.
    Closed,
    /// Nothing was sent: the frame to send as usual.
    NotNow(Message),
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
        let mut s = lock(&self.member.state);
        if s.lagged {
            drop(s);
            self.done = true;
            return Poll::Ready(Some(RoomItem::Lagged));
        }
        if let Some(event) = s.pending.pop_front() {
            return Poll::Ready(Some(RoomItem::Event(event)));
        }
        if s.closed {
            drop(s);
            self.done = true;
            return Poll::Ready(Some(RoomItem::Closed));
        }
        // Nothing left for the loop: every earlier event is handled, so the
        // relay may go on from `last_sent` — once there is one.
        if s.last_sent.is_some() {
            s.direct = true;
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::extract::ws::Utf8Bytes;

    use super::*;

    fn name(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    fn event(about: About, text: impl Into<Utf8Bytes>) -> Shared {
        Arc::new(Relayed {
            about,
            text: text.into(),
        })
    }

    fn message(seq: u64) -> Shared {
        // The text only has to tell the frames apart.
        event(About::Message(Seq::new(seq)), format!("m{seq}"))
    }

    /// A subscription of `user` whose writer drains the returned outbox,
    /// as its room's relay would hold it.
    fn subscription(capacity: usize) -> (RoomSubscription, Arc<Member>, Arc<Outbox>) {
        let outbox = Arc::new(Outbox::new(capacity));
        let member = Arc::new(Member {
            state: Mutex::new(MemberState::default()),
            outbox: Arc::clone(&outbox),
            user: Some(name("alice")),
        });
        let members = Members::default();
        lock(&members).push(Arc::clone(&member));
        let sub = RoomSubscription {
            member: Arc::clone(&member),
            done: false,
            _guard: SlotGuard {
                hub: Weak::new(),
                room: RoomName::parse("lobby").unwrap(),
                id: 1,
                members,
                member: Arc::clone(&member),
            },
        };
        (sub, member, outbox)
    }

    fn poll(sub: &mut RoomSubscription) -> Poll<Option<RoomItem>> {
        Pin::new(sub).poll_next(&mut Context::from_waker(Waker::noop()))
    }

    fn queued(outbox: &Outbox) -> Vec<String> {
        std::iter::from_fn(|| outbox.try_pop())
            .map(|m| match m {
                Message::Text(t) => t.as_str().to_owned(),
                other => panic!("not a text frame: {other:?}"),
            })
            .collect()
    }

    fn pending_seq(item: Poll<Option<RoomItem>>) -> Seq {
        match item {
            Poll::Ready(Some(RoomItem::Event(e))) => match e.about {
                About::Message(seq) => seq,
                ref other => panic!("not a message: {other:?}"),
            },
            other => panic!("nothing pending: {other:?}"),
        }
    }

    #[test]
    fn a_subscription_waits_for_its_snapshot_then_the_relay_delivers_directly() {
        let (mut sub, member, outbox) = subscription(8);
        // Before the snapshot is sent, events wait for the loop.
        assert!(poll(&mut sub).is_pending());
        member.offer(&message(1));
        assert!(queued(&outbox).is_empty());
        assert_eq!(pending_seq(poll(&mut sub)), Seq::new(1));
        // The snapshot reached 1: handing the room back happens on the next
        // empty poll, and from then on the relay queues frames itself.
        sub.sent_up_to(Seq::new(1));
        assert!(poll(&mut sub).is_pending());
        assert!(member.offer(&message(1)).is_none(), "at or below: dropped");
        assert!(member.offer(&message(2)).is_none());
        assert!(member.offer(&message(3)).is_none());
        assert_eq!(queued(&outbox), ["m2", "m3"]);
        assert_eq!(sub.last_sent(), Seq::new(3));
        assert!(poll(&mut sub).is_pending(), "nothing for the loop");
    }

    fn own(seq: u64) -> chat_domain::Message {
        chat_domain::Message {
            room: RoomName::parse("lobby").unwrap(),
            seq: Seq::new(seq),
            from: name("alice"),
            text: chat_domain::MessageText::parse("hi").unwrap(),
            ts: chat_domain::Timestamp::from_millis(0),
            cid: None,
            kind: chat_domain::MessageKind::Chat,
        }
    }

    fn ack(seq: u64) -> Message {
        Message::Text(format!("ack{seq}").into())
    }

    #[test]
    fn an_own_message_goes_out_with_its_ack_and_the_relay_then_skips_it() {
        let (mut sub, member, outbox) = subscription(8);
        sub.sent_up_to(Seq::new(1));
        assert!(poll(&mut sub).is_pending());
        assert!(matches!(sub.send_own(&own(2), ack(2)), OwnSend::Sent));
        assert_eq!(
            queued(&outbox),
            [message_frame(&own(2)).as_str(), "ack2"],
            "the message first, then its ack"
        );
        assert_eq!(sub.last_sent(), Seq::new(2));
        assert!(member.offer(&message(2)).is_none());
        member.offer(&message(3));
        assert_eq!(queued(&outbox), ["m3"], "the relay skipped 2 and went on");
    }

    #[test]
    fn an_own_message_out_of_turn_is_left_to_the_relay() {
        let (mut sub, member, outbox) = subscription(8);
        sub.sent_up_to(Seq::new(1));
        assert!(poll(&mut sub).is_pending());
        // The relay has not sent 2 yet (another member's message): sending
        // 3 now would overtake it.
        let OwnSend::NotNow(back) = sub.send_own(&own(3), ack(3)) else {
            panic!("3 is not next after 1");
        };
        assert_eq!(back, ack(3));
        assert!(queued(&outbox).is_empty());
        member.offer(&message(2));
        member.offer(&message(3));
        assert_eq!(queued(&outbox), ["m2", "m3"]);
        // Already sent by the relay.
        assert!(matches!(sub.send_own(&own(3), ack(3)), OwnSend::NotNow(_)));
        // Paused: the loop owns the room.
        sub.pause();
        assert!(matches!(sub.send_own(&own(4), ack(4)), OwnSend::NotNow(_)));
        assert!(queued(&outbox).is_empty());
    }

    #[test]
    fn an_own_message_with_no_room_for_both_frames_sends_neither() {
        let (mut sub, member, outbox) = subscription(2);
        sub.sent_up_to(Seq::ZERO);
        assert!(poll(&mut sub).is_pending());
        member.offer(&message(1));
        assert!(matches!(sub.send_own(&own(2), ack(2)), OwnSend::NotNow(_)));
        assert_eq!(sub.last_sent(), Seq::new(1));
        assert_eq!(queued(&outbox), ["m1"]);
    }

    #[test]
    fn a_gap_pauses_and_everything_after_it_waits_for_the_loop() {
        let (mut sub, member, outbox) = subscription(8);
        sub.sent_up_to(Seq::new(3));
        assert!(poll(&mut sub).is_pending());
        member.offer(&message(6));
        member.offer(&message(7));
        assert!(queued(&outbox).is_empty());
        assert_eq!(pending_seq(poll(&mut sub)), Seq::new(6));
        // The loop catches up from the log and sends 4..=6 itself.
        assert!(sub.sent_up_to(Seq::new(6)));
        assert!(!sub.sent_up_to(Seq::new(5)), "already sent: not beyond");
        assert_eq!(sub.last_sent(), Seq::new(6));
        assert_eq!(pending_seq(poll(&mut sub)), Seq::new(7));
        sub.sent_up_to(Seq::new(7));
        assert!(poll(&mut sub).is_pending());
        member.offer(&message(8));
        assert_eq!(queued(&outbox), ["m8"]);
    }

    #[test]
    fn own_typing_is_dropped_and_own_removal_is_left_to_the_loop() {
        let (mut sub, member, outbox) = subscription(8);
        sub.sent_up_to(Seq::ZERO);
        assert!(poll(&mut sub).is_pending());
        member.offer(&event(About::Typing(name("alice")), "typing alice"));
        member.offer(&event(About::Typing(name("bob")), "typing bob"));
        member.offer(&event(About::Other, "presence"));
        member.offer(&event(About::Removed(name("bob")), "removed bob"));
        assert_eq!(queued(&outbox), ["typing bob", "presence", "removed bob"]);
        member.offer(&event(About::Removed(name("alice")), "removed alice"));
        member.offer(&message(1));
        assert!(queued(&outbox).is_empty());
        match poll(&mut sub) {
            Poll::Ready(Some(RoomItem::Event(e))) => assert_eq!(e.text.as_str(), "removed alice"),
            other => panic!("the removal should wait for the loop: {other:?}"),
        }
        assert_eq!(pending_seq(poll(&mut sub)), Seq::new(1));
    }

    #[test]
    fn a_full_outbox_pauses_so_the_loop_can_wait_for_room() {
        let (mut sub, member, outbox) = subscription(2);
        sub.sent_up_to(Seq::ZERO);
        assert!(poll(&mut sub).is_pending());
        for seq in 1..=3 {
            member.offer(&message(seq));
        }
        assert_eq!(queued(&outbox), ["m1", "m2"]);
        assert_eq!(sub.last_sent(), Seq::new(2));
        assert_eq!(pending_seq(poll(&mut sub)), Seq::new(3));
    }

    #[test]
    fn the_loop_is_woken_when_an_event_waits_for_it() {
        let (mut sub, member, _outbox) = subscription(8);
        let flag = Arc::new(super::super::outbox::tests::Flag::default());
        let waker = Waker::from(Arc::clone(&flag));
        let polled = Pin::new(&mut sub).poll_next(&mut Context::from_waker(&waker));
        assert!(polled.is_pending());
        member.offer(&message(1)).unwrap().wake();
        assert!(flag.woken());
    }

    #[test]
    fn a_loop_that_falls_too_far_behind_is_told_so() {
        let (mut sub, member, _outbox) = subscription(8);
        for seq in 1..=(RELAY_CAPACITY as u64 + 1) {
            member.offer(&message(seq));
        }
        assert!(matches!(
            poll(&mut sub),
            Poll::Ready(Some(RoomItem::Lagged))
        ));
        assert!(matches!(poll(&mut sub), Poll::Ready(None)));
    }

    #[test]
    fn a_stopped_relay_ends_the_subscription_after_what_is_pending() {
        let (mut sub, member, _outbox) = subscription(8);
        member.offer(&message(1));
        member.close();
        assert_eq!(pending_seq(poll(&mut sub)), Seq::new(1));
        assert!(matches!(
            poll(&mut sub),
            Poll::Ready(Some(RoomItem::Closed))
        ));
        assert!(matches!(poll(&mut sub), Poll::Ready(None)));
    }

    #[test]
    fn a_dropped_subscription_leaves_its_room() {
        let (sub, _member, _outbox) = subscription(8);
        let members = Arc::clone(&sub._guard.members);
        assert_eq!(lock(&members).len(), 1);
        drop(sub);
        assert!(lock(&members).is_empty());
    }
}
