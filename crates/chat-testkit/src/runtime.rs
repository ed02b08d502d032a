//! The runtimes the suite macros run test bodies on, so a crate that runs a
//! suite needs no tokio dev-dependency of its own.
#![allow(clippy::expect_used)]

use std::future::Future;

/// Runs a test body on a fresh current-thread runtime (like `#[tokio::test]`).
pub fn current<F: Future<Output = ()>>(body: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime")
        .block_on(body);
}

/// Runs a test body on a two-worker multi-thread runtime (like
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`), for the
/// tests about concurrent callers.
pub fn multi<F: Future<Output = ()>>(body: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a test runtime")
        .block_on(body);
}
