//! The replies the codec writes itself (400, 408, 426, 431, 501 for a refused or timed
//! out HTTP/1 request head), as Envoy writes them: passed through the connection
//! manager's `local_reply_config` first. Envoy 1.40's mappers see no request headers
//! there (the codec never handed a head over) and no response flags yet; the reply then
//! closes the connection.

use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use baton_config::model::LocalReplyConfig;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};

use crate::access_log::StreamInfo;
use crate::http::local_reply::LocalReply;
use crate::http::local_reply_config;
use crate::http::stream::ConnShared;

/// The automatic responses hyper writes on parse errors, and Envoy's replacement
/// (status, body, `%RESPONSE_CODE_DETAILS%`).
const REWRITES: &[(&[u8], AutomaticReply)] = &[
    (
        b"HTTP/1.1 400 Bad Request\r\n",
        AutomaticReply {
            status: 400,
            text: "Bad Request",
            details: "http1.codec_error",
        },
    ),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        HEADERS_TOO_LARGE,
    ),
    (b"HTTP/1.1 414 URI Too Long\r\n", HEADERS_TOO_LARGE),
];

/// Envoy's 431 for a request head over `max_request_headers_kb`.
const HEADERS_TOO_LARGE: AutomaticReply = AutomaticReply {
    status: 431,
    text: "Request Header Fields Too Large",
    details: "http1.headers_too_large",
};

/// A reply of the codec's own: status, body, `%RESPONSE_CODE_DETAILS%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AutomaticReply {
    pub(super) status: u16,
    pub(super) text: &'static str,
    pub(super) details: &'static str,
}

/// True when `buf` is exactly one of hyper's automatic error responses: the status line,
/// an optional `connection: close`, `content-length: 0`, an optional `date`, and nothing
/// else. Responses the connection
/// manager builds always carry `server`/`date` before the length, so they never match.
pub(super) fn automatic_error(buf: &[u8]) -> Option<AutomaticReply> {
    for (line, reply) in REWRITES {
        let Some(rest) = buf.strip_prefix(*line) else {
            continue;
        };
        let rest = rest
            .strip_prefix(b"connection: close\r\n".as_slice())
            .unwrap_or(rest);
        let Some(rest) = rest.strip_prefix(b"content-length: 0\r\n".as_slice()) else {
            continue;
        };
        let rest = match rest.strip_prefix(b"date: ".as_slice()) {
            Some(after) => match after.windows(2).position(|w| w == b"\r\n") {
                Some(end) => &after[end + 2..],
                None => continue,
            },
            None => rest,
        };
        if rest == b"\r\n" {
            return Some(*reply);
        }
    }
    None
}

/// The reply the codec gave on its own on a connection (at most one: it closes after),
/// for stats and the access log.
#[derive(Debug, Default)]
pub struct CodecReplyRecord {
    /// The codec's status (400, 408, 426, 431, 501; 0: none): what happened.
    pub status: AtomicU16,
    /// The status sent after `local_reply_config` (0: the codec's), which Envoy's
    /// stats and access log show.
    pub sent_status: AtomicU16,
    /// The body length sent (`u32::MAX`: the codec's own text).
    pub body_len: AtomicU32,
    /// `%RESPONSE_CODE_DETAILS%` when known more precisely than from the status.
    pub details: OnceLock<&'static str>,
}

impl CodecReplyRecord {
    /// A new record (no reply yet).
    pub fn new() -> Self {
        Self {
            body_len: AtomicU32::new(u32::MAX),
            ..Self::default()
        }
    }

    /// No reply was recorded (as [`Self::new`] made it).
    pub fn is_pristine(&self) -> bool {
        self.status.load(Ordering::Relaxed) == 0
            && self.sent_status.load(Ordering::Relaxed) == 0
            && self.body_len.load(Ordering::Relaxed) == u32::MAX
            && self.details.get().is_none()
    }

    /// The codec replied `status`; after mapping, `sent` with a body of `body_len`.
    pub fn record(&self, status: u16, sent: u16, body_len: usize) {
        self.status.store(status, Ordering::Relaxed);
        self.sent_status.store(sent, Ordering::Relaxed);
        self.body_len.store(
            u32::try_from(body_len).unwrap_or(u32::MAX - 1),
            Ordering::Relaxed,
        );
    }
}

/// Body of the responses the codec writes itself.
pub(super) fn codec_reply_text(status: u16) -> &'static str {
    match status {
        408 => "request header timeout",
        426 => "Upgrade Required",
        501 => "Not Implemented",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    }
}

/// `%RESPONSE_CODE_DETAILS%` of the codec's reply `status` when nothing more precise
/// is known.
pub(super) fn codec_reply_details(status: u16) -> &'static str {
    match status {
        408 => "request_header_timeout",
        431 => "http1.headers_too_large",
        _ => "http1.codec_error",
    }
}

/// Body length of [`codec_reply`] for `status`.
pub fn codec_reply_body_len(status: u16) -> usize {
    codec_reply_text(status).len()
}

/// Where a codec reply is mapped: the connection manager's `local_reply_config` and the
/// connection the reply goes to (for the mappers' stream info).
#[derive(Clone, Copy)]
pub(super) struct Mapping<'a> {
    pub(super) config: &'a LocalReplyConfig,
    pub(super) conn: &'a Arc<ConnShared>,
}

/// A codec reply as it goes out.
#[derive(Debug)]
pub(super) struct Rendered {
    /// The status sent (a mapper may change it).
    pub(super) status: u16,
    /// The body's length.
    pub(super) body_len: usize,
    /// The wire bytes.
    pub(super) bytes: Vec<u8>,
}

/// The wire bytes of the codec's reply `status` with body `text`; `details` is the
/// reply's `%RESPONSE_CODE_DETAILS%`.
pub(super) fn render(
    status: u16,
    text: &'static str,
    details: &str,
    server: &str,
    mapping: Option<Mapping<'_>>,
) -> Rendered {
    let mut reply = LocalReply::new(status, text, None, details);
    if let Some(m) = mapping {
        let mut info = StreamInfo::new(m.conn.clone(), Some(http::Version::HTTP_11));
        info.response_code_details = Some(details.to_string().into());
        local_reply_config::rewrite(m.config, &mut reply, &mut info, None);
    }
    let status = reply.status;
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let mut out = Vec::with_capacity(192 + reply.body.len());
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Unknown"),
            reply.body.len()
        )
        .as_bytes(),
    );
    if !reply.body.is_empty() {
        out.extend_from_slice(b"content-type: ");
        match &reply.content_type {
            Some(ct) => out.extend_from_slice(ct.as_bytes()),
            None => out.extend_from_slice(b"text/plain"),
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some(headers) = &reply.headers {
        for (name, value) in headers.iter() {
            // The mappers add headers; the framing ones are the codec's.
            if name == CONTENT_LENGTH || name == CONTENT_TYPE {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(
        format!("date: {date}\r\nserver: {server}\r\nconnection: close\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(&reply.body);
    Rendered {
        status: status.as_u16(),
        body_len: reply.body.len(),
        bytes: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_reply_is_envoys_text() {
        let rendered = render(431, "Request Header Fields Too Large", "x", "envoy", None);
        assert_eq!((rendered.status, rendered.body_len), (431, 31));
        let text = String::from_utf8(rendered.bytes).expect("utf8");
        assert!(text.starts_with(
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 31\r\ncontent-type: text/plain\r\ndate: "
        ));
        assert!(text.ends_with(
            "\r\nserver: envoy\r\nconnection: close\r\n\r\nRequest Header Fields Too Large"
        ));
    }

    #[test]
    fn empty_body_has_no_content_type() {
        let bytes = render(400, "", "x", "envoy", None).bytes;
        let text = String::from_utf8(bytes).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: "));
    }

    #[test]
    fn recognises_only_bare_automatic_errors() {
        assert_eq!(
            automatic_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Mon, 23 Nov 2026 13:46:38 GMT\r\n\r\n"),
            Some(AutomaticReply {
                status: 400,
                text: "Bad Request",
                details: "http1.codec_error"
            })
        );
        assert_eq!(
            automatic_error(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
            ),
            Some(HEADERS_TOO_LARGE)
        );
        assert_eq!(
            automatic_error(
                b"HTTP/1.1 400 Bad Request\r\nserver: envoy\r\ncontent-length: 0\r\n\r\n"
            ),
            None
        );
        assert_eq!(
            automatic_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx: y\r\n\r\n"),
            None
        );
    }
}
