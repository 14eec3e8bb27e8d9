//! SDS: where a `tls_certificate_sds_secret_configs` entry or a
//! `validation_context_sds_secret_config` takes its secret from ([`secret_ref`]).
//! - No `sds_config`: a `static_resources.secrets` entry, resolved here.
//! - A `path_config_source`: a `DiscoveryResponse` file holding the one
//!   `envoy.extensions.transport_sockets.tls.v3.Secret` named by the entry, as Envoy
//!   reads it; read here at load, and again by the proxy's file watcher.
//! - `ads: {}` or an `api_config_source`: a control plane delivers it; the proxy
//!   subscribes and checks each delivery with [`decode_secret`] and
//!   [`secret_certificate`] / [`secret_validation_context`].

use std::path::PathBuf;

use baton_proto::pb::envoy::config::core::v3 as core_pb;
use baton_proto::pb::envoy::extensions::transport_sockets::tls::v3 as tls_pb;
use baton_proto::pb::envoy::service::discovery::v3::DiscoveryResponse;
use prost::Message;

use super::required;
use crate::error::{ConfigError, Result};
use crate::model;

/// `type_url` of an SDS resource.
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// Where one `SdsSecretConfig` takes its secret from.
pub(crate) enum SecretRef {
    /// A `path_config_source` file (read here, then watched by the proxy).
    File(model::SdsFileSource),
    /// A control plane (`ads: {}` or an `api_config_source`).
    Xds(model::XdsSecretSource),
    /// `static_resources.secrets` (no `sds_config`): the secret and its path there.
    Static(Box<tls_pb::Secret>, String),
}

/// The source of one `SdsSecretConfig`: a static secret when it has no `sds_config`
/// (an unknown name is Envoy's `Unknown static secret` error), else a file or a
/// control plane.
pub(crate) fn secret_ref(
    config: &tls_pb::SdsSecretConfig,
    path: &str,
    env: &super::Env,
) -> Result<SecretRef> {
    use core_pb::config_source::ConfigSourceSpecifier as Spec;
    let secret_name = required(&config.name, &format!("{path}.name"))?.to_string();
    let cs_path = format!("{path}.sds_config");
    let Some(cs) = &config.sds_config else {
        return match env.static_secrets.get(&secret_name) {
            Some((secret_path, secret)) => Ok(SecretRef::Static(
                Box::new(secret.clone()),
                secret_path.clone(),
            )),
            None => Err(ConfigError::at(
                format!("{path}.name"),
                format!("Unknown static secret: {secret_name}"),
            )),
        };
    };
    let (file, dir) = match &cs.config_source_specifier {
        Some(Spec::PathConfigSource(p)) => (
            p.path.clone(),
            p.watched_directory.as_ref().map(|d| d.path.clone()),
        ),
        Some(Spec::Path(p)) => (p.clone(), None),
        Some(Spec::Ads(_) | Spec::ApiConfigSource(_)) => {
            let source = super::xds::config_source(cs, &cs_path, env)?;
            return Ok(SecretRef::Xds(model::XdsSecretSource {
                secret_name,
                source,
                default_validation: None,
            }));
        }
        _ => {
            return Err(ConfigError::at(
                cs_path,
                "SDS needs a path_config_source, ads or an api_config_source",
            ))
        }
    };
    let file_path = format!("{cs_path}.path_config_source.path");
    let file = required(&file, &file_path)?;
    let watched_directory = match dir {
        Some(d) => {
            let dpath = format!("{cs_path}.path_config_source.watched_directory.path");
            let d = PathBuf::from(required(&d, &dpath)?);
            if !d.is_dir() {
                return Err(ConfigError::at(
                    dpath,
                    format!("'{}' is not a directory", d.display()),
                ));
            }
            Some(d)
        }
        None => None,
    };
    Ok(SecretRef::File(model::SdsFileSource {
        secret_name,
        path: PathBuf::from(file),
        watched_directory,
        default_validation: None,
    }))
}

/// The certificate of a `Secret` (static, or delivered by a control plane); `path`
/// names the secret in errors.
pub fn secret_certificate(secret: &tls_pb::Secret, path: &str) -> Result<model::TlsCertificate> {
    match &secret.r#type {
        Some(tls_pb::secret::Type::TlsCertificate(cert)) => {
            super::tls::certificate(cert, &format!("{path}.tls_certificate"))
        }
        _ => Err(ConfigError::at(
            path,
            format!("secret '{}' is not a tls_certificate", secret.name),
        )),
    }
}

/// The `notAfter` (Unix seconds) of a `tls_certificate` secret's leaf certificate,
/// read even when the secret is refused (a key not matching its certificate, say):
/// Envoy 1.40's expiration gauge then shows the refused certificate's expiry. `None`
/// for other secrets and for chains that cannot be read or parsed.
pub fn secret_certificate_not_after(secret: &tls_pb::Secret) -> Option<i64> {
    let Some(tls_pb::secret::Type::TlsCertificate(cert)) = &secret.r#type else {
        return None;
    };
    let pem = super::data_source(cert.certificate_chain.as_ref()?, "").ok()?;
    use rustls::pki_types::pem::PemObject;
    let leaf = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .next()?
        .ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

/// The validation context of a `Secret` (static, or delivered by a control plane),
/// merged onto `default` (a `combined_validation_context`'s encoded
/// `default_validation_context`) when there is one.
pub fn secret_validation_context(
    secret: &tls_pb::Secret,
    default: Option<&[u8]>,
    path: &str,
) -> Result<std::sync::Arc<model::ValidationContext>> {
    match &secret.r#type {
        Some(tls_pb::secret::Type::ValidationContext(v)) => {
            let vpath = format!("{path}.validation_context");
            let merged = merge_validation(default, v, &vpath)?;
            super::tls::certificate_validation_context(&merged, &vpath)
        }
        _ => Err(ConfigError::at(
            path,
            format!("secret '{}' is not a validation_context", secret.name),
        )),
    }
}

/// The session ticket keys of a `Secret` (static, or delivered by a control plane),
/// checked as configured ones (80 bytes each, at least one).
pub fn secret_ticket_keys(secret: &tls_pb::Secret, path: &str) -> Result<Vec<[u8; 80]>> {
    match &secret.r#type {
        Some(tls_pb::secret::Type::SessionTicketKeys(keys)) => {
            super::tls::ticket_keys(keys, &format!("{path}.session_ticket_keys"))
        }
        _ => Err(ConfigError::at(
            path,
            format!("secret '{}' is not session_ticket_keys", secret.name),
        )),
    }
}

/// Reads, parses and checks the session-ticket-keys secret file of `source`. Errors
/// name the file.
pub fn read_ticket_keys(source: &model::SdsFileSource) -> Result<Vec<[u8; 80]>> {
    let resp = parse_file(source)?;
    ticket_keys_from(&resp, source)
}

/// Whether a file's secret read at load may be awaited rather than refuse the config,
/// as Envoy 1.40 starts with it (measured): the file exists and the secret only does
/// not parse or fit. A missing file, or a field Baton does not implement, still
/// refuses it (a config never silently loses behaviour).
fn awaitable(e: &ConfigError, source: &model::SdsFileSource) -> bool {
    source.path.exists() && !e.is_unsupported()
}

/// [`read_ticket_keys`] at load: a file holding no usable keys gives none (the
/// context is not ready, as Envoy, until the watcher swaps good keys in; a good
/// secret has at least one key).
pub(crate) fn read_ticket_keys_at_load(source: &model::SdsFileSource) -> Result<Vec<[u8; 80]>> {
    match read_ticket_keys(source) {
        Err(e) if awaitable(&e, source) => {
            tracing::warn!(secret = %source.secret_name, error = %e,
                "SDS secret file unusable at load: its session ticket keys are awaited");
            Ok(Vec::new())
        }
        other => other,
    }
}

/// [`read_validation_context`] at load: a file holding no usable validation context
/// gives [`model::ValidationContext::awaiting`].
pub(crate) fn read_validation_context_at_load(
    source: &model::SdsFileSource,
) -> Result<std::sync::Arc<model::ValidationContext>> {
    match read_validation_context(source) {
        Err(e) if awaitable(&e, source) => {
            tracing::warn!(secret = %source.secret_name, error = %e,
                "SDS secret file unusable at load: its validation context is awaited");
            Ok(std::sync::Arc::new(model::ValidationContext::awaiting(
                source.path.display().to_string(),
            )))
        }
        other => other,
    }
}

/// The session ticket keys in a parsed secret file.
pub fn ticket_keys_from(
    resp: &DiscoveryResponse,
    source: &model::SdsFileSource,
) -> Result<Vec<[u8; 80]>> {
    let secret = the_secret(resp, source)?;
    secret_ticket_keys(&secret, "resources[0]").map_err(|e| with_file(e, source))
}

/// Decodes one `Secret` resource a control plane sent, refusing fields Baton does not
/// implement (as in a config).
pub fn decode_secret(any: &prost_types::Any) -> Result<tls_pb::Secret> {
    if any.type_url != SECRET_TYPE {
        return Err(ConfigError::at(
            "@type",
            format!("expected a {SECRET_TYPE}, got '{}'", any.type_url),
        ));
    }
    crate::supported::check_any(any, "")?;
    tls_pb::Secret::decode(any.value.as_slice())
        .map_err(|e| ConfigError::at("", format!("cannot decode Secret: {e}")))
}

/// Reads, parses and checks the validation-context secret file of `source` (see
/// [`parse_file`] and [`validation_context_from`]). Errors name the file.
pub fn read_validation_context(
    source: &model::SdsFileSource,
) -> Result<std::sync::Arc<model::ValidationContext>> {
    let resp = parse_file(source)?;
    validation_context_from(&resp, source)
}

/// The `validation_context` in a parsed secret file, checked as
/// [`certificate_from`] checks a certificate.
pub fn validation_context_from(
    resp: &DiscoveryResponse,
    source: &model::SdsFileSource,
) -> Result<std::sync::Arc<model::ValidationContext>> {
    let secret = the_secret(resp, source)?;
    match &secret.r#type {
        Some(tls_pb::secret::Type::ValidationContext(v)) => {
            let vpath = "resources[0].validation_context";
            merge_validation(source.default_validation.as_deref(), v, vpath)
                .and_then(|merged| super::tls::certificate_validation_context(&merged, vpath))
                .map_err(|e| with_file(e, source))
        }
        _ => Err(with_file(
            ConfigError::at(
                "resources[0]",
                format!("secret '{}' is not a validation_context", secret.name),
            ),
            source,
        )),
    }
}

/// `dynamic` merged onto `default` as Envoy combines a `combined_validation_context`:
/// proto `MergeFrom`, so the dynamic part's set singular fields replace the default's
/// and repeated fields (SAN matchers) are the default's followed by its own. Without a
/// default, `dynamic` itself.
pub fn merge_validation(
    default: Option<&[u8]>,
    dynamic: &tls_pb::CertificateValidationContext,
    path: &str,
) -> Result<tls_pb::CertificateValidationContext> {
    let Some(default) = default else {
        return Ok(dynamic.clone());
    };
    let mut merged = tls_pb::CertificateValidationContext::decode(default)
        .map_err(|e| ConfigError::at(path, format!("cannot decode the default: {e}")))?;
    // Merging an encoding is proto MergeFrom (prost follows the wire-format rules).
    merged
        .merge(dynamic.encode_to_vec().as_slice())
        .map_err(|e| ConfigError::at(path, format!("cannot merge onto the default: {e}")))?;
    Ok(merged)
}

/// [`merge_validation`], then checked and resolved as a config's validation context.
pub fn merged_validation_context(
    default: Option<&[u8]>,
    dynamic: &tls_pb::CertificateValidationContext,
    path: &str,
) -> Result<std::sync::Arc<model::ValidationContext>> {
    let merged = merge_validation(default, dynamic, path)?;
    super::tls::certificate_validation_context(&merged, path)
}

fn with_file(mut e: ConfigError, source: &model::SdsFileSource) -> ConfigError {
    e.file = Some(source.path.display().to_string());
    e
}

/// Reads, parses and checks the secret file of `source` (see [`parse_file`] and
/// [`certificate_from`]). Errors name the file.
pub fn read_certificate(source: &model::SdsFileSource) -> Result<model::TlsCertificate> {
    let resp = parse_file(source)?;
    certificate_from(&resp, source)
}

/// [`read_certificate`] at load: a secret file that exists but holds no usable
/// certificate does not refuse the config, as in Envoy 1.40 (measured: it starts and
/// resets handshakes until a good file arrives); the context starts with
/// [`model::TlsCertificate::awaiting`] and the file's watcher swaps the good one in.
/// A missing file is still an error, and so is a secret field Baton does not
/// implement (a config never silently loses behaviour).
pub(crate) fn read_certificate_at_load(
    source: &model::SdsFileSource,
) -> Result<model::TlsCertificate> {
    match read_certificate(source) {
        Ok(cert) => Ok(cert),
        Err(e) if awaitable(&e, source) => {
            tracing::warn!(secret = %source.secret_name, error = %e,
                "SDS secret file unusable at load: its certificate is awaited");
            Ok(model::TlsCertificate::awaiting(
                source.path.display().to_string(),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Reads and parses the file of `source` as a `DiscoveryResponse` (a failure here is
/// Envoy's `update_failure`). Errors name the file.
pub fn parse_file(source: &model::SdsFileSource) -> Result<DiscoveryResponse> {
    let file = source.path.display().to_string();
    let text = std::fs::read_to_string(&source.path).map_err(|e| {
        let mut err = ConfigError::at("", format!("cannot read SDS file: {e}"));
        err.file = Some(file.clone());
        err
    })?;
    crate::resource::parse_discovery_response(&text).map_err(|mut e| {
        e.file = Some(file);
        e
    })
}

/// The certificate in a parsed secret file: exactly one `Secret`, named as configured,
/// holding a `tls_certificate` whose key matches its chain (a failure here is Envoy's
/// `update_rejected`). Errors name the file.
pub fn certificate_from(
    resp: &DiscoveryResponse,
    source: &model::SdsFileSource,
) -> Result<model::TlsCertificate> {
    let secret = the_secret(resp, source)?;
    match &secret.r#type {
        Some(tls_pb::secret::Type::TlsCertificate(cert)) => {
            super::tls::certificate(cert, "resources[0].tls_certificate")
                .map_err(|e| with_file(e, source))
        }
        _ => Err(with_file(
            ConfigError::at(
                "resources[0]",
                format!("secret '{}' is not a tls_certificate", secret.name),
            ),
            source,
        )),
    }
}

/// The one `Secret` of a file, named as configured (Envoy's checks and messages).
fn the_secret(resp: &DiscoveryResponse, source: &model::SdsFileSource) -> Result<tls_pb::Secret> {
    let with_file = |e: ConfigError| with_file(e, source);
    if resp.resources.len() != 1 {
        return Err(with_file(ConfigError::at(
            "resources",
            format!("Unexpected SDS secrets length: {}", resp.resources.len()),
        )));
    }
    let any = &resp.resources[0];
    if any.type_url != SECRET_TYPE {
        return Err(with_file(ConfigError::at(
            "resources[0]",
            format!("expected a {SECRET_TYPE}, got '{}'", any.type_url),
        )));
    }
    // Fields of the secret Baton does not implement refuse the update, as in a config.
    crate::supported::check_any(any, "resources[0]").map_err(with_file)?;
    let secret = tls_pb::Secret::decode(any.value.as_slice()).map_err(|e| {
        with_file(ConfigError::at(
            "resources[0]",
            format!("cannot decode Secret: {e}"),
        ))
    })?;
    if secret.name != source.secret_name {
        return Err(with_file(ConfigError::at(
            "resources[0].name",
            format!(
                "Unexpected SDS secret (expecting {}): {}",
                source.secret_name, secret.name
            ),
        )));
    }
    Ok(secret)
}

/// The files a secret file's secret names by `filename` (certificate chain, key, OCSP
/// staple, trusted CA, CRL, ticket keys): Envoy re-reads the secret when one of them is
/// replaced, as when the secret file is. Empty when the file holds no usable secret.
pub fn referenced_files(
    resp: &DiscoveryResponse,
    source: &model::SdsFileSource,
) -> Vec<std::path::PathBuf> {
    use baton_proto::pb::envoy::config::core::v3::data_source::Specifier;
    let Ok(secret) = the_secret(resp, source) else {
        return Vec::new();
    };
    let mut sources: Vec<Option<&core_pb::DataSource>> = Vec::new();
    use tls_pb::secret::Type;
    match &secret.r#type {
        Some(Type::TlsCertificate(c)) => sources.extend([
            c.certificate_chain.as_ref(),
            c.private_key.as_ref(),
            c.ocsp_staple.as_ref(),
        ]),
        Some(Type::ValidationContext(v)) => {
            sources.extend([v.trusted_ca.as_ref(), v.crl.as_ref()]);
        }
        Some(Type::SessionTicketKeys(k)) => sources.extend(k.keys.iter().map(Some)),
        _ => {}
    }
    sources
        .into_iter()
        .flatten()
        .filter_map(|ds| match &ds.specifier {
            Some(Specifier::Filename(f)) => Some(std::path::PathBuf::from(f)),
            _ => None,
        })
        .collect()
}

/// Envoy 1.40 refuses a config (measured) whose static cluster and static listener
/// name the same certificate secret file when that file's secret parses and is the one
/// named but cannot be used (a key not matching its certificate, a chain that does not
/// load): its clusters read the file first and keep the secret though their own context
/// rejects it, and the listener's context, built from the kept secret, fails the load.
/// Two clusters or two listeners sharing such a file start (each awaits a good file),
/// and so does a file that does not parse or names another secret.
pub(crate) fn check_secret_files_shared_with_clusters(
    clusters: &[std::sync::Arc<model::Cluster>],
    listeners: &[std::sync::Arc<model::Listener>],
) -> Result<()> {
    let upstream_contexts = clusters.iter().flat_map(|c| {
        c.tls
            .iter()
            .chain(c.transport_socket_matches.iter().flat_map(|m| m.tls.iter()))
    });
    let awaited: Vec<&model::SdsFileSource> = upstream_contexts
        .filter(|ctx| ctx.certificates.first().is_some_and(|c| c.is_awaiting()))
        .filter_map(|ctx| ctx.sds_certificate.as_ref())
        .collect();
    if awaited.is_empty() {
        return Ok(());
    }
    for (i, listener) in listeners.iter().enumerate() {
        let chains = listener
            .filter_chains
            .iter()
            .chain(listener.default_filter_chain.iter());
        for chain in chains {
            let Some(ctx) = &chain.tls else { continue };
            for sds in &ctx.sds_certificates {
                if !awaited.contains(&&sds.source) {
                    continue;
                }
                // Not parsing or naming another secret: nothing was kept, it starts.
                let Ok(resp) = parse_file(&sds.source) else {
                    continue;
                };
                if the_secret(&resp, &sds.source).is_err() {
                    continue;
                }
                if let Err(e) = certificate_from(&resp, &sds.source) {
                    return Err(ConfigError::at(
                        format!("static_resources.listeners[{i}]"),
                        format!(
                            "secret '{}' ({}, read first for a cluster): {}: {}",
                            sds.source.secret_name,
                            sds.source.path.display(),
                            e.path,
                            e.message
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}
