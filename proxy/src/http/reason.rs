//! HTTP/1 status-line reason phrases as Envoy writes them: Envoy's codec takes the phrase
//! from its own table of status codes (the upstream's phrase is never relayed) and writes
//! `Unknown` for a code it has no name for. hyper writes `StatusCode::canonical_reason`
//! unless the response carries a `hyper::ext::ReasonPhrase`, so the responses whose
//! phrase differs from hyper's get Envoy's one as that extension (a static phrase: no
//! allocation beyond the extension map of those few responses).

use http::StatusCode;
use hyper::ext::ReasonPhrase;

/// Envoy 1.40's reason phrase for `status` (measured for every code from 200 to 599 and
/// beyond; `Unknown` for the unnamed ones).
pub fn envoy_reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        599 => "Last Unassigned Server Error Code",
        _ => "Unknown",
    }
}

/// Gives an HTTP/1 response Envoy's reason phrase: drops a phrase relayed from the
/// upstream and, where hyper's canonical phrase differs from Envoy's, sets Envoy's.
pub fn set_envoy_reason(status: StatusCode, extensions: &mut http::Extensions) {
    extensions.remove::<ReasonPhrase>();
    let envoy = envoy_reason(status.as_u16());
    if status.canonical_reason() != Some(envoy) {
        extensions.insert(ReasonPhrase::from_static(envoy.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_hyper_gets_wrong_are_overridden() {
        let mut ext = http::Extensions::new();
        set_envoy_reason(StatusCode::NON_AUTHORITATIVE_INFORMATION, &mut ext);
        assert_eq!(
            ext.get::<ReasonPhrase>().map(ReasonPhrase::as_bytes),
            Some(&b"Non-Authoritative Information"[..])
        );
        let mut ext = http::Extensions::new();
        set_envoy_reason(StatusCode::from_u16(418).expect("code"), &mut ext);
        assert_eq!(
            ext.get::<ReasonPhrase>().map(ReasonPhrase::as_bytes),
            Some(&b"Unknown"[..])
        );
    }

    #[test]
    fn common_phrases_add_nothing() {
        for code in [200, 204, 301, 404, 500, 503] {
            let mut ext = http::Extensions::new();
            set_envoy_reason(StatusCode::from_u16(code).expect("code"), &mut ext);
            assert!(ext.get::<ReasonPhrase>().is_none(), "{code}");
        }
    }

    #[test]
    fn an_upstream_phrase_is_dropped() {
        let mut ext = http::Extensions::new();
        ext.insert(ReasonPhrase::from_static(b"Whatever"));
        set_envoy_reason(StatusCode::OK, &mut ext);
        assert!(ext.get::<ReasonPhrase>().is_none());
    }
}
