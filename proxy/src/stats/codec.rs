//! Envoy's codec stats: `http2.*` (downstream HTTP/2 connections of every connection
//! manager share the root scope, as in Envoy 1.40), `cluster.<name>.http2.*` (upstream
//! HTTP/2 connections) and `http1.*`. Envoy creates each family with the first
//! connection of its codec, so these are created on first use too.

use std::sync::OnceLock;

use baton_shared_stats::{Counter, Gauge, Histogram};

use super::Scope;

/// `http2.*` / `cluster.<name>.http2.*`: every name Envoy 1.40 exports. The ones no
/// Baton path moves stay 0 (Envoy's too in the same situations: floods and limits its
/// nghttp2 codec has and h2 handles its own way, oghttp2, metadata, cookies).
#[derive(Clone)]
pub struct Http2CodecStats {
    /// `rx_reset`: RST_STREAM frames received.
    pub rx_reset: Counter,
    /// `tx_reset`: RST_STREAM frames sent.
    pub tx_reset: Counter,
    /// `header_overflow`: streams reset for more headers than `max_headers_count`.
    pub header_overflow: Counter,
    /// `header_list_size_too_large`: streams reset for headers over
    /// `max_request_headers_kb`.
    pub header_list_size_too_large: Counter,
    /// `rx_messaging_error`: requests refused as invalid HTTP/2 messaging (`h2_messaging`).
    pub rx_messaging_error: Counter,
    /// `trailers`: request trailers received.
    pub trailers: Counter,
    /// `requests_rejected_with_underscores_in_headers`: streams reset for a header name
    /// with `_` (`headers_with_underscores_action: REJECT_REQUEST`).
    pub requests_rejected_with_underscores_in_headers: Counter,
    /// `dropped_headers_with_underscores`: headers dropped for `_` in their names
    /// (`DROP_HEADER`).
    pub dropped_headers_with_underscores: Counter,
    /// `nghttp2_downstream_connections`
    pub downstream_connections: Counter,
    /// `nghttp2_upstream_connections`
    pub upstream_connections: Counter,
    /// `streams_active`
    pub streams_active: Gauge,
    /// `inbound_empty_frames_flood`: connections ended for too many frames in a row with
    /// an empty payload (Baton's own codec).
    pub inbound_empty_frames_flood: Counter,
    /// `outbound_control_flood`: connections ended with too many PING/SETTINGS acks and
    /// RST_STREAM frames waiting to be written (a client that does not read).
    pub outbound_control_flood: Counter,
    /// `outbound_flood`: connections ended with too many frames waiting to be written.
    pub outbound_flood: Counter,
    /// `inbound_window_update_frames_flood`
    pub inbound_window_update_frames_flood: Counter,
    /// `inbound_priority_frames_flood`
    pub inbound_priority_frames_flood: Counter,
    /// The rest, held so that they exist.
    _others: Vec<Counter>,
    _gauges: Vec<Gauge>,
    _histograms: Vec<Histogram>,
}

/// Counters Envoy 1.40 exports under `http2.` that Baton keeps at 0.
const HTTP2_OTHER_COUNTERS: &[&str] = &[
    "cookies_total_bytes_too_large",
    "deferred_stream_close",
    "goaway_sent",
    "headers_cb_no_stream",
    "keepalive_timeout",
    "metadata_empty_frames",
    "oghttp2_downstream_connections",
    "oghttp2_upstream_connections",
    "stream_refused_errors",
    "tx_flush_timeout",
];

/// Gauges Envoy 1.40 exports under `http2.` that Baton keeps at 0.
const HTTP2_OTHER_GAUGES: &[&str] = &[
    "outbound_control_frames_active",
    "outbound_frames_active",
    "pending_send_bytes",
];

/// Histograms Envoy 1.40 exports under `http2.` (no values recorded in the cases
/// measured).
const HTTP2_HISTOGRAMS: &[&str] = &[
    "cookie_count",
    "cookie_size",
    "header_count",
    "header_list_size",
];

impl Http2CodecStats {
    /// Handles under `scope` (which ends with `http2.`).
    fn new(scope: &Scope) -> Self {
        let mut s = scope.batch();
        Self {
            rx_reset: s.counter("rx_reset"),
            tx_reset: s.counter("tx_reset"),
            header_overflow: s.counter("header_overflow"),
            rx_messaging_error: s.counter("rx_messaging_error"),
            header_list_size_too_large: s.counter("header_list_size_too_large"),
            trailers: s.counter("trailers"),
            requests_rejected_with_underscores_in_headers: s
                .counter("requests_rejected_with_underscores_in_headers"),
            dropped_headers_with_underscores: s.counter("dropped_headers_with_underscores"),
            downstream_connections: s.counter("nghttp2_downstream_connections"),
            upstream_connections: s.counter("nghttp2_upstream_connections"),
            streams_active: s.gauge("streams_active"),
            inbound_empty_frames_flood: s.counter("inbound_empty_frames_flood"),
            outbound_control_flood: s.counter("outbound_control_flood"),
            outbound_flood: s.counter("outbound_flood"),
            inbound_window_update_frames_flood: s.counter("inbound_window_update_frames_flood"),
            inbound_priority_frames_flood: s.counter("inbound_priority_frames_flood"),
            _others: HTTP2_OTHER_COUNTERS.iter().map(|n| s.counter(n)).collect(),
            _gauges: HTTP2_OTHER_GAUGES.iter().map(|n| s.gauge(n)).collect(),
            _histograms: HTTP2_HISTOGRAMS.iter().map(|n| s.histogram(n)).collect(),
        }
    }

    /// `<prefix>http2.*`, created on the first call for this `slot`.
    pub fn get_or_create<'a>(slot: &'a OnceLock<Box<Self>>, prefix: &Scope) -> &'a Self {
        slot.get_or_init(|| Box::new(Self::new(&prefix.child("http2."))))
    }
}

/// The downstream `http2.*` (root scope), created with the first HTTP/2 connection.
pub fn downstream_http2() -> &'static Http2CodecStats {
    static STATS: OnceLock<Http2CodecStats> = OnceLock::new();
    // Read per HTTP/2 stream: the scope (a clone of the store's handle) is made only
    // the first time, not on every call.
    STATS.get_or_init(|| Http2CodecStats::new(&Scope::new(super::store(), "http2.")))
}

/// `http1.*` (root scope): Envoy 1.40's HTTP/1 codec counters. Baton moves the two
/// of `headers_with_underscores_action`; the others stay 0 (it has no metadata, and its
/// HTTP/1 codec holds responses back instead of queueing them).
pub struct Http1CodecStats {
    /// `requests_rejected_with_underscores_in_headers`
    pub requests_rejected_with_underscores_in_headers: Counter,
    /// `dropped_headers_with_underscores`
    pub dropped_headers_with_underscores: Counter,
    _others: [Counter; 2],
}

/// The `http1.*` counters, created with the first HTTP/1 connection.
pub fn http1() -> &'static Http1CodecStats {
    static STATS: OnceLock<Http1CodecStats> = OnceLock::new();
    STATS.get_or_init(|| {
        let scope = Scope::new(super::store(), "http1.");
        let mut s = scope.batch();
        Http1CodecStats {
            dropped_headers_with_underscores: s.counter("dropped_headers_with_underscores"),
            _others: [
                s.counter("metadata_not_supported_error"),
                s.counter("response_flood"),
            ],
            requests_rejected_with_underscores_in_headers: s
                .counter("requests_rejected_with_underscores_in_headers"),
        }
    })
}

impl std::fmt::Debug for Http2CodecStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2CodecStats").finish_non_exhaustive()
    }
}
