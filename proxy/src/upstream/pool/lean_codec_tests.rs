//! Unit tests of the lean exchange's wire format: request heads, response heads
//! (framing decisions, refusals), and body decoding (content-length, chunked edge cases,
//! trailers, close-delimited).

use super::*;
use bytes::Bytes;

fn head(data: &[u8]) -> Result<Option<ResponseHead>, FramingError> {
    parse_response_head(data, 100, false)
}

fn parsed(data: &[u8]) -> ResponseHead {
    head(data).expect("valid head").expect("complete head")
}

/// Decodes all of `wire` fed in pieces of `step` bytes: the body bytes, the trailers,
/// and whether the body ended.
fn decode_all(
    kind: BodyKind,
    wire: &[u8],
    step: usize,
) -> Result<(Vec<u8>, Option<HeaderMap>, bool), FramingError> {
    let mut decoder = BodyDecoder::new(kind);
    let mut buffered: Vec<u8> = Vec::new();
    let mut body = Vec::new();
    let mut trailers = None;
    let mut fed = 0;
    loop {
        let mut used = 0;
        match decoder.decode(&buffered, &mut used)? {
            Decoded::Data(range) => body.extend_from_slice(&buffered[range]),
            Decoded::Trailers(t) => trailers = Some(t),
            Decoded::End => return Ok((body, trailers, true)),
            Decoded::NeedMore => {
                if fed >= wire.len() {
                    buffered.drain(..used);
                    decoder.on_eof()?;
                    return Ok((body, trailers, decoder.is_ended()));
                }
                let next = (fed + step).min(wire.len());
                buffered.drain(..used);
                buffered.extend_from_slice(&wire[fed..next]);
                fed = next;
                continue;
            }
        }
        buffered.drain(..used);
        if decoder.is_ended() {
            return Ok((body, trailers, true));
        }
    }
}

#[test]
fn request_head_is_one_buffer_in_wire_order() {
    let req = Request::builder()
        .method("GET")
        .uri("/a/b?c=d")
        .header("host", "example.com")
        .header("x-multi", "1")
        .header("x-multi", "2")
        .header("transfer-encoding", "chunked")
        .body(())
        .expect("request");
    let mut buf = b"stale".to_vec();
    let facts = write_request_head(&mut buf, &req);
    assert_eq!(
        facts,
        RequestHeadFacts {
            close_asked: false,
            declared_length: None
        }
    );
    assert_eq!(
        buf,
        b"GET /a/b?c=d HTTP/1.1\r\nhost: example.com\r\nx-multi: 1\r\nx-multi: 2\r\n\r\n"
    );
}

#[test]
fn lean_exchange_takes_http11_requests_without_body_or_with_a_length() {
    let get = Request::get("/")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("req");
    assert!(handles(&get));
    let sized = Request::post("/")
        .header("content-length", "1")
        .body(http_body_util::Full::new(Bytes::from_static(b"x")))
        .expect("req");
    assert!(handles(&sized));
    let unsized_body = Request::post("/")
        .body(http_body_util::Full::new(Bytes::from_static(b"x")))
        .expect("req");
    assert!(!handles(&unsized_body));
    let chunked = Request::post("/")
        .header("transfer-encoding", "chunked")
        .body(http_body_util::Full::new(Bytes::from_static(b"x")))
        .expect("req");
    assert!(!handles(&chunked));
    let twice = Request::post("/")
        .header("content-length", "1")
        .header("content-length", "1")
        .body(http_body_util::Full::new(Bytes::from_static(b"x")))
        .expect("req");
    assert!(!handles(&twice));
    let old = Request::get("/")
        .version(Version::HTTP_10)
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("req");
    assert!(!handles(&old));
    let connect = Request::connect("example.com:443")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("req");
    assert!(!handles(&connect));
}

#[test]
fn response_head_parses_status_headers_and_framing() {
    let h = parsed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
    assert_eq!(h.response.status(), StatusCode::OK);
    assert_eq!(h.response.version(), Version::HTTP_11);
    assert_eq!(h.response.headers()["x-a"], "b");
    assert_eq!(h.body, BodyKind::Length(5));
    assert!(h.keep_alive);
    assert_eq!(h.consumed, 46);
    assert!(h
        .response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .is_none());
}

#[test]
fn incomplete_head_asks_for_more() {
    assert!(head(b"HTTP/1.1 200 OK\r\nContent-Le")
        .expect("ok")
        .is_none());
}

#[test]
fn odd_reason_phrase_is_kept() {
    let h = parsed(b"HTTP/1.1 200 Fine\r\ncontent-length: 0\r\n\r\n");
    let reason = h
        .response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .expect("reason");
    assert_eq!(reason.as_bytes(), b"Fine");
    assert_eq!(h.body, BodyKind::Empty);
}

#[test]
fn informational_heads_are_skipped() {
    let h = parsed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(h.response.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.body, BodyKind::Empty);
    assert!(head(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2")
        .expect("ok")
        .is_none());
}

#[test]
fn no_body_for_head_204_304() {
    assert_eq!(
        parse_response_head(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", 100, true)
            .expect("ok")
            .expect("complete")
            .body,
        BodyKind::Empty
    );
    assert_eq!(
        parsed(b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n").body,
        BodyKind::Empty
    );
}

#[test]
fn transfer_encoding_decides_over_content_length() {
    let h =
        parsed(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: gzip, chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    let h = parsed(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n");
    assert_eq!(h.body, BodyKind::CloseDelimited);
    assert_eq!(
        head(b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").err(),
        Some(FramingError::TransferEncodingOnHttp10)
    );
}

#[test]
fn content_lengths_must_agree_and_be_digits() {
    assert_eq!(
        parsed(b"HTTP/1.1 200 OK\r\ncontent-length: 4, 4\r\ncontent-length: 4\r\n\r\n").body,
        BodyKind::Length(4)
    );
    for bad in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: +4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
    ] {
        assert_eq!(
            head(bad).err(),
            Some(FramingError::ContentLength),
            "{bad:?}"
        );
    }
}

#[test]
fn neither_length_nor_coding_reads_to_close() {
    let h = parsed(b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(h.body, BodyKind::CloseDelimited);
}

#[test]
fn keep_alive_follows_version_and_connection() {
    assert!(
        !parsed(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").keep_alive
    );
    assert!(!parsed(b"HTTP/1.1 200 OK\r\nconnection: x, Close\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n").keep_alive);
    assert!(!parsed(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").keep_alive);
    assert!(
        parsed(b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n")
            .keep_alive
    );
    assert!(!parsed(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n").keep_alive);
    let req = Request::post("/")
        .header(CONNECTION, "keep-alive")
        .header(CONNECTION, "Close")
        .header(CONTENT_LENGTH, "12")
        .body(())
        .expect("request");
    let facts = write_request_head(&mut Vec::new(), &req);
    assert!(facts.close_asked);
    assert_eq!(facts.declared_length, Some(12));
    let req = Request::post("/")
        .header(CONTENT_LENGTH, "12")
        .header(CONTENT_LENGTH, "12")
        .body(())
        .expect("request");
    let facts = write_request_head(&mut Vec::new(), &req);
    assert!(!facts.close_asked);
    assert_eq!(facts.declared_length, None);
}

#[test]
fn bad_heads_are_refused() {
    for bad in [
        &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx: a\x01b\r\n\r\n",
        b"garbage\r\n\r\n",
    ] {
        assert!(matches!(head(bad), Err(FramingError::Head(_))), "{bad:?}");
    }
}

#[test]
fn too_many_headers_are_refused() {
    let data = b"HTTP/1.1 200 OK\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
    assert_eq!(
        parse_response_head(data, 2, false).err(),
        Some(FramingError::TooManyHeaders)
    );
    assert!(parse_response_head(data, 3, false).expect("ok").is_some());
    // Over the stack array: the heap one serves.
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..150 {
        many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(
        parse_response_head(&many, 200, false)
            .expect("ok")
            .expect("complete")
            .response
            .headers()
            .len(),
        150
    );
}

#[test]
fn content_length_body_stops_at_its_length() {
    for step in [1, 3, 100] {
        let (body, trailers, ended) =
            decode_all(BodyKind::Length(5), b"hello", step).expect("body");
        assert_eq!(body, b"hello");
        assert!(trailers.is_none() && ended);
    }
    let mut decoder = BodyDecoder::new(BodyKind::Length(2));
    let mut used = 0;
    assert_eq!(decoder.decode(b"abcd", &mut used), Ok(Decoded::Data(0..2)));
    assert_eq!(used, 2);
    assert!(decoder.is_ended() && decoder.reusable());
}

#[test]
fn content_length_body_cut_short_is_an_error() {
    assert_eq!(
        decode_all(BodyKind::Length(9), b"hello", 2).err(),
        Some(FramingError::Incomplete)
    );
}

#[test]
fn close_delimited_body_ends_at_close() {
    let (body, _, ended) = decode_all(BodyKind::CloseDelimited, b"all of it", 4).expect("body");
    assert_eq!(body, b"all of it");
    assert!(ended);
    assert!(!BodyDecoder::new(BodyKind::CloseDelimited).reusable());
}

#[test]
fn chunked_body_decodes_in_any_split() {
    let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\nA  \r\n0123456789\r\n0\r\n\r\n";
    for step in 1..wire.len() {
        let (body, trailers, ended) = decode_all(BodyKind::Chunked, wire, step).expect("body");
        assert_eq!(body, b"hello 0123456789", "step {step}");
        assert!(trailers.is_none() && ended, "step {step}");
    }
}

#[test]
fn chunked_trailers_are_returned() {
    let wire = b"2\r\nok\r\n0\r\nx-checksum: abc\r\nx-other: 1\r\n\r\n";
    for step in [1, 7, 200] {
        let (body, trailers, ended) = decode_all(BodyKind::Chunked, wire, step).expect("body");
        assert_eq!(body, b"ok");
        let trailers = trailers.expect("trailers");
        assert_eq!(trailers["x-checksum"], "abc");
        assert_eq!(trailers["x-other"], "1");
        assert!(ended);
    }
}

#[test]
fn malformed_chunks_are_refused() {
    for bad in [
        &b"z\r\n"[..],
        b"\r\n",
        b"5\r\nhelloXX",
        b"5 x\r\nhello\r\n",
        b"fffffffffffffffff\r\n",
        b"0\r\nbad trailer\r\n\r\n",
    ] {
        assert!(decode_all(BodyKind::Chunked, bad, 64).is_err(), "{bad:?}");
    }
}

#[test]
fn chunked_body_cut_short_is_an_error() {
    assert_eq!(
        decode_all(BodyKind::Chunked, b"5\r\nhel", 2).err(),
        Some(FramingError::Incomplete)
    );
}

/// What the router's hop-by-hop strip leaves of a response's headers, as names and
/// values in order.
fn stripped(mut headers: HeaderMap) -> Vec<(String, String)> {
    crate::http::headers::hop_by_hop::strip(&mut headers, false);
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[test]
fn plain_keep_alive_connection_lines_are_left_out_as_the_strip_would_remove_them() {
    // First line `keep-alive`: every `connection` line goes, nothing else, and the
    // rest keep their order; the keep-alive decision still reads every line.
    let wire: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nclose: 1\r\na: 1\r\nconnection: close\r\nb: 2\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nserver: x\r\nConnection: Keep-Alive\r\ncontent-length: 0\r\ndate: d\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nconnection:\r\nx: 1\r\ncontent-length: 0\r\n\r\n",
    ];
    for data in wire {
        let head = parsed(data);
        let response = head.response;
        assert!(!response.headers().contains_key(CONNECTION), "{data:?}");
        let mut kept = HeaderMap::new();
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut parse = httparse::Response::new(&mut slots);
        parse.parse(data).expect("parses");
        for h in parse.headers.iter() {
            kept.append(
                HeaderName::from_bytes(h.name.as_bytes()).expect("name"),
                HeaderValue::from_bytes(h.value).expect("value"),
            );
        }
        // The same names and values as the strip leaves of the whole head (whose own
        // removal may reorder: compare as sets).
        let mut ours = stripped(response.headers().clone());
        let mut theirs = stripped(kept);
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{data:?}");
    }
    assert!(!parsed(wire[0]).keep_alive);
    assert!(parsed(wire[1]).keep_alive);
    // A first line naming a header keeps the lines: the strip removes what they name.
    let head = parsed(b"HTTP/1.1 200 OK\r\nconnection: x-hop, keep-alive\r\nx-hop: 1\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(
        head.response.headers().get_all(CONNECTION).iter().count(),
        2
    );
    assert_eq!(
        stripped(head.response.headers().clone()),
        vec![("content-length".to_string(), "0".to_string())]
    );
}
