//! Body wrappers on the request path: request bodies count bytes and report progress
//! (for `request_timeout` / `stream_idle_timeout`); response bodies count bytes, write
//! the access log entry and end the request's stats when the response ends or is
//! abandoned.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::access_log::{FormatInput, RequestHead, ResponseFlag, StreamInfo};
use crate::upstream::BoxError;

use super::context::HcmRuntime;
use super::stats::ActiveStream;

/// Request progress shared between the request body and the stream's timers.
#[derive(Debug)]
pub struct RequestProgress {
    start: Instant,
    /// Body bytes received.
    pub bytes: AtomicU64,
    /// The request (headers and body) has been fully received; set through
    /// [`Self::mark_complete`] so waiters (the route timeout) wake.
    pub complete: AtomicBool,
    /// Wakes [`Self::wait_complete`] callers.
    completed: tokio::sync::Notify,
    /// The client's body could not be read for its framing (a malformed chunk); not set
    /// when the client merely went away mid-body.
    downstream_malformed: AtomicBool,
    /// Milliseconds since start of the last body activity.
    pub last_activity_ms: AtomicU64,
    /// The selected route's `idle_timeout` in milliseconds, which replaces the
    /// connection manager's `stream_idle_timeout` ([`NO_ROUTE_IDLE_TIMEOUT`]: the route
    /// has none; 0: disabled for this route).
    route_idle_timeout_ms: AtomicU64,
    /// The stream's duration limit from its start (`max_stream_duration`), in
    /// milliseconds; [`NO_ROUTE_IDLE_TIMEOUT`]: none.
    max_duration_ms: AtomicU64,
    /// The route timeout's deadline in nanoseconds from `start` while the stream's own
    /// timer keeps it (one timer per stream instead of two); [`NO_DEADLINE`]: none.
    route_deadline_ns: AtomicU64,
    /// The stream's timer found the route deadline passed (see [`Self::route_timed_out`]).
    route_timed_out: AtomicBool,
    /// A deadline the stream's timer reads changed since it last looked.
    timers_changed: AtomicBool,
}

/// `route_deadline_ns` when the stream's timer keeps no route deadline.
const NO_DEADLINE: u64 = u64::MAX;

/// `route_idle_timeout_ms` when the route does not override the stream idle timeout.
const NO_ROUTE_IDLE_TIMEOUT: u64 = u64::MAX;

impl RequestProgress {
    /// Progress of a request starting now.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            bytes: AtomicU64::new(0),
            complete: AtomicBool::new(false),
            completed: tokio::sync::Notify::new(),
            downstream_malformed: AtomicBool::new(false),
            last_activity_ms: AtomicU64::new(0),
            route_idle_timeout_ms: AtomicU64::new(NO_ROUTE_IDLE_TIMEOUT),
            max_duration_ms: AtomicU64::new(NO_ROUTE_IDLE_TIMEOUT),
            route_deadline_ns: AtomicU64::new(NO_DEADLINE),
            route_timed_out: AtomicBool::new(false),
            timers_changed: AtomicBool::new(false),
        }
    }

    /// When the stream started (the stream's deadlines count from it).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Hands the route timeout, starting at `now` (the caller's clock read), to the
    /// stream's timer (which must be running in the task that polls
    /// [`Self::route_timed_out`]).
    pub fn arm_route_deadline(&self, timeout: Duration, now: Instant) {
        let at = now
            .saturating_duration_since(self.start)
            .saturating_add(timeout);
        let ns = u64::try_from(at.as_nanos()).unwrap_or(NO_DEADLINE - 1);
        self.route_deadline_ns.store(ns, Ordering::Relaxed);
        self.timers_changed.store(true, Ordering::Relaxed);
    }

    /// The route deadline the stream's timer keeps, from the stream's start.
    pub fn route_deadline(&self) -> Option<Duration> {
        match self.route_deadline_ns.load(Ordering::Relaxed) {
            NO_DEADLINE => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// The stream's timer found the route deadline passed: [`Self::route_timed_out`]
    /// says so from now on.
    pub fn route_deadline_passed(&self) {
        self.route_deadline_ns.store(NO_DEADLINE, Ordering::Relaxed);
        self.route_timed_out.store(true, Ordering::Relaxed);
    }

    /// Whether the route deadline kept by the stream's timer has passed.
    pub fn route_timed_out(&self) -> bool {
        self.route_timed_out.load(Ordering::Relaxed)
    }

    /// True (once) when a deadline the stream's timer reads changed since the last call.
    pub fn take_timers_changed(&self) -> bool {
        self.timers_changed.load(Ordering::Relaxed)
            && self.timers_changed.swap(false, Ordering::Relaxed)
    }

    /// Records the selected route's stream duration limit (None: no limit).
    pub fn set_max_duration(&self, limit: Option<Duration>) {
        let ms = limit.map_or(NO_ROUTE_IDLE_TIMEOUT, |d| {
            u64::try_from(d.as_millis()).unwrap_or(NO_ROUTE_IDLE_TIMEOUT - 1)
        });
        self.max_duration_ms.store(ms, Ordering::Relaxed);
        self.timers_changed.store(true, Ordering::Relaxed);
    }

    /// The stream's duration limit, from its start.
    pub fn max_duration(&self) -> Option<Duration> {
        match self.max_duration_ms.load(Ordering::Relaxed) {
            NO_ROUTE_IDLE_TIMEOUT => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// When the stream's duration limit passes, if it has one.
    pub fn max_duration_deadline(&self) -> Option<Instant> {
        self.max_duration().map(|limit| self.start + limit)
    }

    /// Records the selected route's `idle_timeout` (zero disables the idle timeout).
    pub fn set_route_idle_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(NO_ROUTE_IDLE_TIMEOUT - 1);
        self.route_idle_timeout_ms
            .store(ms.min(NO_ROUTE_IDLE_TIMEOUT - 1), Ordering::Relaxed);
        self.timers_changed.store(true, Ordering::Relaxed);
    }

    /// Forgets the route's `idle_timeout` (a re-selected route has none).
    pub fn clear_route_idle_timeout(&self) {
        self.route_idle_timeout_ms
            .store(NO_ROUTE_IDLE_TIMEOUT, Ordering::Relaxed);
        self.timers_changed.store(true, Ordering::Relaxed);
    }

    /// The stream idle timeout in force: the route's when it set one, else
    /// `connection_default` (the connection manager's `stream_idle_timeout`).
    pub fn idle_timeout(&self, connection_default: Option<Duration>) -> Option<Duration> {
        match self.route_idle_timeout_ms.load(Ordering::Relaxed) {
            NO_ROUTE_IDLE_TIMEOUT => connection_default,
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The whole request has arrived.
    pub fn mark_complete(&self) {
        self.complete.store(true, Ordering::Release);
        self.completed.notify_waiters();
    }

    /// Whether the client's body broke its own framing (see [`CountingBody`]).
    pub fn downstream_malformed(&self) -> bool {
        self.downstream_malformed.load(Ordering::Acquire)
    }

    /// Resolves once the whole request has arrived (at once if it already has).
    pub async fn wait_complete(&self) {
        loop {
            // Registered before the check, so a completion in between still wakes us.
            let notified = self.completed.notified();
            if self.complete.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn touch(&self) {
        self.last_activity_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// The downstream request body on its way upstream.
#[derive(Debug)]
pub struct CountingBody<B> {
    inner: B,
    progress: Arc<RequestProgress>,
}

impl<B> CountingBody<B> {
    /// Wraps `inner`; an already-finished body marks the request complete at once.
    pub fn new(inner: B, progress: Arc<RequestProgress>) -> Self
    where
        B: Body,
    {
        if inner.is_end_stream() {
            progress.mark_complete();
        }
        Self { inner, progress }
    }
}

impl<B> Body for CountingBody<B>
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
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.progress
                        .bytes
                        .fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                this.progress.touch();
                if this.inner.is_end_stream() {
                    this.progress.mark_complete();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let err: BoxError = e.into();
                if !cut_short(&*err) {
                    this.progress
                        .downstream_malformed
                        .store(true, Ordering::Release);
                }
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => {
                this.progress.mark_complete();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a body read error only says the client went away before the body ended
/// (hyper reports an unexpected EOF), rather than that its bytes were malformed.
fn cut_short(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        let incomplete = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_incomplete_message());
        let eof = e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
        // Baton's own HTTP/2 codec: the client reset the stream or the connection ended.
        let gone = e
            .downcast_ref::<super::lean_h2::body::BodyError>()
            .is_some_and(|b| !matches!(b, super::lean_h2::body::BodyError::LengthMismatch));
        if incomplete || eof || gone {
            return true;
        }
        cause = e.source();
    }
    false
}

/// What an access log entry needs once the response is done.
#[derive(Debug)]
pub struct PendingLog {
    /// Compiled config (loggers).
    pub runtime: Arc<HcmRuntime>,
    /// Stream facts.
    pub info: StreamInfo,
    /// The request as forwarded.
    pub request: Option<RequestHead>,
    /// The response headers as sent.
    pub response_headers: HeaderMap,
    /// The response trailers, once sent.
    pub response_trailers: Option<HeaderMap>,
    /// Request byte counter.
    pub progress: Arc<RequestProgress>,
}

impl PendingLog {
    fn write(mut self, ended: bool) {
        let elapsed = self.info.elapsed();
        if !ended {
            self.info
                .flags
                .set(ResponseFlag::DownstreamConnectionTermination);
        }
        self.info.last_downstream_tx = Some(elapsed);
        self.info.bytes_received = self.progress.bytes.load(Ordering::Relaxed);
        let req = self.request.as_ref();
        let input = FormatInput {
            method: req.map(|r| &r.method),
            uri: req.map(|r| &r.uri),
            request_headers: req.map(|r| &r.headers),
            response_headers: Some(&self.response_headers),
            response_trailers: self.response_trailers.as_ref(),
            ..FormatInput::new(&self.info)
        };
        self.runtime.loggers.log(&input);
    }
}

/// A response body that logs and ends the request's stats when it finishes (or is
/// dropped unfinished): every [`super::ResponseBody`]. One allocation holds the
/// finishing and the body that produced the response, so the body is boxed once: it
/// is made before the stream knows its finishing ([`Self::unfinished`]), which is
/// filled in when the stream answers ([`Self::set_finishing`]). A pointer as small as
/// a boxed body, as the response moves through the exchange's steps.
pub struct LoggedBody(
    Box<Finishing<dyn Body<Data = Bytes, Error = BoxError> + Send + Sync + Unpin>>,
);

/// What [`LoggedBody`] does when its body ends, and the body.
struct Finishing<B: ?Sized> {
    log: Option<Box<PendingLog>>,
    stream: Option<ActiveStream>,
    sent: u64,
    inner: B,
}

impl std::fmt::Debug for LoggedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedBody")
            .field("sent", &self.0.sent)
            .finish()
    }
}

impl LoggedBody {
    /// `inner`, with nothing to do when it finishes until [`Self::set_finishing`] says
    /// what.
    pub(crate) fn unfinished<B>(inner: B) -> Self
    where
        B: Body<Data = Bytes, Error = BoxError> + Send + Sync + Unpin + 'static,
    {
        Self(Box::new(Finishing {
            log: None,
            stream: None,
            sent: 0,
            inner,
        }))
    }

    /// The stream's finishing (with an access log entry to write when access logs are
    /// configured); an empty body finishes at once. A body whose finishing was filled
    /// in already keeps it, inside a body with the new one.
    pub(crate) fn set_finishing(&mut self, log: Option<Box<PendingLog>>, stream: ActiveStream) {
        if self.0.stream.is_some() || self.0.log.is_some() {
            let earlier = std::mem::replace(self, super::stream_empty_body());
            *self = Self::unfinished(earlier);
        }
        let this = &mut *self.0;
        this.log = log;
        this.stream = Some(stream);
        if this.inner.is_end_stream() {
            this.finish(true);
        }
    }
}

impl<B: ?Sized> Finishing<B> {
    fn finish(&mut self, ended: bool) {
        if let Some(stream) = self.stream.take() {
            stream.complete();
        }
        if let Some(mut log) = self.log.take() {
            log.info.bytes_sent = self.sent;
            log.write(ended);
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self.0;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
                if let (Some(trailers), Some(log)) = (frame.trailers_ref(), this.log.as_mut()) {
                    log.response_trailers = Some(trailers.clone());
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(None) => this.finish(true),
            Poll::Ready(Some(Err(e))) => {
                if let Some(stream) = this.stream.take() {
                    stream.tx_reset();
                }
                if let Some(log) = this.log.as_mut() {
                    // Envoy logs no flag for a stream its duration limit reset.
                    if !e.is::<super::max_duration::MaxDurationElapsed>() {
                        let flag = if e.is::<super::route_timeout::RouteTimeoutElapsed>() {
                            ResponseFlag::UpstreamRequestTimeout
                        } else {
                            ResponseFlag::UpstreamRemoteReset
                        };
                        log.info.flags.set(flag);
                    }
                }
                this.finish(true);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.0.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(mut log) = self.0.log.take() {
            log.info.bytes_sent = self.0.sent;
            log.write(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_idle_timeout_overrides_the_connection_managers() {
        let default = Some(Duration::from_secs(300));
        let progress = RequestProgress::new(Instant::now());
        assert_eq!(progress.idle_timeout(default), default);
        progress.set_route_idle_timeout(Duration::from_millis(300));
        assert_eq!(
            progress.idle_timeout(default),
            Some(Duration::from_millis(300))
        );
        progress.set_route_idle_timeout(Duration::ZERO);
        assert_eq!(progress.idle_timeout(default), None, "0 disables");
    }
}
