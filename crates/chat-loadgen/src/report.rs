//! Results: one row per scenario step and server, ratios to the baseline
//! measured in the same run, the targets of issue 7, and the JSON and
//! Markdown files written to the output directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::accounting::Integrity;
use crate::deploy::Mode;
use crate::stats::LatencySummary;

/// One measured step on one server.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `fanout`, `ingest`, `idle`, `history`, `resume`.
    pub scenario: String,
    /// The step, e.g. `10 rooms × 100 members @ 50/s`.
    pub step: String,
    /// Which server.
    pub mode: Mode,
    /// Its report name.
    pub server: String,
    /// The step's parameters.
    pub params: serde_json::Value,
    /// Members per room, where rooms are the point.
    pub room_size: Option<usize>,
    /// Offered deliveries per second (open-loop steps).
    pub offered_per_s: Option<f64>,
    /// WebSocket connections the step held.
    pub connections: usize,
    /// Sends made.
    pub sent: u64,
    /// Sends acknowledged.
    pub acked: u64,
    /// Messages received by members.
    pub deliveries: u64,
    /// Deliveries received per second inside the measuring window.
    pub deliveries_per_s: Option<f64>,
    /// Acks received per second inside the measuring window.
    pub acked_per_s: Option<f64>,
    /// The step's main latency: delivery (from the scheduled send), page
    /// round trip (`history`), or reconnect-to-caught-up (`resume`).
    pub latency: Option<LatencySummary>,
    /// Scheduled send → ack.
    pub ack_latency: Option<LatencySummary>,
    /// Server CPU seconds while measuring (all nodes).
    pub server_cpu_s: f64,
    /// Server CPU µs per delivered message.
    pub cpu_us_per_delivery: Option<f64>,
    /// Server CPU seconds while measuring by thread name (all nodes), where
    /// measured: how much went to the tokio workers, SQLite's writer, ….
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub server_cpu_by_thread: BTreeMap<String, f64>,
    /// Server resident memory at the end, KiB (all nodes).
    pub rss_kib: u64,
    /// Server peak resident memory (VmHWM), KiB (all nodes).
    pub hwm_kib: u64,
    /// Server memory per connection, bytes (`idle`).
    pub bytes_per_connection: Option<f64>,
    /// Redis CPU seconds while measuring, when a private Redis ran.
    pub redis_cpu_s: Option<f64>,
    /// Load-generator CPU seconds while measuring.
    pub loadgen_cpu_s: f64,
    /// Wall seconds while measuring.
    pub wall_s: f64,
    /// Members that were disconnected and resumed.
    pub reconnects: u64,
    /// Sends refused, by error code.
    pub refused: BTreeMap<String, u64>,
    /// Delivery faults; any fails the run.
    pub integrity: Integrity,
    /// Whether everything arrived before the drain deadline.
    pub drained: bool,
    /// Anything else worth saying.
    pub notes: Vec<String>,
    /// This row over the baseline's row of the same step.
    pub vs_baseline: Option<Ratios>,
}

impl Row {
    /// An empty row for `scenario` / `step` on `mode`.
    pub fn new(scenario: &str, step: String, mode: Mode, params: serde_json::Value) -> Row {
        Row {
            scenario: scenario.to_owned(),
            step,
            mode,
            server: mode.label().to_owned(),
            params,
            room_size: None,
            offered_per_s: None,
            connections: 0,
            sent: 0,
            acked: 0,
            deliveries: 0,
            deliveries_per_s: None,
            acked_per_s: None,
            latency: None,
            ack_latency: None,
            server_cpu_s: 0.0,
            cpu_us_per_delivery: None,
            server_cpu_by_thread: BTreeMap::new(),
            rss_kib: 0,
            hwm_kib: 0,
            bytes_per_connection: None,
            redis_cpu_s: None,
            loadgen_cpu_s: 0.0,
            wall_s: 0.0,
            reconnects: 0,
            refused: BTreeMap::new(),
            integrity: Integrity::default(),
            drained: true,
            notes: Vec::new(),
            vs_baseline: None,
        }
    }
}

/// A row's figures divided by the baseline's for the same step (below 1 is
/// better for cost and latency, above 1 better for throughput).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Ratios {
    /// CPU per delivery.
    pub cpu_per_delivery: Option<f64>,
    /// p99 latency.
    pub p99: Option<f64>,
    /// Deliveries (or acks) per second.
    pub throughput: Option<f64>,
    /// Memory per connection.
    pub bytes_per_connection: Option<f64>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Fills `vs_baseline` of every non-baseline row that has a baseline row
/// of the same scenario and step.
pub fn add_ratios(rows: &mut [Row]) {
    let baselines: Vec<Row> = rows
        .iter()
        .filter(|r| r.mode == Mode::Baseline)
        .cloned()
        .collect();
    for row in rows.iter_mut().filter(|r| r.mode != Mode::Baseline) {
        let Some(base) = baselines
            .iter()
            .find(|b| b.scenario == row.scenario && b.step == row.step)
        else {
            continue;
        };
        let throughput = |r: &Row| r.deliveries_per_s.or(r.acked_per_s);
        row.vs_baseline = Some(Ratios {
            cpu_per_delivery: ratio(row.cpu_us_per_delivery, base.cpu_us_per_delivery),
            p99: ratio(p99_us(row), p99_us(base)),
            throughput: ratio(throughput(row), throughput(base)),
            bytes_per_connection: ratio(row.bytes_per_connection, base.bytes_per_connection),
        });
    }
}

/// A row's p99 latency in µs, if it measured latency.
fn p99_us(row: &Row) -> Option<f64> {
    row.latency.map(|l| l.p99_us as f64)
}

/// One target of issue 7, checked against this run.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// What the target says.
    pub target: String,
    /// Which server.
    pub server: String,
    /// What was measured.
    pub measured: String,
    /// Met, missed, or not measured in this run.
    pub verdict: Verdict,
}

/// Whether a target was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Met.
    Met,
    /// Missed.
    Missed,
    /// The run did not measure it (a `--quick` run, or the step was skipped).
    NotMeasured,
}

impl Verdict {
    fn of(ok: bool) -> Verdict {
        if ok { Verdict::Met } else { Verdict::Missed }
    }

    fn word(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// The issue-7 targets, checked for every hihichat server in `rows`. Timing
/// targets only mean something in a full run; a quick run reports them too,
/// marked as such by the caller.
pub fn check_targets(rows: &[Row]) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    let servers: Vec<(Mode, String)> = {
        let mut s: Vec<(Mode, String)> = rows
            .iter()
            .filter(|r| r.mode.is_hihichat())
            .map(|r| (r.mode, r.server.clone()))
            .collect();
        s.sort();
        s.dedup();
        s
    };
    let find = |mode: Mode, scenario: &str, step_has: &str| {
        rows.iter()
            .find(|r| r.mode == mode && r.scenario == scenario && r.step.contains(step_has))
    };
    // The row of `mode` for the same scenario and step as `mine`.
    let same_step = |mode: Mode, mine: &Row| {
        rows.iter()
            .find(|r| r.mode == mode && r.scenario == mine.scenario && r.step == mine.step)
    };
    // The durable baseline is not a target; beside a timing it shows how
    // much of the distance to the baseline any server that stores pays.
    // `of` reads the figure from `mine` and from the durable baseline's row
    // of the same step.
    let floor = |mine: &Row, of: fn(&Row) -> Option<f64>| {
        let Some(floor) = same_step(Mode::DurableBaseline, mine).and_then(of) else {
            return String::new();
        };
        ratio(of(mine), Some(floor))
            .map_or_else(String::new, |r| format!(" ({r:.2}× baseline+fsync)"))
    };
    // An absolute target (ingest's rate, history's 1 ms) is set beside what
    // the baselines reached in the same step: where even the baseline falls
    // short of the goal, the machine (or its noise) is what misses it.
    let beside_absolute = |mine: &Row, of: fn(&Row) -> Option<f64>, show: fn(f64) -> String| {
        let figures: Vec<String> = [Mode::Baseline, Mode::DurableBaseline]
            .into_iter()
            .filter_map(|mode| {
                let figure = same_step(mode, mine).and_then(of)?;
                Some(format!("{} {}", mode.label(), show(figure)))
            })
            .collect();
        if figures.is_empty() {
            String::new()
        } else {
            format!(" ({})", figures.join(", "))
        }
    };
    for (mode, server) in &servers {
        for key in [
            "10 rooms × 100 members @ 50/s",
            "1 room × 1000 members @ 20/s",
        ] {
            let row = find(*mode, "fanout", key);
            let cpu = row.and_then(|r| {
                let vs = r.vs_baseline.and_then(|v| v.cpu_per_delivery)?;
                Some((vs, floor(r, |r| r.cpu_us_per_delivery)))
            });
            checks.push(TargetCheck {
                target: format!("fanout {key}: CPU per delivery ≤ baseline's"),
                server: server.clone(),
                measured: cpu.as_ref().map_or("—".into(), |(c, floor)| {
                    format!("{c:.2}× baseline{floor}")
                }),
                verdict: cpu.map_or(Verdict::NotMeasured, |(c, _)| Verdict::of(c <= 1.0)),
            });
            let p99 = row.and_then(|r| {
                let vs = r.vs_baseline.and_then(|v| v.p99)?;
                Some((vs, floor(r, p99_us)))
            });
            checks.push(TargetCheck {
                target: format!("fanout {key}: p99 ≤ 1.2 × baseline's"),
                server: server.clone(),
                measured: p99.as_ref().map_or("—".into(), |(c, floor)| {
                    format!("{c:.2}× baseline{floor}")
                }),
                verdict: p99.map_or(Verdict::NotMeasured, |(c, _)| Verdict::of(c <= 1.2)),
            });
        }
        let ingest = rows
            .iter()
            .find(|r| r.mode == *mode && r.scenario == "ingest")
            .and_then(|r| {
                let beside = beside_absolute(r, |r| r.acked_per_s, |v| format!("{v:.0}/s"));
                Some((r.acked_per_s?, beside))
            });
        let ingest_goal = if *mode == Mode::Embedded {
            40_000.0
        } else {
            20_000.0
        };
        checks.push(TargetCheck {
            target: format!("ingest: ≥ {ingest_goal:.0} acked messages/s"),
            server: server.clone(),
            measured: ingest
                .as_ref()
                .map_or("—".into(), |(v, floor)| format!("{v:.0}/s{floor}")),
            verdict: ingest.map_or(Verdict::NotMeasured, |(v, _)| Verdict::of(v >= ingest_goal)),
        });
        let idle = rows
            .iter()
            .find(|r| r.mode == *mode && r.scenario == "idle");
        let idle_ok = idle.and_then(|r| r.bytes_per_connection.map(|b| (r.connections, b)));
        checks.push(TargetCheck {
            target: "idle: 15,000 WebSockets, < 10 KiB each".into(),
            server: server.clone(),
            measured: idle_ok.map_or("—".into(), |(n, b)| {
                format!("{n} at {:.1} KiB", b / 1024.0)
            }),
            verdict: idle_ok.map_or(Verdict::NotMeasured, |(n, b)| {
                Verdict::of(n >= 15_000 && b < 10.0 * 1024.0)
            }),
        });
        let history = rows
            .iter()
            .find(|r| r.mode == *mode && r.scenario == "history");
        let page = history.and_then(|r| {
            let beside = beside_absolute(r, p99_us, |p| format!("{p:.0} µs"));
            r.latency
                .map(|l| (r.params["messages"].as_u64(), l.p99_us, beside))
        });
        checks.push(TargetCheck {
            target: "history: p99 of a 50-message page < 1 ms in 100,000 messages".into(),
            server: server.clone(),
            measured: page.as_ref().map_or("—".into(), |(n, p, beside)| {
                format!("{p} µs in {} messages{beside}", n.unwrap_or(0))
            }),
            verdict: page.map_or(Verdict::NotMeasured, |(n, p, _)| {
                Verdict::of(n.unwrap_or(0) >= 100_000 && p < 1000)
            }),
        });
    }
    checks
}

/// What a run produced, as written to `run-*.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// When it started (UTC, RFC 3339).
    pub started_at: String,
    /// The command line.
    pub command: String,
    /// Small versions of every scenario.
    pub quick: bool,
    /// The machine.
    pub machine: Machine,
    /// Every row.
    pub rows: Vec<Row>,
    /// The issue-7 targets.
    pub targets: Vec<TargetCheck>,
    /// Delivery faults over every row.
    pub integrity: Integrity,
    /// Whether the run passed (no delivery fault anywhere).
    pub passed: bool,
    /// Scenarios that could not run, and why.
    pub skipped: Vec<String>,
}

/// The machine a run was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// 1-minute load average when the run started (other work on the machine).
    pub load_average: f64,
    /// How servers and the load generator were pinned.
    pub pinning: String,
}

impl Machine {
    /// Reads `/proc`.
    pub fn detect(pinning: String) -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let load_average = read("/proc/loadavg")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: crate::process::cores(),
            memory_mib,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_average,
            pinning,
        }
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".into(), |v| format!("{v:.digits$}"))
}

fn us(v: Option<u64>) -> String {
    v.map_or("—".into(), |v| {
        if v >= 10_000 {
            format!("{:.1} ms", v as f64 / 1000.0)
        } else {
            format!("{v} µs")
        }
    })
}

fn integrity_cell(i: &Integrity) -> String {
    if i.is_clean() {
        "ok".into()
    } else {
        format!(
            "**FAIL** lost {} dup {} ooo {} gaps {} unanswered {} bad {}",
            i.lost, i.duplicated, i.out_of_order, i.gaps, i.unanswered, i.malformed
        )
    }
}

/// The Markdown report: machine, a table per scenario, the targets.
pub fn markdown(report: &RunReport) -> String {
    let mut md = String::new();
    let m = &report.machine;
    let _ = writeln!(md, "# hihichat benchmark — {}\n", report.started_at);
    let _ = writeln!(md, "`{}`\n", report.command);
    let _ = writeln!(
        md,
        "Machine: {} ({} cores, {} MiB, Linux {}), load average {:.2} at the start; {}.\n",
        m.cpu, m.cores, m.memory_mib, m.kernel, m.load_average, m.pinning
    );
    if report.quick {
        let _ = writeln!(
            md,
            "A `--quick` run: small loads that check delivery, not speed. Its timings are not the figures of docs/BENCHMARKS.md.\n"
        );
    }
    let _ = writeln!(
        md,
        "Result: **{}** (lost, duplicated, out-of-order or gap messages anywhere fail the run).\n",
        if report.passed { "passed" } else { "FAILED" }
    );
    for skipped in &report.skipped {
        let _ = writeln!(md, "- skipped: {skipped}");
    }
    let mut scenarios: Vec<&str> = report.rows.iter().map(|r| r.scenario.as_str()).collect();
    scenarios.dedup();
    for scenario in scenarios {
        let _ = writeln!(md, "\n## {scenario}\n");
        let rows: Vec<&Row> = report
            .rows
            .iter()
            .filter(|r| r.scenario == scenario)
            .collect();
        match scenario {
            "idle" => {
                let _ = writeln!(
                    md,
                    "| step | server | connections | server RSS | per connection | × baseline | server peak RSS | delivery |"
                );
                let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---|");
                for r in rows {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {:.1} MiB | {} | {} | {:.1} MiB | {} |",
                        r.step,
                        r.server,
                        r.connections,
                        r.rss_kib as f64 / 1024.0,
                        r.bytes_per_connection
                            .map_or("—".into(), |b| format!("{:.1} KiB", b / 1024.0)),
                        opt(r.vs_baseline.and_then(|v| v.bytes_per_connection), 2),
                        r.hwm_kib as f64 / 1024.0,
                        integrity_cell(&r.integrity)
                    );
                }
            }
            "history" | "resume" => {
                let what = if scenario == "history" {
                    "page round trip"
                } else {
                    "reconnect → caught up"
                };
                let _ = writeln!(
                    md,
                    "| step | server | samples | {what} p50 | p99 | max | × baseline p99 | server CPU s | peak RSS | delivery |"
                );
                let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
                for r in rows {
                    let l = r.latency;
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.1} MiB | {} |",
                        r.step,
                        r.server,
                        l.map_or(0, |l| l.count),
                        us(l.map(|l| l.p50_us)),
                        us(l.map(|l| l.p99_us)),
                        us(l.map(|l| l.max_us)),
                        opt(r.vs_baseline.and_then(|v| v.p99), 2),
                        r.server_cpu_s,
                        r.hwm_kib as f64 / 1024.0,
                        integrity_cell(&r.integrity)
                    );
                }
            }
            _ => {
                let _ = writeln!(
                    md,
                    "| step | server | offered/s | delivered/s | acked/s | p50 | p99 | p99.9 | CPU µs/delivery | × baseline CPU | × baseline p99 | peak RSS | delivery |"
                );
                let _ = writeln!(
                    md,
                    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
                );
                for r in rows {
                    let l = r.latency;
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} MiB | {} |",
                        r.step,
                        r.server,
                        opt(r.offered_per_s, 0),
                        opt(r.deliveries_per_s, 0),
                        opt(r.acked_per_s, 0),
                        us(l.map(|l| l.p50_us)),
                        us(l.map(|l| l.p99_us)),
                        us(l.map(|l| l.p999_us)),
                        opt(r.cpu_us_per_delivery, 1),
                        opt(r.vs_baseline.and_then(|v| v.cpu_per_delivery), 2),
                        opt(r.vs_baseline.and_then(|v| v.p99), 2),
                        r.hwm_kib as f64 / 1024.0,
                        integrity_cell(&r.integrity)
                    );
                }
            }
        }
        let notes: Vec<String> = report
            .rows
            .iter()
            .filter(|r| r.scenario == scenario)
            .flat_map(|r| {
                r.notes
                    .iter()
                    .map(move |n| format!("{} / {}: {n}", r.step, r.server))
            })
            .collect();
        for note in notes {
            let _ = writeln!(md, "\n- {note}");
        }
    }
    if !report.targets.is_empty() {
        let _ = writeln!(md, "\n## Targets (issue 7)\n");
        if report.quick {
            let _ = writeln!(
                md,
                "A quick run measures none of these at full size; shown for completeness.\n"
            );
        }
        let _ = writeln!(md, "| target | server | measured | verdict |");
        let _ = writeln!(md, "|---|---|---|---|");
        for t in &report.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                t.target,
                t.server,
                t.measured,
                t.verdict.word()
            );
        }
    }
    md
}

/// Writes `run-STAMP.json`, `run-STAMP.md` and copies as `latest.json` /
/// `latest.md` into `out`; returns the Markdown path.
///
/// # Errors
/// When the directory or a file cannot be written.
pub fn write(report: &RunReport, out: &Path, stamp: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    let md = markdown(report);
    for (name, text) in [
        (format!("run-{stamp}.json"), &json),
        (format!("run-{stamp}.md"), &md),
        ("latest.json".to_owned(), &json),
        ("latest.md".to_owned(), &md),
    ] {
        let path = out.join(&name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(out.join(format!("run-{stamp}.md")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn row(mode: Mode, cpu: f64, p99: u64) -> Row {
        let mut r = Row::new(
            "fanout",
            "10 rooms × 100 members @ 50/s".into(),
            mode,
            serde_json::json!({}),
        );
        r.cpu_us_per_delivery = Some(cpu);
        r.latency = Some(LatencySummary {
            count: 1,
            p50_us: p99 / 2,
            p90_us: p99,
            p99_us: p99,
            p999_us: p99,
            max_us: p99,
            mean_us: p99 as f64,
        });
        r
    }

    #[test]
    fn ratios_compare_with_the_same_steps_baseline_and_targets_follow() {
        let mut rows = vec![
            row(Mode::Baseline, 8.0, 1000),
            row(Mode::Embedded, 6.0, 1300),
        ];
        add_ratios(&mut rows);
        let v = rows[1].vs_baseline.unwrap();
        assert!((v.cpu_per_delivery.unwrap() - 0.75).abs() < 1e-9);
        assert!((v.p99.unwrap() - 1.3).abs() < 1e-9);
        let checks = check_targets(&rows);
        let cpu = checks
            .iter()
            .find(|c| c.target.contains("50/s: CPU"))
            .unwrap();
        assert_eq!(cpu.verdict, Verdict::Met);
        let p99 = checks
            .iter()
            .find(|c| c.target.contains("50/s: p99"))
            .unwrap();
        assert_eq!(p99.verdict, Verdict::Missed);
        let big = checks
            .iter()
            .find(|c| c.target.contains("1000 members @ 20/s: CPU"))
            .unwrap();
        assert_eq!(big.verdict, Verdict::NotMeasured);
        assert_eq!(cpu.measured, "0.75× baseline", "no durable baseline ran");
    }

    // With a durable baseline in the run, a timing target also says how it
    // compares with that floor; the verdict still reads the plain baseline.
    #[test]
    fn timings_are_also_set_beside_the_durable_baseline() {
        let ingest = |mode, acked| {
            let mut r = Row::new("ingest", "2500 senders".into(), mode, serde_json::json!({}));
            r.acked_per_s = Some(acked);
            r
        };
        let mut rows = vec![
            row(Mode::Baseline, 8.0, 1000),
            row(Mode::DurableBaseline, 10.0, 1100),
            row(Mode::Embedded, 9.2, 1320),
            ingest(Mode::Baseline, 48_000.0),
            ingest(Mode::DurableBaseline, 44_000.0),
            ingest(Mode::Embedded, 18_000.0),
        ];
        add_ratios(&mut rows);
        let checks = check_targets(&rows);
        let measured = |has: &str| {
            let c = checks.iter().find(|c| c.target.contains(has)).unwrap();
            (c.measured.clone(), c.verdict)
        };
        assert_eq!(
            measured("50/s: CPU"),
            (
                "1.15× baseline (0.92× baseline+fsync)".into(),
                Verdict::Missed
            )
        );
        assert_eq!(
            measured("50/s: p99"),
            (
                "1.32× baseline (1.20× baseline+fsync)".into(),
                Verdict::Missed
            )
        );
        assert_eq!(
            measured("ingest"),
            (
                "18000/s (baseline 48000/s, baseline+fsync 44000/s)".into(),
                Verdict::Missed
            )
        );
        assert!(
            checks.iter().all(|c| c.server == "hihichat"),
            "a baseline is never checked against the targets"
        );
    }

    // History's target is absolute (1 ms): the baseline's own p99 in the
    // same run stands beside it, and the verdict still reads the 1 ms.
    #[test]
    fn the_history_target_shows_the_baselines_own_p99() {
        let history = |mode, p99| {
            let mut r = row(mode, 0.0, p99);
            r.scenario = "history".into();
            r.step = "50-message pages".into();
            r.params = serde_json::json!({ "messages": 100_000 });
            r
        };
        let checks = check_targets(&[
            history(Mode::Baseline, 2_200),
            history(Mode::Embedded, 2_400),
        ]);
        let page = checks
            .iter()
            .find(|c| c.target.starts_with("history"))
            .unwrap();
        assert_eq!(
            page.measured,
            "2400 µs in 100000 messages (baseline 2200 µs)"
        );
        assert_eq!(page.verdict, Verdict::Missed);
        let alone = check_targets(&[history(Mode::Embedded, 900)]);
        let page = alone
            .iter()
            .find(|c| c.target.starts_with("history"))
            .unwrap();
        assert_eq!(
            (page.measured.as_str(), page.verdict),
            ("900 µs in 100000 messages", Verdict::Met)
        );
    }

    #[test]
    fn a_failed_row_says_so_in_the_markdown() {
        let mut bad = row(Mode::Embedded, 6.0, 1300);
        bad.integrity.lost = 3;
        let report = RunReport {
            started_at: "now".into(),
            command: "chat-loadgen run".into(),
            quick: true,
            machine: Machine::detect("none".into()),
            rows: vec![bad],
            targets: vec![],
            integrity: Integrity {
                lost: 3,
                ..Integrity::default()
            },
            passed: false,
            skipped: vec![],
        };
        let md = markdown(&report);
        assert!(md.contains("FAILED"));
        assert!(md.contains("lost 3"));
    }
}
