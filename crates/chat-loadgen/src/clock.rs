//! One monotonic clock for the whole run, so that a scheduled send time
//! written into a message by one task can be compared with a receipt time
//! taken by another, in microseconds.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The instant every timestamp of this process counts from (fixed on first use).
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds from the epoch to `t` (0 for an instant before it).
pub fn micros(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_micros()).unwrap_or(u64::MAX)
}

/// Microseconds from the epoch to now.
pub fn now_us() -> u64 {
    micros(Instant::now())
}
