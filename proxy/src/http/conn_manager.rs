//! One downstream connection under the HTTP connection manager: runs hyper's codec
//! (HTTP/1.1 or HTTP/2, AUTO by preface; a fixed `codec_type` refuses the other
//! protocol), rejects request heads over `max_request_headers_kb` (431), and enforces
//! connection-level behaviour: idle timeout, max connection duration, max requests per
//! connection, and drain
//! (HTTP/1.1 `connection: close` then close, HTTP/2 GOAWAY; everything closes when the
//! drain reaches Closed), counting each in `http.<stat_prefix>.downstream_cx_*`.

use std::borrow::Borrow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_config::model::{CodecType, UnderscoreHeaders};
use hyper::service::service_fn;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::access_log::{FormatInput, ResponseFlag, StreamInfo};
use crate::base::conn_info::ConnInfo;
use crate::base::drain::{DrainPhase, DrainSignal};
use crate::http::headers::forwarding;
use crate::http::local_reply::LocalReply;

use super::codec::{self, DownstreamIo, Preface};
use super::codec_conn::CodecConnection;
use super::context::{HcmRuntime, HttpContext};
use super::exchange_box::ExchangeBox;
use super::gated::Gate;
use super::h2_messaging;
use super::park_socket::{ParkSocket, ReadReadiness, Reregister};
use super::parked;
use super::stats::{codec_rejected_request, count_closed, count_open, ActiveStream};
use super::stream::{self, ConnShared};
use super::underscore_headers;

/// The service's errors: hyper resets the HTTP/2 stream when the service fails.
#[derive(Debug, thiserror::Error)]
enum StreamRefused {
    /// More headers than `max_headers_count` or larger ones than
    /// `max_request_headers_kb` (INTERNAL_ERROR).
    #[error("request headers over max_headers_count or max_request_headers_kb")]
    TooManyRequestHeaders,
    /// Invalid HTTP/2 messaging (`h2_messaging`; PROTOCOL_ERROR).
    #[error(transparent)]
    Malformed(#[from] h2_messaging::MalformedRequest),
}

/// Serves one downstream connection with the HTTP connection manager config until it
/// closes; `guard` (what counts the connection elsewhere) is dropped when it does. The
/// future may end before the connection: a parked HTTP/1 connection goes on in this
/// thread's parked set and later tasks (see `parked`). (`conn` goes into an `Arc`
/// before the future is made: an async function would keep room for it as long as the
/// connection lives.)
pub fn serve_connection<IO, G>(
    io: IO,
    conn: ConnInfo,
    runtime: Arc<HcmRuntime>,
    ctx: Arc<HttpContext>,
    drain: DrainSignal,
    guard: G,
) -> impl std::future::Future<Output = ()> + Send
where
    IO: AsyncRead + AsyncWrite + Reregister + ReadReadiness + Unpin + Send + 'static,
    G: Send + 'static,
{
    // Built here rather than in the async function, whose future would otherwise keep
    // room for the parts (and the bare socket) for the connection's whole life.
    let hcm = &runtime.hcm;
    let shared = Arc::new(ConnShared::new(runtime.clone(), ctx, conn, drain));
    count_open(&shared);
    let mut io = DownstreamIo::new(ParkSocket::Registered(io))
        .with_stats(runtime.clone())
        .with_request_framing(codec::framing_limits(hcm), shared.clone())
        .deferring_framing_to_lean();
    if let Some(timeout) = hcm.request_headers_timeout {
        io = io.with_request_headers_timeout(timeout, shared.clone());
    }
    let rest = ConnRest {
        codec_reply: Some(io.codec_reply.clone()),
        shared,
        phases: Phases::default(),
        _listener_guard: guard,
    };
    serve(io, rest)
}

/// The connection's first task: the fixed codec's preface check, then hyper until the
/// connection ends or, for HTTP/1, parks between exchanges ([`serve_active`], boxed, so
/// its state exists only while active). A parked connection leaves its task for the
/// parked set, which starts a new one for the client's next bytes
/// ([`ParkedConn::resume_owned`]). (An async block, not an async function: a function's
/// future keeps its arguments and the locals they are moved into, two rooms for the
/// I/O.)
#[allow(clippy::manual_async_fn)]
fn serve<IO, G>(
    mut io: DownstreamIo<ParkSocket<IO>>,
    mut rest: ConnRest<G>,
) -> impl std::future::Future<Output = ()> + Send
where
    IO: AsyncRead + AsyncWrite + Reregister + ReadReadiness + Unpin + Send + 'static,
    G: Send + 'static,
{
    async move {
        let shared = &rest.shared;
        if shared.runtime.hcm.codec_type != CodecType::Auto
            && !Box::pin(sniff_fixed_codec(&mut io, shared)).await
        {
            return;
        }
        let served = Box::pin(serve_active(io, &rest.shared, &mut rest.phases)).await;
        rest.after(served);
    }
}

/// What a connection keeps besides its I/O, active or parked. Counts the connection
/// until it ends: `downstream_cx_active` and the rest of [`count_open`]'s stats (when
/// dropped, from the shared state: no guard of its own) and the guards of the listener
/// that accepted it. `S`: the shared state's form (in its `Arc` while active, see
/// [`ParkedShared`] while parked).
struct ConnRest<G, S: Borrow<ConnShared> = Arc<ConnShared>> {
    shared: S,
    phases: Phases,
    /// The codec's reply record (its I/O's); none while parked without one (see
    /// `codec::IdleIo`).
    codec_reply: Option<Arc<codec::CodecReplyRecord>>,
    _listener_guard: G,
}

impl<G, S: Borrow<ConnShared>> Drop for ConnRest<G, S> {
    fn drop(&mut self) {
        count_closed(self.shared.borrow());
    }
}

impl<G, S: Borrow<ConnShared>> ConnRest<G, S> {
    /// The same connection with its shared state moved into another form by `to`
    /// (counted once: by the value returned).
    fn map_shared<T: Borrow<ConnShared>>(self, to: impl FnOnce(S) -> T) -> ConnRest<G, T> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: each field of `this` is read exactly once, and `this` is never used
        // nor dropped again (`ManuallyDrop`): every part has one owner, the new value
        // (its drop then counts the connection closed, once). `to` moves its argument
        // (no panic: `ParkedShared`'s conversions at most allocate, which aborts on
        // failure).
        #[allow(unsafe_code)]
        let (shared, phases, codec_reply, guard) = unsafe {
            (
                std::ptr::read(&this.shared),
                std::ptr::read(&this.phases),
                std::ptr::read(&this.codec_reply),
                std::ptr::read(&this._listener_guard),
            )
        };
        ConnRest {
            shared: to(shared),
            phases,
            codec_reply,
            _listener_guard: guard,
        }
    }
}

/// A parked connection's shared state: out of its `Arc` when nothing else holds it
/// (streams, the header timer), so that an idle connection keeps it in its parked
/// set's slot rather than in an allocation made at accept among the active
/// connection's short-lived ones (whose freed pages it would keep resident). The `Arc`
/// is made again when the connection resumes. (Unboxed on purpose.)
#[allow(clippy::large_enum_variant)]
pub(super) enum ParkedShared {
    Shared(Arc<ConnShared>),
    Inline(ConnShared),
}

impl ParkedShared {
    fn of(shared: Arc<ConnShared>) -> Self {
        match Arc::try_unwrap(shared) {
            Ok(inline) => ParkedShared::Inline(inline),
            Err(shared) => ParkedShared::Shared(shared),
        }
    }

    fn into_arc(self) -> Arc<ConnShared> {
        match self {
            ParkedShared::Shared(shared) => shared,
            ParkedShared::Inline(inline) => Arc::new(inline),
        }
    }
}

impl Borrow<ConnShared> for ParkedShared {
    fn borrow(&self) -> &ConnShared {
        match self {
            ParkedShared::Shared(shared) => shared,
            ParkedShared::Inline(inline) => inline,
        }
    }
}

impl<G: Send + 'static> ConnRest<G> {
    /// After an active period: the connection parks or ends.
    fn after<IO>(mut self, served: Served<ParkSocket<IO>>)
    where
        IO: AsyncRead + AsyncWrite + Reregister + ReadReadiness + Unpin + Send + 'static,
    {
        match served {
            Served::Ended { codec_error } => self.finish(codec_error),
            Served::Parked(io) => {
                let io = codec::IdleIo::park(io, &self.shared, &mut self.codec_reply);
                // After the I/O's own references went with its active form.
                let rest = self.map_shared(ParkedShared::of);
                parked::park(ParkedConn { io, rest });
            }
        }
    }

    /// The connection is over: the codec's reply or error is counted and logged.
    fn finish(self, codec_error: bool) {
        match &self.codec_reply {
            Some(record) => account_codec_outcome(&self.shared, record, codec_error),
            None => {
                account_codec_outcome(&self.shared, &codec::CodecReplyRecord::new(), codec_error)
            }
        }
    }
}

/// A parked HTTP/1 connection in the parked set: what an idle keep-alive connection
/// costs.
pub(super) struct ParkedConn<IO, G> {
    io: codec::IdleIo<IO>,
    rest: ConnRest<G, ParkedShared>,
}

impl<IO, G> ParkedConn<IO, G>
where
    IO: AsyncRead + AsyncWrite + Reregister + ReadReadiness + Unpin + Send + 'static,
    G: Send + 'static,
{
    /// [`parked::Parked::resume`] of a connection the set holds unboxed.
    pub(super) fn resume_owned(self, read: Vec<u8>) {
        let ParkedConn { io, rest } = self;
        let mut rest = rest.map_shared(ParkedShared::into_arc);
        let mut io = io.into_active(&rest.shared, &mut rest.codec_reply, read);
        if let Err(e) = io.socket_mut().reregister() {
            tracing::debug!(error = %e, "registering a parked connection again");
            drop(io);
            rest.finish(false);
            return;
        }
        tokio::spawn(async move {
            let served = Box::pin(serve_active(io, &rest.shared, &mut rest.phases)).await;
            rest.after(served);
        });
    }

    /// [`parked::Parked::close`] of a connection the set holds unboxed.
    pub(super) fn close_owned(self, shut_write: bool) {
        let ParkedConn { io, rest } = self;
        let mut rest = rest.map_shared(ParkedShared::into_arc);
        let mut io = io.into_active(&rest.shared, &mut rest.codec_reply, Vec::new());
        // A bare socket (see `park_socket`) shuts down as a registered one, at once.
        if !shut_write {
            drop(io);
            rest.finish(false);
            return;
        }
        // As hyper's graceful shutdown of an idle connection: the write side shuts.
        tokio::spawn(async move {
            if let Err(e) = io.shutdown().await {
                tracing::debug!(error = %e, "shutting down an idle connection");
            }
            drop(io);
            rest.finish(false);
        });
    }
}

impl<IO, G> parked::Parked for ParkedConn<IO, G>
where
    IO: AsyncRead + AsyncWrite + Reregister + ReadReadiness + Unpin + Send + 'static,
    G: Send + 'static,
{
    fn shared(&self) -> &ConnShared {
        self.rest.shared.borrow()
    }

    fn phases(&mut self) -> &mut Phases {
        &mut self.rest.phases
    }

    fn poll_unpark(
        &mut self,
        cx: &mut std::task::Context<'_>,
        read: &mut Vec<u8>,
    ) -> std::task::Poll<std::io::Result<bool>> {
        self.io.poll_unpark(cx, read)
    }

    fn deregister(&mut self) -> std::io::Result<Option<std::os::fd::RawFd>> {
        self.io.socket_mut().deregister()
    }

    fn resume(self: Box<Self>, read: Vec<u8>) {
        self.resume_owned(read);
    }

    fn close(self: Box<Self>, shut_write: bool) {
        self.close_owned(shut_write);
    }
}

/// What the connection saw of the drain so far (kept across parks).
#[derive(Debug, Clone, Copy)]
pub(super) struct Phases {
    /// The last drain phase acted on.
    pub(super) seen: DrainPhase,
    /// The drain began while the connection was open.
    pub(super) drain_seen: bool,
}

impl Default for Phases {
    fn default() -> Self {
        Self {
            seen: DrainPhase::Serving,
            drain_seen: false,
        }
    }
}

/// How an active period ended. (Returned once per active period and moved straight
/// into the parked state: boxing the I/O would cost an allocation per park.)
#[allow(clippy::large_enum_variant)]
enum Served<IO> {
    /// The connection is over; `codec_error`: hyper refused what the client sent.
    Ended { codec_error: bool },
    /// An HTTP/1 connection parked between exchanges: its I/O, to wait on.
    Parked(DownstreamIo<IO>),
}

/// Serves `io` with hyper until the connection ends or parks, enforcing the idle
/// timeout, max connection duration and drain meanwhile.
async fn serve_active<IO>(
    io: DownstreamIo<IO>,
    shared: &Arc<ConnShared>,
    phases: &mut Phases,
) -> Served<IO>
where
    IO: AsyncRead + AsyncWrite + ReadReadiness + Unpin + Send + 'static,
{
    let deadlines = &ConnDeadlines::of(shared);
    let runtime = &shared.runtime;
    let hcm = &runtime.hcm;
    let svc_shared = shared.clone();
    let head_limit = (hcm.max_request_headers_kb as usize).saturating_mul(1024);
    let svc_codec_reply = io.codec_reply.clone();
    let max_headers_count = hcm.max_headers_count as usize;
    let max_requests = hcm.max_requests_per_connection.map(u64::from);
    let underscore_headers = hcm.underscore_headers;
    let service = service_fn(move |mut req: http::Request<codec::DownstreamBody>| {
        let shared = svc_shared.clone();
        let codec_reply = svc_codec_reply.clone();
        let heads = shared.request_heads.fetch_add(1, Ordering::Relaxed) + 1;
        if max_requests.is_some_and(|max| heads >= max) {
            max_requests_reached(&shared, req.version());
        }
        shared.awaiting_request_head.store(false, Ordering::Relaxed);
        let mut too_many_headers = false;
        let oversized = if req.version() == http::Version::HTTP_2 {
            shared.http2.store(true, Ordering::Relaxed);
            // Envoy's count and size limits (hyper's HTTP/1 parser enforces the count
            // itself; the codec's max header list size is only a memory bound here).
            let codec_stats = crate::stats::downstream_http2();
            if codec::http2_header_count(&req) > max_headers_count {
                too_many_headers = true;
                codec_stats.header_overflow.inc();
            } else if codec::http2_header_bytes(&req) > head_limit {
                too_many_headers = true;
                codec_stats.header_list_size_too_large.inc();
            }
            false
        } else {
            codec::http1_head_len(&req) > head_limit
        };
        if oversized {
            codec_reply.status.store(431, Ordering::Relaxed);
        }
        let http2 = req.version() == http::Version::HTTP_2;
        let underscores_refused = underscore_headers != UnderscoreHeaders::Allow
            && !too_many_headers
            && !oversized
            && underscore_headers::apply(req.headers_mut(), underscore_headers, http2)
                == underscore_headers::Verdict::Refuse;
        if underscores_refused && !http2 {
            codec_reply.status.store(400, Ordering::Relaxed);
        }
        let malformed_http2 =
            http2 && !too_many_headers && !underscores_refused && h2_messaging::is_invalid(&req);
        async move {
            if malformed_http2 {
                return Err(h2_messaging::refuse(&shared).await.into());
            }
            if underscores_refused {
                if http2 {
                    // Reset as the header limits above are, and logged as Envoy does.
                    drop(ActiveStream::begin(
                        &shared,
                        http::Version::HTTP_2,
                        Instant::now(),
                    ));
                    underscore_headers::log_http2_refusal(&shared);
                    return Err(StreamRefused::TooManyRequestHeaders);
                }
                let (resp, body_len) = codec_refusal(&shared, CodecRefusal::UNDERSCORE);
                let _ = codec_reply.details.set(CodecRefusal::UNDERSCORE.details);
                codec_reply.record(400, resp.status().as_u16(), body_len);
                return Ok(resp);
            }
            if too_many_headers {
                // Envoy's HTTP/2 codec resets such a stream: a service error makes hyper
                // send RST_STREAM INTERNAL_ERROR; the connection keeps serving. Envoy
                // counts it as a request the client reset (`downstream_rq_rx_reset`):
                // the stream ends here unfinished.
                drop(ActiveStream::begin(
                    &shared,
                    http::Version::HTTP_2,
                    Instant::now(),
                ));
                return Err(StreamRefused::TooManyRequestHeaders);
            }
            if oversized {
                let (resp, body_len) = codec_refusal(&shared, CodecRefusal::HEAD_TOO_LARGE);
                codec_reply.record(431, resp.status().as_u16(), body_len);
                return Ok(resp);
            }
            // Boxed once here, so that what hyper moves around per request (its
            // in-flight slot, an HTTP/2 stream's task) is this small future, not the
            // exchange's whole state. The slot is taken before the exchange's future
            // is made, so that the future is built in it rather than on the stack and
            // then copied in whole (several KB); a finished exchange's slot is reused.
            Ok(ExchangeBox::new(|| stream::handle(shared, req)).await)
        }
    });
    let mut connection =
        CodecConnection::new(io, service, hcm.clone(), shared.clone()).releasing_parked();

    // One wait for both drain phases (see `DrainSignal::past`).
    let mut phase_watch = shared.drain.clone();
    let mut shutting_down = false;
    let mut force_close_at: Option<Instant> = None;
    // One timer, armed for the earliest deadline that can fire (idle timeout, max
    // connection duration, the drain timeout after a graceful close) and re-armed when it
    // fires early: an idle connection with nothing due sleeps with no wakeups at all.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut timer_at = deadlines.next(shared, force_close_at, phases.drain_seen, shutting_down);
    if let Some(at) = timer_at {
        timer.as_mut().reset(at.into());
    }

    // The drain and connection-event waits are polled only when their own wakers fire,
    // not on each of the connection's wakeups (see `gated`).
    let drain_gate = Gate::new();
    let events_gate = Gate::new();
    loop {
        let drain_wait = phase_watch.past(phases.seen);
        tokio::pin!(drain_wait);
        let events_wait = shared.conn_events.notified();
        tokio::pin!(events_wait);
        tokio::select! {
            // Biased: the codec first, and no random start per wakeup.
            biased;
            res = &mut connection => {
                shared.codec_ended();
                if let Err(e) = res {
                    tracing::debug!(error = %e, conn = shared.conn.id, "downstream connection ended with error");
                    let codec_error = e
                        .downcast_ref::<hyper::Error>()
                        .is_some_and(|e| e.is_parse() || e.is_parse_too_large());
                    return Served::Ended { codec_error };
                }
                return match connection.take_released() {
                    Some(io) => Served::Parked(io),
                    None => Served::Ended { codec_error: false },
                };
            }
            phase = drain_gate.wait(drain_wait.as_mut()) => {
                phases.seen = phase;
                if phase >= DrainPhase::Closed {
                    break;
                }
                // HTTP/2: GOAWAY now (streams the client already sent still complete).
                // HTTP/1.1: keep serving; responses carry `connection: close` as
                // `--drain-strategy` decides (`DrainSignal::should_close`) and the
                // connection ends after such a response. An idle keep-alive connection is not
                // closed here during a hot restart: closing it races a client that is
                // sending on it (the request would be lost); it closes when the drain
                // reaches Closed. With no successor (SIGTERM) it closes now.
                phases.drain_seen = true;
                runtime.stats.downstream_cx_drain_close.inc();
                shared.draining.store(true, Ordering::Relaxed);
                if !shutting_down && (shared.http2.load(Ordering::Relaxed) || shared.drain.close_idle()) {
                    if shared.drain.close_idle() {
                        shared.closing.store(true, Ordering::Relaxed);
                    }
                    std::pin::Pin::new(&mut connection).graceful_shutdown();
                    shutting_down = true;
                }
            }
            () = events_gate.wait(events_wait.as_mut()) => {
                if shared.premature_resets.tripped() || shared.codec_abort.load(Ordering::Relaxed) {
                    // Envoy aborts the connection (no GOAWAY): too many premature resets,
                    // or a request its HTTP/2 codec refuses (`h2_messaging`).
                    shared.close_locally();
                    break;
                }
                // HTTP/2 at `max_requests_per_connection`: Envoy's drain sequence, as for
                // `max_connection_duration` (GOAWAY; streams already sent complete).
                if shared.max_requests_drain.load(Ordering::Relaxed) && !shutting_down {
                    std::pin::Pin::new(&mut connection).graceful_shutdown();
                    shutting_down = true;
                    force_close_at = Some(Instant::now() + hcm.drain_timeout);
                }
            }
            _ = timer.as_mut(), if timer_at.is_some() => {
                let now = Instant::now();
                if force_close_at.is_some_and(|t| now >= t) {
                    // As Envoy at the end of its drain sequence: streams in flight
                    // finish (HTTP/1.1 answers with `connection: close`, HTTP/2 had its
                    // GOAWAY), then the connection closes (looked at again shortly, as
                    // an HTTP/2 client need not answer the codec's closing PING).
                    if shared.active.load(Ordering::Relaxed) == 0 {
                        shared.close_locally();
                        break;
                    }
                    force_close_at = Some(now + DRAIN_RECHECK);
                }
                if phases.drain_seen
                    && !shutting_down
                    && (shared.http2.load(Ordering::Relaxed) || shared.drain.close_idle())
                {
                    // An HTTP/2 connection whose first request came after drain began, or
                    // a shutdown with no successor decided after the drain began.
                    if shared.drain.close_idle() {
                        shared.closing.store(true, Ordering::Relaxed);
                    }
                    std::pin::Pin::new(&mut connection).graceful_shutdown();
                    shutting_down = true;
                }
                if !shutting_down {
                    if let Some(reason) = deadlines.expired(shared, now) {
                        reason.count(runtime);
                        shared.closing.store(true, Ordering::Relaxed);
                        std::pin::Pin::new(&mut connection).graceful_shutdown();
                        shutting_down = true;
                        force_close_at = Some(now + hcm.drain_timeout);
                    }
                }
            }
        }
        let next = deadlines.next(shared, force_close_at, phases.drain_seen, shutting_down);
        if next != timer_at {
            timer_at = next;
            if let Some(at) = next {
                timer.as_mut().reset(at.into());
            }
        }
    }
    shared.codec_ended();
    Served::Ended { codec_error: false }
}

/// Envoy's `max_requests_per_connection`: a request at or past the limit is counted in
/// `downstream_cx_max_requests_reached` (on HTTP/2 every such stream: those the client
/// sent before the GOAWAY are still served). HTTP/1 answers it with `connection: close`
/// and closes (requests pipelined after it are not served); HTTP/2 starts the drain
/// sequence.
fn max_requests_reached(shared: &ConnShared, version: http::Version) {
    shared
        .runtime
        .stats
        .downstream_cx_max_requests_reached
        .inc();
    if version == http::Version::HTTP_2 {
        shared.max_requests_drain.store(true, Ordering::Relaxed);
        shared.conn_events.notify_one();
    } else {
        shared.closing.store(true, Ordering::Relaxed);
    }
}

/// A fixed `codec_type` reads the first bytes itself (the other protocol is refused);
/// true when the connection goes on to the codec, with the bytes read waiting in `io`.
/// (Boxed by the caller: its state is needed only until the protocol is known.)
async fn sniff_fixed_codec<IO>(io: &mut DownstreamIo<IO>, shared: &Arc<ConnShared>) -> bool
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let runtime = &shared.runtime;
    let conn = &shared.conn;
    let hcm = &runtime.hcm;
    let codec_reply = io.codec_reply.clone();
    let mut closed = shared.drain.clone();
    let idle = async {
        match hcm.idle_timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let sniffed = tokio::select! {
        sniffed = io.sniff_preface(hcm.codec_type == CodecType::Http1) => sniffed,
        _ = closed.closed() => return false,
        _ = idle => {
            runtime.stats.downstream_cx_idle_timeout.inc();
            return false;
        }
    };
    match (hcm.codec_type, sniffed) {
        (_, Err(e)) => {
            tracing::debug!(error = %e, conn = conn.id, "downstream connection ended before its protocol was known");
            account_codec_outcome(shared, &codec_reply, false);
            return false;
        }
        (_, Ok(Preface::Closed)) => return false,
        (CodecType::Http1, Ok(Preface::Http2)) => {
            // The HTTP/1 codec rejects the preface's `PRI * HTTP/2.0` request line.
            if let Err(e) = io.reply_and_close(400).await {
                tracing::debug!(error = %e, conn = conn.id, "could not answer an HTTP/2 preface");
            }
            account_codec_outcome(shared, &codec_reply, false);
            return false;
        }
        (CodecType::Http2, Ok(Preface::Http1)) => {
            // Not the HTTP/2 preface: Envoy's HTTP/2 codec closes without a word.
            runtime.stats.downstream_cx_protocol_error.inc();
            return false;
        }
        _ => {}
    }
    true
}

/// How often a draining connection that has not yet been told to close looks again
/// whether it now should: an HTTP/2 connection whose first request came after the drain
/// began, or a shutdown with no successor decided later. Only draining connections poll.
const DRAIN_RECHECK: Duration = Duration::from_millis(250);

/// The connection-level deadlines of one downstream connection, computed from its state
/// when asked rather than polled.
pub(super) struct ConnDeadlines {
    idle_timeout: Option<Duration>,
    max_duration_at: Option<Instant>,
}

impl ConnDeadlines {
    /// The connection's deadlines from its config and start.
    pub(super) fn of(shared: &ConnShared) -> Self {
        let hcm = &shared.runtime.hcm;
        Self {
            idle_timeout: hcm.idle_timeout,
            max_duration_at: hcm.max_connection_duration.map(|d| shared.born + d),
        }
    }

    /// When the connection went idle (no stream active), or `None` while streams are.
    fn idle_since(shared: &ConnShared) -> Option<Instant> {
        if shared.active.load(Ordering::Relaxed) != 0 {
            return None;
        }
        let idle_ms = shared.idle_since_ms.load(Ordering::Relaxed);
        Some(shared.born + Duration::from_millis(idle_ms))
    }

    /// Whether the idle timeout has run out at `now`.
    fn idle_expired(&self, shared: &ConnShared, now: Instant) -> bool {
        match (self.idle_timeout, Self::idle_since(shared)) {
            (Some(timeout), Some(since)) => now.saturating_duration_since(since) >= timeout,
            _ => false,
        }
    }

    /// Why the connection must close at `now`, if it must: the idle timeout ran out
    /// (looked at first), or the max connection duration passed.
    pub(super) fn expired(&self, shared: &ConnShared, now: Instant) -> Option<Expired> {
        if self.idle_expired(shared, now) {
            Some(Expired::Idle)
        } else if self.max_duration_at.is_some_and(|t| now >= t) {
            Some(Expired::MaxDuration)
        } else {
            None
        }
    }

    /// The earliest instant at which something may have to happen. While streams are
    /// active the idle deadline cannot come sooner than one full timeout from now (the
    /// connection must first go idle), so the timer looks again then: a busy connection
    /// wakes once per idle timeout, an idle one once at its deadline.
    pub(super) fn next(
        &self,
        shared: &ConnShared,
        force_close_at: Option<Instant>,
        drain_seen: bool,
        shutting_down: bool,
    ) -> Option<Instant> {
        if shutting_down {
            // Idle timeout and max duration have done their part; only the drain
            // timeout after the graceful close is left.
            return force_close_at;
        }
        let idle_at = self
            .idle_timeout
            .map(|timeout| match Self::idle_since(shared) {
                Some(since) => since + timeout,
                None => Instant::now() + timeout,
            });
        let drain_at = drain_seen.then(|| Instant::now() + DRAIN_RECHECK);
        [force_close_at, idle_at, self.max_duration_at, drain_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// A connection-level deadline that passed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expired {
    /// `idle_timeout`: no stream for that long.
    Idle,
    /// `max_connection_duration`.
    MaxDuration,
}

impl Expired {
    /// Counts the close in `downstream_cx_idle_timeout` / `_max_duration_reached`.
    pub(super) fn count(self, runtime: &HcmRuntime) {
        match self {
            Expired::Idle => runtime.stats.downstream_cx_idle_timeout.inc(),
            Expired::MaxDuration => runtime.stats.downstream_cx_max_duration_reached.inc(),
        }
    }
}

/// Envoy's 431 for an HTTP/1 request head over `max_request_headers_kb` (hyper's own
/// limit is its read buffer, at least 8 KiB); the connection closes after it. It passes
/// `local_reply_config` (whose mappers see no request headers and no response flag: the
/// codec refused the head before the connection manager had it) and the HTTP filters'
/// response hooks, as Envoy's does. Returns the response and its body's length.
/// A request the HTTP/1 codec refuses from the service (the connection closes after
/// the reply): its status, body and `%RESPONSE_CODE_DETAILS%`.
#[derive(Clone, Copy)]
struct CodecRefusal {
    status: u16,
    body: &'static str,
    details: &'static str,
}

impl CodecRefusal {
    /// A head over `max_request_headers_kb`.
    const HEAD_TOO_LARGE: Self = Self {
        status: 431,
        body: "Request Header Fields Too Large",
        details: "http1.headers_too_large",
    };
    /// A header name with `_` under `headers_with_underscores_action: REJECT_REQUEST`.
    const UNDERSCORE: Self = Self {
        status: 400,
        body: "Bad Request",
        details: "http1.unexpected_underscore",
    };
}

fn codec_refusal(
    shared: &Arc<ConnShared>,
    refusal: CodecRefusal,
) -> (http::Response<super::ResponseBody>, usize) {
    let mut reply = LocalReply::new(
        refusal.status,
        refusal.body,
        Some(ResponseFlag::DownstreamProtocolError),
        refusal.details,
    )
    .closing();
    if let Some(config) = &shared.runtime.hcm.local_reply {
        let mut info = StreamInfo::new(shared.clone(), Some(http::Version::HTTP_11));
        info.response_code_details = Some(reply.details.clone().into());
        super::local_reply_config::rewrite(config, &mut reply, &mut info, None);
    }
    let body_len = reply.body.len();
    let mut resp = reply.into_response(false);
    stream::encode_codec_reply(shared, &mut resp);
    forwarding::finish_response(resp.headers_mut(), &shared.runtime.hcm);
    (resp, body_len)
}

/// Stats and the access log entry for a reply the codec gave on its own (its status:
/// 400 / 431 for a rejected request, 408 for `request_headers_timeout`; 0 for none) or
/// for a protocol error without a reply. Envoy counts and logs the status sent, after
/// `local_reply_config`.
fn account_codec_outcome(
    shared: &Arc<ConnShared>,
    record: &codec::CodecReplyRecord,
    codec_error: bool,
) {
    let runtime = &shared.runtime;
    let status = record.status.load(Ordering::Relaxed);
    if status == 0 {
        if codec_error {
            runtime.stats.downstream_cx_protocol_error.inc();
        }
        return;
    }
    let sent = match record.sent_status.load(Ordering::Relaxed) {
        0 => status,
        sent => sent,
    };
    codec_rejected_request(runtime, status, sent);
    if !runtime.loggers.is_empty() {
        // Envoy logs these as `"- - HTTP/1.1" 400 DPE` (a request without a head).
        let mut info = StreamInfo::new(shared.clone(), Some(http::Version::HTTP_11));
        info.response_code = Some(sent);
        match status {
            408 => info.response_code_details = Some("request_header_timeout".into()),
            431 => {
                info.flags.set(ResponseFlag::DownstreamProtocolError);
                info.response_code_details = Some("http1.headers_too_large".into());
            }
            _ => {
                info.flags.set(ResponseFlag::DownstreamProtocolError);
                if let Some(details) = record.details.get() {
                    info.response_code_details = Some((*details).into());
                }
            }
        }
        info.bytes_sent = match record.body_len.load(Ordering::Relaxed) {
            u32::MAX => codec::codec_reply_body_len(status) as u64,
            len => u64::from(len),
        };
        info.last_downstream_tx = Some(Duration::ZERO);
        runtime.loggers.log(&FormatInput::new(&info));
    }
}
