//! hyper's HTTP/1.1 and HTTP/2 server builders for a connection manager: limits,
//! timers, windows, and the bounds the framing check shares with them.

use baton_config::model::{CodecType, HttpConnectionManager};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use super::FramingLimits;

/// How many client-reset streams the HTTP/2 codec lets wait for the connection manager
/// (nghttp2's reset burst in Envoy).
const RESET_STREAM_BURST: usize = 1000;

/// Sets up hyper's HTTP/1 server for a connection manager: the same on hyper's own
/// builder ([`http1_builder`]) and hyper-util's ([`builder`]).
macro_rules! configure_http1 {
    ($b:expr, $hcm:expr) => {
        $b.timer(TokioTimer::new())
            // request_headers_timeout runs in DownstreamIo: hyper's timer would also run
            // on idle keep-alive connections and close without Envoy's 408.
            .header_read_timeout(None)
            .max_buf_size(http1_read_buffer_limit($hcm))
            .max_headers($hcm.max_headers_count as usize)
            .keep_alive(true)
            .half_close(false)
    };
}

/// hyper's HTTP/1 server builder for this connection manager, for connections known
/// to speak HTTP/1 (those can park between exchanges; hyper-util's protocol-detecting
/// connection cannot hand its I/O back).
pub fn http1_builder(hcm: &HttpConnectionManager) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    configure_http1!(&mut b, hcm);
    b
}

/// Sets up hyper's HTTP/2 server for a connection manager: the same on hyper's own
/// builder ([`http2_builder`]) and hyper-util's ([`builder`]).
macro_rules! configure_http2 {
    ($b:expr, $hcm:expr) => {{
        $b.timer(TokioTimer::new())
            .max_concurrent_streams($hcm.http2.max_concurrent_streams)
            .initial_stream_window_size($hcm.http2.initial_stream_window_size)
            .initial_connection_window_size($hcm.http2.initial_connection_window_size)
            // A memory bound only: h2 counts 32 bytes per header on top of names and
            // values (and answers 431 over it, where Envoy resets the stream); Envoy's
            // limit, names and values only, is checked per request
            // (`http2_header_bytes`), which resets. The bound lets through every request
            // within both Envoy limits, and lists up to one maximal HPACK field over them
            // (see `http2_header_list_bound`).
            .max_header_list_size(http2_header_list_bound($hcm))
            // Streams the client resets before hyper accepted them: h2 closes the
            // connection (ENHANCE_YOUR_CALM) once this many wait, 20 by default, well
            // before Envoy's premature-reset rule (`premature_reset`, which counts these
            // streams too) would. Envoy's codec allows a burst of 1000 resets (nghttp2's
            // default).
            .max_pending_accept_reset_streams(RESET_STREAM_BURST)
            // Every response the connection manager gives has its `date` already
            // (`forwarding::finish_response`): hyper's own check per response is a
            // header-map lookup for nothing.
            .auto_date_header(false);
        if $hcm.http2.allow_connect {
            $b.enable_connect_protocol();
        }
    }};
}

/// A hyper server builder for this connection manager.
pub fn builder(hcm: &HttpConnectionManager) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b = match hcm.codec_type {
        CodecType::Auto => b,
        CodecType::Http1 => b.http1_only(),
        CodecType::Http2 => b.http2_only(),
    };
    configure_http1!(b.http1(), hcm);
    configure_http2!(b.http2(), hcm);
    b
}

/// hyper's HTTP/2 server builder for this connection manager, for connections whose
/// first bytes were the whole HTTP/2 preface (hyper-util's protocol-detecting
/// connection would pick HTTP/2 for them too, and is larger). `exec` runs the streams
/// (the connection's own task: `h2_streams`).
pub fn http2_builder<E>(
    hcm: &HttpConnectionManager,
    exec: E,
) -> hyper::server::conn::http2::Builder<E> {
    let mut b = hyper::server::conn::http2::Builder::new(exec);
    configure_http2!(b, hcm);
    b
}

/// Headroom of the HTTP/2 header list bound over Envoy's limits: the largest header
/// field Envoy's HPACK decoder (nghttp2) takes. Envoy resets the stream (INTERNAL_ERROR)
/// for any list over `max_request_headers_kb` whose fields are smaller; h2 would answer
/// 431 instead once a list passes the bound, so the bound leaves a field's worth of room
/// for the connection manager's reset.
const HTTP2_HEADER_LIST_HEADROOM: usize = 64 * 1024;

/// The `max_header_list_size` the HTTP/2 codec announces and enforces: the
/// `max_request_headers_kb` limit plus h2's 32-byte per-header overhead for as many
/// headers (pseudo-headers included) as `max_headers_count` allows, plus
/// [`HTTP2_HEADER_LIST_HEADROOM`].
fn http2_header_list_bound(hcm: &HttpConnectionManager) -> u32 {
    let limit = (hcm.max_request_headers_kb as usize).saturating_mul(1024);
    let overhead = 32 * (hcm.max_headers_count as usize + 5);
    let bound = limit
        .saturating_add(overhead)
        .saturating_add(HTTP2_HEADER_LIST_HEADROOM);
    u32::try_from(bound).unwrap_or(u32::MAX)
}

/// hyper's HTTP/1 read buffer limit (its limit on a request head) for this connection
/// manager: `max_request_headers_kb`, at least hyper's minimum of 8 KiB.
fn http1_read_buffer_limit(hcm: &HttpConnectionManager) -> usize {
    (hcm.max_request_headers_kb as usize)
        .saturating_mul(1024)
        .max(8192)
}

/// What the HTTP/1 framing check needs from this connection manager.
pub fn framing_limits(hcm: &HttpConnectionManager) -> FramingLimits {
    FramingLimits {
        read_buffer_limit: http1_read_buffer_limit(hcm),
        max_headers: hcm.max_headers_count as usize,
        accept_http_10: hcm.http1.accept_http_10,
    }
}
