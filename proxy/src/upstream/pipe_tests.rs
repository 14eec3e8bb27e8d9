//! `pipe` hosts: HTTP/1.1 and HTTP/2 pools and raw connections over a Unix domain
//! socket (a path in the temp directory, or a Linux abstract name), and Envoy's failure
//! reason when nothing listens there.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use baton_config::model::{EndpointAddress, UpstreamProtocol};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::test_support::*;
use super::{ClusterManager, HostAddress, SendOptions, UpstreamError};

const H1: SendOptions = SendOptions {
    downstream_http2: false,
    upgrade: false,
    auto_host_rewrite: None,
    scheme: super::UpstreamScheme::Http,
};

/// A socket path of this test process, removed on drop.
struct SocketPath(PathBuf);

impl SocketPath {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("baton-pipe-{}-{tag}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A hyper server on a Unix listener answering `200 pipe <path>`; counts accepts.
struct PipeUpstream {
    accepts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PipeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn serve_http(listener: UnixListener, http2: bool) -> PipeUpstream {
    let accepts = Arc::new(AtomicUsize::new(0));
    let counted = accepts.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<Incoming>| async move {
                    let body = format!("pipe {}", req.uri().path());
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                });
                let io = TokioIo::new(stream);
                if http2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    PipeUpstream { accepts, task }
}

async fn manager(model: baton_config::model::Cluster) -> Arc<ClusterManager> {
    ClusterManager::initialize(&[Arc::new(model)])
        .await
        .expect("initialize")
}

fn pipe_cluster(path: &Path) -> baton_config::model::Cluster {
    cluster("c", vec![EndpointAddress::Pipe(path.to_path_buf())])
}

#[tokio::test]
async fn http1_over_a_pipe_reuses_its_connection() {
    let socket = SocketPath::new("h1");
    let up = serve_http(UnixListener::bind(&socket.0).expect("bind"), false);
    let cm = manager(pipe_cluster(&socket.0)).await;
    let c = cm.get("c").expect("cluster");
    for i in 0..3 {
        let resp = c
            .send_http(get(&format!("/r{i}")), &H1)
            .await
            .expect("response");
        assert_eq!(
            resp.host.address.to_string(),
            socket.0.display().to_string()
        );
        assert_eq!(text(resp.response.into_body()).await, format!("pipe /r{i}"));
    }
    assert_eq!(up.accepts.load(Ordering::SeqCst), 1);
    let host = &c.hosts()[0];
    assert!(matches!(host.address, HostAddress::Pipe(_)));
    assert_eq!(host.cx_total.load(Ordering::Relaxed), 1);
    assert_eq!(host.rq_total.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn http2_over_a_pipe() {
    let socket = SocketPath::new("h2");
    let up = serve_http(UnixListener::bind(&socket.0).expect("bind"), true);
    let mut model = pipe_cluster(&socket.0);
    model.protocol = UpstreamProtocol::Http2;
    let cm = manager(model).await;
    let c = cm.get("c").expect("cluster");
    for _ in 0..2 {
        let resp = c.send_http(get("/h2"), &H1).await.expect("response");
        assert_eq!(resp.response.version(), http::Version::HTTP_2);
        assert_eq!(text(resp.response.into_body()).await, "pipe /h2");
    }
    assert_eq!(up.accepts.load(Ordering::SeqCst), 1);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn raw_connection_to_an_abstract_socket() {
    let name = format!("baton-pipe-test-{}", std::process::id());
    let listener = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract name");
        let std_listener = std::os::unix::net::UnixListener::bind_addr(&addr).expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        UnixListener::from_std(std_listener).expect("listener")
    };
    let echo = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.expect("read");
        stream.write_all(&buf).await.expect("write");
    });
    let cm = manager(cluster(
        "c",
        vec![EndpointAddress::Pipe(PathBuf::from(format!("@{name}")))],
    ))
    .await;
    let c = cm.get("c").expect("cluster");
    let (mut stream, host) = c.connect_tcp().await.expect("connect");
    assert_eq!(host.address.to_string(), format!("@{name}"));
    stream.write_all(b"hello").await.expect("write");
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).await.expect("read");
    assert_eq!(&back, b"hello");
    echo.await.expect("echo task");
}

#[tokio::test]
async fn missing_socket_fails_like_envoy() {
    let socket = SocketPath::new("gone");
    let cm = manager(pipe_cluster(&socket.0)).await;
    let c = cm.get("c").expect("cluster");
    match c.send_http(get("/"), &H1).await {
        Err(UpstreamError::ConnectFailure { host, reason }) => {
            assert_eq!(
                reason,
                format!(
                    "immediate connect error: No such file or directory|remote_address:{}",
                    socket.0.display()
                )
            );
            assert_eq!(host.cx_connect_fail.load(Ordering::Relaxed), 1);
        }
        other => panic!("expected a connect failure, got {other:?}"),
    }
}
