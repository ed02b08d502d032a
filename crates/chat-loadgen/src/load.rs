//! The room-load engine behind `fanout` and `ingest`: rooms of connected
//! members, some of whom publish open-loop on a fixed schedule, while every
//! member checks that it receives each message of its room once, in seq
//! order. Also [`publish_batch`], the paced closed-loop sender that fills
//! rooms for `history` and `resume`.
//!
//! No connection sends more than [`MAX_SENDS_PER_CONNECTION`] messages a
//! second: the server refuses a flood of frames from one socket (a guard
//! for people, independent of the configurable rate limit), and a room's
//! rate comes from several members anyway.
//!
//! Latency is measured from a message's *scheduled* send time (written into
//! its text) to each receipt, so a server (or load generator) that falls
//! behind shows up as latency instead of silently lowering the load.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::ProgressBar;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};

use crate::accounting::{Integrity, SeqTracker};
use crate::client::{Conn, Credential, Event};
use crate::clock;
use crate::deploy::Deployment;
use crate::procfs::{self, Sample};
use crate::stats::Latency;
use crate::wire;

/// Connections opening at once during set-up: enough to be quick, few enough
/// not to overflow the server's accept backlog.
const CONNECT_CONCURRENCY: usize = 64;

/// The most sends per second any one connection makes: well below the
/// server's per-socket frame flood guard (30 frames/s, burst 60), and more
/// than a person types.
pub const MAX_SENDS_PER_CONNECTION: f64 = 20.0;

/// Publishers a room needs so none sends more than `per_connection` messages
/// a second at `rate` messages a second, at most `members`.
pub fn publishers_for(rate: f64, per_connection: f64, members: usize) -> usize {
    ((rate / per_connection).ceil() as usize).clamp(1, members.max(1))
}

/// One step of a room load.
#[derive(Debug, Clone, Serialize)]
pub struct RoomLoad {
    /// Room-name prefix, unique per step.
    pub prefix: String,
    /// How many rooms.
    pub rooms: usize,
    /// Connections per room (each joins its room).
    pub members: usize,
    /// Of those, how many publish (the first ones), sharing the room's rate.
    pub publishers: usize,
    /// Messages per second per room: the schedule of an open-loop step, the
    /// ceiling of a closed-loop one.
    pub rate_per_room: f64,
    /// `None`: open loop, each publisher sends on its schedule whatever the
    /// server does. `Some(w)`: closed loop, each publisher keeps at most `w`
    /// sends unanswered (and stays under its share of the rate), so the load
    /// adapts to the server: the way to find the most it can store.
    pub window: Option<usize>,
    /// How long publishers send.
    pub duration: Duration,
    /// The first part of `duration` left out of latency and rates.
    pub warmup: Duration,
    /// Bytes of each message text.
    pub text_size: usize,
    /// How long to wait at most for the last deliveries after sending
    /// stops, while they keep coming (10 s without progress ends it sooner).
    pub drain: Duration,
}

impl RoomLoad {
    /// Offered deliveries per second.
    pub fn offered_deliveries_per_s(&self) -> f64 {
        self.rate_per_room * (self.rooms * self.members) as f64
    }

    /// Offered sends per second.
    pub fn offered_sends_per_s(&self) -> f64 {
        self.rate_per_room * self.rooms as f64
    }

    /// Connections this step opens.
    pub fn connections(&self) -> usize {
        self.rooms * self.members
    }

    fn room_name(&self, r: usize) -> String {
        format!("{}-{r}", self.prefix)
    }
}

/// What one step measured.
#[derive(Debug, Clone, Default)]
pub struct LoadOutcome {
    /// Sends made.
    pub sent: u64,
    /// Sends acknowledged.
    pub acked: u64,
    /// Sends refused with an `error`, by code.
    pub refused: BTreeMap<String, u64>,
    /// Messages received, all members together.
    pub deliveries: u64,
    /// Deliveries received inside the measuring window, per second.
    pub deliveries_per_s: f64,
    /// Acks received inside the measuring window, per second.
    pub acked_per_s: f64,
    /// Scheduled send → receipt, warm-up excluded.
    pub latency: Latency,
    /// Scheduled send → ack, warm-up excluded.
    pub ack_latency: Latency,
    /// Delivery faults.
    pub integrity: Integrity,
    /// Times a member was disconnected (e.g. 1013, too slow) and resumed.
    pub reconnects: u64,
    /// Server CPU seconds from the start of sending to the end of the drain.
    pub server_cpu_s: f64,
    /// The same by thread name (nanosecond-exact, so the shares add up to
    /// about, not exactly, `server_cpu_s`).
    pub server_cpu_by_thread: BTreeMap<String, f64>,
    /// Server reading at the end.
    pub server_end: Sample,
    /// Private Redis CPU seconds over the same span, if there is one.
    pub redis_cpu_s: Option<f64>,
    /// Load-generator CPU seconds over the same span.
    pub loadgen_cpu_s: f64,
    /// Share of one core the load generator used while publishers sent
    /// (near 1: it may be what limits the step).
    pub loadgen_busy: f64,
    /// Wall seconds over the same span.
    pub wall_s: f64,
    /// Whether every acked message reached every member before the drain deadline.
    pub drained: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Setup,
    Go(Instant),
    Stop,
}

/// Counters every member task updates, read by the progress line and the drain.
struct Shared {
    delivered: AtomicU64,
    sent: AtomicU64,
    answered: AtomicU64,
    ready: AtomicUsize,
    publishers_done: AtomicUsize,
    room_acked: Vec<AtomicU64>,
    room_last_seq: Vec<AtomicU64>,
}

struct Member {
    url: String,
    credential: Credential,
    room: String,
    room_index: usize,
    publisher: Option<usize>,
}

#[derive(Default)]
struct MemberResult {
    room_index: usize,
    tracker: Option<SeqTracker>,
    // Raw samples (µs), merged into one histogram at the end: a histogram
    // per member would cost ~100 KiB each, a sample 4 bytes.
    latency: Vec<u32>,
    ack_latency: Vec<u32>,
    window_deliveries: u64,
    window_acks: u64,
    sent: u64,
    acked: u64,
    refused: BTreeMap<String, u64>,
    unanswered: u64,
    reconnects: u64,
}

/// Runs one step against `deployment`, which must already have enough users.
///
/// # Errors
/// When connections cannot be set up or a server dies.
pub async fn run(
    deployment: &Deployment,
    load: &RoomLoad,
    progress: &ProgressBar,
) -> anyhow::Result<LoadOutcome> {
    let names: Vec<String> = (0..load.rooms).map(|r| load.room_name(r)).collect();
    deployment.create_rooms(&names).await?;
    let shared = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        publishers_done: AtomicUsize::new(0),
        room_acked: (0..load.rooms).map(|_| AtomicU64::new(0)).collect(),
        room_last_seq: (0..load.rooms).map(|_| AtomicU64::new(0)).collect(),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = Vec::with_capacity(load.connections());
    let mut publisher_count = 0;
    for (r, room) in names.iter().enumerate() {
        for m in 0..load.members {
            let k = r * load.members + m;
            let publisher = (m < load.publishers).then(|| {
                publisher_count += 1;
                publisher_count - 1
            });
            let member = Member {
                // Members (publishers included) alternate between nodes: in
                // two-node mode half the deliveries cross nodes.
                url: deployment.ws_url(m),
                credential: deployment.credential(k),
                room: room.clone(),
                room_index: r,
                publisher,
            };
            tasks.push(tokio::spawn(member_task(
                member,
                load.clone(),
                Arc::clone(&shared),
                phase_rx.clone(),
                Arc::clone(&gate),
            )));
        }
    }
    drop(phase_rx);

    // Wait until everyone has joined (or a task failed).
    let total = load.connections();
    loop {
        let ready = shared.ready.load(Ordering::Relaxed);
        progress.set_message(format!("{}: joined {ready}/{total}", load.prefix));
        if ready >= total {
            break;
        }
        if let Some(done) = tasks.iter().position(tokio::task::JoinHandle::is_finished) {
            let failed = tasks.swap_remove(done);
            let _ = phase_tx.send(Phase::Stop);
            failed.await.context("a member task panicked")??;
            anyhow::bail!("a member finished before the start");
        }
        deployment.sample()?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let before = deployment.sample()?;
    let threads_before = deployment.thread_cpu();
    let redis_before = deployment.redis_sample();
    let me_before = procfs::sample(std::process::id()).unwrap_or_default();
    let t0 = Instant::now() + Duration::from_millis(200);
    let _ = phase_tx.send(Phase::Go(t0));
    tokio::time::sleep_until(t0.into()).await;

    // Sending, then draining until every answer and delivery is in. A slow
    // server gets time while it makes progress; one that makes none for
    // STALL with messages outstanding is taken to have lost them.
    const STALL: Duration = Duration::from_secs(10);
    let send_end = t0 + load.duration;
    let mut drain_deadline = None;
    let mut me_at_send_end = None;
    let mut progress_mark = (0, 0, Instant::now());
    let drained = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let delivered = shared.delivered.load(Ordering::Relaxed);
        let sent = shared.sent.load(Ordering::Relaxed);
        let answered = shared.answered.load(Ordering::Relaxed);
        let expected: u64 = shared
            .room_acked
            .iter()
            .map(|a| a.load(Ordering::Relaxed) * load.members as u64)
            .sum();
        let elapsed = t0.elapsed().as_secs_f64();
        progress.set_message(format!(
            "{}: {elapsed:.0}s sent {sent} answered {answered} delivered {delivered}/{expected}",
            load.prefix
        ));
        deployment.sample()?;
        let sending_done = shared.publishers_done.load(Ordering::Relaxed) >= publisher_count
            && Instant::now() >= send_end;
        if !sending_done {
            continue;
        }
        if me_at_send_end.is_none() {
            me_at_send_end = Some(procfs::sample(std::process::id()).unwrap_or_default());
        }
        let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + load.drain);
        if answered >= sent && delivered >= expected {
            break true;
        }
        if (delivered, answered) != (progress_mark.0, progress_mark.1) {
            progress_mark = (delivered, answered, Instant::now());
        }
        if Instant::now() >= deadline || progress_mark.2.elapsed() >= STALL {
            break false;
        }
    };
    let after = deployment.sample()?;
    let threads_after = deployment.thread_cpu();
    let redis_after = deployment.redis_sample();
    let me_after = procfs::sample(std::process::id()).unwrap_or_default();
    let wall_s = t0.elapsed().as_secs_f64();
    let _ = phase_tx.send(Phase::Stop);

    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.context("a member task panicked")??);
    }
    let window_s = (load.duration - load.warmup).as_secs_f64().max(0.001);
    let mut outcome = LoadOutcome {
        drained,
        wall_s,
        server_cpu_s: after.cpu_seconds - before.cpu_seconds,
        server_cpu_by_thread: procfs::cpu_by_name(&threads_before, &threads_after),
        server_end: after,
        redis_cpu_s: redis_before
            .zip(redis_after)
            .map(|(b, a)| a.cpu_seconds - b.cpu_seconds),
        loadgen_cpu_s: me_after.cpu_seconds - me_before.cpu_seconds,
        loadgen_busy: me_at_send_end.map_or(0.0, |m| {
            (m.cpu_seconds - me_before.cpu_seconds) / load.duration.as_secs_f64().max(0.001)
        }),
        deliveries: shared.delivered.load(Ordering::Relaxed),
        ..LoadOutcome::default()
    };
    let mut last_seq: Vec<u64> = shared
        .room_last_seq
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    for result in &results {
        if let Some(t) = &result.tracker {
            last_seq[result.room_index] = last_seq[result.room_index].max(t.highest());
        }
    }
    let mut window_deliveries = 0;
    let mut window_acks = 0;
    for result in &results {
        match &result.tracker {
            Some(t) => outcome
                .integrity
                .add(&t.finish(last_seq[result.room_index])),
            None => outcome.integrity.malformed += 1,
        }
        // A send with a cid must be answered by an ack or an error.
        outcome.integrity.unanswered += result.unanswered;
        for us in &result.latency {
            outcome.latency.record_us(u64::from(*us));
        }
        for us in &result.ack_latency {
            outcome.ack_latency.record_us(u64::from(*us));
        }
        outcome.sent += result.sent;
        outcome.acked += result.acked;
        outcome.reconnects += result.reconnects;
        window_deliveries += result.window_deliveries;
        window_acks += result.window_acks;
        for (code, n) in &result.refused {
            *outcome.refused.entry(code.clone()).or_default() += n;
        }
    }
    outcome.deliveries_per_s = window_deliveries as f64 / window_s;
    outcome.acked_per_s = window_acks as f64 / window_s;
    Ok(outcome)
}

/// Connects to `url` as `credential` and joins `room` (with `since` for a
/// resume, whose snapshot messages go to `on_message`); returns the
/// connection and the seq the member has seen up to.
///
/// Connects and joins, retrying a refused connection a few times (a burst of
/// connects can overflow the accept backlog), and returns the tracker
/// started from the join snapshot.
pub async fn connect_and_join(
    url: &str,
    credential: &Credential,
    room: &str,
    since: Option<u64>,
    on_message: &mut (dyn FnMut(u64, Option<&str>) + Send),
) -> anyhow::Result<(Conn, u64)> {
    let mut attempt = 0;
    let mut conn = loop {
        match Conn::connect(url, credential).await {
            Ok(c) => break c,
            Err(e) if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                let _ = e;
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to {url}")),
        }
    };
    conn.send(wire::join(room, since)).await?;
    loop {
        match conn.next().await? {
            Event::Text(text) => {
                let frame = wire::parse(text.as_str())
                    .with_context(|| format!("unparsable frame: {}", text.as_str()))?;
                match frame.kind.as_ref() {
                    "joined" if frame.room.as_deref() == Some(room) => {
                        let messages = frame.messages.unwrap_or_default();
                        let last = messages.iter().filter_map(|m| m.seq).max().unwrap_or(0);
                        if since.is_some() {
                            // A resume: these are deliveries, to be checked.
                            for m in &messages {
                                if let Some(seq) = m.seq {
                                    on_message(seq, m.text.as_deref());
                                }
                            }
                        }
                        return Ok((conn, since.unwrap_or(last)));
                    }
                    "error" => anyhow::bail!(
                        "joining {room}: {} {}",
                        frame.code.as_deref().unwrap_or("?"),
                        frame.message.as_deref().unwrap_or("")
                    ),
                    _ => {}
                }
            }
            Event::Closed(code) => anyhow::bail!("closed ({code:?}) while joining {room}"),
        }
    }
}

async fn member_task(
    member: Member,
    load: RoomLoad,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    gate: Arc<Semaphore>,
) -> anyhow::Result<MemberResult> {
    let mut result = MemberResult {
        room_index: member.room_index,
        ..MemberResult::default()
    };
    let permit = gate.acquire_owned().await?;
    let mut no_messages = |_: u64, _: Option<&str>| {};
    let (mut conn, start) = connect_and_join(
        &member.url,
        &member.credential,
        &member.room,
        None,
        &mut no_messages,
    )
    .await?;
    drop(permit);
    let mut tracker = SeqTracker::starting_after(start);
    shared.ready.fetch_add(1, Ordering::Relaxed);

    let t0 = loop {
        let current = *phase.borrow_and_update();
        match current {
            Phase::Go(t0) => break t0,
            Phase::Stop => {
                conn.close().await;
                result.tracker = Some(tracker);
                return Ok(result);
            }
            Phase::Setup => {}
        }
        if phase.changed().await.is_err() {
            result.tracker = Some(tracker);
            return Ok(result);
        }
    };
    let warm_us = clock::micros(t0 + load.warmup);
    let end = t0 + load.duration;
    let end_us = clock::micros(end);

    // This publisher's share of the room's rate: its schedule (open loop)
    // or its ceiling (closed loop).
    let per_publisher = load.rate_per_room / load.publishers.max(1) as f64;
    let period = Duration::from_secs_f64(1.0 / per_publisher.max(0.001));
    let count = match load.window {
        None => (load.duration.as_secs_f64() * per_publisher).floor() as u64,
        Some(_) => u64::MAX,
    };
    // Publishers are spread evenly over one period, so the rooms do not all
    // send in the same millisecond.
    let total_publishers = (load.rooms * load.publishers).max(1);
    let offset = period.mul_f64(member.publisher.unwrap_or(0) as f64 / total_publishers as f64);
    let first = t0 + offset;
    // Closed loop: the earliest the next send may go.
    let mut next_send = first;
    let mut index: u64 = 0;
    // index → scheduled time (µs), for sends awaiting their answer.
    let mut pending: HashMap<u64, u64> = HashMap::new();
    let mut sending = member.publisher.is_some();
    let publisher = member.publisher.unwrap_or(0);

    loop {
        let closed_loop_over = load.window.is_some() && Instant::now() >= end;
        if sending && (index >= count || closed_loop_over) {
            sending = false;
            shared.publishers_done.fetch_add(1, Ordering::Relaxed);
        }
        let (due, may_send) = match load.window {
            None => (
                first + period * u32::try_from(index).unwrap_or(u32::MAX),
                sending,
            ),
            Some(w) => (next_send, sending && pending.len() < w),
        };
        tokio::select! {
            event = conn.next() => match event? {
                Event::Text(text) => {
                    handle_frame(text.as_str(), &member, &shared, &mut tracker, &mut pending, &mut result, warm_us, end_us);
                }
                Event::Closed(_) => {
                    // Too slow for the server (1013) or dropped: resume with
                    // `since`, as a real client would, and resend whatever
                    // was unanswered with the same cid (sends are idempotent).
                    result.reconnects += 1;
                    let since = tracker.highest();
                    let mut replay = |seq: u64, text: Option<&str>| {
                        record_delivery(seq, text, &shared, &mut tracker, &mut result, warm_us, end_us);
                    };
                    let (c, _) = connect_and_join(&member.url, &member.credential, &member.room, Some(since), &mut replay).await?;
                    conn = c;
                    let mut resend: Vec<(u64, u64)> = pending.iter().map(|(i, s)| (*i, *s)).collect();
                    resend.sort_unstable();
                    for (i, scheduled) in resend {
                        let text = wire::bench_text(scheduled, publisher, i, load.text_size);
                        conn.send(wire::send(&member.room, &text, &cid(publisher, i))).await?;
                    }
                }
            },
            () = tokio::time::sleep_until(due.into()), if may_send => {
                // Open loop: latency counts from the schedule. Closed loop:
                // from now, and the next send waits a period at least.
                let scheduled = if load.window.is_some() {
                    let now = Instant::now();
                    next_send = now + period;
                    clock::micros(now)
                } else {
                    clock::micros(due)
                };
                let text = wire::bench_text(scheduled, publisher, index, load.text_size);
                conn.send(wire::send(&member.room, &text, &cid(publisher, index))).await?;
                pending.insert(index, scheduled);
                index += 1;
                result.sent += 1;
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            () = tokio::time::sleep_until(end.into()), if sending && load.window.is_some() => {}
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Stop {
                    break;
                }
            }
        }
    }
    result.unanswered = pending.len() as u64;
    result.tracker = Some(tracker);
    conn.close().await;
    Ok(result)
}

fn cid(publisher: usize, index: u64) -> String {
    format!("p{publisher}-{index}")
}

fn index_of_cid(cid: &str) -> Option<u64> {
    cid.rsplit('-').next()?.parse().ok()
}

#[allow(clippy::too_many_arguments)]
fn handle_frame(
    text: &str,
    member: &Member,
    shared: &Shared,
    tracker: &mut SeqTracker,
    pending: &mut HashMap<u64, u64>,
    result: &mut MemberResult,
    warm_us: u64,
    end_us: u64,
) {
    let Ok(frame) = wire::parse(text) else {
        return;
    };
    match frame.kind.as_ref() {
        "message" if frame.room.as_deref() == Some(member.room.as_str()) => {
            if let Some(seq) = frame.seq {
                record_delivery(
                    seq,
                    frame.text.as_deref(),
                    shared,
                    tracker,
                    result,
                    warm_us,
                    end_us,
                );
            }
        }
        "ack" => {
            let Some(i) = frame.cid.as_deref().and_then(index_of_cid) else {
                return;
            };
            if let Some(scheduled) = pending.remove(&i) {
                let now = clock::now_us();
                if scheduled >= warm_us {
                    result
                        .ack_latency
                        .push(sample(now.saturating_sub(scheduled)));
                }
                if (warm_us..end_us).contains(&now) {
                    result.window_acks += 1;
                }
                result.acked += 1;
                shared.answered.fetch_add(1, Ordering::Relaxed);
                shared.room_acked[member.room_index].fetch_add(1, Ordering::Relaxed);
                if let Some(seq) = frame.seq {
                    shared.room_last_seq[member.room_index].fetch_max(seq, Ordering::Relaxed);
                }
            }
        }
        "error" => {
            let code = frame.code.as_deref().unwrap_or("?").to_owned();
            if let Some(i) = frame.cid.as_deref().and_then(index_of_cid) {
                if pending.remove(&i).is_some() {
                    shared.answered.fetch_add(1, Ordering::Relaxed);
                }
            }
            *result.refused.entry(code).or_default() += 1;
        }
        _ => {}
    }
}

fn record_delivery(
    seq: u64,
    text: Option<&str>,
    shared: &Shared,
    tracker: &mut SeqTracker,
    result: &mut MemberResult,
    warm_us: u64,
    end_us: u64,
) {
    tracker.observe(seq);
    shared.delivered.fetch_add(1, Ordering::Relaxed);
    let now = clock::now_us();
    if let Some(scheduled) = text.and_then(wire::scheduled_us) {
        if scheduled >= warm_us {
            result.latency.push(sample(now.saturating_sub(scheduled)));
        }
    }
    if (warm_us..end_us).contains(&now) {
        result.window_deliveries += 1;
    }
}

/// What [`publish_batch`] did.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Sends acknowledged.
    pub acked: u64,
    /// The highest seq acknowledged.
    pub last_seq: u64,
    /// Sends refused, by code.
    pub refused: BTreeMap<String, u64>,
}

/// One batch of sends for [`publish_batch`].
#[derive(Debug, Clone)]
pub struct BatchPlan<'a> {
    /// The room (the connection is a member).
    pub room: &'a str,
    /// How many messages.
    pub count: u64,
    /// Sends awaiting their answer at most.
    pub window: usize,
    /// Sends per second at most (see [`MAX_SENDS_PER_CONNECTION`]).
    pub max_rate: f64,
    /// Who sends (part of the cid and the text).
    pub publisher: usize,
    /// The first message index (part of the cid).
    pub first_index: u64,
    /// Bytes of each text.
    pub text_size: usize,
    /// Give up when the server says nothing for this long.
    pub stall: Duration,
}

/// Sends `plan.count` benchmark messages on `conn`, keeping at most
/// `plan.window` unanswered and sending at most `plan.max_rate` a second,
/// and returns once every send is answered. Cids are
/// `b{publisher}-{first_index + i}`: a later batch of the same publisher
/// must start past the earlier ones, or the server rightly takes its sends
/// for retries. Deliveries to `conn` itself are ignored.
///
/// # Errors
/// When the connection closes, or answers stop for `plan.stall`.
pub async fn publish_batch(conn: &mut Conn, plan: &BatchPlan<'_>) -> anyhow::Result<Batch> {
    let BatchPlan {
        room,
        count,
        window,
        max_rate,
        publisher,
        first_index,
        text_size,
        stall,
    } = *plan;
    let interval = Duration::from_secs_f64(1.0 / max_rate.max(0.001));
    let mut batch = Batch::default();
    let mut next: u64 = 0;
    let mut answered: u64 = 0;
    let mut next_send = Instant::now();
    let mut last_heard = Instant::now();
    while answered < count {
        let can_send = next < count && (next - answered) < window as u64;
        if can_send && Instant::now() >= next_send {
            let index = first_index + next;
            let text = wire::bench_text(clock::now_us(), publisher, index, text_size);
            conn.send(wire::send(room, &text, &format!("b{publisher}-{index}")))
                .await?;
            next += 1;
            next_send += interval;
            continue;
        }
        if last_heard.elapsed() > stall {
            anyhow::bail!(
                "no answer from the server for {stall:?} while publishing to {room} ({answered} of {next} sends answered)"
            );
        }
        let event = tokio::select! {
            event = conn.next() => event?,
            () = tokio::time::sleep_until(next_send.into()), if can_send => continue,
            () = tokio::time::sleep(stall) => continue,
        };
        last_heard = Instant::now();
        let text = match event {
            Event::Text(text) => text,
            Event::Closed(code) => anyhow::bail!(
                "the server closed the connection ({code:?}) while publishing to {room} ({answered} of {next} sends answered)"
            ),
        };
        let Ok(frame) = wire::parse(text.as_str()) else {
            continue;
        };
        match frame.kind.as_ref() {
            "ack" if frame.room.as_deref() == Some(room) => {
                answered += 1;
                batch.acked += 1;
                batch.last_seq = batch.last_seq.max(frame.seq.unwrap_or(0));
            }
            "error" => {
                // Counted as an answer even without a cid: a refusal the
                // client cannot match would otherwise stall the batch.
                answered += 1;
                *batch
                    .refused
                    .entry(frame.code.as_deref().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            _ => {}
        }
    }
    Ok(batch)
}

fn sample(us: u64) -> u32 {
    u32::try_from(us).unwrap_or(u32::MAX)
}
