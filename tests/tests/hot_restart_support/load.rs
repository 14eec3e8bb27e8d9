//! Bounded load clients for hot-restart tests: each client task loops sending `GET` requests
//! until told to stop (or a hard cap), and counts what happened. Three kinds:
//! HTTP/1.1 with a new connection per request, HTTP/1.1 keep-alive (reconnecting only when
//! the server said `connection: close` or the connection failed), and HTTP/2 (many requests
//! per connection, reconnecting after GOAWAY).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio::net::TcpStream;

use baton_tests::{RawHttp1, IO_TIMEOUT};

/// Hard cap on requests per client, so a stuck stop flag cannot loop forever.
const MAX_REQUESTS_PER_CLIENT: u64 = 1_000_000;
/// Pause between requests of one client: keeps a 2-core machine responsive.
const PACE: Duration = Duration::from_millis(1);
/// How many error texts a report keeps.
const KEPT_ERRORS: usize = 20;

/// What kind of client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// HTTP/1.1, one request per TCP connection.
    Http1NewConnection,
    /// HTTP/1.1, one connection reused until the server closes it.
    Http1KeepAlive,
    /// HTTP/2 prior knowledge, one connection reused until GOAWAY.
    Http2,
}

/// Counts of one client kind.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests answered 200 with a complete body.
    pub served: u64,
    /// Requests sent (or attempted on an established connection) without a full 200.
    pub failed: u64,
    /// Connection attempts refused (ECONNREFUSED) or failing otherwise.
    pub refused: u64,
    /// Responses that carried `connection: close` (HTTP/1.1).
    pub connection_close: u64,
    /// HTTP/2 connections that ended with GOAWAY / close and were replaced.
    pub reconnects: u64,
    /// HTTP/2 requests the server did not process (never written because the connection
    /// was closing, above GOAWAY's last stream id, or REFUSED_STREAM), sent again on a
    /// new connection as RFC 9113 allows.
    pub retried: u64,
    /// The first few errors, for the assertion message.
    pub errors: Vec<String>,
}

#[derive(Debug, Default)]
struct Counters {
    served: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    connection_close: AtomicU64,
    reconnects: AtomicU64,
    retried: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Counters {
    fn error(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < KEPT_ERRORS {
            errors.push(what);
        }
    }
}

/// Running load: clients of several kinds against one address.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<(ClientKind, tokio::task::JoinHandle<()>)>,
    counters: Vec<(ClientKind, Arc<Counters>)>,
}

impl Load {
    /// Starts `count` clients of each kind in `kinds` against `addr` (path `/load`).
    pub fn start(addr: SocketAddr, kinds: &[ClientKind], count: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        let mut counters = Vec::new();
        for &kind in kinds {
            let c = Arc::new(Counters::default());
            counters.push((kind, Arc::clone(&c)));
            for _ in 0..count {
                let (stop, c) = (Arc::clone(&stop), Arc::clone(&c));
                let task = tokio::spawn(async move {
                    match kind {
                        ClientKind::Http1NewConnection => {
                            http1_new_connection(addr, &stop, &c).await
                        }
                        ClientKind::Http1KeepAlive => http1_keep_alive(addr, &stop, &c).await,
                        ClientKind::Http2 => http2(addr, &stop, &c).await,
                    }
                });
                tasks.push((kind, task));
            }
        }
        Self {
            stop,
            tasks,
            counters,
        }
    }

    /// Requests served so far by all clients.
    pub fn served(&self) -> u64 {
        self.counters
            .iter()
            .map(|(_, c)| c.served.load(Ordering::Relaxed))
            .sum()
    }

    /// Counts so far per kind: (kind, served, failed, refused), without stopping.
    pub fn snapshot(&self) -> Vec<(ClientKind, u64, u64, u64)> {
        self.counters
            .iter()
            .map(|(kind, c)| {
                (
                    *kind,
                    c.served.load(Ordering::Relaxed),
                    c.failed.load(Ordering::Relaxed),
                    c.refused.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Waits (bounded by `timeout`) until `more` further requests were served; false if not.
    pub async fn wait_served(&self, more: u64, timeout: Duration) -> bool {
        let target = self.served() + more;
        let deadline = tokio::time::Instant::now() + timeout;
        while self.served() < target {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Stops every client (each finishes its current request) and returns one report per kind.
    pub async fn finish(self) -> Vec<(ClientKind, LoadReport)> {
        self.stop.store(true, Ordering::Relaxed);
        for (_, task) in self.tasks {
            // Every step of a client is bounded by IO_TIMEOUT; this is a second bound.
            let _ = tokio::time::timeout(IO_TIMEOUT * 3, task).await;
        }
        self.counters
            .into_iter()
            .map(|(kind, c)| {
                let errors = c.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
                (
                    kind,
                    LoadReport {
                        served: c.served.load(Ordering::Relaxed),
                        failed: c.failed.load(Ordering::Relaxed),
                        refused: c.refused.load(Ordering::Relaxed),
                        connection_close: c.connection_close.load(Ordering::Relaxed),
                        reconnects: c.reconnects.load(Ordering::Relaxed),
                        retried: c.retried.load(Ordering::Relaxed),
                        errors,
                    },
                )
            })
            .collect()
    }
}

/// Requests the clients had served, over all kinds.
pub fn total_served(reports: &[(ClientKind, LoadReport)]) -> u64 {
    reports.iter().map(|(_, r)| r.served).sum()
}

/// Asserts that no client saw a failed request or a refused connection, and that every
/// kind was served at least once; the message has every report.
pub fn assert_clean(reports: &[(ClientKind, LoadReport)]) {
    let bad = reports
        .iter()
        .any(|(_, r)| r.failed > 0 || r.refused > 0 || r.served == 0);
    assert!(!bad, "load clients saw failures: {reports:#?}");
}

async fn connect(addr: SocketAddr, c: &Counters) -> Option<RawHttp1> {
    match RawHttp1::connect(addr).await {
        Ok(conn) => Some(conn),
        Err(e) => {
            c.error(&c.refused, format!("connect: {e:#}"));
            None
        }
    }
}

async fn http1_new_connection(addr: SocketAddr, stop: &AtomicBool, c: &Counters) {
    for _ in 0..MAX_REQUESTS_PER_CLIENT {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(mut conn) = connect(addr, c).await {
            let outcome = async {
                conn.send_request("GET", "/load", &[], b"").await?;
                conn.read_response().await
            }
            .await;
            record_http1(outcome, c);
        }
        tokio::time::sleep(PACE).await;
    }
}

async fn http1_keep_alive(addr: SocketAddr, stop: &AtomicBool, c: &Counters) {
    let mut conn: Option<RawHttp1> = None;
    for _ in 0..MAX_REQUESTS_PER_CLIENT {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if conn.is_none() {
            conn = connect(addr, c).await;
        }
        let Some(open) = conn.as_mut() else {
            tokio::time::sleep(PACE).await;
            continue;
        };
        let outcome = async {
            open.send_request("GET", "/load", &[], b"").await?;
            open.read_response().await
        }
        .await;
        let keep = matches!(&outcome, Ok(r) if !r.connection_close());
        record_http1(outcome, c);
        if !keep {
            conn = None;
        }
        tokio::time::sleep(PACE).await;
    }
}

fn record_http1(outcome: anyhow::Result<baton_tests::RawResponse>, c: &Counters) {
    match outcome {
        Ok(resp) if resp.status == 200 => {
            c.served.fetch_add(1, Ordering::Relaxed);
            if resp.connection_close() {
                c.connection_close.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(resp) => c.error(
            &c.failed,
            format!("status {}: {}", resp.status, resp.body_text()),
        ),
        Err(e) => c.error(&c.failed, format!("http/1.1: {e:#}")),
    }
}

type H2Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

async fn h2_connect(addr: SocketAddr, c: &Counters) -> Option<H2Sender> {
    let stream = match tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            c.error(&c.refused, format!("h2 connect: {e}"));
            return None;
        }
        Err(_) => {
            c.error(&c.refused, "h2 connect timed out".to_string());
            return None;
        }
    };
    let _ = stream.set_nodelay(true);
    let io = hyper_util::rt::TokioIo::new(stream);
    let handshake = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io);
    match tokio::time::timeout(IO_TIMEOUT, handshake).await {
        Ok(Ok((sender, conn))) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Some(sender)
        }
        Ok(Err(e)) => {
            c.error(&c.failed, format!("h2 handshake: {e}"));
            None
        }
        Err(_) => {
            c.error(&c.failed, "h2 handshake timed out".to_string());
            None
        }
    }
}

async fn http2(addr: SocketAddr, stop: &AtomicBool, c: &Counters) {
    let mut sender: Option<H2Sender> = None;
    for _ in 0..MAX_REQUESTS_PER_CLIENT {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if sender.is_none() {
            sender = h2_connect(addr, c).await;
        }
        let Some(open) = sender.as_mut() else {
            tokio::time::sleep(PACE).await;
            continue;
        };
        // A connection that received GOAWAY or closed is no longer ready: the request was
        // never sent, so open a new connection (what every HTTP/2 client does).
        let ready = tokio::time::timeout(IO_TIMEOUT, open.ready()).await;
        if !matches!(ready, Ok(Ok(()))) || open.is_closed() {
            c.reconnects.fetch_add(1, Ordering::Relaxed);
            sender = None;
            continue;
        }
        let request = match http::Request::builder()
            .uri("http://test/load")
            .version(http::Version::HTTP_2)
            .body(Empty::<Bytes>::new())
        {
            Ok(r) => r,
            Err(e) => {
                c.error(&c.failed, format!("building request: {e}"));
                return;
            }
        };
        let exchange = async {
            let resp = open.send_request(request).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match tokio::time::timeout(IO_TIMEOUT, exchange).await {
            Ok(Ok((status, _))) if status == 200 => {
                c.served.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok((status, body))) => c.error(
                &c.failed,
                format!("h2 status {status}: {}", String::from_utf8_lossy(&body)),
            ),
            Ok(Err(e)) if not_processed(&e) => {
                // RFC 9113 6.8: a stream above the GOAWAY's last stream id was not processed
                // and may be retried on a new connection, which every client does.
                c.retried.fetch_add(1, Ordering::Relaxed);
                sender = None;
            }
            Ok(Err(e)) => {
                c.error(&c.failed, format!("h2: {e} ({e:?})"));
                sender = None;
            }
            Err(_) => {
                c.error(&c.failed, "h2 request timed out".to_string());
                sender = None;
            }
        }
        tokio::time::sleep(PACE).await;
    }
}

/// True for an HTTP/2 error saying the server never processed the request: it was never
/// sent, the stream was refused (REFUSED_STREAM) or lay above the last stream id of the server's
/// GOAWAY. (hyper does not expose h2's error type, so its Debug form is inspected.)
fn not_processed(e: &hyper::Error) -> bool {
    // Canceled: still queued in the client when the connection closed, never written
    // (hyper's own pooled client retries exactly these).
    if e.is_canceled() {
        return true;
    }
    let text = format!("{e:?}");
    text.contains("REFUSED_STREAM") || (text.contains("GoAway(") && text.contains("Remote"))
}
