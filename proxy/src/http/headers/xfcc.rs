//! `x-forwarded-client-cert` (XFCC) as Envoy's connection manager sets it, per
//! `forward_client_cert_details` and `set_current_client_cert_details`: one element per
//! hop, `;`-separated `Key=value` pairs in Envoy's order (`By`, `Hash`, then `Subject`,
//! `URI`, `Cert`, `Chain`, `DNS` as configured), elements joined by `,`.

use std::fmt::Write;

use baton_config::model::{ForwardClientCert, HttpConnectionManager};
use http::{HeaderMap, HeaderValue};

use super::forwarding::X_FORWARDED_CLIENT_CERT;
use crate::base::conn_info::{ConnInfo, TlsInfo};

/// Applies `forward_client_cert_details` to a request's headers.
/// `present`: the request may carry the header (false spares a removal that would find
/// nothing).
pub fn mutate(
    headers: &mut HeaderMap,
    conn: &ConnInfo,
    hcm: &HttpConnectionManager,
    present: bool,
) {
    let mtls = conn.tls_info.as_deref().filter(|t| t.peer.is_some());
    match (hcm.forward_client_cert, mtls) {
        (ForwardClientCert::AlwaysForwardOnly, _) => {}
        (ForwardClientCert::ForwardOnly, Some(_)) => {}
        (ForwardClientCert::AppendForward, Some(tls)) => {
            let element = element(tls, hcm);
            let value = match headers
                .get(&X_FORWARDED_CLIENT_CERT)
                .and_then(|v| v.to_str().ok())
            {
                Some(existing) if !existing.is_empty() => format!("{existing},{element}"),
                _ => element,
            };
            set(headers, &value);
        }
        (ForwardClientCert::SanitizeSet, Some(tls)) => {
            let element = element(tls, hcm);
            set(headers, &element);
        }
        _ if present => {
            headers.remove(&X_FORWARDED_CLIENT_CERT);
        }
        _ => {}
    }
}

fn set(headers: &mut HeaderMap, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(X_FORWARDED_CLIENT_CERT.clone(), v);
        }
        Err(_) => {
            headers.remove(&X_FORWARDED_CLIENT_CERT);
        }
    }
}

/// This connection's element.
fn element(tls: &TlsInfo, hcm: &HttpConnectionManager) -> String {
    let details = hcm.set_current_client_cert;
    let mut parts: Vec<String> = Vec::new();
    if let Some(by) = &tls.local_uri_san {
        parts.push(format!("By={by}"));
    }
    let Some(peer) = &tls.peer else {
        return parts.join(";");
    };
    parts.push(format!("Hash={}", peer.sha256));
    if details.subject {
        parts.push(format!("Subject=\"{}\"", peer.subject));
    }
    if details.uri {
        for uri in &peer.uri_sans {
            parts.push(format!("URI={uri}"));
        }
    }
    if details.cert {
        if let Some(leaf) = tls.peer_chain.first() {
            parts.push(format!("Cert=\"{}\"", url_encode(&pem(leaf))));
        }
    }
    if details.chain {
        let chain: String = tls.peer_chain.iter().map(|c| pem(c)).collect();
        parts.push(format!("Chain=\"{}\"", url_encode(&chain)));
    }
    if details.dns {
        for dns in &peer.dns_sans {
            parts.push(format!("DNS={dns}"));
        }
    }
    parts.join(";")
}

/// PEM text of one DER certificate (64-column base64, as OpenSSL writes it).
pub(crate) fn pem(der: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(char::from(TABLE[((v >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Percent-encodes all but unreserved characters (RFC 3986), as Envoy's `urlEncode`.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{pem, url_encode};

    #[test]
    fn pem_wraps_base64() {
        // 50 bytes: 48 fill one 64-column line, the last 2 pad to `//8=`.
        let p = pem(&[0xff; 50]);
        let line = "/".repeat(64);
        assert_eq!(
            p,
            format!("-----BEGIN CERTIFICATE-----\n{line}\n//8=\n-----END CERTIFICATE-----\n")
        );
        assert!(pem(&[0xff]).contains("\n/w==\n"));
        assert_eq!(url_encode("a b\n+/="), "a%20b%0A%2B%2F%3D");
    }
}
