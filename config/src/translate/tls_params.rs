//! `tls_params` of a TLS context, mapped to what rustls offers: protocol versions, TLS 1.2
//! cipher suites and curves by their OpenSSL/BoringSSL names (Envoy's defaults when
//! unset), and `signature_algorithms`; one rustls lacks is a config error naming it.

use std::sync::Arc;

use baton_proto::pb::envoy::extensions::transport_sockets::tls::v3 as tls_pb;
use rustls::crypto::SupportedKxGroup;
use rustls::{SignatureScheme, SupportedCipherSuite};

use crate::crypto::{cipher_suite, kx_group};
use crate::error::{ConfigError, Result};
use crate::model;

/// TLS 1.2 cipher suites by their OpenSSL/BoringSSL names (as Envoy takes them).
fn cipher_suite_by_name(name: &str) -> Option<SupportedCipherSuite> {
    Some(match name {
        "ECDHE-ECDSA-AES128-GCM-SHA256" => cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-ECDSA-AES256-GCM-SHA384" => cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-ECDSA-CHACHA20-POLY1305" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "ECDHE-RSA-AES128-GCM-SHA256" => cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-RSA-AES256-GCM-SHA384" => cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-RSA-CHACHA20-POLY1305" => cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

fn kx_group_by_name(name: &str) -> Option<&'static dyn SupportedKxGroup> {
    match name {
        "X25519" => Some(kx_group::X25519),
        "P-256" | "prime256v1" | "secp256r1" => Some(kx_group::SECP256R1),
        "P-384" | "secp384r1" => Some(kx_group::SECP384R1),
        _ => None,
    }
}

/// Envoy's default TLS 1.2 cipher list (every one of which rustls has), with its
/// BoringSSL equal-preference groups (`[A|B]`).
const DEFAULT_CIPHERS: &[&str] = &[
    "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
    "[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
];

/// The TLS 1.2 suites rustls has, by name (for errors).
const AVAILABLE_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-CHACHA20-POLY1305, \
    ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-CHACHA20-POLY1305, ECDHE-ECDSA-AES256-GCM-SHA384, \
    ECDHE-RSA-AES256-GCM-SHA384";

/// Envoy's default curves.
const DEFAULT_CURVES: &[&str] = &["X25519", "P-256"];

/// `tls_params`. `server`: Envoy's defaults differ (a client's maximum is TLS 1.2).
pub(super) fn params(
    p: Option<&tls_pb::TlsParameters>,
    server: bool,
    path: &str,
) -> Result<model::TlsParams> {
    use tls_pb::tls_parameters::TlsProtocol;
    let default = tls_pb::TlsParameters::default();
    let p = p.unwrap_or(&default);
    let signature_schemes = signature_schemes(&p.signature_algorithms, path)?;
    if !p.compliance_policies.is_empty() {
        return Err(ConfigError::unsupported(format!(
            "{path}.compliance_policies"
        )));
    }
    // rustls has TLS 1.2 and 1.3 only: a lower minimum still negotiates 1.2 or better.
    let version = |v: i32, field: &str, auto: u8| -> Result<u8> {
        match TlsProtocol::try_from(v) {
            Ok(TlsProtocol::TlsAuto) => Ok(auto),
            Ok(TlsProtocol::TlSv10) => Ok(10),
            Ok(TlsProtocol::TlSv11) => Ok(11),
            Ok(TlsProtocol::TlSv12) => Ok(12),
            Ok(TlsProtocol::TlSv13) => Ok(13),
            Err(_) => Err(ConfigError::at(
                format!("{path}.{field}"),
                "unknown TLS version",
            )),
        }
    };
    let min = version(
        p.tls_minimum_protocol_version,
        "tls_minimum_protocol_version",
        12,
    )?;
    let max = version(
        p.tls_maximum_protocol_version,
        "tls_maximum_protocol_version",
        if server { 13 } else { 12 },
    )?;
    if max < 12 {
        return Err(ConfigError::at(
            format!("{path}.tls_maximum_protocol_version"),
            "TLS 1.0 and 1.1 are not supported by rustls (Baton's TLS library); use TLSv1_2 or TLSv1_3",
        ));
    }
    if min > max {
        return Err(ConfigError::at(
            format!("{path}.tls_minimum_protocol_version"),
            "greater than tls_maximum_protocol_version",
        ));
    }
    let mut versions = Vec::with_capacity(2);
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }

    let mut cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    // Each TLS 1.3 suite is a group of its own (their order is the client's anyway).
    let mut cipher_groups: Vec<u16> = vec![0, 1, 2];
    let (entries, from_config): (Vec<&str>, bool) = if p.cipher_suites.is_empty() {
        (DEFAULT_CIPHERS.to_vec(), false)
    } else {
        (p.cipher_suites.iter().map(String::as_str).collect(), true)
    };
    // "[A|B]" is BoringSSL's equal-preference group: the client's order decides
    // within it, the server's between groups (the TLS 1.2 server handshake).
    for (i, entry) in entries.iter().enumerate() {
        let group = u16::try_from(i + 3).unwrap_or(u16::MAX);
        let names = entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split('|');
        for name in names {
            let suite = cipher_suite_by_name(name).ok_or_else(|| {
                ConfigError::at(
                    if from_config {
                        format!("{path}.cipher_suites[{i}]")
                    } else {
                        format!("{path}.cipher_suites")
                    },
                    format!(
                        "cipher suite '{name}' is not available in rustls (Baton's TLS library); available: {AVAILABLE_CIPHERS}"
                    ),
                )
            })?;
            if !cipher_suites.contains(&suite) {
                cipher_suites.push(suite);
                cipher_groups.push(group);
            }
        }
    }

    let curves: Vec<(usize, &str)> = if p.ecdh_curves.is_empty() {
        DEFAULT_CURVES.iter().map(|c| (0, *c)).collect()
    } else {
        p.ecdh_curves
            .iter()
            .map(String::as_str)
            .enumerate()
            .collect()
    };
    let mut kx_groups: Vec<&'static dyn SupportedKxGroup> = Vec::with_capacity(curves.len());
    for (i, name) in curves {
        let group = kx_group_by_name(name).ok_or_else(|| {
            ConfigError::at(
                format!("{path}.ecdh_curves[{i}]"),
                format!(
                    "curve '{name}' is not available in rustls (Baton's TLS library); available: X25519, P-256, P-384"
                ),
            )
        })?;
        if !kx_groups.iter().any(|g| g.name() == group.name()) {
            kx_groups.push(group);
        }
    }
    Ok(model::TlsParams {
        versions,
        cipher_suites,
        cipher_groups,
        kx_groups,
        signature_schemes,
    })
}

/// `signature_algorithms` by BoringSSL's names (None: unset, every scheme rustls has).
fn signature_schemes(names: &[String], path: &str) -> Result<Option<Arc<[SignatureScheme]>>> {
    if names.is_empty() {
        return Ok(None);
    }
    let schemes: Option<Vec<SignatureScheme>> = names
        .iter()
        .map(|name| {
            Some(match name.as_str() {
                "rsa_pkcs1_sha1" => SignatureScheme::RSA_PKCS1_SHA1,
                "rsa_pkcs1_sha256" => SignatureScheme::RSA_PKCS1_SHA256,
                "rsa_pkcs1_sha384" => SignatureScheme::RSA_PKCS1_SHA384,
                "rsa_pkcs1_sha512" => SignatureScheme::RSA_PKCS1_SHA512,
                "rsa_pss_rsae_sha256" => SignatureScheme::RSA_PSS_SHA256,
                "rsa_pss_rsae_sha384" => SignatureScheme::RSA_PSS_SHA384,
                "rsa_pss_rsae_sha512" => SignatureScheme::RSA_PSS_SHA512,
                "ecdsa_sha1" => SignatureScheme::ECDSA_SHA1_Legacy,
                "ecdsa_secp256r1_sha256" => SignatureScheme::ECDSA_NISTP256_SHA256,
                "ecdsa_secp384r1_sha384" => SignatureScheme::ECDSA_NISTP384_SHA384,
                "ecdsa_secp521r1_sha512" => SignatureScheme::ECDSA_NISTP521_SHA512,
                "ed25519" => SignatureScheme::ED25519,
                _ => return None,
            })
        })
        .collect();
    match schemes {
        Some(schemes) => Ok(Some(schemes.into())),
        // Envoy's message.
        None => Err(ConfigError::at(
            format!("{path}.signature_algorithms"),
            format!(
                "Failed to initialize TLS signature algorithms {}",
                names.join(":")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls12_groups(p: &model::TlsParams) -> Vec<(u16, String)> {
        p.cipher_suites
            .iter()
            .zip(&p.cipher_groups)
            .filter(|(s, _)| s.version() == &rustls::version::TLS12)
            .map(|(s, g)| (*g, format!("{:?}", s.suite())))
            .collect()
    }

    #[test]
    fn default_suites_carry_envoys_equal_preference_groups() {
        let p = params(None, true, "t").expect("defaults");
        assert_eq!(p.cipher_suites.len(), p.cipher_groups.len());
        let groups: Vec<u16> = tls12_groups(&p).iter().map(|(g, _)| *g).collect();
        // [ECDSA AES128|ECDSA CHACHA20], [RSA AES128|RSA CHACHA20], ECDSA AES256, RSA AES256.
        assert_eq!(groups, [3, 3, 4, 4, 5, 6]);
    }

    #[test]
    fn configured_brackets_make_one_group() {
        let p = tls_pb::TlsParameters {
            cipher_suites: vec![
                "ECDHE-ECDSA-AES256-GCM-SHA384".into(),
                "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]".into(),
            ],
            ..Default::default()
        };
        let p = params(Some(&p), true, "t").expect("valid");
        let groups = tls12_groups(&p);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].0, 3);
        assert!(groups[0].1.contains("AES_256"));
        assert_eq!((groups[1].0, groups[2].0), (4, 4));
    }

    #[test]
    fn an_unknown_suite_in_a_group_is_named() {
        let p = tls_pb::TlsParameters {
            cipher_suites: vec!["[ECDHE-ECDSA-AES128-GCM-SHA256|AES128-SHA]".into()],
            ..Default::default()
        };
        let e = params(Some(&p), true, "t")
            .expect_err("refused")
            .to_string();
        assert!(
            e.contains("cipher_suites[0]") && e.contains("AES128-SHA"),
            "{e}"
        );
    }
}
