//! Exactly-once, in-order accounting by room `seq`, per recipient: the
//! counters that fail a run whatever its speed (CONTRACT §5.1: every member
//! receives every message of a room it joined, in seq order, exactly once per
//! connection).

use std::collections::BTreeSet;

use serde::Serialize;

/// What went wrong with delivery, summed over recipients. Any non-zero
/// counter fails the run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Integrity {
    /// Messages a recipient should have received (seq up to the room's last)
    /// and never did.
    pub lost: u64,
    /// Messages received more than once, or already covered by the join snapshot.
    pub duplicated: u64,
    /// Messages received after a higher seq of the same room.
    pub out_of_order: u64,
    /// Times a seq arrived more than one past the highest seen (a hole opened).
    pub gaps: u64,
    /// Sends with a cid that got neither an ack nor an error: such a message
    /// may be stored and yet reach no one, invisible to the seq checks.
    pub unanswered: u64,
    /// Answers that contradict the protocol otherwise (a history page with
    /// the wrong range, a join snapshot that does not end at the room's last
    /// seq, a resume that did not complete).
    pub malformed: u64,
}

impl Integrity {
    /// Whether nothing at all went wrong.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }

    /// Adds `other`'s counters to these.
    pub fn add(&mut self, other: &Integrity) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.gaps += other.gaps;
        self.unanswered += other.unanswered;
        self.malformed += other.malformed;
    }
}

/// How one arriving seq relates to what came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The next seq, as it should be.
    InOrder,
    /// A seq beyond the next one: `skipped` seqs are now missing.
    Gap {
        /// How many seqs were jumped over.
        skipped: u64,
    },
    /// A missing seq that arrived after a higher one.
    Late,
    /// A seq already received (or covered by the join snapshot).
    Duplicate,
}

/// The seqs one connection has received in one room.
///
/// Missing seqs are kept in a set, so a late one can be told from a
/// duplicate; in a healthy run the set stays empty and every observation is
/// a comparison and an increment.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    start: u64,
    highest: u64,
    missing: BTreeSet<u64>,
    received: u64,
    duplicated: u64,
    out_of_order: u64,
    gaps: u64,
}

impl SeqTracker {
    /// A tracker for a recipient that has seen everything up to `seq`
    /// (0 for a fresh room): it expects `seq + 1` next.
    pub fn starting_after(seq: u64) -> Self {
        Self {
            start: seq,
            highest: seq,
            missing: BTreeSet::new(),
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            gaps: 0,
        }
    }

    /// Records one received seq.
    pub fn observe(&mut self, seq: u64) -> Observation {
        if seq == self.highest + 1 {
            self.highest = seq;
            self.received += 1;
            Observation::InOrder
        } else if seq > self.highest {
            let skipped = seq - self.highest - 1;
            self.missing.extend(self.highest + 1..seq);
            self.highest = seq;
            self.received += 1;
            self.gaps += 1;
            Observation::Gap { skipped }
        } else if seq > self.start && self.missing.remove(&seq) {
            self.received += 1;
            self.out_of_order += 1;
            Observation::Late
        } else {
            self.duplicated += 1;
            Observation::Duplicate
        }
    }

    /// The highest seq received (or the starting point).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Distinct messages received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether every seq up to `last` has arrived.
    pub fn complete_through(&self, last: u64) -> bool {
        self.highest >= last && self.missing.iter().all(|s| *s > last)
    }

    /// The verdict once the room's last seq is known: everything after the
    /// starting point up to `last` should have arrived exactly once, in order.
    pub fn finish(&self, last: u64) -> Integrity {
        let never_arrived = self.missing.iter().filter(|s| **s <= last).count() as u64;
        Integrity {
            lost: never_arrived + last.saturating_sub(self.highest),
            duplicated: self.duplicated,
            out_of_order: self.out_of_order,
            gaps: self.gaps,
            unanswered: 0,
            malformed: 0,
        }
    }
}

/// Checks one `history` answer: `seqs` (oldest first) must be exactly the
/// `limit` seqs right below `before` (fewer only when they reach seq 1), and
/// `more` must say whether older ones exist. Returns the problems found.
pub fn check_history_page(before: u64, limit: u64, seqs: &[u64], more: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let newest = before.saturating_sub(1);
    let oldest = before.saturating_sub(limit).max(1);
    let expected: Vec<u64> = if newest == 0 {
        Vec::new()
    } else {
        (oldest..=newest).collect()
    };
    if seqs != expected.as_slice() {
        problems.push(format!(
            "history before {before} limit {limit}: got {} seqs {}..{}, expected {}..{}",
            seqs.len(),
            seqs.first().copied().unwrap_or(0),
            seqs.last().copied().unwrap_or(0),
            oldest,
            newest
        ));
    }
    let expected_more = oldest > 1;
    if more != expected_more {
        problems.push(format!(
            "history before {before}: more = {more}, expected {expected_more}"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(start: u64, seqs: &[u64], last: u64) -> Integrity {
        let mut t = SeqTracker::starting_after(start);
        for s in seqs {
            t.observe(*s);
        }
        t.finish(last)
    }

    #[test]
    fn a_clean_sequence_is_clean() {
        let i = run(0, &[1, 2, 3, 4, 5], 5);
        assert!(i.is_clean(), "{i:?}");
    }

    #[test]
    fn a_gap_is_flagged_and_the_missing_message_is_lost() {
        let i = run(0, &[1, 2, 4, 5], 5);
        assert_eq!(i.gaps, 1);
        assert_eq!(i.lost, 1);
        assert_eq!(i.duplicated, 0);
        assert_eq!(i.out_of_order, 0);
        assert!(!i.is_clean());
    }

    #[test]
    fn a_duplicate_is_flagged() {
        let i = run(0, &[1, 2, 2, 3], 3);
        assert_eq!(i.duplicated, 1);
        assert_eq!(i.lost + i.gaps + i.out_of_order, 0);
        assert!(!i.is_clean());
    }

    #[test]
    fn a_reorder_is_flagged_as_a_gap_then_a_late_message() {
        let mut t = SeqTracker::starting_after(0);
        assert_eq!(t.observe(1), Observation::InOrder);
        assert_eq!(t.observe(3), Observation::Gap { skipped: 1 });
        assert_eq!(t.observe(2), Observation::Late);
        assert_eq!(t.observe(4), Observation::InOrder);
        assert_eq!(t.observe(2), Observation::Duplicate);
        let i = t.finish(4);
        assert_eq!(i.out_of_order, 1);
        assert_eq!(i.gaps, 1);
        assert_eq!(i.duplicated, 1);
        assert_eq!(i.lost, 0);
    }

    #[test]
    fn messages_missing_at_the_end_are_lost() {
        let i = run(0, &[1, 2, 3], 6);
        assert_eq!(i.lost, 3);
        assert_eq!(i.gaps, 0);
    }

    #[test]
    fn a_resume_starts_after_since_and_an_older_seq_is_a_duplicate() {
        let i = run(10, &[11, 12, 10], 12);
        assert_eq!(i.duplicated, 1);
        assert_eq!(i.lost, 0);
        let mut t = SeqTracker::starting_after(10);
        t.observe(12);
        assert!(!t.complete_through(12));
        t.observe(11);
        assert!(t.complete_through(12));
    }

    #[test]
    fn history_pages_are_checked_for_range_and_more() {
        let page: Vec<u64> = (51..=100).collect();
        assert!(check_history_page(101, 50, &page, true).is_empty());
        let first: Vec<u64> = (1..=30).collect();
        assert!(check_history_page(31, 50, &first, false).is_empty());
        assert!(check_history_page(1, 50, &[], false).is_empty());
        // A hole, a wrong `more`, an off-by-one range.
        let mut holed = page.clone();
        holed.remove(10);
        assert_eq!(check_history_page(101, 50, &holed, true).len(), 1);
        assert_eq!(check_history_page(101, 50, &page, false).len(), 1);
        assert_eq!(check_history_page(100, 50, &page, true).len(), 1);
    }
}
