//! `history`: fill one room with many messages, then page back through all
//! of it 50 at a time: the round trip of one `history` page, each page
//! checked for exactly the right seqs.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::ProgressBar;
use serde_json::json;

use crate::accounting::{Integrity, check_history_page};
use crate::client::Event;
use crate::deploy::Deployment;
use crate::load::{BatchPlan, MAX_SENDS_PER_CONNECTION, connect_and_join, publish_batch};
use crate::report::Row;
use crate::stats::Latency;
use crate::wire;

const PAGE: u64 = 50;
const FILL_WINDOW: usize = 16;

fn messages(quick: bool) -> u64 {
    if quick { 3_000 } else { 100_000 }
}

/// Enough senders to fill the room in about 5 s (quick) or 20 s, each at
/// [`MAX_SENDS_PER_CONNECTION`].
fn fillers(quick: bool) -> usize {
    let seconds = if quick { 5.0 } else { 20.0 };
    (messages(quick) as f64 / (MAX_SENDS_PER_CONNECTION * seconds)).ceil() as usize
}

/// Readers, each paging its own stretch of the room at once: one reader may
/// not send more than [`MAX_SENDS_PER_CONNECTION`] requests a second.
fn readers(quick: bool) -> usize {
    if quick { 2 } else { 10 }
}

pub(super) fn describe(quick: bool) -> Vec<String> {
    vec![
        format!(
            "fill one room with {} messages ({} senders at {MAX_SENDS_PER_CONNECTION}/s each, who left the room so they receive nothing)",
            messages(quick),
            fillers(quick)
        ),
        format!(
            "then {} readers at once each page back through their own stretch of the room, {PAGE} per page, one request at a time, ≤ {MAX_SENDS_PER_CONNECTION} a second",
            readers(quick)
        ),
    ]
}

pub(super) async fn run(
    deployment: &mut Deployment,
    quick: bool,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Row>> {
    let total = messages(quick);
    let room = "history-0".to_owned();
    let mut row = Row::new(
        "history",
        format!("{PAGE}-message pages"),
        deployment.mode(),
        json!({"messages": total, "page": PAGE, "readers": readers(quick), "fillers": fillers(quick)}),
    );
    progress.set_message("history: creating users");
    let filler_count = fillers(quick);
    deployment
        .ensure_users(filler_count + readers(quick))
        .await?;
    deployment.create_rooms(std::slice::from_ref(&room)).await?;

    // Fill.
    progress.set_message(format!("history: storing {total} messages"));
    let fill_started = Instant::now();
    // Join (which makes the user a member), then stop following: members
    // may send without receiving, so a filler costs no deliveries. One
    // filler at a time, so no filler follows the room while the others
    // join: a join storm would send every early filler a presence frame per
    // later join, and one that is not read for 2 s is closed as too slow.
    let mut conns = Vec::new();
    for f in 0..filler_count {
        let (mut conn, _) = connect_and_join(
            &deployment.ws_url(f),
            &deployment.credential(f),
            &room,
            None,
            &mut |_, _| {},
        )
        .await?;
        conn.send(wire::leave(&room)).await?;
        conns.push(conn);
    }
    let mut fills = Vec::new();
    for (f, mut conn) in conns.into_iter().enumerate() {
        let share =
            total / filler_count as u64 + u64::from((f as u64) < total % filler_count as u64);
        let room = room.clone();
        fills.push(tokio::spawn(async move {
            let plan = BatchPlan {
                room: &room,
                count: share,
                window: FILL_WINDOW,
                max_rate: MAX_SENDS_PER_CONNECTION,
                publisher: f,
                first_index: 0,
                text_size: 64,
                stall: Duration::from_secs(30),
            };
            let batch = publish_batch(&mut conn, &plan).await?;
            conn.close().await;
            anyhow::Ok(batch)
        }));
    }
    let mut last_seq = 0;
    let mut acked = 0;
    for fill in fills {
        let batch = fill.await.context("a filler panicked")??;
        acked += batch.acked;
        last_seq = last_seq.max(batch.last_seq);
        for (code, n) in batch.refused {
            *row.refused.entry(code).or_default() += n;
        }
    }
    let fill_s = fill_started.elapsed().as_secs_f64();
    row.sent = total;
    row.acked = acked;
    row.notes.push(format!(
        "filled {acked} messages in {fill_s:.1}s ({:.0}/s)",
        acked as f64 / fill_s.max(0.001)
    ));
    if acked != total || last_seq != total {
        row.integrity.malformed += 1;
        row.notes.push(format!(
            "expected {total} acks ending at seq {total}; got {acked} ending at {last_seq}"
        ));
    }

    // Read.
    let before = deployment.sample()?;
    let started = Instant::now();
    let reader_count = readers(quick);
    let stretch = last_seq.div_ceil(PAGE).div_ceil(reader_count as u64) * PAGE;
    let mut reads = Vec::new();
    for r in 0..reader_count {
        let url = deployment.ws_url(r);
        let credential = deployment.credential(filler_count + r);
        let room = room.clone();
        let progress = progress.clone();
        // Reader r pages from `from` (exclusive) down to `to` (inclusive).
        let from = (last_seq + 1).saturating_sub(r as u64 * stretch);
        let to = (last_seq + 1)
            .saturating_sub((r as u64 + 1) * stretch)
            .max(1);
        reads.push(tokio::spawn(async move {
            read_stretch(
                &url,
                &credential,
                &room,
                last_seq,
                (from, to),
                &progress,
                r == 0,
            )
            .await
        }));
    }
    let mut latency = Latency::new();
    let mut pages = 0;
    for read in reads {
        let (l, integrity, problems, n) = read.await.context("a reader panicked")??;
        latency.merge(&l);
        row.integrity.add(&integrity);
        pages += n;
        row.notes.extend(problems.into_iter().take(5));
    }
    let after = deployment.sample()?;
    row.latency = latency.summary();
    row.server_cpu_s = after.cpu_seconds - before.cpu_seconds;
    row.wall_s = started.elapsed().as_secs_f64();
    row.rss_kib = after.rss_kib;
    row.hwm_kib = after.hwm_kib;
    row.connections = reader_count;
    row.notes.push(format!(
        "{pages} pages; server CPU {:.0} µs per page",
        row.server_cpu_s * 1e6 / pages.max(1) as f64
    ));
    progress.inc(1);
    Ok(vec![row])
}

/// Joins (the snapshot must end at the room's last seq), then pages from
/// `before = from` down until the page reaches `to`, paced.
async fn read_stretch(
    url: &str,
    credential: &crate::client::Credential,
    room: &str,
    last_seq: u64,
    (from, to): (u64, u64),
    progress: &ProgressBar,
    report_progress: bool,
) -> anyhow::Result<(Latency, Integrity, Vec<String>, u64)> {
    let mut latency = Latency::new();
    let mut integrity = Integrity::default();
    let mut problems = Vec::new();
    let (mut conn, newest) = connect_and_join(url, credential, room, None, &mut |_, _| {}).await?;
    if newest != last_seq {
        integrity.malformed += 1;
        problems.push(format!(
            "the join snapshot ends at {newest}, the room at {last_seq}"
        ));
    }
    let interval = Duration::from_secs_f64(1.0 / MAX_SENDS_PER_CONNECTION);
    let mut next_send = Instant::now();
    let mut before = from;
    let mut pages = 0;
    while before > to {
        tokio::time::sleep_until(next_send.into()).await;
        next_send = Instant::now() + interval;
        let sent_at = Instant::now();
        conn.send(wire::history(room, before, PAGE)).await?;
        let (seqs, more) = loop {
            match tokio::time::timeout(Duration::from_secs(30), conn.next()).await?? {
                Event::Text(text) => {
                    let frame = wire::parse(text.as_str())?;
                    match frame.kind.as_ref() {
                        "history" if frame.room.as_deref() == Some(room) => {
                            let seqs: Vec<u64> = frame
                                .messages
                                .unwrap_or_default()
                                .iter()
                                .filter_map(|m| m.seq)
                                .collect();
                            break (seqs, frame.more.unwrap_or(false));
                        }
                        "error" => anyhow::bail!(
                            "history refused: {} {}",
                            frame.code.as_deref().unwrap_or("?"),
                            frame.message.as_deref().unwrap_or("")
                        ),
                        _ => {}
                    }
                }
                Event::Closed(code) => anyhow::bail!("closed ({code:?}) while paging"),
            }
        };
        latency.record_us(u64::try_from(sent_at.elapsed().as_micros()).unwrap_or(u64::MAX));
        pages += 1;
        let found = check_history_page(before, PAGE, &seqs, more);
        if !found.is_empty() {
            integrity.malformed += 1;
            problems.extend(found);
        }
        let Some(oldest) = seqs.first().copied() else {
            break;
        };
        if oldest >= before {
            break;
        }
        before = oldest;
        if report_progress && pages % 100 == 0 {
            progress.set_message(format!("history: paging, at seq {before}"));
        }
    }
    conn.close().await;
    Ok((latency, integrity, problems, pages))
}
