//! The lean connection loop against hyper's server: the same pipelined request bytes
//! must come back as the same response bytes, and what the loop leaves to hyper must
//! be handed over at the right request.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::http::codec::lean_server::tests::{hyper_serve, mask_date, Respond};

const LIMITS: FramingLimits = FramingLimits {
    read_buffer_limit: 8192,
    max_headers: 100,
    accept_http_10: true,
};

/// Answers with what it received: `/close` asks to close, `/stream` streams its body
/// (with a declared trailer), `/empty` is a bodiless 404.
fn echo() -> Arc<Respond> {
    Arc::new(
        |parts: http::request::Parts, body: Bytes, trailers: Option<HeaderMap>| {
            let text = format!(
                "{} {} {:?} {} bytes, trailers {:?}",
                parts.method,
                parts.uri,
                parts.version,
                body.len(),
                trailers.map(|t| t.len())
            );
            let path = parts.uri.path();
            let body: ResponseBody = if path == "/stream" {
                let mut trailer = HeaderMap::new();
                trailer.insert("x-sum", HeaderValue::from_static("7"));
                let frames = [
                    Frame::data(Bytes::from(text)),
                    Frame::data(Bytes::from_static(b"more")),
                    Frame::trailers(trailer),
                ]
                .into_iter()
                .map(Ok::<_, crate::upstream::BoxError>);
                crate::http::response_body(StreamBody::new(futures_util::stream::iter(frames)))
            } else if path == "/empty" {
                crate::http::stream_empty_body()
            } else {
                crate::http::response_body(
                    Full::new(Bytes::from(text)).map_err(|never| match never {}),
                )
            };
            let mut resp = Response::new(body);
            let headers = resp.headers_mut();
            headers.insert(
                "date",
                HeaderValue::from_static("Mon, 07 Dec 2026 06:00:00 GMT"),
            );
            headers.insert("server", HeaderValue::from_static("envoy"));
            match path {
                "/close" => {
                    headers.insert("connection", HeaderValue::from_static("close"));
                }
                "/stream" => {
                    headers.insert(
                        HeaderName::from_static("trailer"),
                        HeaderValue::from_static("x-sum"),
                    );
                }
                "/empty" => *resp.status_mut() = StatusCode::NOT_FOUND,
                _ => {}
            }
            resp
        },
    )
}

/// Serves `requests` (already read) with the lean loop; returns the bytes written and
/// how the loop ended.
async fn lean_serve(requests: &[u8], respond: Arc<Respond>) -> (Vec<u8>, LeanEnd<()>) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let conn = LeanConn::new(server, LIMITS, BytesMut::from(requests));
    let end = conn
        .serve(move |req: Request<LeanBody>| {
            let respond = respond.clone();
            async move {
                let (parts, body) = req.into_parts();
                let collected = body.collect().await.expect("infallible");
                let trailers = collected.trailers().cloned();
                Ok::<_, std::convert::Infallible>(respond(parts, collected.to_bytes(), trailers))
            }
        })
        .await
        .expect("serves");
    // The server's end closes (dropped) so that the client reads to the end.
    let end = match end {
        LeanEnd::Closed => LeanEnd::Closed,
        LeanEnd::Idle(io) => {
            drop(io);
            LeanEnd::Idle(())
        }
        LeanEnd::Fallback { io, unread } => {
            drop(io);
            LeanEnd::Fallback { io: (), unread }
        }
    };
    let mut out = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.read_to_end(&mut out),
    )
    .await
    .expect("the server's end closed")
    .expect("read");
    (out, end)
}

async fn assert_same_as_hyper(requests: &[u8]) -> LeanEnd<()> {
    let hyper = hyper_serve(requests, echo()).await;
    let (lean, end) = lean_serve(requests, echo()).await;
    assert_eq!(
        String::from_utf8_lossy(&mask_date(&lean)),
        String::from_utf8_lossy(&mask_date(&hyper)),
        "{}",
        String::from_utf8_lossy(requests)
    );
    end
}

#[tokio::test]
async fn pipelined_keep_alive_requests_are_answered_in_order_then_idle() {
    let requests = b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\n\r\nHEAD /3 HTTP/1.1\r\nhost: x\r\n\r\nGET /empty HTTP/1.1\r\nhost: x\r\n\r\n";
    let end = assert_same_as_hyper(requests).await;
    assert!(matches!(end, LeanEnd::Idle(())), "{end:?}");
}

#[tokio::test]
async fn request_bodies_that_came_with_their_heads_are_served() {
    let requests = b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhelloPUT /b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\nGET /c HTTP/1.1\r\nhost: x\r\n\r\n";
    let end = assert_same_as_hyper(requests).await;
    assert!(matches!(end, LeanEnd::Idle(())), "{end:?}");
}

#[tokio::test]
async fn connection_close_from_either_side_ends_the_connection() {
    let client_closes = b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\nGET /never HTTP/1.1\r\nhost: x\r\n\r\n";
    let end = assert_same_as_hyper(client_closes).await;
    assert!(matches!(end, LeanEnd::Closed), "{end:?}");
    let server_closes =
        b"GET /close HTTP/1.1\r\nhost: x\r\n\r\nGET /never HTTP/1.1\r\nhost: x\r\n\r\n";
    let end = assert_same_as_hyper(server_closes).await;
    assert!(matches!(end, LeanEnd::Closed), "{end:?}");
}

#[tokio::test]
async fn http10_keep_alive_rules_match_hyper() {
    let keep = b"GET /1 HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\n\r\nGET /3 HTTP/1.0\r\n\r\nGET /never HTTP/1.1\r\nhost: x\r\n\r\n";
    let end = assert_same_as_hyper(keep).await;
    assert!(matches!(end, LeanEnd::Closed), "{end:?}");
    let streamed = b"GET /stream HTTP/1.0\r\nconnection: keep-alive\r\n\r\n";
    let end = assert_same_as_hyper(streamed).await;
    assert!(matches!(end, LeanEnd::Closed), "close-delimited: {end:?}");
}

#[tokio::test]
async fn streamed_answers_and_trailers_match_hyper() {
    let requests = b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\nGET /stream HTTP/1.1\r\nhost: x\r\nte: trailers\r\n\r\n";
    let end = assert_same_as_hyper(requests).await;
    assert!(matches!(end, LeanEnd::Idle(())), "{end:?}");
}

#[tokio::test]
async fn what_the_loop_cannot_serve_goes_to_hyper_from_its_first_byte() {
    let upgrade =
        b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";
    let short_body = b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nhalf";
    let expect =
        b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n";
    let refused =
        b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nab";
    for rest in [&upgrade[..], short_body, expect, refused] {
        let first = b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\n";
        let requests = [&first[..], rest].concat();
        let (lean, end) = lean_serve(&requests, echo()).await;
        let hyper_first = hyper_serve(first, echo()).await;
        assert_eq!(mask_date(&lean), mask_date(&hyper_first));
        match end {
            LeanEnd::Fallback { unread, .. } => assert_eq!(&unread[..], rest),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_closing_inside_a_head_ends_the_connection() {
    let (mut client, server) = tokio::io::duplex(1024);
    client.shutdown().await.expect("shutdown");
    let end =
        LeanConn::new(server, LIMITS, BytesMut::from(&b"GET / HT"[..]))
            .serve(
                |_req: Request<LeanBody>| -> std::future::Ready<
                    Result<Response<ResponseBody>, std::convert::Infallible>,
                > { panic!("no request") },
            )
            .await
            .expect("ends");
    assert!(matches!(end, LeanEnd::Closed), "{end:?}");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.expect("read");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_head_arriving_in_pieces_is_served_once_whole() {
    let (mut client, server) = tokio::io::duplex(1024);
    let respond = echo();
    let serving = tokio::spawn(
        LeanConn::new(server, LIMITS, BytesMut::from(&b"GET /1 HT"[..])).serve(
            move |req: Request<LeanBody>| {
                let respond = respond.clone();
                async move {
                    let (parts, _) = req.into_parts();
                    Ok::<_, std::convert::Infallible>(respond(parts, Bytes::new(), None))
                }
            },
        ),
    );
    for piece in [&b"TP/1.1\r\n"[..], b"host: x\r", b"\n", b"\r\n"] {
        client.write_all(piece).await.expect("write");
        tokio::task::yield_now().await;
    }
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), serving)
        .await
        .expect("served")
        .expect("joined")
        .expect("ok");
    assert!(matches!(end, LeanEnd::Idle(_)), "{end:?}");
    drop(end);
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.expect("read");
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(
        out.ends_with("GET /1 HTTP/1.1 0 bytes, trailers None"),
        "{out}"
    );
}
