//! `chat-loadgen run`: every chosen scenario against every chosen server,
//! the baseline first, then the report, the charts and the verdict.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::accounting::Integrity;
use crate::deploy::{Deployment, Environment, Mode};
use crate::report::{self, Machine, RunReport};
use crate::scenarios::Scenario;
use crate::{charts, process};

/// `chat-loadgen run` options.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Small versions of every scenario (under two minutes in all); fails
    /// only on lost, duplicated or misordered messages, never on timing.
    #[arg(long)]
    pub quick: bool,
    /// Scenarios to run (repeatable; default: all).
    #[arg(long = "scenario", value_enum, value_name = "NAME")]
    pub scenarios: Vec<Scenario>,
    /// Where reports and charts go.
    #[arg(long, default_value = "target/bench", value_name = "DIR")]
    pub out: PathBuf,
    /// Servers to measure (repeatable; default: baseline and embedded, plus
    /// redis with --redis and two-node with --two-node).
    #[arg(long = "mode", value_enum, value_name = "MODE")]
    pub modes: Vec<Mode>,
    /// A Redis for the redis and two-node modes (adds the redis mode); keys
    /// get a unique prefix and nothing is flushed. Default for those modes:
    /// a private `redis-server` started for the run.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Also measure two `hihichat` nodes sharing one Redis.
    #[arg(long)]
    pub two_node: bool,
    /// The `hihichat` binary (default: beside this one, e.g. target/release/hihichat).
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// Do not pin servers and the load generator to cores.
    #[arg(long)]
    pub no_pin: bool,
}

impl RunArgs {
    fn modes(&self) -> Vec<Mode> {
        let mut modes = if self.modes.is_empty() {
            let mut m = vec![Mode::Baseline, Mode::Embedded];
            // The durable baseline explains the timing rows, which a quick
            // run does not measure.
            if !self.quick {
                m.push(Mode::DurableBaseline);
            }
            if self.redis.is_some() {
                m.push(Mode::Redis);
            }
            if self.two_node {
                m.push(Mode::TwoNode);
            }
            m
        } else {
            self.modes.clone()
        };
        modes.sort();
        modes.dedup();
        modes
    }

    fn scenarios(&self) -> Vec<Scenario> {
        if self.scenarios.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            Scenario::ALL
                .into_iter()
                .filter(|s| self.scenarios.contains(s))
                .collect()
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every scenario ran and every message arrived once, in order.
    Passed,
    /// Some message was lost, duplicated or misordered.
    DeliveryFault,
    /// Delivery was clean, but some scenario could not run.
    Incomplete,
}

/// Runs the benchmarks; `pinning` says how this process was pinned.
///
/// # Errors
/// When the report cannot be written.
pub async fn run(args: RunArgs, command: String, pinning: String) -> anyhow::Result<Verdict> {
    let self_bin = std::env::current_exe().context("cannot find this program")?;
    let server_bin = args.server_bin.clone().unwrap_or_else(|| {
        self_bin
            .parent()
            .map_or_else(|| PathBuf::from("hihichat"), |d| d.join("hihichat"))
    });
    // The servers run in a temporary directory: a relative path would not
    // resolve there.
    let server_bin = std::path::absolute(&server_bin).unwrap_or(server_bin);
    let env = Environment {
        server_bin,
        self_bin,
        redis_url: args.redis.clone(),
        pin: !args.no_pin,
    };
    let modes = args.modes();
    let scenarios = args.scenarios();
    let started_at = time::OffsetDateTime::now_utc();
    let machine = Machine::detect(pinning);

    let total: usize = scenarios
        .iter()
        .map(|s| s.steps(args.quick) * modes.iter().filter(|m| s.measures(**m)).count())
        .sum();
    let progress = ProgressBar::new(total as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress.enable_steady_tick(std::time::Duration::from_millis(200));
    // Without a terminal the bar is hidden: say where the run is now and
    // then, so a CI log shows a slow step instead of silence.
    let heartbeat = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
            tick.tick().await;
            loop {
                tick.tick().await;
                if progress.is_hidden() {
                    println!("   … {}", progress.message());
                }
            }
        })
    };
    let say = |line: String| {
        if progress.is_hidden() {
            println!("{line}");
        } else {
            progress.println(line);
        }
    };
    say(format!(
        "chat-loadgen: {} on {} ({} cores, load average {:.2}); {}",
        if args.quick { "quick run" } else { "full run" },
        machine.cpu,
        machine.cores,
        machine.load_average,
        machine.pinning
    ));
    say(format!(
        "servers: {}",
        modes
            .iter()
            .map(|m| m.label())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let run_started = Instant::now();
    for scenario in &scenarios {
        say(format!("\n== {} ==", scenario.name()));
        for line in scenario.describe(args.quick) {
            say(format!("   {line}"));
        }
        for mode in modes.iter().filter(|m| scenario.measures(**m)) {
            progress.set_message(format!("{} on {}: starting", scenario.name(), mode.label()));
            let result = async {
                let mut deployment = Deployment::start(*mode, &env).await?;
                scenario.run(&mut deployment, args.quick, &progress).await
            }
            .await;
            match result {
                Ok(new_rows) => {
                    for row in &new_rows {
                        say(format!("   {:<18} {}", row.server, summary_line(row)));
                    }
                    rows.extend(new_rows);
                }
                Err(e) => {
                    let why = format!("{} on {}: {e:#}", scenario.name(), mode.label());
                    say(format!("   {:<18} could not run: {e:#}", mode.label()));
                    skipped.push(why);
                    progress.inc(scenario.steps(args.quick) as u64);
                }
            }
        }
    }
    heartbeat.abort();
    progress.finish_and_clear();

    report::add_ratios(&mut rows);
    let targets = report::check_targets(&rows);
    let mut integrity = Integrity::default();
    for row in &rows {
        integrity.add(&row.integrity);
    }
    let passed = integrity.is_clean();
    let report = RunReport {
        started_at: started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        command,
        quick: args.quick,
        machine,
        rows,
        targets,
        integrity,
        passed,
        skipped,
    };
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        started_at.year(),
        u8::from(started_at.month()),
        started_at.day(),
        started_at.hour(),
        started_at.minute(),
        started_at.second()
    );
    let md = report::write(&report, &args.out, &stamp)?;
    let svgs = charts::write_all(&report.rows, &args.out)?;
    println!(
        "\nchat-loadgen: {} in {:.0}s — report {}{}",
        if passed {
            "delivery checks passed"
        } else {
            "DELIVERY FAULTS"
        },
        run_started.elapsed().as_secs_f64(),
        md.display(),
        if svgs.is_empty() {
            String::new()
        } else {
            format!(", {} chart(s)", svgs.len())
        }
    );
    if !passed {
        eprintln!(
            "chat-loadgen: lost {}, duplicated {}, out of order {}, gaps {}, unanswered sends {}, malformed answers {}",
            integrity.lost,
            integrity.duplicated,
            integrity.out_of_order,
            integrity.gaps,
            integrity.unanswered,
            integrity.malformed
        );
    }
    for s in &report.skipped {
        eprintln!("chat-loadgen: could not run {s}");
    }
    Ok(if !passed {
        Verdict::DeliveryFault
    } else if !report.skipped.is_empty() {
        Verdict::Incomplete
    } else {
        Verdict::Passed
    })
}

fn summary_line(row: &report::Row) -> String {
    let mut parts = vec![row.step.clone()];
    if let Some(d) = row
        .deliveries_per_s
        .filter(|d| *d > 0.0 && row.scenario != "ingest")
    {
        parts.push(format!("{d:.0} deliveries/s"));
    }
    if row.scenario == "ingest" {
        if let Some(a) = row.acked_per_s {
            parts.push(format!("{a:.0} acked/s"));
        }
    }
    if let Some(l) = row.latency {
        parts.push(format!("p50 {} µs p99 {} µs", l.p50_us, l.p99_us));
    }
    if let Some(c) = row.cpu_us_per_delivery {
        parts.push(format!("{c:.1} µs CPU/delivery"));
    }
    if let Some(b) = row.bytes_per_connection {
        parts.push(format!("{:.1} KiB/connection", b / 1024.0));
    }
    parts.push(if row.integrity.is_clean() {
        "delivery ok".into()
    } else {
        format!("DELIVERY FAULTS {:?}", row.integrity)
    });
    parts.join(" · ")
}

/// Pins the load generator to the last core when servers get the first
/// ones, and says what was done.
pub fn pin_load_generator(enabled: bool) -> String {
    let cores = process::cores();
    if !enabled {
        return "no pinning (--no-pin)".into();
    }
    if !process::taskset_available() {
        return "no pinning (taskset not found)".into();
    }
    if cores >= 2 && process::pin_self(cores - 1) {
        format!(
            "servers pinned with taskset (node n on core n mod {cores}), load generator on core {}",
            cores - 1
        )
    } else {
        "servers pinned to core 0 with taskset, load generator unpinned".into()
    }
}
