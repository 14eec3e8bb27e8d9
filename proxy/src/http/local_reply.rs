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
        };
        (reply, tfr)
    }

    /// The HTTP response (the connection manager adds `server`, `date`, `via` and the
    /// route's response header mutations).
    pub fn into_response(self) -> Response<ResponseBody> {
        let len = self.body.len();
        let has_body = len > 0;
        let mut resp = Response::new(Full::new(self.body).map_err(|never| match never {}).boxed());
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
        if has_body {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
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
        let resp = r.into_response();
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(resp.headers()["content-length"], "98");
        let nr = LocalReply::no_route().into_response();
        assert_eq!(nr.status(), 404);
        assert!(nr.headers().get("content-type").is_none());
    }
}
