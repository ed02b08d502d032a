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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
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

/// One room: its messages (serialised, `log[i]` has seq `i + 1`) and who follows it.
#[derive(Default)]
struct Room {
    log: Vec<Utf8Bytes>,
    members: Vec<(u64, Outbox)>,
}

/// Every room, behind one lock: held only to append and to queue frames
/// (unbounded sends never wait), never across an `.await`.
#[derive(Default)]
struct Hub {
    rooms: Mutex<HashMap<String, Room>>,
    next_id: AtomicU64,
}

/// Serves the baseline on `listener` until the process is killed.
///
/// # Errors
/// When accepting fails for good.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let hub = Arc::new(Hub::default());
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
/// When the address cannot be bound.
pub async fn run(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve(listener).await
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
        let seq = room.log.len() as u64 + 1;
        let mut message = json!({
            "type": "message", "room": name, "seq": seq, "from": from,
            "text": body, "ts": ts, "kind": "chat",
        });
        if let Some(cid) = cid {
            message["cid"] = json!(cid);
        }
        let bytes = Utf8Bytes::from(message.to_string());
        room.log.push(bytes.clone());
        for (_, member) in &room.members {
            let _ = member.send(Message::Text(bytes.clone()));
        }
        if let Some(cid) = cid {
            let _ = tx.send(text(
                &json!({"type": "ack", "cid": cid, "room": name, "seq": seq}),
            ));
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        tokio::spawn(serve(listener));
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
