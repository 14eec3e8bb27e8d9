//! `common_http_protocol_options.headers_with_underscores_action`: request header names
//! holding `_`, refused or dropped before anything else reads the request, as Envoy's
//! codecs do (Envoy Gateway sets `REJECT_REQUEST` on every listener it generates).
//! HTTP/1: a 400 with `http1.unexpected_underscore` and the connection closed; HTTP/2:
//! the stream reset, logged with `DR` and `http2.unexpected_underscore`. Dropped headers
//! are counted one per field line. Response headers are never checked (nor by Envoy).

use std::sync::Arc;

use baton_config::model::UnderscoreHeaders;
use http::{HeaderMap, HeaderName, Version};

use super::stream::ConnShared;
use crate::access_log::{FormatInput, ResponseFlag, StreamInfo};

/// What the request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Served (any underscored names dropped).
    Serve,
    /// Refused: an HTTP/1 400 or an HTTP/2 reset.
    Refuse,
}

fn underscored(name: &HeaderName) -> bool {
    name.as_str().as_bytes().contains(&b'_')
}

/// Applies `action` to a request's `headers` (not called for `ALLOW`).
pub(super) fn apply(headers: &mut HeaderMap, action: UnderscoreHeaders, http2: bool) -> Verdict {
    match action {
        UnderscoreHeaders::Allow => Verdict::Serve,
        UnderscoreHeaders::Reject => {
            if !headers.keys().any(underscored) {
                return Verdict::Serve;
            }
            if http2 {
                crate::stats::downstream_http2()
                    .requests_rejected_with_underscores_in_headers
                    .inc();
            } else {
                crate::stats::http1()
                    .requests_rejected_with_underscores_in_headers
                    .inc();
            }
            Verdict::Refuse
        }
        UnderscoreHeaders::Drop => {
            if !headers.keys().any(underscored) {
                return Verdict::Serve;
            }
            let names: Vec<HeaderName> =
                headers.keys().filter(|n| underscored(n)).cloned().collect();
            let mut lines = 0u64;
            for name in names {
                lines += headers.get_all(&name).iter().count() as u64;
                headers.remove(&name);
            }
            let counter = if http2 {
                &crate::stats::downstream_http2().dropped_headers_with_underscores
            } else {
                &crate::stats::http1().dropped_headers_with_underscores
            };
            counter.add(lines);
            Verdict::Serve
        }
    }
}

/// The access log entry of an HTTP/2 stream reset for an underscored name: Envoy's codec
/// resets it before the connection manager sees its headers (`- HTTP/2 0 DR`).
pub(super) fn log_http2_refusal(shared: &Arc<ConnShared>) {
    let runtime = &shared.runtime;
    if runtime.loggers.is_empty() {
        return;
    }
    let mut info = StreamInfo::new(shared.clone(), Some(Version::HTTP_2));
    info.flags.set(ResponseFlag::DownstreamRemoteReset);
    info.response_code_details = Some("http2.unexpected_underscore".into());
    runtime.loggers.log(&FormatInput::new(&info));
}
