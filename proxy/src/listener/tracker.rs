//! A process-wide count of open downstream connections, so drain can wait for them and
//! admin/stats can show them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts open downstream connections (all workers) and wakes drain waiters.
#[derive(Debug, Default)]
pub struct ConnectionTracker {
    active: AtomicUsize,
    total: AtomicU64,
    idle: Notify,
}

impl ConnectionTracker {
    /// Counts a new connection; its holder calls [`Self::count_closed`] when it ends.
    pub(crate) fn count_open(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection counted by [`Self::count_open`] ended.
    pub(crate) fn count_closed(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Open connections now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Connections accepted since start.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Resolves once no connection is open.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}
