//! Parsing a PROXY protocol header from the bytes peeked so far: v1 (`PROXY TCP4 ...\r\n`,
//! at most 107 bytes) and v2 (a 12-byte signature, version and command, family, length,
//! addresses, TLVs), with the rules Envoy 1.40 applies (checked by the differential
//! area `proxy_protocol`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use baton_config::model::ProxyProtocolVersions;

/// The v1 signature.
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// The longest v1 header, its CRLF included.
const V1_MAX: usize = 107;
/// The v2 signature.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v2 fixed part: signature, version/command, family, length.
const V2_FIXED: usize = 16;

/// A PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Text.
    V1,
    /// Binary.
    V2,
}

/// What the bytes so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// They could still be a header: wait for at least this many bytes.
    NeedMore {
        /// The total the decision needs (at least one more than there are).
        at_least: usize,
    },
    /// No header: the connection starts with something else.
    NotProxy,
    /// A header of a version the config disallows.
    Disallowed(Version),
    /// A malformed header.
    Error(Version),
    /// A header of `len` bytes; the addresses it gives (remote, local), or None when it
    /// gives none to use (v1 `UNKNOWN`, v2 `LOCAL` or `AF_UNSPEC`).
    Header {
        /// Which version.
        version: Version,
        /// Its length on the wire.
        len: usize,
        /// (source, destination).
        addresses: Option<(SocketAddr, SocketAddr)>,
    },
}

/// Parses `buf` (the first bytes of a connection).
pub fn parse(buf: &[u8], disallowed: ProxyProtocolVersions) -> Parsed {
    if starts_as(buf, V2_SIGNATURE) {
        if buf.len() < V2_SIGNATURE.len() {
            return need(buf, V2_SIGNATURE.len());
        }
        if disallowed.v2 {
            return Parsed::Disallowed(Version::V2);
        }
        return parse_v2(buf);
    }
    if starts_as(buf, V1_SIGNATURE) {
        if buf.len() < V1_SIGNATURE.len() {
            return need(buf, V1_SIGNATURE.len());
        }
        if disallowed.v1 {
            return Parsed::Disallowed(Version::V1);
        }
        return parse_v1(buf);
    }
    Parsed::NotProxy
}

/// `buf` and `signature` agree on their common length.
fn starts_as(buf: &[u8], signature: &[u8]) -> bool {
    let n = buf.len().min(signature.len());
    buf[..n] == signature[..n]
}

fn need(buf: &[u8], total: usize) -> Parsed {
    Parsed::NeedMore {
        at_least: total.max(buf.len() + 1),
    }
}

fn parse_v1(buf: &[u8]) -> Parsed {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Parsed::Error(Version::V1)
        } else {
            need(buf, buf.len() + 1)
        };
    };
    let line = &buf[V1_SIGNATURE.len()..end];
    let header = |addresses| Parsed::Header {
        version: Version::V1,
        len: end + 2,
        addresses,
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return Parsed::Error(Version::V1);
    };
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        // Envoy takes any UNKNOWN line and keeps the connection's own addresses.
        ["UNKNOWN", ..] => header(None),
        ["TCP4", src, dst, sport, dport] => {
            match (
                src.parse::<Ipv4Addr>(),
                dst.parse::<Ipv4Addr>(),
                port(sport),
                port(dport),
            ) {
                (Ok(s), Ok(d), Some(sp), Some(dp)) => header(Some((
                    SocketAddr::new(IpAddr::V4(s), sp),
                    SocketAddr::new(IpAddr::V4(d), dp),
                ))),
                _ => Parsed::Error(Version::V1),
            }
        }
        ["TCP6", src, dst, sport, dport] => {
            match (
                src.parse::<Ipv6Addr>(),
                dst.parse::<Ipv6Addr>(),
                port(sport),
                port(dport),
            ) {
                (Ok(s), Ok(d), Some(sp), Some(dp)) => header(Some((
                    SocketAddr::new(IpAddr::V6(s), sp),
                    SocketAddr::new(IpAddr::V6(d), dp),
                ))),
                _ => Parsed::Error(Version::V1),
            }
        }
        _ => Parsed::Error(Version::V1),
    }
}

/// A decimal port: digits only, at most 65535.
fn port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_v2(buf: &[u8]) -> Parsed {
    if buf.len() < V2_FIXED {
        return need(buf, V2_FIXED);
    }
    let version_command = buf[12];
    if version_command >> 4 != 2 {
        return Parsed::Error(Version::V2);
    }
    let family = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = V2_FIXED + len;
    if buf.len() < total {
        return need(buf, total);
    }
    let body = &buf[V2_FIXED..total];
    let header = |addresses| Parsed::Header {
        version: Version::V2,
        len: total,
        addresses,
    };
    match version_command & 0x0f {
        // LOCAL: the proxy's own connection (health checks): keep the real addresses.
        0 => header(None),
        1 => match family >> 4 {
            0 => header(None),
            1 if body.len() >= 12 => {
                let ip =
                    |at: usize| Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]);
                let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
                header(Some((
                    SocketAddr::new(IpAddr::V4(ip(0)), port(8)),
                    SocketAddr::new(IpAddr::V4(ip(4)), port(10)),
                )))
            }
            2 if body.len() >= 36 => {
                let ip = |at: usize| {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(&body[at..at + 16]);
                    Ipv6Addr::from(octets)
                };
                let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
                header(Some((
                    SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
                    SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
                )))
            }
            _ => Parsed::Error(Version::V2),
        },
        _ => Parsed::Error(Version::V2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: ProxyProtocolVersions = ProxyProtocolVersions {
        v1: false,
        v2: false,
    };

    fn addrs(s: &str, d: &str) -> Option<(SocketAddr, SocketAddr)> {
        Some((s.parse().expect("addr"), d.parse().expect("addr")))
    }

    #[test]
    fn v1_headers() {
        let line = b"PROXY TCP4 10.1.2.3 10.9.8.7 4660 8080\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(line, ALL),
            Parsed::Header {
                version: Version::V1,
                len: 40,
                addresses: addrs("10.1.2.3:4660", "10.9.8.7:8080")
            }
        );
        let six = b"PROXY TCP6 2001:db8::1 2001:db8::2 4660 443\r\n";
        assert!(matches!(
            parse(six, ALL),
            Parsed::Header {
                addresses: Some(_),
                ..
            }
        ));
        assert!(matches!(
            parse(b"PROXY UNKNOWN\r\n", ALL),
            Parsed::Header {
                addresses: None,
                len: 15,
                ..
            }
        ));
        for bad in [
            &b"PROXY TCP4 10.1.2 10.9.8.7 4660 8080\r\n"[..],
            b"PROXY TCP4 10.1.2.3 10.9.8.7 70000 8080\r\n",
            b"PROXY TCP4 10.1.2.3 10.9.8.7 +466 8080\r\n",
            b"PROXY TCP4 2001:db8::1 10.9.8.7 4660 8080\r\n",
            b"PROXY TCP4 10.1.2.3 10.9.8.7 4660 8080\nGET / HTTP/1.1\r\n",
            b"PROXY UDP4 10.1.2.3 10.9.8.7 4660 8080\r\n",
        ] {
            assert_eq!(parse(bad, ALL), Parsed::Error(Version::V1), "{bad:?}");
        }
        assert_eq!(parse(&[b'P'; 120], ALL), Parsed::NotProxy);
        let mut long = b"PROXY ".to_vec();
        long.extend_from_slice(&[b'A'; 120]);
        assert_eq!(parse(&long, ALL), Parsed::Error(Version::V1));
    }

    #[test]
    fn partial_headers_wait() {
        assert!(matches!(parse(b"PRO", ALL), Parsed::NeedMore { .. }));
        assert!(matches!(
            parse(b"PROXY TCP4 10.1", ALL),
            Parsed::NeedMore { .. }
        ));
        assert!(matches!(
            parse(b"\r\n\r\n\0\r", ALL),
            Parsed::NeedMore { .. }
        ));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n", ALL), Parsed::NotProxy);
        assert_eq!(parse(b"proxy TCP4", ALL), Parsed::NotProxy);
    }

    #[test]
    fn v2_headers() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[
            0x21, 0x11, 0, 12, 10, 1, 2, 3, 10, 9, 8, 7, 0x12, 0x34, 0x1f, 0x40,
        ]);
        assert_eq!(
            parse(&h, ALL),
            Parsed::Header {
                version: Version::V2,
                len: 28,
                addresses: addrs("10.1.2.3:4660", "10.9.8.7:8000")
            }
        );
        assert!(matches!(
            parse(&h[..20], ALL),
            Parsed::NeedMore { at_least: 28 }
        ));
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert!(matches!(
            parse(&local, ALL),
            Parsed::Header {
                addresses: None,
                len: 16,
                ..
            }
        ));
        let mut bad = h.clone();
        bad[12] = 0x31;
        assert_eq!(parse(&bad, ALL), Parsed::Error(Version::V2));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse(&short, ALL), Parsed::Error(Version::V2));
        let mut unix = V2_SIGNATURE.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0, 0]);
        assert_eq!(parse(&unix, ALL), Parsed::Error(Version::V2));
    }

    #[test]
    fn disallowed_versions() {
        let only_v1 = ProxyProtocolVersions {
            v1: false,
            v2: true,
        };
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&h, only_v1), Parsed::Disallowed(Version::V2));
        let only_v2 = ProxyProtocolVersions {
            v1: true,
            v2: false,
        };
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n", only_v2),
            Parsed::Disallowed(Version::V1)
        );
    }
}
