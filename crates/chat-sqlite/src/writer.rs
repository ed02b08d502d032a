//! The single writer that stores appended messages with group commit.
//!
//! Every `append` goes through one writer. It takes whatever appends are
//! queued (up to [`MAX_GROUP`]) and stores them in one `BEGIN IMMEDIATE …
//! COMMIT`, so one fsync covers the whole group, and answers each caller only
//! after that COMMIT returned: an `Ok` from `append` means the message is on
//! disk. With one writer there is no lock contention among appends, and a
//! room's seqs are handed out in the order the writer sees its appends.
//!
//! On a database file the writer is a thread of its own holding a rusqlite
//! connection of its own ([`Own`]): the group's statements run right there,
//! with no hand-off to a driver's thread (sqlx runs each connection on a
//! thread of its own, so every statement was a round trip there and back,
//! and every row of an answer a message on a channel). In memory the pool's
//! one connection is the database, so the writer is a tokio task on the pool
//! ([`Target::Pool`]), with the same statements sent in two round trips.
//!
//! If a group fails, its transaction is rolled back and each append is tried
//! again alone, so one bad append fails by itself. The exception is
//! contention or a closed pool, which would fail every retry the same way.
//!
//! The writer ends when the store is dropped (every sender is gone and the
//! queue is drained) or closed ([`Command::Close`]).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chat_domain::{Appended, Message, MessageText, NewMessage, StoreError, StoreResult, Timestamp};
use sqlx::{Row as _, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{
    Kind, WriteError, classify_write, parse, shared_store_error, write_store_error,
};
use crate::readers::open_file;
use crate::rows::{message_kind, seq_from_db};
use crate::tx::WriteTx;

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
    /// A connection of the writer's own, on a database file.
    Own(Own),
    /// The pool, whose one connection is an in-memory database.
    Pool(SqlitePool),
}

/// How the writer's own connection is opened: the settings every
/// connection of the store has, plus the writer's own cache.
#[derive(Debug, Clone)]
pub(crate) struct WriterOptions {
    /// The (migrated, WAL-mode) database file.
    pub path: PathBuf,
    /// How long `BEGIN IMMEDIATE` waits for another process's write lock.
    pub busy_timeout: Duration,
    /// `PRAGMA max_page_count`, when capped.
    pub max_page_count: Option<u32>,
}

/// The writer's connection of its own. Not one of the pool's: SQLite drops
/// a connection's page cache whenever another connection wrote, so a writer
/// borrowing whichever pooled connection was free would re-read the pages
/// it is about to update on every group. Reopened before the next group
/// when a group left it unclean.
pub(crate) struct Own {
    conn: Option<rusqlite::Connection>,
    options: WriterOptions,
}

impl Own {
    /// Opens the connection now, so that a database the writer cannot open
    /// fails at start-up.
    pub(crate) fn open(options: WriterOptions) -> rusqlite::Result<Self> {
        Ok(Self {
            conn: Some(connect(&options)?),
            options,
        })
    }

    /// No connection yet: the next group opens one.
    fn closed(options: WriterOptions) -> Self {
        Self {
            conn: None,
            options,
        }
    }

    /// Stores `messages` in one transaction; one answer per message.
    fn try_group(&mut self, messages: &[&NewMessage]) -> Result<Answers, GroupFailure> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot @ None => {
                slot.insert(connect(&self.options).map_err(|e| GroupFailure::Start(e.into()))?)
            }
        };
        let result = store_own(conn, messages);
        if result.is_err() && conn.execute_batch("ROLLBACK").is_err() {
            // A connection whose ROLLBACK failed may still hold a
            // transaction (or none was open): the next group gets a new
            // one rather than risk either.
            self.conn = None;
        }
        result.map_err(GroupFailure::During)
    }
}

/// Opens the writer's connection with every setting the store's
/// connections have (see `SqliteStore::connect_with`).
fn connect(options: &WriterOptions) -> rusqlite::Result<rusqlite::Connection> {
    let conn = open_file(&options.path, options.busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // FULL: every COMMIT is fsynced before it returns (see the crate doc).
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", crate::AUTOCHECKPOINT_PAGES)?;
    conn.pragma_update(None, "cache_size", crate::WRITER_CACHE_SIZE)?;
    // Statement journals (the multi-row statements need them) stay in
    // memory rather than in temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    if let Some(pages) = options.max_page_count {
        conn.pragma_update(None, "max_page_count", pages)?;
    }
    Ok(conn)
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
    /// Starts the writer's task on `target`.
    pub(crate) fn spawn(target: Target) -> (Self, JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let task = match target {
            Target::Own(own) => tokio::spawn(run_own(own, rx)),
            Target::Pool(pool) => tokio::spawn(run_pool(pool, rx)),
        };
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

/// Every append's answer, in the group's order.
type Answers = Vec<StoreResult<Appended>>;

/// One caller's answer, ready to send.
type Reply = (
    oneshot::Sender<StoreResult<Appended>>,
    StoreResult<Appended>,
);

/// The writer on its own connection: a task that takes the queue and runs
/// each group on a blocking thread.
///
/// Why the queue is taken by a task and not by that thread: under load the
/// task waits its turn behind the connections' tasks, and the appends that
/// arrive meanwhile join its next group. A thread taking the queue itself
/// woke for the first append and committed groups of about 16, forty times
/// as many commits for the same load (each with its WAL pages and fsync),
/// and lost a fifth of `ingest` (docs/BENCHMARKS.md, fix 24).
async fn run_own(own: Own, mut rx: mpsc::Receiver<Command>) {
    let options = own.options.clone();
    let mut own = Some(own);
    let mut commands = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut commands, MAX_GROUP).await > 0 {
        let (jobs, mut closing) = split(&mut commands);
        let mut writer = own.take().unwrap_or_else(|| Own::closed(options.clone()));
        let ran = tokio::task::spawn_blocking(move || {
            // Every statement of `Own` runs synchronously, so this future
            // is ready the first time it is polled.
            let replies = poll_once(store_group(jobs, &mut writer));
            (writer, replies)
        })
        .await;
        match ran {
            Ok((writer, replies)) => {
                own = Some(writer);
                match replies {
                    // Sent from this task, not the blocking thread: waking
                    // a caller from outside the runtime is a cross-thread
                    // wake-up each.
                    Some(replies) => send_all(replies),
                    None => tracing::error!("the writer's group did not finish at once"),
                }
            }
            // A panic in the group: its callers see their replies dropped
            // (`Unavailable`), and the next group opens a new connection.
            Err(e) => tracing::error!(error = %e, "the writer's group failed"),
        }
        if !closing.is_empty() {
            drop(own);
            refuse_rest(&mut rx, &mut closing);
            for done in closing {
                let _ = done.send(());
            }
            return;
        }
    }
}

/// The writer on the in-memory pool, as a task.
async fn run_pool(pool: SqlitePool, mut rx: mpsc::Receiver<Command>) {
    let mut commands = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut commands, MAX_GROUP).await > 0 {
        let (jobs, mut closing) = split(&mut commands);
        send_all(store_group(jobs, &mut PoolGroups(&pool)).await);
        if !closing.is_empty() {
            refuse_rest(&mut rx, &mut closing);
            for done in closing {
                let _ = done.send(());
            }
            return;
        }
    }
}

/// Polls `future` once: its output if it was ready.
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let future = pin!(future);
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Sorts the commands taken from the queue into appends and close requests.
fn split(commands: &mut Vec<Command>) -> (Vec<Job>, Vec<oneshot::Sender<()>>) {
    let mut jobs = Vec::with_capacity(commands.len());
    let mut closing = Vec::new();
    for command in commands.drain(..) {
        match command {
            Command::Append { message, reply } => jobs.push(Job { message, reply }),
            Command::Close { done } => closing.push(done),
        }
    }
    (jobs, closing)
}

/// After a close: refuses whatever is still queued, collecting the closers
/// among it.
fn refuse_rest(rx: &mut mpsc::Receiver<Command>, closing: &mut Vec<oneshot::Sender<()>>) {
    rx.close();
    while let Ok(command) = rx.try_recv() {
        match command {
            Command::Append { reply, .. } => {
                let _ = reply.send(Err(StoreError::unavailable(Closed)));
            }
            Command::Close { done } => closing.push(done),
        }
    }
}

/// Sends every caller its answer.
fn send_all(replies: Vec<Reply>) {
    for (reply, answer) in replies {
        // The caller may have gone away (a closed socket); the message is
        // stored regardless, and a retry with the same cid finds it.
        let _ = reply.send(answer);
    }
}

/// Why a group's transaction did not commit.
enum GroupFailure {
    /// Before any append ran (no connection, no write lock): the same for all.
    Start(WriteError),
    /// While storing the appends or committing them.
    During(WriteError),
}

/// Where a group is tried: the writer's own connection or the pool.
trait Groups {
    /// Stores `messages` in one transaction; one answer per message, in
    /// order. On failure nothing of the group is stored.
    async fn try_group(&mut self, messages: &[&NewMessage]) -> Result<Answers, GroupFailure>;
}

impl Groups for Own {
    async fn try_group(&mut self, messages: &[&NewMessage]) -> Result<Answers, GroupFailure> {
        Own::try_group(self, messages)
    }
}

/// The in-memory pool as a place to try groups.
struct PoolGroups<'p>(&'p SqlitePool);

impl Groups for PoolGroups<'_> {
    async fn try_group(&mut self, messages: &[&NewMessage]) -> Result<Answers, GroupFailure> {
        try_pool_group(self.0, messages).await
    }
}

/// Stores a group: every caller's answer.
async fn store_group(jobs: Vec<Job>, groups: &mut impl Groups) -> Vec<Reply> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let messages: Vec<&NewMessage> = jobs.iter().map(|j| &j.message).collect();
    let answers = match groups.try_group(&messages).await {
        Ok(answers) => answers,
        Err(GroupFailure::During(e))
            if jobs.len() > 1 && classify_write(&e) != Kind::Unavailable =>
        {
            tracing::warn!(error = %e, size = jobs.len(), "group commit failed; storing its appends one by one");
            let mut answers = Vec::with_capacity(jobs.len());
            for message in &messages {
                answers.push(match groups.try_group(&[message]).await {
                    Ok(mut one) => one.pop().unwrap_or_else(|| {
                        Err(StoreError::unexpected("group commit lost an answer"))
                    }),
                    Err(GroupFailure::Start(e) | GroupFailure::During(e)) => {
                        Err(write_store_error(e))
                    }
                });
            }
            answers
        }
        Err(GroupFailure::Start(e) | GroupFailure::During(e)) => {
            let e = Arc::new(e);
            jobs.iter().map(|_| Err(shared_store_error(&e))).collect()
        }
    };
    jobs.into_iter().map(|job| job.reply).zip(answers).collect()
}

/// The identity of a send for idempotency: room, sender, cid.
type Key<'a> = (&'a str, &'a str, &'a str);

fn key(m: &NewMessage) -> Option<Key<'_>> {
    m.cid
        .as_ref()
        .map(|c| (m.room.as_str(), m.from.as_str(), c.as_str()))
}

// The group's statements. Each is fed the group as one JSON array
// parameter, so the SQL text never changes and stays in the statement
// cache. Written once as macros because the pool's writer sends the first
// two (and the last two) as one multi-statement query, where the second
// statement's parameter is `?2`.

/// The sends of the group (`jsonb_each($keys)`: room, sender, cid) stored
/// by an earlier group: the key's index, and the stored seq, text, ts, kind.
macro_rules! earlier_sql {
    ($keys:literal) => {
        concat!(
            "SELECT j.key, m.seq, m.text, m.ts, m.kind FROM jsonb_each(",
            $keys,
            ") AS j JOIN messages AS m INDEXED BY messages_by_cid \
             ON m.room = j.value ->> 0 AND m.sender = j.value ->> 1 AND m.cid = j.value ->> 2"
        )
    };
}

/// Moves each room's counter past the group's new messages
/// (`jsonb_each($candidates)`: room, sender, cid or null), returning the
/// new counters. The counter moves by the group's messages of the room that
/// are not stored already, the same test as the earlier statement's, in the
/// same transaction: both see the same set.
macro_rules! reserve_sql {
    ($candidates:literal) => {
        concat!(
            "UPDATE rooms SET last_seq = last_seq + j.n \
             FROM (SELECT e.value ->> 0 AS room, count(*) AS n FROM jsonb_each(",
            $candidates,
            ") AS e \
                   WHERE NOT EXISTS (SELECT 1 FROM messages AS m INDEXED BY messages_by_cid \
                                     WHERE m.room = e.value ->> 0 AND m.sender = e.value ->> 1 \
                                       AND m.cid = e.value ->> 2) \
                   GROUP BY 1) AS j \
             WHERE rooms.name = j.room \
             RETURNING name, last_seq"
        )
    };
}

/// Inserts the new messages: room, seq, sender, text, ts, cid, kind.
macro_rules! insert_sql {
    () => {
        "INSERT INTO messages (room, seq, sender, text, ts, cid, kind) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                value ->> 5, value ->> 6 \
         FROM jsonb_each(?1)"
    };
}

const EARLIER: &str = earlier_sql!("?1");
const RESERVE: &str = reserve_sql!("?1");
const INSERT: &str = insert_sql!();

/// The pool's first round trip: begins the group's transaction, finds the
/// sends stored by an earlier group, and moves each room's counter. The two
/// `SELECT`-like statements return rows of different widths (5 and 2
/// columns), which tells them apart.
const BEGIN_AND_RESERVE: &str = concat!(
    "BEGIN IMMEDIATE; ",
    earlier_sql!("?1"),
    "; ",
    reserve_sql!("?2")
);

/// The pool's second and last round trip.
const INSERT_AND_COMMIT: &str = concat!(insert_sql!(), "; COMMIT");

/// A row of the reservation.
enum Reserved {
    /// A keyed send of the group (its index among the keyed ones) stored
    /// earlier, as it was stored.
    Earlier {
        at: i64,
        seq: i64,
        text: String,
        ts: i64,
        kind: String,
    },
    /// A room's counter after the group's messages were counted in.
    Bumped { room: String, last: i64 },
}

/// One group on the writer's own connection: begins, reserves, inserts,
/// commits. The caller rolls back on error.
fn store_own(
    conn: &mut rusqlite::Connection,
    messages: &[&NewMessage],
) -> Result<Answers, WriteError> {
    let plan = Plan::new(messages);
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let mut rows = conn
        .prepare_cached(EARLIER)?
        .query_map([plan.keys_json()?], |row| {
            Ok(Reserved::Earlier {
                at: row.get(0)?,
                seq: row.get(1)?,
                text: row.get(2)?,
                ts: row.get(3)?,
                kind: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for bumped in conn
        .prepare_cached(RESERVE)?
        .query_map([plan.candidates_json()?], |row| {
            Ok(Reserved::Bumped {
                room: row.get(0)?,
                last: row.get(1)?,
            })
        })?
    {
        rows.push(bumped?);
    }
    let (answers, inserts) = plan.settle(rows)?;
    if let Some(inserts) = inserts {
        conn.prepare_cached(INSERT)?.execute([inserts])?;
    }
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(answers)
}

/// One group on the in-memory pool, in two round trips to its connection's
/// thread.
async fn try_pool_group(
    pool: &SqlitePool,
    messages: &[&NewMessage],
) -> Result<Answers, GroupFailure> {
    let mut tx = WriteTx::acquire(pool)
        .await
        .map_err(|e| GroupFailure::Start(e.into()))?;
    let result = async {
        let plan = Plan::new(messages);
        let found = sqlx::query(BEGIN_AND_RESERVE)
            .bind(plan.keys_json()?)
            .bind(plan.candidates_json()?)
            .fetch_all(&mut *tx.conn())
            .await?;
        let mut rows = Vec::with_capacity(found.len());
        for row in found {
            rows.push(if row.len() == 2 {
                Reserved::Bumped {
                    room: row.try_get(0)?,
                    last: row.try_get(1)?,
                }
            } else {
                Reserved::Earlier {
                    at: row.try_get(0)?,
                    seq: row.try_get(1)?,
                    text: row.try_get(2)?,
                    ts: row.try_get(3)?,
                    kind: row.try_get(4)?,
                }
            });
        }
        plan.settle(rows)
    }
    .await;
    match result {
        Ok((answers, inserts)) => {
            let finish = match inserts {
                Some(inserts) => sqlx::query(INSERT_AND_COMMIT).bind(inserts),
                None => sqlx::query("COMMIT"),
            };
            tx.commit_with(finish)
                .await
                .map_err(|e| GroupFailure::During(e.into()))?;
            Ok(answers)
        }
        Err(e) => {
            tx.rollback().await;
            Err(GroupFailure::During(e))
        }
    }
}

/// A group's appends sorted out before the database is asked: this is, for
/// the whole group at once, what storing one message is — look up an
/// earlier message with the same (room, sender, cid); otherwise bump the
/// room's `last_seq` and insert the message under the new value.
struct Plan<'m> {
    messages: &'m [&'m NewMessage],
    /// Every keyed send (for the earlier ones), with its index.
    keyed: Vec<(usize, Key<'m>)>,
    /// Sends repeated within the group, with their first occurrence: they
    /// get its answer.
    repeats: Vec<(usize, usize)>,
    /// The sends new to this group.
    unique: Vec<usize>,
}

impl<'m> Plan<'m> {
    fn new(messages: &'m [&'m NewMessage]) -> Self {
        let keyed: Vec<(usize, Key<'m>)> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| key(m).map(|k| (i, k)))
            .collect();
        let mut first_of: HashMap<Key<'_>, usize> = HashMap::new();
        let mut repeats = Vec::new();
        let mut unique = Vec::new();
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
        Self {
            messages,
            keyed,
            repeats,
            unique,
        }
    }

    /// The earlier-sends statement's parameter.
    fn keys_json(&self) -> Result<String, WriteError> {
        let keys: Vec<Key<'_>> = self.keyed.iter().map(|(_, k)| *k).collect();
        Ok(serde_json::to_string(&keys)?)
    }

    /// The reservation's parameter.
    fn candidates_json(&self) -> Result<String, WriteError> {
        let candidates: Vec<(&str, &str, Option<&str>)> = self
            .unique
            .iter()
            .map(|&i| {
                let m = self.messages[i];
                (
                    m.room.as_str(),
                    m.from.as_str(),
                    m.cid.as_ref().map(|c| c.as_str()),
                )
            })
            .collect();
        Ok(serde_json::to_string(&candidates)?)
    }

    /// Every append's answer given the reservation's rows, and the rows to
    /// insert (a JSON parameter; `None`: nothing new).
    fn settle(self, rows: Vec<Reserved>) -> Result<(Answers, Option<String>), WriteError> {
        let messages = self.messages;
        let mut answers: Vec<Option<StoreResult<Appended>>> =
            messages.iter().map(|_| None).collect();
        let mut bumped: Vec<(String, i64)> = Vec::new();
        for row in rows {
            match row {
                Reserved::Bumped { room, last } => bumped.push((room, last)),
                Reserved::Earlier {
                    at,
                    seq,
                    text,
                    ts,
                    kind,
                } => {
                    if let Some(&(i, _)) =
                        usize::try_from(at).ok().and_then(|at| self.keyed.get(at))
                    {
                        answers[i] = Some(earlier_message(messages[i], seq, text, ts, kind));
                    }
                }
            }
        }

        // The new messages, and each room's first new seq.
        let fresh: Vec<usize> = self
            .unique
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
        let inserts = if inserts.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&inserts)?)
        };

        // Repeats within the group get their first occurrence's answer.
        for (i, first) in self.repeats {
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
        Ok((answers, inserts))
    }
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

    fn url(dir: &TempDir) -> String {
        format!("sqlite://{}", dir.path().join("writer.db").display())
    }

    /// A writer's connection of its own to the store in `dir`.
    fn own(dir: &TempDir) -> Own {
        Own::open(WriterOptions {
            path: dir.path().join("writer.db"),
            busy_timeout: Duration::from_secs(5),
            max_page_count: None,
        })
        .unwrap()
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
        let mut own = own(dir);
        send_all(store_group(jobs, &mut own).await);
        drop(own);
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
        let (writer, task) = Writer::spawn(Target::Own(own(&dir)));
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
