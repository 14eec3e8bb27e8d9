//! Opening a connection to an upstream host (TCP, or a Unix socket for a `pipe` host):
//! `connect_timeout`, the cluster's `max_connections` breaker, per-host counters, the
//! cluster's `upstream_cx_*` stats and Envoy's transport failure reasons.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_config::model::{TcpKeepalive, UpstreamConnectionOptions};
use tokio::net::{TcpStream, UnixStream};

use super::cluster::UpstreamCluster;
use super::error::UpstreamError;
use super::host::{Host, OpenConnection};
use super::stream::UpstreamStream;
use crate::base::address::HostAddress;
use crate::tls::client::{ClientTls, HttpAlpn, TlsOverrides};
use crate::tls::stats::HandshakeFacts;

/// What the connection will carry (`upstream_cx_http1_total` / `_http2_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Raw bytes (tcp_proxy, CONNECT).
    Tcp,
    /// HTTP/1.1
    Http1,
    /// HTTP/2
    Http2,
}

/// Connects to `host` (TLS with the request's `overrides`, if the cluster has TLS); the
/// returned guard counts the connection until dropped. As in
/// Envoy, a connection counts in `upstream_cx_total` (and its protocol's total) once the
/// breaker admits it, whether or not the connect then succeeds; a failed one counts in
/// `upstream_cx_connect_fail` (plus `_connect_timeout`) and `upstream_cx_destroy`.
pub(crate) async fn connect(
    cluster: &UpstreamCluster,
    host: &Arc<Host>,
    overrides: &TlsOverrides,
    protocol: Protocol,
) -> Result<(UpstreamStream, OpenConnection), UpstreamError> {
    let stats = cluster.stats();
    let Some(slot) = cluster.breakers().connection() else {
        stats.upstream_cx_overflow.inc();
        return Err(UpstreamError::Overflow);
    };
    stats.upstream_cx_total.inc();
    match protocol {
        Protocol::Http1 => stats.upstream_cx_http1_total.inc(),
        Protocol::Http2 => stats.upstream_cx_http2_total.inc(),
        Protocol::Tcp => {}
    }
    let started = Instant::now();
    // As in Envoy, a TLS connection is connected once its handshake is done: the
    // connect timeout covers both, and a failed handshake is a failed connect.
    let attempt = dial(cluster, host, protocol, overrides);
    match tokio::time::timeout(cluster.model.connect_timeout, attempt).await {
        Err(_elapsed) => {
            stats.upstream_cx_connect_timeout.inc();
            stats.upstream_cx_connect_fail.inc();
            stats.upstream_cx_destroy.inc();
            // The proxy gave up on it.
            stats.upstream_cx_destroy_by.record(true, false);
            host.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(cluster = %cluster.model.name, host = %host.address, "upstream connect timeout");
            Err(UpstreamError::ConnectTimeout { host: host.clone() })
        }
        Ok(Err(reason)) => {
            stats.upstream_cx_connect_fail.inc();
            stats.upstream_cx_destroy.inc();
            // Refused or reset by the peer: Envoy counts `upstream_cx_destroy_remote`.
            stats.upstream_cx_destroy_by.record(false, false);
            host.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(cluster = %cluster.model.name, host = %host.address, %reason, "upstream connect failed");
            Err(UpstreamError::ConnectFailure {
                host: host.clone(),
                reason,
            })
        }
        Ok(Ok(stream)) => {
            crate::stats::record_ms(&stats.upstream_cx_connect_ms, started.elapsed());
            let local = stream.local_ip_addr();
            let mut open =
                OpenConnection::new(host.clone(), slot.into_owned(), stats.clone(), local);
            let stream = open.meter(stream, protocol == Protocol::Tcp);
            Ok((stream, open))
        }
    }
}

/// Dials `host` of `cluster` and, when the cluster has TLS, completes the handshake
/// offering `protocol`'s ALPN; `Err` is Envoy's transport failure reason. No timeout, no
/// breaker and no `upstream_cx_*`: [`connect`] (the pools' and the xDS channel's) adds
/// those. The TLS side is read at each dial, so a rotated context applies to the next
/// connection.
async fn dial(
    cluster: &UpstreamCluster,
    host: &Host,
    protocol: Protocol,
    overrides: &TlsOverrides,
) -> Result<UpstreamStream, String> {
    let stream = open_stream(&host.address, &cluster.model.upstream_connection_options)
        .await
        .map_err(|e| transport_failure_reason(&e, &host.address))?;
    match cluster.tls_for(host) {
        None => Ok(stream),
        Some(tls) => handshake(tls, stream, protocol, host, overrides).await,
    }
}

/// The TLS handshake over a connected `stream`; `Err` is Envoy's transport failure
/// reason. Counts `cluster.<name>.ssl.*`.
async fn handshake(
    tls: &Result<Arc<ClientTls>, String>,
    stream: UpstreamStream,
    protocol: Protocol,
    host: &Host,
    overrides: &TlsOverrides,
) -> Result<UpstreamStream, String> {
    let tls = tls
        .as_ref()
        .map_err(|e| format!("TLS_error:|{e}:TLS_error_end"))?;
    let peer_ip = match &host.address {
        HostAddress::Ip(addr) => addr.ip(),
        HostAddress::Pipe(_) => std::net::IpAddr::from([127, 0, 0, 1]),
    };
    let alpn = match protocol {
        Protocol::Tcp => None,
        Protocol::Http1 => Some(HttpAlpn::Http1),
        Protocol::Http2 => Some(HttpAlpn::H2),
    };
    let (connector, name) = tls
        .connector(alpn, overrides, host.hostname.as_deref(), peer_ip)
        .map_err(str::to_string)?;
    match connector.connect(name, stream).await {
        Ok(stream) => {
            if let Some(san) = &overrides.verify_san {
                if !tls.verify_requested_san(stream.get_ref().1, san) {
                    return Err(crate::tls::client::VERIFY_FAILED_REASON.to_string());
                }
            }
            tls.stats
                .record_handshake(&HandshakeFacts::of(stream.get_ref().1));
            Ok(UpstreamStream::Tls(Box::new(stream)))
        }
        Err(e) => {
            // As Envoy, a failed verification counts only in its `fail_verify_*`.
            if !crate::tls::client::is_verify_failure(&e) {
                tls.stats.connection_error.inc();
            }
            Err(crate::tls::client::handshake_failure_reason(&e))
        }
    }
}

/// Dials `address` with the cluster's `upstream_connection_options`.
async fn open_stream(
    address: &HostAddress,
    options: &UpstreamConnectionOptions,
) -> io::Result<UpstreamStream> {
    match address {
        HostAddress::Ip(addr) => {
            let stream = TcpStream::connect(*addr).await?;
            // Envoy sets TCP_NODELAY on upstream connections; a failure here only
            // costs latency, so it is not fatal.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY upstream");
            }
            if let Some(keepalive) = &options.tcp_keepalive {
                // As Envoy, a socket option that cannot be set fails the connection.
                set_keepalive(&stream, keepalive).inspect_err(|e| {
                    tracing::warn!(error = %e, "cannot set tcp_keepalive on an upstream connection");
                })?;
            }
            Ok(UpstreamStream::Tcp(stream))
        }
        HostAddress::Pipe(pipe) => {
            let socket = tokio::net::unix::SocketAddr::from(pipe.socket_addr().clone());
            Ok(UpstreamStream::Unix(
                UnixStream::connect_addr(&socket).await?,
            ))
        }
    }
}

/// `tcp_keepalive`: SO_KEEPALIVE on, and each configured field set (unset ones keep
/// the system's defaults).
fn set_keepalive(stream: &TcpStream, keepalive: &TcpKeepalive) -> io::Result<()> {
    let mut params = socket2::TcpKeepalive::new();
    if let Some(secs) = keepalive.time_secs {
        params = params.with_time(Duration::from_secs(u64::from(secs)));
    }
    if let Some(secs) = keepalive.interval_secs {
        params = params.with_interval(Duration::from_secs(u64::from(secs)));
    }
    if let Some(probes) = keepalive.probes {
        params = params.with_retries(probes);
    }
    socket2::SockRef::from(stream).set_tcp_keepalive(&params)
}

/// Envoy's wording for a failed connect. A TCP connect fails once the non-blocking
/// attempt completes: "delayed connect error: <strerror>". A Unix socket connect fails
/// in the call itself (no such file, nobody listening), which Envoy reports with the
/// address: "immediate connect error: <strerror>|remote_address:<path>".
pub(crate) fn transport_failure_reason(e: &io::Error, address: &HostAddress) -> String {
    let cause = match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    };
    match address {
        HostAddress::Ip(_) => format!("delayed connect error: {cause}"),
        HostAddress::Pipe(pipe) => {
            format!(
                "immediate connect error: {cause}|remote_address:{}",
                pipe.name()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::base::address::PipeAddress;

    /// The configured keepalive is on the socket Baton connects (read back with
    /// getsockopt), and a connection without it keeps the system's default (off).
    #[tokio::test]
    async fn tcp_keepalive_is_set_on_upstream_sockets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = HostAddress::Ip(listener.local_addr().unwrap());
        let options = UpstreamConnectionOptions {
            tcp_keepalive: Some(TcpKeepalive {
                probes: Some(7),
                time_secs: Some(300),
                interval_secs: Some(11),
            }),
            set_local_interface_name: false,
        };
        let UpstreamStream::Tcp(stream) = open_stream(&address, &options).await.unwrap() else {
            panic!("expected a TCP stream");
        };
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(11)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 7);

        let only_time = UpstreamConnectionOptions {
            tcp_keepalive: Some(TcpKeepalive {
                time_secs: Some(42),
                ..TcpKeepalive::default()
            }),
            set_local_interface_name: false,
        };
        let UpstreamStream::Tcp(stream) = open_stream(&address, &only_time).await.unwrap() else {
            panic!("expected a TCP stream");
        };
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(42)
        );

        let plain = UpstreamConnectionOptions::default();
        let UpstreamStream::Tcp(stream) = open_stream(&address, &plain).await.unwrap() else {
            panic!("expected a TCP stream");
        };
        assert!(!socket2::SockRef::from(&stream).keepalive().unwrap());
    }

    #[test]
    fn refused_reason_reads_like_envoy() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let tcp = HostAddress::Ip(std::net::SocketAddr::from(([127, 0, 0, 1], 1)));
        assert_eq!(
            transport_failure_reason(&e, &tcp),
            "delayed connect error: Connection refused"
        );
    }

    #[test]
    fn pipe_reason_names_the_socket_like_envoy() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        let pipe = PipeAddress::new(std::path::Path::new("/run/gone.sock")).expect("pipe");
        assert_eq!(
            transport_failure_reason(&e, &HostAddress::Pipe(pipe)),
            "immediate connect error: No such file or directory|remote_address:/run/gone.sock"
        );
    }
}
