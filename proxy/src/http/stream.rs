//! One request/response exchange (an HTTP "stream" in Envoy's words): validation,
//! normalisation, forwarding headers and the first route selection, then the HTTP filter
//! chain (`filter`: request hooks, the router, response hooks), timeouts, the final
//! response headers and the access log entry.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use baton_config::model::SchemeTransformation;
use http::header::{CONNECTION, HOST, LOCATION};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, Version};

use crate::access_log::{FormatInput, RequestHead, StreamInfo};
use crate::base::conn_info::ConnInfo;

use super::body::{PendingLog, RequestProgress};
use super::codec::DownstreamBody;
use super::context::{HcmRuntime, HttpContext};
use super::filter::{self, RequestBodySlot, StreamFilters};
use super::headers::{compact, forwarding, hop_by_hop, mutation, repeated};
use super::local_reply::LocalReply;
use super::max_duration::DurationBody;
use super::router::route_match::PeerCertificateState;
use super::router::Routed;
use super::stats::ActiveStream;
use super::{normalize, ResponseBody};

/// Per-connection state every stream on it shares.
#[derive(Debug)]
pub struct ConnShared {
    /// Compiled connection manager config.
    pub runtime: Arc<HcmRuntime>,
    /// Clusters and compiled configs.
    pub ctx: Arc<HttpContext>,
    /// The downstream connection (in this allocation: access logs hold it through
    /// [`crate::base::conn_info::ConnRef`]).
    pub conn: ConnInfo,
    /// Streams in flight (connection idle timeout).
    pub active: std::sync::atomic::AtomicUsize,
    /// Milliseconds since the connection started when it last became idle.
    pub idle_since_ms: std::sync::atomic::AtomicU64,
    /// Connection start.
    pub born: std::time::Instant,
    /// Set by idle timeout / max_connection_duration / max_requests_per_connection / a
    /// shutdown with no successor: every HTTP/1.1 response carries `connection: close`.
    pub closing: std::sync::atomic::AtomicBool,
    /// Set when the drain starts: each HTTP/1.1 response asks `drain.should_close()`
    /// (`--drain-strategy`: immediate = always, gradual = rising probability).
    pub draining: std::sync::atomic::AtomicBool,
    /// The process's drain signal.
    pub drain: crate::base::drain::DrainSignal,
    /// The connection speaks HTTP/2 (seen on its first request): drain sends GOAWAY.
    pub http2: std::sync::atomic::AtomicBool,
    /// HTTP/1: no exchange is in progress and the last request was read whole, so the
    /// next bytes from the client begin a request head (arms `request_headers_timeout`).
    pub awaiting_request_head: std::sync::atomic::AtomicBool,
    /// Request heads received on this connection (tells the header timer a head it
    /// is timing arrived, and the HTTP/1 framing check which request hyper refuses).
    pub request_heads: std::sync::atomic::AtomicU64,
    /// The next response head goes out as `HTTP/1.1` even to an HTTP/1.0 client (whose
    /// answers hyper writes as `HTTP/1.0`): Envoy's 426 refusing HTTP/1.0 speaks 1.1.
    pub http11_status_line: std::sync::atomic::AtomicBool,
    /// The next response head (a HEAD answer without a length) gets
    /// `transfer-encoding: chunked`, which hyper leaves out of HEAD answers.
    pub head_chunked: std::sync::atomic::AtomicBool,
    /// Set when an HTTP/2 stream reaches `max_requests_per_connection` or is refused an
    /// upgrade: the connection starts its drain sequence (GOAWAY). Wakes `conn_events`.
    pub max_requests_drain: std::sync::atomic::AtomicBool,
    /// Set when an HTTP/2 request is one Envoy's codec refuses by ending the connection
    /// (`h2_messaging`): the connection closes without a GOAWAY. Wakes `conn_events`.
    pub codec_abort: std::sync::atomic::AtomicBool,
    /// Wakes the connection's task for what streams decided about the connection
    /// (`max_requests_drain`, `premature_resets` tripped): one wait for both.
    pub conn_events: tokio::sync::Notify,
    /// Streams ended before their response started (Envoy's rapid-reset rule).
    pub premature_resets: super::premature_reset::PrematureResets,
    /// Streams whose response body ended or was dropped (HTTP/1: with `request_heads`,
    /// tells the codec that no exchange is in progress, so an idle connection may park).
    pub streams_ended: std::sync::atomic::AtomicU64,
    /// HTTP/1: hyper is waiting for a next request that has not begun, with every
    /// response out (set by the codec's I/O, cleared by the next bytes).
    pub idle_read: std::sync::atomic::AtomicBool,
    /// HTTP/1: the connection has idled long enough to park: the next idle read ends
    /// hyper's connection (set by `codec_conn`, cleared by the next bytes or the park).
    pub park_now: std::sync::atomic::AtomicBool,
    /// HTTP/1: the codec was told to close once the exchange in progress is over (a
    /// graceful shutdown): the lean loop closes at once between exchanges.
    pub shutdown_asked: std::sync::atomic::AtomicBool,
    /// Streams begun (with `streams_ended`: whether requests were in flight when the
    /// connection ended, `downstream_cx_destroy_active_rq`).
    pub streams_begun: std::sync::atomic::AtomicU64,
    /// How the connection ended, for `downstream_cx_destroy_local` / `_remote` and
    /// `_active_rq` (see [`ConnShared::ended`]).
    pub end: ConnEnd,
}

/// How a downstream connection ended, as Envoy counts it. Envoy closes an HTTP/1
/// connection it decided to end (`connection: close` asked or answered, HTTP/1.0, a codec
/// error and its 400, `request_headers_timeout` and its 408, the idle timeout,
/// `max_requests_per_connection`, drain) after a delay of up to `delayed_close_timeout`
/// (1 s), in which a client that read its response closes first: `remote` (a client that
/// waits for the close instead sees `local` after the delay). Baton closes at once and
/// counts those `remote`; `local` is left for the closes Envoy makes without a delay (the
/// premature-reset rule, the end of a drain). Requests in flight are looked at when the
/// connection ends.
#[derive(Debug, Default)]
pub struct ConnEnd {
    local: std::sync::atomic::AtomicBool,
    /// Set once the codec ended: whether streams were in flight then.
    active_rq: std::sync::atomic::AtomicBool,
}

impl ConnShared {
    /// Envoy would count this connection's end as `local` (see [`ConnEnd`]).
    pub fn close_locally(&self) {
        self.end.local.store(true, Ordering::Relaxed);
    }

    /// The codec ended (the client went or the proxy closed): whether requests were in
    /// flight is noted now, before their futures are dropped.
    pub(crate) fn codec_ended(&self) {
        let begun = self.streams_begun.load(Ordering::Relaxed);
        let ended = self.streams_ended.load(Ordering::Relaxed);
        if begun > ended {
            self.end.active_rq.store(true, Ordering::Relaxed);
        }
    }

    /// An HTTP/1 stream was dropped unfinished: its connection ends with it in flight.
    pub(crate) fn stream_abandoned(&self) {
        self.end.active_rq.store(true, Ordering::Relaxed);
    }

    /// (closed locally, requests were in flight) for the destroy counters.
    pub(crate) fn ended(&self) -> (bool, bool) {
        (
            self.end.local.load(Ordering::Relaxed),
            self.end.active_rq.load(Ordering::Relaxed),
        )
    }
}

impl ConnShared {
    /// The shared state of a connection accepted now, before its first request.
    pub fn new(
        runtime: Arc<HcmRuntime>,
        ctx: Arc<HttpContext>,
        conn: ConnInfo,
        drain: crate::base::drain::DrainSignal,
    ) -> Self {
        Self {
            runtime,
            ctx,
            conn,
            active: Default::default(),
            idle_since_ms: Default::default(),
            born: std::time::Instant::now(),
            closing: Default::default(),
            draining: Default::default(),
            drain,
            http2: Default::default(),
            awaiting_request_head: std::sync::atomic::AtomicBool::new(true),
            request_heads: Default::default(),
            http11_status_line: Default::default(),
            head_chunked: Default::default(),
            max_requests_drain: Default::default(),
            codec_abort: Default::default(),
            conn_events: Default::default(),
            premature_resets: Default::default(),
            streams_ended: Default::default(),
            idle_read: Default::default(),
            park_now: Default::default(),
            shutdown_asked: Default::default(),
            streams_begun: Default::default(),
            end: Default::default(),
        }
    }
}

impl crate::base::conn_info::HoldsConnInfo for ConnShared {
    fn conn_info(&self) -> &ConnInfo {
        &self.conn
    }
}

/// State of one exchange while it is being handled.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub shared: Arc<ConnShared>,
    pub info: StreamInfo,
    pub progress: Arc<RequestProgress>,
    /// Snapshot of the request for access logs (only when loggers exist).
    pub log_head: Option<RequestHead>,
    /// The request's head once the exchange answered it ([`Self::answer`]), for the
    /// response's finishing (HEAD, `always_set_request_id_in_response`). Kept here
    /// rather than returned beside the response: each await it passed through copied
    /// it.
    pub request_head: Option<Parts>,
    /// What the connection manager knows of the request's headers as it left them, for
    /// the router to use instead of looking them up again; None until then, and when
    /// filters run before the router (they may change the headers).
    pub request_facts: Option<RequestFacts>,
}

/// Request headers as the connection manager left them ([`Exchange::request_facts`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts {
    /// `content-type` is gRPC's (`local_reply::is_grpc_request`).
    pub grpc: bool,
    /// `x-envoy-internal: true` is there: the forwarding step sets it for internal
    /// clients and removes any a client sent otherwise (`forwarding::mutate_request`).
    pub internal: bool,
}

impl Exchange {
    /// The exchange's answer `resp` to the request whose head was `parts` (kept for
    /// the response's finishing).
    pub(crate) fn answer(
        &mut self,
        resp: Response<ResponseBody>,
        parts: Parts,
    ) -> Response<ResponseBody> {
        self.request_head = Some(parts);
        resp
    }

    /// [`Self::local_reply`] as the exchange's answer ([`Self::answer`]).
    pub(crate) fn reply_to(
        &mut self,
        reply: LocalReply,
        parts: Parts,
        routed: Option<Routed<'_>>,
    ) -> Response<ResponseBody> {
        let resp = self.local_reply(reply, &parts, routed);
        self.answer(resp, parts)
    }

    /// Remembers the request as it stands for the access log.
    pub(crate) fn snapshot(&mut self, parts: &Parts) {
        if !self.shared.runtime.loggers.is_empty() {
            self.log_head = Some(RequestHead {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
            });
        }
    }

    /// Turns a local reply into the response, applying response header mutations of the
    /// route when one was selected.
    pub(crate) fn local_reply(
        &mut self,
        reply: LocalReply,
        parts: &Parts,
        routed: Option<Routed<'_>>,
    ) -> Response<ResponseBody> {
        let mut reply = reply;
        self.record_local_reply(&mut reply, Some(parts));
        if self.log_head.is_none() {
            self.snapshot(parts);
        }
        let http2 = self.info.protocol == Some(Version::HTTP_2);
        // An HTTP/1 request whose body is still unread when the proxy answers ends its
        // connection (as Envoy: the rest of the body is never read).
        if !http2 && !self.progress.complete.load(Ordering::Relaxed) {
            reply.close = true;
        }
        let head = parts.method == Method::HEAD;
        let bodiless = reply.body.is_empty();
        let mut resp = if super::local_reply::is_grpc_request(&parts.headers) {
            reply.into_grpc_response(http2)
        } else {
            reply.into_response(http2)
        };
        if head {
            // A HEAD answer keeps the length of the body it would have had (none when
            // there is no body: Envoy's HTTP/1 codec then says `transfer-encoding:
            // chunked`, see `finish`), and sends no body on either codec.
            if bodiless {
                resp.headers_mut().remove(http::header::CONTENT_LENGTH);
            }
            *resp.body_mut() = super::stream_empty_body();
        }
        if let Some(r) = routed {
            self.apply_response_mutations(resp.headers_mut(), parts, r, None, true);
        }
        resp
    }

    /// Records a local reply's flag and details, then applies `local_reply_config`.
    pub(crate) fn record_local_reply(&mut self, reply: &mut LocalReply, parts: Option<&Parts>) {
        if let Some(flag) = reply.flag {
            self.info.flags.set(flag);
        }
        self.info.response_code_details = Some(reply.details.clone().into());
        if let Some(config) = &self.shared.runtime.hcm.local_reply {
            super::local_reply_config::rewrite(config, reply, &mut self.info, parts);
        }
    }

    /// `local_reply`: the headers are a local reply's, which `%RESP(...)%` does not see
    /// (Envoy adds the route's headers to a local reply before its own).
    pub(crate) fn apply_response_mutations(
        &self,
        headers: &mut http::HeaderMap,
        parts: &Parts,
        r: Routed<'_>,
        weighted: Option<&baton_config::model::HeaderMutations>,
        local_reply: bool,
    ) {
        let rc = r.config;
        let mut levels = mutation::levels(
            &rc.headers,
            &r.vhost.headers,
            &r.route.headers,
            weighted,
            rc.most_specific_header_mutations_wins,
        )
        .peekable();
        // Most routes mutate nothing: skip the copies the values would read from.
        if levels.peek().is_none() {
            return;
        }
        // `%RESPONSE_CODE%` is the upstream's status here, and 0 on a local reply (Envoy
        // adds the headers before it records a local reply's code).
        let snapshot = if local_reply {
            http::HeaderMap::new()
        } else {
            headers.clone()
        };
        let input = FormatInput {
            method: Some(&parts.method),
            uri: Some(&parts.uri),
            request_headers: Some(&parts.headers),
            response_headers: Some(&snapshot),
            ..FormatInput::new(&self.info)
        };
        for level in levels {
            mutation::apply_response(headers, level, &input);
        }
    }
}

/// Handles one request end to end.
pub async fn handle(
    shared: Arc<ConnShared>,
    req: Request<DownstreamBody>,
) -> Response<ResponseBody> {
    shared.active.fetch_add(1, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let counted = ActiveStream::begin(&shared, req.version(), started);
    let stats = &shared.runtime.stats;
    let mut ex = Exchange {
        info: StreamInfo::starting_at(shared.clone(), Some(req.version()), started),
        progress: Arc::new(RequestProgress::new(started)),
        log_head: None,
        request_head: None,
        request_facts: None,
        shared: shared.clone(),
    };
    let runtime = shared.runtime.clone();
    let hcm = &runtime.hcm;
    let progress = ex.progress.clone();
    // Until a route says otherwise, the connection manager's limit.
    progress.set_max_duration(hcm.max_stream_duration);
    // Envoy takes whatever follows an HTTP/1 upgrade or CONNECT request as tunnel bytes,
    // so an answer that does not switch protocols ends the connection. The HTTP/1 framing
    // check relies on it: it stops following the connection at such a head.
    let is_connect = req.method() == Method::CONNECT;
    // The upgrade the request asks for, read once (the routing step checks it against
    // `upgrade_configs`).
    let upgrade = if is_connect {
        Some("connect".to_string())
    } else {
        hop_by_hop::upgrade_type(req.headers())
    };
    let upgrade_request = matches!(
        req.version(),
        Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11
    ) && upgrade.is_some();
    // An HTTP/1.0 client that did not ask for keep-alive: Envoy says `connection: close`
    // on the answer before it closes.
    // The request's parts are gone when a stream timer answers: its gRPC-ness is kept.
    let grpc = super::local_reply::is_grpc_request(req.headers());
    let http10_close = req.version() == Version::HTTP_10
        && !hop_by_hop::connection_has(req.headers(), "keep-alive");
    if http_body::Body::is_end_stream(req.body()) {
        progress.mark_complete();
    }
    // The route table this request is routed with, even if RDS replaces it meanwhile.
    let routes = runtime.routes.current();
    let mut filters = StreamFilters::new(&runtime.filters, &routes);
    // A timer's reply goes through local_reply_config, whose mappers and formats read
    // the request (as Envoy's do); the request itself moves into `work`, so keep its head
    // when there is such a config.
    let timer_reply_head = hcm.local_reply.as_ref().map(|_| request_head(&req));
    let request_timeout = hcm.request_timeout;
    let outcome = {
        // In place, not boxed: the connection manager boxes this whole future once
        // (see `conn_manager`), and a second box would be a second allocation and copy.
        // `pin!` on the call builds the future in this future's own state: a future
        // made first and then pinned or awaited is copied whole into it (several KB
        // along the exchange's nesting: router, forward, the upstream send), which is
        // why the exchange's awaits below it pin their calls the same way.
        let mut work = std::pin::pin!(route_and_act(&mut ex, &mut filters, req, upgrade, grpc));
        // One timer for every deadline of the stream (the route timeout included, see
        // `route_timeout`), armed for the earliest and re-armed when it fires early or
        // a deadline changes; nothing due arms nothing.
        let mut sleep = std::pin::pin!(tokio::time::sleep_until(started.into()));
        let mut armed = false;
        let timers = std::future::poll_fn(|cx| loop {
            if !progress.take_timers_changed() {
                if !armed {
                    return std::task::Poll::Pending;
                }
                if std::future::Future::poll(sleep.as_mut(), cx).is_pending() {
                    return std::task::Poll::Pending;
                }
            }
            // Next deadline: request_timeout while the request is incomplete, the
            // stream's duration limit, the stream idle timeout since the last request
            // activity, and the route timeout.
            let now = started.elapsed();
            let mut wait: Option<Duration> = None;
            let mut due = |d: Duration| wait = Some(wait.map_or(d, |w| w.min(d)));
            if let Some(rt) = request_timeout {
                if !progress.complete.load(Ordering::Relaxed) {
                    if now >= rt {
                        stats.downstream_rq_timeout.inc();
                        return std::task::Poll::Ready(LocalReply::request_timeout());
                    }
                    due(rt - now);
                }
            }
            if let Some(max) = progress.max_duration() {
                if now >= max {
                    stats.downstream_rq_max_duration_reached.inc();
                    return std::task::Poll::Ready(LocalReply::max_duration(
                        progress.complete.load(Ordering::Relaxed),
                    ));
                }
                due(max - now);
            }
            if let Some(it) = progress.idle_timeout(hcm.stream_idle_timeout) {
                let last = Duration::from_millis(progress.last_activity_ms.load(Ordering::Relaxed));
                let idle = now.saturating_sub(last);
                if idle >= it {
                    stats.downstream_rq_idle_timeout.inc();
                    return std::task::Poll::Ready(LocalReply::stream_idle_timeout(
                        progress.complete.load(Ordering::Relaxed),
                    ));
                }
                due(it - idle);
            }
            if let Some(at) = progress.route_deadline() {
                if now >= at {
                    // The router's wait for the upstream (polled in this task) answers
                    // its 504 on the next poll.
                    progress.route_deadline_passed();
                    cx.waker().wake_by_ref();
                } else {
                    due(at - now);
                }
            }
            armed = wait.is_some();
            if let Some(wait) = wait {
                let at = started + now + wait.max(Duration::from_millis(1));
                sleep.as_mut().reset(at.into());
            }
        });
        // Biased: `work` routes synchronously on its first poll (before its first await),
        // so the route's idle_timeout is recorded before the timers first read it.
        tokio::select! {
            biased;
            resp = work.as_mut() => Ok(resp),
            reply = timers => Err(reply),
        }
    };
    let mut resp = match outcome {
        Ok(resp) => resp,
        Err(mut reply) => {
            ex.record_local_reply(&mut reply, timer_reply_head.as_ref());
            let http2 = ex.info.protocol == Some(Version::HTTP_2);
            if grpc {
                reply.into_grpc_response(http2)
            } else {
                reply.into_response(http2)
            }
        }
    };
    // Set when the exchange answered (a stream timer's reply has none).
    let parts = ex.request_head.take();
    // Every response passes the filters' response hooks, whatever produced it.
    filter::encode_headers(&mut filters, &mut ex, &mut resp);
    if http10_close {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }

    let refused_upgrade = upgrade_request
        && !if is_connect {
            resp.status().is_success()
        } else {
            resp.status() == http::StatusCode::SWITCHING_PROTOCOLS
        };
    finish(&mut ex, &mut resp, parts.as_ref(), counted);
    if refused_upgrade {
        // After `server` and `date`, where Envoy's codec writes it.
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    shared.active.fetch_sub(1, Ordering::Relaxed);
    // A request whose body is still arriving (the response came first) is not followed
    // by a new head yet; the header timer stays off until the next exchange ends.
    shared
        .awaiting_request_head
        .store(progress.complete.load(Ordering::Relaxed), Ordering::Relaxed);
    shared
        .idle_since_ms
        .store(shared.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    resp
}

/// A copy of `req`'s method, target, version and headers.
fn request_head<B>(req: &Request<B>) -> Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = req.method().clone();
    head.uri = req.uri().clone();
    head.version = req.version();
    head.headers = req.headers().clone();
    head
}

/// Runs the filters' response hooks over a reply the connection manager gave before the
/// request reached [`handle`] (the 431 for an oversized HTTP/1 head).
pub(crate) fn encode_codec_reply(shared: &Arc<ConnShared>, resp: &mut Response<ResponseBody>) {
    let runtime = &shared.runtime;
    if runtime.filters.is_empty() {
        return;
    }
    let mut ex = Exchange {
        shared: shared.clone(),
        info: StreamInfo::new(shared.clone(), Some(Version::HTTP_11)),
        progress: Arc::new(RequestProgress::new(std::time::Instant::now())),
        log_head: None,
        request_head: None,
        request_facts: None,
    };
    let routes = runtime.routes.current();
    let mut filters = StreamFilters::new(&runtime.filters, &routes);
    filter::encode_headers(&mut filters, &mut ex, resp);
}

/// Common response finishing: server/via/date, connection close on drain, stats and
/// access log (both end with the response body).
fn finish(
    ex: &mut Exchange,
    resp: &mut Response<ResponseBody>,
    parts: Option<&Parts>,
    mut counted: ActiveStream,
) {
    let hcm = ex.shared.runtime.hcm.clone();
    if ex.info.protocol == Some(Version::HTTP_2) {
        // Before the connection manager's own headers, which are already compact.
        compact::compact_values(resp.headers_mut());
    }
    forwarding::finish_response(resp.headers_mut(), &hcm);
    if let Some(p) = parts {
        if hcm.always_set_request_id_in_response {
            if let Some(id) = p.headers.get(&forwarding::X_REQUEST_ID) {
                resp.headers_mut()
                    .insert(forwarding::X_REQUEST_ID.clone(), id.clone());
            }
        }
    }
    if let Some(id) = ex.info.force_trace_request_id.take() {
        resp.headers_mut()
            .insert(forwarding::X_REQUEST_ID.clone(), id);
    }
    let close = ex.shared.closing.load(Ordering::Relaxed)
        || (ex.shared.draining.load(Ordering::Relaxed) && ex.shared.drain.should_close());
    if close && ex.info.protocol != Some(Version::HTTP_2) {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    // The status line speaks the downstream's protocol, not the upstream's: an HTTP/1.0
    // upstream's answer goes out as HTTP/1.1 (the codec lowers it for HTTP/1.0 clients
    // and keeps their keep-alive). A closing answer to an HTTP/1.0 client is marked 1.0
    // so the codec does not offer `keep-alive` next to `close`.
    let closing = resp
        .headers()
        .get(CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    if closing
        && ex.info.protocol == Some(Version::HTTP_2)
        && ex.info.response_code_details.as_deref() == Some("upgrade_failed")
    {
        // Envoy marks the connection closing when it refuses an upgrade or CONNECT (403),
        // which over HTTP/2 starts the drain sequence (GOAWAY, then the close).
        ex.shared.max_requests_drain.store(true, Ordering::Relaxed);
        ex.shared.conn_events.notify_one();
    }
    if closing && ex.info.protocol == Some(Version::HTTP_10) {
        *resp.version_mut() = Version::HTTP_10;
    } else if resp.version() == Version::HTTP_10 {
        *resp.version_mut() = Version::HTTP_11;
    }
    if ex.info.protocol != Some(Version::HTTP_2) {
        let status = resp.status();
        super::reason::set_envoy_reason(status, resp.extensions_mut());
    }
    // Envoy's HTTP/1.1 codec frames a HEAD answer without a length as chunked (the
    // header only); hyper drops the header on HEAD answers, so the codec wrapper adds it.
    let head = parts.is_some_and(|p| p.method == Method::HEAD);
    if head
        && ex.info.protocol == Some(Version::HTTP_11)
        && !resp.headers().contains_key(http::header::CONTENT_LENGTH)
        && !resp.status().is_informational()
        && !matches!(resp.status().as_u16(), 204 | 304)
    {
        ex.shared.head_chunked.store(true, Ordering::Relaxed);
    }
    ex.info.response_code = Some(resp.status().as_u16());
    counted.response_started(resp.status().as_u16());
    // Boxed where it is built: an `Option<PendingLog>` passed on is a copy of the whole
    // entry's room (the stream info and the rest) even when it is None, on every request.
    let log = (!ex.shared.runtime.loggers.is_empty()).then(|| {
        Box::new(PendingLog {
            runtime: ex.shared.runtime.clone(),
            info: ex.info.clone(),
            request: ex.log_head.take(),
            response_headers: resp.headers().clone(),
            response_trailers: None,
            progress: ex.progress.clone(),
        })
    });
    if let Some(deadline) = ex.progress.max_duration_deadline() {
        if !http_body::Body::is_end_stream(resp.body()) {
            let reached = ex
                .shared
                .runtime
                .stats
                .downstream_rq_max_duration_reached
                .clone();
            let body = std::mem::replace(resp.body_mut(), super::stream_empty_body());
            *resp.body_mut() = super::response_body(DurationBody::new(body, deadline, reached));
        }
    }
    resp.body_mut().set_finishing(log, counted);
}

/// Validation, normalisation, forwarding headers and the first route selection, then the
/// filters' request hooks and the router. `upgrade`: the upgrade the request asks for
/// (`connect` for CONNECT). Returns the response; the request's head goes into `ex`
/// ([`Exchange::answer`]).
async fn route_and_act(
    ex: &mut Exchange,
    filters: &mut StreamFilters<'_>,
    req: Request<DownstreamBody>,
    mut upgrade: Option<String>,
    grpc: bool,
) -> Response<ResponseBody> {
    let (mut parts, body) = req.into_parts();
    let runtime = ex.shared.runtime.clone();
    let hcm = &runtime.hcm;
    // HTTP/2 carries the host in `:authority`, an HTTP/1 absolute-form target in its URL,
    // which then replaces any `host` header (as in Envoy, which forwards `:authority` when
    // an HTTP/2 request has both and they disagree); routing and upstreams read `host`.
    // (An HTTP/1 CONNECT's authority-form target is not a URL.)
    let authority_wins = parts.version == Version::HTTP_2 || parts.method != Method::CONNECT;
    if authority_wins || !parts.headers.contains_key(HOST) {
        if let Some(a) = parts.uri.authority() {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                parts.headers.insert(HOST, v);
            }
        }
    }
    if parts.version == Version::HTTP_2 {
        repeated::join_cookie_crumbs(&mut parts.headers);
    }
    let mut has_host = repeated::join_repeated_host(&mut parts.headers);
    if parts.version == Version::HTTP_10 || parts.version == Version::HTTP_09 {
        if !hcm.http1.accept_http_10 {
            ex.shared.http11_status_line.store(true, Ordering::Relaxed);
            // Envoy's codec refuses it before the request exists: its log line shows no
            // request, `DPE` and HTTP/1.1.
            let reply = LocalReply::new(
                426,
                "Upgrade Required",
                Some(crate::access_log::ResponseFlag::DownstreamProtocolError),
                "low_version",
            )
            .closing();
            let resp = ex.reply_to(reply, parts, None);
            ex.log_head = None;
            ex.info.protocol = Some(Version::HTTP_11);
            return resp;
        }
        if !has_host {
            if let Some(h) = hcm
                .http1
                .default_host_for_http_10
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok())
            {
                parts.headers.insert(HOST, h);
                has_host = true;
            }
        }
    }
    if !has_host {
        let reply = LocalReply::new(
            400,
            "",
            Some(crate::access_log::ResponseFlag::DownstreamProtocolError),
            "missing_host_header",
        )
        .closing();
        return ex.reply_to(reply, parts, None);
    }
    // Path and Host normalisation come before anything reads them (as in Envoy).
    let routing_host = match normalize::request_target(
        &mut parts,
        hcm,
        ex.shared.conn.local.port(),
        &runtime.stats,
    ) {
        Ok(host) => host,
        Err(refusal) => {
            let mut resp = ex.local_reply(refusal.reply, &parts, None);
            if let Some(location) = refusal.location {
                resp.headers_mut().insert(LOCATION, location);
            }
            return ex.answer(resp, parts);
        }
    };
    let facts = forwarding::mutate_request(&mut parts.headers, &ex.shared.conn, hcm);
    ex.info.downstream_remote = facts.remote;
    // Nothing between here and the router changes these headers unless a filter runs.
    if runtime.filters.is_empty() {
        ex.request_facts = Some(RequestFacts {
            grpc,
            internal: facts.internal,
        });
    }
    if let SchemeTransformation::Overwrite(scheme) = hcm.scheme {
        super::scheme::overwrite(&mut parts, &mut ex.info, scheme);
    }
    // `internal_only_headers` may have named the upgrade's headers (read again then).
    if !hcm.route_config.internal_only_headers.is_empty() && parts.method != Method::CONNECT {
        upgrade = hop_by_hop::upgrade_type(&parts.headers);
    }

    // The route the filter chain starts with (Envoy selects it when it creates the
    // chain); per-route filter overrides and upgrade checks read it.
    filters.route.set_routing_host(routing_host);
    let conn = &ex.shared.conn;
    let peer_certificate = conn
        .tls_info
        .as_deref()
        .map(|t| PeerCertificateState {
            presented: !t.peer_chain.is_empty(),
            validated: t.peer_validated,
        })
        .unwrap_or_default();
    filters.route.set_connection(
        super::scheme::of_connection(hcm.scheme, conn.tls),
        peer_certificate,
    );
    filter::refresh_route(filters, ex, &parts);
    if hcm.tracing.is_some() || facts.internal {
        let route_sampling = filters
            .route
            .current()
            .and_then(|selection| selection.routed.route.tracing.as_deref());
        super::trace_decision::on_request(
            &mut parts.headers,
            hcm,
            route_sampling,
            runtime.stats.tracing.as_ref(),
            facts.internal,
            &mut ex.info,
        );
    }
    filters.start_chain();

    // Upgrades (websocket, CONNECT) must be enabled by upgrade_configs; the connection
    // manager refuses them before any filter runs.
    let is_connect = parts.method == Method::CONNECT;
    if let (Some(kind), Some(selection)) = (&upgrade, filters.route.current()) {
        if let Err(reply) =
            filter::router::upgrade_mode(kind, is_connect, selection.routed, hcm, &runtime.stats)
        {
            return ex.reply_to(reply, parts, None);
        }
    }

    let mut body = RequestBodySlot::new(body, &ex.progress);
    // Pinned in place (see `handle`), in a block that ends the borrows it holds.
    let decoded = {
        let decoding = std::pin::pin!(filter::decode_headers(filters, ex, &mut parts, &mut body));
        decoding.await
    };
    if let Some(reply) = decoded {
        // A filter's local reply does not get the route's response header mutations
        // (as in Envoy).
        return ex.reply_to(reply, parts, None);
    }
    let chain = filters.chain();
    let routing =
        std::pin::pin!(chain
            .router()
            .route(ex, filters, parts, body, upgrade.as_deref()));
    let routed = routing.await;
    routed
}
