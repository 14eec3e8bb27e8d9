//! `per_connection_buffer_limit_bytes` on listeners and clusters: with a tiny limit large
//! payloads still stream through (TCP and HTTP/1.1, HTTP/2 request bodies), and a stalled
//! upstream pushes back on the client instead of Baton buffering what the client sends.

use std::time::Duration;

use baton_tests::config::{bootstrap, listener, simple_proxy, static_cluster, tcp_proxy_filter};
use baton_tests::{http1_request, EchoUpstream, Echoed, H2Client, Proxy, TcpServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The limit under test: far below the payloads.
const LIMIT: u32 = 1024;
/// Payload pushed through the proxy.
const PAYLOAD: usize = 1024 * 1024;
/// What a client may push at a stalled upstream before it must be held back: well above
/// all loopback socket buffers on the path, far below "everything".
const PUSH_CAP: usize = 64 * 1024 * 1024;
/// A write that makes no progress for this long means the client is held back.
const BLOCKED_AFTER: Duration = Duration::from_secs(2);

fn limited(mut cfg: Value) -> Value {
    if let Some(listeners) = cfg
        .pointer_mut("/static_resources/listeners")
        .and_then(Value::as_array_mut)
    {
        for l in listeners {
            l["per_connection_buffer_limit_bytes"] = json!(LIMIT);
        }
    }
    if let Some(clusters) = cfg
        .pointer_mut("/static_resources/clusters")
        .and_then(Value::as_array_mut)
    {
        for c in clusters {
            c["per_connection_buffer_limit_bytes"] = json!(LIMIT);
        }
    }
    cfg
}

/// An upstream that accepts connections and never reads from them.
async fn stalled_upstream() -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    Ok((addr, task))
}

/// Writes 1 MiB chunks to `stream` until a write is held back or `PUSH_CAP` is sent;
/// returns the bytes written.
async fn push_until_held_back(stream: &mut TcpStream) -> anyhow::Result<usize> {
    let chunk = vec![b'x'; 1024 * 1024];
    let mut sent = 0;
    while sent < PUSH_CAP {
        match tokio::time::timeout(BLOCKED_AFTER, stream.write_all(&chunk)).await {
            Ok(written) => written?,
            Err(_) => break,
        }
        sent += chunk.len();
    }
    Ok(sent)
}

#[tokio::test]
async fn tcp_payload_streams_through_a_tiny_limit() -> anyhow::Result<()> {
    let upstream = TcpServer::echo().await?;
    let cfg = limited(bootstrap(
        vec![listener("tcp", vec![tcp_proxy_filter("echo")])],
        vec![static_cluster("echo", &[upstream.addr()])],
    ));
    let proxy = Proxy::start(&cfg).await?;
    let stream = TcpStream::connect(proxy.listener_addr("tcp").await?).await?;
    let (mut rd, mut wr) = stream.into_split();
    let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i % 251) as u8).collect();
    let expected = payload.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&payload).await?;
        wr.shutdown().await?;
        anyhow::Ok(())
    });
    let mut echoed = Vec::with_capacity(PAYLOAD);
    tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut echoed)).await??;
    writer.await??;
    assert!(
        echoed == expected,
        "echoed {} of {PAYLOAD} bytes, or different bytes",
        echoed.len()
    );
    Ok(())
}

#[tokio::test]
async fn tcp_stalled_upstream_holds_the_client_back() -> anyhow::Result<()> {
    let (stalled, _task) = stalled_upstream().await?;
    let cfg = limited(bootstrap(
        vec![listener("tcp", vec![tcp_proxy_filter("stalled")])],
        vec![static_cluster("stalled", &[stalled])],
    ));
    let proxy = Proxy::start(&cfg).await?;
    let mut client = TcpStream::connect(proxy.listener_addr("tcp").await?).await?;
    let sent = push_until_held_back(&mut client).await?;
    assert!(
        sent < PUSH_CAP,
        "the proxy took {sent} bytes for an upstream that reads nothing"
    );
    Ok(())
}

#[tokio::test]
async fn http_request_bodies_stream_through_a_tiny_limit() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&limited(simple_proxy(&[upstream.addr()]))).await?;
    let addr = proxy.listener_addr("http").await?;
    let body = vec![b'b'; PAYLOAD];
    let resp = http1_request(addr, "POST", "/upload", &[("host", "test")], &body).await?;
    assert_eq!(resp.status, 200);
    let echoed = resp.json()?;
    assert_eq!(echoed["body"].as_str().map(str::len), Some(PAYLOAD));
    let h2 = H2Client::connect(addr).await?;
    let resp = h2.request("POST", "/upload", &[], &body).await?;
    assert_eq!(resp.status, 200);
    let echoed = resp.json()?;
    assert_eq!(echoed["body"].as_str().map(str::len), Some(PAYLOAD));
    assert_eq!(echoed.req_path(), "/upload");
    Ok(())
}

#[tokio::test]
async fn http_stalled_upstream_holds_the_request_body_back() -> anyhow::Result<()> {
    let (stalled, _task) = stalled_upstream().await?;
    let proxy = Proxy::start(&limited(simple_proxy(&[stalled]))).await?;
    let mut client = TcpStream::connect(proxy.listener_addr("http").await?).await?;
    client
        .write_all(
            format!("POST /upload HTTP/1.1\r\nhost: test\r\ncontent-length: {PUSH_CAP}\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let sent = push_until_held_back(&mut client).await?;
    assert!(
        sent < PUSH_CAP,
        "the proxy took {sent} bytes for an upstream that reads nothing"
    );
    Ok(())
}
