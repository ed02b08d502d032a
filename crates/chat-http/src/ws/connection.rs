//! One WebSocket connection: a reader loop that owns all of the connection's
//! state, and a writer task that owns the socket's sending half.
//!
//! The loop `select!`s over the socket, the rooms it follows (a `StreamMap`
//! of hub subscriptions), the user's own events, a heartbeat and the
//! shutdown signal, as in mini-redis. It never waits on the client: frames go
//! to the writer through a bounded queue with `try_send`, and a full queue
//! means the client cannot keep up, so it is closed with 1013 and resumes
//! with `since` — memory per connection stays bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chat_domain::{
    Actor, Coded, ConnectionId, Delivery, ErrorCode, EventStream, RateLimit, RoomName, Sent, Seq,
    Timestamp, UserEvent,
};
use futures::future::BoxFuture;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::StreamMap;
use tracing::{Instrument, debug, info_span, warn};

use super::MAX_WS_MESSAGE_BYTES;
use super::frames::{
    self, About, Command, ServerFrame, WelcomeUser, encode, error_frame, message_frame,
    message_list,
};
use super::hub::{OwnSend, RoomItem, RoomSubscription};
use super::outbox::{Drive, Outbox, PushError, Refused};
use crate::AppState;
use crate::auth::Viewer;
use crate::shutdown::ConnectionGuard;
use crate::wire::{BotReplyOut, GUEST_NAME};

/// Close codes (RFC 6455 §7.4.1).
mod code {
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const TRY_AGAIN: u16 = 1013;
}

/// What a session check that the store cannot answer does.
#[derive(Debug, Clone, Copy)]
enum Unsure {
    /// Go on with what we know: a periodic check, or permissions that
    /// changed (the store being down says nothing about the session).
    KeepServing,
    /// Close with 1013: the notice said sessions were revoked, and a
    /// connection that cannot show its own survived must not go on as if
    /// it had. The client reconnects, and the upgrade checks the session.
    Close,
}

/// How many messages `joined` carries at most when resuming with `since`.
const RESUME_LIMIT: usize = 1000;
/// How many messages `joined` carries without `since`.
const JOIN_SNAPSHOT: usize = 50;
/// How long the writer may take to get the close frame out before the
/// socket is simply dropped (a dead peer must not hold up shutdown).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long, after its close frame went out, the server reads (and drops)
/// what the client still sends, waiting for its close frame in reply.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// How long a full outgoing queue may stay full before the client counts as
/// a slow consumer. Meanwhile its rooms' subscriptions hold their events.
const SLOW_CONSUMER_GRACE: Duration = Duration::from_secs(2);
/// Check the session every this many heartbeats, so a session that ended
/// closes this socket within a minute or so even if the user-event notice
/// that normally closes it at once was lost (a bus outage), without a
/// store read per beat.
const SESSION_CHECK_EVERY: u32 = 3;

/// Any frames at all: generous for a person, tight for a script.
const FRAME_LIMIT: RateLimit = RateLimit {
    per_second: 30.0,
    burst: 60,
};
/// Sends a connection may have waiting behind the one being stored before
/// the loop stops reading its socket: the frame rate limit's burst, so a
/// client within the limit is never held back.
const MAX_QUEUED_SENDS: usize = 64;
/// Refused frames in a row after which a flooding client is disconnected.
const ABUSIVE_REFUSALS: u32 = 100;

/// Why the loop ended.
enum Close {
    /// Send this close frame.
    With(u16, &'static str),
    /// The client is gone (or closed first): nothing to send.
    Gone,
}

type Flow = Result<(), Close>;

/// What the connection knows about one room it follows (the highest seq
/// sent to the client lives in the room's subscription, which the relay
/// advances while it delivers directly).
struct RoomState {
    /// Joined explicitly (presence is kept); otherwise followed only because
    /// it is one of the user's direct rooms.
    joined: bool,
}

struct Connection {
    state: AppState,
    /// Shared with the sends in flight, which outlive a refresh of it.
    actor: Arc<Actor>,
    session: Option<chat_domain::SessionId>,
    id: ConnectionId,
    out: Arc<Outbox>,
    rooms: HashMap<RoomName, RoomState>,
    subs: StreamMap<RoomName, RoomSubscription>,
    guest_limiter: Option<Bucket>,
    frame_limiter: Bucket,
    refusals: u32,
    last_seen: Instant,
    beats: u32,
    /// The send being stored, and the ones waiting behind it (see [`SendLane`]).
    lane: SendLane,
}

/// The connection's sends, stored one at a time in the order they came.
///
/// The loop does not wait for a send to be stored: it hands it to the lane
/// and goes on reading frames and relaying room events, so a publisher's own
/// deliveries never wait behind its fsync, and a client may pipeline sends.
/// One at a time keeps a user's messages in the order they were written
/// and their acks in the same order; throughput comes from the many
/// connections whose sends the store commits together. When
/// [`MAX_QUEUED_SENDS`] wait, the loop stops reading the socket until one is
/// done — TCP pushes back on the client.
///
/// The futures sit in a `Mutex` only because the connection is shared by
/// reference across awaits (so it must be `Sync`) and futures are not;
/// every access is through `&mut self` (`get_mut`), which never locks.
#[derive(Default)]
struct SendLane(std::sync::Mutex<Sends>);

#[derive(Default)]
struct Sends {
    /// The send being stored.
    current: Option<BoxFuture<'static, SendDone>>,
    /// Sends not started yet, oldest first.
    waiting: VecDeque<BoxFuture<'static, SendDone>>,
}

/// A finished send: the frame to answer with, and the message when one was
/// newly stored (for [`Connection::answer_send`]).
struct SendDone {
    frame: Utf8Bytes,
    stored: Option<chat_domain::Message>,
}

impl SendLane {
    fn sends(&mut self) -> &mut Sends {
        self.0.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    fn is_full(&mut self) -> bool {
        self.sends().waiting.len() >= MAX_QUEUED_SENDS
    }

    fn push(&mut self, send: BoxFuture<'static, SendDone>) {
        let sends = self.sends();
        if sends.current.is_none() {
            sends.current = Some(send);
        } else {
            sends.waiting.push_back(send);
        }
    }

    /// The outcome of the current send; starts the next one. Pending
    /// forever while the lane is empty.
    async fn next_done(&mut self) -> SendDone {
        let sends = self.sends();
        let Some(current) = sends.current.as_mut() else {
            return std::future::pending().await;
        };
        let done = current.await;
        sends.current = sends.waiting.pop_front();
        done
    }
}

/// Serves one upgraded socket until it closes.
///
/// The setup runs here, synchronously, so that the returned future holds
/// only the connection's live state and not the arguments it was built from:
/// with thousands of idle sockets, every byte of that future counts.
pub(super) fn run(
    socket: WebSocket,
    state: AppState,
    viewer: Viewer,
    guard: ConnectionGuard,
) -> impl Future<Output = ()> + Send + 'static {
    let id = state.hub.connection_id();
    let span = info_span!(
        "ws",
        conn = %id.0,
        user = viewer.user().map_or(GUEST_NAME, |u| u.name.as_str())
    );
    let (sink, stream) = socket.split();
    let out = Arc::new(Outbox::new(state.config.outbound_queue));
    out.attach(sink);
    let writer = tokio::spawn(write_loop(Arc::clone(&out), span.clone()));
    // Boxed: the futures below move it around, and a pointer is cheaper to
    // keep twice than the state itself (async fns keep their arguments).
    let conn = Box::new(Connection {
        guest_limiter: state.config.guest_rate_limit.map(Bucket::new),
        frame_limiter: Bucket::new(FRAME_LIMIT),
        refusals: 0,
        actor: Arc::new(viewer.actor),
        session: viewer.session,
        id,
        out,
        rooms: HashMap::new(),
        subs: StreamMap::new(),
        last_seen: Instant::now(),
        beats: 0,
        lane: SendLane::default(),
        state,
    });
    async move {
        debug!("connected");
        let (conn, ended) = conn.serve(stream).await;
        Box::pin(conn.finish(ended, writer)).await;
        drop(guard);
    }
    .instrument(span)
}

impl Connection {
    async fn serve(
        mut self: Box<Self>,
        mut stream: SplitStream<WebSocket>,
    ) -> (Box<Self>, (Close, SplitStream<WebSocket>)) {
        let shutdown = self.state.shutdown.clone();
        let ended = self.lifetime(&mut stream, &shutdown).await;
        (self, (ended, stream))
    }

    /// Clears presence, asks the writer to send the close frame (dropping
    /// whatever is still queued: the client resumes with `since`), and waits
    /// for it, bounded, so a dead peer cannot hold the socket open.
    async fn finish(
        mut self: Box<Self>,
        (ended, mut stream): (Close, SplitStream<WebSocket>),
        writer: tokio::task::JoinHandle<()>,
    ) {
        self.leave_all().await;
        let Connection { out, subs, .. } = *self;
        drop(subs);
        let frame = match ended {
            Close::With(code, reason) => Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            }),
            Close::Gone => None,
        };
        // A writer that already stopped (the socket broke) sends no close
        // frame, so there is no handshake to finish.
        let handshake = frame.is_some() && !writer.is_finished();
        out.close_with(frame);
        if tokio::time::timeout(CLOSE_TIMEOUT + Duration::from_secs(1), writer)
            .await
            .is_err()
        {
            debug!("writer did not finish in time");
        }
        if handshake {
            // Finish the closing handshake (RFC 6455 §7.1.1): read until the
            // client's close frame. Closing the TCP socket while the
            // client's frames sit unread in it (a flood, a huge frame) makes
            // the kernel send a reset, which throws away, on the client's
            // side, everything not yet read — our close frame included — so
            // the client would see "connection reset" instead of the code.
            let drain = async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            };
            if tokio::time::timeout(CLOSE_DRAIN, drain).await.is_err() {
                debug!("no close frame in reply");
            }
        }
        drop(stream);
        debug!("disconnected");
    }

    async fn lifetime(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        shutdown: &crate::shutdown::Shutdown,
    ) -> Close {
        match Box::pin(self.start()).await {
            Ok(events) => self.event_loop(stream, shutdown, events).await,
            Err(close) => close,
        }
    }

    /// Welcome, then (for users) their events and their direct rooms.
    async fn start(&mut self) -> Result<Option<EventStream<UserEvent>>, Close> {
        let user = WelcomeUser {
            name: self.actor.user().map_or(GUEST_NAME, |u| u.name.as_str()),
            guest: self.actor.is_guest(),
        };
        let welcome = encode(&ServerFrame::Welcome { user });
        self.push(welcome).await?;
        if self.actor.is_guest() {
            return Ok(None);
        }
        // User events first: a direct room opened while the existing ones are
        // being subscribed arrives as an event instead of falling in between.
        let events = match self.state.chat.subscribe_user(&self.actor).await {
            Ok(events) => events,
            Err(e) => {
                warn!(error = %e, "could not subscribe to the user's events");
                return Err(Close::With(code::TRY_AGAIN, "try again later"));
            }
        };
        self.follow_directs().await?;
        Ok(Some(events))
    }

    /// Follows every direct room of the user not yet followed, from its newest seq.
    async fn follow_directs(&mut self) -> Flow {
        let rooms = match self.state.rooms.memberships(&self.actor).await {
            Ok(rooms) => rooms,
            Err(e) => {
                warn!(error = %e, "could not list direct rooms");
                return Err(Close::With(code::TRY_AGAIN, "try again later"));
            }
        };
        for room in rooms.into_iter().filter(|r| r.is_direct()) {
            if self.subs.contains_key(&room.name) {
                continue;
            }
            let Ok(sub) = self.subscribe(&room.name).await else {
                return Err(Close::With(code::TRY_AGAIN, "try again later"));
            };
            let last = self
                .state
                .chat
                .last_seq(&self.actor, &room.name)
                .await
                .unwrap_or(Seq::ZERO);
            sub.sent_up_to(last);
            self.subs.insert(room.name.clone(), sub);
            self.rooms.insert(room.name, RoomState { joined: false });
        }
        Ok(())
    }

    /// Subscribes to `room` for this connection (paused until its snapshot
    /// is sent: see [`RoomSubscription::sent_up_to`]).
    async fn subscribe(&self, room: &RoomName) -> Result<RoomSubscription, chat_domain::RoomError> {
        let user = self.actor.user().map(|u| u.name.clone());
        self.state
            .hub
            .subscribe(room, Arc::clone(&self.out), user)
            .await
    }

    /// This connection's subscription to `room`, if it follows it.
    fn sub(&self, room: &RoomName) -> Option<&RoomSubscription> {
        // A linear scan: a connection follows a handful of rooms.
        self.subs.iter().find(|(r, _)| r == room).map(|(_, s)| s)
    }

    async fn event_loop(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        shutdown: &crate::shutdown::Shutdown,
        mut events: Option<EventStream<UserEvent>>,
    ) -> Close {
        let beat = self.state.config.heartbeat;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + beat, beat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let stopping = shutdown.triggered();
        tokio::pin!(stopping);
        loop {
            let flow = tokio::select! {
                // Shutdown first, so a busy socket cannot delay its close frame.
                biased;
                () = &mut stopping => Err(Close::With(code::GOING_AWAY, "server shutting down")),
                // Room events next: they are most of what wakes a connection,
                // and a wake that finds one ready polls nothing after it (the
                // socket and the user's events cost a lock each to poll). The
                // socket cannot starve: an event takes microseconds, and a
                // connection that stays behind its rooms is closed (1013).
                Some((room, item)) = self.subs.next(), if !self.subs.is_empty() => {
                    self.on_room(room, item).await
                }
                done = self.lane.next_done() => self.answer_send(done).await,
                // The rarer, bigger handlers are boxed so that their state
                // does not sit inside every idle connection's future.
                frame = stream.next(), if !self.lane.is_full() => {
                    Box::pin(self.on_socket(frame)).await
                }
                event = next_event(&mut events), if events.is_some() => {
                    Box::pin(self.on_user_event(event)).await
                }
                _ = heartbeat.tick() => Box::pin(self.on_heartbeat()).await,
            };
            if let Err(close) = flow {
                return close;
            }
        }
    }

    /// Sends a frame (see [`Connection::push_message`]).
    async fn push(&self, text: Utf8Bytes) -> Flow {
        self.push_message(Message::Text(text)).await
    }

    /// Sends a message through the outbox: written in place, or queued for
    /// the writer (see [`Outbox`]). A full queue gets a short grace
    /// (the writer may merely not have been scheduled yet during a burst);
    /// if it is still full after that, the client is not reading, and it is
    /// closed with 1013 rather than buffered for without bound.
    async fn push_message(&self, message: Message) -> Flow {
        // The fast path does not await, so this future stays small inside
        // every connection; the waiting one is boxed.
        match self.out.try_push(message) {
            Ok(()) => Ok(()),
            Err(Refused::Closed) => Err(Close::Gone),
            Err(Refused::Full(message)) => {
                match Box::pin(self.out.push(message, SLOW_CONSUMER_GRACE)).await {
                    Ok(()) => Ok(()),
                    Err(PushError::Closed) => Err(Close::Gone),
                    Err(PushError::Full) => {
                        debug!("outgoing queue full: slow consumer");
                        Err(Close::With(
                            code::TRY_AGAIN,
                            "too slow to keep up; reconnect and resume with since",
                        ))
                    }
                }
            }
        }
    }

    async fn error(
        &self,
        code: ErrorCode,
        message: &str,
        cid: Option<&str>,
        room: Option<&str>,
        retry_after: Option<Duration>,
    ) -> Flow {
        self.push(error_frame(code, message, cid, room, retry_after))
            .await
    }

    /// An error frame for a failed domain call; internal causes are logged, not sent.
    async fn domain_error<E: Coded + std::error::Error>(
        &self,
        e: &E,
        cid: Option<&str>,
        room: Option<&RoomName>,
    ) -> Flow {
        self.push(domain_error_frame(e, cid, room)).await
    }

    async fn on_socket(&mut self, frame: Option<Result<Message, axum::Error>>) -> Flow {
        let message = match frame {
            None => return Err(Close::Gone),
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(read_error(&e)),
        };
        self.last_seen = Instant::now();
        match message {
            Message::Text(text) => self.on_text(&text).await,
            Message::Binary(_) => {
                self.error(
                    ErrorCode::Invalid,
                    "frames are JSON text, not binary",
                    None,
                    None,
                    None,
                )
                .await
            }
            // tungstenite answers pings itself; either kind proves liveness.
            Message::Ping(_) | Message::Pong(_) => Ok(()),
            Message::Close(_) => Err(Close::Gone),
        }
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let now = self.state.chat.now();
        if let Err(retry) = self.frame_limiter.check(now) {
            self.refusals += 1;
            if self.refusals > ABUSIVE_REFUSALS {
                return Err(Close::With(code::POLICY, "flooding"));
            }
            // Refused unread, but with its cid, so the client knows which
            // request to send again after `retry_after`.
            let (cid, room) = if text.len() <= self.state.config.max_frame_bytes {
                frames::ids(text)
            } else {
                (None, None)
            };
            return self
                .error(
                    ErrorCode::RateLimited,
                    "too many frames; slow down",
                    cid.as_deref(),
                    room.as_deref(),
                    Some(retry),
                )
                .await;
        }
        self.refusals = 0;
        if text.len() > self.state.config.max_frame_bytes {
            return self
                .error(
                    ErrorCode::TooLarge,
                    &format!(
                        "frames are limited to {} bytes",
                        self.state.config.max_frame_bytes
                    ),
                    None,
                    None,
                    None,
                )
                .await;
        }
        match frames::parse(text) {
            Ok(command) => self.on_command(command).await,
            Err(refused) => {
                self.error(
                    ErrorCode::Invalid,
                    &refused.message,
                    refused.cid.as_deref(),
                    refused.room.as_deref(),
                    None,
                )
                .await
            }
        }
    }

    async fn on_command(&mut self, command: Command) -> Flow {
        match command {
            Command::Join { room, since } => self.join(room, since).await,
            Command::Leave { room } => self.leave(room).await,
            Command::Send { room, text, cid } => self.send(room, text, cid).await,
            Command::History {
                room,
                before,
                limit,
            } => self.history(room, before, limit).await,
            Command::Typing { room } => match self.state.chat.typing(&self.actor, &room).await {
                Ok(()) => Ok(()),
                Err(e) => self.domain_error(&e, None, Some(&room)).await,
            },
            Command::Dm { to, text, cid } => self.dm(to, text, cid).await,
            Command::Ping { cid } => {
                self.push(encode(&ServerFrame::Pong {
                    cid: cid.as_ref().map(|c| c.as_str()),
                }))
                .await
            }
        }
    }

    /// Join: check access, subscribe to the hub first, then read the snapshot,
    /// so nothing stored in between is missed; live events at or below the
    /// snapshot's last seq are dropped later, so nothing is sent twice.
    async fn join(&mut self, room: RoomName, since: Option<Seq>) -> Flow {
        let chat = Arc::clone(&self.state.chat);
        let joined = match self.state.rooms.join(&self.actor, &room).await {
            Ok(j) => j,
            Err(e) => return self.domain_error(&e, None, Some(&room)).await,
        };
        let newly_followed = !self.subs.contains_key(&room);
        if newly_followed {
            match self.subscribe(&room).await {
                Ok(sub) => {
                    self.subs.insert(room.clone(), sub);
                }
                Err(e) => return self.domain_error(&e, None, Some(&room)).await,
            }
        } else if let Some(sub) = self.sub(&room) {
            // The relay must not deliver past the snapshot before the
            // `joined` frame that carries it has been queued.
            sub.pause();
        }
        let snapshot = match since {
            Some(since) => chat
                .resume(&self.actor, &room, since, RESUME_LIMIT)
                .await
                .map(|r| (r.page, r.expired)),
            None => chat
                .history(&self.actor, &room, None, JOIN_SNAPSHOT)
                .await
                .map(|p| (p, false)),
        };
        let (page, expired) = match snapshot {
            Ok(s) => s,
            Err(e) => {
                if newly_followed {
                    self.subs.remove(&room);
                }
                return self.domain_error(&e, None, Some(&room)).await;
            }
        };
        let snapshot_last = match (page.messages.last(), since) {
            (Some(m), _) => m.seq,
            // A `since` beyond the room's end must not swallow what comes next.
            (None, Some(since)) => chat
                .last_seq(&self.actor, &room)
                .await
                .map_or(Seq::ZERO, |last| last.min(since)),
            (None, None) => Seq::ZERO,
        };
        if let Err(e) = chat.present(&self.actor, &room, &self.id).await {
            warn!(error = %e, "could not record presence");
        }
        let online = chat.online(&self.actor, &room).await.unwrap_or_default();
        if let Some(sub) = self.sub(&room) {
            sub.sent_up_to(snapshot_last);
        }
        let state = self
            .rooms
            .entry(room.clone())
            .or_insert(RoomState { joined: false });
        let already_joined = std::mem::replace(&mut state.joined, true);
        self.push(encode(&ServerFrame::Joined {
            room: room.as_str(),
            members: joined.members.iter().map(|m| m.as_str()).collect(),
            online: online.iter().map(|m| m.as_str()).collect(),
            messages: message_list(&page.messages),
            more: page.more,
            expired,
            member: joined.member,
            slow_mode: joined.slow_mode.map(|d| d.as_secs()),
        }))
        .await?;
        // A guest opening a public room is greeted once per join, privately.
        match chat.greeting(&self.actor, &joined) {
            Some(greeting) if !already_joined => {
                self.push(encode(&BotReplyOut::from(&greeting))).await
            }
            _ => Ok(()),
        }
    }

    async fn leave(&mut self, room: RoomName) -> Flow {
        let Some(state) = self.rooms.get_mut(&room) else {
            return self
                .error(
                    ErrorCode::Invalid,
                    "you have not joined this room",
                    None,
                    Some(room.as_str()),
                    None,
                )
                .await;
        };
        if state.joined {
            state.joined = false;
            if let Err(e) = self.state.chat.absent(&self.actor, &room, &self.id).await {
                warn!(error = %e, "could not clear presence");
            }
        }
        // The user's direct rooms stay followed: DMs arrive without joining.
        let mine = self
            .actor
            .user()
            .is_some_and(|u| room.direct_peer(&u.name).is_some());
        if !mine {
            self.rooms.remove(&room);
            self.subs.remove(&room);
        }
        self.push(encode(&ServerFrame::Left {
            room: room.as_str(),
        }))
        .await
    }

    async fn send(
        &mut self,
        room: RoomName,
        text: chat_domain::MessageText,
        cid: Option<chat_domain::ClientId>,
    ) -> Flow {
        let cid_str = cid.as_ref().map(|c| c.as_str().to_owned());
        if self.actor.is_guest() {
            let now = self.state.chat.now();
            if let Some(limiter) = &mut self.guest_limiter {
                if let Err(retry) = limiter.check(now) {
                    return self
                        .error(
                            ErrorCode::RateLimited,
                            "the bot needs a moment; try again shortly",
                            cid_str.as_deref(),
                            Some(room.as_str()),
                            Some(retry),
                        )
                        .await;
                }
            }
        }
        let chat = Arc::clone(&self.state.chat);
        let actor = Arc::clone(&self.actor);
        self.lane.push(Box::pin(async move {
            let (frame, stored) = match chat.send(&actor, &room, text, cid).await {
                // The store has returned: the message is durable, so the ack is true.
                Ok(Sent::Stored(appended)) => (
                    encode(&ServerFrame::Ack {
                        cid: cid_str.as_deref(),
                        room: room.as_str(),
                        seq: appended.message.seq.get(),
                    }),
                    (!appended.duplicate).then_some(appended.message),
                ),
                Ok(Sent::Bot(reply)) => (encode(&BotReplyOut::from(&reply)), None),
                Err(e) => (
                    domain_error_frame(&e, cid_str.as_deref(), Some(&room)),
                    None,
                ),
            };
            SendDone { frame, stored }
        }));
        Ok(())
    }

    /// Answers a finished send. A message just stored in a room this
    /// connection follows goes out with its ack in one write when the relay
    /// would send it next (see [`RoomSubscription::send_own`]).
    async fn answer_send(&self, done: SendDone) -> Flow {
        let SendDone { frame, stored } = done;
        let frame = Message::Text(frame);
        let Some((message, sub)) = stored
            .as_ref()
            .and_then(|m| self.sub(&m.room).map(|s| (m, s)))
        else {
            return self.push_message(frame).await;
        };
        match sub.send_own(message, frame) {
            OwnSend::Sent => Ok(()),
            OwnSend::Closed => Err(Close::Gone),
            OwnSend::NotNow(frame) => self.push_message(frame).await,
        }
    }

    async fn history(&mut self, room: RoomName, before: Option<Seq>, limit: usize) -> Flow {
        match self
            .state
            .chat
            .history(&self.actor, &room, before, limit)
            .await
        {
            Ok(page) => {
                self.push(encode(&ServerFrame::History {
                    room: room.as_str(),
                    messages: message_list(&page.messages),
                    more: page.more,
                }))
                .await
            }
            Err(e) => self.domain_error(&e, None, Some(&room)).await,
        }
    }

    async fn dm(
        &mut self,
        to: chat_domain::Username,
        text: chat_domain::MessageText,
        cid: Option<chat_domain::ClientId>,
    ) -> Flow {
        let cid_str = cid.as_ref().map(|c| c.as_str().to_owned());
        match self.state.chat.direct(&self.actor, &to, text, cid).await {
            Ok(appended) => {
                let room = appended.message.room;
                self.push(encode(&ServerFrame::Ack {
                    cid: cid_str.as_deref(),
                    room: room.as_str(),
                    seq: appended.message.seq.get(),
                }))
                .await?;
                // Don't wait for the `DirectRoom` event to follow a room this
                // connection just opened.
                self.follow_new_direct(room).await
            }
            Err(e) => self.domain_error(&e, cid_str.as_deref(), None).await,
        }
    }

    /// Follows a direct room that was just created: announce it, then send
    /// what it already holds (its first message was stored before this
    /// connection could subscribe) and follow it live from there.
    async fn follow_new_direct(&mut self, room: RoomName) -> Flow {
        if self.subs.contains_key(&room) {
            return Ok(());
        }
        let Some(me) = self.actor.user().map(|u| u.name.clone()) else {
            return Ok(());
        };
        let Some(with) = room.direct_peer(&me) else {
            return Ok(());
        };
        let sub = match self.subscribe(&room).await {
            Ok(sub) => sub,
            Err(e) => return self.domain_error(&e, None, Some(&room)).await,
        };
        self.subs.insert(room.clone(), sub);
        self.push(encode(&ServerFrame::DmOpened {
            room: room.as_str(),
            with: with.as_str(),
        }))
        .await?;
        let page = match self
            .state
            .chat
            .resume(&self.actor, &room, Seq::ZERO, RESUME_LIMIT)
            .await
        {
            Ok(r) => r.page,
            Err(e) => {
                self.subs.remove(&room);
                return self.domain_error(&e, None, Some(&room)).await;
            }
        };
        if let Some(sub) = self.sub(&room) {
            sub.sent_up_to(page.messages.last().map_or(Seq::ZERO, |m| m.seq));
        }
        self.rooms.insert(room, RoomState { joined: false });
        for m in &page.messages {
            self.push(message_frame(m)).await?;
        }
        Ok(())
    }

    /// Sends, from the log, the messages after `after` and before `upto`.
    ///
    /// The relay itself is gap-free, so a hole here only follows a `joined`
    /// snapshot that stopped at its limit (`more: true`): filling it keeps
    /// this connection's stream complete and in order.
    async fn catch_up(&mut self, room: &RoomName, mut after: Seq, upto: Seq) -> Flow {
        while after.next() < upto {
            let page = match self
                .state
                .chat
                .resume(&self.actor, room, after, RESUME_LIMIT)
                .await
            {
                Ok(r) => r.page,
                Err(e) => return self.domain_error(&e, None, Some(room)).await,
            };
            let before = after;
            for m in page
                .messages
                .iter()
                .filter(|m| m.seq > before && m.seq < upto)
            {
                self.push(message_frame(m)).await?;
                after = m.seq;
            }
            if let Some(sub) = self.sub(room) {
                sub.sent_up_to(after);
            }
            // No progress means retention removed the rest: nothing left to send.
            if after == before || !page.more {
                break;
            }
        }
        Ok(())
    }

    async fn on_room(&mut self, room: RoomName, item: RoomItem) -> Flow {
        let event = match item {
            RoomItem::Event(event) => event,
            RoomItem::Lagged | RoomItem::Closed => {
                return Err(Close::With(
                    code::TRY_AGAIN,
                    "fell behind; reconnect and resume with since",
                ));
            }
        };
        let me = self.actor.user().map(|u| &u.name);
        match &event.about {
            About::Message(seq) => {
                if !self.rooms.contains_key(&room) {
                    return Ok(());
                }
                let Some(last) = self.sub(&room).map(RoomSubscription::last_sent) else {
                    return Ok(());
                };
                if *seq <= last {
                    return Ok(());
                }
                if *seq > last.next() {
                    self.catch_up(&room, last, *seq).await?;
                }
                // The catch-up may have sent it already.
                if !self.sub(&room).is_some_and(|sub| sub.sent_up_to(*seq)) {
                    return Ok(());
                }
                self.push(event.text.clone()).await
            }
            About::Typing(user) if Some(user) == me => Ok(()),
            About::Removed(user) if Some(user) == me => {
                self.push(event.text.clone()).await?;
                if self.rooms.remove(&room).is_some_and(|s| s.joined) {
                    if let Err(e) = self.state.chat.absent(&self.actor, &room, &self.id).await {
                        warn!(error = %e, "could not clear presence");
                    }
                }
                self.subs.remove(&room);
                Ok(())
            }
            _ => self.push(event.text.clone()).await,
        }
    }

    async fn on_user_event(&mut self, event: Option<Delivery<UserEvent>>) -> Flow {
        match event {
            None => Err(Close::With(code::TRY_AGAIN, "try again later")),
            Some(Delivery::Lagged) => {
                // Whatever was missed, the store knows: is the session still
                // valid, and which direct rooms exist?
                self.refresh_actor(Unsure::KeepServing).await?;
                self.follow_directs().await
            }
            Some(Delivery::Event(event)) => match &*event {
                UserEvent::SessionsEnded => self.refresh_actor(Unsure::Close).await,
                UserEvent::PermissionsChanged => self.refresh_actor(Unsure::KeepServing).await,
                UserEvent::DirectRoom { room } => self.follow_new_direct(room.clone()).await,
            },
        }
    }

    /// Re-reads who the session belongs to; a session that ended closes
    /// the socket (1008). `unsure` says what a store that cannot answer
    /// means.
    async fn refresh_actor(&mut self, unsure: Unsure) -> Flow {
        let Some(session) = &self.session else {
            return Ok(());
        };
        match self.state.accounts.actor(Some(session)).await {
            Ok(actor @ Actor::User(_)) => {
                self.actor = Arc::new(actor);
                Ok(())
            }
            Ok(_) => Err(Close::With(code::POLICY, "session ended")),
            Err(e) => {
                warn!(error = %e, "could not re-check the session");
                match unsure {
                    Unsure::KeepServing => Ok(()),
                    Unsure::Close => Err(Close::With(code::TRY_AGAIN, "try again later")),
                }
            }
        }
    }

    async fn on_heartbeat(&mut self) -> Flow {
        if self.last_seen.elapsed() > self.state.config.idle_timeout {
            debug!("idle timeout");
            return Err(Close::With(code::GOING_AWAY, "idle timeout"));
        }
        self.push_message(Message::Ping(bytes::Bytes::new()))
            .await?;
        self.beats = self.beats.wrapping_add(1);
        if self.beats % SESSION_CHECK_EVERY == 0 {
            self.refresh_actor(Unsure::KeepServing).await?;
        }
        let joined: Vec<RoomName> = self
            .rooms
            .iter()
            .filter(|(_, s)| s.joined)
            .map(|(r, _)| r.clone())
            .collect();
        for room in joined {
            if let Err(e) = self.state.chat.present(&self.actor, &room, &self.id).await {
                warn!(error = %e, "could not renew presence");
            }
        }
        Ok(())
    }

    async fn leave_all(&mut self) {
        let joined: Vec<RoomName> = self
            .rooms
            .drain()
            .filter(|(_, s)| s.joined)
            .map(|(r, _)| r)
            .collect();
        for room in joined {
            if let Err(e) = self.state.chat.absent(&self.actor, &room, &self.id).await {
                warn!(error = %e, "could not clear presence");
            }
        }
    }
}

/// A token bucket for one connection (no lock, no map: it is owned by the loop).
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Option<Timestamp>,
}

impl Bucket {
    fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst),
            at: None,
        }
    }

    /// Takes a token, or says how long until one is available.
    fn check(&mut self, now: Timestamp) -> Result<(), Duration> {
        let burst = f64::from(self.limit.burst);
        if let Some(at) = self.at {
            let elapsed = at.until(now).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.limit.per_second).min(burst);
        }
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.limit.per_second,
            ))
        }
    }
}

/// The error frame for a failed domain call; internal causes are logged, not sent.
fn domain_error_frame<E: Coded + std::error::Error>(
    e: &E,
    cid: Option<&str>,
    room: Option<&RoomName>,
) -> Utf8Bytes {
    let api = crate::error::ApiError::from_coded(e);
    error_frame(
        api.code(),
        api.message(),
        cid,
        room.map(RoomName::as_str),
        api.retry_after(),
    )
}

async fn next_event(events: &mut Option<EventStream<UserEvent>>) -> Option<Delivery<UserEvent>> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// A read error: over 1 MiB is abuse (1009); anything else means the
/// connection is broken and there is nobody to send a close frame to.
fn read_error(e: &axum::Error) -> Close {
    use std::error::Error as _;
    // axum does not expose tungstenite's error type, so the capacity error
    // is recognised by its message ("Space limit exceeded: Message too long").
    let mut chain = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    if chain.iter().any(|m| m.contains("Space limit exceeded")) {
        debug!(limit = MAX_WS_MESSAGE_BYTES, "frame over the hard limit");
        return Close::With(code::TOO_BIG, "frame larger than 1 MiB");
    }
    debug!(error = %e, "read failed");
    Close::Gone
}

/// The writer: sends what producers could not write in place (see
/// [`Outbox`]): queued frames, and frames a slow socket took only into its
/// buffer. Feeds everything waiting, then flushes once, so a burst costs one
/// syscall rather than one per frame. A close request interrupts a write
/// stuck on a slow peer.
///
/// The task is not instrumented with the connection's `span`: it is polled
/// once per queued delivery (most of a big room's), and entering a span on
/// every poll costs the subscriber's bookkeeping each time. Its few events
/// enter the span themselves.
async fn write_loop(outbox: Arc<Outbox>, span: tracing::Span) {
    use std::task::Poll;
    loop {
        outbox.wanted().await;
        match outbox.drive() {
            // Done, or the peer cannot take more: either way the next
            // thing to do is wait (the socket wakes `wanted` when it can).
            Poll::Ready(Drive::Done) | Poll::Pending => {}
            Poll::Ready(Drive::Broken(e)) => {
                span.in_scope(|| debug!(error = %e, "write failed"));
                return;
            }
            Poll::Ready(Drive::Close(frame)) => {
                return Box::pin(finish(outbox.detach(), frame).instrument(span)).await;
            }
        }
    }
}

async fn finish(sink: Option<SplitSink<WebSocket, Message>>, frame: Option<CloseFrame>) {
    let Some(mut sink) = sink else {
        return;
    };
    let close = async {
        if let Some(frame) = frame {
            sink.send(Message::Close(Some(frame))).await?;
        }
        sink.close().await
    };
    match tokio::time::timeout(CLOSE_TIMEOUT, close).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "close failed"),
        Err(_) => debug!("close timed out"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn size_of_run<F, Fut>(_: F) -> usize
    where
        F: FnOnce(WebSocket, AppState, Viewer, ConnectionGuard) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    fn size_of_writer<F, Fut>(_: F) -> usize
    where
        F: FnOnce(Arc<Outbox>, tracing::Span) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// An idle socket's cost is mostly these two futures plus its 2 KiB read
    /// buffer; 15,000 idle sockets must fit in well under 10 KiB each, so a
    /// change that makes them balloon should be noticed.
    #[test]
    fn an_idle_connection_stays_small() {
        let (run, writer) = (size_of_run(run), size_of_writer(write_loop));
        assert!(run <= 1536, "the connection future is {run} bytes");
        assert!(writer <= 768, "the writer future is {writer} bytes");
        assert!(std::mem::size_of::<Connection>() <= 512);
    }

    /// A real socket whose client does not read at first: the first frames
    /// go out in place, then the kernel buffers fill, frames queue, and the
    /// writer sends them when the client reads. Every frame must arrive,
    /// once, in the order pushed, through all three paths.
    #[tokio::test]
    async fn frames_arrive_in_order_whether_written_in_place_or_queued() {
        const FRAMES: usize = 3_000;
        let (out, mut client) = super::super::outbox::tests::connected(FRAMES).await;
        let out = Arc::new(out);
        let writer = tokio::spawn(write_loop(Arc::clone(&out), tracing::Span::none()));

        let padding = "x".repeat(2_000);
        for i in 0..FRAMES {
            let text = format!("{i:05}{padding}");
            out.try_push(Message::Text(text.into())).unwrap();
        }
        assert!(
            out.try_pop().is_some(),
            "the client reads nothing yet, so some frames must have queued"
        );
        // That frame was taken out of order on purpose to prove the queue
        // was used; put the check on the rest.
        let mut expected = (0..FRAMES).peekable();
        let mut skipped = 0;
        while let Some(frame) = client.next().await {
            let text = frame.unwrap().into_text().unwrap();
            let n: usize = text[..5].parse().unwrap();
            while expected.peek().is_some_and(|&e| e < n) {
                expected.next();
                skipped += 1;
            }
            assert_eq!(expected.next(), Some(n), "frame {n} out of order");
            if n == FRAMES - 1 {
                break;
            }
        }
        assert_eq!(skipped, 1, "only the frame taken from the queue is missing");
        out.close_with(Some(CloseFrame {
            code: 1000,
            reason: Utf8Bytes::from_static("bye"),
        }));
        writer.await.unwrap();
        match client.next().await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 1000);
            }
            other => panic!("expected the close frame, got {other:?}"),
        }
    }

    #[test]
    fn the_bucket_refills_at_its_rate() {
        let mut b = Bucket::new(RateLimit {
            per_second: 2.0,
            burst: 2,
        });
        let t = Timestamp::from_millis(1_000_000);
        assert!(b.check(t).is_ok());
        assert!(b.check(t).is_ok());
        let wait = b.check(t).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.check(t.plus(Duration::from_millis(500))).is_ok());
        assert!(b.check(t.plus(Duration::from_millis(500))).is_err());
    }
}
