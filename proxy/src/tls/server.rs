//! The server side of a TLS filter chain: one rustls `ServerConfig` per compiled chain,
//! built from a resolved [`DownstreamTlsContext`] (certificates already parsed, SDS ones
//! as first read; their file watchers swap them later). Certificates are chosen per
//! handshake by SNI against their names, then by the client's signature schemes, then the
//! first, as Envoy.

use std::sync::Arc;

use arc_swap::ArcSwap;
use baton_config::model::{DownstreamTlsContext, SdsFileSource, ValidationContext};
use baton_proto::pb::envoy::service::discovery::v3::DiscoveryResponse;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use super::peer::{pins_match, sans_match, PeerCertificate};
use super::resolver::{AwaitedSecrets, CertResolver};
use super::sds::CertEntry;
use super::sds_xds::SecretProvider;
use super::stats::SslStats;

/// Building a TLS context failed (the config was checked at load; this is what rustls
/// itself refuses).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The protocol versions, suites and groups do not fit together.
    #[error("TLS parameters rejected by rustls: {0}")]
    Params(rustls::Error),
    /// The trusted CAs or CRLs could not be used.
    #[error("validation context rejected: {0}")]
    Verifier(String),
}

/// A TLS filter chain's server side.
#[derive(Debug)]
pub struct ServerTls {
    /// The acceptor's config.
    pub config: Arc<ServerConfig>,
    /// The same without `alpn_protocols`, for a client whose ALPN list shares none of
    /// them: Envoy (BoringSSL) then negotiates no protocol, where rustls would refuse
    /// the handshake (`no_application_protocol`). None when no ALPN is configured.
    config_without_alpn: Option<Arc<ServerConfig>>,
    /// The context it was built from.
    pub context: Arc<DownstreamTlsContext>,
    /// URI SAN of the first certificate (XFCC `By`, `%DOWNSTREAM_LOCAL_URI_SAN%`).
    pub local_uri_san: Option<Arc<str>>,
    /// Subject of the first certificate (`%DOWNSTREAM_LOCAL_SUBJECT%`).
    pub local_subject: Option<Arc<str>>,
    /// DNS SANs of the first certificate, comma-separated (`%DOWNSTREAM_LOCAL_DNS_SAN%`).
    pub local_dns_san: Option<Arc<str>>,
    /// Secrets a control plane delivers (the listener warms until they arrive).
    pub secret_providers: Vec<Arc<SecretProvider>>,
    /// Keeps SDS swaps (files and a control plane's) counted in
    /// `server_ssl_socket_factory.ssl_context_update_by_sds`.
    _sds_update_counts: Vec<super::sds::UpdateCount>,
    /// The chain's certificate resolver (also inside `config`), asked before a
    /// handshake whether the context has its secrets.
    resolver: Arc<CertResolver>,
    /// The TLS 1.2 suite choice as BoringSSL's (None: no TLS 1.2).
    tls12_order: Option<super::cipher_order::Tls12Order>,
    /// TLS 1.3 is allowed (a client offering it negotiates it, with `config`).
    tls13_enabled: bool,
}

impl ServerTls {
    /// The config for a client offering the ALPN protocols `offered` and the suites
    /// `suites` (None: not read): for TLS 1.2, the server's order with the client's
    /// inside equal-preference groups (`super::cipher_order`); without ALPN when it
    /// offers some and none is configured here (Envoy goes on without a protocol).
    pub fn config_for(
        &self,
        offered: &[Vec<u8>],
        suites: Option<&super::cipher_order::ClientSuites>,
    ) -> &Arc<ServerConfig> {
        let ordered = match (suites, &self.tls12_order) {
            (Some(client), Some(order)) if !(client.offers_tls13 && self.tls13_enabled) => {
                order.for_client(client)
            }
            _ => None,
        };
        let (config, without_alpn) = match ordered {
            Some(o) => (&o.config, &o.without_alpn),
            None => (&self.config, &self.config_without_alpn),
        };
        match without_alpn {
            Some(without)
                if !offered.is_empty()
                    && !offered.iter().any(|p| config.alpn_protocols.contains(p)) =>
            {
                without
            }
            _ => config,
        }
    }

    /// Whether a client certificate this chain accepts was checked against trusted CAs:
    /// a validation context with CAs (static, or delivered by SDS), not
    /// `ACCEPT_UNTRUSTED`.
    pub fn validates_peer_chain(&self) -> bool {
        let ctx = &self.context;
        match ctx.validation.as_deref() {
            Some(v) => !v.trusted_ca.is_empty() && !v.accept_untrusted,
            None => ctx.sds_validation.is_some() || ctx.xds_validation.is_some(),
        }
    }

    /// Whether the context has every SDS secret it needs (a certificate, and any
    /// awaited validation context or ticket keys). Not ready: counted in
    /// `downstream_context_secrets_not_ready`, and the caller closes the connection
    /// without a TLS alert, as Envoy (whose context does not exist yet) does.
    pub fn secrets_ready(&self) -> bool {
        let ready = self.resolver.ready();
        if !ready {
            self.resolver
                .stats
                .factory
                .downstream_context_secrets_not_ready
                .inc();
        }
        ready
    }
}

/// Builds the server config of one chain. `stats` counts verification failures.
pub fn build_server_config(
    ctx: &Arc<DownstreamTlsContext>,
    stats: &Arc<SslStats>,
) -> Result<ServerTls, TlsError> {
    // Before subscribing, so that the files' first reads count, as in Envoy.
    let sds_update_counts: Vec<_> = ctx
        .sds_certificates
        .iter()
        .map(|c| &c.source)
        .chain(&ctx.sds_validation)
        .chain(&ctx.sds_session_ticket_keys)
        .map(|source| super::sds::count_updates(source, &stats.factory.ssl_context_update_by_sds))
        .collect();
    let base = super::provider();
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: ctx.params.cipher_suites.clone(),
        kx_groups: ctx.params.kx_groups.clone(),
        signature_verification_algorithms: super::sigalgs::verification_algorithms(
            &base,
            ctx.params.signature_schemes.as_ref(),
        ),
        ..(*base).clone()
    };
    let builder = ServerConfig::builder_with_provider(Arc::new(provider.clone()))
        .with_protocol_versions(&ctx.params.versions)
        .map_err(TlsError::Params)?;
    let mut secret_providers = Vec::new();
    // What SDS swaps, for /certs.
    let mut rotating_validation = None;
    // An SDS validation context (a file's or a control plane's), which may be awaited.
    let mut awaited_validation = None;
    let verifier: Arc<dyn ClientCertVerifier> = match (&ctx.xds_validation, &ctx.validation) {
        (Some(secret), _) => {
            let provider = super::sds_xds::provider(secret);
            secret_providers.push(provider.clone());
            let state = Arc::new(ArcSwap::from_pointee(VerifierState::awaiting()));
            follow_validation(&provider, secret.default_validation.clone(), &state);
            rotating_validation = Some(Arc::downgrade(&state));
            awaited_validation = Some(state.clone());
            Arc::new(ClientVerifier {
                state,
                hints: Vec::new(),
                required: ctx.require_client_certificate,
                stats: stats.clone(),
            })
        }
        (None, Some(v)) if !v.trusted_ca.is_empty() || v.has_pins() || v.awaiting => {
            let initial = if v.awaiting {
                VerifierState::awaiting()
            } else {
                VerifierState::new(v)?
            };
            let hints = initial.inner.root_hint_subjects().to_vec();
            let state = match &ctx.sds_validation {
                Some(source) => super::sds::subscribe_with(
                    verifier_registry(),
                    source,
                    || initial.with_fixed_hints(),
                    verifier_state_from,
                ),
                None => Arc::new(ArcSwap::from_pointee(initial)),
            };
            if ctx.sds_validation.is_some() {
                rotating_validation = Some(Arc::downgrade(&state));
                awaited_validation = Some(state.clone());
            }
            Arc::new(ClientVerifier {
                state,
                hints,
                required: ctx.require_client_certificate,
                stats: stats.clone(),
            })
        }
        _ => WebPkiClientVerifier::no_client_auth(),
    };
    // Built before the resolver, which checks that its keys have arrived.
    let sds_ticketer = ctx
        .sds_session_ticket_keys
        .as_ref()
        .filter(|_| {
            ctx.xds_session_ticket_keys.is_none() && !ctx.disable_stateless_session_resumption
        })
        .map(|source| {
            Arc::new(super::sds_tickets::SdsTicketer::file(
                source,
                &ctx.session_ticket_keys,
                ctx.session_timeout,
            ))
        });
    let mut resolver = CertResolver::new(ctx, stats.clone());
    resolver.awaited = AwaitedSecrets {
        validation: awaited_validation,
        ticket_keys: sds_ticketer.as_ref().and_then(|t| t.file_slot()),
    };
    let resolver = Arc::new(resolver);
    let chain_resolver = Arc::clone(&resolver);
    secret_providers.extend(resolver.xds.iter().cloned());
    let rotates = !ctx.sds_certificates.is_empty()
        || !ctx.xds_certificates.is_empty()
        || rotating_validation.is_some();
    let current = rotates.then(|| current_state(&resolver, rotating_validation));
    let mut config = builder
        .with_client_cert_verifier(Arc::clone(&verifier))
        .with_cert_resolver(resolver);
    config.alpn_protocols = ctx.alpn_protocols.clone();
    if ctx.disable_stateful_session_resumption {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    }
    if !ctx.disable_stateless_session_resumption {
        config.ticketer = if let Some(secret) = &ctx.xds_session_ticket_keys {
            let provider = super::sds_xds::provider(secret);
            secret_providers.push(provider.clone());
            Arc::new(super::sds_tickets::SdsTicketer::xds(
                provider,
                ctx.session_timeout,
            ))
        } else if let Some(ticketer) = sds_ticketer {
            ticketer
        } else if ctx.session_ticket_keys.is_empty() {
            // Generated keys, continued from the parent generation for an unchanged
            // context (and shared by rebuilds of this one).
            super::tickets::registry()
                .ticketer_for(ctx.config_digest, ctx.session_timeout)
                .ok_or_else(|| TlsError::Params(rustls::Error::FailedToGetRandomBytes))?
        } else {
            Arc::new(super::tickets::ConfiguredTicketer::new(
                &ctx.session_ticket_keys,
                ctx.session_timeout,
            ))
        };
    }
    let local = ctx
        .certificates
        .first()
        .and_then(|c| c.certified_key.cert.first())
        .and_then(PeerCertificate::parse);
    let local_subject = local.as_ref().map(|p| Arc::from(p.subject.as_str()));
    let local_dns_san = local
        .as_ref()
        .filter(|p| !p.dns_sans.is_empty())
        .map(|p| Arc::from(p.dns_sans.join(",")));
    let local_uri_san = local.and_then(|p| p.uri_sans.into_iter().next().map(Arc::from));
    super::certs::register(ctx, current, stats);
    let mut sds_update_counts = sds_update_counts;
    sds_update_counts.extend(super::sds_xds::count_updates(
        &secret_providers,
        &stats.factory.ssl_context_update_by_sds,
    ));
    let config_without_alpn = (!config.alpn_protocols.is_empty()).then(|| {
        let mut without = config.clone();
        without.alpn_protocols = Vec::new();
        Arc::new(without)
    });
    let config = Arc::new(config);
    let tls12_order = super::cipher_order::Tls12Order::new(
        provider,
        &ctx.params.cipher_groups,
        &ctx.params.versions,
        verifier,
        Arc::clone(&config),
    );
    Ok(ServerTls {
        tls12_order,
        tls13_enabled: ctx.params.versions.contains(&&rustls::version::TLS13),
        config,
        config_without_alpn,
        context: ctx.clone(),
        local_uri_san,
        local_subject,
        local_dns_san,
        secret_providers,
        _sds_update_counts: sds_update_counts,
        resolver: chain_resolver,
    })
}

/// Reads what `resolver` serves and the validation context `validation` holds now (for
/// /certs), while the chain lives.
fn current_state(
    resolver: &Arc<CertResolver>,
    validation: Option<std::sync::Weak<ArcSwap<VerifierState>>>,
) -> super::certs::CurrentFn {
    let resolver = Arc::downgrade(resolver);
    Box::new(move || {
        let resolver = resolver.upgrade()?;
        let mut certificates: Vec<Arc<CertEntry>> =
            resolver.slots.iter().map(|s| s.load_full()).collect();
        let mut secret_names = resolver.slot_secrets.clone();
        for provider in &resolver.xds {
            if let Some(cert) = provider.certificate() {
                certificates.push(cert);
                secret_names.push(Some(provider.name().to_string()));
            }
        }
        let validation = validation
            .as_ref()
            .and_then(std::sync::Weak::upgrade)
            .map(|state| state.load().context.clone());
        Some(super::certs::Current {
            certificates,
            validation,
            secret_names,
        })
    })
}

/// The root store of a validation context's `trusted_ca` certificates.
pub(crate) fn trusted_roots(
    trusted_ca: &[CertificateDer<'static>],
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for ca in trusted_ca {
        roots
            .add(ca.clone())
            .map_err(|e| TlsError::Verifier(format!("trusted_ca: {e}")))?;
    }
    Ok(roots)
}

/// Client certificate verification: the chain against `trusted_ca` (and CRLs) by
/// webpki, then `match_typed_subject_alt_names`, counting failures as Envoy does. The
/// validation context is loaded per handshake: a `validation_context_sds_secret_config`
/// file swaps it.
struct ClientVerifier {
    state: Arc<ArcSwap<VerifierState>>,
    /// CA names offered to clients (as Envoy) when the state has none of its own.
    hints: Vec<DistinguishedName>,
    required: bool,
    stats: Arc<SslStats>,
}

/// A validation context with its webpki verifier.
pub(super) struct VerifierState {
    inner: Arc<dyn ClientCertVerifier>,
    /// Whether `inner` checks the chain: false for a context without `trusted_ca`
    /// (only its pins are checked, as Envoy).
    check_chain: bool,
    pub(super) context: Arc<ValidationContext>,
    /// The CA names of an SDS state, which rotate with it. rustls borrows them from the
    /// verifier for the handshake, longer than a load of the swapped state lives, so each
    /// SDS state's are leaked: a few hundred bytes per accepted CA file update.
    sds_hints: Option<&'static [DistinguishedName]>,
}

impl std::fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientVerifier").finish_non_exhaustive()
    }
}

fn verifier_registry() -> &'static super::sds::Registry<VerifierState> {
    static REGISTRY: std::sync::OnceLock<super::sds::Registry<VerifierState>> =
        std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// A validation-context secret file's new state (an SDS update).
fn verifier_state_from(
    resp: &DiscoveryResponse,
    source: &SdsFileSource,
) -> Result<VerifierState, String> {
    let v = baton_config::sds::validation_context_from(resp, source).map_err(|e| e.to_string())?;
    if v.trusted_ca.is_empty() && !v.has_pins() {
        return Err(format!(
            "{}: the validation context has no trusted_ca and no certificate pins",
            source.path.display()
        ));
    }
    VerifierState::new(&v)
        .map(VerifierState::with_fixed_hints)
        .map_err(|e| format!("{}: {e}", source.path.display()))
}

/// Keeps `state` on the validation context `provider` holds (a control plane's), merged
/// onto `default` for a `combined_validation_context`: now, and after every accepted
/// update, until the chain or the provider is gone.
fn follow_validation(
    provider: &Arc<SecretProvider>,
    default: Option<Vec<u8>>,
    state: &Arc<ArcSwap<VerifierState>>,
) {
    fn apply(provider: &SecretProvider, default: Option<&[u8]>, state: &ArcSwap<VerifierState>) {
        let new = match provider.validation_for(default) {
            None => return,
            Some(Ok(v)) => VerifierState::new(&v).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e),
        };
        match new {
            Ok(new) => state.store(Arc::new(new.with_fixed_hints())),
            Err(e) => {
                tracing::warn!(secret = %provider.name(), error = %e, "SDS validation context unusable; keeping the current one")
            }
        }
    }
    apply(provider, default.as_deref(), state);
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(secret = %provider.name(), "no runtime to follow the SDS validation context");
        return;
    };
    let mut updates = provider.updates();
    let (provider, state) = (Arc::downgrade(provider), Arc::downgrade(state));
    handle.spawn(async move {
        while updates.changed().await.is_ok() {
            let (Some(p), Some(s)) = (provider.upgrade(), state.upgrade()) else {
                return;
            };
            apply(&p, default.as_deref(), &s);
        }
    });
}

/// Trusts no CA: refuses every chain (a validation context not delivered yet), and
/// checks handshake signatures (for a context that only pins certificates, whose chain
/// is not checked).
#[derive(Debug)]
struct NoRoots;

impl ClientCertVerifier for NoRoots {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &super::provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &super::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        super::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl VerifierState {
    /// Before a control plane's validation context arrived: nothing is trusted.
    fn awaiting() -> Self {
        Self {
            inner: Arc::new(NoRoots),
            check_chain: true,
            context: Arc::new(ValidationContext {
                trusted_ca: Vec::new(),
                trusted_ca_source: String::new(),
                san_matchers: Vec::new(),
                crls: Vec::new(),
                allow_expired_certificate: false,
                accept_untrusted: false,
                cert_hashes: Vec::new(),
                spki_hashes: Vec::new(),
                awaiting: true,
                static_secret: None,
            }),
            sds_hints: Some(&[]),
        }
    }

    fn new(v: &Arc<ValidationContext>) -> Result<Self, TlsError> {
        if v.trusted_ca.is_empty() {
            return Ok(Self {
                inner: Arc::new(NoRoots),
                check_chain: false,
                context: v.clone(),
                sds_hints: None,
            });
        }
        let roots = trusted_roots(&v.trusted_ca)?;
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::provider())
                .with_crls(v.crls.iter().cloned())
                .allow_unknown_revocation_status();
        // Envoy asks every client for a certificate when a CA is configured, and only
        // refuses a connection without one when it is required.
        builder = builder.allow_unauthenticated();
        let inner = builder
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(Self {
            inner,
            check_chain: true,
            context: v.clone(),
            sds_hints: None,
        })
    }

    /// With its CA names fixed for the life of the process (an SDS state).
    fn with_fixed_hints(self) -> Self {
        let hints: &'static [DistinguishedName] =
            Box::leak(self.inner.root_hint_subjects().to_vec().into_boxed_slice());
        Self {
            sds_hints: Some(hints),
            ..self
        }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// Required as configured, or by pins: Envoy refuses a client without a
    /// certificate when `verify_certificate_hash` or `_spki` is set (measured on 1.40).
    fn client_auth_mandatory(&self) -> bool {
        self.required || self.state.load().context.has_pins()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match self.state.load().sds_hints {
            Some(hints) => hints,
            None => &self.hints,
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let state = self.state.load();
        if state.check_chain && !state.context.accept_untrusted {
            match state
                .inner
                .verify_client_cert(end_entity, intermediates, now)
            {
                Ok(_) => {}
                Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Expired))
                    if state.context.allow_expired_certificate => {}
                Err(e) => {
                    self.stats.fail_verify_error.inc();
                    return Err(e);
                }
            }
        }
        if !state.context.san_matchers.is_empty() {
            let ok = sans_match(&state.context.san_matchers, end_entity);
            if !ok {
                self.stats.fail_verify_san.inc();
                // `Other` is rustls' `certificate_unknown` alert, Envoy's for a SAN
                // mismatch (measured on 1.40; `NotValidForName` would be
                // `bad_certificate`).
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                        std::io::Error::other("no subject alternative name matched"),
                    ))),
                ));
            }
        }
        if !pins_match(&state.context, end_entity) {
            self.stats.fail_verify_cert_hash.inc();
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.state
            .load()
            .inner
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.state
            .load()
            .inner
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.state.load().inner.supported_verify_schemes()
    }
}

/// Reads a connection's first TLS record(s) until its ClientHello is complete (or
/// malformed, or the peer is gone), writing nothing, and drops the connection: a
/// context without its secrets closes as Envoy's does, without an alert.
pub async fn read_client_hello(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut acceptor = rustls::server::Acceptor::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if acceptor.read_tls(&mut &buf[..n]).is_err() {
            return;
        }
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(_)) | Err(_) => return,
        }
    }
}
