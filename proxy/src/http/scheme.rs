//! The `:scheme` of downstream requests and what goes upstream: an HTTP/2 client's own,
//! the connection's for HTTP/1 (`https` over TLS), or `scheme_header_transformation`'s
//! `scheme_to_overwrite`, which Envoy also writes into `x-forwarded-proto`; with
//! `match_upstream` an HTTP/2 upstream request carries the upstream connection's.

use baton_config::model::SchemeTransformation;
use http::request::Parts;
use http::HeaderValue;

use super::headers::forwarding::X_FORWARDED_PROTO;
use crate::access_log::StreamInfo;
use crate::upstream::UpstreamScheme;

/// The scheme of an HTTP/1 request on this connection (one without `:scheme`).
pub(super) fn of_connection(transformation: SchemeTransformation, tls: bool) -> &'static str {
    match transformation {
        SchemeTransformation::Overwrite(scheme) => scheme,
        _ if tls => "https",
        _ => "http",
    }
}

/// Applies `scheme_to_overwrite` to a request whose forwarding headers are set: its
/// `x-forwarded-proto`, an HTTP/2 request's `:scheme`, and what `%REQ(:SCHEME)%` shows.
pub(super) fn overwrite(parts: &mut Parts, info: &mut StreamInfo, scheme: &'static str) {
    parts
        .headers
        .insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    info.scheme = Some(scheme);
    if parts.uri.scheme_str().is_some_and(|s| s != scheme) {
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.scheme = Some(if scheme == "https" {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        });
        if let Ok(rebuilt) = http::Uri::from_parts(uri) {
            parts.uri = rebuilt;
        }
    }
}

/// The `:scheme` an HTTP/2 upstream request gets.
pub(super) fn upstream(
    transformation: SchemeTransformation,
    parts: &Parts,
    info: &StreamInfo,
) -> UpstreamScheme {
    if transformation == SchemeTransformation::MatchUpstream {
        return UpstreamScheme::MatchUpstream;
    }
    let scheme = match parts.uri.scheme_str() {
        Some(scheme) => scheme,
        None => info
            .scheme
            .unwrap_or(if info.conn.tls { "https" } else { "http" }),
    };
    if scheme.eq_ignore_ascii_case("https") {
        UpstreamScheme::Https
    } else {
        UpstreamScheme::Http
    }
}
