//! The cluster's `max_response_headers_kb` on an HTTP/1 upstream response head: the head
//! is measured as the upstream sent it and refused (Envoy's upstream protocol error) when
//! it is over the limit.

use std::sync::Arc;

use http::Response;

use crate::upstream::cluster::UpstreamCluster;
use crate::upstream::error::UpstreamError;
use crate::upstream::host::Host;

/// The response, or Envoy's protocol error when its head is larger than the cluster's
/// `max_response_headers_kb`. hyper's read buffer (at least 8 KiB) refuses a head that
/// does not fit in it; one read can overshoot it, and smaller limits need this check.
pub(super) fn within_head_limit<T>(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    response: Response<T>,
) -> Result<Response<T>, UpstreamError> {
    let limit = cluster.model.response_headers_limit(false);
    if response_head_len(&response) <= limit {
        return Ok(response);
    }
    tracing::debug!(host = %host.address, limit, "upstream response head over max_response_headers_kb");
    Err(UpstreamError::ProtocolError { host: host.clone() })
}

/// [`within_head_limit`] for a head that took `wire_len` bytes: rebuilt, each line is
/// at most two bytes longer than on the wire (`name:value\n` is `name: value\r\n`), so
/// a head well under the limit needs no count.
pub(super) fn lean_within_head_limit<T>(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    response: Response<T>,
    wire_len: usize,
) -> Result<Response<T>, UpstreamError> {
    let longest = wire_len + 2 * (response.headers().len() + 2);
    if longest <= cluster.model.response_headers_limit(false) {
        return Ok(response);
    }
    within_head_limit(cluster, host, response)
}

/// Length of an HTTP/1 response head as the upstream sent it (status line, header
/// lines, blank line), rebuilt from the parsed response: optional whitespace is not
/// counted.
fn response_head_len<T>(response: &Response<T>) -> usize {
    let reason = match response.extensions().get::<hyper::ext::ReasonPhrase>() {
        Some(reason) => reason.as_bytes().len(),
        None => response.status().canonical_reason().map_or(0, str::len),
    };
    // "HTTP/1.1 SP code SP reason CRLF", "name: value CRLF" each, CRLF.
    let status_line = 8 + 1 + 3 + 1 + reason + 2;
    let header_lines: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    status_line + header_lines + 2
}
