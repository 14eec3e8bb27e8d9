//! The lean server's wire format against hyper's own server: the same request bytes go
//! to both, the request each hands over and the bytes each writes for the same response
//! must match (a `date` hyper adds is masked: the clock may tick in between).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::http::ResponseBody;

const LIMITS: FramingLimits = FramingLimits {
    read_buffer_limit: 8192,
    max_headers: 100,
    accept_http_10: true,
};

/// The status of the response that ends each hyper exchange (see [`hyper_exchange`]).
const END_STATUS: &[u8] = b"HTTP/1.1 299 ";

/// A response the test serves: status, headers, body frames (None: a `Full` body of
/// the data, which knows its length; Some: a streamed body with these trailers).
#[derive(Clone, Default)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    data: &'static [u8],
    streamed: Option<Vec<(&'static str, &'static str)>>,
    reason: Option<&'static str>,
}

impl Answer {
    fn ok(data: &'static [u8]) -> Self {
        Self {
            status: 200,
            headers: vec![
                ("content-type", "text/plain"),
                ("date", "Mon, 07 Dec 2026 06:00:00 GMT"),
            ],
            data,
            ..Self::default()
        }
    }

    fn response(&self) -> Response<ResponseBody> {
        let body: ResponseBody = match &self.streamed {
            None => crate::http::response_body(
                Full::new(Bytes::from_static(self.data)).map_err(|never| match never {}),
            ),
            Some(trailers) => {
                let mut frames = Vec::new();
                if !self.data.is_empty() {
                    frames.push(Frame::data(Bytes::from_static(self.data)));
                }
                if !trailers.is_empty() {
                    frames.push(Frame::trailers(header_map(trailers)));
                }
                let frames = frames.into_iter().map(Ok::<_, crate::upstream::BoxError>);
                crate::http::response_body(StreamBody::new(futures_util::stream::iter(frames)))
            }
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = StatusCode::from_u16(self.status).expect("status");
        *resp.headers_mut() = header_map(&self.headers);
        if let Some(reason) = self.reason {
            resp.extensions_mut()
                .insert(hyper::ext::ReasonPhrase::try_from(reason.as_bytes()).expect("reason"));
        }
        resp
    }
}

fn header_map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    map
}

/// What a server handed over for one request: its head and body.
#[derive(Debug, PartialEq)]
struct Received {
    method: Method,
    uri: String,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    trailers: Option<Vec<(String, Vec<u8>)>>,
}

fn lines(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// What a test service answers: from the request head, its whole body and trailers.
pub(in crate::http::codec) type Respond =
    dyn Fn(http::request::Parts, Bytes, Option<HeaderMap>) -> Response<ResponseBody> + Send + Sync;

/// Serves `requests` (whole requests, pipelined) with hyper's HTTP/1 server, answering
/// with `respond`; returns the bytes written. A last request, answered 299 and cut
/// off, follows so that hyper closes the connection however the others ended.
pub(in crate::http::codec) async fn hyper_serve(requests: &[u8], respond: Arc<Respond>) -> Vec<u8> {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let service = service_fn(move |req: Request<Incoming>| {
        let respond = respond.clone();
        async move {
            if req.uri().path() == "/__end" {
                let mut end = Response::new(crate::http::stream_empty_body());
                *end.status_mut() = StatusCode::from_u16(299).expect("status");
                return Ok::<_, Infallible>(end);
            }
            let (parts, body) = req.into_parts();
            let collected = body.collect().await.expect("request body");
            let trailers = collected.trailers().cloned();
            Ok(respond(parts, collected.to_bytes(), trailers))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .half_close(false)
        .serve_connection(TokioIo::new(server), service);
    let task = tokio::spawn(conn);
    client.write_all(requests).await.expect("write");
    client
        .write_all(b"GET /__end HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.read_to_end(&mut out),
    )
    .await
    .expect("hyper closes")
    .expect("read");
    let _ = task.await;
    if let Some(end) = find(&out, END_STATUS) {
        out.truncate(end);
    }
    out
}

/// Serves one request with hyper; returns what the service received and the bytes.
async fn hyper_exchange(request: &[u8], answer: &Answer) -> (Option<Received>, Vec<u8>) {
    let received = Arc::new(Mutex::new(None));
    let seen = received.clone();
    let answer = answer.clone();
    let respond = move |parts: http::request::Parts, body: Bytes, trailers: Option<HeaderMap>| {
        *seen.lock().expect("lock") = Some(Received {
            method: parts.method,
            uri: parts.uri.to_string(),
            version: parts.version,
            headers: lines(&parts.headers),
            body: body.to_vec(),
            trailers: trailers.as_ref().map(lines),
        });
        answer.response()
    };
    let out = hyper_serve(request, Arc::new(respond)).await;
    let received = received.lock().expect("lock").take();
    (received, out)
}

pub(in crate::http::codec) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The lean side of the same exchange.
fn lean_exchange(request: &[u8], answer: &Answer) -> (Option<Received>, Vec<u8>) {
    let HeadParse::Request { head, len } = parse_request_head(request, &LIMITS) else {
        panic!("not served lean: {}", String::from_utf8_lossy(request));
    };
    let RequestHead {
        request: req,
        body,
        keep_alive,
        accepts_trailers,
        ..
    } = head;
    // The body, decoded from the bytes after the head.
    let mut decoder = BodyDecoder::new(body);
    let mut data = Vec::new();
    let mut trailers = None;
    let mut rest = &request[len..];
    while !decoder.is_ended() {
        let mut used = 0;
        match decoder.decode(rest, &mut used).expect("body decodes") {
            Decoded::Data(range) => data.extend_from_slice(&rest[range]),
            Decoded::Trailers(map) => trailers = Some(lines(&map)),
            Decoded::End => {}
            Decoded::NeedMore => panic!("body incomplete"),
        }
        rest = &rest[used..];
    }
    let received = Received {
        method: req.method().clone(),
        uri: req.uri().to_string(),
        version: req.version(),
        headers: lines(req.headers()),
        body: data,
        trailers,
    };
    let exchange = Exchange {
        method: req.method(),
        version: req.version(),
        keep_alive,
    };
    let (mut parts, mut body) = answer.response().into_parts();
    let length = BodyLength::of(&body);
    let mut out = Vec::new();
    let mut encoder =
        encode_response_head(&mut out, &mut parts, length, &exchange).expect("head encodes");
    let mut body_trailers = None;
    while let Some(frame) = body.frame().now_or_never().expect("ready body") {
        let frame = frame.expect("frame");
        match frame.into_data() {
            Ok(chunk) if !encoder.is_eof() => encoder.encode_data(&mut out, &chunk),
            Ok(_) => {}
            Err(frame) => body_trailers = frame.into_trailers().ok(),
        }
    }
    let sent_trailers = body_trailers.as_ref().filter(|_| accepts_trailers);
    encoder
        .encode_end(&mut out, sent_trailers)
        .expect("body ends");
    (Some(received), out)
}

/// Replaces the value of every `date` line hyper or the lean server added.
pub(in crate::http::codec) fn mask_date(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut from = 0;
    while let Some(at) = find(&out[from..], b"\r\ndate: ") {
        let start = from + at + 8;
        if out.len() >= start + 29 && !out[start..start + 29].starts_with(b"Mon, 07 Dec 2026 06") {
            out[start..start + 29].fill(b'#');
        }
        from = start;
    }
    out
}

async fn assert_same(request: &[u8], answer: Answer) {
    let (hyper_req, hyper_bytes) = hyper_exchange(request, &answer).await;
    let (lean_req, lean_bytes) = lean_exchange(request, &answer);
    assert_eq!(lean_req, hyper_req, "{}", String::from_utf8_lossy(request));
    assert_eq!(
        String::from_utf8_lossy(&mask_date(&lean_bytes)),
        String::from_utf8_lossy(&mask_date(&hyper_bytes)),
        "{}",
        String::from_utf8_lossy(request)
    );
}

#[tokio::test]
async fn keep_alive_and_close_heads_match_hyper() {
    let get = b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Multi: 1\r\nx-multi: 2\r\nuser-agent: t\xe9st\r\n\r\n";
    assert_same(get, Answer::ok(b"hello")).await;
    let close = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    assert_same(close, Answer::ok(b"hello")).await;
    // The response asks to close, in two lines.
    let mut answer = Answer::ok(b"bye");
    answer.headers.push(("connection", "foo"));
    answer.headers.push(("connection", "close"));
    assert_same(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", answer).await;
}

#[tokio::test]
async fn http10_heads_match_hyper() {
    assert_same(b"GET / HTTP/1.0\r\nhost: x\r\n\r\n", Answer::ok(b"hello")).await;
    let keep = b"GET / HTTP/1.0\r\nhost: x\r\nconnection: keep-alive\r\n\r\n";
    assert_same(keep, Answer::ok(b"hello")).await;
    // No length: close-delimited on HTTP/1.0.
    let mut streamed = Answer::ok(b"streamed");
    streamed.streamed = Some(Vec::new());
    assert_same(keep, streamed.clone()).await;
    assert_same(b"GET / HTTP/1.0\r\n\r\n", streamed).await;
}

#[tokio::test]
async fn bodiless_statuses_and_head_answers_match_hyper() {
    for status in [204u16, 304, 404, 503] {
        let answer = Answer {
            status,
            headers: vec![("server", "envoy")],
            ..Answer::default()
        };
        assert_same(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", answer).await;
    }
    let head = Answer {
        status: 200,
        headers: vec![("content-length", "42"), ("server", "envoy")],
        ..Answer::default()
    };
    assert_same(b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n", head).await;
    let custom = Answer {
        status: 599,
        ..Answer::default()
    };
    assert_same(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", custom).await;
    let reason = Answer {
        status: 200,
        reason: Some("Fine"),
        data: b"x",
        ..Answer::default()
    };
    assert_same(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", reason).await;
}

#[tokio::test]
async fn chunked_answers_and_trailers_match_hyper() {
    let mut answer = Answer::ok(b"0123456789abcdef0123");
    answer.streamed = Some(vec![("x-checksum", "abc"), ("content-type", "no")]);
    answer.headers.push(("trailer", "x-checksum, content-type"));
    // Trailers go out only to a client that accepts them.
    assert_same(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", answer.clone()).await;
    let te = b"GET / HTTP/1.1\r\nhost: x\r\nte: trailers\r\n\r\n";
    assert_same(te, answer).await;
    // A coding of the response's own gets chunked added; an empty stream ends at once.
    let mut gzip = Answer::ok(b"zz");
    gzip.streamed = Some(Vec::new());
    gzip.headers.push(("transfer-encoding", "gzip"));
    assert_same(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", gzip).await;
    let mut empty = Answer::ok(b"");
    empty.streamed = Some(Vec::new());
    assert_same(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", empty).await;
}

#[tokio::test]
async fn request_bodies_decode_as_hyper_decodes_them() {
    let sized = b"POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: 11\r\n\r\nhello world";
    assert_same(sized, Answer::ok(b"ok")).await;
    let chunked = b"POST /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 1\r\n\r\n";
    assert_same(chunked, Answer::ok(b"ok")).await;
    let no_trailers =
        b"PUT /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n";
    assert_same(no_trailers, Answer::ok(b"ok")).await;
}

#[tokio::test]
async fn request_targets_match_hyper() {
    for request in [
        &b"GET http://example.com:8080/p?q HTTP/1.1\r\nhost: y\r\n\r\n"[..],
        b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n",
        b"\r\nGET /after-empty-line HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET /%20a HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n\r\n",
    ] {
        assert_same(request, Answer::ok(b"hi")).await;
    }
}

#[test]
fn what_the_lean_path_leaves_to_hyper_or_refuses() {
    let fallback = |req: &[u8]| matches!(parse_request_head(req, &LIMITS), HeadParse::Fallback);
    assert!(fallback(
        b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
    ));
    assert!(fallback(
        b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: h2c\r\n\r\n"
    ));
    assert!(fallback(b"CONNECT x:443 HTTP/1.1\r\nhost: x:443\r\n\r\n"));
    // httparse refuses it; the framing check repairs or refuses it on hyper's path.
    assert!(fallback(b"GET  /  HTTP/1.1\r\nhost: x\r\n\r\n"));
    assert!(matches!(
        parse_request_head(b"GET / HTTP/1.1\r\nhost: x", &LIMITS),
        HeadParse::Partial
    ));
    let refused = parse_request_head(
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
        &LIMITS,
    );
    assert!(
        matches!(
            refused,
            HeadParse::Refused {
                status: 400,
                details: "http1.content_length_and_chunked_not_allowed",
                empty_body: false
            }
        ),
        "{refused:?}"
    );
    let fragment = parse_request_head(b"GET /a#b HTTP/1.1\r\nhost: x\r\n\r\n", &LIMITS);
    assert!(
        matches!(
            fragment,
            HeadParse::Refused {
                status: 400,
                empty_body: true,
                ..
            }
        ),
        "{fragment:?}"
    );
}

#[test]
fn keep_alive_follows_hyper_rules() {
    let keep_alive = |req: &[u8]| match parse_request_head(req, &LIMITS) {
        HeadParse::Request { head, .. } => head.keep_alive,
        other => panic!("{other:?}"),
    };
    assert!(keep_alive(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
    assert!(!keep_alive(
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    ));
    assert!(!keep_alive(
        b"GET / HTTP/1.1\r\nconnection: close\r\nconnection: keep-alive\r\n\r\n"
    ));
    assert!(!keep_alive(b"GET / HTTP/1.0\r\nhost: x\r\n\r\n"));
    assert!(keep_alive(
        b"GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n"
    ));
}

#[test]
fn chunk_sizes_are_uppercase_hex_and_lengths_cap_the_body() {
    let mut head = Response::new(()).into_parts().0;
    let get = Method::GET;
    let exchange = Exchange {
        method: &get,
        version: Version::HTTP_11,
        keep_alive: true,
    };
    let mut out = Vec::new();
    let mut encoder =
        encode_response_head(&mut out, &mut head, BodyLength::Unknown, &exchange).expect("ok");
    assert!(encoder.is_chunked());
    out.clear();
    encoder.encode_data(&mut out, &[b'a'; 0x1af]);
    assert!(out.starts_with(b"1AF\r\naaa"), "{:?}", &out[..8]);
    let mut head = Response::new(()).into_parts().0;
    let mut encoder =
        encode_response_head(&mut out, &mut head, BodyLength::Known(3), &exchange).expect("ok");
    out.clear();
    encoder.encode_data(&mut out, b"abcdef");
    assert_eq!(out, b"abc");
    assert!(encoder.encode_end(&mut out, None).is_ok());
}
