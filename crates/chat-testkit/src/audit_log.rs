//! The contract of [`AuditLog`]: entries read back exactly, newest recorded
//! first, whatever their timestamps say.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chat_domain::{AuditAction, AuditEntry, AuditLog, Timestamp};

use crate::fixtures::{T0, at};

/// An entry by `actor` doing `action` to `target` at `when`.
pub fn entry(
    when: Timestamp,
    actor: &str,
    action: AuditAction,
    target: &str,
    detail: &str,
) -> AuditEntry {
    AuditEntry {
        at: when,
        actor: actor.to_owned(),
        action,
        target: target.to_owned(),
        detail: detail.to_owned(),
    }
}

/// A trail with nothing recorded reads as empty, at any limit.
pub async fn an_empty_trail_reads_as_empty<S: AuditLog>(store: Arc<S>) {
    assert_eq!(store.recent(0).await.unwrap(), vec![]);
    assert_eq!(store.recent(100).await.unwrap(), vec![]);
}

/// Entries come back newest first; `limit` takes the newest ones; 0 reads
/// nothing; a limit beyond the count reads them all.
pub async fn entries_read_back_newest_first_up_to_the_limit<S: AuditLog>(store: Arc<S>) {
    let e1 = entry(T0, "admin", AuditAction::UserCreated, "alice", "none");
    let e2 = entry(at(1), "admin", AuditAction::RoomCreated, "lobby", "public");
    let e3 = entry(
        at(2),
        "mo",
        AuditAction::Muted,
        "alice",
        "in lobby, for 5 min",
    );
    for e in [&e1, &e2, &e3] {
        store.record(e.clone()).await.unwrap();
    }
    assert_eq!(
        store.recent(10).await.unwrap(),
        vec![e3.clone(), e2.clone(), e1.clone()]
    );
    assert_eq!(
        store.recent(3).await.unwrap(),
        vec![e3.clone(), e2.clone(), e1]
    );
    assert_eq!(store.recent(2).await.unwrap(), vec![e3.clone(), e2]);
    assert_eq!(store.recent(1).await.unwrap(), vec![e3]);
    assert_eq!(store.recent(0).await.unwrap(), vec![]);
}

/// The order is the order of recording: entries of one instant keep it,
/// and an entry stamped earlier (another node's clock) but recorded later
/// still reads as the newest.
pub async fn the_order_is_the_order_of_recording_not_of_timestamps<S: AuditLog>(store: Arc<S>) {
    let same: Vec<AuditEntry> = ["a", "b", "c"]
        .iter()
        .map(|t| entry(at(5), "admin", AuditAction::UserDeleted, t, ""))
        .collect();
    for e in &same {
        store.record(e.clone()).await.unwrap();
    }
    let skewed = entry(
        at(5).minus(Duration::from_secs(60)),
        "admin",
        AuditAction::PermissionDefined,
        "helper",
        "",
    );
    store.record(skewed.clone()).await.unwrap();
    let got = store.recent(10).await.unwrap();
    assert_eq!(
        got,
        vec![skewed, same[2].clone(), same[1].clone(), same[0].clone()]
    );
}

/// Every action and every field survive storage exactly: Unicode names,
/// quotes, separators, newlines, an empty detail, millisecond timestamps.
pub async fn every_action_and_field_round_trips_exactly<S: AuditLog>(store: Arc<S>) {
    let details = [
        "",
        "in 闲聊-1, for 5 min",
        "create_room → admin, create_room",
        "a \"quoted\" | piped ; semi\nnew line\ttab 🦆",
    ];
    let mut recorded = Vec::new();
    for (i, action) in AuditAction::ALL.into_iter().enumerate() {
        let e = entry(
            T0.plus(Duration::from_millis(i as u64 * 1001 + 7)),
            if i % 2 == 0 { "小明" } else { "system" },
            action,
            if i % 3 == 0 {
                "闲聊-1"
            } else {
                "user.name_1"
            },
            details[i % details.len()],
        );
        store.record(e.clone()).await.unwrap();
        recorded.push(e);
    }
    recorded.reverse();
    assert_eq!(store.recent(100).await.unwrap(), recorded);
}

/// A longer trail is kept whole (well under `AUDIT_KEPT`) and pages by limit.
pub async fn a_longer_trail_is_kept_whole<S: AuditLog>(store: Arc<S>) {
    let all: Vec<AuditEntry> = (0..120u64)
        .map(|i| {
            entry(
                at(i),
                "admin",
                AuditAction::Kicked,
                &format!("user{i}"),
                "from lobby",
            )
        })
        .collect();
    for e in &all {
        store.record(e.clone()).await.unwrap();
    }
    let newest_first: Vec<AuditEntry> = all.iter().rev().cloned().collect();
    assert_eq!(store.recent(1000).await.unwrap(), newest_first);
    assert_eq!(store.recent(50).await.unwrap(), newest_first[..50].to_vec());
}
