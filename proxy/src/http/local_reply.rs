//! Local replies: responses the proxy generates itself, with Envoy's exact status codes,
//! bodies, `content-type: text/plain` (only when there is a body) and response flags.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::access_log::ResponseFlag;
use crate::upstream::UpstreamError;

use super::ResponseBody;

/// A reply decided by the proxy.
#[derive(Debug, Clone)]
pub struct LocalReply {
    /// Status code.
    pub status: StatusCode,
    /// Body (empty: no content-type).
    pub body: Bytes,
    /// Response flag for access logs.
    pub flag: Option<ResponseFlag>,
    /// `%RESPONSE_CODE_DETAILS%`
    pub details: String,
    /// Close the downstream connection after this reply (HTTP/1.1 `connection: close`).
    pub close: bool,
    /// Further response headers (an HTTP filter's, such as `www-authenticate`); boxed
    /// so the common reply stays small.
    pub headers: Option<Box<HeaderMap>>,
    /// `content-type` of a body rendered by `local_reply_config` (default `text/plain`);
    /// boxed so the common reply stays small.
    pub content_type: Option<Box<HeaderValue>>,
    /// `grpc-status` of the gRPC form when it is not the one mapped from the status.
    pub grpc_status: Option<u16>,
}

impl LocalReply {
    /// A reply with a static text body.
    pub fn new(status: u16, body: &'static str, flag: Option<ResponseFlag>, details: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: Bytes::from_static(body.as_bytes()),
            flag,
            details: details.to_string(),
            close: false,
            headers: None,
            content_type: None,
            grpc_status: None,
        }
    }

    /// The further response headers, to add to.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers.get_or_insert_with(Default::default)
    }

    /// Same reply, closing the connection afterwards.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// No route matched: 404, empty body, NR.
    pub fn no_route() -> Self {
        Self::new(404, "", Some(ResponseFlag::NoRouteFound), "route_not_found")
    }

    /// The cluster named by the route does not exist: 503, empty body, NC.
    pub fn cluster_not_found() -> Self {
        Self::new(
            503,
            "",
            Some(ResponseFlag::NoClusterFound),
            "cluster_not_found",
        )
    }

    /// The route timeout fired before response headers: 504, UT.
    pub fn upstream_timeout() -> Self {
        Self::new(
            504,
            "upstream request timeout",
            Some(ResponseFlag::UpstreamRequestTimeout),
            "response_timeout",
        )
    }

    /// `request_timeout` fired before the request was complete: 408.
    pub fn request_timeout() -> Self {
        Self::new(408, "request timeout", None, "request_overall_timeout").closing()
    }

    /// `stream_idle_timeout` (or the route's `idle_timeout`) fired, SI: 504 once the
    /// whole request was received (waiting for the upstream), else 408 and the
    /// connection closes (the rest of the request is never read).
    pub fn stream_idle_timeout(request_complete: bool) -> Self {
        let reply = Self::new(
            if request_complete { 504 } else { 408 },
            "stream timeout",
            Some(ResponseFlag::StreamIdleTimeout),
            "stream_idle_timeout",
        );
        if request_complete {
            reply
        } else {
            reply.closing()
        }
    }

    /// The stream outlived its `max_stream_duration` before its response started (gRPC
    /// DEADLINE_EXCEEDED, no response flag, as Envoy): 504 once the whole request was
    /// received, else 408 and the connection closes (the rest is never read).
    pub fn max_duration(request_complete: bool) -> Self {
        let mut reply = Self::new(
            if request_complete { 504 } else { 408 },
            "downstream duration timeout",
            None,
            "max_duration_timeout",
        );
        reply.grpc_status = Some(4);
        if request_complete {
            reply
        } else {
            reply.closing()
        }
    }

    /// Maps an upstream failure to Envoy's reply; returns the transport failure reason.
    pub fn from_upstream(err: &UpstreamError) -> (Self, Option<String>) {
        const PREFIX: &str =
            "upstream connect error or disconnect/reset before headers. reset reason: ";
        let (reason, flag, tfr) = match err {
            UpstreamError::NoHealthyUpstream => {
                return (
                    Self::new(
                        503,
                        "no healthy upstream",
                        Some(ResponseFlag::NoHealthyUpstream),
                        "no_healthy_upstream",
                    ),
                    None,
                )
            }
            UpstreamError::ConnectFailure { reason, .. } => (
                "remote connection failure",
                ResponseFlag::UpstreamConnectionFailure,
                Some(reason.clone()),
            ),
            UpstreamError::ConnectTimeout { .. } => (
                "connection timeout",
                ResponseFlag::UpstreamConnectionFailure,
                None,
            ),
            UpstreamError::Overflow => ("overflow", ResponseFlag::UpstreamOverflow, None),
            // A stream the upstream (or, as Envoy's codec does, the pool for headers
            // over the cluster's limits) reset on a live HTTP/2 connection.
            UpstreamError::Reset { reason, .. } if reason == "remote reset" => {
                ("remote reset", ResponseFlag::UpstreamRemoteReset, None)
            }
            UpstreamError::Reset { .. } => (
                "connection termination",
                ResponseFlag::UpstreamConnectionTermination,
                None,
            ),
            UpstreamError::ProtocolError { .. } => {
                ("protocol error", ResponseFlag::UpstreamProtocolError, None)
            }
        };
        let status = if matches!(err, UpstreamError::ProtocolError { .. }) {
            StatusCode::BAD_GATEWAY
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let details = match &tfr {
            Some(t) => format!(
                "upstream_reset_before_response_started{{{}|{}}}",
                reason.replace(' ', "_"),
                t.replace(' ', "_")
            ),
            None => format!(
                "upstream_reset_before_response_started{{{}}}",
                reason.replace(' ', "_")
            ),
        };
        let reply = Self {
            status,
            body: Bytes::from(format!("{PREFIX}{reason}")),
            flag: Some(flag),
            details,
            close: false,
            headers: None,
            content_type: None,
            grpc_status: None,
        };
        (reply, tfr)
    }

    /// The response for a gRPC request, as Envoy sends it: HTTP 200 with no body,
    /// `content-type: application/grpc`, the status mapped to `grpc-status` and the body
    /// (percent-encoded) as `grpc-message`.
    /// `http2`: the downstream speaks HTTP/2, where Envoy sends no `content-length` on a
    /// bodiless reply.
    pub fn into_grpc_response(self, http2: bool) -> Response<ResponseBody> {
        let grpc_status = self
            .grpc_status
            .unwrap_or_else(|| grpc_status_of(self.status.as_u16()));
        let mut resp = Response::new(stream_empty());
        let h = resp.headers_mut();
        if let Some(headers) = self.headers {
            h.extend(*headers);
        }
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("grpc-status", HeaderValue::from(grpc_status));
        if !self.body.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&grpc_percent_encode(&self.body)) {
                h.insert("grpc-message", v);
            }
        }
        if !http2 {
            h.insert(CONTENT_LENGTH, HeaderValue::from(0));
        }
        if self.close {
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    /// The HTTP response (the connection manager adds `server`, `date`, `via` and the
    /// route's response header mutations). `http2`: the downstream speaks HTTP/2, where
    /// Envoy sends no `content-length` on a bodiless reply.
    pub fn into_response(self, http2: bool) -> Response<ResponseBody> {
        let len = self.body.len();
        let has_body = len > 0;
        let mut resp = Response::new(super::response_body(
            Full::new(self.body).map_err(|never| match never {}),
        ));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        if has_body || !http2 {
            h.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        if has_body {
            let content_type = self
                .content_type
                .map_or_else(|| HeaderValue::from_static("text/plain"), |c| *c);
            h.insert(CONTENT_TYPE, content_type);
        }
        if self.close {
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(headers) = self.headers {
            h.extend(*headers);
        }
        resp
    }
}

fn stream_empty() -> ResponseBody {
    super::response_body(Full::new(Bytes::new()).map_err(|never| match never {}))
}

/// Whether a request is gRPC (Envoy's test: `content-type` is `application/grpc`, or
/// starts with `application/grpc+` or `application/grpc;`).
pub fn is_grpc_request(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .is_some_and(|ct| {
            let base = b"application/grpc";
            ct.len() >= base.len()
                && ct[..base.len()].eq_ignore_ascii_case(base)
                && matches!(ct.get(base.len()), None | Some(b'+') | Some(b';'))
        })
}

/// Envoy's HTTP status to gRPC status mapping for local replies.
fn grpc_status_of(http_status: u16) -> u16 {
    match http_status {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn grpc_percent_encode(body: &[u8]) -> String {
    let mut out = String::with_capacity(body.len());
    for &b in body {
        if (b' '..=b'~').contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failure_body_matches_envoy() {
        let host = std::sync::Arc::new(crate::upstream::Host::new(
            "127.0.0.1:1".parse::<std::net::SocketAddr>().expect("addr"),
            None,
            1,
            "".into(),
            0,
            true,
        ));
        let (r, tfr) = LocalReply::from_upstream(&UpstreamError::ConnectFailure {
            host,
            reason: "delayed connect error: Connection refused".into(),
        });
        assert_eq!(r.status, 503);
        assert_eq!(
            &r.body[..],
            b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
        );
        assert_eq!(
            r.details,
            "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}"
        );
        assert_eq!(
            tfr.as_deref(),
            Some("delayed connect error: Connection refused")
        );
        let resp = r.into_response(false);
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(resp.headers()["content-length"], "98");
        assert_eq!(grpc_percent_encode(b"a b%\n"), "a b%25%0A");
        let mut grpc = HeaderMap::new();
        grpc.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_grpc_request(&grpc));
        grpc.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc-web"),
        );
        assert!(!is_grpc_request(&grpc));
        let nr = LocalReply::no_route().into_response(false);
        assert_eq!(nr.status(), 404);
        assert!(nr.headers().get("content-type").is_none());
        assert_eq!(nr.headers()["content-length"], "0");
        let nr = LocalReply::no_route().into_response(true);
        assert!(nr.headers().get("content-length").is_none());
        let grpc = LocalReply::no_route().into_grpc_response(true);
        assert!(grpc.headers().get("content-length").is_none());
    }
}
