//! TLS contexts (`envoy.transport_sockets.tls`): certificates already read, parsed and
//! checked (key matches certificate), protocol parameters mapped to rustls' own suites
//! and groups. The proxy builds one rustls config from each, once per snapshot.
//!
//! Certificates and keys are a resolved secret source: the context's inline or file
//! `DataSource`s, or a named SDS `Secret` read from a `path_config_source` file (read once
//! here; the proxy watches the file and swaps the certificate on a change).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::SupportedKxGroup;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::sign::CertifiedKey;
use rustls::SupportedCipherSuite;

use super::StringMatcher;

/// One `tls_certificates` entry: chain and key, parsed and checked.
#[derive(Debug, Clone)]
pub struct TlsCertificate {
    /// The chain (leaf first) with its signing key.
    pub certified_key: Arc<CertifiedKey>,
    /// DNS names the leaf is for (DNS SANs, or the subject CN without any), lowercased;
    /// SNI picks among several certificates by these.
    pub dns_names: Vec<String>,
    /// Where the chain came from (a file name, or `<inline>`), for errors and `/certs`.
    pub chain_source: String,
    /// `ocsp_staple`'s `thisUpdate` as Unix seconds (the staple itself is the
    /// `certified_key`'s `ocsp`; `None`: no staple).
    pub ocsp_this_update: Option<u64>,
    /// `ocsp_staple`'s `nextUpdate` as Unix seconds, when it has one.
    pub ocsp_next_update: Option<u64>,
    /// The `static_resources.secrets` entry it came from: names its
    /// `ssl.certificate.<name>.expiration_unix_time_seconds` gauge, as Envoy's.
    pub static_secret: Option<String>,
}

impl TlsCertificate {
    /// A certificate from an SDS file that held no usable secret when the config was
    /// loaded: no chain, a key that signs nothing. As Envoy, the context starts without
    /// it (handshakes needing it fail) until the file's watcher swaps a good one in.
    pub fn awaiting(chain_source: String) -> Self {
        Self {
            certified_key: Arc::new(CertifiedKey::new(Vec::new(), Arc::new(NoSigningKey))),
            dns_names: Vec::new(),
            chain_source,
            ocsp_this_update: None,
            ocsp_next_update: None,
            static_secret: None,
        }
    }

    /// Whether this is [`Self::awaiting`]'s placeholder.
    pub fn is_awaiting(&self) -> bool {
        self.certified_key.cert.is_empty()
    }
}

/// The key of an awaited certificate: it offers no signature scheme.
#[derive(Debug)]
struct NoSigningKey;

impl rustls::sign::SigningKey for NoSigningKey {
    fn choose_scheme(
        &self,
        _offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        None
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::Unknown(0)
    }
}

/// `ocsp_staple_policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OcspStaplePolicy {
    /// `LENIENT_STAPLING` (default): an absent or expired staple is not sent.
    #[default]
    Lenient,
    /// `STRICT_STAPLING`: a certificate with an expired staple is not used.
    Strict,
    /// `MUST_STAPLE`: every certificate has a staple; an expired one is not used.
    MustStaple,
}

/// A `tls_certificate_sds_secret_configs` entry whose `sds_config` is a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SdsFileSource {
    /// The `Secret`'s `name` (stats are `sds.<name>.*`).
    pub secret_name: String,
    /// `path_config_source.path`: a `DiscoveryResponse` listing `Secret`s.
    pub path: PathBuf,
    /// `path_config_source.watched_directory.path`: reload when a move there changes
    /// what `path` resolves to; None: reload when a file is moved over `path`.
    pub watched_directory: Option<PathBuf>,
    /// A `combined_validation_context`'s `default_validation_context` (encoded), which
    /// each validation context read from the file is merged onto (proto `MergeFrom`).
    pub default_validation: Option<Vec<u8>>,
}

/// An SDS secret a control plane delivers: `sds_config` with `ads: {}` or its own
/// `api_config_source`. The proxy subscribes to it by name; a listener using it warms
/// until it arrives (or `initial_fetch_timeout` passes).
#[derive(Debug, Clone, PartialEq)]
pub struct XdsSecretSource {
    /// The `Secret`'s `name` (stats are `sds.<name>.*`).
    pub secret_name: String,
    /// Where it comes from.
    pub source: super::ConfigSource,
    /// A `combined_validation_context`'s `default_validation_context` (encoded), which
    /// each delivered validation context is merged onto (proto `MergeFrom`).
    pub default_validation: Option<Vec<u8>>,
}

/// A certificate that SDS keeps current: where it sits in the context's `certificates`
/// (holding the version read at load) and which file replaces it.
#[derive(Debug, Clone)]
pub struct SdsCertificate {
    /// Index in [`DownstreamTlsContext::certificates`].
    pub slot: usize,
    /// The secret's file.
    pub source: SdsFileSource,
}

/// `tls_params`, mapped to what rustls offers.
#[derive(Debug, Clone)]
pub struct TlsParams {
    /// Protocol versions allowed, highest first (`tls_minimum_protocol_version` /
    /// `tls_maximum_protocol_version`; rustls has only TLS 1.2 and 1.3).
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    /// Cipher suites: TLS 1.3 ones always (as BoringSSL, `cipher_suites` does not touch
    /// them), then the TLS 1.2 ones of `cipher_suites` in order (or Envoy's default).
    pub cipher_suites: Vec<SupportedCipherSuite>,
    /// The equal-preference group of each of `cipher_suites` (BoringSSL's `[A|B]`):
    /// suites with the same number are consecutive, and a TLS 1.2 server takes the
    /// client's order among them, its own between groups.
    pub cipher_groups: Vec<u16>,
    /// `ecdh_curves` in order (or Envoy's default).
    pub kx_groups: Vec<&'static dyn SupportedKxGroup>,
    /// `signature_algorithms`: the only schemes this side signs with and accepts from
    /// its peer (None: every one rustls has).
    pub signature_schemes: Option<Arc<[rustls::SignatureScheme]>>,
}

/// `san_type` of a `match_typed_subject_alt_names` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanType {
    /// `EMAIL`
    Email,
    /// `DNS`
    Dns,
    /// `URI`
    Uri,
    /// `IP_ADDRESS`
    IpAddress,
}

/// One `match_typed_subject_alt_names` entry.
#[derive(Debug, Clone)]
pub struct SanMatcher {
    /// Which SANs it looks at.
    pub san_type: SanType,
    /// What one of them must match.
    pub matcher: StringMatcher,
}

/// `validation_context`.
#[derive(Debug, Clone)]
pub struct ValidationContext {
    /// `trusted_ca`: the roots (none: the peer's chain is not verified).
    pub trusted_ca: Vec<CertificateDer<'static>>,
    /// Where `trusted_ca` came from (a file name, or `<inline>`), for `/certs`.
    pub trusted_ca_source: String,
    /// `match_typed_subject_alt_names` (any one matching is enough).
    pub san_matchers: Vec<SanMatcher>,
    /// `crl`
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// `allow_expired_certificate`
    pub allow_expired_certificate: bool,
    /// `trust_chain_verification: ACCEPT_UNTRUSTED`
    pub accept_untrusted: bool,
    /// `verify_certificate_hash`: SHA-256 digests of the peer's DER certificate.
    pub cert_hashes: Vec<[u8; 32]>,
    /// `verify_certificate_spki`: SHA-256 digests of the peer's DER SubjectPublicKeyInfo.
    pub spki_hashes: Vec<[u8; 32]>,
    /// A placeholder for an SDS file that held no usable validation context when the
    /// config was loaded ([`Self::awaiting`]): as Envoy, the context is not ready
    /// (every handshake fails) until the file's watcher swaps a good one in.
    pub awaiting: bool,
    /// The `static_resources.secrets` entry it came from: names its expiration gauge,
    /// as Envoy's.
    pub static_secret: Option<String>,
}

impl ValidationContext {
    /// The placeholder of a validation context whose SDS file at `source` is awaited.
    pub fn awaiting(source: String) -> Self {
        Self {
            trusted_ca: Vec::new(),
            trusted_ca_source: source,
            san_matchers: Vec::new(),
            crls: Vec::new(),
            allow_expired_certificate: false,
            accept_untrusted: false,
            cert_hashes: Vec::new(),
            spki_hashes: Vec::new(),
            awaiting: true,
            static_secret: None,
        }
    }

    /// Whether the peer's certificate is pinned (`verify_certificate_hash` or
    /// `verify_certificate_spki`): then it must present one that matches either list.
    pub fn has_pins(&self) -> bool {
        !self.cert_hashes.is_empty() || !self.spki_hashes.is_empty()
    }
}

/// `DownstreamTlsContext`.
#[derive(Debug, Clone)]
pub struct DownstreamTlsContext {
    /// `common_tls_context.tls_certificates`, then one per
    /// `tls_certificate_sds_secret_configs` entry as first read (at least one in all).
    pub certificates: Vec<TlsCertificate>,
    /// The SDS entries of `certificates`, which the proxy replaces when their file does.
    pub sds_certificates: Vec<SdsCertificate>,
    /// `common_tls_context.tls_params`
    pub params: TlsParams,
    /// `common_tls_context.alpn_protocols` (none: no ALPN offered).
    pub alpn_protocols: Vec<Vec<u8>>,
    /// `require_client_certificate`
    pub require_client_certificate: bool,
    /// `common_tls_context.validation_context`, or the one
    /// `validation_context_sds_secret_config` read at load.
    pub validation: Option<Arc<ValidationContext>>,
    /// `validation_context_sds_secret_config`'s file, which the proxy watches.
    pub sds_validation: Option<SdsFileSource>,
    /// `tls_certificate_sds_secret_configs` entries a control plane delivers (after
    /// `certificates` in the resolver's order; empty until they arrive).
    pub xds_certificates: Vec<XdsSecretSource>,
    /// `validation_context_sds_secret_config` delivered by a control plane (then
    /// `validation` is None until it arrives).
    pub xds_validation: Option<XdsSecretSource>,
    /// `session_ticket_keys`: each 80 bytes as Envoy's (name, HMAC and AES keys);
    /// the first encrypts, all decrypt. Empty: keys made at start.
    pub session_ticket_keys: Vec<[u8; 80]>,
    /// `session_ticket_keys_sds_secret_config`'s file (`session_ticket_keys` holds its
    /// keys as first read; the proxy swaps them when the file is replaced).
    pub sds_session_ticket_keys: Option<SdsFileSource>,
    /// `session_ticket_keys_sds_secret_config` delivered by a control plane (then
    /// `session_ticket_keys` is empty and no ticket is issued until they arrive).
    pub xds_session_ticket_keys: Option<XdsSecretSource>,
    /// `disable_stateless_session_resumption`
    pub disable_stateless_session_resumption: bool,
    /// `disable_stateful_session_resumption`
    pub disable_stateful_session_resumption: bool,
    /// `session_timeout` (Envoy's default: 7200 s).
    pub session_timeout: Duration,
    /// `ocsp_staple_policy`
    pub ocsp_staple_policy: OcspStaplePolicy,
    /// SHA-256 of the context as configured (its encoded proto) and of every
    /// certificate chain it resolved to: equal digests mean an unchanged context, whose
    /// generated ticket keys a new generation takes over from its parent.
    pub config_digest: [u8; 32],
}

/// `UpstreamTlsContext`.
#[derive(Debug, Clone)]
pub struct UpstreamTlsContext {
    /// `common_tls_context.tls_certificates` (client certificate; at most one used), or
    /// the one `tls_certificate_sds_secret_configs` entry as first read.
    pub certificates: Vec<TlsCertificate>,
    /// The client certificate's SDS file (`certificates[0]` holds it as first read).
    pub sds_certificate: Option<SdsFileSource>,
    /// The client certificate delivered by a control plane (then `certificates` is
    /// empty; no certificate is offered until it arrives).
    pub xds_certificate: Option<XdsSecretSource>,
    /// `validation_context_sds_secret_config`'s file (`validation` holds it as first
    /// read).
    pub sds_validation: Option<SdsFileSource>,
    /// `validation_context_sds_secret_config` delivered by a control plane (then
    /// `validation` is None and no upstream is accepted until it arrives).
    pub xds_validation: Option<XdsSecretSource>,
    /// `common_tls_context.tls_params`
    pub params: TlsParams,
    /// `common_tls_context.alpn_protocols`
    pub alpn_protocols: Vec<Vec<u8>>,
    /// `common_tls_context.validation_context` (none: the upstream is not verified).
    pub validation: Option<Arc<ValidationContext>>,
    /// `sni`
    pub sni: Option<String>,
    /// `auto_host_sni`
    pub auto_host_sni: bool,
    /// `auto_sni_san_validation`
    pub auto_sni_san_validation: bool,
}
