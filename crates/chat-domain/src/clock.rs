//! Time: the `Timestamp` every record carries and the `Clock` port that makes it.
//!
//! Time is a port so tests can drive mute expiry, presence timeouts and
//! retention without sleeping; the server clock, never the reader's, stamps
//! every message (the original showed receivers' clocks).

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: whole milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Wraps milliseconds since the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }
    /// This time plus `d` (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
    /// This time minus `d` (saturating).
    pub fn minus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
    /// How long from `self` until `later`; zero if `later` is not later.
    pub fn until(self, later: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0))
    }
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-23T10:00:00.123Z`.
    pub fn to_rfc3339(self) -> String {
        self.rfc3339().as_str().to_owned()
    }

    /// [`Timestamp::to_rfc3339`] without allocating: every message sent out
    /// carries one (50 per history page), and serialising from the stack
    /// saves a heap allocation each.
    pub fn rfc3339(self) -> Rfc3339 {
        let mut out = Rfc3339 {
            buf: [0; RFC3339_MAX],
            len: 0,
        };
        // Years 0–9999 are formatted by hand: the calendar arithmetic of
        // `time` plus `format!` cost more than the rest of a message's
        // serialisation. Other years, which no message has, take the
        // general path.
        if !rfc3339_common_era(self.0, &mut out) {
            out.len = 0;
            self.rfc3339_any_year(&mut out);
        }
        out
    }

    /// [`Timestamp::rfc3339`] for any year, through `time`.
    fn rfc3339_any_year(self, out: &mut Rfc3339) {
        use fmt::Write as _;
        let nanos = i128::from(self.0) * 1_000_000;
        // `time` covers years -9999 to 9999, 25 bytes at most: the buffer
        // always has room, so the writes cannot fail.
        let _ = match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => write!(
                out,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            ),
            Err(_) => out.write_str("1970-01-01T00:00:00.000Z"),
        };
    }
}

/// The longest [`Rfc3339`]: a sign, a year of up to six digits and the
/// 20 bytes after it, with room to spare.
const RFC3339_MAX: usize = 32;

/// A timestamp formatted as RFC 3339 ([`Timestamp::rfc3339`]), on the stack.
#[derive(Clone, Copy)]
pub struct Rfc3339 {
    buf: [u8; RFC3339_MAX],
    len: usize,
}

impl Rfc3339 {
    /// The text, e.g. `2026-11-23T10:00:00.123Z`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever written (`push`,
        // `write_str` of formatted numbers), so this cannot fail.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }
}

impl fmt::Write for Rfc3339 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const MS_PER_DAY: i64 = 86_400_000;

/// Writes `ms` since the epoch as RFC 3339 with milliseconds into `out`;
/// `false` (and `out` untouched) outside the years 0–9999, which need more
/// than four digits or a sign.
fn rfc3339_common_era(ms: i64, out: &mut Rfc3339) -> bool {
    let (year, month, day) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    if !(0..=9999).contains(&year) {
        return false;
    }
    let in_day = ms.rem_euclid(MS_PER_DAY);
    push_digits(out, year, 4);
    out.push(b'-');
    push_digits(out, month, 2);
    out.push(b'-');
    push_digits(out, day, 2);
    out.push(b'T');
    push_digits(out, in_day / 3_600_000, 2);
    out.push(b':');
    push_digits(out, in_day / 60_000 % 60, 2);
    out.push(b':');
    push_digits(out, in_day / 1000 % 60, 2);
    out.push(b'.');
    push_digits(out, in_day % 1000, 3);
    out.push(b'Z');
    true
}

/// Appends the last `width` decimal digits of `n` (0 ≤ n), zero-padded.
fn push_digits(out: &mut Rfc3339, n: i64, width: u32) {
    for place in (0..width).rev() {
        let digit = n / 10_i64.pow(place) % 10;
        out.push(b'0' + u8::try_from(digit).unwrap_or(0));
    }
}

/// The proleptic Gregorian (year, month, day) of a day counted from
/// 1970-01-01: Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html>), in eras of
/// 400 years starting on March 1st so that leap days fall at the end.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc3339().as_str())
    }
}

/// The source of "now".
pub trait Clock: Send + Sync + 'static {
    /// The current time. MUST never go backwards by more than the system clock does.
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// A clock that moves only when told to: for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start.0))
    }
    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    /// Sets the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_with_millis() {
        assert_eq!(
            Timestamp::from_millis(0).to_rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_795_428_000_123).to_rfc3339(),
            "2026-11-23T10:00:00.123Z"
        );
    }

    #[test]
    fn the_hand_formatter_agrees_with_time_everywhere() {
        let edges = [
            0,
            -1,
            1,
            951_782_400_000,     // 2000-02-29
            951_868_799_999,     // 2000-02-29T23:59:59.999
            -2_203_891_200_000,  // 1900-02-28
            -62_167_219_200_000, // 0000-01-01
            -62_167_219_200_001, // the millisecond before: year -1
            253_402_300_799_999, // 9999-12-31T23:59:59.999
            253_402_300_800_000, // 10000-01-01
            i64::MAX,
            i64::MIN,
        ];
        // Every day for 1,200 years around now, at a varying time of day.
        let days = (-150_000..300_000_i64)
            .map(|d| d * MS_PER_DAY + (d * 7_919_213).rem_euclid(MS_PER_DAY));
        for ms in edges.into_iter().chain(days) {
            let t = Timestamp::from_millis(ms);
            let mut general = Rfc3339 {
                buf: [0; RFC3339_MAX],
                len: 0,
            };
            t.rfc3339_any_year(&mut general);
            assert_eq!(t.to_rfc3339(), general.as_str(), "{ms}");
            assert_eq!(t.to_string(), general.as_str(), "{ms}");
        }
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(1000);
        assert_eq!(t.plus(Duration::from_secs(1)).as_millis(), 2000);
        assert_eq!(t.until(Timestamp::from_millis(500)), Duration::ZERO);
        assert_eq!(
            t.until(Timestamp::from_millis(1500)),
            Duration::from_millis(500)
        );
    }
}
