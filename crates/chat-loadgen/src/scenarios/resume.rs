//! `resume`: clients follow their rooms, all disconnect, miss messages, then
//! reconnect at the same moment and join with `since`: the time from the
//! storm's start until each has caught up, and a check that each received
//! exactly what it missed — and then the next live message — once, in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::ProgressBar;
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use crate::accounting::{Integrity, SeqTracker};
use crate::client::{Conn, Credential, Event};
use crate::deploy::Deployment;
use crate::load::{BatchPlan, MAX_SENDS_PER_CONNECTION, connect_and_join, publish_batch};
use crate::report::Row;
use crate::stats::Latency;
use crate::wire;

struct Preset {
    rooms: usize,
    clients_per_room: usize,
    publishers_per_room: usize,
    before: u64,
    missed: u64,
}

fn preset(quick: bool) -> Preset {
    if quick {
        Preset {
            rooms: 4,
            clients_per_room: 25,
            publishers_per_room: 2,
            before: 20,
            missed: 20,
        }
    } else {
        Preset {
            rooms: 10,
            clients_per_room: 100,
            publishers_per_room: 4,
            before: 200,
            missed: 100,
        }
    }
}

pub(super) fn describe(quick: bool) -> Vec<String> {
    let p = preset(quick);
    vec![format!(
        "{} clients in {} rooms; {} messages per room while connected, all disconnect, {} more per room, then all reconnect at once with `since`, then 1 live message per room; {} publishers per room at ≤ {MAX_SENDS_PER_CONNECTION}/s each",
        p.rooms * p.clients_per_room,
        p.rooms,
        p.before,
        p.missed,
        p.publishers_per_room
    )]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Follow,
    Disconnect,
    Reconnect(Instant),
    Stop,
}

struct Shared {
    delivered: AtomicU64,
    joined: AtomicUsize,
    disconnected: AtomicUsize,
    resumed: AtomicUsize,
}

struct ClientResult {
    tracker: SeqTracker,
    catch_up_us: Option<u64>,
}

pub(super) async fn run(
    deployment: &mut Deployment,
    quick: bool,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Row>> {
    let p = preset(quick);
    let clients = p.rooms * p.clients_per_room;
    let mut row = Row::new(
        "resume",
        format!("{clients} clients reconnect at once"),
        deployment.mode(),
        json!({"rooms": p.rooms, "clients": clients, "before": p.before, "missed": p.missed}),
    );
    row.connections = clients;
    progress.set_message("resume: creating users");
    let publisher_count = p.rooms * p.publishers_per_room;
    deployment.ensure_users(clients + publisher_count).await?;
    let rooms: Vec<String> = (0..p.rooms).map(|r| format!("resume-{r}")).collect();
    deployment.create_rooms(&rooms).await?;

    // Publishers: their own connections and users (after the clients').
    let mut publishers = Vec::new();
    for i in 0..publisher_count {
        let room = i / p.publishers_per_room;
        let (conn, _) = connect_and_join(
            &deployment.ws_url(i),
            &deployment.credential(clients + i),
            &rooms[room],
            None,
            &mut |_, _| {},
        )
        .await?;
        publishers.push(Publisher {
            conn,
            id: i,
            room,
            in_room: i % p.publishers_per_room,
            sent: 0,
        });
    }

    let shared = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        joined: AtomicUsize::new(0),
        disconnected: AtomicUsize::new(0),
        resumed: AtomicUsize::new(0),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Follow);
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for c in 0..clients {
        tasks.push(tokio::spawn(client(
            // With two nodes, every client comes back on the other one.
            [deployment.ws_url(c), deployment.ws_url(c + 1)],
            deployment.credential(c),
            rooms[c % p.rooms].clone(),
            Arc::clone(&shared),
            phase_rx.clone(),
            Arc::clone(&gate),
        )));
    }
    drop(phase_rx);
    let wait = |what: &'static str, target: usize, counter: fn(&Shared) -> usize| {
        let shared = Arc::clone(&shared);
        let progress = progress.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let n = counter(&shared);
                progress.set_message(format!("resume: {what} {n}/{target}"));
                if n >= target {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    anyhow::bail!("resume: only {n} of {target} clients {what} within 2 minutes");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait("joined", clients, |s| s.joined.load(Ordering::Relaxed)).await?;

    publish_round(&mut publishers, &rooms, p.before, 0).await?;
    let expected = (clients as u64) * p.before;
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let _ = phase_tx.send(Phase::Disconnect);
    wait("disconnected", clients, |s| {
        s.disconnected.load(Ordering::Relaxed)
    })
    .await?;
    // Let the server notice every close before the missed messages go out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish_round(&mut publishers, &rooms, p.missed, p.before).await?;

    let before = deployment.sample()?;
    let storm = Instant::now();
    let _ = phase_tx.send(Phase::Reconnect(storm));
    wait("caught up", clients, |s| s.resumed.load(Ordering::Relaxed)).await?;
    let storm_s = storm.elapsed().as_secs_f64();
    let after = deployment.sample()?;

    // One live message per room: resumed clients must be following again.
    let delivered_before = shared.delivered.load(Ordering::Relaxed);
    publish_round(&mut publishers, &rooms, 1, p.before + p.missed).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.delivered.load(Ordering::Relaxed) < delivered_before + clients as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = phase_tx.send(Phase::Stop);
    for publisher in publishers {
        publisher.conn.close().await;
    }

    let last = p.before + p.missed + 1;
    let mut latency = Latency::new();
    let mut integrity = Integrity::default();
    for task in tasks {
        let result = task.await.context("a client panicked")??;
        integrity.add(&result.tracker.finish(last));
        match result.catch_up_us {
            Some(us) => latency.record_us(us),
            None => integrity.malformed += 1,
        }
    }
    row.latency = latency.summary();
    row.integrity = integrity;
    row.deliveries = shared.delivered.load(Ordering::Relaxed);
    row.sent = (p.before + p.missed + 1) * p.rooms as u64;
    row.acked = row.sent;
    row.server_cpu_s = after.cpu_seconds - before.cpu_seconds;
    row.rss_kib = after.rss_kib;
    row.hwm_kib = after.hwm_kib;
    row.wall_s = storm_s;
    row.notes.push(format!(
        "all {clients} caught up {storm_s:.2}s after the storm began, {} missed messages each; server CPU {:.2}s",
        p.missed, row.server_cpu_s
    ));
    progress.inc(1);
    Ok(vec![row])
}

/// One publishing connection of the resume scenario.
struct Publisher {
    conn: Conn,
    id: usize,
    room: usize,
    in_room: usize,
    sent: u64,
}

/// The publishers of each room send `n` messages to it between them and
/// wait for the acks; each room's acks must end at seq `first + n`.
async fn publish_round(
    publishers: &mut [Publisher],
    rooms: &[String],
    n: u64,
    first: u64,
) -> anyhow::Result<()> {
    let per_room = publishers.iter().filter(|p| p.room == 0).count().max(1) as u64;
    let rounds = publishers.iter_mut().map(|p| async move {
        let share = n / per_room + u64::from((p.in_room as u64) < n % per_room);
        let plan = BatchPlan {
            room: &rooms[p.room],
            count: share,
            window: 16,
            max_rate: MAX_SENDS_PER_CONNECTION,
            publisher: p.id,
            first_index: p.sent,
            text_size: 64,
            stall: Duration::from_secs(30),
        };
        let batch = publish_batch(&mut p.conn, &plan).await?;
        p.sent += share;
        anyhow::Ok((p.room, batch))
    });
    let batches = futures::future::try_join_all(rounds).await?;
    for (r, room) in rooms.iter().enumerate() {
        let acked: u64 = batches
            .iter()
            .filter(|(b, _)| *b == r)
            .map(|(_, b)| b.acked)
            .sum();
        let last = batches
            .iter()
            .filter(|(b, _)| *b == r)
            .map(|(_, b)| b.last_seq)
            .max()
            .unwrap_or(0);
        if acked != n || last != first + n {
            anyhow::bail!(
                "room {room}: {acked} of {n} sends acked, last seq {last} (expected {})",
                first + n
            );
        }
    }
    Ok(())
}

async fn client(
    urls: [String; 2],
    credential: Credential,
    room: String,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    gate: Arc<Semaphore>,
) -> anyhow::Result<ClientResult> {
    let permit = gate.acquire_owned().await?;
    let [url, resume_url] = urls;
    let (mut conn, start) =
        connect_and_join(&url, &credential, &room, None, &mut |_, _| {}).await?;
    drop(permit);
    let mut tracker = SeqTracker::starting_after(start);
    shared.joined.fetch_add(1, Ordering::Relaxed);

    // Follow until told to disconnect.
    follow(&mut conn, &room, &mut tracker, &shared, &mut phase, |p| {
        p != Phase::Follow
    })
    .await?;
    conn.close().await;
    shared.disconnected.fetch_add(1, Ordering::Relaxed);

    let storm = loop {
        if let Phase::Reconnect(at) = *phase.borrow_and_update() {
            break at;
        }
        phase.changed().await?;
    };
    // Everyone at once: no gate, that is the point.
    let since = tracker.highest();
    let delivered = &shared.delivered;
    let (mut conn, _) = connect_and_join(
        &resume_url,
        &credential,
        &room,
        Some(since),
        &mut |seq, _| {
            tracker.observe(seq);
            delivered.fetch_add(1, Ordering::Relaxed);
        },
    )
    .await?;
    let catch_up_us = u64::try_from(storm.elapsed().as_micros()).ok();
    shared.resumed.fetch_add(1, Ordering::Relaxed);

    follow(&mut conn, &room, &mut tracker, &shared, &mut phase, |p| {
        p == Phase::Stop
    })
    .await?;
    conn.close().await;
    Ok(ClientResult {
        tracker,
        catch_up_us,
    })
}

/// Reads messages of `room` into `tracker` until `until(phase)` holds.
async fn follow(
    conn: &mut Conn,
    room: &str,
    tracker: &mut SeqTracker,
    shared: &Shared,
    phase: &mut watch::Receiver<Phase>,
    until: impl Fn(Phase) -> bool,
) -> anyhow::Result<()> {
    loop {
        if until(*phase.borrow_and_update()) {
            return Ok(());
        }
        tokio::select! {
            event = conn.next() => match event? {
                Event::Text(text) => {
                    if let Ok(frame) = wire::parse(text.as_str()) {
                        if frame.kind == "message" && frame.room.as_deref() == Some(room) {
                            if let Some(seq) = frame.seq {
                                tracker.observe(seq);
                                shared.delivered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                Event::Closed(code) => anyhow::bail!("closed ({code:?}) while following {room}"),
            },
            changed = phase.changed() => changed?,
        }
    }
}
