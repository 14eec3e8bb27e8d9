//! Test helpers: cluster models built in Rust and tiny upstream servers on 127.0.0.1
//! that count accepted connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_config::model::{
    self, CircuitBreakers, DiscoveryType, DnsLookupFamily, Endpoint, EndpointAddress, LbPolicy,
    LoadAssignment, LocalityEndpoints, UpstreamProtocol,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::RequestBody;

/// A cluster model with defaults and the given endpoints in one locality.
pub(crate) fn cluster(name: &str, endpoints: Vec<EndpointAddress>) -> model::Cluster {
    model::Cluster {
        name: name.to_owned(),
        tls: None,
        transport_socket_matches: Vec::new(),
        transport_socket_matcher: None,
        stat_name: name.to_owned(),
        alt_stat_name: None,
        metadata: None,
        discovery: DiscoveryType::Static,
        connect_timeout: Duration::from_secs(5),
        lb_policy: LbPolicy::RoundRobin,
        locality_lb: Default::default(),
        healthy_panic_threshold_percent: 50,
        dns_refresh_rate: Duration::from_secs(5),
        respect_dns_ttl: false,
        dns_lookup_family: DnsLookupFamily::V4Only,
        dns: Default::default(),
        load_assignment: LoadAssignment {
            localities: vec![LocalityEndpoints {
                locality: String::new(),
                priority: 0,
                weight: None,
                endpoints: endpoints
                    .into_iter()
                    .map(|address| Endpoint {
                        address,
                        hostname: None,
                        weight: 1,
                        healthy: true,
                        socket_match: None,
                    })
                    .collect(),
            }],
            ..LoadAssignment::default()
        },
        eds: None,
        protocol: UpstreamProtocol::Http1,
        http2: model::Http2Options::default(),
        idle_timeout: Some(Duration::from_secs(3600)),
        max_requests_per_connection: None,
        max_response_headers_count: 100,
        max_response_headers_kb: None,
        per_connection_buffer_limit_bytes: 1024 * 1024,
        circuit_breakers: CircuitBreakers::default(),
        auto_sni: Default::default(),
        upstream_connection_options: Default::default(),
    }
}

/// Endpoint addresses for `addrs`.
pub(crate) fn ips(addrs: &[SocketAddr]) -> Vec<EndpointAddress> {
    addrs.iter().map(|a| EndpointAddress::Ip(*a)).collect()
}

/// An empty request body.
pub(crate) fn empty() -> RequestBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A GET request for `path` in origin form.
pub(crate) fn get(path: &str) -> http::Request<RequestBody> {
    http::Request::builder()
        .uri(path)
        .header(http::header::HOST, "upstream.test")
        .body(empty())
        .expect("valid request")
}

/// Reads a whole response body as a string.
pub(crate) async fn text<B>(body: B) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = body.collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A running test upstream.
pub(crate) struct TestUpstream {
    pub(crate) addr: SocketAddr,
    /// TCP connections accepted so far.
    pub(crate) accepts: Arc<AtomicUsize>,
    /// Connections that have ended.
    pub(crate) closed: Arc<AtomicUsize>,
    /// When set, handlers wait for this before answering.
    pub(crate) gate: Arc<Gate>,
    /// `notify_waiters` makes every open connection shut down gracefully (HTTP/2
    /// GOAWAY, HTTP/1.1 close after the current response).
    pub(crate) goaway: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Holds responses until opened (or answers at once when never closed).
#[derive(Default)]
pub(crate) struct Gate {
    closed: std::sync::atomic::AtomicBool,
    notify: Notify,
    /// Requests that reached the handler.
    pub(crate) arrived: AtomicUsize,
}

impl Gate {
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn pass(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        loop {
            let notified = self.notify.notified();
            if !self.closed.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// Starts an upstream answering `200 <port> <path>`, HTTP/1.1 or HTTP/2 (prior
/// knowledge).
pub(crate) async fn upstream(http2: bool) -> TestUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepts = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Gate::default());
    let goaway = Arc::new(Notify::new());
    let (a, c, g, bye) = (
        accepts.clone(),
        closed.clone(),
        gate.clone(),
        goaway.clone(),
    );
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let (c, g, bye) = (c.clone(), g.clone(), bye.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<Incoming>| {
                    let g = g.clone();
                    async move {
                        g.pass().await;
                        let body = format!("{} {}", addr.port(), req.uri().path());
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let io = TokioIo::new(stream);
                let shutdown = bye.notified();
                if http2 {
                    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        () = shutdown => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                } else {
                    let conn =
                        hyper::server::conn::http1::Builder::new().serve_connection(io, service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        () = shutdown => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    TestUpstream {
        addr,
        accepts,
        closed,
        gate,
        goaway,
        task,
    }
}

/// A loopback address nothing listens on (bound, then released).
pub(crate) async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// Waits (bounded) until `check` holds; panics with `what` otherwise.
pub(crate) async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Bound for one read or wait of a raw test upstream.
const RAW_BOUND: Duration = Duration::from_secs(5);

/// Reads one request head (bytes up to the blank line), each read bounded.
pub(crate) async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match tokio::time::timeout(RAW_BOUND, stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// A raw upstream that accepts one connection, reads a request head, writes `answer`
/// and then reads until the proxy side closes; its task resolves to whether the close
/// came within the bound.
pub(crate) async fn one_answer_upstream(answer: &'static [u8]) -> (SocketAddr, JoinHandle<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        read_head(&mut stream).await;
        stream.write_all(answer).await.expect("write");
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(RAW_BOUND, stream.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    });
    (addr, task)
}
