//! `Shutdown`: one signal that tells every long-lived connection to close,
//! and a count of those connections so the server can wait until they are gone.
//!
//! hyper's graceful shutdown does not see upgraded WebSockets, so the gateway
//! tracks them here: each socket holds a [`ConnectionGuard`] until it has sent
//! its close frame, and [`Shutdown::drained`] resolves when the last one drops.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

struct Inner {
    // A watch channel rather than `Notify`: a task that starts listening after
    // the trigger still sees it, because the value stays `true`.
    signal: watch::Sender<bool>,
    active: AtomicUsize,
    idle: Notify,
}

/// The shutdown signal and the count of open connections.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .field("active", &self.active())
            .finish()
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal not yet triggered, with no connections.
    pub fn new() -> Self {
        let (signal, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                signal,
                active: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Tells every connection to close. Idempotent.
    pub fn trigger(&self) {
        self.inner.signal.send_replace(true);
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        *self.inner.signal.borrow()
    }

    /// Resolves once the shutdown is triggered (at once if it already was).
    pub async fn triggered(&self) {
        let mut rx = self.inner.signal.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail here.
        let _ = rx.wait_for(|&on| on).await;
    }

    /// Counts a connection as open until the guard drops.
    pub fn track(&self) -> ConnectionGuard {
        self.inner.active.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// How many tracked connections are open.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }

    /// Resolves when no tracked connection is open.
    pub async fn drained(&self) {
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            // Register interest before reading the count, so a guard dropping
            // in between cannot be missed.
            idle.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Keeps one connection counted as open; see [`Shutdown::track`].
#[must_use = "the connection counts as open only while the guard lives"]
pub struct ConnectionGuard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionGuard")
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.inner.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn drained_waits_for_every_guard() {
        let shutdown = Shutdown::new();
        shutdown.drained().await;
        let a = shutdown.track();
        let b = shutdown.track();
        let waiter = tokio::spawn({
            let s = shutdown.clone();
            async move { s.drained().await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_late_listener_still_sees_the_trigger() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), shutdown.triggered())
            .await
            .unwrap();
        assert!(shutdown.is_triggered());
    }
}
