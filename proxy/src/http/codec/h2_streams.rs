//! The streams of one downstream HTTP/2 connection, run in that connection's own task
//! instead of one tokio task each. hyper's HTTP/2 server hands every stream's future
//! (the connection manager's service call, then the response body's pipe into h2) to
//! its executor; [`StreamExecutor`] queues them for [`LocalStreams`], which the
//! connection's future polls beside hyper's connection (`codec_conn`).
//!
//! Why: a task per stream cost a spawn (allocation, the future moved into the task's
//! cell, registration), its scheduling, and a wake-up of the connection's task for every
//! response the stream sent (h2 writes from the connection's task). In the connection's
//! task, a stream woken by its upstream answer is polled and its response written in the
//! same poll. Each stream still has its own waker (`FuturesUnordered`), so a wake-up
//! polls only the streams it concerns, a stream that panics ends alone, as its own task
//! did, and streams left when the connection ends finish in a task of their own, after
//! it, as before.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};

use futures_util::future::CatchUnwind;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};

/// One stream's future as hyper hands it over (its type is hyper's own).
type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// hyper's executor for one HTTP/2 connection: queues each stream's future for the
/// connection's [`LocalStreams`]. A channel rather than a shared list: no lock per
/// stream.
#[derive(Clone)]
pub(crate) struct StreamExecutor {
    queue: mpsc::Sender<StreamFuture>,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        if let Err(mpsc::SendError(fut)) = self.queue.send(Box::pin(fut)) {
            // The connection that runs the streams is gone (not expected: hyper calls
            // this from within that connection's poll); the stream runs on its own.
            tokio::spawn(fut);
        }
    }
}

/// The running streams of one connection and those queued to start.
pub(crate) struct LocalStreams {
    queued: mpsc::Receiver<StreamFuture>,
    running: FuturesUnordered<CatchUnwind<AssertUnwindSafe<StreamFuture>>>,
}

impl LocalStreams {
    /// An empty set and the executor that fills it.
    pub(crate) fn new() -> (Self, StreamExecutor) {
        let (queue, queued) = mpsc::channel();
        let streams = Self {
            queued,
            running: FuturesUnordered::new(),
        };
        (streams, StreamExecutor { queue })
    }

    /// Moves the streams queued since the last call to the running set; true if any.
    pub(crate) fn start_queued(&mut self) -> bool {
        let mut started = false;
        while let Ok(fut) = self.queued.try_recv() {
            self.running.push(AssertUnwindSafe(fut).catch_unwind());
            started = true;
        }
        started
    }

    /// Polls the streams whose wakers fired (and those just started) until none is
    /// ready; registers `cx` for the others.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) {
        loop {
            match self.running.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(()))) => {}
                Poll::Ready(Some(Err(_))) => {
                    // The panic hook has reported it; the connection's other streams
                    // go on, as when the stream was a task of its own.
                    tracing::error!("an HTTP/2 stream panicked; its stream ended");
                }
                Poll::Ready(None) | Poll::Pending => return,
            }
        }
    }

    /// Streams started or queued and not yet ended.
    fn is_empty(&mut self) -> bool {
        self.start_queued();
        self.running.is_empty()
    }

    /// Streams started and not yet ended.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.running.len()
    }
}

/// Streams still running when their connection ends (or is dropped, closing) go on in
/// a task of their own, as they did when each was a task: h2 has failed their streams,
/// so they end when next polled, each with its own accounting (a request in flight when
/// the connection went is counted as such, and ends after it).
impl Drop for LocalStreams {
    fn drop(&mut self) {
        if self.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut running = std::mem::take(&mut self.running);
        runtime.spawn(async move {
            while let Some(ended) = running.next().await {
                if ended.is_err() {
                    tracing::error!("an HTTP/2 stream panicked; its stream ended");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use hyper::rt::Executor;

    use super::*;

    #[tokio::test]
    async fn queued_streams_run_when_started_and_a_panicking_one_ends_alone() {
        let (mut streams, exec) = LocalStreams::new();
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = done.clone();
        exec.execute(async move {
            let _ = rx.await;
            waiting.fetch_add(1, Ordering::Relaxed);
        });
        exec.execute(async { panic!("a stream's bug") });
        let at_once = done.clone();
        exec.execute(async move {
            at_once.fetch_add(1, Ordering::Relaxed);
        });
        assert!(streams.start_queued());
        assert!(!streams.start_queued(), "nothing queued twice");
        std::future::poll_fn(|cx| {
            streams.poll_ready(cx);
            Poll::Ready(())
        })
        .await;
        assert_eq!(done.load(Ordering::Relaxed), 1, "the ready one ran");
        assert_eq!(
            streams.len(),
            1,
            "the panicking one ended, the waiting one waits"
        );
        tx.send(()).expect("waiting stream alive");
        std::future::poll_fn(|cx| {
            streams.poll_ready(cx);
            Poll::Ready(())
        })
        .await;
        assert_eq!(done.load(Ordering::Relaxed), 2);
        assert_eq!(streams.len(), 0);
    }

    #[tokio::test]
    async fn streams_left_at_the_end_finish_in_a_task_of_their_own() {
        let (mut streams, exec) = LocalStreams::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
        exec.execute(async move {
            let _ = rx.await;
            let _ = ended_tx.send(());
        });
        std::future::poll_fn(|cx| {
            streams.start_queued();
            streams.poll_ready(cx);
            Poll::Ready(())
        })
        .await;
        // Queued and never started: it runs too.
        let (queued_tx, queued_rx) = tokio::sync::oneshot::channel::<()>();
        exec.execute(async move {
            let _ = queued_tx.send(());
        });
        drop(streams);
        tx.send(()).expect("the stream outlives its set");
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            ended_rx.await.expect("started stream finished");
            queued_rx.await.expect("queued stream finished");
        })
        .await
        .expect("bounded wait");
    }
}
