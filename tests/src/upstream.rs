//! The echo upstream: an in-process HTTP/1.1 + HTTP/2 (prior knowledge) server on tokio,
//! bound to 127.0.0.1:0 (or ::1), that answers every request with a JSON description of what
//! it received, so tests can see exactly what the proxy forwarded.
//!
//! Query knobs (anywhere in the query string):
//! - `status=N`: respond with status N.
//! - `delay_ms=N`: wait N ms before responding.
//! - `close=1`: respond with `connection: close` and close the connection afterwards.
//! - `reset=1`: close the connection without responding (upstream reset before headers).
//! - `body_bytes=N`: respond with N bytes of `x` instead of JSON.
//! - `header=name:value`: add a response header (repeatable).
//! - `chunked=1`: send the JSON reply as a body of unknown length (chunked on HTTP/1.1).
//! - `body_delay_ms=N`: send the headers and the first half of the body at once, the rest
//!   N ms later (a body of unknown length, chunked on HTTP/1.1).
//!
//! Every response carries `x-upstream-name: <name>`; accepted connections are counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Counters shared between the server task and the test.
#[derive(Debug, Default)]
struct EchoStats {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// A running echo upstream; stops accepting when dropped.
#[derive(Debug)]
pub struct EchoUpstream {
    addr: SocketAddr,
    name: String,
    stats: Arc<EchoStats>,
    shutdown: Arc<Notify>,
}

impl EchoUpstream {
    /// Starts an echo upstream named `name` on 127.0.0.1:0.
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts an echo upstream named `name` on `bind` (port 0 for an ephemeral port).
    pub async fn start_on(name: &str, bind: SocketAddr) -> anyhow::Result<Self> {
        let socket = if bind.is_ipv6() {
            tokio::net::TcpSocket::new_v6()?
        } else {
            tokio::net::TcpSocket::new_v4()?
        };
        socket.bind(bind)?;
        // The system maximum (the kernel clamps to net.core.somaxconn): a proxy opening
        // hundreds of upstream connections at once (benchmarks) must not see SYN drops.
        let listener: TcpListener = socket.listen(65_535)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(EchoStats::default());
        let shutdown = Arc::new(Notify::new());
        tokio::spawn(accept_loop(
            listener,
            name.to_string(),
            stats.clone(),
            shutdown.clone(),
        ));
        Ok(Self {
            addr,
            name: name.to_string(),
            stats,
            shutdown,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The name reported in replies.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Requests answered (or started) so far.
    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.shutdown.notify_one();
    }
}

async fn accept_loop(
    listener: TcpListener,
    name: String,
    stats: Arc<EchoStats>,
    shutdown: Arc<Notify>,
) {
    let name: Arc<str> = name.into();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.notified() => return,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn_id = stats.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let name = name.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let closer = Arc::new(Notify::new());
            let service = {
                let closer = closer.clone();
                hyper::service::service_fn(move |req| {
                    stats.requests.fetch_add(1, Ordering::SeqCst);
                    echo(req, name.clone(), conn_id, closer.clone())
                })
            };
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            // `reset=1` drops the whole connection (and with it any in-flight response).
            tokio::select! {
                _ = conn => {}
                () = closer.notified() => {}
            }
        });
    }
}

/// Value of query parameter `key` (first occurrence), without percent-decoding.
fn query_param<'a>(query: &'a str, key: &'a str) -> Option<&'a str> {
    query_params(query, key).next()
}

fn query_params<'a>(query: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    query.split('&').filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

async fn echo(
    req: Request<Incoming>,
    name: Arc<str>,
    conn_id: usize,
    closer: Arc<Notify>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let query = req.uri().query().unwrap_or("").to_string();
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if let Some(ms) = query_param(&query, "delay_ms").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if query_param(&query, "reset").is_some() {
        closer.notify_one();
        // Never resolves in practice: the connection is dropped by the select in accept_loop.
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let headers: Vec<serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| serde_json::json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
        .collect();
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_default();
    let reply = serde_json::json!({
        "upstream": &*name,
        "connection": conn_id,
        "method": parts.method.as_str(),
        "path": path,
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let status = query_param(&query, "status")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(200);
    let mut builder = Response::builder()
        .status(status)
        .header("x-upstream-name", &*name)
        .header("x-upstream-connection", conn_id.to_string());
    for header in query_params(&query, "header") {
        if let Some((k, v)) = header.split_once(':') {
            builder = builder.header(k, v);
        }
    }
    if query_param(&query, "close").is_some() {
        builder = builder.header("connection", "close");
    }
    let body = match query_param(&query, "body_bytes").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => Bytes::from(vec![b'x'; n]),
        None => {
            builder = builder.header("content-type", "application/json");
            Bytes::from(reply.to_string())
        }
    };
    let body_delay = query_param(&query, "body_delay_ms").and_then(|v| v.parse::<u64>().ok());
    let body = if let Some(ms) = body_delay {
        let half = body.len() / 2;
        let (first, rest) = (body.slice(..half), body.slice(half..));
        let frames = futures_util::stream::iter([Some(first), None, Some(rest)]).then(
            move |frame| async move {
                match frame {
                    Some(data) => Ok::<_, Infallible>(hyper::body::Frame::data(data)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Ok(hyper::body::Frame::data(Bytes::new()))
                    }
                }
            },
        );
        BoxBody::new(StreamBody::new(frames))
    } else if query_param(&query, "chunked").is_some() {
        // Two frames and no size hint, so hyper frames the HTTP/1.1 body as chunked.
        let half = body.len() / 2;
        let frames = vec![
            Ok::<_, Infallible>(hyper::body::Frame::data(body.slice(..half))),
            Ok(hyper::body::Frame::data(body.slice(half..))),
        ];
        BoxBody::new(StreamBody::new(futures_util::stream::iter(frames)))
    } else {
        BoxBody::new(Full::new(body))
    };
    let response = builder.body(body).unwrap_or_else(|_| {
        Response::new(BoxBody::new(Full::new(Bytes::from_static(
            b"bad echo knobs",
        ))))
    });
    Ok(response)
}

/// Accessors for the echo upstream's JSON reply.
pub trait Echoed {
    /// First value of request header `name` as the upstream received it.
    fn req_header(&self, name: &str) -> Option<String>;
    /// All values of request header `name`.
    fn req_header_all(&self, name: &str) -> Vec<String>;
    /// The path (with query) the upstream received.
    fn req_path(&self) -> String;
}

impl Echoed for serde_json::Value {
    fn req_header(&self, name: &str) -> Option<String> {
        self.req_header_all(name).into_iter().next()
    }

    fn req_header_all(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self["headers"]
            .as_array()
            .map(|headers| {
                headers
                    .iter()
                    .filter(|pair| pair[0] == name.as_str())
                    .filter_map(|pair| pair[1].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn req_path(&self) -> String {
        self["path"].as_str().unwrap_or_default().to_string()
    }
}
