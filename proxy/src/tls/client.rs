//! The client side of a cluster's `UpstreamTlsContext`: one rustls `ClientConfig` per
//! cluster (plus `http/1.1` and `h2` variants for HTTP pools when no ALPN is configured,
//! as Envoy offers the pool's protocol), built once when the cluster is built.
//!
//! Verification follows Envoy rather than browsers: with a `trusted_ca` the chain must
//! lead to it, but the name is only checked by `match_typed_subject_alt_names`; without
//! one the peer's certificate is not verified at all (the handshake signature still is).
//!
//! The SNI sent is, first to last: the request's (`auto_sni`, see [`TlsOverrides`]), the
//! host's name (`auto_host_sni`), the configured `sni`. `auto_sni_san_validation`
//! replaces the SAN matchers by a DNS SAN check against the SNI sent;
//! `auto_san_validation` adds a check against the request's host to the matchers.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use baton_config::model::{SanMatcher, SdsFileSource, UpstreamTlsContext, ValidationContext};
use baton_proto::pb::envoy::service::discovery::v3::DiscoveryResponse;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::peer::{pins_match, sans_match};
use super::sds_xds::SecretProvider;
use super::server::TlsError;
use super::stats::SslStats;

/// A cluster's TLS client side.
#[derive(Debug)]
pub struct ClientTls {
    /// For raw TCP connections (ALPN as configured).
    config: Arc<ClientConfig>,
    /// For HTTP/1 pools: `http/1.1` offered when `alpn_protocols` is empty.
    http1_config: Arc<ClientConfig>,
    /// For HTTP/2 pools: `h2` offered when `alpn_protocols` is empty.
    h2_config: Arc<ClientConfig>,
    /// `sni` (`None`: no SNI sent).
    sni: Option<ServerName<'static>>,
    /// `auto_host_sni`: the host's name, when it has one, replaces `sni`.
    auto_host_sni: bool,
    /// The peer's certificate is checked at all (a `trusted_ca`, SAN matchers or
    /// `auto_sni_san_validation`): only then does `auto_san_validation` apply.
    verifies: bool,
    /// `cluster.<name>.ssl.*`
    pub stats: Arc<SslStats>,
    /// Secrets a control plane delivers (the cluster warms until they arrive).
    secret_providers: Vec<Arc<SecretProvider>>,
    /// What `config` verifies with and offers now, where SDS rotates it (for /certs).
    current: Option<Rotating>,
    /// The client certificate's SDS file slot: a connection made while it holds none
    /// counts in `client_ssl_socket_factory.upstream_context_secrets_not_ready`.
    sds_certificate: Option<Arc<super::sds::SecretSlot>>,
    /// A control plane's client certificate, awaited the same way until it arrives.
    xds_certificate: Option<Arc<SecretProvider>>,
    /// The validation context's SDS state (a file or a control plane), counted the
    /// same way while awaited.
    sds_validation: Option<Arc<ArcSwap<VerifyState>>>,
    /// Keeps SDS swaps (files and a control plane's) counted in
    /// `client_ssl_socket_factory.ssl_context_update_by_sds`.
    _sds_update_counts: Vec<super::sds::UpdateCount>,
}

/// The rotating parts of a built config, held weakly (the config holds them).
#[derive(Debug, Clone)]
struct Rotating {
    verify_state: std::sync::Weak<ArcSwap<VerifyState>>,
    client_cert: Option<std::sync::Weak<ClientCert>>,
}

impl ClientTls {
    /// Builds the client side of `ctx`; `stats` counts handshakes and failures.
    pub fn new(ctx: &UpstreamTlsContext, stats: Arc<SslStats>) -> Result<Self, TlsError> {
        // Before subscribing, so that the files' first reads count, as in Envoy.
        let sds_update_counts: Vec<_> = [&ctx.sds_certificate, &ctx.sds_validation]
            .into_iter()
            .flatten()
            .map(|source| {
                super::sds::count_updates(source, &stats.factory.ssl_context_update_by_sds)
            })
            .collect();
        let (config, current) = build(ctx, &stats, ctx.alpn_protocols.clone())?;
        let sds_certificate = ctx
            .sds_certificate
            .as_ref()
            .zip(ctx.certificates.first())
            .map(|(source, cert)| super::sds::subscribe(source, cert));
        // A file's or a control plane's validation context, awaited alike.
        let sds_validation = (ctx.sds_validation.is_some() || ctx.xds_validation.is_some())
            .then(|| current.as_ref()?.verify_state.upgrade())
            .flatten();
        // As Envoy, an HTTP pool offers its protocol when nothing is configured.
        let (http1_config, h2_config) = if ctx.alpn_protocols.is_empty() {
            (
                build(ctx, &stats, vec![b"http/1.1".to_vec()])?.0,
                build(ctx, &stats, vec![b"h2".to_vec()])?.0,
            )
        } else {
            (config.clone(), config.clone())
        };
        let sni = match &ctx.sni {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| TlsError::Verifier(format!("sni '{name}': {e}")))?,
            ),
            None => None,
        };
        let verifies = ctx.auto_sni_san_validation
            || ctx.xds_validation.is_some()
            || ctx.validation.as_deref().is_some_and(|v| {
                !v.trusted_ca.is_empty() || !v.san_matchers.is_empty() || v.has_pins()
            });
        let secret_providers: Vec<_> = [&ctx.xds_certificate, &ctx.xds_validation]
            .into_iter()
            .flatten()
            .map(super::sds_xds::provider)
            .collect();
        let mut sds_update_counts: Vec<_> = sds_update_counts;
        sds_update_counts.extend(super::sds_xds::count_updates(
            &secret_providers,
            &stats.factory.ssl_context_update_by_sds,
        ));
        Ok(Self {
            config,
            http1_config,
            h2_config,
            sni,
            auto_host_sni: ctx.auto_host_sni,
            verifies,
            stats,
            secret_providers,
            current,
            sds_certificate,
            xds_certificate: ctx.xds_certificate.as_ref().map(super::sds_xds::provider),
            sds_validation,
            _sds_update_counts: sds_update_counts,
        })
    }

    /// Reads the client certificate offered and the validation context verified
    /// against now (for /certs), when SDS rotates them; None for a fixed context. The
    /// HTTP/1 and HTTP/2 configs share the same SDS sources, so the first config's
    /// state stands for all of them.
    pub fn current_state(&self) -> Option<super::certs::CurrentFn> {
        let rotating = self.current.clone()?;
        Some(Box::new(move || {
            let state = rotating.verify_state.upgrade()?;
            let validation = state.load().context.clone();
            let certificates = match rotating.client_cert.as_ref().map(std::sync::Weak::upgrade) {
                Some(Some(cert)) => cert.entry().into_iter().collect(),
                Some(None) => return None,
                None => Vec::new(),
            };
            Some(super::certs::Current {
                certificates,
                validation,
                secret_names: Vec::new(),
            })
        }))
    }

    /// The secrets a control plane delivers for this context (certificate, validation
    /// context): the cluster warms until they are ready.
    pub fn secret_providers(&self) -> &[Arc<SecretProvider>] {
        &self.secret_providers
    }

    /// The connector for a connection carrying `alpn` (an HTTP pool's protocol, `None`
    /// for raw TCP) to `peer_ip` (named `hostname`), and the name to hand rustls. With
    /// no SNI to send the peer's IP is given, for which rustls sends no SNI extension,
    /// as Envoy sends none. While an SDS file's secret (client certificate or validation
    /// context) is awaited there is none: as Envoy, the connection fails before its
    /// handshake with [`SECRET_NOT_READY_REASON`], counted in
    /// `upstream_context_secrets_not_ready` only.
    pub fn connector(
        &self,
        alpn: Option<HttpAlpn>,
        overrides: &TlsOverrides,
        hostname: Option<&str>,
        peer_ip: IpAddr,
    ) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), &'static str> {
        // One lock-free load per SDS file per connection.
        let cert_awaited = self
            .sds_certificate
            .as_ref()
            .is_some_and(|slot| slot.load().key.cert.is_empty())
            || self
                .xds_certificate
                .as_ref()
                .is_some_and(|p| p.certificate().is_none());
        let validation_awaited = self
            .sds_validation
            .as_ref()
            .is_some_and(|state| state.load().awaiting);
        if cert_awaited || validation_awaited {
            self.stats.factory.upstream_context_secrets_not_ready.inc();
            return Err(SECRET_NOT_READY_REASON);
        }
        let config = match alpn {
            None => &self.config,
            Some(HttpAlpn::Http1) => &self.http1_config,
            Some(HttpAlpn::H2) => &self.h2_config,
        };
        let host_sni = || {
            hostname
                .filter(|_| self.auto_host_sni)
                .filter(|name| !name.is_empty())
        };
        let name = overrides
            .sni
            .as_deref()
            .or_else(host_sni)
            .and_then(|name| ServerName::try_from(name.to_string()).ok())
            .or_else(|| self.sni.clone())
            .unwrap_or(ServerName::IpAddress(peer_ip.into()));
        Ok((tokio_rustls::TlsConnector::from(config.clone()), name))
    }

    /// `auto_san_validation`: whether the upstream's certificate (of a finished
    /// handshake) is for `san`, checked when the context verifies peers at all.
    /// A mismatch counts in `fail_verify_san`.
    pub fn verify_requested_san(&self, session: &rustls::ClientConnection, san: &str) -> bool {
        if !self.verifies {
            return true;
        }
        let ok = session
            .peer_certificates()
            .and_then(<[_]>::first)
            .is_some_and(|leaf| certificate_is_for(leaf, san));
        if !ok {
            self.stats.fail_verify_san.inc();
        }
        ok
    }
}

/// TLS options a request gives its upstream connection (cluster
/// `upstream_http_protocol_options`, from the Host header or `override_auto_sni_header`).
/// Part of the connection pool's key: connections are shared only by equal options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsOverrides {
    /// `auto_sni`: the SNI to send (not set for an IP host).
    pub sni: Option<Arc<str>>,
    /// `auto_san_validation`: a name the certificate must be for, besides the matchers.
    pub verify_san: Option<Arc<str>>,
}

/// Whether `end_entity` is for `name`: a DNS SAN equal to it or a wildcard covering its
/// first label, or an IP SAN equal to it (as Envoy's SAN list check).
fn certificate_is_for(end_entity: &CertificateDer<'_>, name: &str) -> bool {
    let Some(peer) = super::peer::PeerCertificate::parse(end_entity) else {
        return false;
    };
    peer.dns_sans.iter().any(|san| dns_name_matches(san, name))
        || peer.ip_sans.iter().any(|ip| ip == name)
}

/// A certificate's DNS name `pattern` (maybe `*.example.com`) against `name`.
fn dns_name_matches(pattern: &str, name: &str) -> bool {
    if pattern.eq_ignore_ascii_case(name) {
        return true;
    }
    match (pattern.strip_prefix("*."), name.split_once('.')) {
        (Some(rest), Some((first, name_rest))) => {
            !first.is_empty() && rest.eq_ignore_ascii_case(name_rest)
        }
        _ => false,
    }
}

/// The HTTP protocol a pool's connection will carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAlpn {
    /// HTTP/1.1
    Http1,
    /// HTTP/2
    H2,
}

/// A client config for `ctx` offering `alpn`, with its rotating parts when SDS rotates
/// any.
fn build(
    ctx: &UpstreamTlsContext,
    stats: &Arc<SslStats>,
    alpn: Vec<Vec<u8>>,
) -> Result<(Arc<ClientConfig>, Option<Rotating>), TlsError> {
    let base = super::provider();
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: ctx.params.cipher_suites.clone(),
        kx_groups: ctx.params.kx_groups.clone(),
        signature_verification_algorithms: super::sigalgs::verification_algorithms(
            &base,
            ctx.params.signature_schemes.as_ref(),
        ),
        ..(*base).clone()
    });
    let verifier = Arc::new(UpstreamVerifier::new(ctx, &provider, stats.clone())?);
    let verify_state = verifier.state.clone();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&ctx.params.versions)
        .map_err(TlsError::Params)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let client_cert = match (&ctx.xds_certificate, ctx.certificates.first()) {
        (Some(secret), _) => Some(ClientCert::Xds(super::sds_xds::provider(secret))),
        (None, Some(cert)) => Some(match &ctx.sds_certificate {
            Some(source) => ClientCert::File(super::sds::subscribe(source, cert)),
            None => ClientCert::Fixed(cert.certified_key.clone()),
        }),
        (None, None) => None,
    };
    let client_cert = client_cert.map(Arc::new);
    let rotates = ctx.sds_certificate.is_some()
        || ctx.xds_certificate.is_some()
        || ctx.sds_validation.is_some()
        || ctx.xds_validation.is_some();
    let current = rotates.then(|| Rotating {
        verify_state: Arc::downgrade(&verify_state),
        client_cert: client_cert.as_ref().map(Arc::downgrade),
    });
    let mut config = match (&client_cert, &ctx.params.signature_schemes) {
        (Some(cert), Some(allowed)) => {
            builder.with_client_cert_resolver(Arc::new(super::sigalgs::RestrictedClientCert {
                inner: cert.clone(),
                allowed: allowed.clone(),
            }))
        }
        (Some(cert), None) => builder.with_client_cert_resolver(cert.clone()),
        (None, _) => builder.with_no_client_auth(),
    };
    if rotates {
        // A session made before a rotation would be resumed with the old client
        // certificate and trust even after it (a handshake in flight across the swap
        // stores its session anew). Envoy does not resume upstream sessions unless
        // configured; a context whose secrets rotate does not either.
        config.resumption = rustls::client::Resumption::disabled();
    }
    config.alpn_protocols = alpn;
    // Otherwise the default rustls cache stays: it is harmless and saves handshakes.
    Ok((Arc::new(config), current))
}

/// The client certificate, offered whenever the upstream asks: fixed, or loaded per
/// handshake from its SDS slot (a file's or a control plane's; none until delivered).
#[derive(Debug)]
enum ClientCert {
    Fixed(Arc<rustls::sign::CertifiedKey>),
    File(Arc<super::sds::SecretSlot>),
    Xds(Arc<super::sds_xds::SecretProvider>),
}

impl ClientCert {
    /// The certificate it offers now (None: a control plane's, not delivered yet).
    /// A fixed one is described only by its key (/certs shows it from the config).
    fn entry(&self) -> Option<Arc<super::sds::CertEntry>> {
        match self {
            Self::Fixed(key) => Some(Arc::new(super::sds::CertEntry {
                key: key.clone(),
                names: Vec::new(),
                source: String::new(),
            })),
            Self::File(slot) => Some(slot.load_full()),
            Self::Xds(provider) => provider.certificate(),
        }
    }
}

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let key = match self {
            Self::Fixed(key) => key.clone(),
            Self::File(slot) => slot.load().key.clone(),
            Self::Xds(provider) => provider.certificate()?.key.clone(),
        };
        key.key.choose_scheme(sigschemes).map(|_| key)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Envoy's upstream verification. The validation context is loaded per handshake: a
/// `validation_context_sds_secret_config` file or control plane swaps it.
struct UpstreamVerifier {
    state: Arc<ArcSwap<VerifyState>>,
    /// The control plane's validation context, held so its subscription lives.
    _xds_validation: Option<Arc<SecretProvider>>,
    /// `auto_sni_san_validation`: the SNI sent, not the matchers, names the certificate.
    sni_san_validation: bool,
    algorithms: WebPkiSupportedAlgorithms,
    stats: Arc<SslStats>,
}

impl std::fmt::Debug for VerifyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyState")
            .field("awaiting", &self.awaiting)
            .finish_non_exhaustive()
    }
}

/// One validation context, ready to verify with.
struct VerifyState {
    /// A control plane's validation context that has not arrived: every upstream is
    /// refused (none is trusted yet).
    awaiting: bool,
    /// Chain check against `trusted_ca` (`None`: not verified).
    chain: Option<Arc<WebPkiServerVerifier>>,
    san_matchers: Vec<SanMatcher>,
    allow_expired: bool,
    /// The validation context (its pins, `verify_certificate_hash` / `_spki`; and
    /// what /certs shows).
    context: Option<Arc<ValidationContext>>,
}

impl std::fmt::Debug for UpstreamVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamVerifier").finish_non_exhaustive()
    }
}

impl VerifyState {
    fn new(
        validation: Option<&ValidationContext>,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let chain = match validation {
            Some(v) if !v.trusted_ca.is_empty() && !v.accept_untrusted => {
                let roots = super::server::trusted_roots(&v.trusted_ca)?;
                let mut builder =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                if !v.crls.is_empty() {
                    builder = builder
                        .with_crls(v.crls.iter().cloned())
                        .allow_unknown_revocation_status();
                }
                Some(
                    builder
                        .build()
                        .map_err(|e| TlsError::Verifier(e.to_string()))?,
                )
            }
            _ => None,
        };
        Ok(Self {
            // An SDS file that held no usable validation context at load: nothing
            // verifies until one arrives.
            awaiting: validation.is_some_and(|v| v.awaiting),
            chain,
            san_matchers: validation
                .map(|v| v.san_matchers.clone())
                .unwrap_or_default(),
            allow_expired: validation.is_some_and(|v| v.allow_expired_certificate),
            context: validation.map(|v| Arc::new(v.clone())),
        })
    }
}

fn verify_registry() -> &'static super::sds::Registry<VerifyState> {
    static REGISTRY: std::sync::OnceLock<super::sds::Registry<VerifyState>> =
        std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// A validation-context secret file's new state (an SDS update).
fn verify_state_from(
    resp: &DiscoveryResponse,
    source: &SdsFileSource,
) -> Result<VerifyState, String> {
    let v = baton_config::sds::validation_context_from(resp, source).map_err(|e| e.to_string())?;
    VerifyState::new(Some(&v), &super::provider())
        .map_err(|e| format!("{}: {e}", source.path.display()))
}

impl UpstreamVerifier {
    fn new(
        ctx: &UpstreamTlsContext,
        provider: &Arc<rustls::crypto::CryptoProvider>,
        stats: Arc<SslStats>,
    ) -> Result<Self, TlsError> {
        let initial = VerifyState::new(ctx.validation.as_deref(), provider)?;
        let mut xds_validation = None;
        let state = match (&ctx.xds_validation, &ctx.sds_validation) {
            (Some(secret), _) => {
                let secret_provider = super::sds_xds::provider(secret);
                let state = Arc::new(ArcSwap::from_pointee(VerifyState {
                    awaiting: true,
                    ..initial
                }));
                follow_validation(
                    &secret_provider,
                    secret.default_validation.clone(),
                    &state,
                    provider.clone(),
                );
                xds_validation = Some(secret_provider);
                state
            }
            (None, Some(source)) => {
                super::sds::subscribe_with(verify_registry(), source, || initial, verify_state_from)
            }
            (None, None) => Arc::new(ArcSwap::from_pointee(initial)),
        };
        Ok(Self {
            state,
            _xds_validation: xds_validation,
            sni_san_validation: ctx.auto_sni_san_validation,
            algorithms: provider.signature_verification_algorithms,
            stats,
        })
    }
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as E;
        let state = self.state.load();
        if state.awaiting {
            self.stats.fail_verify_error.inc();
            return Err(rustls::Error::InvalidCertificate(E::UnknownIssuer));
        }
        if let Some(chain) = &state.chain {
            match chain.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(_) => {}
                // The name is Envoy's to check (SAN matchers below), not the SNI's:
                // webpki checks it last, so the chain itself was good.
                Err(rustls::Error::InvalidCertificate(
                    E::NotValidForName | E::NotValidForNameContext { .. },
                )) => {}
                Err(rustls::Error::InvalidCertificate(E::Expired | E::ExpiredContext { .. }))
                    if state.allow_expired => {}
                Err(e) => {
                    self.stats.fail_verify_error.inc();
                    return Err(e);
                }
            }
        }
        let names_ok = match server_name {
            ServerName::DnsName(sni) if self.sni_san_validation => {
                certificate_is_for(end_entity, sni.as_ref())
            }
            _ => state.san_matchers.is_empty() || sans_match(&state.san_matchers, end_entity),
        };
        if !names_ok {
            self.stats.fail_verify_san.inc();
            return Err(rustls::Error::InvalidCertificate(E::NotValidForName));
        }
        if state
            .context
            .as_deref()
            .is_some_and(|v| !pins_match(v, end_entity))
        {
            self.stats.fail_verify_cert_hash.inc();
            return Err(rustls::Error::InvalidCertificate(
                E::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Keeps `state` on the validation context `secret` holds (a control plane's), merged
/// onto `default` for a `combined_validation_context`: now, and after every accepted
/// update, until the cluster or the secret is gone.
fn follow_validation(
    secret: &Arc<SecretProvider>,
    default: Option<Vec<u8>>,
    state: &Arc<ArcSwap<VerifyState>>,
    crypto: Arc<rustls::crypto::CryptoProvider>,
) {
    let apply = move |secret: &SecretProvider, state: &ArcSwap<VerifyState>| {
        let new = match secret.validation_for(default.as_deref()) {
            None => return,
            Some(Ok(v)) => VerifyState::new(Some(&v), &crypto).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e),
        };
        match new {
            Ok(new) => state.store(Arc::new(new)),
            Err(e) => {
                tracing::warn!(secret = %secret.name(), error = %e, "SDS validation context unusable; keeping the current one")
            }
        }
    };
    apply(secret, state);
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(secret = %secret.name(), "no runtime to follow the SDS validation context");
        return;
    };
    let mut updates = secret.updates();
    let (secret, state) = (Arc::downgrade(secret), Arc::downgrade(state));
    handle.spawn(async move {
        while updates.changed().await.is_ok() {
            let (Some(p), Some(s)) = (secret.upgrade(), state.upgrade()) else {
                return;
            };
            apply(&p, &s);
        }
    });
}

/// Envoy's transport failure reason for a connection whose context lacks an SDS secret
/// (spaces become `_` where it is logged, as Envoy's).
pub const SECRET_NOT_READY_REASON: &str = "TLS error: Secret is not supplied by SDS";

/// Whether a failed handshake failed on verifying the upstream's certificate.
pub fn is_verify_failure(e: &std::io::Error) -> bool {
    matches!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

/// Envoy's transport failure reason for a failed verification (BoringSSL's text).
pub const VERIFY_FAILED_REASON: &str =
    "TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end";

/// Envoy's transport failure reason for a failed upstream handshake. A failed
/// verification reads exactly as BoringSSL's; other failures carry rustls' own text
/// between the same markers.
pub fn handshake_failure_reason(e: &std::io::Error) -> String {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(_)) => VERIFY_FAILED_REASON.to_string(),
        Some(other) => format!("TLS_error:|{other}:TLS_error_end"),
        None => format!("TLS_error:|{e}:TLS_error_end"),
    }
}

#[cfg(test)]
mod tests {
    use super::dns_name_matches;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(dns_name_matches("a.test", "A.test"));
        assert!(dns_name_matches("*.wild.test", "x.wild.test"));
        assert!(!dns_name_matches("*.wild.test", "y.x.wild.test"));
        assert!(!dns_name_matches("*.wild.test", "wild.test"));
        assert!(!dns_name_matches("a.test", "b.test"));
    }
}
