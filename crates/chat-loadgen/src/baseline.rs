//! The baseline: the least a WebSocket broadcast server can do with the
//! hihichat wire format — tokio-tungstenite, no accounts, no checks, no
//! durable storage — so every benchmark result can be read as a ratio to
//! what this machine allows.
//!
//! It is written the way a straightforward server would be (only the read
//! buffer is smaller than tungstenite's default): one reader and one
//! writer task per connection, an unbounded queue between them, each
//! message serialised once and its bytes shared by every recipient, one
//! `send` (write and flush) per frame. Rooms keep their messages in memory
//! so `join` with `since` and `history` can be answered too.
//!
//! With a journal (`chat-loadgen baseline --durable FILE`) it also keeps
//! the one promise a storing server cannot skip: a message is written to
//! the file and `fdatasync`ed before it is broadcast or acked. A task
//! takes whatever queued while the last sync ran and a thread of its own
//! writes it as one block and syncs it. Nothing else is stored (no index,
//! no second copy), so this is the least a server that keeps every
//! message durably can cost on this disk: the floor under hihichat's
//! figures that the plain baseline leaves out.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as sync_mpsc};

use futures::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// A client frame, as little of it as the baseline reads.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Join {
        room: String,
        since: Option<u64>,
    },
    Leave {
        room: String,
    },
    Send {
        room: String,
        text: String,
        cid: Option<String>,
    },
    History {
        room: String,
        before: Option<u64>,
        limit: Option<usize>,
    },
    Ping {
        cid: Option<String>,
    },
    #[serde(other)]
    Other,
}

type Outbox = mpsc::UnboundedSender<Message>;

/// One room: its delivered messages (serialised, `log[i]` has seq `i + 1`),
/// who follows it, and the last seq handed out (ahead of the log by the
/// messages waiting for the journal).
#[derive(Default)]
struct Room {
    log: Vec<Utf8Bytes>,
    members: Vec<(u64, Outbox)>,
    last_seq: u64,
}

/// Every room, behind one lock: held only to append and to queue frames
/// (unbounded sends never wait), never across an `.await`.
#[derive(Default)]
struct Hub {
    rooms: Mutex<HashMap<String, Room>>,
    next_id: AtomicU64,
    /// With `--durable`: where a published message waits to be stored.
    journal: Option<mpsc::UnboundedSender<Pending>>,
}

/// A published message on its way through the journal.
struct Pending {
    room: String,
    bytes: Utf8Bytes,
    /// The sender's outbox and its `ack`, if it asked for one.
    ack: Option<(Outbox, Message)>,
}

/// The journal file's size: it is filled once and then written round and
/// round, as a SQLite WAL is reused after a checkpoint, so a sync never
/// has to record a new size or newly allocated blocks.
const JOURNAL_BYTES: u64 = 64 << 20;

/// Serves the baseline on `listener` until the process is killed; with
/// `durable`, every message is stored in that file first (module doc).
///
/// # Errors
/// When the journal cannot be created or accepting fails for good.
pub async fn serve(listener: TcpListener, durable: Option<&Path>) -> std::io::Result<()> {
    let hub = match durable {
        None => Arc::new(Hub::default()),
        Some(path) => {
            let file = create_journal(path)?;
            let (queue, mut queued) = mpsc::unbounded_channel::<Pending>();
            let (to_disk, on_disk) = sync_mpsc::channel::<Group>();
            let hub = Arc::new(Hub {
                journal: Some(queue),
                ..Hub::default()
            });
            std::thread::Builder::new()
                .name("baseline-journal".into())
                .spawn(move || journal(&file, &on_disk))?;
            // A task takes the queue and the thread only writes, as in
            // hihichat's own writer: the task runs when the runtime gets to
            // it, so a group holds everything that queued meanwhile, where a
            // thread taking the queue itself wakes for the first message and
            // syncs far more often. The task also delivers: one wake-up of
            // the runtime per group, not one per frame from outside it.
            let deliverer = Arc::clone(&hub);
            tokio::spawn(async move {
                let mut group = Vec::new();
                while queued.recv_many(&mut group, usize::MAX).await > 0 {
                    let (done, stored) = oneshot::channel();
                    if to_disk.send((std::mem::take(&mut group), done)).is_err() {
                        return;
                    }
                    let Ok(stored) = stored.await else {
                        return;
                    };
                    deliverer.deliver(stored);
                }
            });
            hub
        }
    };
    loop {
        let (stream, _) = listener.accept().await?;
        let hub = Arc::clone(&hub);
        tokio::spawn(async move {
            let _ = connection(hub, stream).await;
        });
    }
}

/// Binds `addr` and serves (the `chat-loadgen baseline` command).
///
/// # Errors
/// When the address cannot be bound or the journal cannot be created.
pub async fn run(addr: SocketAddr, durable: Option<&Path>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve(listener, durable).await
}

/// Creates the journal file at its full size, written and synced, so that
/// later writes only overwrite blocks the file already has.
fn create_journal(path: &Path) -> std::io::Result<File> {
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    let zeros = vec![0_u8; 1 << 20];
    let mut at = 0;
    while at < JOURNAL_BYTES {
        file.write_all_at(&zeros, at)?;
        at += zeros.len() as u64;
    }
    file.sync_all()?;
    Ok(file)
}

/// A group of published messages for the journal thread, and where to
/// hand it back once stored.
type Group = (Vec<Pending>, oneshot::Sender<Vec<Pending>>);

/// The journal thread: writes each group it is given as one block after
/// the last, syncs, and hands the group back. Ends when the task that
/// feeds it is gone.
fn journal(file: &File, groups: &sync_mpsc::Receiver<Group>) {
    let mut block: Vec<u8> = Vec::new();
    let mut at = 0_u64;
    while let Ok((group, done)) = groups.recv() {
        block.clear();
        for pending in &group {
            block.extend_from_slice(pending.bytes.as_bytes());
            block.push(b'\n');
        }
        if at + block.len() as u64 > JOURNAL_BYTES {
            at = 0;
        }
        // `fdatasync`, not `fsync`: the file's size and blocks never change
        // after it is created, so this is the cheapest durable write there
        // is; SQLite's commit costs at least as much.
        let written = file
            .write_all_at(&block, at)
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Nothing unstored may be broadcast or acked, and the bench must
            // not read a broken run as a fast one: stop the server.
            eprintln!("chat-loadgen baseline: cannot store messages in the journal: {e}");
            std::process::exit(1);
        }
        at += block.len() as u64;
        if done.send(group).is_err() {
            return;
        }
    }
}

async fn connection(hub: Arc<Hub>, stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    // Default settings but a 4 KiB read buffer: tungstenite allocates the
    // read buffer eagerly (128 KiB by default), which would make the
    // baseline's idle connections cost ten times what a small server needs.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let name = format!("u{id}");
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    let _ = tx.send(text(
        &json!({"type": "welcome", "user": {"name": name, "guest": false}}),
    ));
    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(message)) = source.next().await {
        let Message::Text(frame) = message else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<ClientFrame>(frame.as_str()) else {
            let _ = tx.send(text(
                &json!({"type": "error", "code": "invalid", "message": "bad frame"}),
            ));
            continue;
        };
        match frame {
            ClientFrame::Join { room, since } => {
                let reply = hub.join(&room, since, id, &tx);
                if !joined.contains(&room) {
                    joined.push(room);
                }
                let _ = tx.send(reply);
            }
            ClientFrame::Leave { room } => {
                hub.leave(&room, id);
                joined.retain(|r| *r != room);
            }
            ClientFrame::Send {
                room,
                text: body,
                cid,
            } => {
                hub.publish(&room, &name, &body, cid.as_deref(), &tx);
            }
            ClientFrame::History {
                room,
                before,
                limit,
            } => {
                let _ = tx.send(hub.history(&room, before, limit.unwrap_or(50).clamp(1, 200)));
            }
            ClientFrame::Ping { cid } => {
                let _ = tx.send(text(&json!({"type": "pong", "cid": cid})));
            }
            ClientFrame::Other => {}
        }
    }
    for room in &joined {
        hub.leave(room, id);
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

fn text(value: &serde_json::Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

/// The messages of `log` with seq in `from..to` (1-based), as raw JSON.
fn slice(log: &[Utf8Bytes], from: u64, to: u64) -> String {
    let from = usize::try_from(from.max(1) - 1)
        .unwrap_or(usize::MAX)
        .min(log.len());
    let to = usize::try_from(to.max(1) - 1)
        .unwrap_or(usize::MAX)
        .min(log.len());
    let parts: Vec<&str> = log[from..to.max(from)]
        .iter()
        .map(Utf8Bytes::as_str)
        .collect();
    format!("[{}]", parts.join(","))
}

impl Hub {
    fn join(&self, name: &str, since: Option<u64>, id: u64, tx: &Outbox) -> Message {
        let mut rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = rooms.entry(name.to_owned()).or_default();
        if !room.members.iter().any(|(m, _)| *m == id) {
            room.members.push((id, tx.clone()));
        }
        let last = room.log.len() as u64;
        let (from, more) = match since {
            Some(s) => (s + 1, last.saturating_sub(s) > 1000),
            None => (last.saturating_sub(49).max(1), false),
        };
        let to = if since.is_some() {
            (from + 1000).min(last + 1)
        } else {
            last + 1
        };
        let messages = slice(&room.log, from, to);
        let room_json = serde_json::Value::String(name.to_owned());
        Message::Text(Utf8Bytes::from(format!(
            r#"{{"type":"joined","room":{room_json},"members":[],"online":[],"messages":{messages},"more":{more},"expired":false,"member":true}}"#
        )))
    }

    fn leave(&self, name: &str, id: u64) {
        let mut rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(room) = rooms.get_mut(name) {
            room.members.retain(|(m, _)| *m != id);
        }
    }

    /// Gives `name` its next seq, then broadcasts and acks the message at
    /// once, or with a journal, once it is stored.
    fn publish(&self, name: &str, from: &str, body: &str, cid: Option<&str>, tx: &Outbox) {
        let ts = time::OffsetDateTime::now_utc();
        let ts = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            ts.year(),
            u8::from(ts.month()),
            ts.day(),
            ts.hour(),
            ts.minute(),
            ts.second(),
            ts.millisecond()
        );
        let mut rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = rooms.entry(name.to_owned()).or_default();
        room.last_seq += 1;
        let seq = room.last_seq;
        let mut message = json!({
            "type": "message", "room": name, "seq": seq, "from": from,
            "text": body, "ts": ts, "kind": "chat",
        });
        if let Some(cid) = cid {
            message["cid"] = json!(cid);
        }
        let bytes = Utf8Bytes::from(message.to_string());
        let ack =
            cid.map(|cid| text(&json!({"type": "ack", "cid": cid, "room": name, "seq": seq})));
        match &self.journal {
            None => {
                Self::broadcast(room, bytes);
                if let Some(ack) = ack {
                    let _ = tx.send(ack);
                }
            }
            // Queued under the rooms' lock, so the journal sees each room's
            // messages in seq order and delivers them in that order. The
            // queue closes only when storing failed, which ends the process.
            Some(journal) => {
                let _ = journal.send(Pending {
                    room: name.to_owned(),
                    bytes,
                    ack: ack.map(|ack| (tx.clone(), ack)),
                });
            }
        }
    }

    /// Hands stored messages to their rooms, in the order given.
    fn deliver(&self, stored: Vec<Pending>) {
        let mut rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for pending in stored {
            let room = rooms.entry(pending.room).or_default();
            Self::broadcast(room, pending.bytes);
            if let Some((tx, ack)) = pending.ack {
                let _ = tx.send(ack);
            }
        }
    }

    /// Logs a message in its room and sends it to every member.
    fn broadcast(room: &mut Room, bytes: Utf8Bytes) {
        room.log.push(bytes.clone());
        for (_, member) in &room.members {
            let _ = member.send(Message::Text(bytes.clone()));
        }
    }

    fn history(&self, name: &str, before: Option<u64>, limit: usize) -> Message {
        let rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let log = rooms.get(name).map_or(&[][..], |r| r.log.as_slice());
        let last = log.len() as u64;
        let to = before.unwrap_or(last + 1).min(last + 1);
        let from = to.saturating_sub(limit as u64).max(1);
        let messages = slice(log, from, to);
        let room_json = serde_json::Value::String(name.to_owned());
        Message::Text(Utf8Bytes::from(format!(
            r#"{{"type":"history","room":{room_json},"messages":{messages},"more":{}}}"#,
            from > 1
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::client::{Conn, Credential, Event};
    use crate::wire;

    async fn next_frame(conn: &mut Conn) -> serde_json::Value {
        match conn.next().await.unwrap() {
            Event::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
            Event::Closed(code) => panic!("closed: {code:?}"),
        }
    }

    #[tokio::test]
    async fn the_baseline_broadcasts_acks_resumes_and_pages() {
        broadcasts_acks_resumes_and_pages(None).await;
    }

    // The same behaviour with a journal, and what was acked is in the file,
    // one message per line, in seq order.
    #[tokio::test]
    async fn the_durable_baseline_stores_what_it_acks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        broadcasts_acks_resumes_and_pages(Some(&path)).await;
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(stored.len() as u64, JOURNAL_BYTES);
        let lines: Vec<serde_json::Value> = stored
            .split(|b| *b == b'\n')
            .take_while(|line| line.first().is_some_and(|b| *b != 0))
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        let seqs: Vec<u64> = lines.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
        assert_eq!(lines[59]["text"], "m59");
    }

    // The ack is the promise: when it arrives, the message is in the file.
    #[tokio::test]
    async fn a_durable_ack_comes_after_the_message_is_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let journal = path.clone();
        tokio::spawn(async move { serve(listener, Some(&journal)).await });
        let mut a = Conn::connect(&url, &Credential::default()).await.unwrap();
        assert_eq!(next_frame(&mut a).await["type"], "welcome");
        for i in 0..5 {
            let text = format!("kept {i}");
            a.send(wire::send("闲聊", &text, &format!("k{i}")))
                .await
                .unwrap();
            while next_frame(&mut a).await["type"] != "ack" {}
            let stored = std::fs::read(&path).unwrap();
            let needle = format!("\"text\":\"{text}\"");
            assert!(
                stored.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "acked {text:?} before it was in the journal"
            );
        }
    }

    // An existing file is not overwritten: the journal is always new.
    #[tokio::test]
    async fn the_durable_baseline_refuses_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        std::fs::write(&path, b"keep").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let e = serve(listener, Some(&path)).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
    }

    async fn broadcasts_acks_resumes_and_pages(durable: Option<&Path>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let durable = durable.map(Path::to_path_buf);
        tokio::spawn(async move { serve(listener, durable.as_deref()).await });
        let cred = Credential::default();
        let mut a = Conn::connect(&url, &cred).await.unwrap();
        let mut b = Conn::connect(&url, &cred).await.unwrap();
        for c in [&mut a, &mut b] {
            assert_eq!(next_frame(c).await["type"], "welcome");
            c.send(wire::join("闲聊", None)).await.unwrap();
            let joined = next_frame(c).await;
            assert_eq!(joined["type"], "joined");
            assert_eq!(joined["messages"], json!([]));
        }
        for i in 0..60 {
            a.send(wire::send("闲聊", &format!("m{i}"), &format!("c{i}")))
                .await
                .unwrap();
        }
        let mut acks = 0;
        let mut seqs_a = vec![];
        while seqs_a.len() < 60 || acks < 60 {
            let f = next_frame(&mut a).await;
            match f["type"].as_str().unwrap() {
                "ack" => acks += 1,
                "message" => seqs_a.push(f["seq"].as_u64().unwrap()),
                other => panic!("{other}"),
            }
        }
        assert_eq!(seqs_a, (1..=60).collect::<Vec<_>>());
        for s in 1..=60 {
            assert_eq!(next_frame(&mut b).await["seq"], s);
        }
        b.send(wire::history("闲聊", 41, 50)).await.unwrap();
        let page = next_frame(&mut b).await;
        let seqs: Vec<u64> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
        assert_eq!(page["more"], false);
        let mut c = Conn::connect(&url, &cred).await.unwrap();
        next_frame(&mut c).await;
        c.send(wire::join("闲聊", Some(55))).await.unwrap();
        let resumed = next_frame(&mut c).await;
        let seqs: Vec<u64> = resumed["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (56..=60).collect::<Vec<_>>());
    }
}
