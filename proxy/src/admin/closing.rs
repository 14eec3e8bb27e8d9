//! Closing admin without resetting a connection. A generation told to stop before its
//! workers accept (SIGTERM while it initialises) may be serving its parent's admin
//! socket, which the parent serves again once we are gone. Exiting at once would reset
//! the connections the kernel had already handed to us, while the same port goes on
//! answering for the parent. So admin stops accepting (connections queue for the
//! parent), every accepted connection gets to finish the request it carries, and only
//! then does the process exit.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How long an accepted connection that has not finished a request yet is given to do
/// so before it is closed (admin clients write their request as soon as they connect).
pub(super) const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(250);

/// Whether admin is closing, and how many admin connections are open.
#[derive(Debug)]
pub struct AdminClosing {
    closing: watch::Sender<bool>,
    open: Arc<watch::Sender<usize>>,
}

impl Default for AdminClosing {
    fn default() -> Self {
        Self {
            closing: watch::Sender::new(false),
            open: Arc::new(watch::Sender::new(0)),
        }
    }
}

/// One open admin connection; dropping it counts the connection closed.
#[derive(Debug)]
pub(super) struct OpenConnection(Arc<watch::Sender<usize>>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl AdminClosing {
    /// Counts an accepted connection open until the returned guard drops.
    pub(super) fn opened(&self) -> OpenConnection {
        self.open.send_modify(|n| *n += 1);
        OpenConnection(Arc::clone(&self.open))
    }

    /// Resolves once closing has begun (never, while it has not).
    pub(super) async fn begun(&self) {
        let mut rx = self.closing.subscribe();
        // The sender lives as long as `self`: an error cannot happen while we borrow it.
        let _ = rx.wait_for(|closing| *closing).await;
    }

    /// Stops admin accepting and waits (at most `within`) until no admin connection is
    /// open. False when some were still open at the deadline.
    pub async fn close(&self, within: Duration) -> bool {
        self.closing.send_replace(true);
        let mut open = self.open.subscribe();
        let none_open = tokio::time::timeout(within, open.wait_for(|n| *n == 0)).await;
        none_open.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_waits_for_open_connections_and_is_bounded() {
        let closing = AdminClosing::default();
        assert!(closing.close(Duration::from_millis(10)).await, "none open");
        let closing = std::sync::Arc::new(AdminClosing::default());
        let guard_owner = std::sync::Arc::clone(&closing);
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let held = tokio::spawn(async move {
            let _open = guard_owner.opened();
            guard_owner.begun().await;
            let _ = release_rx.await;
        });
        tokio::task::yield_now().await;
        assert!(
            !closing.close(Duration::from_millis(20)).await,
            "one connection still open at the deadline"
        );
        let _ = release_tx.send(());
        assert!(closing.close(Duration::from_secs(5)).await);
        held.await.expect("connection task");
    }
}
