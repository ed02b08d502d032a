//! `ingest`: many senders in small rooms, closed loop: acked messages per
//! second into storage, with every message also delivered to both members
//! of its room and checked.
//!
//! Each sender keeps a few sends unanswered, so the load adapts to the
//! server (an overloaded open loop would measure a queue, not storage), and
//! sends at most [`MAX_SENDS_PER_CONNECTION`] a second: the server refuses
//! a flood of frames from one socket, so throughput comes from many senders,
//! which is also what a busy server sees. The ceiling is above the target.

use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::json;

use super::fill_row;
use crate::deploy::Deployment;
use crate::load::{self, MAX_SENDS_PER_CONNECTION, RoomLoad};
use crate::report::Row;

/// Sends a sender keeps unanswered.
const WINDOW: usize = 4;

fn step(quick: bool) -> RoomLoad {
    let (rooms, duration, warmup) = if quick {
        (100, Duration::from_millis(1500), Duration::from_millis(500))
    } else {
        (1_250, Duration::from_secs(10), Duration::from_secs(2))
    };
    RoomLoad {
        prefix: "ingest".into(),
        rooms,
        members: 2,
        publishers: 2,
        rate_per_room: 2.0 * MAX_SENDS_PER_CONNECTION,
        window: Some(WINDOW),
        duration,
        warmup,
        text_size: 64,
        drain: Duration::from_secs(120),
    }
}

pub(super) fn describe(quick: bool) -> Vec<String> {
    let s = step(quick);
    vec![format!(
        "{} rooms × 2 members, both sending, closed loop ({WINDOW} unanswered at most, ≤ {MAX_SENDS_PER_CONNECTION}/s each): {} senders, at most {:.0} messages/s, {:?} (first {:?} not measured), 64-byte texts",
        s.rooms,
        s.connections(),
        s.offered_sends_per_s(),
        s.duration,
        s.warmup
    )]
}

pub(super) async fn run(
    deployment: &mut Deployment,
    quick: bool,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Row>> {
    let step = step(quick);
    progress.set_message("ingest: creating users");
    deployment.ensure_users(step.connections()).await?;
    let outcome = load::run(deployment, &step, progress).await?;
    let mut row = Row::new(
        "ingest",
        format!(
            "{} senders × window {WINDOW} (≤ {MAX_SENDS_PER_CONNECTION}/s each)",
            step.connections()
        ),
        deployment.mode(),
        json!({
            "rooms": step.rooms,
            "members": step.members,
            "max_rate_per_sender": MAX_SENDS_PER_CONNECTION,
            "window": WINDOW,
            "ceiling_per_s": step.offered_sends_per_s(),
            "duration_s": step.duration.as_secs_f64(),
            "warmup_s": step.warmup.as_secs_f64(),
        }),
    );
    row.room_size = Some(step.members);
    row.connections = step.connections();
    fill_row(&mut row, &outcome);
    progress.inc(1);
    Ok(vec![row])
}
