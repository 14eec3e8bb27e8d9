//! The streams of one downstream HTTP/2 connection, run in that connection's own task
//! instead of one tokio task each. hyper's HTTP/2 server hands every stream's future
//! (the connection manager's service call, then the response body's pipe into h2) to
//! its executor, from within the connection's poll; [`StreamExecutor`] hands them to
//! that connection's [`LocalStreams`], which the connection's future polls beside
//! hyper's connection (`codec_conn`).
//!
//! Why: a task per stream cost a spawn (allocation, the future moved into the task's
//! cell, registration), its scheduling, and a wake-up of the connection's task for every
//! response the stream sent (h2 writes from the connection's task). In the connection's
//! task, a stream woken by its upstream answer is polled and its response written in the
//! same poll. Each stream still has its own waker (`FuturesUnordered`), so a wake-up
//! polls only the streams it concerns, a stream that panics ends alone, as its own task
//! did, and streams left when the connection ends finish in a task of their own, after
//! it, as before.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::future::CatchUnwind;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};

/// One stream's future as hyper hands it over (its type is hyper's own).
type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Numbers the connections, so that a stream handed over lands in its own connection.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// The streams hyper hands over during the connection poll in progress on this thread
/// (hyper calls its executor from within that poll). One list per thread rather than a
/// channel per connection: no lock or allocation per stream, and an idle connection
/// holds nothing for it (a channel's blocks were about 1.5 KiB per connection).
struct Handover {
    /// The connection being polled (0: none).
    connection: u64,
    streams: Vec<StreamFuture>,
}

thread_local! {
    static HANDOVER: RefCell<Handover> = const {
        RefCell::new(Handover {
            connection: 0,
            streams: Vec::new(),
        })
    };
}

/// hyper's executor for one HTTP/2 connection: a stream handed over while that
/// connection is being polled (always, for streams hyper accepts) goes to the
/// connection's [`LocalStreams`]; anything else (a CONNECT tunnel's task, started from
/// a stream) runs as a task of its own, as before.
#[derive(Clone)]
pub(crate) struct StreamExecutor {
    connection: u64,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut fut = Some(fut);
        let _ = HANDOVER.try_with(|handover| {
            if let Ok(mut handover) = handover.try_borrow_mut() {
                if handover.connection == self.connection {
                    if let Some(fut) = fut.take() {
                        handover.streams.push(Box::pin(fut));
                    }
                }
            }
        });
        if let Some(fut) = fut {
            tokio::spawn(fut);
        }
    }
}

/// The running streams of one connection.
pub(crate) struct LocalStreams {
    connection: u64,
    /// Made for the first stream and dropped when the last one ends, so that an idle
    /// connection holds none of it.
    running: Option<FuturesUnordered<CatchUnwind<AssertUnwindSafe<StreamFuture>>>>,
}

impl LocalStreams {
    /// An empty set and the executor that fills it.
    pub(crate) fn new() -> (Self, StreamExecutor) {
        let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let streams = Self {
            connection,
            running: None,
        };
        (streams, StreamExecutor { connection })
    }

    /// Runs `poll_connection` (hyper's connection poll) with this connection's executor
    /// taking the streams it starts, and adds them to the running set; also says
    /// whether any started.
    pub(crate) fn accepting<T>(&mut self, poll_connection: impl FnOnce() -> T) -> (T, bool) {
        let _ = HANDOVER.try_with(|handover| {
            if let Ok(mut handover) = handover.try_borrow_mut() {
                handover.connection = self.connection;
            }
        });
        let polled = poll_connection();
        let mut started = false;
        let _ = HANDOVER.try_with(|handover| {
            if let Ok(mut handover) = handover.try_borrow_mut() {
                handover.connection = 0;
                if handover.streams.is_empty() {
                    return;
                }
                let running = self.running.get_or_insert_with(FuturesUnordered::new);
                for fut in handover.streams.drain(..) {
                    running.push(AssertUnwindSafe(fut).catch_unwind());
                }
                started = true;
            }
        });
        (polled, started)
    }

    /// Polls the streams whose wakers fired (and those just started) until none is
    /// ready; registers `cx` for the others.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) {
        let Some(running) = &mut self.running else {
            return;
        };
        loop {
            match running.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(()))) => {}
                Poll::Ready(Some(Err(_))) => {
                    // The panic hook has reported it; the connection's other streams
                    // go on, as when the stream was a task of its own.
                    tracing::error!("an HTTP/2 stream panicked; its stream ended");
                }
                Poll::Ready(None) => {
                    self.running = None;
                    return;
                }
                Poll::Pending => return,
            }
        }
    }

    /// Streams started and not yet ended.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.running.as_ref().map_or(0, FuturesUnordered::len)
    }
}

/// Streams still running when their connection ends (or is dropped, closing) go on in
/// a task of their own, as they did when each was a task: h2 has failed their streams,
/// so they end when next polled, each with its own accounting (a request in flight when
/// the connection went is counted as such, and ends after it).
impl Drop for LocalStreams {
    fn drop(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        if running.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
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
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use hyper::rt::Executor;

    use super::*;

    /// Polls `streams` once, as the connection's future does.
    async fn poll_once(streams: &mut LocalStreams) {
        std::future::poll_fn(|cx| {
            streams.poll_ready(cx);
            Poll::Ready(())
        })
        .await;
    }

    #[tokio::test]
    async fn streams_handed_over_in_the_poll_run_and_a_panicking_one_ends_alone() {
        let (mut streams, exec) = LocalStreams::new();
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = done.clone();
        let at_once = done.clone();
        let ((), started) = streams.accepting(|| {
            exec.execute(async move {
                let _ = rx.await;
                waiting.fetch_add(1, Ordering::Relaxed);
            });
            exec.execute(async { panic!("a stream's bug") });
            exec.execute(async move {
                at_once.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert!(started);
        assert_eq!(streams.len(), 3, "all three in the set, none run yet");
        poll_once(&mut streams).await;
        assert_eq!(done.load(Ordering::Relaxed), 1, "the ready one ran");
        assert_eq!(
            streams.len(),
            1,
            "the panicking one ended, the waiting one waits"
        );
        tx.send(()).expect("waiting stream alive");
        poll_once(&mut streams).await;
        assert_eq!(done.load(Ordering::Relaxed), 2);
        assert!(streams.running.is_none(), "an idle connection holds no set");
    }

    #[tokio::test]
    async fn a_stream_handed_over_outside_the_poll_is_a_task_of_its_own() {
        let (mut streams, exec) = LocalStreams::new();
        let (_other, other_exec) = LocalStreams::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // Another connection's executor during this connection's poll, then this one's
        // outside it: neither lands here.
        let ((), started) = streams.accepting(|| {
            other_exec.execute(async {});
        });
        assert!(!started);
        exec.execute(async move {
            let _ = tx.send(());
        });
        assert_eq!(streams.len(), 0);
        tokio::time::timeout(std::time::Duration::from_secs(5), rx)
            .await
            .expect("bounded wait")
            .expect("ran as a task");
    }

    #[tokio::test]
    async fn streams_left_at_the_end_finish_in_a_task_of_their_own() {
        let (mut streams, exec) = LocalStreams::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
        streams.accepting(|| {
            exec.execute(async move {
                let _ = rx.await;
                let _ = ended_tx.send(());
            });
        });
        poll_once(&mut streams).await;
        drop(streams);
        tx.send(()).expect("the stream outlives its set");
        tokio::time::timeout(std::time::Duration::from_secs(5), ended_rx)
            .await
            .expect("bounded wait")
            .expect("stream finished");
    }
}
