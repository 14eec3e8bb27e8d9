//! The route timeout (`route.timeout`, 15 s unless set; 0 disables it), with Envoy's
//! span: it starts once the downstream request is complete (a slow upload does not eat
//! into it) and ends when the upstream response is complete, body included.
//!
//! Before response headers it fires as the 504 `upstream request timeout` local reply
//! (the router's select); afterwards [`TimedBody`] ends the response body with
//! [`RouteTimeoutElapsed`], which resets the downstream stream (HTTP/1.1: the connection
//! closes mid-body; HTTP/2: the stream is reset) and logs response flag `UT`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::stats::ClusterStats;
use crate::upstream::BoxError;

use super::body::RequestProgress;

/// The route timeout's timer: waits for the request to complete, then for the timeout.
pub(crate) enum RouteDeadline {
    /// The request was complete when sent (most are: no body, or a small one read with
    /// the head): the stream's own timer keeps the deadline (`RequestProgress`), so a
    /// request arms one timer, not two. Polled only in the stream's task, whose timer
    /// wakes it; once the response head is in, [`TimedBody`] takes over.
    Stream(Arc<RequestProgress>),
    /// A timer of its own, started once the request completes.
    Own(Pin<Box<dyn Future<Output = ()> + Send + Sync>>),
}

impl RouteDeadline {
    /// A timer of `timeout` that starts when `progress` reports the request complete
    /// (`now` when it already is: the caller's clock read). Must be polled in the task that runs the stream's timers (`stream::handle`).
    pub(crate) fn new(timeout: Duration, progress: Arc<RequestProgress>, now: Instant) -> Self {
        if progress.complete.load(std::sync::atomic::Ordering::Acquire) {
            progress.arm_route_deadline(timeout, now);
            return Self::Stream(progress);
        }
        Self::Own(Box::pin(async move {
            progress.wait_complete().await;
            tokio::time::sleep(timeout).await;
        }))
    }
}

impl Future for RouteDeadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut *self {
            Self::Stream(progress) => {
                if progress.route_timed_out() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
            Self::Own(timer) => timer.as_mut().poll(cx),
        }
    }
}

/// What remains of the route timeout while the response body arrives.
enum BodyDeadline {
    /// The deadline kept by the stream's timer, which no longer runs: a timer of its
    /// own is made when the body first waits.
    At(Instant, Option<Pin<Box<Sleep>>>),
    Own(RouteDeadline),
}

impl BodyDeadline {
    fn new(deadline: RouteDeadline) -> Self {
        match deadline {
            RouteDeadline::Stream(progress) => {
                let at = if progress.route_timed_out() {
                    Instant::now()
                } else {
                    progress.start() + progress.route_deadline().unwrap_or(Duration::ZERO)
                };
                Self::At(at, None)
            }
            own => Self::Own(own),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Self::At(at, sleep) => sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until((*at).into())))
                .as_mut()
                .poll(cx),
            Self::Own(deadline) => Pin::new(deadline).poll(cx),
        }
    }
}

/// The response body ended early because the route timeout elapsed after the response
/// headers had been sent.
#[derive(Debug, thiserror::Error)]
#[error("upstream request timeout")]
pub(crate) struct RouteTimeoutElapsed;

/// An upstream response body under the rest of the route timeout.
pub(crate) struct TimedBody<B> {
    inner: B,
    /// `None` once the body ended (or the timeout fired).
    deadline: Option<BodyDeadline>,
    stats: Arc<ClusterStats>,
}

impl<B> TimedBody<B> {
    /// Wraps `inner`, failing it when `deadline` fires first (counted in the cluster's
    /// `upstream_rq_timeout`).
    pub(crate) fn new(inner: B, deadline: RouteDeadline, stats: Arc<ClusterStats>) -> Self {
        Self {
            inner,
            deadline: Some(BodyDeadline::new(deadline)),
            stats,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(polled) = Pin::new(&mut this.inner).poll_frame(cx) {
            if polled.is_none() || this.inner.is_end_stream() {
                this.deadline = None;
            }
            return Poll::Ready(polled.map(|r| r.map_err(Into::into)));
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.poll(cx).is_ready() {
                this.deadline = None;
                this.stats.upstream_rq_timeout.inc();
                return Poll::Ready(Some(Err(Box::new(RouteTimeoutElapsed))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_timer_starts_when_the_request_completes() {
        let progress = Arc::new(RequestProgress::new(Instant::now()));
        let mut deadline =
            RouteDeadline::new(Duration::from_secs(1), progress.clone(), Instant::now());
        // A request still uploading after many timeouts' worth of time has not timed out.
        let waited = tokio::time::timeout(Duration::from_secs(10), &mut deadline).await;
        assert!(waited.is_err(), "fired before the request completed");
        progress.mark_complete();
        let started = tokio::time::Instant::now();
        deadline.await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
