//! Connections of our own for the hot reads (`access`, history pages,
//! `last_seq`), run on the caller's thread with rusqlite.
//!
//! sqlx runs every SQLite connection on a thread of its own, so each
//! statement is a hand-off there and back: a futex wake and two context
//! switches, which on one core cost several times what the statement does
//! (an `access` read is a few µs of SQLite). These reads are short,
//! read-only and never wait for a lock (WAL: readers see the last commit and
//! do not block on the writer), so they run right where they are asked
//! for, on the tokio worker, holding a connection only for the statement.
//!
//! A connection is held under a `std` mutex for one synchronous call and
//! never across an `.await`, so a cancelled caller cannot leave one
//! mid-statement: rusqlite resets a statement when it is dropped.
//!
//! The rare case where a read can wait is SQLite's own recovery of a WAL
//! left by a crashed process, bounded by the busy timeout; on one worker
//! thread that wait stalls the node, which is what it would do at start-up
//! anyway.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chat_domain::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use thiserror::Error;

use crate::error::read_error;

/// Why no reading connection could be lent.
#[derive(Debug, Error)]
#[error("the SQLite store is closed")]
struct Closed;

fn closed() -> StoreError {
    StoreError::Unavailable(Box::new(Closed))
}

/// How reading connections are opened.
#[derive(Debug, Clone)]
pub(crate) struct ReaderOptions {
    /// The longest a read waits for a lock (WAL recovery only).
    pub busy_timeout: Duration,
    /// `PRAGMA mmap_size`, in bytes.
    pub mmap_size: i64,
}

/// A fixed set of reading connections; a read takes a free one, or waits
/// its turn on one when all are busy (only with more worker threads than
/// connections).
pub(crate) struct Readers {
    /// The connections; `None` once closed.
    slots: Vec<Mutex<Option<Connection>>>,
    /// Where a read that found every connection busy queues next.
    next: AtomicUsize,
}

/// A rusqlite connection to the existing database file at `path`, used by
/// one thread at a time (no SQLite mutex), waiting up to `busy_timeout` for
/// another connection's lock. The readers' and the append writer's.
pub(crate) fn open_file(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    Ok(conn)
}

impl Readers {
    /// Opens `count` reading connections to the (migrated) database at
    /// `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or configured.
    pub(crate) fn open(
        path: &Path,
        count: usize,
        options: &ReaderOptions,
    ) -> Result<Self, rusqlite::Error> {
        let mut slots = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let conn = open_file(path, options.busy_timeout)?;
            // Readers map the file: SQLite drops a connection's page cache
            // whenever another connection commits, which the writer does
            // all the time, so without the map every read re-fetches its
            // pages with a `pread` each. Reads through the map are plain
            // memory accesses to the OS page cache.
            conn.pragma_update(None, "mmap_size", options.mmap_size)?;
            // These connections only read; a write through one would be a bug.
            conn.pragma_update(None, "query_only", true)?;
            slots.push(Mutex::new(Some(conn)));
        }
        Ok(Self {
            slots,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `read` on a free connection, on this thread.
    ///
    /// # Errors
    /// `Unavailable` once the store is closed; otherwise what `read`'s
    /// statement failed with, translated.
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        let mut slot = self.free_slot();
        let conn = slot.as_mut().ok_or_else(closed)?;
        read(conn).map_err(read_error)
    }

    /// A free connection's slot, or the next one in turn when all are busy.
    fn free_slot(&self) -> MutexGuard<'_, Option<Connection>> {
        for slot in &self.slots {
            if let Ok(guard) = slot.try_lock() {
                return guard;
            }
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        // A panic inside a read leaves the connection as good as before
        // (the statement is reset when dropped), so a poisoned lock is
        // still usable.
        self.slots[turn]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses further reads and closes every connection, once the reads in
    /// flight are done with it.
    pub(crate) fn close(&self) {
        for slot in &self.slots {
            let conn = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(conn) = conn {
                // Best effort: the file is consistent either way.
                let _ = conn.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use chat_domain::StoreError;

    use super::{ReaderOptions, Readers};

    fn options() -> ReaderOptions {
        ReaderOptions {
            busy_timeout: Duration::from_millis(100),
            mmap_size: 0,
        }
    }

    fn readers(dir: &tempfile::TempDir, count: usize) -> Readers {
        let path = dir.path().join("readers.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7);")
            .unwrap();
        Readers::open(&path, count, &options()).unwrap()
    }

    #[test]
    fn a_read_runs_on_a_free_connection_and_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir, 2);
        let x: i64 = readers
            .read(|c| c.query_row("SELECT x FROM t", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(x, 7);
        // A read inside a read gets the other connection, not a deadlock.
        let both: i64 = readers
            .read(|outer| {
                let inner: i64 = readers
                    .read(|c| c.query_row("SELECT x FROM t", [], |r| r.get(0)))
                    .unwrap();
                outer.query_row("SELECT x + ?1 FROM t", [inner], |r| r.get(0))
            })
            .unwrap();
        assert_eq!(both, 14);
    }

    #[test]
    fn reading_connections_refuse_writes() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir, 1);
        let refused = readers.read(|c| c.execute("INSERT INTO t VALUES (8)", []));
        assert!(
            matches!(refused, Err(StoreError::Unexpected(_))),
            "{refused:?}"
        );
    }

    #[test]
    fn a_failed_statement_is_an_error_and_the_connection_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir, 1);
        assert!(
            readers
                .read(|c| c.query_row("SELECT nope FROM t", [], |r| r.get::<_, i64>(0)))
                .is_err()
        );
        let x: i64 = readers
            .read(|c| c.query_row("SELECT x FROM t", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(x, 7);
    }

    #[test]
    fn a_read_locked_out_past_the_busy_timeout_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir, 1);
        // The test file is in rollback-journal mode, where an exclusive
        // lock shuts readers out (under WAL only recovery can).
        let other = rusqlite::Connection::open(dir.path().join("readers.db")).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let refused = readers.read(|c| c.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0)));
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
        other.execute_batch("ROLLBACK").unwrap();
        let x: i64 = readers
            .read(|c| c.query_row("SELECT x FROM t", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(x, 7);
    }

    #[test]
    fn a_closed_set_refuses_as_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir, 2);
        readers.close();
        assert!(matches!(
            readers.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))),
            Err(StoreError::Unavailable(_))
        ));
    }
}
