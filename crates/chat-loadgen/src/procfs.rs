//! Server CPU time and memory, read from `/proc/PID/stat` (user + system
//! ticks of every thread) and `/proc/PID/status` (`VmRSS`, `VmHWM`), and
//! CPU time per thread name from `/proc/PID/task/*/schedstat`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde::Serialize;

/// Why a `/proc` file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read (the process is gone, or no `/proc`).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not have the expected shape.
    #[error("unexpected contents in /proc/{pid}/{file}: {why}")]
    Parse {
        /// Which process.
        pid: u32,
        /// `stat` or `status`.
        file: &'static str,
        /// What was wrong.
        why: String,
    },
}

/// The fields of `/proc/PID/stat` the benchmarks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z` (zombie: it exited), ….
    pub state: char,
    /// Clock ticks in user mode, all threads.
    pub utime_ticks: u64,
    /// Clock ticks in kernel mode, all threads.
    pub stime_ticks: u64,
    /// Threads in the process.
    pub threads: u64,
}

/// The fields of `/proc/PID/status` the benchmarks use, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// Resident set size now.
    pub vm_rss_kib: u64,
    /// Peak resident set size ("high water mark").
    pub vm_hwm_kib: u64,
}

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size, KiB.
    pub hwm_kib: u64,
}

impl Sample {
    /// Adds another process's reading (for a deployment of several).
    pub fn plus(self, other: Sample) -> Sample {
        Sample {
            cpu_seconds: self.cpu_seconds + other.cpu_seconds,
            rss_kib: self.rss_kib + other.rss_kib,
            hwm_kib: self.hwm_kib + other.hwm_kib,
        }
    }
}

/// Parses the text of `/proc/PID/stat`. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so the fields
/// are counted from the last `)`.
///
/// # Errors
/// [`ProcError::Parse`] when a field is missing or not a number.
pub fn parse_stat(pid: u32, text: &str) -> Result<Stat, ProcError> {
    let bad = |why: &str| ProcError::Parse {
        pid,
        file: "stat",
        why: why.to_owned(),
    };
    let close = text
        .rfind(')')
        .ok_or_else(|| bad("no `)` after the command name"))?;
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // `rest[0]` is field 3 (state); field N is `rest[N - 3]`.
    let field = |n: usize| -> Result<u64, ProcError> {
        rest.get(n - 3)
            .ok_or_else(|| bad(&format!("field {n} is missing")))?
            .parse()
            .map_err(|_| bad(&format!("field {n} is not a number")))
    };
    let state = rest
        .first()
        .and_then(|s| s.chars().next())
        .ok_or_else(|| bad("no state"))?;
    Ok(Stat {
        state,
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        threads: field(20)?,
    })
}

/// Parses the text of `/proc/PID/status`.
///
/// # Errors
/// [`ProcError::Parse`] when `VmRSS` or `VmHWM` is missing or not a number
/// of kB (a zombie has neither).
pub fn parse_status(pid: u32, text: &str) -> Result<Status, ProcError> {
    let find = |key: &str| -> Result<u64, ProcError> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .ok_or_else(|| ProcError::Parse {
                pid,
                file: "status",
                why: format!("no {key} line"),
            })?;
        line.trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .map_err(|_| ProcError::Parse {
                pid,
                file: "status",
                why: format!("{key} is not a number of kB: {line:?}"),
            })
    };
    Ok(Status {
        vm_rss_kib: find("VmRSS:")?,
        vm_hwm_kib: find("VmHWM:")?,
    })
}

fn read(pid: u32, file: &'static str) -> Result<String, ProcError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::read_to_string(&path).map_err(|source| ProcError::Read { path, source })
}

/// Reads `/proc/PID/stat`.
///
/// # Errors
/// When the file cannot be read or parsed.
pub fn stat(pid: u32) -> Result<Stat, ProcError> {
    parse_stat(pid, &read(pid, "stat")?)
}

/// Reads CPU time and memory of `pid`.
///
/// # Errors
/// When either file cannot be read or parsed.
pub fn sample(pid: u32) -> Result<Sample, ProcError> {
    let stat = stat(pid)?;
    let status = parse_status(pid, &read(pid, "status")?)?;
    Ok(Sample {
        cpu_seconds: (stat.utime_ticks + stat.stime_ticks) as f64 / clock_ticks_per_second(),
        rss_kib: status.vm_rss_kib,
        hwm_kib: status.vm_hwm_kib,
    })
}

/// Parses `/proc/PID/task/TID/schedstat`: nanoseconds on a CPU, the first
/// of its three fields (exact, unlike the ticks of `stat`).
///
/// # Errors
/// When the first field is not a number.
pub fn parse_schedstat(pid: u32, text: &str) -> Result<u64, ProcError> {
    text.split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .ok_or_else(|| ProcError::Parse {
            pid,
            file: "task/*/schedstat",
            why: format!("no run time in {text:?}"),
        })
}

/// One thread's name and CPU seconds so far.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadCpu {
    /// Its name (`comm`, at most 15 bytes): `tokio-rt-worker`, ….
    pub name: String,
    /// CPU seconds since it started.
    pub seconds: f64,
}

/// CPU seconds of each of `pid`'s threads so far, by thread id. Shows
/// where a server's CPU goes: the tokio workers, SQLite's writer thread, ….
/// Compare two readings by thread id ([`cpu_by_name`]): threads come and
/// go (tokio's blocking pool lets idle ones exit), and a name's sum would
/// drop with them.
///
/// # Errors
/// When the task list cannot be read (the process is gone); a thread that
/// exits while being read is left out.
pub fn thread_cpu(pid: u32) -> Result<BTreeMap<u32, ThreadCpu>, ProcError> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let tasks = std::fs::read_dir(&dir).map_err(|source| ProcError::Read { path: dir, source })?;
    let mut threads = BTreeMap::new();
    for task in tasks.flatten() {
        let path = task.path();
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let (Ok(comm), Ok(schedstat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        let ns = parse_schedstat(pid, &schedstat)?;
        threads.insert(
            tid,
            ThreadCpu {
                name: comm.trim().to_owned(),
                seconds: ns as f64 / 1e9,
            },
        );
    }
    Ok(threads)
}

/// CPU seconds between two [`thread_cpu`] readings, summed by thread name:
/// each thread of `after` less what it had in `before` (a new thread from
/// zero). A thread that exited in between is left out, with its time.
pub fn cpu_by_name(
    before: &BTreeMap<u32, ThreadCpu>,
    after: &BTreeMap<u32, ThreadCpu>,
) -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    for (tid, now) in after {
        let then = before.get(tid).map_or(0.0, |t| t.seconds);
        *by_name.entry(now.name.clone()).or_insert(0.0) += now.seconds - then;
    }
    by_name
}

/// Whether `pid` is still running (present and not a zombie).
pub fn alive(pid: u32) -> bool {
    stat(pid).is_ok_and(|s| s.state != 'Z' && s.state != 'X')
}

/// `CLK_TCK`, from `getconf` once (calling `sysconf` needs `unsafe`, which
/// this workspace forbids); 100, the value on every common Linux, if that fails.
pub fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const STAT: &str = "4242 (hihi chat) (x)) S 1 4242 4242 0 -1 4194560 2311 0 0 0 \
                        1234 567 0 0 20 0 7 0 123456 987654321 3210 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 17990 0 0 0 17 0 0 0 0 0 0\n";

    const STATUS: &str = "Name:\thihichat\nUmask:\t0022\nState:\tS (sleeping)\n\
                          VmPeak:\t  812344 kB\nVmSize:\t  812340 kB\nVmHWM:\t   45120 kB\n\
                          VmRSS:\t   40960 kB\nThreads:\t7\n";

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let s = parse_stat(4242, STAT).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                utime_ticks: 1234,
                stime_ticks: 567,
                threads: 7
            }
        );
    }

    #[test]
    fn a_truncated_or_garbled_stat_is_an_error() {
        assert!(parse_stat(1, "1 (x) S 1 2 3").is_err());
        assert!(parse_stat(1, "no parenthesis at all").is_err());
        let garbled = STAT.replace(" 1234 ", " 12x4 ");
        assert!(parse_stat(1, &garbled).is_err());
    }

    #[test]
    fn status_gives_rss_and_peak_in_kib() {
        let s = parse_status(1, STATUS).unwrap();
        assert_eq!(
            s,
            Status {
                vm_rss_kib: 40960,
                vm_hwm_kib: 45120
            }
        );
        // A zombie's status has no Vm lines.
        assert!(parse_status(1, "Name:\tx\nState:\tZ (zombie)\n").is_err());
    }

    #[test]
    fn schedstat_gives_nanoseconds_on_cpu() {
        assert_eq!(
            parse_schedstat(1, "123456789 2345 67\n").unwrap(),
            123_456_789
        );
        assert!(parse_schedstat(1, "").is_err());
        assert!(parse_schedstat(1, "lots 1 2").is_err());
    }

    #[test]
    fn this_process_threads_are_read_by_id_and_compared_by_name() {
        let me = std::process::id();
        let before = thread_cpu(me).unwrap();
        let spinner = std::thread::Builder::new()
            .name("procfs-test".into())
            .spawn(move || {
                // Spins until it has had 20 ms on a CPU by its own count,
                // however busy the machine (a wall-clock spin could be
                // preempted for most of its time).
                let own = || {
                    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
                    parse_schedstat(me, &text).unwrap()
                };
                while own() < 20_000_000 {
                    std::hint::spin_loop();
                }
                thread_cpu(me).unwrap()
            })
            .unwrap();
        let after = spinner.join().unwrap();
        let by_name = cpu_by_name(&before, &after);
        assert!(by_name["procfs-test"] >= 0.02, "{by_name:?}");
        // Seconds, not milliseconds: it stopped right after its 20 ms.
        assert!(by_name["procfs-test"] < 1.0, "{by_name:?}");
    }

    #[test]
    fn a_thread_that_exits_between_readings_does_not_count_against_its_name() {
        let cpu = |name: &str, seconds| ThreadCpu {
            name: name.to_owned(),
            seconds,
        };
        let before = BTreeMap::from([(1, cpu("worker", 5.0)), (2, cpu("worker", 9.0))]);
        let after = BTreeMap::from([(1, cpu("worker", 6.5)), (3, cpu("writer", 0.25))]);
        let by_name = cpu_by_name(&before, &after);
        assert_eq!(
            by_name,
            BTreeMap::from([("worker".to_owned(), 1.5), ("writer".to_owned(), 0.25)])
        );
    }

    #[test]
    fn this_process_can_be_sampled() {
        let me = sample(std::process::id()).unwrap();
        assert!(me.rss_kib > 0);
        assert!(me.hwm_kib >= me.rss_kib);
        assert!(alive(std::process::id()));
    }
}
