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
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, Row as _, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Kind, classify, parse, shared_store_error, store_error};
use crate::rows::{message_kind, seq_from_db};
use crate::tx::{Statement, WriteTx};

/// Most appends stored in one transaction. Under load this is what bounds
/// the rate: messages to many rooms land on as many pages of `messages` and
/// of the cid index, every page a group dirties is written to the WAL once
/// per commit, so a bigger group writes fewer pages per message (groups of
/// 512 took ≈ 50 ms and capped `ingest` at ≈ 9,000 messages/s). Readers
/// never wait for a group (WAL); other writes (a join, an admin command)
/// wait at most one group's commit, a few hundred ms at this size.
pub(crate) const MAX_GROUP: usize = 4096;

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

/// Where the writer's groups run.
pub(crate) enum Target {
    /// A connection of the writer's own, on a database file. Not a pool of
    /// one: sqlx's pool pings a connection's thread every time it takes the
    /// connection back, a third round trip per group besides the group's
    /// two. Reopened before the next group when a group left it unclean.
    Own {
        conn: Option<SqliteConnection>,
        /// Boxed: far larger than the other variant, and only read to reopen.
        options: Box<SqliteConnectOptions>,
    },
    /// The pool, whose one connection is an in-memory database.
    Pool(SqlitePool),
}

impl Target {
    /// A target on a connection of its own, opened now with `options`
    /// (so that a database the writer cannot open fails at start-up).
    pub(crate) async fn open(options: SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let conn = SqliteConnection::connect_with(&options).await?;
        Ok(Target::Own {
            conn: Some(conn),
            options: Box::new(options),
        })
    }

    /// Closes the writer's own connection, if it has one.
    async fn close(self) {
        if let Target::Own {
            conn: Some(conn), ..
        } = self
        {
            // Best effort: the file is consistent either way.
            let _ = conn.close().await;
        }
    }
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
    /// Starts the writer task on `target`.
    pub(crate) fn spawn(target: Target) -> (Self, JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(target, rx));
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

async fn run(mut target: Target, mut rx: mpsc::Receiver<Command>) {
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
        store_group(&mut target, jobs).await;
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
            target.close().await;
            for done in closing {
                let _ = done.send(());
            }
            return;
        }
    }
    target.close().await;
}

/// Why a group's transaction did not commit.
enum GroupFailure {
    /// Before any append ran (no connection, no write lock): the same for all.
    Start(sqlx::Error),
    /// While storing the appends or committing them.
    During(sqlx::Error),
}

/// Stores a group and answers every caller in it.
async fn store_group(target: &mut Target, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let messages: Vec<&NewMessage> = jobs.iter().map(|j| &j.message).collect();
    let answers = match try_group(target, &messages).await {
        Ok(answers) => answers,
        Err(GroupFailure::During(e)) if jobs.len() > 1 && classify(&e) != Kind::Unavailable => {
            tracing::warn!(error = %e, size = jobs.len(), "group commit failed; storing its appends one by one");
            let mut answers = Vec::with_capacity(jobs.len());
            for message in &messages {
                answers.push(match try_group(target, &[message]).await {
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
    target: &mut Target,
    messages: &[&NewMessage],
) -> Result<Vec<StoreResult<Appended>>, GroupFailure> {
    match target {
        Target::Own {
            conn: slot,
            options,
        } => {
            let conn = match slot {
                Some(conn) => conn,
                None => slot.insert(
                    SqliteConnection::connect_with(&**options)
                        .await
                        .map_err(GroupFailure::Start)?,
                ),
            };
            let result = match store_messages(conn, messages).await {
                Ok((answers, finish)) => finish.execute(&mut *conn).await.map(|_| answers),
                Err(e) => Err(e),
            };
            let Err(e) = result else {
                return result.map_err(GroupFailure::During);
            };
            // A connection whose ROLLBACK failed may still hold a
            // transaction (or none was open): the next group gets a new
            // one rather than risk either.
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err()
                && let Some(broken) = slot.take()
            {
                let _ = broken.close().await;
            }
            Err(GroupFailure::During(e))
        }
        Target::Pool(pool) => {
            let mut tx = WriteTx::acquire(pool).await.map_err(GroupFailure::Start)?;
            match store_messages(tx.conn(), messages).await {
                Ok((answers, insert)) => {
                    tx.commit_with(insert).await.map_err(GroupFailure::During)?;
                    Ok(answers)
                }
                Err(e) => {
                    tx.rollback().await;
                    Err(GroupFailure::During(e))
                }
            }
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

/// Begins the group's transaction, finds the sends stored by an earlier
/// group, and moves each room's counter past the group's new messages: one
/// round trip to the connection's thread. The two `SELECT`-like statements
/// return rows of different widths (5 and 2 columns), which tells them apart.
///
/// The counter moves by the group's new messages of the room that are not
/// stored already, the same test as the first statement's, in the same
/// transaction: both statements see the same set.
const BEGIN_AND_RESERVE: &str = "BEGIN IMMEDIATE; \
     SELECT j.key, m.seq, m.text, m.ts, m.kind \
     FROM jsonb_each(?1) AS j \
     JOIN messages AS m INDEXED BY messages_by_cid \
       ON m.room = j.value ->> 0 AND m.sender = j.value ->> 1 AND m.cid = j.value ->> 2; \
     UPDATE rooms SET last_seq = last_seq + j.n \
     FROM (SELECT e.value ->> 0 AS room, count(*) AS n FROM jsonb_each(?2) AS e \
           WHERE NOT EXISTS (SELECT 1 FROM messages AS m INDEXED BY messages_by_cid \
                             WHERE m.room = e.value ->> 0 AND m.sender = e.value ->> 1 \
                               AND m.cid = e.value ->> 2) \
           GROUP BY 1) AS j \
     WHERE rooms.name = j.room \
     RETURNING name, last_seq";

/// Inserts the new messages and commits: the second and last round trip.
const INSERT_AND_COMMIT: &str = "INSERT INTO messages (room, seq, sender, text, ts, cid, kind) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
            value ->> 5, value ->> 6 \
     FROM jsonb_each(?1); \
     COMMIT";

/// Stores a group of messages: begins the transaction and does everything
/// but the final insert with the COMMIT, which it returns to be run last.
///
/// This is, for the whole group at once, what storing one message is: look
/// up an earlier message with the same (room, sender, cid); otherwise bump
/// the room's `last_seq` and insert the message under the new value. Each
/// statement is fed the group as one JSON array parameter, so the SQL text
/// never changes and stays in the statement cache; and since every hand-off
/// to sqlx's connection thread costs two context switches, more than the
/// SQL for a small group, the statements go in two round trips.
///
/// The error is a failed statement, which spoils the transaction; a
/// missing room is that append's own answer and leaves the rest to commit.
async fn store_messages<'m>(
    conn: &mut SqliteConnection,
    messages: &[&'m NewMessage],
) -> Result<(Vec<StoreResult<Appended>>, Statement), sqlx::Error> {
    let mut answers: Vec<Option<StoreResult<Appended>>> = messages.iter().map(|_| None).collect();

    // Every keyed send (for the earlier ones), and the sends that are new to
    // this group: a send repeated within it is answered by its first
    // occurrence.
    let keyed: Vec<(usize, Key<'m>)> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| key(m).map(|k| (i, k)))
        .collect();
    let keys: Vec<Key<'_>> = keyed.iter().map(|(_, k)| *k).collect();
    let mut first_of: HashMap<Key<'_>, usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    let mut unique: Vec<usize> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if let Some(k) = key(m) {
            if let Some(&first) = first_of.get(&k) {
                repeats.push((i, first));
                continue;
            }
            first_of.insert(k, i);
        }
        unique.push(i);
    }
    let candidates: Vec<(&str, &str, Option<&str>)> = unique
        .iter()
        .map(|&i| {
            let m = messages[i];
            (
                m.room.as_str(),
                m.from.as_str(),
                m.cid.as_ref().map(|c| c.as_str()),
            )
        })
        .collect();

    let rows = sqlx::query(BEGIN_AND_RESERVE)
        .bind(to_json(&keys)?)
        .bind(to_json(&candidates)?)
        .fetch_all(&mut *conn)
        .await?;
    let mut bumped: Vec<(String, i64)> = Vec::new();
    for row in rows {
        if row.len() == 2 {
            bumped.push((row.try_get(0)?, row.try_get(1)?));
            continue;
        }
        let at: i64 = row.try_get(0)?;
        if let Some(&(i, _)) = usize::try_from(at).ok().and_then(|at| keyed.get(at)) {
            answers[i] = Some(earlier_message(
                messages[i],
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            ));
        }
    }

    // The new messages, and each room's first new seq.
    let fresh: Vec<usize> = unique
        .into_iter()
        .filter(|&i| answers[i].is_none())
        .collect();
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for &i in &fresh {
        *counts.entry(messages[i].room.as_str()).or_default() += 1;
    }
    let mut next_seq: HashMap<String, i64> = HashMap::new();
    for (room, last) in bumped {
        let n = counts.get(room.as_str()).copied().unwrap_or(0);
        next_seq.insert(room, last - n + 1);
    }

    // Give the new messages their seqs; a missing room returned no row.
    let mut inserts: Vec<Row<'_>> = Vec::with_capacity(fresh.len());
    for &i in &fresh {
        let m = messages[i];
        let Some(next) = next_seq.get_mut(m.room.as_str()) else {
            answers[i] = Some(Err(StoreError::NotFound));
            continue;
        };
        let seq = *next;
        *next += 1;
        inserts.push((
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
    let finish = if inserts.is_empty() {
        sqlx::query("COMMIT")
    } else {
        sqlx::query(INSERT_AND_COMMIT).bind(to_json(&inserts)?)
    };

    // Repeats within the group get their first occurrence's answer.
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

    let answers = answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(StoreError::unexpected("an append was not answered"))))
        .collect();
    Ok((answers, finish))
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

    use std::str::FromStr as _;
    use std::time::Duration;

    use chat_domain::{MessageLog, RoomRepository, Seq};
    use chat_testkit::fixtures::{cid, create_users, message, new_room, room_name};
    use tempfile::TempDir;

    use super::*;
    use crate::SqliteStore;

    fn url(dir: &TempDir) -> String {
        format!("sqlite://{}", dir.path().join("writer.db").display())
    }

    /// A writer's connection of its own to the store in `dir`.
    async fn target(dir: &TempDir) -> Target {
        let options = SqliteConnectOptions::from_str(&url(dir))
            .unwrap()
            .busy_timeout(Duration::from_secs(5));
        Target::open(options).await.unwrap()
    }

    /// A store with users alice and bob and rooms `lobby` and `side`.
    async fn store() -> (TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::connect(&url(&dir)).await.unwrap();
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

    /// Runs `messages` through a writer as exactly one group.
    async fn one_group(dir: &TempDir, messages: Vec<NewMessage>) -> Vec<StoreResult<Appended>> {
        let (jobs, answers): (Vec<Job>, Vec<_>) = messages
            .into_iter()
            .map(|message| {
                let (reply, answer) = oneshot::channel();
                (Job { message, reply }, answer)
            })
            .unzip();
        let mut target = target(dir).await;
        store_group(&mut target, jobs).await;
        target.close().await;
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
        let (dir, store) = store().await;
        let answers = one_group(
            &dir,
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

        // A later group finds the cid in the database, and the room's
        // counter moves only by the messages that are new.
        let again = one_group(
            &dir,
            vec![
                with_cid(message("lobby", "alice", "retry"), "x"),
                with_cid(message("lobby", "alice", "new"), "y"),
                with_cid(message("lobby", "alice", "retry again"), "x"),
                message("lobby", "bob", "no cid"),
            ],
        )
        .await;
        assert_eq!(seq_of(&again[0]), (1, true));
        assert_eq!(again[0].as_ref().unwrap().message.text.as_str(), "one");
        assert_eq!(seq_of(&again[1]), (4, false));
        assert_eq!(seq_of(&again[2]), (1, true));
        assert_eq!(seq_of(&again[3]), (5, false));
        assert_eq!(
            store.last_seq(&room_name("lobby")).await.unwrap(),
            Seq::new(5)
        );
        assert_eq!(texts(&store, "lobby").await.len(), 5);
    }

    #[tokio::test]
    async fn a_statement_failing_for_one_append_fails_that_append_alone() {
        let (dir, store) = store().await;
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
            &dir,
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
        let (dir, _store) = store().await;
        let (writer, task) = Writer::spawn(target(&dir).await);
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
