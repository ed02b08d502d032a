//! `Outbox`: the bounded queue between a connection's loop and its writer.
//!
//! A tokio `mpsc` channel would do, but it allocates a 32-slot block up
//! front (1.5 KiB per socket with axum's `Message`), and an idle socket
//! should cost almost nothing: this queue holds no heap memory while empty
//! and gives back what a burst made it grow.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::Message;
use tokio::sync::Notify;

/// Why a push failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PushError {
    /// The queue stayed full for the whole grace period.
    Full,
    /// The writer is gone.
    Closed,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Message>,
    closed: bool,
}

/// A bounded multi-producer, single-consumer queue of outgoing messages.
pub(super) struct Outbox {
    // A std Mutex: each critical section is a push or a pop, never an await.
    state: Mutex<State>,
    capacity: usize,
    /// Wakes the writer when something was queued (or the box closed).
    queued: Notify,
    /// Wakes a waiting pusher when the writer made room.
    room: Notify,
}

/// Above this many slots an empty queue gives its memory back.
const KEEP_CAPACITY: usize = 8;

impl Outbox {
    /// An empty queue holding at most `capacity` messages.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            queued: Notify::new(),
            room: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `message` if there is room, without waiting.
    ///
    /// # Errors
    /// The reason and the message back when it could not be queued.
    pub(super) fn try_push(&self, message: Message) -> Result<(), (PushError, Message)> {
        let mut state = self.state();
        if state.closed {
            return Err((PushError::Closed, message));
        }
        if state.queue.len() >= self.capacity {
            return Err((PushError::Full, message));
        }
        state.queue.push_back(message);
        drop(state);
        self.queued.notify_one();
        Ok(())
    }

    /// Queues `message`, waiting up to `grace` for room when the queue is full.
    pub(super) async fn push(&self, message: Message, grace: Duration) -> Result<(), PushError> {
        let mut message = match self.try_push(message) {
            Ok(()) => return Ok(()),
            Err((PushError::Closed, _)) => return Err(PushError::Closed),
            Err((PushError::Full, m)) => m,
        };
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before the retry, so a pop in between still wakes us.
            room.as_mut().enable();
            match self.try_push(message) {
                Ok(()) => return Ok(()),
                Err((PushError::Closed, _)) => return Err(PushError::Closed),
                Err((PushError::Full, m)) => message = m,
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(PushError::Full);
            }
        }
    }

    /// The next message; `None` once closed and empty.
    pub(super) async fn pop(&self) -> Option<Message> {
        loop {
            let queued = self.queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            if let Some(m) = self.try_pop() {
                return Some(m);
            }
            if self.state().closed {
                return None;
            }
            queued.await;
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

    /// Closes and drops whatever is still queued.
    pub(super) fn close_and_clear(&self) {
        let mut state = self.state();
        state.closed = true;
        state.queue = VecDeque::new();
        drop(state);
        self.queued.notify_one();
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;

    fn text(s: &'static str) -> Message {
        Message::Text(s.into())
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
                o.pop().await
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

    #[tokio::test]
    async fn closing_drops_what_is_queued_and_ends() {
        let outbox = Outbox::new(4);
        outbox.push(text("a"), Duration::ZERO).await.unwrap();
        outbox.close_and_clear();
        assert_eq!(
            outbox.push(text("b"), Duration::ZERO).await,
            Err(PushError::Closed)
        );
        assert_eq!(outbox.pop().await, None);
    }
}
