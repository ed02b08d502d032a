//! The named scenarios of issue 7, each a preset in a full and a `--quick`
//! size, printing its parameters before it runs.

mod fanout;
mod history;
mod idle;
mod ingest;
mod resume;

use std::collections::BTreeMap;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::deploy::{Deployment, Mode};
use crate::load::LoadOutcome;
use crate::report::Row;

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Rooms × members × publish rate, room sizes 1, 10, 100, 1000, and a
    /// load sweep: server CPU per delivery and latency.
    Fanout,
    /// Many senders in small rooms, closed loop: acked messages per second
    /// into storage.
    Ingest,
    /// Many idle connections: server memory per connection.
    Idle,
    /// Paging back through a long room: round trip of a 50-message page.
    History,
    /// Clients reconnecting at once with `since`: time to catch up.
    Resume,
}

impl Scenario {
    /// Every scenario, in the order a run takes them.
    pub const ALL: [Scenario; 5] = [
        Scenario::Fanout,
        Scenario::Ingest,
        Scenario::Idle,
        Scenario::History,
        Scenario::Resume,
    ];

    /// Its name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Ingest => "ingest",
            Scenario::Idle => "idle",
            Scenario::History => "history",
            Scenario::Resume => "resume",
        }
    }

    /// The preset's parameters, one line each.
    pub fn describe(self, quick: bool) -> Vec<String> {
        match self {
            Scenario::Fanout => fanout::describe(quick),
            Scenario::Ingest => ingest::describe(quick),
            Scenario::Idle => idle::describe(quick),
            Scenario::History => history::describe(quick),
            Scenario::Resume => resume::describe(quick),
        }
    }

    /// Whether it runs on `mode`. The durable baseline differs from the
    /// baseline only in what a publish costs, so it runs where publishing
    /// is measured (fanout, ingest) and nowhere else.
    pub fn measures(self, mode: Mode) -> bool {
        mode != Mode::DurableBaseline || matches!(self, Scenario::Fanout | Scenario::Ingest)
    }

    /// How many progress ticks the scenario makes per server.
    pub fn steps(self, quick: bool) -> usize {
        match self {
            Scenario::Fanout => fanout::steps(quick).len(),
            Scenario::Ingest => 1,
            Scenario::Idle | Scenario::History | Scenario::Resume => 1,
        }
    }

    /// Runs the scenario against a fresh deployment.
    ///
    /// # Errors
    /// When it cannot be set up or a server dies (delivery faults are not
    /// errors: they are in the rows).
    pub async fn run(
        self,
        deployment: &mut Deployment,
        quick: bool,
        progress: &ProgressBar,
    ) -> anyhow::Result<Vec<Row>> {
        match self {
            Scenario::Fanout => fanout::run(deployment, quick, progress).await,
            Scenario::Ingest => ingest::run(deployment, quick, progress).await,
            Scenario::Idle => idle::run(deployment, quick, progress).await,
            Scenario::History => history::run(deployment, quick, progress).await,
            Scenario::Resume => resume::run(deployment, quick, progress).await,
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// "tokio-rt-worker 71 %, hihichat-writer 27 %, …", largest first, the
/// threads under 1 % left out; `None` when nothing was measured.
fn thread_shares(by_thread: &BTreeMap<String, f64>) -> Option<String> {
    let total: f64 = by_thread.values().filter(|s| **s > 0.0).sum();
    if total <= 0.0 {
        return None;
    }
    let mut shares: Vec<(&str, f64)> = by_thread
        .iter()
        .map(|(name, s)| (name.as_str(), 100.0 * s / total))
        .filter(|(_, pct)| *pct >= 1.0)
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    Some(
        shares
            .iter()
            .map(|(name, pct)| format!("{name} {pct:.0} %"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Fills a row from a room-load outcome.
fn fill_row(row: &mut Row, outcome: &LoadOutcome) {
    row.sent = outcome.sent;
    row.acked = outcome.acked;
    row.deliveries = outcome.deliveries;
    row.deliveries_per_s = Some(outcome.deliveries_per_s);
    row.acked_per_s = Some(outcome.acked_per_s);
    row.latency = outcome.latency.summary();
    row.ack_latency = outcome.ack_latency.summary();
    row.server_cpu_s = outcome.server_cpu_s;
    row.cpu_us_per_delivery =
        (outcome.deliveries > 0).then(|| outcome.server_cpu_s * 1e6 / outcome.deliveries as f64);
    row.server_cpu_by_thread = outcome.server_cpu_by_thread.clone();
    if let Some(shares) = thread_shares(&outcome.server_cpu_by_thread) {
        row.notes.push(format!("server CPU by thread: {shares}"));
    }
    row.rss_kib = outcome.server_end.rss_kib;
    row.hwm_kib = outcome.server_end.hwm_kib;
    row.redis_cpu_s = outcome.redis_cpu_s;
    row.loadgen_cpu_s = outcome.loadgen_cpu_s;
    row.wall_s = outcome.wall_s;
    row.reconnects = outcome.reconnects;
    row.refused = outcome.refused.clone();
    row.integrity = outcome.integrity;
    row.drained = outcome.drained;
    if !outcome.drained {
        row.notes
            .push("not every message arrived within the drain time".into());
    }
    if outcome.reconnects > 0 {
        row.notes.push(format!(
            "{} member(s) were disconnected (slow consumer) and resumed with `since`",
            outcome.reconnects
        ));
    }
    if !outcome.refused.is_empty() {
        row.notes
            .push(format!("sends refused: {:?}", outcome.refused));
    }
    if outcome.loadgen_busy > 0.8 {
        row.notes.push(format!(
            "the load generator used {:.0}% of its core while sending: it may be what limits this step",
            100.0 * outcome.loadgen_busy
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_shares_are_largest_first_without_the_crumbs() {
        let by_thread = BTreeMap::from([
            ("hihichat-writer".to_owned(), 0.3),
            ("tokio-rt-worker".to_owned(), 0.695),
            ("hihichat".to_owned(), 0.005),
        ]);
        assert_eq!(
            thread_shares(&by_thread).as_deref(),
            Some("tokio-rt-worker 70 %, hihichat-writer 30 %")
        );
        assert_eq!(thread_shares(&BTreeMap::new()), None);
        assert_eq!(
            thread_shares(&BTreeMap::from([("idle".to_owned(), 0.0)])),
            None
        );
    }
}
