//! TLS test support: a CA and certificates made in the test with `rcgen` (written as PEM
//! files for the proxy's config), and a rustls client that connects with a chosen SNI,
//! ALPN list and optional client certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::eventually::IO_TIMEOUT;
use crate::process::TempDir;

/// The key algorithm of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256
    Ecdsa,
    /// RSA 2048
    Rsa,
}

/// A certificate authority made for one test.
pub struct TestCa {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, KeyPair>,
    /// PEM of the CA certificate.
    pub pem: String,
}

/// A leaf certificate and its key, as PEM and as files.
#[derive(Debug, Clone)]
pub struct TestCert {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM.
    pub key_pem: String,
    /// `cert.pem` in the test directory.
    pub cert_path: PathBuf,
    /// `key.pem` in the test directory.
    pub key_path: PathBuf,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let pem = cert.pem();
        let issuer = rcgen::Issuer::new(params, key);
        Ok(Self { cert, issuer, pem })
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// An ECDSA server certificate for `dns_name` with common name `cn-<name>`, its files
    /// named after `name` (the rotation tests' certificates a, b, c).
    pub fn issue_named(
        &self,
        dir: &TempDir,
        name: &str,
        dns_name: &str,
    ) -> anyhow::Result<TestCert> {
        self.issue(
            dir,
            name,
            &format!("cn-{name}"),
            &[dns_name],
            &[],
            KeyKind::Ecdsa,
        )
    }

    /// As [`TestCa::issue_named`], valid until the start of `year`-`month`-`day` (UTC),
    /// so that certificates differ in their expiry.
    pub fn issue_named_until(
        &self,
        dir: &TempDir,
        name: &str,
        dns_name: &str,
        (year, month, day): (i32, u8, u8),
    ) -> anyhow::Result<TestCert> {
        let mut params = CertificateParams::new(vec![dns_name.to_string()])?;
        params.not_after = rcgen::date_time_ymd(year, month, day);
        self.issue_with(
            params,
            dir,
            name,
            &format!("cn-{name}"),
            &[],
            KeyKind::Ecdsa,
        )
    }

    /// Issues a leaf for `dns_names` (and `uris` as URI SANs), subject CN `cn`, written
    /// to `dir` as `<file>.pem` / `<file>.key`.
    pub fn issue(
        &self,
        dir: &TempDir,
        file: &str,
        cn: &str,
        dns_names: &[&str],
        uris: &[&str],
        kind: KeyKind,
    ) -> anyhow::Result<TestCert> {
        let params =
            CertificateParams::new(dns_names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        self.issue_with(params, dir, file, cn, uris, kind)
    }

    /// Issues a leaf from `params` (serial, validity, SANs as the caller set them), subject
    /// CN `cn` and O `Baton Test`, with `uris` added as URI SANs.
    pub fn issue_with(
        &self,
        mut params: CertificateParams,
        dir: &TempDir,
        file: &str,
        cn: &str,
        uris: &[&str],
        kind: KeyKind,
    ) -> anyhow::Result<TestCert> {
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI(rcgen::string::Ia5String::try_from(*uri)?));
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Baton Test");
        let key = match kind {
            KeyKind::Ecdsa => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            // ring cannot generate RSA keys: openssl makes one.
            KeyKind::Rsa => {
                KeyPair::from_pkcs8_pem_and_sign_algo(&rsa_key_pem()?, &rcgen::PKCS_RSA_SHA256)?
            }
        };
        let cert = params.signed_by(&key, &self.issuer)?;
        let cert_path = dir.join(&format!("{file}.pem"));
        let key_path = dir.join(&format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        Ok(TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_path,
            key_path,
        })
    }

    /// Writes the CA certificate to `dir/<file>.pem` and returns the path.
    pub fn write(&self, dir: &TempDir, file: &str) -> anyhow::Result<PathBuf> {
        let path = dir.join(&format!("{file}.pem"));
        std::fs::write(&path, &self.pem)?;
        Ok(path)
    }
}

/// A certificate's `notAfter` in Unix seconds (what Envoy's
/// `ssl.certificate.<name>.expiration_unix_time_seconds` reports).
pub fn not_after_unix(pem: &str) -> anyhow::Result<u64> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())?;
    let cert = block.parse_x509()?;
    Ok(u64::try_from(cert.validity().not_after.timestamp())?)
}

/// A fresh RSA 2048 key, PKCS#8 PEM, from `openssl genpkey`.
fn rsa_key_pem() -> anyhow::Result<String> {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .context("running openssl genpkey (install openssl)")?;
    anyhow::ensure!(out.status.success(), "openssl genpkey failed");
    Ok(String::from_utf8(out.stdout)?)
}

/// What a TLS client offers.
#[derive(Default, Clone)]
pub struct ClientOptions {
    /// SNI (none: no SNI sent; the name verified is then `localhost`).
    pub sni: Option<String>,
    /// ALPN protocols offered.
    pub alpn: Vec<Vec<u8>>,
    /// Trusted roots (none: the server is not verified).
    pub roots: Vec<CertificateDer<'static>>,
    /// A client certificate (PEM cert, PEM key).
    pub client_cert: Option<(String, String)>,
    /// Only TLS 1.2.
    pub tls12_only: bool,
    /// Offer only this key type's signature schemes (the server must pick such a
    /// certificate); `None`: all of them.
    pub only_key: Option<KeyKind>,
}

impl ClientOptions {
    /// With SNI `name`.
    pub fn sni(name: &str) -> Self {
        Self {
            sni: Some(name.to_string()),
            ..Self::default()
        }
    }
}

/// Accepts any server certificate (tests that look at which one was served), offering
/// only the signature schemes of one key type when given one (the server must then pick
/// such a certificate).
#[derive(Debug)]
pub struct AcceptAny(pub Arc<rustls::crypto::CryptoProvider>, pub Option<KeyKind>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        let mut schemes = self.0.signature_verification_algorithms.supported_schemes();
        if let Some(kind) = self.1 {
            schemes.retain(|s| {
                let ecdsa = matches!(
                    s,
                    rustls::SignatureScheme::ECDSA_NISTP256_SHA256
                        | rustls::SignatureScheme::ECDSA_NISTP384_SHA384
                        | rustls::SignatureScheme::ECDSA_NISTP521_SHA512
                );
                let rsa = matches!(
                    s,
                    rustls::SignatureScheme::RSA_PSS_SHA256
                        | rustls::SignatureScheme::RSA_PSS_SHA384
                        | rustls::SignatureScheme::RSA_PSS_SHA512
                        | rustls::SignatureScheme::RSA_PKCS1_SHA256
                        | rustls::SignatureScheme::RSA_PKCS1_SHA384
                        | rustls::SignatureScheme::RSA_PKCS1_SHA512
                );
                match kind {
                    KeyKind::Ecdsa => ecdsa,
                    KeyKind::Rsa => rsa,
                }
            });
        }
        schemes
    }
}

/// A rustls client config for `opts`.
pub fn client_config(opts: &ClientOptions) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(ring_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if opts.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?;
    let builder = if opts.roots.is_empty() {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider, opts.only_key)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for r in &opts.roots {
            roots.add(r.clone())?;
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &opts.client_cert {
        Some((cert, key)) => {
            use rustls::pki_types::pem::PemObject;
            let chain =
                CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = opts.alpn.clone();
    config.enable_sni = opts.sni.is_some();
    Ok(Arc::new(config))
}

/// Connects and completes the handshake.
pub async fn connect(
    addr: SocketAddr,
    opts: &ClientOptions,
) -> anyhow::Result<TlsStream<TcpStream>> {
    connect_with(addr, opts, client_config(opts)?).await
}

/// Sends a ClientHello for `opts` over plain TCP and returns every byte the server
/// sends before it closes (e.g. the TLS alert of a refused handshake; empty when it
/// closes without one). Bounded by the I/O timeout.
pub async fn bytes_after_client_hello(
    addr: SocketAddr,
    opts: &ClientOptions,
) -> anyhow::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let name = ServerName::try_from(opts.sni.clone().unwrap_or_else(|| "localhost".into()))?;
    let mut client = rustls::ClientConnection::new(client_config(opts)?, name)?;
    let mut hello = Vec::new();
    client.write_tls(&mut hello)?;
    let mut tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    tcp.write_all(&hello).await?;
    let mut received = Vec::new();
    tokio::time::timeout(IO_TIMEOUT, tcp.read_to_end(&mut received))
        .await
        .context("the server did not close")??;
    Ok(received)
}

/// Connects with a given client config (to share its session cache across connections).
pub async fn connect_with(
    addr: SocketAddr,
    opts: &ClientOptions,
    config: Arc<rustls::ClientConfig>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(opts.sni.clone().unwrap_or_else(|| "localhost".into()))?;
    let stream = tokio::time::timeout(
        IO_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .context("TLS handshake timed out")??;
    Ok(stream)
}

/// The subject CN of the certificate the server presented.
pub fn served_cn(stream: &TlsStream<TcpStream>) -> Option<String> {
    let der = stream.get_ref().1.peer_certificates()?.first()?.clone();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The key algorithm of the certificate the server presented.
pub fn served_key_is_rsa(stream: &TlsStream<TcpStream>) -> Option<bool> {
    let der = stream.get_ref().1.peer_certificates()?.first()?.clone();
    // rsaEncryption OID 1.2.840.113549.1.1.1 in DER.
    let rsa_oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    Some(der.as_ref().windows(rsa_oid.len()).any(|w| w == rsa_oid))
}

/// A rustls server config serving `cert` with ALPN `alpn`; with `client_ca`, a client
/// certificate from that CA is required (mTLS).
pub fn server_config(
    cert: &TestCert,
    client_ca: Option<&TestCa>,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    let chain =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())?;
    let provider = Arc::new(ring_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der())?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// rustls' ring provider. rustls deprecates it for lacking post-quantum key exchange
/// (X25519MLKEM768 needs aws-lc-rs); Baton uses ring on purpose (README, TLS).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The SHA-256 of `cert`'s DER as `openssl x509 -fingerprint -sha256` prints it
/// (uppercase hex pairs joined by `:`), for `verify_certificate_hash`.
pub fn cert_fingerprint(cert: &TestCert) -> anyhow::Result<String> {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())?;
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    Ok(digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// The base64 SHA-256 of `cert`'s SubjectPublicKeyInfo, for `verify_certificate_spki`.
pub fn spki_pin(cert: &TestCert) -> anyhow::Result<String> {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())?;
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref())?;
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        parsed.tbs_certificate.subject_pki.raw,
    );
    Ok(base64(digest.as_ref()))
}

/// Standard padded base64.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The serial number of the first certificate in `pem` as `/certs` prints it (hex bytes
/// without the DER sign byte).
pub fn serial_number(pem: &str) -> anyhow::Result<String> {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes())?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())?;
    let raw = cert.tbs_certificate.raw_serial();
    let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    Ok(raw[first..].iter().map(|b| format!("{b:02x}")).collect())
}
