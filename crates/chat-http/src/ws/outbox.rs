//! `Outbox`: the bounded queue between a connection's producers (its loop,
//! its rooms' relays) and its socket, with a write-through fast path.
//!
//! **Write-through.** When nothing is queued and no one else is writing, a
//! producer writes its frame to the socket itself, in place: a delivery then
//! costs the socket write and nothing more — no task wake-up, which on one
//! core costs about as much as the write. Only when the socket cannot take
//! the frame at once (the peer is slow, the kernel buffer is full) or someone
//! else holds the socket does the frame wait in the queue, and the writer
//! task ([`Outbox::drive`]) sends it when the socket is ready: the waker
//! the in-place write registered wakes that task. Order holds because a
//! frame leaves the queue only while the socket's lock is held, and a
//! producer writes in place only while holding that lock and finding the
//! queue empty.
//!
//! A tokio `mpsc` channel would do for the queue, but it allocates a
//! 32-slot block up front (1.5 KiB per socket with axum's `Message`), and an
//! idle socket should cost almost nothing: this queue holds no heap memory
//! while empty and gives back what a burst made it grow.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::Sink;
use futures::stream::SplitSink;
use futures::task::AtomicWaker;
use tokio::sync::Notify;

/// The writing half of a connection's socket.
pub(super) type Socket = SplitSink<WebSocket, Message>;

/// Why a push failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PushError {
    /// The queue stayed full for the whole grace period.
    Full,
    /// The socket is closed or broken.
    Closed,
}

/// Why [`Outbox::try_push`] did not take a message (`M`: what was pushed).
#[derive(Debug)]
pub(super) enum Refused<M = Message> {
    /// The queue is full; the message back, to try again.
    Full(M),
    /// The socket is closed or broken.
    Closed,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Message>,
    closed: bool,
    /// Set by [`Outbox::close_with`] until the writer takes it: the close
    /// frame to send, if any.
    ending: Option<Option<CloseFrame>>,
}

/// What one [`Outbox::drive`] came to.
pub(super) enum Drive {
    /// Everything queued is written and flushed.
    Done,
    /// The socket is broken.
    Broken(axum::Error),
    /// The connection is closing: send this close frame (if any), then
    /// close the socket.
    Close(Option<CloseFrame>),
}

/// Wakes the writer task: the waker of every in-place write, so that a
/// socket that could not take a frame at once gets the writer's attention
/// when it can, and what producers signal when they queue.
///
/// One task waits on it (the writer), so a flag and one registered waker
/// do: a signal while the writer is busy is kept in the flag, as a
/// `Notify` permit would be, and its next wait returns at once. A `Notify`
/// would lock its waiter list on every wait and every signal; a big room
/// queues one frame per member and event, so that was two lock round trips
/// on a cold line per delivery.
#[derive(Default)]
struct Signal {
    raised: AtomicBool,
    writer: AtomicWaker,
}

impl Signal {
    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.writer.wake();
    }

    /// Ready once raised since the last time it was ready.
    fn poll_raised(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.raised.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.writer.register(cx.waker());
        // Raised between the check and the registration: that wake-up may
        // have found no waker, so look again.
        if self.raised.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.raise();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.raise();
    }
}

/// A bounded multi-producer queue of outgoing messages in front of a socket.
pub(super) struct Outbox {
    // A std Mutex: each critical section is a push or a pop, never an await.
    state: Mutex<State>,
    capacity: usize,
    /// The socket, while it may be written (see the module doc). A std
    /// Mutex: held for one non-blocking write and never across an await.
    socket: Mutex<Option<Socket>>,
    /// Wakes the writer when something was queued (or the box closed).
    queued: Arc<Signal>,
    /// `queued` as a waker, made once so an in-place write costs no clone.
    waker: Waker,
    /// Wakes a waiting pusher when the writer made room.
    room: Notify,
}

/// Above this many slots an empty queue gives its memory back.
const KEEP_CAPACITY: usize = 8;

/// Whether a frame written in place is flushed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// Flushed now: the frame leaves in its own socket write.
    Now,
    /// Left in the socket's buffer for the next frame's flush.
    Later,
}

/// What one attempt to write in place came to.
enum InPlace {
    /// Written (or held by the socket, which the writer will flush).
    Done,
    /// The socket is not there or cannot take it now: queue it.
    Queue(Message),
    /// The socket is broken or closed.
    Broken,
}

impl Outbox {
    /// An empty queue holding at most `capacity` messages, with no socket
    /// yet (see [`Outbox::attach`]).
    pub(super) fn new(capacity: usize) -> Self {
        let queued = Arc::new(Signal::default());
        Self {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            socket: Mutex::new(None),
            waker: Waker::from(Arc::clone(&queued)),
            queued,
            room: Notify::new(),
        }
    }

    /// Gives the outbox its socket: from now on frames may be written in
    /// place, and [`Outbox::drive`] writes the queued ones.
    pub(super) fn attach(&self, socket: Socket) {
        *self.socket() = Some(socket);
    }

    /// Takes the socket back (to close it): no frame is written after this.
    pub(super) fn detach(&self) -> Option<Socket> {
        self.socket().take()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn socket(&self) -> MutexGuard<'_, Option<Socket>> {
        self.socket.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The socket if no one else is at it (the writer or another producer,
    /// in which case the caller queues).
    fn try_socket(&self) -> Option<MutexGuard<'_, Option<Socket>>> {
        match self.socket.try_lock() {
            Ok(socket) => Some(socket),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Sends `message` now if nothing is queued and the socket is free,
    /// otherwise queues it if there is room; never waits.
    ///
    /// # Errors
    /// Why it was not taken, with the message when it may be tried again.
    pub(super) fn try_push(&self, message: Message) -> Result<(), Refused> {
        let message = match self.try_socket() {
            Some(mut socket) => match self.write_in_place(&mut socket, message, Flush::Now) {
                InPlace::Done => return Ok(()),
                InPlace::Broken => return Err(Refused::Closed),
                InPlace::Queue(m) => m,
            },
            None => message,
        };
        self.enqueue(message, true)
    }

    /// [`Outbox::try_push`] for two messages that go out together, `first`
    /// then `second`, in one socket write when written in place: a sender's
    /// own copy of its message and its `ack` cost one write, not two. Either
    /// both are taken or neither is.
    ///
    /// # Errors
    /// As [`Outbox::try_push`]; `Full` gives both messages back.
    pub(super) fn try_push_pair(
        &self,
        first: Message,
        second: Message,
    ) -> Result<(), Refused<(Message, Message)>> {
        let (first, second) = match self.try_socket() {
            Some(mut socket) => match self.write_in_place(&mut socket, first, Flush::Later) {
                // The first is in the socket's buffer, not yet flushed: the
                // second joins it and the flush sends both. Still under the
                // socket's lock, so nothing can come between them.
                InPlace::Done => {
                    return match self.write_in_place(&mut socket, second, Flush::Now) {
                        InPlace::Done => Ok(()),
                        InPlace::Broken => Err(Refused::Closed),
                        // Queued behind the first, which is in the socket,
                        // even past the capacity: the pair is taken whole.
                        // The first is flushed now, not when the writer
                        // gets to the second.
                        InPlace::Queue(m) => {
                            self.flush_held(&mut socket);
                            self.enqueue(m, false).map_err(|_| Refused::Closed)
                        }
                    };
                }
                InPlace::Broken => return Err(Refused::Closed),
                InPlace::Queue(first) => (first, second),
            },
            None => (first, second),
        };
        let mut state = self.state();
        if state.closed {
            return Err(Refused::Closed);
        }
        if state.queue.len() + 2 > self.capacity {
            return Err(Refused::Full((first, second)));
        }
        state.queue.push_back(first);
        state.queue.push_back(second);
        drop(state);
        self.queued.raise();
        Ok(())
    }

    /// Queues `message` behind what is queued; `bounded`: only if there
    /// is room.
    fn enqueue(&self, message: Message, bounded: bool) -> Result<(), Refused<Message>> {
        let mut state = self.state();
        if state.closed {
            return Err(Refused::Closed);
        }
        if bounded && state.queue.len() >= self.capacity {
            return Err(Refused::Full(message));
        }
        state.queue.push_back(message);
        drop(state);
        self.queued.raise();
        Ok(())
    }

    /// With the socket's lock held: flushes its buffer.
    fn flush_held(&self, socket: &mut Option<Socket>) {
        if let Some(socket) = socket.as_mut() {
            let mut cx = Context::from_waker(&self.waker);
            // Pending: the writer is woken when the peer can take more, and
            // flushes. An error: the socket is broken, which its next write
            // or read reports.
            let _ = Pin::new(socket).poll_flush(&mut cx);
        }
    }

    /// With the socket's lock held: writes `message` if the queue is empty
    /// (so nothing queued earlier is overtaken) and the socket takes it now;
    /// flushes it with `Flush::Now`.
    fn write_in_place(
        &self,
        socket: &mut Option<Socket>,
        message: Message,
        flush: Flush,
    ) -> InPlace {
        let Some(socket) = socket.as_mut() else {
            return InPlace::Queue(message);
        };
        // Each socket write spends a unit of the task's cooperative budget
        // (128 per poll). Once it is spent, a write returns Pending and
        // wakes its waker at once — through tokio-tungstenite's shared waker
        // proxy both the writer and the connection loop. A relay fanning out
        // to a big room spends it after 128 sockets; queueing the rest costs
        // one writer wake-up each instead of two wake-ups.
        if !tokio::task::coop::has_budget_remaining() {
            return InPlace::Queue(message);
        }
        {
            let state = self.state();
            if state.closed {
                return InPlace::Broken;
            }
            // Nothing can leave the queue while we hold the socket, so
            // whatever is pushed from here on comes after this frame.
            if !state.queue.is_empty() {
                return InPlace::Queue(message);
            }
        }
        let mut cx = Context::from_waker(&self.waker);
        let mut socket = Pin::new(socket);
        match socket.as_mut().poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return InPlace::Broken,
            // The waker fires when the socket is ready: the writer takes it.
            Poll::Pending => return InPlace::Queue(message),
        }
        if socket.as_mut().start_send(message).is_err() {
            return InPlace::Broken;
        }
        if flush == Flush::Later {
            return InPlace::Done;
        }
        // Pending: the frame sits in the socket's buffer and the writer,
        // woken when the peer can take more, flushes it.
        match socket.poll_flush(&mut cx) {
            Poll::Ready(Err(_)) => InPlace::Broken,
            Poll::Ready(Ok(())) | Poll::Pending => InPlace::Done,
        }
    }

    /// [`Outbox::try_push`], waiting up to `grace` for room when the queue is
    /// full.
    pub(super) async fn push(&self, message: Message, grace: Duration) -> Result<(), PushError> {
        let mut message = match self.try_push(message) {
            Ok(()) => return Ok(()),
            Err(Refused::Closed) => return Err(PushError::Closed),
            Err(Refused::Full(m)) => m,
        };
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before the retry, so a pop in between still wakes us.
            room.as_mut().enable();
            match self.try_push(message) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed) => return Err(PushError::Closed),
                Err(Refused::Full(m)) => message = m,
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(PushError::Full);
            }
        }
    }

    /// Waits until something may need writing: a frame was queued, a socket
    /// that could not take a frame became ready, or the box closed.
    pub(super) async fn wanted(&self) {
        std::future::poll_fn(|cx| self.queued.poll_raised(cx)).await;
    }

    /// The writer's step: writes every queued frame into the socket and
    /// flushes it. Ready when all is written, the socket broke, or the
    /// connection asked to close ([`Outbox::close_with`], which comes
    /// first, even while the peer is slow); pending while the peer cannot
    /// take more, until which the writer waits in [`Outbox::wanted`].
    ///
    /// The socket is polled with the outbox's own waker, never the
    /// writer's: the socket keeps one waker for writing, the last one that
    /// polled it, and producers writing in place poll it too. Had the
    /// writer registered its own, a producer's write in between would
    /// replace it, and the writer, waiting on a waker no one held any
    /// more, would never flush again. One waker for every writer of the
    /// socket, and the writer always waiting on it, cannot lose a wake-up.
    ///
    /// The close request lives here rather than in a channel of its own
    /// because this is the one place the writer looks at on every wake-up:
    /// polling a second future there was a cold cache line per delivery.
    pub(super) fn drive(&self) -> Poll<Drive> {
        if let Some(frame) = self.state().ending.take() {
            return Poll::Ready(Drive::Close(frame));
        }
        let mut guard = self.socket();
        let Some(socket) = guard.as_mut() else {
            return Poll::Ready(Drive::Done);
        };
        let mut cx = Context::from_waker(&self.waker);
        let mut socket = Pin::new(socket);
        loop {
            match socket.as_mut().poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Drive::Broken(e)),
                Poll::Pending => return Poll::Pending,
            }
            // Popped and handed to the socket under its lock: see the
            // module doc on order.
            let Some(message) = self.try_pop() else {
                break;
            };
            if let Err(e) = socket.as_mut().start_send(message) {
                return Poll::Ready(Drive::Broken(e));
            }
        }
        match socket.poll_flush(&mut cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Drive::Done),
            Poll::Ready(Err(e)) => Poll::Ready(Drive::Broken(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next message if one is waiting.
    pub(super) fn try_pop(&self) -> Option<Message> {
        let mut state = self.state();
        let message = state.queue.pop_front();
        if state.queue.is_empty() && state.queue.capacity() > KEEP_CAPACITY {
            state.queue = VecDeque::new();
        }
        drop(state);
        if message.is_some() {
            self.room.notify_one();
        }
        message
    }

    /// Closes: drops whatever is still queued, refuses further pushes, and
    /// has the writer send `frame` (if any) and close the socket.
    pub(super) fn close_with(&self, frame: Option<CloseFrame>) {
        let mut state = self.state();
        state.closed = true;
        state.queue = VecDeque::new();
        state.ending = Some(frame);
        drop(state);
        // The writer waits in `wanted` whether or not the peer is slow.
        self.queued.raise();
        self.room.notify_waiters();
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;

    fn text(s: &'static str) -> Message {
        Message::Text(s.into())
    }

    // The writer's signal keeps a raise that came while no one waited (the
    // writer was busy writing), answers it once, and wakes a waiting writer.
    #[tokio::test]
    async fn the_writer_signal_keeps_one_raise_and_wakes_a_waiter() {
        use futures::FutureExt as _;
        let outbox = Arc::new(Outbox::new(4));
        assert!(
            outbox.wanted().now_or_never().is_none(),
            "nothing raised yet"
        );

        outbox.queued.raise();
        outbox.queued.raise();
        assert!(outbox.wanted().now_or_never().is_some(), "a kept raise");
        assert!(
            outbox.wanted().now_or_never().is_none(),
            "two raises before a wait are one"
        );

        let waiter = {
            let o = Arc::clone(&outbox);
            tokio::spawn(async move { o.wanted().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the writer waits");
        outbox.enqueue(text("a"), true).unwrap();
        tokio::time::timeout(LONG, waiter)
            .await
            .expect("queueing wakes the writer")
            .unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_waits_for_room_then_gives_up() {
        let outbox = Arc::new(Outbox::new(2));
        let grace = Duration::from_millis(50);
        outbox.push(text("a"), grace).await.unwrap();
        outbox.push(text("b"), grace).await.unwrap();
        assert_eq!(outbox.push(text("c"), grace).await, Err(PushError::Full));

        let popper = {
            let o = Arc::clone(&outbox);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                o.try_pop()
            })
        };
        outbox
            .push(text("c"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(popper.await.unwrap(), Some(text("a")));
        assert_eq!(outbox.try_pop(), Some(text("b")));
        assert_eq!(outbox.try_pop(), Some(text("c")));
        assert_eq!(outbox.try_pop(), None);
    }

    /// How long a test waits for a frame that must come.
    const LONG: Duration = Duration::from_secs(10);

    /// The client's end of a test socket.
    pub(in crate::ws) type Client = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    /// An outbox of `capacity` attached to the server's end of a real
    /// WebSocket over loopback, and the client's end.
    pub(in crate::ws) async fn connected(capacity: usize) -> (Outbox, Client) {
        use axum::extract::ws::{WebSocket, WebSocketUpgrade};
        use futures::StreamExt as _;

        let (tx, rx) = tokio::sync::oneshot::channel::<WebSocket>();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move |ws: WebSocketUpgrade| async move {
                ws.on_upgrade(move |socket| async move {
                    if let Some(tx) = tx.lock().unwrap().take() {
                        let _ = tx.send(socket);
                    }
                })
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .unwrap();
        let (sink, _stream) = rx.await.unwrap().split();
        let outbox = Outbox::new(capacity);
        outbox.attach(sink);
        (outbox, client)
    }

    /// The next text frame the client gets within `wait`.
    async fn received(client: &mut Client, wait: Duration) -> Option<String> {
        use futures::StreamExt as _;
        match tokio::time::timeout(wait, client.next()).await {
            Ok(Some(Ok(frame))) => Some(frame.into_text().unwrap().to_string()),
            Ok(other) => panic!("the socket ended: {other:?}"),
            Err(_) => None,
        }
    }

    // What makes an own message and its ack one socket write: the first
    // frame of a pair stays in the socket's buffer until the second's flush.
    #[tokio::test]
    async fn a_held_frame_reaches_the_peer_only_with_the_next_flush() {
        let (outbox, mut client) = connected(4).await;
        {
            let mut socket = outbox.socket();
            let written = outbox.write_in_place(&mut socket, text("first"), Flush::Later);
            assert!(matches!(written, InPlace::Done));
        }
        // A frame sent would be here in well under this on loopback; a
        // slow machine can only make this pass wrongly, never fail wrongly.
        let brief = Duration::from_millis(200);
        assert_eq!(
            received(&mut client, brief).await,
            None,
            "a held frame was sent"
        );
        outbox.try_push(text("second")).unwrap();
        assert_eq!(received(&mut client, LONG).await.as_deref(), Some("first"));
        assert_eq!(received(&mut client, LONG).await.as_deref(), Some("second"));

        outbox.try_push_pair(text("own"), text("ack")).unwrap();
        assert_eq!(received(&mut client, LONG).await.as_deref(), Some("own"));
        assert_eq!(received(&mut client, LONG).await.as_deref(), Some("ack"));
        assert_eq!(outbox.try_pop(), None, "the pair was written in place");
    }

    /// A waker that records that it was woken.
    #[derive(Default)]
    pub(in crate::ws) struct Flag(std::sync::atomic::AtomicBool);

    impl Flag {
        /// Whether it was woken.
        pub(in crate::ws) fn woken(&self) -> bool {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    // A close must not wait for a slow peer to drain what is queued: the
    // writer, waiting behind a full socket, is woken and told to close.
    #[tokio::test]
    async fn a_close_reaches_a_writer_waiting_for_a_slow_peer() {
        use futures::FutureExt as _;
        let (outbox, _client) = connected(4).await;
        // The client reads nothing: push until the kernel's buffers are full
        // and the writer cannot drain the queue.
        let frame = "x".repeat(64 * 1024);
        let mut full = false;
        for _ in 0..1_000 {
            match outbox.try_push(Message::Text(frame.clone().into())) {
                Ok(()) => {}
                Err(Refused::Full(_)) => {}
                Err(Refused::Closed) => panic!("the socket closed"),
            }
            if matches!(outbox.drive(), Poll::Pending) {
                full = true;
                break;
            }
        }
        assert!(full, "the socket never filled up");
        // The writer now waits in `wanted`; take the wake-ups already owed.
        while outbox.wanted().now_or_never().is_some() {}

        outbox.close_with(Some(CloseFrame {
            code: 1001,
            reason: "bye".into(),
        }));
        assert!(
            outbox.wanted().now_or_never().is_some(),
            "the writer was not woken"
        );
        match outbox.drive() {
            Poll::Ready(Drive::Close(Some(f))) => assert_eq!(f.code, 1001),
            _ => panic!("the writer was not told to close"),
        }
        assert!(matches!(
            outbox.try_push(text("late")),
            Err(Refused::Closed)
        ));
    }

    // The writer waits in `wanted` behind a slow peer; when the peer
    // drains, the socket's wake-up must reach it, whoever polled the socket
    // last, and everything queued goes out. (It once did not: the writer
    // registered its own waker, an in-place write by a producer replaced it
    // in the socket, and the connection stopped sending for good, a stall
    // the two-node test hit about once in 15 runs on a busy machine.)
    #[tokio::test]
    async fn a_slow_peer_that_drains_wakes_the_writer_whoever_wrote_last() {
        use futures::FutureExt as _;
        let (outbox, mut client) = connected(1_000).await;
        // The client reads nothing yet: fill the socket until frames queue.
        let frame = "x".repeat(16 * 1024);
        let mut sent = 0;
        while outbox.state().queue.is_empty() {
            assert!(sent < 10_000, "the socket never filled up");
            outbox
                .try_push(Message::Text(frame.clone().into()))
                .unwrap();
            sent += 1;
        }
        // The writer's step finds the peer slow and waits; a producer then
        // writes after it (queued behind, as the queue is not empty).
        assert!(matches!(outbox.drive(), Poll::Pending));
        outbox.try_push(text("last")).unwrap();
        while outbox.wanted().now_or_never().is_some() {}

        // The peer reads: the writer must be woken, and then send the rest.
        let mut got = 0;
        let mut reading = Box::pin(async {
            loop {
                match received(&mut client, LONG).await.as_deref() {
                    Some("last") => return got,
                    Some(_) => got += 1,
                    None => return got,
                }
            }
        });
        loop {
            tokio::select! {
                got = &mut reading => {
                    assert_eq!(got, sent, "every frame, then the last");
                    break;
                }
                () = outbox.wanted() => match outbox.drive() {
                    Poll::Ready(Drive::Done) | Poll::Pending => {}
                    Poll::Ready(_) => panic!("the socket broke"),
                },
                () = tokio::time::sleep(LONG) => panic!("the writer was never woken"),
            }
        }
    }

    #[tokio::test]
    async fn closing_drops_what_is_queued_and_ends() {
        let outbox = Outbox::new(4);
        outbox.push(text("a"), Duration::ZERO).await.unwrap();
        outbox.close_with(None);
        assert_eq!(
            outbox.push(text("b"), Duration::ZERO).await,
            Err(PushError::Closed)
        );
        assert_eq!(outbox.try_pop(), None);
    }
}
