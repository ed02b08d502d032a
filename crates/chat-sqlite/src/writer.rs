//! The single writer that stores appended messages with group commit.
//!
//! Every `append` goes through one task. It takes whatever appends are queued
//! (up to [`MAX_GROUP`]) and stores them in one `BEGIN IMMEDIATE … COMMIT`,
//! so one fsync covers the whole group, and answers each caller only after
//! that COMMIT returned: an `Ok` from `append` means the message is on disk.
//! With one writer there is no lock contention among appends, and a room's
//! seqs are handed out in the order the writer sees its appends.
//!
//! If a group fails, its transaction is rolled back and each append is tried
//! again alone, so one bad append fails by itself. The exception is
//! contention or a closed pool, which would fail every retry the same way.
//!
//! The task ends when the store is dropped (every sender is gone and the
//! queue is drained) or closed ([`Command::Close`]).

use std::collections::HashMap;
use std::sync::Arc;

use chat_domain::{Appended, Message, MessageText, NewMessage, StoreError, StoreResult, Timestamp};
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Kind, classify, parse, shared_store_error, store_error};
use crate::rows::{message_kind, seq_from_db};
use crate::tx::WriteTx;

/// Most appends stored in one transaction. Large enough that one fsync is
/// shared by many messages under load, small enough that a group's
/// transaction stays short and readers never see a long-held write lock.
pub(crate) const MAX_GROUP: usize = 512;

/// How many appends may wait for the writer before callers wait to enqueue:
/// a few groups' worth, so the writer always has the next group ready while
/// a burst beyond that pushes back on the senders.
const QUEUE: usize = 4 * MAX_GROUP;

/// What the writer is asked to do.
pub(crate) enum Command {
    /// Store a message and answer on `reply`.
    Append {
        message: NewMessage,
        reply: oneshot::Sender<StoreResult<Appended>>,
    },
    /// Finish the appends received so far, refuse the rest, and stop.
    Close { done: oneshot::Sender<()> },
}

/// The sending side of the writer's queue.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Command>,
}

/// The writer's answer when it is no longer running.
#[derive(Debug, thiserror::Error)]
#[error("the SQLite store is closed")]
struct Closed;

impl Writer {
    /// Starts the writer task over `pool`.
    pub(crate) fn spawn(pool: SqlitePool) -> (Self, JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(pool, rx));
        (Self { queue }, task)
    }

    /// Queues an append and waits until it is committed or refused.
    pub(crate) async fn append(&self, message: NewMessage) -> StoreResult<Appended> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Command::Append { message, reply })
            .await
            .map_err(|_| StoreError::unavailable(Closed))?;
        // A dropped reply means the writer stopped before it reached this
        // append, so nothing was stored.
        answer.await.map_err(|_| StoreError::unavailable(Closed))?
    }

    /// Asks the writer to stop after the appends queued so far, and waits.
    pub(crate) async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.queue.send(Command::Close { done }).await.is_ok() {
            // An error only means the writer already stopped.
            let _ = finished.await;
        }
    }
}

/// One queued append.
struct Job {
    message: NewMessage,
    reply: oneshot::Sender<StoreResult<Appended>>,
}

async fn run(pool: SqlitePool, mut rx: mpsc::Receiver<Command>) {
    let mut commands = Vec::with_capacity(MAX_GROUP);
    // `recv_many` returns 0 only once every sender is gone and the queue is
    // empty: the store was dropped and nothing is left to store.
    while rx.recv_many(&mut commands, MAX_GROUP).await > 0 {
        let mut jobs = Vec::with_capacity(commands.len());
        let mut closing = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Append { message, reply } => jobs.push(Job { message, reply }),
                Command::Close { done } => closing.push(done),
            }
        }
        store_group(&pool, jobs).await;
        if !closing.is_empty() {
            rx.close();
            while let Ok(command) = rx.try_recv() {
                match command {
                    Command::Append { reply, .. } => {
                        let _ = reply.send(Err(StoreError::unavailable(Closed)));
                    }
                    Command::Close { done } => closing.push(done),
                }
            }
            for done in closing {
                let _ = done.send(());
            }
            return;
        }
    }
}

/// Why a group's transaction did not commit.
enum GroupFailure {
    /// Before any append ran (no connection, no write lock): the same for all.
    Start(sqlx::Error),
    /// While storing the appends or committing them.
    During(sqlx::Error),
}

/// Stores a group and answers every caller in it.
async fn store_group(pool: &SqlitePool, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let messages: Vec<&NewMessage> = jobs.iter().map(|j| &j.message).collect();
    let answers = match try_group(pool, &messages).await {
        Ok(answers) => answers,
        Err(GroupFailure::During(e)) if jobs.len() > 1 && classify(&e) != Kind::Unavailable => {
            tracing::warn!(error = %e, size = jobs.len(), "group commit failed; storing its appends one by one");
            let mut answers = Vec::with_capacity(jobs.len());
            for message in &messages {
                answers.push(match try_group(pool, &[message]).await {
                    Ok(mut one) => one.pop().unwrap_or_else(|| {
                        Err(StoreError::unexpected("group commit lost an answer"))
                    }),
                    Err(GroupFailure::Start(e) | GroupFailure::During(e)) => Err(store_error(e)),
                });
            }
            answers
        }
        Err(GroupFailure::Start(e) | GroupFailure::During(e)) => {
            let e = Arc::new(e);
            jobs.iter().map(|_| Err(shared_store_error(&e))).collect()
        }
    };
    for (job, answer) in jobs.into_iter().zip(answers) {
        // The caller may have gone away (a closed socket); the message is
        // stored regardless, and a retry with the same cid finds it.
        let _ = job.reply.send(answer);
    }
}

/// Stores `messages` in one transaction; one answer per message, in order.
async fn try_group(
    pool: &SqlitePool,
    messages: &[&NewMessage],
) -> Result<Vec<StoreResult<Appended>>, GroupFailure> {
    let mut tx = WriteTx::begin(pool).await.map_err(GroupFailure::Start)?;
    match store_messages(tx.conn(), messages).await {
        Ok(answers) => {
            tx.commit().await.map_err(GroupFailure::During)?;
            Ok(answers)
        }
        Err(e) => {
            tx.rollback().await;
            Err(GroupFailure::During(e))
        }
    }
}

/// The identity of a send for idempotency: room, sender, cid.
type Key<'a> = (&'a str, &'a str, &'a str);

fn key(m: &NewMessage) -> Option<Key<'_>> {
    m.cid
        .as_ref()
        .map(|c| (m.room.as_str(), m.from.as_str(), c.as_str()))
}

/// Stores a group of messages inside the writer's open transaction.
///
/// This is, for the whole group at once, what storing one message is: look
/// up an earlier message with the same (room, sender, cid); otherwise bump
/// the room's `last_seq` and insert the message under the new value. Doing
/// it set-wise costs three statements per group instead of three per
/// message, each fed the group as one JSON array parameter so the SQL text
/// never changes and stays in the statement cache.
///
/// The outer error is a failed statement, which spoils the transaction; an
/// inner error is one append's own answer (a missing room), which leaves
/// the rest of the group to commit.
async fn store_messages(
    conn: &mut SqliteConnection,
    messages: &[&NewMessage],
) -> Result<Vec<StoreResult<Appended>>, sqlx::Error> {
    let mut answers: Vec<Option<StoreResult<Appended>>> = messages.iter().map(|_| None).collect();

    // 1. Sends already stored by an earlier group.
    let keyed: Vec<(usize, Key<'_>)> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| key(m).map(|k| (i, k)))
        .collect();
    if !keyed.is_empty() {
        let keys: Vec<Key<'_>> = keyed.iter().map(|(_, k)| *k).collect();
        // INDEXED BY turns a plan that would not use the cid index into an
        // error at prepare time rather than a silent scan of the room.
        let earlier: Vec<(i64, i64, String, i64, String)> = sqlx::query_as(
            "SELECT j.key, m.seq, m.text, m.ts, m.kind \
             FROM jsonb_each(?1) AS j \
             JOIN messages AS m INDEXED BY messages_by_cid \
               ON m.room = j.value ->> 0 AND m.sender = j.value ->> 1 AND m.cid = j.value ->> 2",
        )
        .bind(to_json(&keys)?)
        .fetch_all(&mut *conn)
        .await?;
        for (at, seq, text, ts, kind) in earlier {
            if let Some(&(i, _)) = usize::try_from(at).ok().and_then(|at| keyed.get(at)) {
                answers[i] = Some(earlier_message(messages[i], seq, text, ts, kind));
            }
        }
    }

    // 2. Which messages are new, and how many each room gets. A send
    //    repeated within this group is answered by its first occurrence.
    let mut first_of: HashMap<Key<'_>, usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    let mut fresh: Vec<usize> = Vec::new();
    let mut per_room: Vec<(&str, i64)> = Vec::new();
    let mut room_slot: HashMap<&str, usize> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        if answers[i].is_some() {
            continue;
        }
        if let Some(k) = key(m) {
            if let Some(&first) = first_of.get(&k) {
                repeats.push((i, first));
                continue;
            }
            first_of.insert(k, i);
        }
        fresh.push(i);
        let slot = *room_slot.entry(m.room.as_str()).or_insert_with(|| {
            per_room.push((m.room.as_str(), 0));
            per_room.len() - 1
        });
        per_room[slot].1 += 1;
    }

    // 3. Reserve each room's seqs by moving its counter; a missing room
    //    returns no row.
    let mut next_seq: HashMap<String, i64> = HashMap::new();
    if !per_room.is_empty() {
        let bumped: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE rooms SET last_seq = last_seq + j.n \
             FROM (SELECT value ->> 0 AS room, value ->> 1 AS n FROM jsonb_each(?1)) AS j \
             WHERE rooms.name = j.room \
             RETURNING name, last_seq",
        )
        .bind(to_json(&per_room)?)
        .fetch_all(&mut *conn)
        .await?;
        let counts: HashMap<&str, i64> = per_room.iter().copied().collect();
        for (room, last) in bumped {
            let n = counts.get(room.as_str()).copied().unwrap_or(0);
            next_seq.insert(room, last - n + 1);
        }
    }

    // 4. Insert the new messages under their seqs.
    let mut rows: Vec<Row<'_>> = Vec::with_capacity(fresh.len());
    for &i in &fresh {
        let m = messages[i];
        let Some(next) = next_seq.get_mut(m.room.as_str()) else {
            answers[i] = Some(Err(StoreError::NotFound));
            continue;
        };
        let seq = *next;
        *next += 1;
        rows.push((
            m.room.as_str(),
            seq,
            m.from.as_str(),
            m.text.as_str(),
            m.ts.as_millis(),
            m.cid.as_ref().map(|c| c.as_str()),
            m.kind.as_str(),
        ));
        answers[i] = Some(seq_from_db(seq).map(|seq| Appended {
            message: Message {
                room: m.room.clone(),
                seq,
                from: m.from.clone(),
                text: m.text.clone(),
                ts: m.ts,
                cid: m.cid.clone(),
                kind: m.kind,
            },
            duplicate: false,
        }));
    }
    if !rows.is_empty() {
        sqlx::query(
            "INSERT INTO messages (room, seq, sender, text, ts, cid, kind) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                    value ->> 5, value ->> 6 \
             FROM jsonb_each(?1)",
        )
        .bind(to_json(&rows)?)
        .execute(&mut *conn)
        .await?;
    }

    // 5. Repeats within the group get their first occurrence's answer.
    for (i, first) in repeats {
        answers[i] = Some(match &answers[first] {
            Some(Ok(appended)) => Ok(Appended {
                message: appended.message.clone(),
                duplicate: true,
            }),
            Some(Err(StoreError::NotFound)) => Err(StoreError::NotFound),
            _ => Err(StoreError::unexpected(
                "a repeated send lost its first answer",
            )),
        });
    }

    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(StoreError::unexpected("an append was not answered"))))
        .collect())
}

/// A message row as inserted: room, seq, sender, text, ts, cid, kind.
type Row<'a> = (
    &'a str,
    i64,
    &'a str,
    &'a str,
    i64,
    Option<&'a str>,
    &'a str,
);

/// A statement parameter holding a whole group as a JSON array of arrays.
fn to_json<T: serde::Serialize>(rows: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// The answer for a repeated cid: the message as first stored.
fn earlier_message(
    m: &NewMessage,
    seq: i64,
    text: String,
    ts: i64,
    kind: String,
) -> StoreResult<Appended> {
    Ok(Appended {
        message: Message {
            room: m.room.clone(),
            seq: seq_from_db(seq)?,
            from: m.from.clone(),
            text: parse(text, MessageText::parse, "message text")?,
            ts: Timestamp::from_millis(ts),
            cid: m.cid.clone(),
            kind: message_kind(kind)?,
        },
        duplicate: true,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use chat_domain::{MessageLog, RoomRepository, Seq};
    use chat_testkit::fixtures::{cid, create_users, message, new_room, room_name};
    use tempfile::TempDir;

    use super::*;
    use crate::SqliteStore;

    /// A store with users alice and bob and rooms `lobby` and `side`.
    async fn store() -> (TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("writer.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        create_users(&store, &["alice", "bob"]).await;
        for room in ["lobby", "side"] {
            store.create_room(new_room(room, "alice")).await.unwrap();
        }
        (dir, store)
    }

    fn with_cid(mut m: NewMessage, id: &str) -> NewMessage {
        m.cid = Some(cid(id));
        m
    }

    /// Runs `messages` through the writer as exactly one group.
    async fn one_group(
        store: &SqliteStore,
        messages: Vec<NewMessage>,
    ) -> Vec<StoreResult<Appended>> {
        let (jobs, answers): (Vec<Job>, Vec<_>) = messages
            .into_iter()
            .map(|message| {
                let (reply, answer) = oneshot::channel();
                (Job { message, reply }, answer)
            })
            .unzip();
        store_group(&store.writer_pool, jobs).await;
        let mut out = Vec::new();
        for answer in answers {
            out.push(answer.await.unwrap());
        }
        out
    }

    fn seq_of(answer: &StoreResult<Appended>) -> (u64, bool) {
        let appended = answer.as_ref().unwrap();
        (appended.message.seq.get(), appended.duplicate)
    }

    async fn texts(store: &SqliteStore, room: &str) -> Vec<(u64, String)> {
        let page = store.after(&room_name(room), Seq::ZERO, 100).await.unwrap();
        page.messages
            .into_iter()
            .map(|m| (m.seq.get(), m.text.into_string()))
            .collect()
    }

    #[tokio::test]
    async fn one_group_answers_every_append_by_itself() {
        let (_dir, store) = store().await;
        let answers = one_group(
            &store,
            vec![
                with_cid(message("lobby", "alice", "one"), "x"),
                message("ghost", "alice", "nobody hears this"),
                message("lobby", "bob", "two"),
                message("side", "bob", "elsewhere"),
                with_cid(message("lobby", "alice", "one, again"), "x"),
                with_cid(message("ghost", "bob", "lost twice"), "g"),
                with_cid(message("ghost", "bob", "lost twice"), "g"),
                with_cid(message("lobby", "bob", "same cid, other sender"), "x"),
            ],
        )
        .await;
        assert_eq!(seq_of(&answers[0]), (1, false));
        assert!(matches!(answers[1], Err(StoreError::NotFound)));
        assert_eq!(seq_of(&answers[2]), (2, false));
        assert_eq!(seq_of(&answers[3]), (1, false));
        // A repeat within the group is the first one, text and all.
        assert_eq!(seq_of(&answers[4]), (1, true));
        assert_eq!(answers[4].as_ref().unwrap().message.text.as_str(), "one");
        assert!(matches!(answers[5], Err(StoreError::NotFound)));
        assert!(matches!(answers[6], Err(StoreError::NotFound)));
        assert_eq!(seq_of(&answers[7]), (3, false));
        assert_eq!(
            texts(&store, "lobby").await,
            [
                (1, "one".to_owned()),
                (2, "two".to_owned()),
                (3, "same cid, other sender".to_owned())
            ]
        );
        assert_eq!(texts(&store, "side").await, [(1, "elsewhere".to_owned())]);

        // A later group finds the cid in the database.
        let again = one_group(
            &store,
            vec![with_cid(message("lobby", "alice", "retry"), "x")],
        )
        .await;
        assert_eq!(seq_of(&again[0]), (1, true));
        assert_eq!(again[0].as_ref().unwrap().message.text.as_str(), "one");
        assert_eq!(
            store.last_seq(&room_name("lobby")).await.unwrap(),
            Seq::new(3)
        );
    }

    #[tokio::test]
    async fn a_statement_failing_for_one_append_fails_that_append_alone() {
        let (_dir, store) = store().await;
        // Stands in for any failure particular to one message: the group's
        // INSERT aborts, and only a retry one by one can tell who caused it.
        sqlx::query(
            "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.text = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned message'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let answers = one_group(
            &store,
            vec![
                message("lobby", "alice", "before"),
                message("lobby", "bob", "poison"),
                message("ghost", "bob", "nowhere"),
                with_cid(message("lobby", "alice", "after"), "a"),
                with_cid(message("lobby", "alice", "after"), "a"),
            ],
        )
        .await;
        assert_eq!(seq_of(&answers[0]), (1, false));
        assert!(matches!(answers[1], Err(StoreError::Unexpected(_))));
        assert!(matches!(answers[2], Err(StoreError::NotFound)));
        assert_eq!(seq_of(&answers[3]), (2, false));
        assert_eq!(seq_of(&answers[4]), (2, true));
        // The failed append took no seq: no gap.
        assert_eq!(
            texts(&store, "lobby").await,
            [(1, "before".to_owned()), (2, "after".to_owned())]
        );
        assert_eq!(
            store.last_seq(&room_name("lobby")).await.unwrap(),
            Seq::new(2)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_answers_its_queue_and_stops_when_its_senders_are_gone() {
        let (_dir, store) = store().await;
        let (writer, task) = Writer::spawn(store.writer_pool.clone());
        let appends: Vec<_> = (0..200)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    writer
                        .append(message("lobby", "alice", &format!("m{i}")))
                        .await
                        .unwrap()
                })
            })
            .collect();
        drop(writer);
        let mut seqs = Vec::new();
        for append in appends {
            seqs.push(append.await.unwrap().message.seq.get());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the writer stops once every sender is dropped")
            .unwrap();
    }

    #[tokio::test]
    async fn a_closed_store_refuses_appends_as_unavailable() {
        let (_dir, store) = store().await;
        store
            .append(message("lobby", "alice", "kept"))
            .await
            .unwrap();
        store.close().await;
        assert!(matches!(
            store.append(message("lobby", "alice", "too late")).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.last_seq(&room_name("lobby")).await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
