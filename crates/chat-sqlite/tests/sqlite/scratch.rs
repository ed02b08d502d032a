//! Where test databases live: under cargo's scratch directory for
//! integration tests, never in the source tree.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use chat_sqlite::SqliteStore;
use tempfile::TempDir;

/// A fresh directory, removed when the returned value is dropped.
pub fn dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("chat-sqlite-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a scratch directory")
}

/// The URL of a database file at `path`.
pub fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Opens a database at `path`.
pub async fn open(path: &Path) -> SqliteStore {
    SqliteStore::connect(&url(path))
        .await
        .expect("the test database opens")
}

/// A path for a new database file that outlives the test.
///
/// The contract suites take a factory that returns only the store, so
/// nothing can remove its directory when the test ends; deleting it any
/// earlier would pull the files from under open connections. Files are
/// left in one directory per process instead, and directories of earlier
/// runs are swept when the first one is asked for.
pub fn lasting_db_path() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chat-sqlite-contract");
        sweep_old(&root);
        let dir = root.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    });
    // A Unicode file name, because paths are Unicode too.
    dir.join(format!("聊天-{}.db", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// Removes the directories of test processes that have ended (where
/// `/proc` tells) or that are older than any test run takes.
fn sweep_old(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let proc = Path::new("/proc");
    let old = SystemTime::now() - Duration::from_secs(600);
    for entry in entries.flatten() {
        let ended = proc.is_dir() && !proc.join(entry.file_name()).exists();
        let aged = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < old);
        if ended || aged {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
