//! The lean HTTP/1.1 upstream exchange against raw upstream sockets: content-length
//! request bodies and connection reuse after them, an early answer while the request
//! body is still due, chunked responses with trailers, refused heads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::test_support::*;
use super::{ClusterManager, RequestBody, SendOptions, UpstreamError};

const BOUND: Duration = Duration::from_secs(5);

async fn manager(addr: SocketAddr) -> Arc<ClusterManager> {
    ClusterManager::initialize(&[Arc::new(cluster("c", ips(&[addr])))])
        .await
        .expect("initialize")
}

/// Reads bytes until `wanted` of them arrived (or the peer closed), bounded.
async fn read_n(stream: &mut TcpStream, wanted: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < wanted {
        match tokio::time::timeout(BOUND, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    got
}

fn post(path: &str, body: RequestBody, length: usize) -> http::Request<RequestBody> {
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header(http::header::HOST, "upstream.test")
        .header(http::header::CONTENT_LENGTH, length)
        .body(body)
        .expect("valid request")
}

fn full(data: &'static [u8]) -> RequestBody {
    http_body_util::Full::new(Bytes::from_static(data))
        .map_err(|never| match never {})
        .boxed()
}

#[tokio::test]
async fn a_content_length_body_goes_out_and_the_connection_is_reused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let head = read_head(&mut stream).await;
        let head = String::from_utf8_lossy(&head).into_owned();
        let body = read_n(&mut stream, 5).await;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst")
            .await
            .expect("write");
        let second = read_head(&mut stream).await;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nsec\r\n3\r\nond\r\n0\r\nx-sum: 9\r\n\r\n")
            .await
            .expect("write");
        (head, body, String::from_utf8_lossy(&second).into_owned())
    });
    let cm = manager(addr).await;
    let c = cm.get("c").expect("cluster");
    let resp = c
        .send_http(post("/up", full(b"hello"), 5), &SendOptions::default())
        .await
        .expect("response");
    assert_eq!(text(resp.response.into_body()).await, "first");
    let resp = c
        .send_http(get("/again"), &SendOptions::default())
        .await
        .expect("response");
    let collected = resp.response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["x-sum"], "9");
    assert_eq!(collected.to_bytes(), "second");
    let (head, body, second) = tokio::time::timeout(BOUND, server)
        .await
        .expect("server within bound")
        .expect("server");
    assert!(head.starts_with("POST /up HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("content-length: 5\r\n"), "{head}");
    assert_eq!(body, b"hello");
    assert!(second.starts_with("GET /again HTTP/1.1\r\n"), "{second}");
}

#[tokio::test]
async fn an_early_answer_arrives_while_the_body_is_still_due_and_the_connection_closes() {
    // The proxy side gives the connection up: EOF after whatever body it sent.
    let (addr, server) =
        one_answer_upstream(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!")
            .await;
    let cm = manager(addr).await;
    let c = cm.get("c").expect("cluster");
    // A body that never ends: the answer must not wait for it.
    let (_tx, rx) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, super::BoxError>>(1);
    let never = StreamBody::new(tokio_stream_of(rx)).boxed();
    let resp = tokio::time::timeout(
        BOUND,
        c.send_http(post("/big", never, 1 << 20), &SendOptions::default()),
    )
    .await
    .expect("answer within bound")
    .expect("response");
    assert_eq!(resp.response.status(), 413);
    assert_eq!(text(resp.response.into_body()).await, "big!");
    assert!(tokio::time::timeout(BOUND, server)
        .await
        .expect("server within bound")
        .expect("server"));
    assert_eq!(super::pool::idle_connections(&c.hosts()[0]), 0);
}

/// The frames of a channel as a stream.
fn tokio_stream_of<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn a_malformed_head_is_a_protocol_error() {
    let (addr, server) =
        one_answer_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nx")
            .await;
    let cm = manager(addr).await;
    let c = cm.get("c").expect("cluster");
    match c.send_http(get("/"), &SendOptions::default()).await {
        Err(UpstreamError::ProtocolError { .. }) => {}
        other => panic!("expected a protocol error, got {other:?}"),
    }
    server.await.expect("server");
}
