//! Upstream failure and upgrade tests: connect timeout (a loopback listener whose
//! accept queue is full drops SYNs), reset before headers, dedicated upgrade
//! connections. All traffic stays on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::test_support::*;
use super::{ClusterManager, SendOptions, UpstreamError};

async fn manager(model: baton_config::model::Cluster) -> Arc<ClusterManager> {
    ClusterManager::initialize(&[Arc::new(model)])
        .await
        .expect("initialize")
}

/// A listener with a full accept queue (backlog 0, filled by connections nobody
/// accepts), so further SYNs are dropped and connects hang until they time out.
fn saturated_listener() -> (socket2::Socket, SocketAddr, Vec<socket2::Socket>) {
    use socket2::{Domain, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    listener.bind(&bind.into()).expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    let fillers = (0..4)
        .map(|_| {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            s.set_nonblocking(true).expect("nonblocking");
            // In progress or done: either way it occupies the queue.
            let _ = s.connect(&addr.into());
            s
        })
        .collect();
    (listener, addr, fillers)
}

#[tokio::test]
async fn connect_timeout_is_reported() {
    let (_listener, addr, _fillers) = saturated_listener();
    let mut model = cluster("c", ips(&[addr]));
    model.connect_timeout = Duration::from_millis(200);
    let cm = manager(model).await;
    let c = cm.get("c").expect("cluster");
    match c.send_http(get("/"), &SendOptions::default()).await {
        Err(UpstreamError::ConnectTimeout { host }) => assert_eq!(host.address.ip(), Some(addr)),
        other => panic!("expected a connect timeout, got {other:?}"),
    }
    assert!(matches!(
        c.connect_tcp().await,
        Err(UpstreamError::ConnectTimeout { .. })
    ));
}

#[tokio::test]
async fn close_before_headers_is_a_reset() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        read_head(&mut stream).await;
        // Close without answering.
    });
    let cm = manager(cluster("c", ips(&[addr]))).await;
    let c = cm.get("c").expect("cluster");
    match c.send_http(get("/"), &SendOptions::default()).await {
        Err(UpstreamError::Reset { host, reason }) => {
            assert_eq!(host.address.ip(), Some(addr));
            assert_eq!(reason, "connection termination");
        }
        other => panic!("expected a reset, got {other:?}"),
    }
    server.await.expect("server");
    let host = &c.hosts()[0];
    eventually("connection released", || {
        host.cx_active.load(std::sync::atomic::Ordering::Relaxed) == 0
    })
    .await;
}

#[tokio::test]
async fn upgrade_gets_a_dedicated_tunnel() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let head = read_head(&mut stream).await;
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.contains("upgrade: websocket"), "{head}");
        stream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            )
            .await
            .expect("write");
        // Echo whatever comes through the tunnel.
        let mut buf = [0u8; 64];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let cm = manager(cluster("c", ips(&[addr]))).await;
    let c = cm.get("c").expect("cluster");
    let req = http::Request::builder()
        .uri("/ws")
        .header("host", "upstream.test")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(empty())
        .expect("request");
    let opts = SendOptions {
        downstream_http2: false,
        upgrade: true,
        auto_host_rewrite: None,
        scheme: super::UpstreamScheme::Http,
    };
    let resp = c.send_http(req, &opts).await.expect("response");
    assert_eq!(
        resp.response.status(),
        http::StatusCode::SWITCHING_PROTOCOLS
    );
    let upgraded = hyper::upgrade::on(resp.response).await.expect("upgraded");
    let mut tunnel = TokioIo::new(upgraded);
    tunnel.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), tunnel.read_exact(&mut buf))
        .await
        .expect("echo within bound")
        .expect("read");
    assert_eq!(&buf, b"ping");
    drop(tunnel);
    server.await.expect("server");
}

#[tokio::test]
async fn body_dropped_mid_way_closes_instead_of_pooling() {
    // The proxy side must close the connection: the upstream sees EOF.
    let (addr, server) =
        one_answer_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly-part").await;
    let cm = manager(cluster("c", ips(&[addr]))).await;
    let c = cm.get("c").expect("cluster");
    let resp = c
        .send_http(get("/"), &SendOptions::default())
        .await
        .expect("response");
    let mut body = resp.response.into_body();
    let first = body.frame().await.expect("frame").expect("data");
    assert!(first.is_data());
    drop(body);
    assert!(
        server.await.expect("server"),
        "the connection was not closed"
    );
    let host = &c.hosts()[0];
    eventually("request and connection released", || {
        host.rq_active.load(std::sync::atomic::Ordering::Relaxed) == 0
            && host.cx_active.load(std::sync::atomic::Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(super::pool::idle_connections(host), 0);
}
