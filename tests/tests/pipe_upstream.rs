//! Upstreams on Unix domain sockets (`pipe` endpoint addresses): HTTP/1.1 and HTTP/2
//! proxying, a Linux abstract socket, tcp_proxy with half-close, a missing socket
//! (503, `UF`, Envoy's transport failure reason), and how `/clusters` and
//! `%UPSTREAM_HOST%` show a pipe host (its path).

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_tests::config::{
    bootstrap, hcm_of, http_listener, listener, prefix_route, route_config, tcp_proxy_filter,
    vhost, with_http2_upstream, FILE_ACCESS_LOG_TYPE,
};
use baton_tests::{eventually, get, Proxy, RawHttp1, TempDir, IO_TIMEOUT};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// Bound for access log lines to reach the file (Envoy flushes file logs periodically).
const LOG_WAIT: Duration = Duration::from_secs(15);

const HTTP_LOG_FORMAT: &str = "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST% \
%UPSTREAM_CLUSTER% %UPSTREAM_TRANSPORT_FAILURE_REASON%\n";

/// A server on a Unix socket, stopped (its accept loop and connections aborted) on drop.
struct PipeServer {
    connections: Arc<AtomicUsize>,
    /// Connections whose client half-closed and that then half-closed back (echo).
    half_closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PipeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PipeServer {
    /// HTTP/1.1 and HTTP/2 (prior knowledge) answering `200` with `pipe <path>`.
    fn http(listener: UnixListener) -> Self {
        Self::spawn(listener, |stream, _| async move {
            let service = service_fn(|req: http::Request<Incoming>| async move {
                let body = format!("pipe {}", req.uri().path());
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        })
    }

    /// Echoes bytes; when the client half-closes, half-closes back.
    fn echo(listener: UnixListener) -> Self {
        Self::spawn(listener, |mut stream, half_closed| async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match tokio::time::timeout(IO_TIMEOUT, stream.read(&mut buf)).await {
                    Ok(Ok(0)) => {
                        if stream.shutdown().await.is_ok() {
                            half_closed.fetch_add(1, Ordering::SeqCst);
                        }
                        return;
                    }
                    Ok(Ok(n)) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        })
    }

    fn spawn<F, Fut>(listener: UnixListener, handle: F) -> Self
    where
        F: Fn(UnixStream, Arc<AtomicUsize>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let connections = Arc::new(AtomicUsize::new(0));
        let half_closed = Arc::new(AtomicUsize::new(0));
        let (count, halves) = (connections.clone(), half_closed.clone());
        let task = tokio::spawn(async move {
            let mut running = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                running.spawn(handle(stream, halves.clone()));
                while running.try_join_next().is_some() {}
            }
        });
        Self {
            connections,
            half_closed,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A STATIC cluster whose one endpoint is the Unix socket `path` (`@name`: abstract).
fn pipe_cluster(name: &str, path: &str) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "load_assignment": { "cluster_name": name, "endpoints": [ { "lb_endpoints": [
            { "endpoint": { "address": { "pipe": { "path": path } } } } ] } ] },
    })
}

fn file_log(log: &Path, format: &str) -> Value {
    json!([{
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": FILE_ACCESS_LOG_TYPE,
            "path": log.display().to_string(),
            "log_format": { "text_format": format },
        },
    }])
}

/// Listener `http` routing everything to `cluster`, logging each request to `log`.
fn http_proxy_to(cluster: Value, log: &Path) -> Value {
    let name = cluster["name"].as_str().unwrap_or_default().to_string();
    let mut cfg = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost("all", &["*"], vec![prefix_route("/", &name)])]),
        )],
        vec![cluster],
    );
    hcm_of(&mut cfg, 0)["access_log"] = file_log(log, HTTP_LOG_FORMAT);
    cfg
}

/// The first `n` lines of the log at `path`, once there are that many.
async fn log_lines(path: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    eventually(LOG_WAIT, || async move {
        let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        Ok((lines.len() >= n).then(|| lines[..n].to_vec()))
    })
    .await
}

/// `/clusters` lines of `cluster`'s only host, as `stat::value` (the host part checked
/// to be `host`).
async fn host_stats(proxy: &Proxy, cluster: &str, host: &str) -> anyhow::Result<Vec<String>> {
    let text = proxy.admin_request("GET", "/clusters").await?.body_text();
    let prefix = format!("{cluster}::{host}::");
    Ok(text
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix).map(str::to_string))
        .collect())
}

#[tokio::test]
async fn http_to_a_pipe_upstream() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let socket = dir.join("up.sock");
    let path = socket.display().to_string();
    let server = PipeServer::http(UnixListener::bind(&socket)?);
    let log = dir.join("access.log");
    let proxy = Proxy::start(&http_proxy_to(pipe_cluster("backend", &path), &log)).await?;
    let addr = proxy.listener_addr("http").await?;
    for i in 0..2 {
        let resp = get(addr, &format!("/r{i}")).await?;
        assert_eq!(resp.status, 200, "{}", resp.body_text());
        assert_eq!(resp.body_text(), format!("pipe /r{i}"));
    }
    assert!(server.connections() >= 1);

    // Envoy names a pipe host by its path, in text and as an Address in JSON.
    let stats = host_stats(&proxy, "backend", &path).await?;
    assert!(stats.contains(&"rq_total::2".to_string()), "{stats:?}");
    assert!(
        stats.contains(&"cx_connect_fail::0".to_string()),
        "{stats:?}"
    );
    let json = proxy
        .admin_request("GET", "/clusters?format=json")
        .await?
        .json()?;
    let backend = json["cluster_statuses"]
        .as_array()
        .and_then(|clusters| clusters.iter().find(|c| c["name"] == "backend"))
        .ok_or_else(|| anyhow::anyhow!("no backend in {json}"))?;
    assert_eq!(
        backend["host_statuses"][0]["address"],
        json!({ "pipe": { "path": path } })
    );

    let lines = log_lines(&log, 2).await?;
    for line in lines {
        assert_eq!(line, format!("200 - {path} backend -"));
    }
    Ok(())
}

#[tokio::test]
async fn http2_to_a_pipe_upstream() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let socket = dir.join("h2.sock");
    let path = socket.display().to_string();
    let _server = PipeServer::http(UnixListener::bind(&socket)?);
    let log = dir.join("access.log");
    let cluster = with_http2_upstream(pipe_cluster("backend", &path));
    let proxy = Proxy::start(&http_proxy_to(cluster, &log)).await?;
    let resp = get(proxy.listener_addr("http").await?, "/two").await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.body_text(), "pipe /two");
    let stats = proxy.admin_request("GET", "/stats").await?.body_text();
    assert!(
        stats
            .lines()
            .any(|l| l == "cluster.backend.upstream_cx_http2_total: 1"),
        "{stats}"
    );
    Ok(())
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn abstract_socket_upstream() -> anyhow::Result<()> {
    let name = format!("baton-test-pipe-{}", std::process::id());
    let listener = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let listener = std::os::unix::net::UnixListener::bind_addr(&addr)?;
        listener.set_nonblocking(true)?;
        UnixListener::from_std(listener)?
    };
    let _server = PipeServer::http(listener);
    let dir = TempDir::new()?;
    let log = dir.join("access.log");
    let host = format!("@{name}");
    let proxy = Proxy::start(&http_proxy_to(pipe_cluster("backend", &host), &log)).await?;
    let resp = get(proxy.listener_addr("http").await?, "/abstract").await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.body_text(), "pipe /abstract");
    let stats = host_stats(&proxy, "backend", &host).await?;
    assert!(stats.contains(&"rq_total::1".to_string()), "{stats:?}");
    assert_eq!(
        log_lines(&log, 1).await?[0],
        format!("200 - {host} backend -")
    );
    Ok(())
}

#[tokio::test]
async fn missing_socket_is_a_connect_failure() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let path = dir.join("nobody.sock").display().to_string();
    let log = dir.join("access.log");
    let proxy = Proxy::start(&http_proxy_to(pipe_cluster("backend", &path), &log)).await?;
    let resp = get(proxy.listener_addr("http").await?, "/").await?;
    assert_eq!(resp.status, 503);
    assert_eq!(
        resp.body_text(),
        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    );
    // A Unix connect fails in the call itself: Envoy's "immediate" wording, with the
    // address.
    assert_eq!(
        log_lines(&log, 1).await?[0],
        format!(
            "503 UF {path} backend immediate_connect_error:_No_such_file_or_directory|remote_address:{path}"
        )
    );
    let stats = host_stats(&proxy, "backend", &path).await?;
    assert!(
        stats.contains(&"cx_connect_fail::1".to_string()),
        "{stats:?}"
    );
    Ok(())
}

#[tokio::test]
async fn tcp_proxy_to_a_pipe_upstream() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let socket = dir.join("echo.sock");
    let path = socket.display().to_string();
    let server = PipeServer::echo(UnixListener::bind(&socket)?);
    let log = dir.join("tcp.log");
    let mut filter = tcp_proxy_filter("echo");
    filter["typed_config"]["access_log"] = file_log(
        &log,
        "%BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_HOST% %UPSTREAM_CLUSTER%\n",
    );
    let cfg = bootstrap(
        vec![listener("tcp", vec![filter])],
        vec![pipe_cluster("echo", &path)],
    );
    let proxy = Proxy::start(&cfg).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("tcp").await?).await?;
    conn.send(b"hello over a pipe").await?;
    assert_eq!(conn.read_exact_bytes(17).await?, b"hello over a pipe");
    // Half-close travels to the Unix socket and back.
    conn.send(b"bye").await?;
    conn.shutdown_write().await?;
    assert_eq!(conn.read_to_close().await?, b"bye");
    assert_eq!(server.connections(), 1);
    assert_eq!(server.half_closed.load(Ordering::SeqCst), 1);
    assert_eq!(log_lines(&log, 1).await?[0], format!("20 20 {path} echo"));
    Ok(())
}
