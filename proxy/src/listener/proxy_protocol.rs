//! The `envoy.filters.listener.proxy_protocol` listener filter: reads the PROXY protocol
//! header (v1 text or v2 binary, <https://www.haproxy.org/download/2.1/doc/proxy-protocol.txt>)
//! that a load balancer sends ahead of the client's bytes, and gives the connection the
//! client's address as its remote address and the address the client connected to as its
//! local one, as Envoy 1.40 does (`%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%` keeps the peer).
//! The header is peeked and only its own bytes are consumed, so what follows (a request,
//! a TLS ClientHello) is read by the next stage as if nothing came before it. A
//! connection without a header (unless `allow_requests_without_proxy_protocol`), with a
//! malformed one or with a disallowed version is closed and counted in Envoy's stats.

mod parse;

use std::net::SocketAddr;

use baton_config::model::ProxyProtocol;
use baton_shared_stats::Counter;
use tokio::net::TcpStream;

pub use parse::{parse, Parsed, Version};

/// The longest header: a v2 header with the largest TLV block.
const MAX_HEADER: usize = 16 + u16::MAX as usize;

/// What the filter decided for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Go on with these addresses: (remote, local) from the header, or None to keep the
    /// connection's own (no header under `allow_requests_without_proxy_protocol`, a v1
    /// `UNKNOWN`, a v2 `LOCAL` command).
    Proceed(Option<(SocketAddr, SocketAddr)>),
    /// Close the connection.
    Close,
}

/// `proxy_proto.[<stat_prefix>.]*` and the root `downstream_cx_proxy_proto_error`.
pub struct ProxyProtocolStats {
    not_found_allowed: Counter,
    not_found_disallowed: Counter,
    /// found, disallowed, error: v1 then v2.
    versions: [[Counter; 3]; 2],
    proto_error: Counter,
}

impl std::fmt::Debug for ProxyProtocolStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyProtocolStats").finish_non_exhaustive()
    }
}

impl ProxyProtocolStats {
    /// The stats of a listener running the filter with `config` (Envoy creates them with
    /// the filter, so they show 0 before the first connection).
    pub fn new(config: &ProxyProtocol) -> Self {
        let store = crate::stats::store();
        let prefix = if config.stat_prefix.is_empty() {
            "proxy_proto.".to_string()
        } else {
            format!("proxy_proto.{}.", config.stat_prefix)
        };
        // Before the batch below: a batch holds the stats region until it is dropped.
        let proto_error = store.counter("downstream_cx_proxy_proto_error");
        let scope = crate::stats::Scope::new(store, &prefix);
        let mut s = scope.batch();
        let mut version = |v: &str| {
            [
                s.counter(&format!("versions.{v}.found")),
                s.counter(&format!("versions.{v}.disallowed")),
                s.counter(&format!("versions.{v}.error")),
            ]
        };
        let versions = [version("v1"), version("v2")];
        Self {
            not_found_allowed: s.counter("not_found_allowed"),
            not_found_disallowed: s.counter("not_found_disallowed"),
            versions,
            proto_error,
        }
    }

    fn version(&self, v: Version) -> &[Counter; 3] {
        &self.versions[match v {
            Version::V1 => 0,
            Version::V2 => 1,
        }]
    }
}

/// Reads the header from `stream` (waiting for as many bytes as it needs) and consumes
/// it. The caller bounds the wait (`listener_filters_timeout`).
pub async fn read(
    stream: &TcpStream,
    config: &ProxyProtocol,
    stats: &ProxyProtocolStats,
) -> std::io::Result<Outcome> {
    // A v1 header is at most 107 bytes and a v2 one without TLVs 52: start small.
    let mut buf = vec![0u8; 256];
    let mut seen = 0;
    loop {
        let peeked = super::peek::peek_more(stream, &mut buf, seen).await?;
        if peeked.len == 0 || (peeked.read_closed && peeked.len == seen) {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen = peeked.len;
        match parse(&buf[..seen], config.disallowed) {
            Parsed::NeedMore { at_least } => {
                if at_least > buf.len() {
                    // A v2 header with TLVs: room for all of it, peeked again at once.
                    buf.resize(at_least.min(MAX_HEADER), 0);
                    seen = 0;
                }
            }
            Parsed::NotProxy if config.allow_requests_without_proxy_protocol => {
                stats.not_found_allowed.inc();
                return Ok(Outcome::Proceed(None));
            }
            Parsed::NotProxy => {
                stats.not_found_disallowed.inc();
                stats.proto_error.inc();
                return Ok(Outcome::Close);
            }
            Parsed::Disallowed(_) if config.allow_requests_without_proxy_protocol => {
                // Envoy does not look for a disallowed version's signature then.
                stats.not_found_allowed.inc();
                return Ok(Outcome::Proceed(None));
            }
            Parsed::Disallowed(v) => {
                // As Envoy 1.40: counted found and disallowed, not as a protocol error.
                stats.version(v)[0].inc();
                stats.version(v)[1].inc();
                return Ok(Outcome::Close);
            }
            Parsed::Error(v) => {
                stats.version(v)[2].inc();
                stats.proto_error.inc();
                return Ok(Outcome::Close);
            }
            Parsed::Header {
                version,
                len,
                addresses,
            } => {
                consume(stream, len).await?;
                stats.version(version)[0].inc();
                return Ok(Outcome::Proceed(addresses));
            }
        }
    }
}

/// Reads and drops the header's `len` bytes (already peeked, so they are there).
async fn consume(stream: &TcpStream, mut len: usize) -> std::io::Result<()> {
    let mut sink = [0u8; 512];
    while len > 0 {
        stream.readable().await?;
        match stream.try_read(&mut sink[..len.min(512)]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => len -= n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
