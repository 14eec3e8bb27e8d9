//! One downstream connection under the HTTP connection manager: runs hyper's codec
//! (HTTP/1.1 or HTTP/2, AUTO by preface), and enforces connection-level behaviour: idle
//! timeout, max connection duration, and drain (HTTP/1.1 `connection: close` then close,
//! HTTP/2 GOAWAY; everything closes when the drain reaches Closed), counting each in
//! `http.<stat_prefix>.downstream_cx_*`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_config::model::HttpConnectionManager;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::access_log::{FormatInput, ResponseFlag, StreamInfo};
use crate::server::conn_info::ConnInfo;
use crate::server::drain::DrainSignal;

use super::codec::{self, DownstreamIo};
use super::context::HttpContext;
use super::stats::{codec_rejected_request, ActiveConnection};
use super::stream::{self, ConnShared};

/// Serves one downstream connection with the HTTP connection manager config until it
/// closes.
pub async fn serve_connection<IO>(
    io: IO,
    conn: ConnInfo,
    hcm: Arc<HttpConnectionManager>,
    ctx: Arc<HttpContext>,
    drain: DrainSignal,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let runtime = match ctx.runtime(&hcm) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the connection manager; closing connection");
            return;
        }
    };
    let _counted = ActiveConnection::open(&runtime);
    let conn = Arc::new(conn);
    let shared = Arc::new(ConnShared {
        runtime: runtime.clone(),
        ctx,
        conn: conn.clone(),
        active: AtomicUsize::new(0),
        idle_since_ms: AtomicU64::new(0),
        born: Instant::now(),
        closing: AtomicBool::new(false),
        http2: AtomicBool::new(false),
    });
    let io = DownstreamIo::new(io, hcm.server_name.to_str().unwrap_or("envoy").to_string())
        .with_stats(runtime.clone());
    let error_status = io.error_status.clone();
    let builder = codec::builder(&hcm);
    let svc_shared = shared.clone();
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let shared = svc_shared.clone();
        if req.version() == http::Version::HTTP_2 {
            shared.http2.store(true, Ordering::Relaxed);
        }
        async move { Ok::<_, Infallible>(stream::handle(shared, req).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);

    let mut draining = drain.clone();
    let mut closed = drain;
    let mut shutting_down = false;
    let mut drain_seen = false;
    let mut force_close_at: Option<Instant> = None;
    let mut codec_error = false;
    let max_duration_at = hcm.max_connection_duration.map(|d| shared.born + d);
    let tick = Duration::from_millis(250).min(hcm.idle_timeout.unwrap_or(Duration::from_secs(1)));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            res = connection.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, conn = conn.id, "downstream connection ended with error");
                    if let Some(e) = e.downcast_ref::<hyper::Error>() {
                        if e.is_timeout() {
                            // hyper's header_read_timeout (request_headers_timeout).
                            runtime.stats.downstream_rq_header_timeout.inc();
                        }
                        codec_error = e.is_parse() || e.is_parse_too_large();
                    }
                }
                break;
            }
            _ = draining.draining(), if !drain_seen => {
                // HTTP/2: GOAWAY now (streams the client already sent still complete).
                // HTTP/1.1: keep serving; the next response carries `connection: close`
                // and the connection ends after it. An idle keep-alive connection is not
                // closed here: closing it races a client that is sending on it (the
                // request would be lost); it closes when the drain reaches Closed.
                drain_seen = true;
                runtime.stats.downstream_cx_drain_close.inc();
                shared.closing.store(true, Ordering::Relaxed);
                if !shutting_down && shared.http2.load(Ordering::Relaxed) {
                    connection.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
            }
            _ = closed.closed() => break,
            _ = ticker.tick() => {
                let now = Instant::now();
                if force_close_at.is_some_and(|t| now >= t) {
                    break;
                }
                if drain_seen && !shutting_down && shared.http2.load(Ordering::Relaxed) {
                    // An HTTP/2 connection whose first request came after drain began.
                    connection.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
                let idle = shared.active.load(Ordering::Relaxed) == 0;
                let idle_for = shared.born.elapsed()
                    .saturating_sub(Duration::from_millis(shared.idle_since_ms.load(Ordering::Relaxed)));
                let idle_expired = idle && hcm.idle_timeout.is_some_and(|t| idle_for >= t);
                let too_old = max_duration_at.is_some_and(|t| now >= t);
                if !shutting_down && (idle_expired || too_old) {
                    if idle_expired {
                        runtime.stats.downstream_cx_idle_timeout.inc();
                    } else {
                        runtime.stats.downstream_cx_max_duration_reached.inc();
                    }
                    shared.closing.store(true, Ordering::Relaxed);
                    connection.as_mut().graceful_shutdown();
                    shutting_down = true;
                    force_close_at = Some(now + hcm.drain_timeout);
                }
            }
        }
    }

    let status = error_status.load(Ordering::Relaxed);
    if status != 0 {
        codec_rejected_request(&runtime, status);
    } else if codec_error {
        runtime.stats.downstream_cx_protocol_error.inc();
    }
    if status != 0 && !runtime.loggers.is_empty() {
        // Envoy logs a protocol error as `"- - HTTP/1.1" 400 DPE`.
        let mut info = StreamInfo::new(conn, Some(http::Version::HTTP_11));
        info.response_code = Some(status);
        info.flags.set(ResponseFlag::DownstreamProtocolError);
        info.bytes_sent = if status == 400 { 11 } else { 31 };
        info.last_downstream_tx = Some(Duration::ZERO);
        runtime.loggers.log(&FormatInput::new(&info));
    }
}
