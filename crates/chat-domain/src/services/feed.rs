//! `RoomFeed`: a room's events in seq order with no gap and no repeat.
//!
//! The bus is at-most-once and two senders' publishes can overtake each other
//! (seq 6 may be published before seq 5), so the feed tracks the last seq it
//! delivered and, whenever the next event skips ahead or the bus reports a
//! lag, reads the missing messages from the log before going on. This works
//! because every adapter stores a message before it is published: anything
//! with a lower seq than a published message is already in the log.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::{Interval, MissedTickBehavior};
use tracing::warn;

use crate::model::{Delivery, RoomEvent};
use crate::names::{RoomName, Seq};
use crate::ports::{EventStream, MessageLog};

/// One event of a feed, shared with every other reader on this node.
pub type FeedItem = Arc<RoomEvent>;

/// How often an idle feed asks the log whether it missed the newest message
/// (a dropped publish with nothing after it would otherwise wait for the next send).
pub const FEED_CHECK_INTERVAL: Duration = Duration::from_secs(3);

/// How many messages one gap-filling read fetches.
const FILL_PAGE: usize = 1000;

/// An ordered, gap-free stream of a room's events.
pub struct RoomFeed {
    room: RoomName,
    log: Arc<dyn MessageLog>,
    stream: EventStream<RoomEvent>,
    delivered: Seq,
    queue: VecDeque<FeedItem>,
    check: Interval,
}

impl RoomFeed {
    /// A feed of `room` that starts after `after` (messages with seq ≤ `after`
    /// are never delivered). Subscribe to the bus *before* reading whatever
    /// snapshot `after` comes from, so nothing falls between the two.
    pub fn new(
        room: RoomName,
        log: Arc<dyn MessageLog>,
        stream: EventStream<RoomEvent>,
        after: Seq,
    ) -> Self {
        let mut check = tokio::time::interval(FEED_CHECK_INTERVAL);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            room,
            log,
            stream,
            delivered: after,
            queue: VecDeque::new(),
            check,
        }
    }

    /// The room this feed follows.
    pub fn room(&self) -> &RoomName {
        &self.room
    }

    /// The seq of the last message delivered.
    pub fn delivered(&self) -> Seq {
        self.delivered
    }

    /// The next event; `None` when the bus subscription has ended.
    pub async fn next(&mut self) -> Option<FeedItem> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            tokio::select! {
                delivery = self.stream.next() => match delivery? {
                    Delivery::Lagged => self.fill(None).await,
                    Delivery::Event(event) => {
                        let RoomEvent::Message(m) = &*event else { return Some(event) };
                        if m.seq <= self.delivered {
                            continue;
                        }
                        if m.seq == self.delivered.next() {
                            self.delivered = m.seq;
                            return Some(event);
                        }
                        self.fill(Some(event)).await;
                    }
                },
                _ = self.check.tick() => {
                    match self.log.last_seq(&self.room).await {
                        Ok(last) if last > self.delivered => self.fill(None).await,
                        Ok(_) => {}
                        Err(e) => warn!(room = %self.room, error = %e, "feed check failed"),
                    }
                }
            }
        }
    }

    /// Reads everything after `delivered` from the log into the queue, then
    /// `pending` if it is still ahead. Retries while the log is unreachable:
    /// delivering out of order or with a hole would break the guarantee,
    /// waiting does not.
    async fn fill(&mut self, pending: Option<FeedItem>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.log.after(&self.room, self.delivered, FILL_PAGE).await {
                Ok(page) => {
                    for m in page.messages {
                        // Retention may have removed old ones: the log is the truth.
                        if m.seq > self.delivered {
                            self.delivered = m.seq;
                            self.queue.push_back(Arc::new(RoomEvent::Message(m)));
                        }
                    }
                    if !page.more {
                        break;
                    }
                }
                Err(e) => {
                    warn!(room = %self.room, error = %e, "gap fill failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        if let Some(event) = pending {
            if let RoomEvent::Message(m) = &*event {
                if m.seq > self.delivered {
                    self.delivered = m.seq;
                    self.queue.push_back(event);
                }
            }
        }
    }
}
