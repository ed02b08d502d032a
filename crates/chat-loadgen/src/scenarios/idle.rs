//! `idle`: N logged-in WebSockets that do nothing: the server's resident
//! memory per connection (RSS after they are all open, minus before, over N).
//! The connections join no room, so the figure is the cost of a connection
//! itself, not of presence traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::client::{Conn, Event};
use crate::deploy::Deployment;
use crate::report::Row;

/// Connections opening at once.
const CONNECT_CONCURRENCY: usize = 128;

fn connections(quick: bool) -> usize {
    if quick { 300 } else { 15_000 }
}

fn users(quick: bool) -> usize {
    if quick { 50 } else { 500 }
}

/// How long the connections stay open once all are up, before memory is read.
fn hold(quick: bool) -> Duration {
    Duration::from_secs(if quick { 1 } else { 5 })
}

pub(super) fn describe(quick: bool) -> Vec<String> {
    vec![format!(
        "{} idle WebSockets ({} users, several connections each), held {:?} once all are open; memory per connection = ΔRSS / N",
        connections(quick),
        users(quick),
        hold(quick)
    )]
}

/// Raises this process's open-file limit towards `wanted` (servers started
/// later inherit it) and returns the soft limit now in force.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    rlimit::increase_nofile_limit(wanted).unwrap_or(1024)
}

pub(super) async fn run(
    deployment: &mut Deployment,
    quick: bool,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Row>> {
    let wanted = connections(quick);
    let limit = raise_fd_limit(wanted as u64 * 2 + 1024);
    // Both ends of every connection may live under this limit (the servers
    // inherited it): keep room for the rest of the process.
    let n = wanted.min(
        usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(256),
    );
    let mut row = Row::new(
        "idle",
        format!("{wanted} connections"),
        deployment.mode(),
        json!({"connections": wanted, "users": users(quick), "hold_s": hold(quick).as_secs_f64()}),
    );
    if n < wanted {
        row.notes.push(format!(
            "the open-file limit is {limit}: only {n} connections (raise it with `ulimit -n {}`)",
            wanted * 2 + 1024
        ));
    }
    progress.set_message("idle: creating users");
    deployment.ensure_users(users(quick)).await?;
    // Let the allocator settle after user creation before the baseline reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = deployment.sample()?;

    let opened = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let url = deployment.ws_url(i);
        let credential = deployment.credential(i);
        let opened = Arc::clone(&opened);
        let dropped = Arc::clone(&dropped);
        let gate = Arc::clone(&gate);
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let mut conn = connect_with_retry(&url, &credential).await?;
            // The welcome frame means the server has finished setting it up.
            match conn.next().await? {
                Event::Text(_) => {}
                Event::Closed(code) => anyhow::bail!("closed ({code:?}) before the welcome"),
            }
            drop(permit);
            opened.fetch_add(1, Ordering::Relaxed);
            loop {
                tokio::select! {
                    event = conn.next() => match event {
                        Ok(Event::Text(_)) => {}
                        Ok(Event::Closed(_)) | Err(_) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            return Ok(());
                        }
                    },
                    _ = stop.changed() => break,
                }
            }
            conn.close().await;
            anyhow::Ok(())
        }));
    }
    loop {
        let up = opened.load(Ordering::Relaxed);
        progress.set_message(format!("idle: {up}/{n} open"));
        if up >= n {
            break;
        }
        if let Some(done) = tasks.iter().position(tokio::task::JoinHandle::is_finished) {
            let failed = tasks.swap_remove(done);
            let _ = stop_tx.send(true);
            failed.await??;
            anyhow::bail!("an idle connection ended before all were open");
        }
        deployment.sample()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(hold(quick)).await;
    let after = deployment.sample()?;
    let me = crate::procfs::sample(std::process::id()).unwrap_or_default();
    let _ = stop_tx.send(true);
    for task in tasks {
        task.await??;
    }
    let lost = dropped.load(Ordering::Relaxed);
    row.connections = n;
    row.rss_kib = after.rss_kib;
    row.hwm_kib = after.hwm_kib;
    row.server_cpu_s = after.cpu_seconds - before.cpu_seconds;
    row.wall_s = started.elapsed().as_secs_f64();
    row.bytes_per_connection =
        Some(after.rss_kib.saturating_sub(before.rss_kib) as f64 * 1024.0 / n.max(1) as f64);
    row.notes.push(format!(
        "opened in {connect_s:.1}s; server RSS {:.1} → {:.1} MiB; load generator RSS {:.1} MiB",
        before.rss_kib as f64 / 1024.0,
        after.rss_kib as f64 / 1024.0,
        me.rss_kib as f64 / 1024.0
    ));
    if lost > 0 {
        row.notes.push(format!(
            "{lost} idle connection(s) were closed by the server"
        ));
    }
    progress.inc(1);
    Ok(vec![row])
}

async fn connect_with_retry(
    url: &str,
    credential: &crate::client::Credential,
) -> anyhow::Result<Conn> {
    let mut attempt = 0;
    loop {
        match Conn::connect(url, credential).await {
            Ok(c) => return Ok(c),
            Err(_) if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
