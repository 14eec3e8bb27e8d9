//! What Baton reads from a peer's (or its own) certificate: the subject in RFC 2253
//! form as Envoy prints it, the SANs by type and the SHA-256 of the DER, for SAN
//! matchers, XFCC and access log operators.

use std::fmt::Write;

use baton_config::model::{SanMatcher, SanType, ValidationContext};
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

/// Whether one of `matchers` (`match_typed_subject_alt_names`) matches a SAN of
/// `end_entity`: any one is enough, as Envoy. Used for both peers, client and upstream.
pub(crate) fn sans_match(matchers: &[SanMatcher], end_entity: &CertificateDer<'_>) -> bool {
    let Some(peer) = PeerCertificate::parse(end_entity) else {
        return false;
    };
    matchers.iter().any(|m| {
        let values: &[String] = match m.san_type {
            SanType::Dns => &peer.dns_sans,
            SanType::Uri => &peer.uri_sans,
            SanType::Email => &peer.email_sans,
            SanType::IpAddress => &peer.ip_sans,
        };
        values
            .iter()
            .any(|v| crate::http::router::route_match::string_matches(&m.matcher, v))
    })
}

/// Whether `end_entity` matches one of `v`'s pins, as Envoy: the SHA-256 of its DER
/// in `verify_certificate_hash` or of its SubjectPublicKeyInfo in
/// `verify_certificate_spki` (either is enough). True when nothing is pinned.
pub(crate) fn pins_match(v: &ValidationContext, end_entity: &CertificateDer<'_>) -> bool {
    if !v.has_pins() {
        return true;
    }
    let digest = |bytes: &[u8]| ring::digest::digest(&ring::digest::SHA256, bytes);
    if !v.cert_hashes.is_empty() {
        let hash = digest(end_entity.as_ref());
        if v.cert_hashes.iter().any(|h| h[..] == *hash.as_ref()) {
            return true;
        }
    }
    if !v.spki_hashes.is_empty() {
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity.as_ref()) {
            let spki = digest(cert.tbs_certificate.subject_pki.raw);
            if v.spki_hashes.iter().any(|h| h[..] == *spki.as_ref()) {
                return true;
            }
        }
    }
    false
}

/// One parsed certificate.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificate {
    /// Subject, RFC 2253 (`CN=client,O=Example`), as Envoy's `%DOWNSTREAM_PEER_SUBJECT%`.
    pub subject: String,
    /// DNS SANs.
    pub dns_sans: Vec<String>,
    /// URI SANs.
    pub uri_sans: Vec<String>,
    /// Email SANs.
    pub email_sans: Vec<String>,
    /// IP address SANs, printed.
    pub ip_sans: Vec<String>,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
}

impl PeerCertificate {
    /// Parses `der`; `None` if it is not a certificate.
    pub fn parse(der: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut out = Self {
            subject: rfc2253(cert.subject()),
            ..Self::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => out.dns_sans.push((*d).to_string()),
                    GeneralName::URI(u) => out.uri_sans.push((*u).to_string()),
                    GeneralName::RFC822Name(e) => out.email_sans.push((*e).to_string()),
                    GeneralName::IPAddress(ip) => {
                        if let Some(ip) = ip_to_string(ip) {
                            out.ip_sans.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        for b in digest.as_ref() {
            let _ = write!(out.sha256, "{b:02x}");
        }
        Some(out)
    }
}

fn ip_to_string(raw: &[u8]) -> Option<String> {
    match raw.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(raw).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(raw).ok()?).to_string()),
        _ => None,
    }
}

fn attribute_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "serialNumber",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// What `%DOWNSTREAM_PEER_ISSUER%`, `_SERIAL%` and `_CERT_V_START/END%` show, read from
/// a certificate's DER when a log line asks (not kept per connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDetails {
    /// Issuer, RFC 2253.
    pub issuer: String,
    /// Serial number, lowercase hex of its bytes without leading zero bytes.
    pub serial: String,
    /// `notBefore`, seconds since the epoch.
    pub not_before: i64,
    /// `notAfter`, seconds since the epoch.
    pub not_after: i64,
}

impl CertDetails {
    /// Parses `der`; `None` if it is not a certificate.
    pub fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        // The integer's bytes, as Envoy prints it: without the DER sign byte (a leading
        // zero before a byte whose high bit is set).
        let raw = cert.raw_serial();
        let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
        let serial = raw[first..].iter().map(|b| format!("{b:02x}")).collect();
        Some(Self {
            issuer: rfc2253(cert.issuer()),
            serial,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

/// RFC 2253: RDNs most specific first, `,` between them, `+` inside a multi-valued one,
/// special characters escaped.
fn rfc2253(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            out.push_str(attribute_name(&oid).unwrap_or(&oid));
            out.push('=');
            let value = attr.as_str().unwrap_or("");
            for (k, c) in value.chars().enumerate() {
                let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                    || (k == 0 && (c == '#' || c == ' '))
                    || (k + 1 == value.chars().count() && c == ' ');
                if special {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
    out
}
