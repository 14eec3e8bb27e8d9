//! The framing check against Envoy 1.40's answers (the cross-process table is in
//! `tests/tests/malformed_framing.rs`): every verdict must not depend on how the bytes
//! were split into reads, pipelined requests are told apart, body bytes never count as
//! heads, a head in one read costs no allocation, and through hyper a refused request
//! gets Envoy's reply after the responses before it, however slowly it arrives.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::super::DownstreamIo;
use super::*;
use crate::http::normalize::tests::allocations_during;

fn limits() -> FramingLimits {
    FramingLimits {
        read_buffer_limit: 60 * 1024,
        max_headers: 100,
        accept_http_10: false,
    }
}

/// (request, status, details, absolute offset of the refused head's final LF if the
/// head ended in the read that found the problem)
type Outcome = Option<(u64, u16, &'static str, Option<usize>)>;

/// Feeds `bytes` in reads ending at `cuts`, as one connection.
fn feed_in(limits: FramingLimits, bytes: &[u8], cuts: &[usize]) -> Outcome {
    let mut framing = RequestFraming::new(limits);
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        if let Some(r) = framing.on_read_copy(&bytes[start..end]) {
            return Some((
                r.request,
                r.status,
                r.details,
                r.head_end.map(|e| start + e),
            ));
        }
        start = end;
    }
    None
}

/// The verdict with all of `bytes` in one read, after checking that every split into
/// two reads and a read per byte reach the same verdict (the head end is only known
/// when the head ended in the read that found the problem).
fn verdict_in(limits: FramingLimits, bytes: &[u8]) -> Outcome {
    let whole = feed_in(limits, bytes, &[]);
    let same = |got: Outcome| {
        got.map(|(req, status, details, _)| (req, status, details))
            == whole.map(|(req, status, details, _)| (req, status, details))
    };
    for cut in 0..=bytes.len() {
        let got = feed_in(limits, bytes, &[cut]);
        assert!(same(got), "split at {cut}: {got:?} != {whole:?}");
        if let (Some((_, _, _, Some(end))), Some((_, _, _, head_end))) = (got, whole) {
            assert_eq!(Some(end), head_end, "split at {cut}");
        }
    }
    let bytewise: Vec<usize> = (1..bytes.len()).collect();
    let got = feed_in(limits, bytes, &bytewise);
    assert!(same(got), "byte by byte: {got:?} != {whole:?}");
    whole
}

fn verdict(bytes: &[u8]) -> Outcome {
    verdict_in(limits(), bytes)
}

fn status(bytes: &[u8]) -> Option<u16> {
    verdict(bytes).map(|(_, status, _, _)| status)
}

fn post(headers: &str, body: &str) -> Vec<u8> {
    format!("POST /x HTTP/1.1\r\nhost: t\r\n{headers}\r\n{body}").into_bytes()
}

const CL_AND_TE: (u16, &str) = (400, "http1.content_length_and_chunked_not_allowed");

#[test]
fn content_length_with_transfer_encoding_is_refused_in_either_order() {
    let cl_te = post(
        "content-length: 5\r\ntransfer-encoding: chunked\r\n",
        "0\r\n\r\n",
    );
    let head_end = cl_te
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head")
        + 3;
    assert_eq!(
        verdict(&cl_te),
        Some((0, CL_AND_TE.0, CL_AND_TE.1, Some(head_end)))
    );
    let te_cl = post(
        "transfer-encoding: chunked\r\ncontent-length: 5\r\n",
        "0\r\n\r\n",
    );
    assert_eq!(status(&te_cl), Some(400));
    // Whatever the coding, and with an empty length.
    for headers in [
        "content-length: 0\r\ntransfer-encoding: chunked\r\n",
        "transfer-encoding: gzip\r\ncontent-length: 5\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: identity\r\n",
    ] {
        assert_eq!(
            verdict(&post(headers, "")).map(|v| (v.1, v.2)),
            Some(CL_AND_TE),
            "{headers}"
        );
    }
    let http10 = b"POST / HTTP/1.0\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n";
    assert_eq!(status(http10), Some(400));
}

#[test]
fn content_length_must_be_one_decimal_number() {
    for value in [
        "3\r\ncontent-length: 3",
        "3\r\ncontent-length: 4",
        "1,1",
        "3, 3",
    ] {
        let req = post(&format!("content-length: {value}\r\n"), "abc");
        assert_eq!(
            verdict(&req).map(|v| (v.1, v.2)),
            Some((400, "http1.codec_error")),
            "{value}"
        );
    }
    for value in [
        "+3",
        "-1",
        "abc",
        "",
        "0x3",
        "1 1",
        "99999999999999999999999",
    ] {
        let req = post(&format!("content-length: {value}\r\n"), "");
        assert_eq!(status(&req), Some(400), "{value:?}");
    }
    // Leading zeros, surrounding whitespace and any name case are fine.
    for value in ["003", " 3 ", "\t3"] {
        let req = post(&format!("content-length: {value}\r\n"), "abc");
        assert_eq!(status(&req), None, "{value:?}");
    }
    assert_eq!(status(&post("Content-LENGTH: 3\r\n", "abc")), None);
    // Envoy takes any 64-bit length (hyper stops two short of the maximum).
    assert_eq!(
        status(&post("content-length: 18446744073709551615\r\n", "")),
        None
    );
}

#[test]
fn transfer_encoding_must_be_a_lone_chunked() {
    for headers in [
        "transfer-encoding: gzip\r\n",
        "transfer-encoding: gzip, chunked\r\n",
        "transfer-encoding: chunked, gzip\r\n",
        "transfer-encoding: identity\r\n",
        "transfer-encoding: chunked, chunked\r\n",
        "transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n",
        "transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
        "transfer-encoding: chun ked\r\n",
        "transfer-encoding: xchunked\r\n",
        "transfer-encoding: chunked,\r\n",
        "transfer-encoding: \r\n",
    ] {
        assert_eq!(
            verdict(&post(headers, "0\r\n\r\n")).map(|v| (v.1, v.2)),
            Some((501, "http1.invalid_transfer_encoding")),
            "{headers}"
        );
    }
    for headers in [
        "transfer-encoding: Chunked\r\n",
        "Transfer-Encoding: CHUNKED\r\n",
        "transfer-encoding:   chunked  \r\n",
        "transfer-encoding:\tchunked\t\r\n",
        // Repeated lines are joined, and an empty one adds nothing.
        "transfer-encoding: \r\ntransfer-encoding: chunked\r\n",
    ] {
        assert_eq!(status(&post(headers, "0\r\n\r\n")), None, "{headers}");
    }
}

#[test]
fn transfer_encoding_on_http10_is_426_unless_http10_is_accepted() {
    let req = b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(verdict(req).map(|v| (v.1, v.2)), Some((426, "low_version")));
    let accepting = FramingLimits {
        accept_http_10: true,
        ..limits()
    };
    // hyper refuses it anyway (Envoy would serve it): its own 400.
    assert_eq!(verdict_in(accepting, req).map(|v| v.1), Some(400));
    // The coding is judged first.
    let gzip = b"POST / HTTP/1.0\r\ntransfer-encoding: gzip\r\n\r\n";
    assert_eq!(status(gzip), Some(501));
}

#[test]
fn malformed_chunks_are_refused() {
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "1ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloX0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "\r\nhello\r\n0\r\n\r\n",
        "5;a\nb\r\nhello\r\n0\r\n\r\n",
        "5 x\r\nhello\r\n0\r\n\r\n",
        "0\r\n\r\r",
    ] {
        let req = post("transfer-encoding: chunked\r\n", body);
        assert_eq!(
            verdict(&req).map(|v| (v.0, v.1, v.2)),
            Some((0, 400, "http1.codec_error")),
            "{body:?}"
        );
    }
    // The head can still be refused only while it is in the same read.
    let req = post("transfer-encoding: chunked\r\n", "5\r\nhello\r\nzz\r\n");
    let head_len = req.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    assert_eq!(
        feed_in(limits(), &req, &[]).and_then(|v| v.3),
        Some(head_len - 1)
    );
    assert_eq!(
        feed_in(limits(), &req, &[head_len]).map(|v| v.3),
        Some(None)
    );
}

#[test]
fn valid_chunked_bodies_pass() {
    for body in [
        "5\r\nhello\r\n0\r\n\r\n",
        "5;ext=1\r\nhello\r\n0\r\n\r\n",
        "5 ;ext=1\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "00000000000000000000005\r\nhello\r\n0\r\n\r\n",
        "A\r\n0123456789\r\n0\r\n\r\n",
        "5\r\nhello\r\n0\r\nx-trailer: 1\r\nx-other: 2\r\n\r\n",
    ] {
        let mut req = post("transfer-encoding: chunked\r\n", body);
        // The next request proves the body's end was found where hyper finds it.
        req.extend_from_slice(&post("content-length: 1\r\ncontent-length: 1\r\n", "a"));
        assert_eq!(
            verdict(&req).map(|v| (v.0, v.1)),
            Some((1, 400)),
            "{body:?}"
        );
    }
}

#[test]
fn pipelined_requests_are_counted_and_the_bad_one_found() {
    let mut stream = b"\r\n\n\r\nGET /a HTTP/1.1\r\nhost: t\r\n\r\n".to_vec();
    stream.extend_from_slice(&post("content-length: 3\r\n", "abc"));
    stream.extend_from_slice(b"GET /bare-lf HTTP/1.1\nhost: t\n\n");
    stream.extend_from_slice(&post(
        "transfer-encoding: chunked\r\n",
        "3\r\nabc\r\n0\r\n\r\n",
    ));
    assert_eq!(verdict(&stream), None);
    let bad = post("transfer-encoding: gzip\r\n", "");
    let bad_head_end = stream.len() + bad.len() - 1;
    stream.extend_from_slice(&bad);
    stream.extend_from_slice(b"GET /after HTTP/1.1\r\n\r\n");
    assert_eq!(
        verdict(&stream),
        Some((
            4,
            501,
            "http1.invalid_transfer_encoding",
            Some(bad_head_end)
        ))
    );
}

#[test]
fn bodies_that_look_like_heads_are_bodies() {
    let smuggled = "POST /s HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n";
    let mut stream = post(
        &format!("content-length: {}\r\n", smuggled.len() + 4),
        &format!("\r\n\r\n{smuggled}"),
    );
    let chunk = format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
    stream.extend_from_slice(&post("transfer-encoding: chunked\r\n", &chunk));
    stream.extend_from_slice(&post(
        "transfer-encoding: chunked\r\n",
        &format!("0\r\nx: {smuggled}"),
    ));
    assert_eq!(verdict(&stream), None);
}

#[test]
fn the_check_stops_at_upgrades_and_connect() {
    let smuggled = post(
        "content-length: 5\r\ntransfer-encoding: chunked\r\n",
        "0\r\n\r\n",
    );
    for head in [
        "GET /ws HTTP/1.1\r\nhost: t\r\nconnection: keep-alive, Upgrade\r\nupgrade: websocket\r\n\r\n",
        "CONNECT t:80 HTTP/1.1\r\nhost: t:80\r\n\r\n",
    ] {
        let mut stream = head.as_bytes().to_vec();
        stream.extend_from_slice(&smuggled);
        assert_eq!(verdict(&stream), None, "{head}");
    }
    // Not an upgrade for the connection manager either: still HTTP.
    let mut stream = b"GET / HTTP/1.1\r\nhost: t\r\nupgrade: websocket\r\n\r\n".to_vec();
    stream.extend_from_slice(&smuggled);
    assert_eq!(verdict(&stream).map(|v| (v.0, v.1)), Some((1, 400)));
    // An upgrade request's own framing is checked.
    let bad_upgrade = b"GET / HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
        content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n";
    assert_eq!(status(bad_upgrade), Some(400));
}

#[test]
fn heads_hyper_refuses_end_the_check() {
    // A head httparse refuses (hyper answers 400 and closes).
    let mut stream = b"GET / HTTP/1.1\r\nbad header\r\n\r\n".to_vec();
    stream.extend_from_slice(&post("transfer-encoding: gzip\r\n", ""));
    assert_eq!(verdict(&stream), None);
    // Too many headers for hyper (431).
    let few = FramingLimits {
        max_headers: 2,
        ..limits()
    };
    let three = post("a: 1\r\ntransfer-encoding: gzip\r\n", "");
    assert_eq!(verdict_in(few, &three), None);
    // Too long for hyper's buffer, however it is split.
    let small = FramingLimits {
        read_buffer_limit: 64,
        ..limits()
    };
    let long = post(
        &format!("x: {}\r\ntransfer-encoding: gzip\r\n", "y".repeat(200)),
        "",
    );
    assert_eq!(feed_in(small, &long, &[10]), None);
    assert_eq!(
        verdict_in(small, &post("transfer-encoding: gzip\r\n", "")).map(|v| v.1),
        Some(501)
    );
}

#[test]
fn empty_lines_before_a_request_are_not_kept() {
    let mut framing = RequestFraming::new(limits());
    for _ in 0..1000 {
        assert_eq!(framing.on_read_copy(b"\r\n"), None);
        assert!(framing.head_buf.len() <= 4, "{}", framing.head_buf.len());
    }
    assert_eq!(
        framing.on_read_copy(b"\nPOST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n"),
        None
    );
    assert_eq!(framing.on_read_copy(b"\r\n").map(|r| r.status), Some(501));
}

#[test]
fn more_header_slots_than_the_stack_holds() {
    let many = FramingLimits {
        max_headers: 150,
        ..limits()
    };
    let filler: String = (0..120).map(|i| format!("x-{i}: v\r\n")).collect();
    let req = post(&format!("{filler}transfer-encoding: gzip\r\n"), "");
    assert_eq!(feed_in(many, &req, &[]).map(|v| v.1), Some(501));
    assert_eq!(feed_in(many, &req, &[7]).map(|v| v.1), Some(501));
}

#[test]
fn a_head_in_one_read_allocates_nothing() {
    let mut stream = b"GET /a HTTP/1.1\r\nhost: t\r\nconnection: keep-alive\r\n\r\n".to_vec();
    stream.extend_from_slice(&post("content-length: 3\r\n", "abc"));
    stream.extend_from_slice(&post(
        "transfer-encoding: chunked\r\n",
        "3\r\nabc\r\n0\r\n\r\n",
    ));
    let mut framing = RequestFraming::new(limits());
    let mut outcome = Some(None);
    let allocations = allocations_during(|| outcome = Some(framing.on_read(&mut stream).0));
    assert_eq!(outcome, Some(None));
    assert_eq!(allocations, 0);
}

/// A client connection for hyper: hands out `input` `chunk` bytes per read (then never
/// anything more), and keeps what is written.
struct Trickle {
    input: Vec<u8>,
    at: usize,
    chunk: usize,
    output: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at == self.input.len() {
            return Poll::Pending;
        }
        let n = self
            .chunk
            .min(self.input.len() - self.at)
            .min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.lock().expect("output").extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Serves `input` (arriving `chunk` bytes at a time) with hyper's HTTP/1 server behind
/// the framing check; every request hyper accepts gets `200 ok`. Returns what was
/// written, once hyper closed the connection.
async fn serve(input: &[u8], chunk: usize) -> String {
    let output = Arc::new(Mutex::new(Vec::new()));
    let client = Trickle {
        input: input.to_vec(),
        at: 0,
        chunk,
        output: output.clone(),
    };
    let mut io = DownstreamIo::new(client);
    io.framing = Some(RequestFraming::new(limits()));
    io.codec = super::super::Codec::Http1;
    let service = hyper::service::service_fn(|_req| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
            bytes::Bytes::from_static(b"ok"),
        )))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::time::timeout(std::time::Duration::from_secs(5), conn)
        .await
        .expect("hyper closed the connection")
        .ok();
    let written = output.lock().expect("output").clone();
    String::from_utf8_lossy(&written).into_owned()
}

#[tokio::test]
async fn through_hyper_the_refusal_follows_earlier_responses_however_it_arrives() {
    let mut input = b"GET /a HTTP/1.1\r\nhost: t\r\n\r\n".to_vec();
    input.extend_from_slice(&post("transfer-encoding: gzip, chunked\r\n", "0\r\n\r\n"));
    input.extend_from_slice(b"GET /never HTTP/1.1\r\nhost: t\r\n\r\n");
    for chunk in [1, 2, 3, 7, 29, 30, 31, 64, input.len()] {
        let written = serve(&input, chunk).await;
        assert!(
            written.starts_with("HTTP/1.1 200 OK\r\n"),
            "{chunk}: {written}"
        );
        assert_eq!(
            written.matches("HTTP/1.1 200 OK").count(),
            1,
            "{chunk}: {written}"
        );
        let refusal = &written[written.find("HTTP/1.1 501").expect("501")..];
        assert!(
            refusal.starts_with("HTTP/1.1 501 Not Implemented\r\ncontent-length: 15\r\n"),
            "{chunk}: {refusal}"
        );
        assert!(
            refusal.ends_with("connection: close\r\n\r\nNot Implemented"),
            "{chunk}"
        );
    }
}

#[tokio::test]
async fn through_hyper_a_bad_chunk_with_its_head_refuses_the_request() {
    let input = post("transfer-encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n");
    let head_len = input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head")
        + 4;
    // With the head: hyper never sees a request.
    let written = serve(&input, input.len()).await;
    assert!(
        written.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{written}"
    );
    assert!(written.ends_with("\r\n\r\nBad Request"), "{written}");
    // After the head: hyper served it and its body fails (the connection manager turns
    // that into 400); nothing was spoiled.
    let written = serve(&input, head_len).await;
    assert!(written.starts_with("HTTP/1.1 200 OK\r\n"), "{written}");
}

#[test]
fn a_spoiled_end_that_does_not_fit_is_read_next() {
    let mut storage = [0u8; 4];
    let mut buf = ReadBuf::new(&mut storage);
    buf.put_slice(b"a\r\n\n");
    let mut overflow = Vec::new();
    super::super::spoil_head(&mut buf, 3, &mut overflow);
    assert_eq!(buf.filled(), b"a\r\n\0");
    assert_eq!(overflow, b"\n\n");
}

/// The verdict with all of `bytes` in one read (request-line refusals and repairs need
/// the request line, or the head, in one read; hyper refuses what is cut).
fn whole(bytes: &[u8]) -> Option<(u16, &'static str, bool)> {
    RequestFraming::new(limits())
        .on_read_copy(bytes)
        .map(|r| (r.status, r.details, r.empty_body))
}

#[test]
fn methods_targets_and_versions_envoy_refuses() {
    let bad_request = Some((400, CODEC_ERROR, false));
    assert_eq!(whole(b"get / HTTP/1.1\r\nhost: t\r\n\r\n"), bad_request);
    assert_eq!(whole(b"FOO / HTTP/1.1\r\nhost: t\r\n\r\n"), bad_request);
    assert_eq!(
        whole(b"GET abc HTTP/1.1\r\nhost: t\r\n\r\n"),
        Some((400, INVALID_URL, false))
    );
    assert_eq!(
        whole("GET /caf\u{e9} HTTP/1.1\r\nhost: t\r\n\r\n".as_bytes()),
        Some((400, INVALID_URL, false))
    );
    assert_eq!(
        whole(b"GET /a#b HTTP/1.1\r\nhost: t\r\n\r\n"),
        Some((400, PATH_NORMALIZATION_FAILED, true))
    );
    for line in ["GET / HTTP/1.2", "GET / HTTP/2.0", "GET /"] {
        let head = format!("{line}\r\nhost: t\r\n\r\n");
        let rejection = RequestFraming::new(limits()).on_read_copy(head.as_bytes());
        assert_eq!(rejection.map(|r| (r.status, r.head_end)), Some((426, None)));
    }
    // hyper's own 400s stay 400s.
    assert_eq!(whole(b"GET / http/1.1\r\nhost: t\r\n\r\n"), None);
    for ok in [
        "GET http://x/a HTTP/1.1\r\nhost: t\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nhost: t\r\n\r\n",
        "MSEARCH / HTTP/1.1\r\nhost: t\r\n\r\n",
        "CONNECT x:443 HTTP/1.1\r\nhost: x\r\n\r\n",
    ] {
        assert_eq!(whole(ok.as_bytes()), None, "{ok}");
    }
}

#[test]
fn a_repaired_head_is_still_judged() {
    // Unfolded, this is Content-Length with Transfer-Encoding.
    let folded = b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\ntransfer-encoding:\r\n chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(whole(folded), Some((400, super::CL_AND_TE, false)));
    let spaced = b"POST  /  HTTP/1.1\r\nhost: t\r\ntransfer-encoding: gz\rip\r\n\r\n";
    assert_eq!(whole(spaced), Some((501, super::INVALID_TE, false)));
}

#[tokio::test]
async fn through_hyper_repaired_heads_are_served() {
    let input = b"GET  /a  HTTP/1.1\r\nhost: t\r\nx: a\r\n b\r\n\r\n\
        GET /b HTTP/1.1\r\nhost: t\r\nx: b\rc\r\n\r\n\
        POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\ntransfer-encoding:\r\n chunked\r\n\r\n0\r\n\r\n";
    let written = serve(input, input.len()).await;
    assert_eq!(written.matches("HTTP/1.1 200 OK").count(), 2, "{written}");
    assert!(written.ends_with("\r\n\r\nBad Request"), "{written}");
}

#[test]
fn control_characters_in_a_refused_head_are_named() {
    let named: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nhost: x\r\nx\0y: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\nxy: 1\x7f\r\n\r\n",
        b"GET /a\0b HTTP/1.1\r\nhost: x\r\n\r\n",
    ];
    for head in named {
        assert_eq!(
            verdict(head).map(|(request, status, details, _)| (request, status, details)),
            Some((0, 400, INVALID_CHARACTERS)),
            "{head:?}"
        );
    }
    // Other malformations keep hyper's own 400 (http1.codec_error).
    assert_eq!(
        verdict(b"GET / HTTP/1.1\r\nhost: x\r\nx y: 1\r\n\r\n"),
        None
    );
}
