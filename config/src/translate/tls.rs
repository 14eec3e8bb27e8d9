//! `envoy.transport_sockets.tls`: `DownstreamTlsContext` on filter chains and
//! `UpstreamTlsContext` on clusters, read into [`model::DownstreamTlsContext`] /
//! [`model::UpstreamTlsContext`]. Certificates and keys are read and parsed here, and a
//! key that does not match its certificate is a config error naming both sources.
//! Cipher suites and curves map to the selected provider's ([`crate::crypto`]); a name
//! rustls lacks is an error.

use std::sync::Arc;
use std::time::Duration;

use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::extensions::transport_sockets::tls::v3 as tls_pb;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::sds::SecretRef;
use super::tls_params::params;
use super::{any_type, data_source, decode_any, duration, string_matcher};
use crate::error::{ConfigError, Result};
use crate::model;

const RAW_BUFFER: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
const DOWNSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const UPSTREAM_TLS: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

/// What a `transport_socket` is.
enum SocketKind<'a> {
    RawBuffer,
    Tls(&'a prost_types::Any),
}

fn socket_kind<'a>(
    socket: &'a core_pb::TransportSocket,
    tls_type: &str,
    path: &str,
) -> Result<SocketKind<'a>> {
    use core_pb::transport_socket::ConfigType;
    let any = socket
        .config_type
        .as_ref()
        .map(|ConfigType::TypedConfig(any)| any);
    let type_name = any.map(any_type).unwrap_or("");
    match (type_name, any) {
        (RAW_BUFFER, _) => Ok(SocketKind::RawBuffer),
        ("", _) if socket.name == "envoy.transport_sockets.raw_buffer" => {
            Ok(SocketKind::RawBuffer)
        }
        (t, Some(any)) if t == tls_type => Ok(SocketKind::Tls(any)),
        ("", _) if socket.name == "envoy.transport_sockets.tls" => Err(ConfigError::at(
            format!("{path}.typed_config"),
            format!("required: a {tls_type}"),
        )),
        (other, _) => Err(ConfigError::at(
            path,
            format!(
                "transport socket '{}' is not supported by Baton yet (supported: raw_buffer, {tls_type})",
                if other.is_empty() { &socket.name } else { other }
            ),
        )),
    }
}

/// A filter chain's `transport_socket`: `None` for plain text.
pub(crate) fn downstream(
    socket: &core_pb::TransportSocket,
    path: &str,
    env: &super::Env,
) -> Result<Option<Arc<model::DownstreamTlsContext>>> {
    let any = match socket_kind(socket, DOWNSTREAM_TLS, path)? {
        SocketKind::RawBuffer => return Ok(None),
        SocketKind::Tls(any) => any,
    };
    let path = format!("{path}.typed_config");
    let proto: tls_pb::DownstreamTlsContext = decode_any(any, DOWNSTREAM_TLS, &path)?;
    let common = proto.common_tls_context.unwrap_or_default();
    let cpath = format!("{path}.common_tls_context");
    // `require_sni` is accepted and has no effect, as in Envoy 1.40, which does not
    // implement it (measured: a handshake without SNI is served).
    use tls_pb::downstream_tls_context::OcspStaplePolicy as Policy;
    let ocsp_staple_policy = match Policy::try_from(proto.ocsp_staple_policy) {
        Ok(Policy::LenientStapling) => model::OcspStaplePolicy::Lenient,
        Ok(Policy::StrictStapling) => model::OcspStaplePolicy::Strict,
        Ok(Policy::MustStaple) => model::OcspStaplePolicy::MustStaple,
        Err(_) => {
            return Err(ConfigError::at(
                format!("{path}.ocsp_staple_policy"),
                "unknown enum value",
            ))
        }
    };
    let mut certificates = certificates(&common, &cpath)?;
    let mut sds_certificates = Vec::new();
    let mut xds_certificates = Vec::new();
    for (i, sds) in common.tls_certificate_sds_secret_configs.iter().enumerate() {
        let spath = format!("{cpath}.tls_certificate_sds_secret_configs[{i}]");
        match super::sds::secret_ref(sds, &spath, env)? {
            SecretRef::File(source) => {
                let cert = super::sds::read_certificate_at_load(&source)?;
                sds_certificates.push(model::SdsCertificate {
                    slot: certificates.len(),
                    source,
                });
                certificates.push(cert);
            }
            SecretRef::Static(secret, secret_path) => {
                let mut cert = super::sds::secret_certificate(&secret, &secret_path)?;
                cert.static_secret = Some(secret.name.clone());
                certificates.push(cert);
            }
            SecretRef::Xds(source) => xds_certificates.push(source),
        }
    }
    if certificates.is_empty() && xds_certificates.is_empty() {
        return Err(ConfigError::at(
            format!("{cpath}.tls_certificates"),
            "a server TLS context needs at least one certificate",
        ));
    }
    if ocsp_staple_policy == model::OcspStaplePolicy::MustStaple {
        if let Some(i) = certificates
            .iter()
            .position(|c| c.certified_key.ocsp.is_none() && !c.is_awaiting())
        {
            return Err(ConfigError::at(
                format!("{cpath}.tls_certificates[{i}]"),
                "Required OCSP response is missing from TLS context",
            ));
        }
    }
    let (validation, sds_validation, xds_validation) =
        sds_validation_context(&common, &cpath, env)?;
    let require_client_certificate = proto.require_client_certificate.unwrap_or(false);
    if require_client_certificate
        && xds_validation.is_none()
        && validation
            .as_ref()
            .is_none_or(|v| !v.awaiting && v.trusted_ca.is_empty() && !v.has_pins())
    {
        return Err(ConfigError::at(
            format!("{path}.require_client_certificate"),
            "requires a validation_context with trusted_ca, verify_certificate_hash or verify_certificate_spki",
        ));
    }
    use tls_pb::downstream_tls_context::SessionTicketKeysType;
    let mut sds_session_ticket_keys = None;
    let mut xds_session_ticket_keys = None;
    let (session_ticket_keys, disable_stateless) = match &proto.session_ticket_keys_type {
        Some(SessionTicketKeysType::SessionTicketKeys(keys)) => (
            ticket_keys(keys, &format!("{path}.session_ticket_keys"))?,
            false,
        ),
        Some(SessionTicketKeysType::SessionTicketKeysSdsSecretConfig(sds)) => {
            let spath = format!("{path}.session_ticket_keys_sds_secret_config");
            match super::sds::secret_ref(sds, &spath, env)? {
                SecretRef::File(source) => {
                    let keys = super::sds::read_ticket_keys_at_load(&source)?;
                    sds_session_ticket_keys = Some(source);
                    (keys, false)
                }
                SecretRef::Static(secret, secret_path) => (
                    super::sds::secret_ticket_keys(&secret, &secret_path)?,
                    false,
                ),
                SecretRef::Xds(source) => {
                    xds_session_ticket_keys = Some(source);
                    (Vec::new(), false)
                }
            }
        }
        Some(SessionTicketKeysType::DisableStatelessSessionResumption(d)) => (Vec::new(), *d),
        None => (Vec::new(), false),
    };
    let session_timeout = duration(
        proto.session_timeout.as_ref(),
        &format!("{path}.session_timeout"),
    )?
    .unwrap_or(Duration::from_secs(7200));
    let config_digest = context_digest(&any.value, &certificates);
    Ok(Some(Arc::new(model::DownstreamTlsContext {
        certificates,
        sds_certificates,
        sds_validation,
        xds_certificates,
        xds_validation,
        params: params(
            common.tls_params.as_ref(),
            true,
            &format!("{cpath}.tls_params"),
        )?,
        alpn_protocols: alpn(&common),
        require_client_certificate,
        validation,
        session_ticket_keys,
        sds_session_ticket_keys,
        xds_session_ticket_keys,
        disable_stateless_session_resumption: disable_stateless,
        disable_stateful_session_resumption: proto.disable_stateful_session_resumption,
        session_timeout,
        ocsp_staple_policy,
        config_digest,
    })))
}

/// Digest of a context: its encoded proto, then each certificate chain it resolved to
/// (a file's content may change under an unchanged config).
fn context_digest(encoded: &[u8], certificates: &[model::TlsCertificate]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(encoded.len() as u64).to_be_bytes());
    ctx.update(encoded);
    for cert in certificates {
        for der in &cert.certified_key.cert {
            ctx.update(&(der.len() as u64).to_be_bytes());
            ctx.update(der);
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A cluster's `transport_socket`: `None` for plain text.
pub(crate) fn upstream(
    socket: &core_pb::TransportSocket,
    path: &str,
    env: &super::Env,
) -> Result<Option<Arc<model::UpstreamTlsContext>>> {
    let any = match socket_kind(socket, UPSTREAM_TLS, path)? {
        SocketKind::RawBuffer => return Ok(None),
        SocketKind::Tls(any) => any,
    };
    let path = format!("{path}.typed_config");
    let proto: tls_pb::UpstreamTlsContext = decode_any(any, UPSTREAM_TLS, &path)?;
    let common = proto.common_tls_context.unwrap_or_default();
    let cpath = format!("{path}.common_tls_context");
    if proto.allow_renegotiation {
        return Err(ConfigError::unsupported(format!(
            "{path}.allow_renegotiation"
        )));
    }
    let mut certificates = certificates(&common, &cpath)?;
    let mut sds_certificate = None;
    let mut xds_certificate = None;
    for (i, sds) in common.tls_certificate_sds_secret_configs.iter().enumerate() {
        let spath = format!("{cpath}.tls_certificate_sds_secret_configs[{i}]");
        match super::sds::secret_ref(sds, &spath, env)? {
            SecretRef::File(source) => {
                certificates.push(super::sds::read_certificate_at_load(&source)?);
                sds_certificate = Some(source);
            }
            SecretRef::Static(secret, secret_path) => {
                let mut cert = super::sds::secret_certificate(&secret, &secret_path)?;
                cert.static_secret = Some(secret.name.clone());
                certificates.push(cert);
            }
            SecretRef::Xds(source) => xds_certificate = Some(source),
        }
    }
    let sds_count = common.tls_certificate_sds_secret_configs.len();
    if certificates.len() + usize::from(xds_certificate.is_some()) > 1 || sds_count > 1 {
        return Err(ConfigError::at(
            format!("{cpath}.tls_certificates"),
            "an upstream TLS context takes at most one client certificate",
        ));
    }
    let (validation, sds_validation, xds_validation) =
        sds_validation_context(&common, &cpath, env)?;
    Ok(Some(Arc::new(model::UpstreamTlsContext {
        certificates,
        sds_certificate,
        xds_certificate,
        sds_validation,
        xds_validation,
        params: params(
            common.tls_params.as_ref(),
            false,
            &format!("{cpath}.tls_params"),
        )?,
        alpn_protocols: alpn(&common),
        validation,
        sni: (!proto.sni.is_empty()).then(|| proto.sni.clone()),
        auto_host_sni: proto.auto_host_sni,
        auto_sni_san_validation: proto.auto_sni_san_validation,
    })))
}

/// A context's validation context: inline, or from a `validation_context_sds_secret_config`
/// (static, a file as first read, or a control plane's, which arrives later), or a
/// `combined_validation_context` (its `default_validation_context` with such a secret
/// merged onto it, now and on every rotation).
#[allow(clippy::type_complexity)]
fn sds_validation_context(
    common: &tls_pb::CommonTlsContext,
    cpath: &str,
    env: &super::Env,
) -> Result<(
    Option<Arc<model::ValidationContext>>,
    Option<model::SdsFileSource>,
    Option<model::XdsSecretSource>,
)> {
    use prost::Message;
    use tls_pb::common_tls_context::ValidationContextType;
    let (sds, spath, default) = match &common.validation_context_type {
        Some(ValidationContextType::ValidationContextSdsSecretConfig(sds)) => (
            sds,
            format!("{cpath}.validation_context_sds_secret_config"),
            None,
        ),
        Some(ValidationContextType::CombinedValidationContext(combined)) => {
            let path = format!("{cpath}.combined_validation_context");
            let Some(sds) = &combined.validation_context_sds_secret_config else {
                return Err(ConfigError::at(
                    format!("{path}.validation_context_sds_secret_config"),
                    "required",
                ));
            };
            let default = combined
                .default_validation_context
                .clone()
                .unwrap_or_default();
            // Checked on its own too, so a bad default is an error naming it.
            certificate_validation_context(
                &default,
                &format!("{path}.default_validation_context"),
            )?;
            (
                sds,
                format!("{path}.validation_context_sds_secret_config"),
                Some(default.encode_to_vec()),
            )
        }
        _ => return Ok((validation_context(common, cpath)?, None, None)),
    };
    match super::sds::secret_ref(sds, &spath, env)? {
        SecretRef::File(mut source) => {
            source.default_validation = default;
            let v = super::sds::read_validation_context_at_load(&source)?;
            Ok((Some(v), Some(source), None))
        }
        SecretRef::Static(secret, secret_path) => {
            let mut v =
                super::sds::secret_validation_context(&secret, default.as_deref(), &secret_path)?;
            // Just built, so not shared yet.
            if let Some(v) = Arc::get_mut(&mut v) {
                v.static_secret = Some(secret.name.clone());
            }
            Ok((Some(v), None, None))
        }
        SecretRef::Xds(mut source) => {
            source.default_validation = default;
            Ok((None, None, Some(source)))
        }
    }
}

fn alpn(common: &tls_pb::CommonTlsContext) -> Vec<Vec<u8>> {
    common
        .alpn_protocols
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect()
}

/// Where a `DataSource` comes from, for error messages.
fn source_name(source: Option<&core_pb::DataSource>) -> String {
    use core_pb::data_source::Specifier;
    match source.and_then(|s| s.specifier.as_ref()) {
        Some(Specifier::Filename(f)) => f.clone(),
        Some(Specifier::EnvironmentVariable(v)) => format!("${v}"),
        Some(_) => "<inline>".to_string(),
        None => "<missing>".to_string(),
    }
}

fn certificates(
    common: &tls_pb::CommonTlsContext,
    path: &str,
) -> Result<Vec<model::TlsCertificate>> {
    common
        .tls_certificates
        .iter()
        .enumerate()
        .map(|(i, c)| certificate(c, &format!("{path}.tls_certificates[{i}]")))
        .collect()
}

pub(crate) fn certificate(c: &tls_pb::TlsCertificate, path: &str) -> Result<model::TlsCertificate> {
    let chain_path = format!("{path}.certificate_chain");
    let key_path = format!("{path}.private_key");
    let chain_name = source_name(c.certificate_chain.as_ref());
    let key_name = source_name(c.private_key.as_ref());
    let chain_pem = match &c.certificate_chain {
        Some(ds) => data_source(ds, &chain_path)?,
        None => return Err(ConfigError::at(chain_path, "required")),
    };
    let key_pem = match &c.private_key {
        Some(ds) => data_source(ds, &key_path)?,
        None => return Err(ConfigError::at(key_path, "required")),
    };
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            ConfigError::at(
                &chain_path,
                format!("cannot parse certificate chain '{chain_name}': {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(ConfigError::at(
            &chain_path,
            format!("no PEM certificate in '{chain_name}'"),
        ));
    }
    let leaf = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| {
            ConfigError::at(
                &chain_path,
                format!("cannot parse certificate '{chain_name}': {e}"),
            )
        })?
        .1;
    let dns_names = leaf_dns_names(&leaf);
    let leaf_serial = super::ocsp::strip_leading_zeros(leaf.raw_serial()).to_vec();
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        ConfigError::at(
            &key_path,
            format!("cannot parse private key '{key_name}': {e}"),
        )
    })?;
    let provider = crate::crypto::default_provider();
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        ConfigError::at(
            &key_path,
            format!("unsupported private key '{key_name}': {e}"),
        )
    })?;
    let mut certified_key = CertifiedKey::new(chain, signing_key);
    match certified_key.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(ConfigError::at(
                path,
                format!("private key '{key_name}' does not match certificate '{chain_name}'"),
            ))
        }
    }
    let mut ocsp_next_update = None;
    let mut ocsp_this_update = None;
    if let Some(ds) = &c.ocsp_staple {
        let staple_path = format!("{path}.ocsp_staple");
        let der = data_source(ds, &staple_path)?;
        let summary =
            super::ocsp::parse(&der).map_err(|e| ConfigError::at(&staple_path, e.to_string()))?;
        if summary.serial != leaf_serial {
            return Err(ConfigError::at(
                staple_path,
                "OCSP response does not match its TLS certificate",
            ));
        }
        ocsp_next_update = summary.next_update;
        ocsp_this_update = Some(summary.this_update);
        certified_key.ocsp = Some(der.to_vec());
    }
    Ok(model::TlsCertificate {
        certified_key: Arc::new(certified_key),
        dns_names,
        chain_source: chain_name,
        ocsp_this_update,
        ocsp_next_update,
        static_secret: None,
    })
}

/// DNS SANs, or the subject CN when the certificate has none (as BoringSSL matches).
fn leaf_dns_names(leaf: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let mut names: Vec<String> = match leaf.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        if let Some(cn) = leaf
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
    }
    names
}

fn validation_context(
    common: &tls_pb::CommonTlsContext,
    path: &str,
) -> Result<Option<Arc<model::ValidationContext>>> {
    use tls_pb::common_tls_context::ValidationContextType;
    let (v, vpath) = match &common.validation_context_type {
        None => return Ok(None),
        Some(ValidationContextType::ValidationContext(v)) => {
            (v, format!("{path}.validation_context"))
        }
        Some(ValidationContextType::CombinedValidationContext(_)) => {
            return Err(ConfigError::unsupported(format!(
                "{path}.combined_validation_context"
            )))
        }
        Some(ValidationContextType::ValidationContextSdsSecretConfig(_)) => {
            return Err(ConfigError::unsupported(format!(
                "{path}.validation_context_sds_secret_config"
            )))
        }
        Some(_) => {
            return Err(ConfigError::unsupported(format!(
                "{path}.validation_context_certificate_provider"
            )))
        }
    };
    certificate_validation_context(v, &vpath).map(Some)
}

/// One `CertificateValidationContext` (inline, or an SDS secret's).
pub(crate) fn certificate_validation_context(
    v: &tls_pb::CertificateValidationContext,
    vpath: &str,
) -> Result<Arc<model::ValidationContext>> {
    let trusted_ca_source = source_name(v.trusted_ca.as_ref());
    let trusted_ca = match &v.trusted_ca {
        Some(ds) => {
            let tpath = format!("{vpath}.trusted_ca");
            let name = source_name(Some(ds));
            let pem = data_source(ds, &tpath)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| {
                    ConfigError::at(
                        &tpath,
                        format!("cannot parse CA certificates '{name}': {e}"),
                    )
                })?;
            if certs.is_empty() {
                return Err(ConfigError::at(
                    tpath,
                    format!("no PEM certificate in '{name}'"),
                ));
            }
            certs
        }
        None => Vec::new(),
    };
    let crls = match &v.crl {
        Some(ds) => {
            let cpath = format!("{vpath}.crl");
            let name = source_name(Some(ds));
            let pem = data_source(ds, &cpath)?;
            let crls = CertificateRevocationListDer::pem_slice_iter(&pem)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| ConfigError::at(&cpath, format!("cannot parse CRL '{name}': {e}")))?;
            if crls.is_empty() {
                return Err(ConfigError::at(cpath, format!("no PEM CRL in '{name}'")));
            }
            if trusted_ca.is_empty() {
                return Err(ConfigError::at(
                    cpath,
                    "a CRL needs trusted_ca to verify against",
                ));
            }
            crls
        }
        None => Vec::new(),
    };
    let mut san_matchers = Vec::with_capacity(v.match_typed_subject_alt_names.len());
    for (i, m) in v.match_typed_subject_alt_names.iter().enumerate() {
        let mpath = format!("{vpath}.match_typed_subject_alt_names[{i}]");
        use tls_pb::subject_alt_name_matcher::SanType as PbSan;
        let san_type = match PbSan::try_from(m.san_type) {
            Ok(PbSan::Email) => model::SanType::Email,
            Ok(PbSan::Dns) => model::SanType::Dns,
            Ok(PbSan::Uri) => model::SanType::Uri,
            Ok(PbSan::IpAddress) => model::SanType::IpAddress,
            Ok(PbSan::OtherName) => {
                return Err(ConfigError::at(
                    format!("{mpath}.san_type"),
                    "OTHER_NAME is not supported by Baton yet",
                ))
            }
            _ => {
                return Err(ConfigError::at(
                    format!("{mpath}.san_type"),
                    "must be one of EMAIL, DNS, URI, IP_ADDRESS",
                ))
            }
        };
        let Some(matcher) = &m.matcher else {
            return Err(ConfigError::at(format!("{mpath}.matcher"), "required"));
        };
        san_matchers.push(model::SanMatcher {
            san_type,
            matcher: string_matcher(matcher, &format!("{mpath}.matcher"))?,
        });
    }
    use tls_pb::certificate_validation_context::TrustChainVerification;
    let accept_untrusted =
        v.trust_chain_verification == TrustChainVerification::AcceptUntrusted as i32;
    Ok(Arc::new(model::ValidationContext {
        trusted_ca,
        trusted_ca_source,
        san_matchers,
        crls,
        allow_expired_certificate: v.allow_expired_certificate,
        accept_untrusted,
        cert_hashes: super::tls_pins::cert_hashes(&v.verify_certificate_hash, vpath)?,
        spki_hashes: super::tls_pins::spki_hashes(&v.verify_certificate_spki, vpath)?,
        awaiting: false,
        static_secret: None,
    }))
}

pub(crate) fn ticket_keys(
    keys: &tls_pb::TlsSessionTicketKeys,
    path: &str,
) -> Result<Vec<[u8; 80]>> {
    if keys.keys.is_empty() {
        return Err(ConfigError::at(
            format!("{path}.keys"),
            "at least one key is required",
        ));
    }
    keys.keys
        .iter()
        .enumerate()
        .map(|(i, ds)| {
            let kpath = format!("{path}.keys[{i}]");
            let bytes = data_source(ds, &kpath)?;
            <[u8; 80]>::try_from(bytes.as_ref()).map_err(|_| {
                ConfigError::at(
                    kpath,
                    format!(
                        "session ticket key '{}' must be 80 bytes, it is {}",
                        source_name(Some(ds)),
                        bytes.len()
                    ),
                )
            })
        })
        .collect()
}
