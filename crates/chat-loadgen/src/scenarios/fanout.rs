//! `fanout`: rooms × members × publish rate, open loop. Room sizes 1, 10,
//! 100 and 1000, then a load sweep over 10 rooms × 100 members; every member
//! checks exactly-once, in-order delivery. A room's rate is shared by as
//! many of its members as it takes to keep each under 10 messages a second.

use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::json;

use super::{fill_row, plural};
use crate::deploy::Deployment;
use crate::load::{self, MAX_SENDS_PER_CONNECTION, RoomLoad, publishers_for};
use crate::report::Row;

/// Messages per second one publisher sends: a busy person, and well under
/// [`MAX_SENDS_PER_CONNECTION`].
const PER_PUBLISHER: f64 = MAX_SENDS_PER_CONNECTION / 2.0;

/// (rooms, members, messages per second per room) of each step.
fn shapes(quick: bool) -> Vec<(usize, usize, f64)> {
    if quick {
        vec![
            (20, 1, 5.0),
            (10, 10, 5.0),
            (2, 100, 10.0),
            (1, 1000, 5.0),
            (2, 100, 25.0),
        ]
    } else {
        vec![
            (200, 1, 10.0),
            (50, 10, 20.0),
            (10, 100, 50.0),
            (1, 1000, 20.0),
            (10, 100, 10.0),
            (10, 100, 25.0),
            (10, 100, 100.0),
        ]
    }
}

/// The steps of the preset.
pub fn steps(quick: bool) -> Vec<(String, RoomLoad)> {
    let (duration, warmup) = if quick {
        (Duration::from_millis(1500), Duration::from_millis(500))
    } else {
        (Duration::from_secs(10), Duration::from_secs(2))
    };
    shapes(quick)
        .into_iter()
        .enumerate()
        .map(|(i, (rooms, members, rate))| {
            let label = format!(
                "{} × {} @ {rate}/s",
                plural(rooms, "room"),
                plural(members, "member")
            );
            let load = RoomLoad {
                prefix: format!("fanout{i}-m{members}"),
                rooms,
                members,
                publishers: publishers_for(rate, PER_PUBLISHER, members),
                rate_per_room: rate,
                window: None,
                duration,
                warmup,
                text_size: 64,
                drain: Duration::from_secs(120),
            };
            (label, load)
        })
        .collect()
}

/// Users to create: distinct users per connection in a full run; in a quick
/// run connections share a smaller pool (the server fans out per connection
/// either way).
fn users(quick: bool) -> usize {
    if quick {
        200
    } else {
        steps(false)
            .iter()
            .map(|(_, l)| l.connections())
            .max()
            .unwrap_or(0)
    }
}

pub(super) fn describe(quick: bool) -> Vec<String> {
    let mut lines = vec![format!(
        "open loop; each room's rate shared by members sending ≤ {PER_PUBLISHER}/s each; 64-byte texts; {} users",
        users(quick)
    )];
    for (label, load) in steps(quick) {
        lines.push(format!(
            "{label}: {} connections, {} publisher(s) per room, offered {:.0} deliveries/s, {:?} (first {:?} not measured)",
            load.connections(),
            load.publishers,
            load.offered_deliveries_per_s(),
            load.duration,
            load.warmup
        ));
    }
    lines
}

pub(super) async fn run(
    deployment: &mut Deployment,
    quick: bool,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<Row>> {
    progress.set_message("fanout: creating users");
    deployment.ensure_users(users(quick)).await?;
    let mut rows = Vec::new();
    for (label, step) in steps(quick) {
        let outcome = load::run(deployment, &step, progress).await?;
        let mut row = Row::new(
            "fanout",
            label,
            deployment.mode(),
            json!({
                "rooms": step.rooms,
                "members": step.members,
                "rate_per_room": step.rate_per_room,
                "publishers_per_room": step.publishers,
                "duration_s": step.duration.as_secs_f64(),
                "warmup_s": step.warmup.as_secs_f64(),
                "text_bytes": step.text_size,
            }),
        );
        row.room_size = Some(step.members);
        row.offered_per_s = Some(step.offered_deliveries_per_s());
        row.connections = step.connections();
        fill_row(&mut row, &outcome);
        rows.push(row);
        progress.inc(1);
    }
    Ok(rows)
}
