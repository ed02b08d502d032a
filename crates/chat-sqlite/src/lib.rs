//! chat-sqlite: hihichat's storage ports on one SQLite file, with sqlx (and
//! rusqlite for the hot reads and the append writer).
//!
//! [`SqliteStore`] implements [`UserRepository`], [`SessionStore`],
//! [`RoomRepository`], [`MessageLog`], [`BotCorpus`], [`AuditLog`] and
//! [`HealthCheck`].
//! The event bus and presence are not here: on a single node they come from
//! the in-process bus of `chat-memory`.
//!
//! The hot reads (`access` on every send, history pages, `last_seq`) run
//! on connections of their own with rusqlite, on the caller's thread: see
//! `readers`.
//!
//! Durability: the database runs in WAL mode with `synchronous = FULL`, so
//! every COMMIT is fsynced before it returns and an acknowledged message
//! survives a power cut. Appends share those fsyncs through one writer
//! that commits them in groups, on a rusqlite connection of its own (see
//! `writer`); everything else reads and writes through the pool.
//!
//! Queries are built at run time (`sqlx::query`, not `query!`), so the crate
//! builds on a fresh clone with no database present.
//!
//! [`UserRepository`]: chat_domain::UserRepository
//! [`SessionStore`]: chat_domain::SessionStore
//! [`RoomRepository`]: chat_domain::RoomRepository
//! [`MessageLog`]: chat_domain::MessageLog
//! [`BotCorpus`]: chat_domain::BotCorpus
//! [`AuditLog`]: chat_domain::AuditLog
//! [`HealthCheck`]: chat_domain::HealthCheck

mod audit;
mod corpus;
mod error;
mod health;
mod log;
mod readers;
mod rooms;
mod rows;
mod sessions;
mod tx;
mod users;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, SqliteConnection, SqlitePool};

use crate::readers::{ReaderOptions, Readers};
use crate::writer::{Own, Target, Writer, WriterOptions};

/// The schema migrations, embedded from `migrations/sqlite`; [`SqliteStore`]
/// applies them when it connects.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The append writer's page cache as `PRAGMA cache_size` takes it: a
/// negative number is KiB, so 64 MiB. Appends to many rooms touch a page of
/// `messages` and one of the cid index per room; keeping those pages in the
/// writer's own cache saves a read per page per group.
const WRITER_CACHE_SIZE: &str = "-65536";

/// WAL pages after which a commit copies the WAL back into the database
/// (`PRAGMA wal_autocheckpoint`; SQLite's default is 1,000, 4 MiB). A busy
/// writer's group dirties hundreds of pages, so at the default nearly every
/// group also ran a checkpoint; with 16,384 (64 MiB of WAL) a page written
/// by many groups is copied back once.
const AUTOCHECKPOINT_PAGES: &str = "16384";

/// How much of the database file each history-page reader maps into
/// memory (`PRAGMA mmap_size`, bytes): 1 GiB of address space, not of
/// memory; the pages themselves are the OS page cache, shared by every
/// connection.
///
/// Only the page readers map the file. SQLite empties a connection's page
/// cache whenever another connection committed, and a mapping connection
/// then also unmaps and maps the whole file again: an `munmap` (with a TLB
/// shoot-down across the process's threads) and a page fault per page
/// touched. For a page of 50 messages in a quiet store the map still wins
/// (no `pread` per page); for the `access` read on every send, a few pages
/// right after the writer's last commit, a `pread` each costs less
/// (docs/BENCHMARKS.md, fix 28).
const READER_MMAP_SIZE: i64 = 1 << 30;

/// How many connections of their own each set of hot readers (`access`
/// and `last_seq`; history pages) gets, besides the pool: they run on the
/// caller's thread, so more than the runtime's worker threads would never
/// be used at once.
const HOT_READERS: usize = 4;

/// How to open the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// `sqlite://relative/path.db`, `sqlite:///absolute/path.db` or
    /// `sqlite::memory:`. The file and its directory are created if missing.
    pub url: String,
    /// Most pooled connections. Readers run in parallel under WAL; writes
    /// queue on SQLite's single write lock whatever this is.
    pub max_connections: u32,
    /// How long a statement waits for another connection's write lock
    /// before failing as `Unavailable`.
    pub busy_timeout: Duration,
    /// A cap on the database's size, in pages (`PRAGMA max_page_count`);
    /// `None` keeps SQLite's default (effectively unlimited). Writes past
    /// the cap fail as a full disk would.
    pub max_page_count: Option<u32>,
}

impl SqliteConfig {
    /// The default settings for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            max_page_count: None,
        }
    }
}

/// Every storage port on one SQLite database.
pub struct SqliteStore {
    /// Reads and the writes other than appends.
    pool: SqlitePool,
    writer: Writer,
    /// The hot reads' connections, run on the caller's thread (see
    /// `readers`); `None` in memory, where the pool's one connection is the
    /// database.
    readers: Option<HotReaders>,
}

/// The hot reads' two sets of connections.
struct HotReaders {
    /// For `access` and `last_seq`: a few pages each, not mapped.
    checks: Readers,
    /// For history pages: mapped ([`READER_MMAP_SIZE`]).
    pages: Readers,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` with the default
    /// settings and brings its schema up to date.
    ///
    /// # Errors
    /// When the URL is malformed, the file or its directory cannot be
    /// created or opened (the message names the path), or a migration fails.
    pub async fn connect(url: &str) -> anyhow::Result<SqliteStore> {
        Self::connect_with(SqliteConfig::new(url)).await
    }

    /// Opens (creating if needed) the database described by `config` and
    /// brings its schema up to date.
    ///
    /// # Errors
    /// As [`SqliteStore::connect`].
    pub async fn connect_with(config: SqliteConfig) -> anyhow::Result<SqliteStore> {
        let in_memory = is_in_memory(&config.url);
        let mut options = SqliteConnectOptions::from_str(&config.url)
            .with_context(|| format!("invalid SQLite database URL {:?}", config.url))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(config.busy_timeout)
            // Statement journals (multi-row statements such as retention's
            // DELETE need them) stay in memory rather than in temporary
            // files.
            .pragma("temp_store", "MEMORY");
        if let Some(pages) = config.max_page_count {
            options = options.pragma("max_page_count", pages.to_string());
        }
        let path = options.get_filename().to_path_buf();
        let shown = if in_memory {
            PathBuf::from(":memory:")
        } else {
            path.clone()
        };
        let opened = |e: sqlx::Error| cannot_open(e.into(), &shown);
        let migrate = |e: sqlx::migrate::MigrateError| {
            anyhow::Error::new(e).context(format!(
                "cannot apply the migrations to the SQLite database {}",
                shown.display()
            ))
        };

        if in_memory {
            // An in-memory database lives as long as its last connection,
            // and shared-cache connections lock whole tables rather than
            // queue on a busy handler: one connection for everything. Every
            // caller queues for it, so the wait is bounded by the work ahead
            // of it, not by a timeout that would misfire under a paused
            // tokio clock in tests.
            let pool = pool_options(1)
                .acquire_timeout(Duration::from_secs(24 * 3600))
                .connect_with(options)
                .await
                .map_err(opened)?;
            MIGRATOR.run(&pool).await.map_err(migrate)?;
            return Ok(Self::start(pool.clone(), Target::Pool(pool), None));
        }

        create_parent_dir(&path).await?;
        // FULL, not NORMAL: in WAL mode NORMAL skips the fsync at COMMIT, so
        // the last transactions before a power cut can be lost, and an
        // acknowledged message must never be.
        let options = options
            .synchronous(SqliteSynchronous::Full)
            // On every connection: whichever commits past the threshold runs
            // the checkpoint, so one left at the default would run them all.
            .pragma("wal_autocheckpoint", AUTOCHECKPOINT_PAGES);
        // One connection first, on its own: switching a new file to WAL
        // needs the database to itself (pooled connections opening side by
        // side would get SQLITE_BUSY), and the migrations run once. It stays
        // open until the pools are up so they find the WAL ready.
        let mut setup =
            SqliteConnection::connect_with(&options.clone().journal_mode(SqliteJournalMode::Wal))
                .await
                .map_err(opened)?;
        MIGRATOR.run(&mut setup).await.map_err(migrate)?;
        let pool = pool_options(config.max_connections.max(1))
            .connect_with(options.clone())
            .await
            .map_err(opened)?;
        let hot = |mmap_size| {
            Readers::open(
                &path,
                HOT_READERS,
                &ReaderOptions {
                    busy_timeout: config.busy_timeout,
                    mmap_size,
                },
            )
            .map_err(|e| cannot_open(e.into(), &shown))
        };
        let readers = HotReaders {
            checks: hot(0)?,
            pages: hot(READER_MMAP_SIZE)?,
        };
        // The writer keeps a connection of its own (see `writer::Own`).
        let writer = Own::open(WriterOptions {
            path: path.clone(),
            busy_timeout: config.busy_timeout,
            max_page_count: config.max_page_count,
        })
        .map_err(|e| cannot_open(e.into(), &shown))?;
        setup.close().await.map_err(opened)?;
        Ok(Self::start(pool, Target::Own(writer), Some(readers)))
    }

    /// Starts the writer over a migrated database.
    fn start(pool: SqlitePool, writer: Target, readers: Option<HotReaders>) -> SqliteStore {
        let (writer, _task) = Writer::spawn(writer);
        SqliteStore {
            pool,
            writer,
            readers,
        }
    }

    /// Stores every append already queued, then closes all connections.
    /// Later calls fail as `Unavailable`. Dropping the store also stops the
    /// writer after the queue drains, but without waiting for it.
    pub async fn close(&self) {
        self.writer.close().await;
        if let Some(readers) = &self.readers {
            readers.checks.close();
            readers.pages.close();
        }
        self.pool.close().await;
    }
}

/// The error for a database that could not be opened, naming it.
fn cannot_open(e: anyhow::Error, shown: &Path) -> anyhow::Error {
    e.context(format!(
        "cannot open the SQLite database {}",
        shown.display()
    ))
}

/// A pool of `size` connections opened up front and kept for good.
///
/// SQLite connections are local files, not sockets: they do not go stale, so
/// they are neither pinged before use nor recycled. Opening them all at start
/// also keeps connecting out of `acquire`, whose timeout runs on tokio's
/// clock.
fn pool_options(size: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(size)
        .min_connections(size)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
}

/// Whether the URL names an in-memory database (no file, no directory).
fn is_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// Makes the directory that will hold the database file (a fresh machine
/// has no `./data/`).
async fn create_parent_dir(path: &Path) -> anyhow::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            tokio::fs::create_dir_all(dir).await.with_context(|| {
                format!(
                    "cannot create the directory {} for the SQLite database {}",
                    dir.display(),
                    path.display()
                )
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Which hot readers map the file is a measured choice (see
    /// [`READER_MMAP_SIZE`]): the `access` read on every send must not pay
    /// for remapping the file after each commit.
    #[tokio::test]
    async fn only_the_page_readers_map_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("map.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        let readers = store.readers.as_ref().unwrap();
        let mapped = |set: &Readers| {
            set.read(|c| c.pragma_query_value(None, "mmap_size", |r| r.get::<_, i64>(0)))
                .unwrap()
        };
        assert_eq!(mapped(&readers.checks), 0);
        assert_eq!(mapped(&readers.pages), READER_MMAP_SIZE);
        store.close().await;
    }
}
