//! The single writer that stores appended messages with group commit.
//!
//! Every `append` goes through one writer. It takes whatever appends are
//! queued (up to [`MAX_GROUP`]) and stores them in one `BEGIN IMMEDIATE …
//! COMMIT`, so one fsync covers the whole group, and answers each caller only
//! after that COMMIT returned: an `Ok` from `append` means the message is on
//! disk. With one writer there is no lock contention among appends, and a
//! room's seqs are handed out in the order the writer sees its appends.
//!
//! Storing one message is three prepared one-row statements: look up an
//! earlier send with the same (room, sender, cid), else move the room's
//! counter and insert the message under the new value. A group runs them
//! for each of its messages in order, inside its one transaction.
//!
//! On a database file the group runs on a thread of its own
//! ([`group_thread`]) holding a rusqlite connection of its own ([`Own`]):
//! the statements run right there, with no hand-off to a driver's thread
//! (sqlx runs each connection on a thread of its own, so every statement
//! would be a round trip there and back). In memory the pool's one
//! connection is the database, so the writer is a tokio task on the pool
//! ([`Target::Pool`]) sending the same statements, one round trip each.
//!
//! If a group fails, its transaction is rolled back and each append is tried
//! again alone, so one bad append fails by itself. The exception is
//! contention or a closed pool, which would fail every retry the same way.
//!
//! The writer ends when the store is dropped (every sender is gone and the
//! queue is drained) or closed ([`Command::Close`]).

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chat_domain::{Appended, Message, MessageText, NewMessage, StoreError, StoreResult, Timestamp};
use sqlx::SqlitePool;
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
    // Statement journals stay in memory rather than in temporary files
    // (the group's one-row statements need none; see `SqliteStore`).
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

/// The writer on its own connection: a task that takes the queue and hands
/// each group to the writer's thread ([`group_thread`]).
///
/// Why the queue is taken by a task and not by that thread: under load the
/// task waits its turn behind the connections' tasks, and the appends that
/// arrive meanwhile join its next group. A thread taking the queue itself
/// woke for the first append and committed groups of about 16, forty times
/// as many commits for the same load (each with its WAL pages and fsync),
/// and lost a fifth of `ingest` (docs/BENCHMARKS.md, fix 24).
async fn run_own(own: Own, mut rx: mpsc::Receiver<Command>) {
    let (groups, thread) = match group_thread(own) {
        Ok(started) => started,
        Err(e) => {
            tracing::error!(error = %e, "the writer's thread did not start");
            rx.close();
            return;
        }
    };
    let mut commands = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut commands, MAX_GROUP).await > 0 {
        let (jobs, mut closing) = split(&mut commands);
        if !jobs.is_empty() {
            let (done, replies) = oneshot::channel();
            if groups.send((jobs, done)).is_err() {
                tracing::error!("the writer's thread is gone");
            } else if let Ok(replies) = replies.await {
                // Sent from this task, not the writer's thread: waking a
                // caller from outside the runtime is a cross-thread
                // wake-up each.
                send_all(replies);
            }
            // A dropped `done`: the group panicked (see `group_thread`).
        }
        if !closing.is_empty() {
            drop(groups);
            // The thread ends with its queue; its connection closes there.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            refuse_rest(&mut rx, &mut closing);
            for done in closing {
                let _ = done.send(());
            }
            return;
        }
    }
}

/// A group for the writer's thread, and where its replies go.
type GroupJob = (Vec<Job>, oneshot::Sender<Vec<Reply>>);

/// Starts the writer's thread: one thread of its own that runs every group
/// it is handed on the writer's connection and sends back the replies. It
/// ends when its sender is dropped, closing the connection.
///
/// A thread of its own rather than tokio's blocking pool: the pool hands
/// consecutive groups to whichever of its threads is idle (two alternate
/// under a steady load), and a one-message group cost ≈ 7 µs more CPU
/// there (docs/BENCHMARKS.md, fix 27).
fn group_thread(
    own: Own,
) -> std::io::Result<(
    std::sync::mpsc::Sender<GroupJob>,
    std::thread::JoinHandle<()>,
)> {
    let (groups, rx) = std::sync::mpsc::channel::<GroupJob>();
    let thread = std::thread::Builder::new()
        .name("hihichat-writer".into())
        .spawn(move || {
            let mut own = own;
            while let Ok((jobs, done)) = rx.recv() {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // Every statement of `Own` runs synchronously, so this
                    // future is ready the first time it is polled.
                    poll_once(store_group(jobs, &mut own))
                }));
                match ran {
                    Ok(Some(replies)) => {
                        let _ = done.send(replies);
                    }
                    Ok(None) => tracing::error!("the writer's group did not finish at once"),
                    // The group's callers see their replies dropped
                    // (`Unavailable`); the next group gets a new connection.
                    Err(_) => {
                        tracing::error!("the writer's group panicked");
                        own = Own::closed(own.options.clone());
                    }
                }
            }
        })?;
    Ok((groups, thread))
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

// The group's statements, run once per message in the group's order. A
// new message costs two: RESERVE and INSERT. INSERT itself finds a
// repeated send (the unique index on room, sender and cid is probed as part
// of the insert) and then stores nothing; only then are the reserved seq
// given back (RELEASE) and the first occurrence read (EARLIER). A send
// repeated within the group finds its first occurrence's row (the same
// transaction) just as a retry finds an earlier group's. Looking the cid up
// before every insert cost a third statement and a second probe of that
// index per message, for the rare retry (docs/BENCHMARKS.md, fix 32).
//
// Plain statements rather than one set-based statement per step fed the
// group as a JSON array: with the statements prepared and the rows bound
// directly, a one-message commit cost ≈ 8 µs less CPU here, and those are
// most of the commits below `ingest`'s load (docs/BENCHMARKS.md).

/// The send (room, sender, cid) as stored already: its seq, text, ts, kind.
const EARLIER: &str = "SELECT seq, text, ts, kind FROM messages INDEXED BY messages_by_cid \
                       WHERE room = ?1 AND sender = ?2 AND cid = ?3";

/// Moves the room's counter past the new message: its seq, or no row when
/// there is no such room.
const RESERVE: &str = "UPDATE rooms SET last_seq = last_seq + 1 WHERE name = ?1 RETURNING last_seq";

/// Inserts the new message: room, seq, sender, text, ts, cid, kind. Changes
/// no row when the same send (room, sender, cid) is stored already; any
/// other constraint still fails the statement.
const INSERT: &str = "INSERT INTO messages (room, seq, sender, text, ts, cid, kind) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                      ON CONFLICT (room, sender, cid) WHERE cid IS NOT NULL DO NOTHING";

/// Gives the room's counter back the seq a repeated send reserved: nothing
/// can have reserved one since (one writer, one message at a time).
const RELEASE: &str = "UPDATE rooms SET last_seq = last_seq - 1 WHERE name = ?1";

/// The answer for a send whose INSERT stored nothing: its first
/// occurrence as EARLIER found it. Finding none cannot happen while INSERT
/// ignores only the cid conflict, but is answered, not assumed.
fn repeat_answer(m: &NewMessage, found: Option<EarlierRow>) -> StoreResult<Appended> {
    found.map_or_else(
        || {
            Err(StoreError::unexpected(
                "a send was neither stored nor found stored",
            ))
        },
        |row| earlier_message(m, row),
    )
}

/// A send found stored: seq, text, ts, kind.
type EarlierRow = (i64, String, i64, String);

/// One group on the writer's own connection: begins, stores each message
/// in turn, commits. The caller rolls back on error.
fn store_own(
    conn: &mut rusqlite::Connection,
    messages: &[&NewMessage],
) -> Result<Answers, WriteError> {
    use rusqlite::OptionalExtension as _;

    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let mut earlier = conn.prepare_cached(EARLIER)?;
    let mut reserve = conn.prepare_cached(RESERVE)?;
    let mut insert = conn.prepare_cached(INSERT)?;
    let mut release = conn.prepare_cached(RELEASE)?;
    let mut answers = Vec::with_capacity(messages.len());
    for m in messages {
        let seq: Option<i64> = reserve
            .query_row([m.room.as_str()], |r| r.get(0))
            .optional()?;
        let Some(seq) = seq else {
            answers.push(Err(StoreError::NotFound));
            continue;
        };
        let cid = m.cid.as_ref().map(|c| c.as_str());
        let inserted = insert.execute((
            m.room.as_str(),
            seq,
            m.from.as_str(),
            m.text.as_str(),
            m.ts.as_millis(),
            cid,
            m.kind.as_str(),
        ))?;
        if inserted == 0 {
            release.execute([m.room.as_str()])?;
            let found: Option<EarlierRow> = match cid {
                Some(cid) => earlier
                    .query_row((m.room.as_str(), m.from.as_str(), cid), |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()?,
                None => None,
            };
            answers.push(repeat_answer(m, found));
            continue;
        }
        answers.push(fresh_message(m, seq));
        // The writer's panic path has no trigger from outside: the unit
        // tests get one, after a row is written and before the COMMIT.
        #[cfg(test)]
        if m.text.as_str() == tests::PANIC_TEXT {
            panic!("a test asked the writer to panic mid-group");
        }
    }
    drop((earlier, reserve, insert, release));
    conn.prepare_cached("COMMIT")?.execute([])?;
    Ok(answers)
}

/// One group on the in-memory pool: the same statements as [`store_own`],
/// each a round trip to the pool connection's thread (an in-memory
/// database is for tests and embedding, where that is cheap enough).
async fn try_pool_group(
    pool: &SqlitePool,
    messages: &[&NewMessage],
) -> Result<Answers, GroupFailure> {
    let mut tx = WriteTx::begin(pool)
        .await
        .map_err(|e| GroupFailure::Start(e.into()))?;
    let result = async {
        let mut answers = Vec::with_capacity(messages.len());
        for m in messages {
            let seq: Option<i64> = sqlx::query_scalar(RESERVE)
                .bind(m.room.as_str())
                .fetch_optional(&mut *tx.conn())
                .await?;
            let Some(seq) = seq else {
                answers.push(Err(StoreError::NotFound));
                continue;
            };
            let cid = m.cid.as_ref().map(|c| c.as_str());
            let inserted = sqlx::query(INSERT)
                .bind(m.room.as_str())
                .bind(seq)
                .bind(m.from.as_str())
                .bind(m.text.as_str())
                .bind(m.ts.as_millis())
                .bind(cid)
                .bind(m.kind.as_str())
                .execute(&mut *tx.conn())
                .await?
                .rows_affected();
            if inserted == 0 {
                sqlx::query(RELEASE)
                    .bind(m.room.as_str())
                    .execute(&mut *tx.conn())
                    .await?;
                let found: Option<EarlierRow> = match cid {
                    Some(cid) => {
                        sqlx::query_as(EARLIER)
                            .bind(m.room.as_str())
                            .bind(m.from.as_str())
                            .bind(cid)
                            .fetch_optional(&mut *tx.conn())
                            .await?
                    }
                    None => None,
                };
                answers.push(repeat_answer(m, found));
                continue;
            }
            answers.push(fresh_message(m, seq));
        }
        Ok::<_, WriteError>(answers)
    }
    .await;
    match result {
        Ok(answers) => {
            tx.commit()
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

/// The answer for a new message stored under `seq`.
fn fresh_message(m: &NewMessage, seq: i64) -> StoreResult<Appended> {
    Ok(Appended {
        message: Message {
            room: m.room.clone(),
            seq: seq_from_db(seq)?,
            from: m.from.clone(),
            text: m.text.clone(),
            ts: m.ts,
            cid: m.cid.clone(),
            kind: m.kind,
        },
        duplicate: false,
    })
}

/// The answer for a repeated cid: the message as first stored.
fn earlier_message(m: &NewMessage, (seq, text, ts, kind): EarlierRow) -> StoreResult<Appended> {
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

    /// A message with this text makes the writer panic after writing its
    /// row (see `store_own`).
    pub(super) const PANIC_TEXT: &str = "writer, panic now";

    // A panic inside a group is caught on the writer's thread: the group's
    // callers get `Unavailable`, nothing of the group is stored (its
    // transaction dies with the connection), and the next group works on a
    // new connection, with the seq the panicked message had reserved
    // given out again.
    #[tokio::test]
    async fn a_group_that_panics_fails_its_callers_stores_nothing_and_the_writer_goes_on() {
        let (_dir, store) = store().await;
        store
            .append(message("lobby", "alice", "before"))
            .await
            .unwrap();
        let failed = store
            .append(message("lobby", "bob", PANIC_TEXT))
            .await
            .unwrap_err();
        assert!(matches!(failed, StoreError::Unavailable(_)), "{failed:?}");
        let after = store
            .append(message("lobby", "alice", "after"))
            .await
            .unwrap();
        assert_eq!(after.message.seq, Seq::new(2));
        assert_eq!(
            texts(&store, "lobby").await,
            vec![(1, "before".to_owned()), (2, "after".to_owned())]
        );
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
