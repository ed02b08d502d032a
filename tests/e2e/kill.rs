//! The kill test: the real `hihichat` binary is SIGKILLed while clients
//! send; after a restart on the same database every acked message is in
//! history, seqs have no gaps, and retried cids store nothing twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_tests::{Client, RecvError, ServerCommand, Ws, flood_wait};
use serde_json::{Value, json};

const ROOM: &str = "crash";
const SENDERS: usize = 4;
/// Kill once this many messages are acked, so the kill lands mid-stream.
const KILL_AFTER: usize = 150;

/// What one sender knows when its connection dies.
#[derive(Debug, Default)]
struct Outcome {
    /// (text, seq) of every acked message.
    acked: Vec<(String, u64)>,
    /// (cid, text) sent but not acked when the connection broke.
    in_flight: Option<(String, String)>,
}

/// Sends numbered messages one after another, each after the previous ack,
/// until the connection breaks. A frame refused by the per-socket flood
/// guard (`rate_limited` without a `cid`) is sent again after the wait, as a
/// real client would.
async fn send_until_killed(
    mut ws: Ws,
    name: String,
    total: Arc<AtomicUsize>,
    outcome: Arc<Mutex<Outcome>>,
) {
    for n in 0.. {
        let cid = format!("{name}-{n}");
        let text = format!("{name} says {n}");
        outcome.lock().unwrap().in_flight = Some((cid.clone(), text.clone()));
        let frame = json!({ "type": "send", "room": ROOM, "text": text, "cid": cid });
        if ws.try_send_text(frame.to_string()).await.is_err() {
            return;
        }
        loop {
            match ws.read_frame(Duration::from_secs(20)).await {
                Ok(f) if f["type"] == "ack" && f["cid"] == cid => {
                    let seq = f["seq"].as_u64().unwrap();
                    let mut outcome = outcome.lock().unwrap();
                    outcome.acked.push((text.clone(), seq));
                    outcome.in_flight = None;
                    total.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(f) if f["type"] == "error" => {
                    let Some(wait) = flood_wait(&f) else {
                        panic!("{name}: unexpected error {f}");
                    };
                    tokio::time::sleep(wait).await;
                    if ws.try_send_text(frame.to_string()).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Timeout) => panic!("{name}: no ack for {cid} in 20 s"),
                Err(_) => return,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acked_message_survives_a_sigkill_and_seqs_have_no_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let command = ServerCommand::sqlite_in(dir.path());
    let mut server = command.start().await;
    let admin = server.admin_client().await;
    admin.create_room_ok(ROOM).await;

    let total = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let name = format!("sender{i}");
        let user = admin.create_user(&name, &[]).await;
        let client = server.login(&user).await;
        let mut ws = client.ws().await;
        assert_eq!(ws.join(ROOM, None).await["type"], "joined");
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let task = tokio::spawn(send_until_killed(
            ws,
            name,
            Arc::clone(&total),
            Arc::clone(&outcome),
        ));
        senders.push((user, outcome, task));
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while total.load(Ordering::Relaxed) < KILL_AFTER {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the senders got only {} acks in 60 s",
            total.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().await;
    for (user, _, task) in &mut senders {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap_or_else(|_| panic!("{} did not notice the kill", user.name))
            .unwrap();
    }

    let server = command.start().await;
    let admin = server.admin_client().await;
    let history = admin.all_messages(ROOM).await;
    let acked: Vec<(String, u64)> = senders
        .iter()
        .flat_map(|(_, outcome, _)| outcome.lock().unwrap().acked.clone())
        .collect();
    assert!(acked.len() >= KILL_AFTER);
    let in_flight = senders
        .iter()
        .filter(|(_, outcome, _)| outcome.lock().unwrap().in_flight.is_some())
        .count();
    eprintln!(
        "kill test: {} acked before SIGKILL, {in_flight} in flight, {} stored",
        acked.len(),
        history.len()
    );
    check_history(&history, &acked);

    // Each sender retries what was in flight with the same cid, as a client
    // that lost its ack would: whether or not it was stored before the kill,
    // it ends up stored exactly once.
    let mut retried = Vec::new();
    for (user, outcome, _) in &senders {
        let in_flight = outcome.lock().unwrap().in_flight.clone();
        if let Some((cid, text)) = in_flight {
            let ack = retry(&server.login(user).await, &cid, &text).await;
            let earlier = history.iter().find(|m| m["text"] == text.as_str());
            if let Some(earlier) = earlier {
                assert_eq!(
                    ack["seq"], earlier["seq"],
                    "a retry of a stored message gets its seq"
                );
            }
            retried.push((text, ack["seq"].as_u64().unwrap()));
        }
    }
    let history = admin.all_messages(ROOM).await;
    let everything: Vec<(String, u64)> = acked.into_iter().chain(retried).collect();
    check_history(&history, &everything);
}

async fn retry(client: &Client, cid: &str, text: &str) -> Value {
    let mut ws = client.ws().await;
    ws.join(ROOM, None).await;
    let ack = ws.send_and_wait(ROOM, text, cid).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack
}

/// Seqs run 1..=n with no gap or repeat, every acked text sits at its acked
/// seq, and no text is stored twice.
fn check_history(history: &[Value], acked: &[(String, u64)]) {
    let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "seqs after the restart have no gaps");
    let mut by_text: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for m in history {
        by_text
            .entry(m["text"].as_str().unwrap())
            .or_default()
            .push(m["seq"].as_u64().unwrap());
    }
    let twice: Vec<_> = by_text.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    for (text, seq) in acked {
        assert_eq!(
            by_text.get(text.as_str()),
            Some(&vec![*seq]),
            "acked {text:?} as seq {seq}, but history disagrees"
        );
    }
}
