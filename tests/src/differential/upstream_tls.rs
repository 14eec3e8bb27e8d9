//! The recording upstream's TLS side (upstream kinds `tls` and `tls_client_cert`): a
//! rustls server with the corpus' `upstream` certificate, and what the proxy's handshake
//! showed it (the SNI, the ALPN protocols offered, the client certificate's CN), recorded
//! with each request so that fixtures show how Envoy and Baton connect.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::spec::UpstreamKind;
use crate::eventually::IO_TIMEOUT;

/// What a proxy's handshake with a TLS upstream showed.
#[derive(Debug, Clone, Default)]
pub struct TlsSeen {
    /// The SNI sent (None: no SNI extension).
    pub sni: Option<String>,
    /// The ALPN protocols offered, in order.
    pub alpn_offered: Vec<String>,
    /// The subject CN of the client certificate presented (None: none).
    pub client_cn: Option<String>,
    /// The negotiated version (`TLSv1.2`, `TLSv1.3`).
    pub version: String,
}

impl TlsSeen {
    /// As recorded in a fixture.
    pub fn to_json(&self) -> Value {
        json!({
            "sni": self.sni,
            "alpn_offered": self.alpn_offered,
            "client_cn": self.client_cn,
            "version": self.version,
        })
    }
}

/// The server config of an upstream of `kind` (None: it does not speak TLS).
pub fn acceptor(kind: UpstreamKind) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let require_client_cert = match kind {
        UpstreamKind::Http | UpstreamKind::Echo => return Ok(None),
        UpstreamKind::Tls => false,
        UpstreamKind::TlsClientCert => true,
    };
    let dir = super::tls::certs_dir();
    let chain =
        CertificateDer::pem_file_iter(dir.join("upstream.pem"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("upstream.key"))?;
    let provider = Arc::new(ring_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(dir.join("ca.pem"))? {
            roots.add(ca?)?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Ok(Some(Arc::new(builder.with_single_cert(chain, key)?)))
}

/// The handshake (bounded), and what it showed. None: it failed or timed out.
pub async fn accept(
    config: &Arc<rustls::ServerConfig>,
    stream: TcpStream,
) -> Option<(TlsStream<TcpStream>, TlsSeen)> {
    let handshake = async {
        let acceptor =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let start = acceptor.await.ok()?;
        let hello = start.client_hello();
        let sni = hello.server_name().map(str::to_string);
        let alpn_offered = hello
            .alpn()
            .map(|protocols| {
                protocols
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let stream = start.into_stream(Arc::clone(config)).await.ok()?;
        let session = stream.get_ref().1;
        let client_cn = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|der| common_name(der.as_ref()));
        let version = match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "other",
        }
        .to_string();
        Some((
            stream,
            TlsSeen {
                sni,
                alpn_offered,
                client_cn,
                version,
            },
        ))
    };
    tokio::time::timeout(IO_TIMEOUT, handshake).await.ok()?
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// rustls' ring provider (the tests' choice, as `crate::tls`).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
