//! The `tls_inspector` listener filter: peeks at the first bytes of a connection
//! (without consuming them, so the TLS handshake or a plain-text filter chain still sees
//! them) and reads a TLS ClientHello's SNI and ALPN list for filter-chain matching (and
//! whether it asks for an OCSP staple, which the TLS handshake's stats need).
//! Anything that is not a TLS handshake record is `raw_buffer`. Its `tls_inspector.*`
//! stats are shared by every listener that runs it, as Envoy's.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

use baton_shared_stats::{Counter, Histogram};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Envoy's tls_inspector default `max_client_hello_size` (bytes peeked at most).
const MAX_CLIENT_HELLO: usize = 16 * 1024;
/// The first peek's size: a ClientHello is usually well under it.
const FIRST_PEEK: usize = 2 * 1024;

/// What the inspector learnt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// The connection starts with a TLS ClientHello (`transport_protocol: tls`).
    pub tls: bool,
    /// SNI, lowercased.
    pub server_name: Option<String>,
    /// The SNI as sent, when that is not all lowercase: Envoy (BoringSSL) matches
    /// certificate names against it case-sensitively.
    pub server_name_as_sent: Option<String>,
    /// The `signature_algorithms` extension names ECDSA P-256 with SHA-256 (Envoy's test
    /// of an ECDSA-capable client, before rustls narrows the schemes to the suites).
    pub ecdsa_p256_signatures: bool,
    /// ALPN protocols offered, in the client's order.
    pub alpn: Vec<Vec<u8>>,
    /// The client asked for an OCSP staple (a `status_request` extension).
    pub status_request: bool,
    /// Its TLS 1.2 suite preference and whether it offers TLS 1.3 (the server's
    /// TLS 1.2 suite choice, `super::cipher_order`).
    pub suites: Option<super::cipher_order::ClientSuites>,
    /// Bytes the decision took (`tls_inspector.bytes_processed`): the ClientHello's
    /// records, or the record header that was not TLS's.
    pub bytes: usize,
}

/// `tls_inspector.*` (Envoy's names), created with the first listener that runs the
/// filter.
pub struct InspectorStats {
    tls_found: Counter,
    tls_not_found: Counter,
    sni_found: Counter,
    sni_not_found: Counter,
    alpn_found: Counter,
    alpn_not_found: Counter,
    /// A ClientHello over the limit (the connection is closed).
    pub client_hello_too_large: Counter,
    bytes_processed: Histogram,
}

impl InspectorStats {
    /// The process's one set.
    pub fn get() -> &'static InspectorStats {
        static STATS: OnceLock<InspectorStats> = OnceLock::new();
        STATS.get_or_init(|| {
            let s = crate::stats::Scope::new(crate::stats::store(), "tls_inspector.");
            InspectorStats {
                tls_found: s.counter("tls_found"),
                tls_not_found: s.counter("tls_not_found"),
                sni_found: s.counter("sni_found"),
                sni_not_found: s.counter("sni_not_found"),
                alpn_found: s.counter("alpn_found"),
                alpn_not_found: s.counter("alpn_not_found"),
                client_hello_too_large: s.counter("client_hello_too_large"),
                bytes_processed: s.histogram("bytes_processed"),
            }
        })
    }

    /// Counts what one inspection found (SNI and ALPN only for TLS, as Envoy).
    pub fn record(&self, hello: &ClientHelloInfo) {
        self.bytes_processed
            .record(u64::try_from(hello.bytes).unwrap_or(u64::MAX));
        if !hello.tls {
            self.tls_not_found.inc();
            return;
        }
        self.tls_found.inc();
        let (sni, alpn) = (hello.server_name.is_some(), !hello.alpn.is_empty());
        if sni {
            &self.sni_found
        } else {
            &self.sni_not_found
        }
        .inc();
        if alpn {
            &self.alpn_found
        } else {
            &self.alpn_not_found
        }
        .inc();
    }
}

/// Why inspecting failed (the connection is closed).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The peer closed before a whole ClientHello arrived.
    #[error("connection closed during the ClientHello")]
    Closed,
    /// The ClientHello is larger than Envoy's limit.
    #[error("ClientHello larger than {MAX_CLIENT_HELLO} bytes")]
    TooLarge,
    /// A socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// How [`inspect`] treats a peer that already closed its side when its bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerClose {
    /// Closed, whatever arrived with the close (Envoy's listener filters: data and the
    /// close seen together are `downstream_listener_filter_remote_close`).
    Ends,
    /// The bytes that arrived are still read (a peek before a handshake).
    ReadFirst,
}

/// Peeks until the first bytes say whether this is TLS and, if so, the whole
/// ClientHello has arrived. Bound it with `listener_filters_timeout`.
pub async fn inspect(
    stream: &TcpStream,
    peer_close: PeerClose,
) -> Result<ClientHelloInfo, InspectError> {
    // Most ClientHellos fit in one packet: start small, grow while one needs more.
    let mut buf = vec![0u8; FIRST_PEEK];
    let mut seen = 0usize;
    loop {
        let ready = stream.ready(Interest::READABLE).await?;
        let peeked = stream.try_io(Interest::READABLE, || {
            let n = nix::sys::socket::recv(
                stream.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::MSG_PEEK,
            )
            .map_err(io::Error::from)?;
            if n == seen && n != 0 {
                // Nothing new: clear readiness and wait for the next arrival.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match peeked {
            Ok(0) => return Err(InspectError::Closed),
            Ok(_) if peer_close == PeerClose::Ends && ready.is_read_closed() => {
                return Err(InspectError::Closed)
            }
            Ok(n) => {
                seen = n;
                match parse(&buf[..n]) {
                    Parsed::NeedMore if n == MAX_CLIENT_HELLO => {
                        return Err(InspectError::TooLarge)
                    }
                    Parsed::NeedMore if n == buf.len() => {
                        buf.resize((buf.len() * 4).min(MAX_CLIENT_HELLO), 0);
                        // The bigger buffer has more to peek at once: no wait.
                        seen = 0;
                    }
                    Parsed::NeedMore => {}
                    Parsed::NotTls(bytes) => {
                        return Ok(ClientHelloInfo {
                            bytes,
                            ..ClientHelloInfo::default()
                        })
                    }
                    Parsed::Hello(info) => return Ok(info),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if ready.is_read_closed() {
                    return Err(InspectError::Closed);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Result of parsing the bytes so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    NeedMore,
    /// Not a TLS ClientHello, decided after this many bytes.
    NotTls(usize),
    Hello(ClientHelloInfo),
}

/// The largest plaintext record TLS allows: a longer one is a record overflow, not TLS
/// (BoringSSL, behind Envoy's inspector, decides so from the header alone).
const MAX_RECORD: usize = 16 * 1024;
/// A TLS record header: type, version, length.
const RECORD_HEADER: usize = 5;

/// Parses a ClientHello that may span several handshake records.
pub(crate) fn parse(data: &[u8]) -> Parsed {
    // Record header: type 22 (handshake), version 3.x, length.
    if data.is_empty() {
        return Parsed::NeedMore;
    }
    let header_bytes = data.len().min(RECORD_HEADER);
    if data[0] != 0x16 {
        return Parsed::NotTls(header_bytes);
    }
    if data.len() >= 2 && data[1] != 0x03 {
        return Parsed::NotTls(header_bytes);
    }
    let mut handshake = Vec::new();
    let mut rest = data;
    loop {
        let read = data.len() - rest.len();
        if rest.len() < RECORD_HEADER {
            return Parsed::NeedMore;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if rest[0] != 0x16 || rest[1] != 0x03 || len > MAX_RECORD {
            return Parsed::NotTls(read + RECORD_HEADER);
        }
        if rest.len() < 5 + len {
            return Parsed::NeedMore;
        }
        handshake.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
        if handshake.len() >= 4 {
            let read = data.len() - rest.len();
            if handshake[0] != 0x01 {
                return Parsed::NotTls(read);
            }
            let body_len = (usize::from(handshake[1]) << 16)
                | (usize::from(handshake[2]) << 8)
                | usize::from(handshake[3]);
            if handshake.len() >= 4 + body_len {
                return match client_hello(&handshake[4..4 + body_len]) {
                    Some(info) => Parsed::Hello(ClientHelloInfo {
                        bytes: read,
                        ..info
                    }),
                    None => Parsed::NotTls(read),
                };
            }
        }
    }
}

/// A cursor over a ClientHello body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn client_hello(body: &[u8]) -> Option<ClientHelloInfo> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // session id
    let suites = r.vec16()?;
    r.vec8()?; // compression methods
    let mut info = ClientHelloInfo {
        tls: true,
        ..ClientHelloInfo::default()
    };
    let mut client_suites = super::cipher_order::ClientSuites::from_wire(suites);
    let Some(extensions) = r.vec16() else {
        info.suites = Some(client_suites);
        return Some(info);
    };
    let mut ext = Reader(extensions);
    while !ext.0.is_empty() {
        let kind = ext.u16()?;
        let data = ext.vec16()?;
        match kind {
            0 => {
                let mut list = Reader(Reader(data).vec16()?);
                while !list.0.is_empty() {
                    let name_type = list.u8()?;
                    let name = list.vec16()?;
                    if name_type == 0 {
                        let sent = std::str::from_utf8(name).ok();
                        info.server_name = sent.map(str::to_ascii_lowercase);
                        info.server_name_as_sent = sent
                            .filter(|n| n.bytes().any(|b| b.is_ascii_uppercase()))
                            .map(str::to_string);
                    }
                }
            }
            5 => info.status_request = true,
            13 => {
                let schemes = Reader(data).vec16()?;
                info.ecdsa_p256_signatures = schemes.chunks_exact(2).any(|s| s == [4, 3]);
            }
            43 => {
                let versions = Reader(data).vec8()?;
                client_suites.offers_tls13 = versions.chunks_exact(2).any(|v| v == [3, 4]);
            }
            16 => {
                let mut list = Reader(Reader(data).vec16()?);
                while !list.0.is_empty() {
                    info.alpn.push(list.vec8()?.to_vec());
                }
            }
            _ => {}
        }
    }
    info.suites = Some(client_suites);
    Some(info)
}

#[cfg(test)]
mod tests;
