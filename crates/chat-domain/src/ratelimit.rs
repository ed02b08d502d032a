//! Flood control: a token bucket per key (user and room), parsed from the
//! `--rate-limit` setting (`10/s,burst=20` or `off`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::names::InvalidInput;

/// A sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: how many may be sent at once after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    /// The contract's default: 10 per second, bursts of 20.
    pub const DEFAULT: RateLimit = RateLimit {
        per_second: 10.0,
        burst: 20,
    };

    /// Parses `N/s`, `N/m`, optionally `,burst=B`; `off` gives `None`.
    ///
    /// # Errors
    /// [`InvalidInput`] for anything else.
    pub fn parse(raw: &str) -> Result<Option<Self>, InvalidInput> {
        const BAD: InvalidInput = InvalidInput {
            what: "rate limit",
            why: "expected like `10/s,burst=20` or `off`",
        };
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let mut parts = raw.split(',').map(str::trim);
        let rate = parts.next().ok_or(BAD)?;
        let (n, unit) = rate.split_once('/').ok_or(BAD)?;
        let n: f64 = n.trim().parse().map_err(|_| BAD)?;
        let per_second = match unit.trim() {
            "s" => n,
            "m" => n / 60.0,
            _ => return Err(BAD),
        };
        if !per_second.is_finite() || per_second <= 0.0 {
            return Err(BAD);
        }
        let mut burst = per_second.ceil().max(1.0) as u32;
        for part in parts {
            let v = part.strip_prefix("burst=").ok_or(BAD)?;
            burst = v.parse().map_err(|_| BAD)?;
            if burst == 0 {
                return Err(BAD);
            }
        }
        if parts_left_over(raw) {
            return Err(BAD);
        }
        Ok(Some(Self { per_second, burst }))
    }
}

fn parts_left_over(raw: &str) -> bool {
    raw.split(',').count() > 2
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Timestamp,
}

/// Token buckets keyed by `K`, kept in this process.
///
/// A std `Mutex` is right here: the critical section is a few arithmetic
/// operations and is never held across an `.await`.
#[derive(Debug)]
pub struct RateLimiter<K> {
    limit: RateLimit,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter enforcing `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at `now`.
    ///
    /// # Errors
    /// How long until a token is available, when none is.
    pub fn check(&self, key: &K, now: Timestamp) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 50_000 {
            // Full buckets carry no state worth keeping; dropping them bounds memory.
            let (rate, burst) = (self.limit.per_second, f64::from(self.limit.burst));
            buckets.retain(|_, b| b.tokens + b.at.until(now).as_secs_f64() * rate < burst);
        }
        let burst = f64::from(self.limit.burst);
        let b = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = b.at.until(now).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.limit.per_second).min(burst);
        b.at = b.at.max(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - b.tokens) / self.limit.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_setting() {
        assert_eq!(
            RateLimit::parse("10/s,burst=20").unwrap(),
            Some(RateLimit::DEFAULT)
        );
        assert_eq!(RateLimit::parse("off").unwrap(), None);
        assert_eq!(RateLimit::parse("60/m").unwrap().unwrap().burst, 1);
        for bad in [
            "",
            "10",
            "10/h",
            "x/s",
            "10/s,burst=0",
            "10/s,foo=1",
            "0/s",
            "10/s,burst=1,burst=2",
        ] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_twenty_first_message_of_a_burst_is_refused() {
        let l = RateLimiter::new(RateLimit::DEFAULT);
        let t = Timestamp::from_millis(1_000_000);
        for i in 0..20 {
            assert!(l.check(&"a", t).is_ok(), "message {i}");
        }
        let wait = l.check(&"a", t).unwrap_err();
        assert!(wait <= Duration::from_millis(100));
        assert!(l.check(&"b", t).is_ok(), "other keys are unaffected");
        assert!(l.check(&"a", t.plus(Duration::from_millis(100))).is_ok());
    }
}
