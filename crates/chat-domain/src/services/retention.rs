//! `Retention`: the periodic sweep that deletes messages older than the
//! configured age from every room, direct rooms included, in batches.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::ports::{MessageLog, StoreResult};

/// How many messages one delete statement removes; small batches keep the
/// store's write lock short so live sends are not stalled by a big sweep.
pub const SWEEP_BATCH: usize = 1000;

/// Deletes old messages.
pub struct Retention {
    log: Arc<dyn MessageLog>,
    clock: Arc<dyn Clock>,
    max_age: Option<Duration>,
}

impl Retention {
    /// `max_age: None` keeps everything.
    pub fn new(log: Arc<dyn MessageLog>, clock: Arc<dyn Clock>, max_age: Option<Duration>) -> Self {
        Self {
            log,
            clock,
            max_age,
        }
    }

    /// The configured age, if any.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// Deletes every message older than the configured age; returns how many.
    ///
    /// # Errors
    /// Store failures (what was deleted before the failure stays deleted).
    pub async fn sweep(&self) -> StoreResult<u64> {
        let Some(age) = self.max_age else {
            return Ok(0);
        };
        let cutoff = self.clock.now().minus(age);
        let mut total = 0;
        loop {
            let n = self.log.delete_before(cutoff, SWEEP_BATCH).await?;
            total += n;
            if n < SWEEP_BATCH as u64 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }
}
