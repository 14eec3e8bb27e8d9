//! Cases over TLS: what the client offers ([`TlsClientSpec`]: SNI or none, ALPN, versions,
//! cipher suites, key-exchange groups, signature schemes, a client certificate), the
//! handshake as the client saw it (outcome, version, cipher, group, ALPN, the server
//! certificate's subject CN, SANs and key type, never its bytes), then the HTTP exchange of
//! [`super::exchange`] on the TLS stream (HTTP/2 when `h2` was negotiated). Certificates are
//! test-only files committed under `tests/differential/certs/` (`generate.sh` made them), so
//! recording on Envoy and comparing Baton see the same ones.
//!
//! Outcome strings: `ok`, `alert: <description>` (the alert the server sent, snake_case),
//! `closed` (EOF or reset without an alert) or `error: <text>` (the client refused).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::exchange::{self, Observed};
use super::spec::{CaseSpec, Proto};
use crate::client::RawHttp1;
use crate::eventually::IO_TIMEOUT;
use crate::tls::{AcceptAny, KeyKind};

/// What the client offers in its handshake.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsClientSpec {
    /// SNI sent (none: no SNI extension).
    #[serde(default)]
    pub sni: Option<String>,
    /// ALPN protocols offered, in order (none: no ALPN extension).
    #[serde(default)]
    pub alpn: Vec<String>,
    /// Versions offered: `"1.2"`, `"1.3"` (default both).
    #[serde(default)]
    pub versions: Vec<String>,
    /// Cipher suites offered, rustls' (IANA) names, e.g. `TLS13_AES_256_GCM_SHA384`,
    /// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256` (default: all rustls has).
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Key-exchange groups offered: `X25519`, `secp256r1`, `secp384r1` (default: all).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Signature schemes offered only for this key type: `ecdsa` or `rsa` (default: all).
    #[serde(default)]
    pub sig_key: Option<String>,
    /// A client certificate: the file stem under `certs/` (`<name>.pem`, `<name>.key`).
    #[serde(default)]
    pub client_cert: Option<String>,
}

/// The directory of the corpus' test certificates.
pub fn certs_dir() -> PathBuf {
    super::spec::corpus_dir().join("certs")
}

/// Runs a TLS `case` against `addr`: handshake, then the HTTP exchange.
pub async fn run(case: &CaseSpec, addr: SocketAddr) -> anyhow::Result<Observed> {
    let Some(spec) = &case.tls else {
        anyhow::bail!("case {} has no tls", case.name);
    };
    anyhow::ensure!(
        matches!(case.proto, Proto::H1 | Proto::H10 | Proto::Raw | Proto::H2c),
        "case {}: tls speaks HTTP only",
        case.name
    );
    let config = client_config(spec)?;
    let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    tcp.set_nodelay(true)?;
    let mut observed = Observed {
        client_port: tcp.local_addr()?.port(),
        ..Observed::default()
    };
    let name = ServerName::try_from(spec.sni.clone().unwrap_or_else(|| "localhost".into()))?;
    let handshake = tokio::time::timeout(
        IO_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await;
    let stream = match handshake {
        Err(_) => {
            observed.tls = Some(json!({ "handshake": "timeout" }));
            return Ok(observed);
        }
        Ok(Err(e)) => {
            observed.tls = Some(json!({ "handshake": io_outcome(&e) }));
            return Ok(observed);
        }
        Ok(Ok(stream)) => stream,
    };
    let session = stream.get_ref().1;
    let alpn = session
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    observed.tls = Some(json!({
        "handshake": "ok",
        "version": session.protocol_version().map(|v| version_name(&format!("{v:?}"))),
        "cipher": session.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())),
        "group": session.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name())),
        "alpn": alpn,
        "server_cert": session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|der| describe_cert(der.as_ref())),
    }));
    let mut observed = if alpn.as_deref() == Some("h2") {
        exchange::h2_over(case, stream, observed).await?
    } else {
        exchange::http1_over(case, RawHttp1::over(stream), observed).await?
    };
    if let Some(error) = &observed.read_error {
        observed.read_error = Some(alert_text(error).unwrap_or_else(|| error.clone()));
    }
    Ok(observed)
}

/// `TLSv1_3` (rustls' Debug) as `TLSv1.3` (what Envoy's access log and stats say).
fn version_name(debug: &str) -> String {
    debug.replace('_', ".")
}

/// A failed handshake as the client saw it.
fn io_outcome(error: &std::io::Error) -> String {
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("alert: {}", snake(&format!("{alert:?}")))
        }
        Some(other) => format!("error: {other}"),
        None => match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => "closed".into(),
            _ => format!("error: {error}"),
        },
    }
}

/// `alert: <description>` when an error text is a received alert (after the handshake,
/// e.g. a client certificate refused under TLS 1.3).
fn alert_text(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("received fatal alert: ")?;
    let name: String = rest
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    Some(format!("alert: {}", snake(&name)))
}

/// `CertificateRequired` as `certificate_required`, `UnknownCA` as `unknown_ca`.
fn snake(camel: &str) -> String {
    let mut out = String::new();
    let mut after_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && after_lower {
            out.push('_');
        }
        after_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A certificate as a user sees it: subject CN, SANs (`DNS:`, `URI:`), key type.
fn describe_cert(der: &[u8]) -> Value {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return json!("unparsable");
    };
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => format!("DNS:{d}"),
                    x509_parser::extensions::GeneralName::URI(u) => format!("URI:{u}"),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    let key = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(_)) => "rsa",
        Ok(x509_parser::public_key::PublicKey::EC(_)) => "ecdsa",
        _ => "other",
    };
    json!({ "cn": cn, "sans": sans, "key": key })
}

/// rustls' ring provider narrowed to what `spec` offers. rustls deprecates ring for lacking
/// post-quantum key exchange; Baton uses it on purpose (README, TLS).
#[allow(deprecated)]
fn provider(spec: &TlsClientSpec) -> anyhow::Result<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !spec.cipher_suites.is_empty() {
        let mut suites = Vec::new();
        for name in &spec.cipher_suites {
            let suite = provider
                .cipher_suites
                .iter()
                .find(|s| format!("{:?}", s.suite()) == *name)
                .with_context(|| format!("rustls has no cipher suite {name}"))?;
            suites.push(*suite);
        }
        provider.cipher_suites = suites;
    }
    if !spec.groups.is_empty() {
        let mut groups = Vec::new();
        for name in &spec.groups {
            let group = provider
                .kx_groups
                .iter()
                .find(|g| format!("{:?}", g.name()) == *name)
                .with_context(|| format!("rustls has no group {name}"))?;
            groups.push(*group);
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

fn client_config(spec: &TlsClientSpec) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(provider(spec)?);
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    for version in &spec.versions {
        versions.push(match version.as_str() {
            "1.2" => &rustls::version::TLS12,
            "1.3" => &rustls::version::TLS13,
            other => anyhow::bail!("tls version {other}: rustls has 1.2 and 1.3"),
        });
    }
    if versions.is_empty() {
        versions = vec![&rustls::version::TLS13, &rustls::version::TLS12];
    }
    let sig_key = match spec.sig_key.as_deref() {
        None => None,
        Some("ecdsa") => Some(KeyKind::Ecdsa),
        Some("rsa") => Some(KeyKind::Rsa),
        Some(other) => anyhow::bail!("sig_key {other}: ecdsa or rsa"),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider, sig_key)));
    let mut config = match &spec.client_cert {
        Some(name) => {
            use rustls::pki_types::pem::PemObject;
            let dir = certs_dir();
            let chain = CertificateDer::pem_file_iter(dir.join(format!("{name}.pem")))?
                .collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key")))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = spec.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    config.enable_sni = spec.sni.is_some();
    Ok(Arc::new(config))
}
