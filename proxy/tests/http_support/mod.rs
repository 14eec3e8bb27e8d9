//! Shared helpers for the connection manager's end-to-end tests: hand-built models, a
//! proxy on a 127.0.0.1 port-0 listener running `serve_connection` (which reports each
//! connection it serves), an echo upstream, and small raw-socket / hyper clients. Every
//! wait is bounded.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use baton_config::model::*;
use baton_proxy::base::conn_info::ConnInfo;
use baton_proxy::base::drain::{self, DrainTrigger};
use baton_proxy::http::{serve_connection, HcmRuntime, HttpContext};
use baton_proxy::upstream::ClusterManager;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Bound for any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn prefix_route(name: &str, prefix: &str, action: RouteAction) -> Route {
    Route {
        name: name.into(),
        matcher: RouteMatch {
            path: PathMatch::Prefix(prefix.into()),
            case_sensitive: true,
            headers: vec![],
            query_parameters: vec![],
            grpc: false,
            runtime_fraction: None,
            tls_context: Default::default(),
        },
        action,
        headers: HeaderMutations::default(),
        filter_overrides: FilterOverrides::default(),
        metadata: None,
        tracing: None,
    }
}

pub fn forward_to(cluster: &str) -> ForwardAction {
    ForwardAction {
        cluster: ClusterSpecifier::Name(cluster.into()),
        prefix_rewrite: None,
        regex_rewrite: None,
        host_rewrite: HostRewrite::None,
        append_x_forwarded_host: false,
        cluster_not_found_status: 503,
        timeout: Some(Duration::from_secs(15)),
        idle_timeout: None,
        upgrade_configs: vec![],
        max_stream_duration: None,
    }
}

pub fn forward(cluster: &str) -> RouteAction {
    RouteAction::Forward(Arc::new(forward_to(cluster)))
}

pub fn direct(status: u16, body: &str) -> RouteAction {
    RouteAction::DirectResponse(Arc::new(DirectResponseAction {
        status,
        body: (!body.is_empty()).then(|| Bytes::from(body.to_string())),
    }))
}

pub fn vhost(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
        headers: HeaderMutations::default(),
        filter_overrides: FilterOverrides::default(),
        require_tls: Default::default(),
    }
}

pub fn hcm(vhosts: Vec<VirtualHost>) -> HttpConnectionManager {
    HttpConnectionManager {
        forward_client_cert: Default::default(),
        set_current_client_cert: Default::default(),
        stat_prefix: "ingress".into(),
        codec_type: CodecType::Auto,
        route_config: Arc::new(RouteConfig {
            name: "rc".into(),
            virtual_hosts: vhosts,
            ..RouteConfig::default()
        }),
        rds: None,
        http_filters: vec![],
        router: RouterConfig::default(),
        access_logs: vec![],
        use_remote_address: false,
        xff_num_trusted_hops: 0,
        skip_xff_append: false,
        append_x_forwarded_port: false,
        server_name: HeaderValue::from_static("envoy"),
        server_header_transformation: ServerHeaderTransformation::Overwrite,
        via: None,
        generate_request_id: true,
        preserve_external_request_id: false,
        always_set_request_id_in_response: false,
        request_id: Default::default(),
        tracing: None,
        max_request_headers_kb: 60,
        max_headers_count: 100,
        underscore_headers: Default::default(),
        scheme: Default::default(),
        request_headers_timeout: None,
        stream_idle_timeout: Some(Duration::from_secs(300)),
        request_timeout: None,
        idle_timeout: Some(Duration::from_secs(3600)),
        max_connection_duration: None,
        max_requests_per_connection: None,
        max_stream_duration: None,
        drain_timeout: Duration::from_secs(5),
        delayed_close_timeout: Duration::from_secs(1),
        upgrade_configs: vec![],
        http1: Http1Options::default(),
        http2: Http2Options::default(),
        normalize_path: false,
        merge_slashes: false,
        path_with_escaped_slashes_action: Default::default(),
        strip_matching_host_port: false,
        strip_any_host_port: false,
        internal_cidrs: vec![],
        local_reply: None,
    }
}

pub fn cluster(name: &str, addr: SocketAddr) -> Arc<Cluster> {
    Arc::new(Cluster {
        name: name.into(),
        tls: None,
        transport_socket_matches: Vec::new(),
        transport_socket_matcher: None,
        stat_name: name.into(),
        alt_stat_name: None,
        metadata: None,
        discovery: DiscoveryType::Static,
        connect_timeout: Duration::from_secs(1),
        lb_policy: LbPolicy::RoundRobin,
        locality_lb: Default::default(),
        healthy_panic_threshold_percent: 50,
        dns_refresh_rate: Duration::from_secs(5),
        respect_dns_ttl: false,
        dns_lookup_family: DnsLookupFamily::Auto,
        dns: Default::default(),
        load_assignment: LoadAssignment {
            localities: vec![LocalityEndpoints {
                locality: String::new(),
                priority: 0,
                weight: None,
                endpoints: vec![Endpoint {
                    address: EndpointAddress::Ip(addr),
                    hostname: None,
                    weight: 1,
                    healthy: true,
                    socket_match: None,
                }],
            }],
            ..LoadAssignment::default()
        },
        eds: None,
        protocol: UpstreamProtocol::Http1,
        http2: Http2Options::default(),
        idle_timeout: Some(Duration::from_secs(3600)),
        max_requests_per_connection: None,
        max_response_headers_count: 100,
        max_response_headers_kb: None,
        per_connection_buffer_limit_bytes: 1024 * 1024,
        circuit_breakers: CircuitBreakers::default(),
        auto_sni: Default::default(),
        upstream_connection_options: Default::default(),
    })
}

/// A running proxy: its address, the drain trigger of its connections and what it
/// reports of each connection it accepts, in accept order.
pub struct Proxy {
    pub addr: SocketAddr,
    pub drain: DrainTrigger,
    pub served: mpsc::UnboundedReceiver<ServedConnection>,
    task: tokio::task::JoinHandle<()>,
}

/// One accepted connection as the tests can watch it.
pub struct ServedConnection {
    /// The connection's first task (the `serve_connection` future): ends when the
    /// connection does, or when an idle HTTP/1 connection parks and goes on in the
    /// worker's parked set.
    pub first_task: tokio::task::JoinHandle<()>,
    /// The connection's listener guard: alive exactly while the connection is, active
    /// or parked.
    pub alive: Weak<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts `serve_connection` behind a port-0 listener.
pub async fn start_proxy(hcm: HttpConnectionManager, clusters: Vec<Arc<Cluster>>) -> Proxy {
    let clusters = ClusterManager::initialize(&clusters)
        .await
        .expect("clusters");
    let ctx = Arc::new(HttpContext::new(clusters));
    let hcm = Arc::new(HcmRuntime::new(Arc::new(hcm)).expect("access logs"));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (trigger, signal) = drain::channel_with(
        baton_proxy::base::drain::DrainStrategy::Immediate,
        std::time::Duration::from_secs(600),
    );
    let (report, served) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((sock, peer)) = listener.accept().await {
            let info = ConnInfo::plain(peer, addr);
            let guard = Arc::new(());
            let alive = Arc::downgrade(&guard);
            let first_task = tokio::spawn(serve_connection(
                sock,
                info,
                hcm.clone(),
                ctx.clone(),
                signal.clone(),
                guard,
            ));
            // Fails only while the proxy is being dropped.
            let _ = report.send(ServedConnection { first_task, alive });
        }
    });
    Proxy {
        addr,
        drain: trigger,
        served,
        task,
    }
}

/// Echo upstream: answers with the request line and headers as the body; `/slow`
/// waits 3 s first; `/ws` accepts an upgrade and echoes bytes.
pub async fn start_echo() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                    if req.uri().path().starts_with("/slow") {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    if req.uri().path().starts_with("/ws") {
                        let on = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            if let Ok(up) = on.await {
                                let mut io = TokioIo::new(up);
                                let mut buf = [0u8; 1024];
                                while let Ok(n) = io.read(&mut buf).await {
                                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        });
                        let resp = Response::builder()
                            .status(101)
                            .header("connection", "upgrade")
                            .header("upgrade", "websocket")
                            .body(Full::new(Bytes::new()))
                            .expect("response");
                        return Ok::<_, hyper::Error>(resp);
                    }
                    let mut text = format!("{} {}\n", req.method(), req.uri());
                    for (k, v) in req.headers() {
                        text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
                    }
                    let body = req.into_body().collect().await?.to_bytes();
                    text.push('\n');
                    text.push_str(&String::from_utf8_lossy(&body));
                    Ok(Response::builder()
                        .header("x-up", "1")
                        .header("content-type", "text/plain")
                        .body(Full::new(Bytes::from(text)))
                        .expect("response"))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, task)
}

/// A parsed HTTP/1.1 response read from a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (content-length bodies, or until close) from `sock`.
pub async fn read_response(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RawResponse> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok());
            let body_start = end + 4;
            loop {
                let have = buf.len() - body_start;
                if len.is_some_and(|l| have >= l) || status == 101 {
                    break;
                }
                let mut chunk = [0u8; 8192];
                let n = tokio::time::timeout_at(deadline, sock.read(&mut chunk))
                    .await
                    .ok()?
                    .ok()?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body_len = len
                .unwrap_or(buf.len() - body_start)
                .min(buf.len() - body_start);
            let body = buf[body_start..body_start + body_len].to_vec();
            buf.drain(..body_start + body_len);
            return Some(RawResponse {
                status,
                headers,
                body,
            });
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, sock.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends raw bytes on a new connection and reads one response.
pub async fn raw_request(addr: SocketAddr, bytes: &[u8]) -> RawResponse {
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    sock.write_all(bytes).await.expect("write");
    let mut buf = Vec::new();
    read_response(&mut sock, &mut buf).await.expect("response")
}

/// A GET with extra headers on a new connection.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: test.local\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw_request(addr, req.as_bytes()).await
}

/// True when the peer closes `sock` within the wait bound (after reading everything).
pub async fn closes(sock: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}
