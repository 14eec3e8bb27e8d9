//! HTTP/2 requests the h2 crate passes on but Envoy's codec refuses as invalid messaging
//! (RFC 9113 §8.3.1): neither `:authority` nor `host`, or `:path: *` with a method other
//! than OPTIONS. By default Envoy 1.40 then ends the whole connection without a GOAWAY
//! and without answering its other streams; with `override_stream_error_on_invalid_http_message`
//! (or `stream_error_on_invalid_http_messaging`) true it resets only the stream
//! (RST_STREAM PROTOCOL_ERROR). Either way the stream counts as a request the client
//! reset, and `http2.rx_messaging_error` moves; a connection ended counts
//! `downstream_cx_protocol_error` and is closed locally with the request in flight.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::header::HOST;
use http::{Method, Request, Version};

use super::stats::ActiveStream;
use super::stream::ConnShared;

/// Whether Envoy's HTTP/2 codec refuses this request (see the module docs).
pub(super) fn is_invalid<B>(req: &Request<B>) -> bool {
    let no_authority = req.uri().authority().is_none() && !req.headers().contains_key(HOST);
    let asterisk = req.uri().path() == "*" && req.method() != Method::OPTIONS;
    no_authority || asterisk
}

/// The service error that resets an HTTP/2 stream with PROTOCOL_ERROR: hyper takes the
/// reset's code from an `h2::Error` in the service error's chain.
#[derive(Debug, thiserror::Error)]
#[error("malformed HTTP/2 request")]
pub(super) struct MalformedRequest(#[source] h2::Error);

/// Refuses a request [`is_invalid`] found: the stream is reset (the error returned), or
/// the connection is told to end now and this future never completes (the stream is in
/// flight when the connection drops it, as in Envoy).
pub(super) async fn refuse(shared: &Arc<ConnShared>) -> MalformedRequest {
    crate::stats::downstream_http2().rx_messaging_error.inc();
    let stream = ActiveStream::begin(shared, Version::HTTP_2, Instant::now());
    if shared.runtime.hcm.http2.stream_error_on_invalid_messaging {
        drop(stream);
        return MalformedRequest(h2::Error::from(h2::Reason::PROTOCOL_ERROR));
    }
    shared.runtime.stats.downstream_cx_protocol_error.inc();
    shared.codec_abort.store(true, Ordering::Relaxed);
    shared.conn_events.notify_one();
    let _in_flight = stream;
    std::future::pending().await
}
