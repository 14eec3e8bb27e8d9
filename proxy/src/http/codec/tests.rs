//! Unit tests of the codec setup: response heads, sniffing, codec replies.

use super::downstream_write::head_only;
use super::*;
use tokio::io::AsyncWriteExt;

#[test]
fn head_only_finds_a_lone_response_head() {
    let head = b"HTTP/1.1 200 OK\r\ndate: x\r\n\r\n";
    assert_eq!(head_only(head), Some(head.len() - 2));
    let with_body = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab\r\n\r\n";
    assert_eq!(head_only(with_body), None);
    let two = b"HTTP/1.1 200 OK\r\na: b\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
    assert_eq!(head_only(two), None);
    assert_eq!(head_only(b"HTTP/1.0 200 OK\r\n\r\n"), None);
}

#[test]
fn head_length_is_the_head_as_sent() {
    let req = http::Request::get("/abc?x=1")
        .header("host", "x")
        .header("a", "b")
        .body(())
        .expect("request");
    let sent = "GET /abc?x=1 HTTP/1.1\r\nhost: x\r\na: b\r\n\r\n";
    assert_eq!(http1_head_len(&req), sent.len());
}

async fn sniff(sent: &[u8], http1_only: bool) -> (Preface, Vec<u8>) {
    let (mut client, server) = tokio::io::duplex(256);
    client.write_all(sent).await.expect("write");
    client.shutdown().await.expect("shutdown");
    let mut io = DownstreamIo::new(server);
    let verdict = io.sniff_preface(http1_only).await.expect("sniff");
    let mut replayed = Vec::new();
    io.read_to_end(&mut replayed).await.expect("read");
    (verdict, replayed)
}

#[tokio::test]
async fn sniffing_tells_the_protocols_apart_and_loses_no_byte() {
    let get = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
    assert_eq!(sniff(get, false).await, (Preface::Http1, get.to_vec()));
    let post = b"POST / HTTP/1.1\r\n";
    assert_eq!(sniff(post, true).await, (Preface::Http1, post.to_vec()));
    let mut h2 = H2_PREFACE.to_vec();
    h2.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
    assert_eq!(sniff(&h2, false).await, (Preface::Http2, h2.clone()));
    // The HTTP/1 codec only needs the `PRI * HTTP/2.0` request line to refuse it.
    let line = &H2_PREFACE[..H2_REQUEST_LINE_LEN];
    assert_eq!(sniff(line, true).await, (Preface::Http2, line.to_vec()));
    assert_eq!(sniff(line, false).await, (Preface::Closed, line.to_vec()));
    assert_eq!(sniff(b"", false).await, (Preface::Closed, Vec::new()));
}

#[tokio::test]
async fn codec_replies_are_envoys() {
    let bytes = reply::render(408, codec_reply_text(408), "x", "envoy", None).bytes;
    let text = String::from_utf8(bytes).expect("utf8");
    assert!(text.starts_with("HTTP/1.1 408 Request Timeout\r\ncontent-length: 22\r\n"));
    assert!(text.ends_with("connection: close\r\n\r\nrequest header timeout"));
    assert_eq!(codec_reply_body_len(431), 31);
    assert_eq!(codec_reply_body_len(400), 11);
}
