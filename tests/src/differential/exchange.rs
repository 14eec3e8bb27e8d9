//! One case's exchange with the proxy, by protocol: HTTP/1.1 and HTTP/1.0 (raw bytes built
//! from the case), exact raw bytes, h2c (hyper, prior knowledge) and raw TCP. Each returns
//! the raw observations ([`Observed`]); normalisation happens afterwards.
//!
//! Whether the proxy closed the connection is observed without timing thresholds: after the
//! answer, a probe request `GET /__probe` goes out on the same connection; an answer means
//! open, EOF or a reset means closed.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::spec::{expand, CaseSpec, Proto};
use crate::client::RawHttp1;
use crate::eventually::IO_TIMEOUT;

/// Path of the probe request (never compared; filtered from what the upstream received).
pub const PROBE_PATH: &str = "/__probe";

/// One response as read.
#[derive(Debug, Clone)]
pub struct ObservedResponse {
    /// Status code.
    pub status: u16,
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`.
    pub version: String,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// `content-length`, `chunked`, `close`, `none` (no body allowed) or `h2`.
    pub framing: &'static str,
}

/// Everything a case observed on the downstream side.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Responses in order (1xx included).
    pub responses: Vec<ObservedResponse>,
    /// Why reading stopped early: `eof`, `reset`, `timeout` or another error text.
    pub read_error: Option<String>,
    /// Whether the connection was closed after the answer (None: not probed).
    pub closed: Option<bool>,
    /// Bytes echoed through an upgraded tunnel or a tcp_proxy connection.
    pub echoed: Option<Vec<u8>>,
    /// tcp: whether EOF followed our half-close.
    pub eof_after_half_close: Option<bool>,
    /// The client's local port (normalised away).
    pub client_port: u16,
    /// TLS cases: the handshake as the client saw it (see [`super::tls`]).
    pub tls: Option<serde_json::Value>,
    /// What an `h2raw` case saw (its frames, streams, GOAWAY).
    pub h2: Option<super::h2raw::H2Seen>,
}

fn classify(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    if text.contains("timed out") {
        return "timeout".into();
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ) {
            return "reset".into();
        }
    }
    if text.contains("closed") {
        return "eof".into();
    }
    text
}

/// Runs `case` against `addr`.
pub async fn run(case: &CaseSpec, addr: SocketAddr) -> anyhow::Result<Observed> {
    if case.tls.is_some() {
        return super::tls::run(case, addr).await;
    }
    match case.proto {
        Proto::H1 | Proto::H10 | Proto::Raw => http1(case, addr).await,
        Proto::H2c => h2c(case, addr).await,
        Proto::Tcp => tcp(case, addr).await,
        Proto::H2raw => super::h2raw::run(case, addr).await,
    }
}

/// The request bytes of an h1/h10 case.
pub fn request_bytes(case: &CaseSpec) -> Vec<u8> {
    if let Some(raw) = &case.raw {
        return expand(raw).into_bytes();
    }
    let version = if case.proto == Proto::H10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let mut head = format!("{} {} {version}\r\n", case.method, expand(&case.path));
    if let Some(host) = &case.host {
        head.push_str(&format!("host: {host}\r\n"));
    }
    for (k, v) in &case.headers {
        head.push_str(&format!("{k}: {}\r\n", expand(v)));
    }
    let body = expand(&case.body);
    let framed = case.headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    if !body.is_empty() && !framed {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

fn framing_of(status: u16, method: &str, headers: &[(String, String)]) -> &'static str {
    let has = |name: &str| headers.iter().any(|(k, _)| k == name);
    if method.eq_ignore_ascii_case("HEAD") || status < 200 || status == 204 || status == 304 {
        "none"
    } else if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"))
    {
        "chunked"
    } else if has("content-length") {
        "content-length"
    } else {
        "close"
    }
}

async fn http1(case: &CaseSpec, addr: SocketAddr) -> anyhow::Result<Observed> {
    let conn = RawHttp1::connect(addr).await?;
    let observed = Observed {
        client_port: conn.local_addr()?.port(),
        ..Observed::default()
    };
    http1_over(case, conn, observed).await
}

/// The HTTP/1 exchange of `case` on a connected stream (TCP or TLS).
pub(super) async fn http1_over<S>(
    case: &CaseSpec,
    mut conn: RawHttp1<S>,
    mut observed: Observed,
) -> anyhow::Result<Observed>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let bytes = request_bytes(case);
    let method = String::from_utf8_lossy(&bytes)
        .split(' ')
        .next()
        .unwrap_or("GET")
        .to_string();
    if let Err(e) = conn.send(&bytes).await {
        observed.read_error = Some(classify(&e));
        observed.closed = Some(true);
        return Ok(observed);
    }
    let wanted = case.responses.unwrap_or(1);
    let mut finals = 0;
    while finals < wanted {
        match conn.read_response_to(&method).await {
            Ok(resp) => {
                let informational = (100..200).contains(&resp.status) && resp.status != 101;
                let framing = framing_of(resp.status, &method, &resp.headers);
                let status = resp.status;
                observed.responses.push(ObservedResponse {
                    status,
                    version: resp.version,
                    headers: resp.headers,
                    body: resp.body,
                    framing,
                });
                if framing == "close" {
                    observed.closed = Some(true);
                    return Ok(observed);
                }
                if status == 101 || (method == "CONNECT" && (200..300).contains(&status)) {
                    if let Some(tunnel) = &case.tunnel {
                        conn.send(tunnel.as_bytes()).await?;
                        let echoed = conn.read_exact_bytes(tunnel.len()).await;
                        observed.echoed = Some(echoed.unwrap_or_else(|e| {
                            format!("<tunnel: {}>", classify(&e)).into_bytes()
                        }));
                    }
                    return Ok(observed);
                }
                if !informational {
                    finals += 1;
                }
            }
            Err(e) => {
                let class = classify(&e);
                observed.closed = Some(class == "eof" || class == "reset");
                observed.read_error = Some(class);
                return Ok(observed);
            }
        }
    }
    if case.probe.unwrap_or(true) {
        observed.closed = Some(probe_http1(&mut conn).await?);
    }
    Ok(observed)
}

/// True when the connection turns out closed.
async fn probe_http1<S>(conn: &mut RawHttp1<S>) -> anyhow::Result<bool>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let probe = format!("GET {PROBE_PATH} HTTP/1.1\r\nhost: probe\r\n\r\n");
    if conn.send(probe.as_bytes()).await.is_err() {
        return Ok(true);
    }
    match conn.read_response().await {
        Ok(_) => Ok(false),
        Err(e) => match classify(&e).as_str() {
            "eof" | "reset" => Ok(true),
            other => anyhow::bail!("probe: {other}"),
        },
    }
}

async fn h2c(case: &CaseSpec, addr: SocketAddr) -> anyhow::Result<Observed> {
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr)).await??;
    stream.set_nodelay(true)?;
    let observed = Observed {
        client_port: stream.local_addr()?.port(),
        ..Observed::default()
    };
    h2_over(case, stream, observed).await
}

/// The HTTP/2 exchange of `case` on a connected stream (h2c, or TLS with ALPN h2).
pub(super) async fn h2_over<S>(
    case: &CaseSpec,
    stream: S,
    mut observed: Observed,
) -> anyhow::Result<Observed>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) = tokio::time::timeout(
        IO_TIMEOUT,
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io),
    )
    .await??;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let uri = match &case.host {
        Some(host) => format!("http://{host}{}", expand(&case.path)),
        None => expand(&case.path),
    };
    let mut builder = http::Request::builder()
        .method(case.method.as_str())
        .uri(uri)
        .version(http::Version::HTTP_2);
    for (k, v) in &case.headers {
        builder = builder.header(k.as_str(), expand(v));
    }
    let request = builder.body(Full::new(Bytes::from(expand(&case.body))))?;
    // A stream error (reset) leaves the connection usable, so the probe still runs.
    match h2_send(&sender, request).await {
        Ok(resp) => observed.responses.push(resp),
        Err(e) => observed.read_error = Some(classify(&e)),
    }
    if case.probe.unwrap_or(true) {
        let probe = http::Request::builder()
            .uri(format!("http://probe{PROBE_PATH}"))
            .version(http::Version::HTTP_2)
            .body(Full::new(Bytes::new()))?;
        observed.closed = Some(h2_send(&sender, probe).await.is_err());
    }
    Ok(observed)
}

async fn h2_send(
    sender: &hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    request: http::Request<Full<Bytes>>,
) -> anyhow::Result<ObservedResponse> {
    let mut sender = sender.clone();
    let fut = async move {
        sender.ready().await?;
        let resp = sender.send_request(request).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        anyhow::Ok(ObservedResponse {
            status: parts.status.as_u16(),
            version: "HTTP/2".into(),
            headers,
            body: body.to_vec(),
            framing: "h2",
        })
    };
    tokio::time::timeout(IO_TIMEOUT, fut)
        .await
        .map_err(|_| anyhow::anyhow!("h2 request timed out"))?
}

async fn tcp(case: &CaseSpec, addr: SocketAddr) -> anyhow::Result<Observed> {
    let mut stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr)).await??;
    let mut observed = Observed {
        client_port: stream.local_addr()?.port(),
        ..Observed::default()
    };
    let payload = expand(case.raw.as_deref().unwrap_or_default()).into_bytes();
    stream.write_all(&payload).await?;
    let mut echoed = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut eof = false;
    while echoed.len() < payload.len() {
        match tokio::time::timeout(IO_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                eof = true;
                break;
            }
            Ok(Ok(n)) => echoed.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    if !eof {
        stream.shutdown().await?;
        loop {
            match tokio::time::timeout(IO_TIMEOUT, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    eof = true;
                    break;
                }
                Ok(Ok(n)) => echoed.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
    }
    observed.echoed = Some(echoed);
    observed.eof_after_half_close = Some(eof);
    Ok(observed)
}
