//! A wait that is polled again only when its own waker fired: the connection manager's
//! drain and premature-reset waits sit beside the codec in one `select!`, which polls
//! every branch on each wakeup of the connection (several per request), and a pending
//! `Notify` or `watch` wait takes a lock on every poll. Behind a [`Gate`] they cost an
//! atomic load per wakeup instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// The waker handed to gated futures: marks them woken and wakes the task.
#[derive(Debug, Default)]
struct GateWaker {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for GateWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Gates the futures of one task; [`Gate::wait`] wraps one per `select!` turn.
#[derive(Debug)]
pub(crate) struct Gate {
    shared: Arc<GateWaker>,
    waker: Waker,
}

impl Gate {
    pub(crate) fn new() -> Self {
        let shared = Arc::new(GateWaker::default());
        let waker = Waker::from(shared.clone());
        Self { shared, waker }
    }

    /// `fut`, polled at its first poll and then only after it asked to be woken and was.
    pub(crate) fn wait<F: Future + Unpin>(&self, fut: F) -> Gated<'_, F> {
        Gated {
            gate: self,
            fut,
            first: true,
        }
    }
}

/// See [`Gate::wait`].
pub(crate) struct Gated<'g, F> {
    gate: &'g Gate,
    fut: F,
    first: bool,
}

impl<F: Future + Unpin> Future for Gated<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let shared = &this.gate.shared;
        // Registered before the flag is read, so a wake in between is not lost.
        shared.task.register(cx.waker());
        let woken = shared.woken.swap(false, Ordering::Acquire);
        if !(woken || std::mem::take(&mut this.first)) {
            return Poll::Pending;
        }
        Pin::new(&mut this.fut).poll(&mut Context::from_waker(&this.gate.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gated_wait_resolves_when_its_waker_fires() {
        let notify = Arc::new(tokio::sync::Notify::new());
        let gate = Gate::new();
        let mut waited = gate.wait(Box::pin(notify.notified()));
        // Pending: registered with the notify.
        assert!(futures_util::poll!(&mut waited).is_pending());
        assert!(futures_util::poll!(&mut waited).is_pending());
        notify.notify_one();
        tokio::time::timeout(std::time::Duration::from_secs(5), waited)
            .await
            .expect("woken");
    }
}
