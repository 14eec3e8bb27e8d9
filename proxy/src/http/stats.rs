//! The connection manager's stats lifecycle: guards that count one downstream
//! connection, one request ("stream") and one upgraded tunnel in `http.<stat_prefix>.*`
//! (and `listener.<address>.http.<stat_prefix>.*`) from start to end, whichever way they
//! end. Every handle was resolved when the connection manager config was compiled, so
//! these are relaxed atomic adds only.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::Version;

use crate::stats::record_ms;

use super::context::HcmRuntime;
use super::premature_reset;
use super::stream::ConnShared;

/// One downstream connection opened: `downstream_cx_total` / `_active` (and
/// `downstream_cx_ssl_total` / `_active` over TLS). [`count_closed`] undoes it when the
/// connection ends (called by what holds the connection's state, so that a connection
/// carries no guard of its own: the runtime, start and TLS flag are in `shared`).
pub(crate) fn count_open(shared: &ConnShared) {
    let stats = &shared.runtime.stats;
    stats.downstream_cx_total.inc();
    stats.downstream_cx_active.inc();
    if shared.conn.tls {
        stats.downstream_cx_ssl_total.inc();
        stats.downstream_cx_ssl_active.inc();
    }
}

/// One downstream connection ended: `downstream_cx_active` (and `_ssl_active`) down,
/// `_destroy` (and `_destroy_local` / `_remote` / `_active_rq` as [`ConnShared::ended`]
/// says) and `downstream_cx_length_ms` (since `shared.born`).
pub(crate) fn count_closed(shared: &ConnShared) {
    let stats = &shared.runtime.stats;
    stats.downstream_cx_active.dec();
    if shared.conn.tls {
        stats.downstream_cx_ssl_active.dec();
    }
    stats.downstream_cx_destroy.inc();
    shared.codec_ended();
    let (local, active_rq) = shared.ended();
    stats.downstream_cx_destroy_by.record(local, active_rq);
    record_ms(&stats.downstream_cx_length_ms, shared.born.elapsed());
}

/// One request from its headers until its response was sent (or abandoned).
/// Counts `downstream_rq_total`, `_http1_total`/`_http2_total` and `_active` at once,
/// the status class when the response starts, then either `downstream_rq_completed` and
/// `downstream_rq_time` ([`Self::complete`]), `downstream_rq_tx_reset` ([`Self::tx_reset`]:
/// the proxy broke off the response), or, dropped unfinished, `downstream_rq_rx_reset`
/// (the client went away first). Its end feeds the connection's premature-reset rule,
/// which may close the connection (`downstream_rq_too_many_premature_resets`).
#[derive(Debug)]
pub(crate) struct ActiveStream {
    conn: Arc<ConnShared>,
    started: Instant,
    ended: bool,
    /// The response headers went out.
    responded: bool,
    /// An HTTP/2 stream (`http2.streams_active`).
    http2: bool,
}

impl ActiveStream {
    pub(crate) fn begin(conn: &Arc<ConnShared>, version: Version, started: Instant) -> Self {
        let stats = &conn.runtime.stats;
        conn.streams_begun.fetch_add(1, Ordering::Relaxed);
        stats.downstream_rq_total.inc();
        let http2 = version == Version::HTTP_2;
        if http2 {
            stats.downstream_rq_http2_total.inc();
            crate::stats::downstream_http2().streams_active.inc();
        } else {
            stats.downstream_rq_http1_total.inc();
        }
        stats.downstream_rq_active.inc();
        Self {
            conn: conn.clone(),
            started,
            ended: false,
            responded: false,
            http2,
        }
    }

    /// The response headers go out with `status` (`downstream_rq_<class>xx`).
    pub(crate) fn response_started(&mut self, status: u16) {
        self.responded = true;
        let runtime = &self.conn.runtime;
        runtime.stats.downstream_rq_xx.record(status);
        if let Some(l) = &runtime.listener_stats {
            l.downstream_rq_xx.record(status);
        }
    }

    /// The whole response was sent.
    pub(crate) fn complete(mut self) {
        self.ended = true;
        let runtime = &self.conn.runtime;
        let stats = &runtime.stats;
        stats.downstream_rq_completed.inc();
        if let Some(l) = &runtime.listener_stats {
            l.downstream_rq_completed.inc();
        }
        record_ms(&stats.downstream_rq_time, self.started.elapsed());
    }

    /// The proxy reset the response mid-way (the upstream body failed).
    pub(crate) fn tx_reset(mut self) {
        self.ended = true;
        self.conn.runtime.stats.downstream_rq_tx_reset.inc();
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.conn.streams_ended.fetch_add(1, Ordering::Relaxed);
        let stats = &self.conn.runtime.stats;
        stats.downstream_rq_active.dec();
        if self.http2 {
            crate::stats::downstream_http2().streams_active.dec();
        }
        if !self.ended {
            stats.downstream_rq_rx_reset.inc();
            if !self.http2 {
                // An HTTP/1 stream ends unfinished only with its connection (hyper drops
                // it before the connection's future ends): a request was in flight.
                self.conn.stream_abandoned();
            }
        }
        let premature =
            !self.responded && premature_reset::is_premature(false, self.started.elapsed());
        if self.conn.premature_resets.stream_closed(premature) {
            self.conn.conn_events.notify_one();
            stats.downstream_rq_too_many_premature_resets.inc();
            tracing::debug!(
                conn = self.conn.conn.id,
                "closing a connection with too many premature stream resets"
            );
        }
    }
}

/// Counts the request the codec answered before the connection manager saw it
/// (malformed or oversized headers: a protocol error; 408: `request_headers_timeout`);
/// Envoy still accounts it as a request that was answered before it was complete,
/// then reset. `status` is the codec's, `sent` the one `local_reply_config` left (the
/// one the status classes count).
pub(crate) fn codec_rejected_request(runtime: &HcmRuntime, status: u16, sent: u16) {
    let stats = &runtime.stats;
    if status == 408 {
        stats.downstream_rq_header_timeout.inc();
    } else {
        stats.downstream_cx_protocol_error.inc();
    }
    stats.downstream_rq_total.inc();
    stats.downstream_rq_http1_total.inc();
    stats.downstream_rq_xx.record(sent);
    stats.downstream_rq_completed.inc();
    stats.downstream_rq_response_before_rq_complete.inc();
    stats.downstream_rq_rx_reset.inc();
    if let Some(l) = &runtime.listener_stats {
        l.downstream_rq_xx.record(sent);
        l.downstream_rq_completed.inc();
    }
}

/// One upgraded connection (websocket after a 101, CONNECT tunnel):
/// `downstream_cx_upgrades_total` / `_active` until the tunnel ends.
#[derive(Debug)]
pub(crate) struct ActiveUpgrade {
    runtime: Arc<HcmRuntime>,
}

impl ActiveUpgrade {
    pub(crate) fn open(runtime: &Arc<HcmRuntime>) -> Self {
        runtime.stats.downstream_cx_upgrades_total.inc();
        runtime.stats.downstream_cx_upgrades_active.inc();
        Self {
            runtime: runtime.clone(),
        }
    }
}

impl Drop for ActiveUpgrade {
    fn drop(&mut self) {
        self.runtime.stats.downstream_cx_upgrades_active.dec();
    }
}
