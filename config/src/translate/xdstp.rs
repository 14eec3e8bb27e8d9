//! xDS-TP in the bootstrap: the collection locators of `dynamic_resources`
//! (`cds_resources_locator`, `lds_resources_locator`) and federation (`config_sources`,
//! `default_config_source`), validated as Envoy 1.40 validates them, with Envoy's
//! reasons. An `xdstp://` locator becomes the one name its subscription carries,
//! written as Envoy writes it on the wire (context parameters sorted, directives folded
//! into the name); a `file://` locator becomes a file-based collection source.

use std::path::PathBuf;

use baton_proto::pb::envoy::config::bootstrap::v3 as bootstrap_pb;
use baton_proto::pb::envoy::config::core::v3 as core_pb;

use super::xds::{api_config_source, existing_path, join, ApiRole};
use super::{timeout, Env};
use crate::error::{ConfigError, Result};
use crate::model;

/// Full name of the resource type of CDS collections.
const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
/// Full name of the resource type of LDS collections.
const LISTENER: &str = "envoy.config.listener.v3.Listener";

/// Characters Envoy percent-encodes in a path segment of an `xdstp://` name.
const ID_RESERVED: &[char] = &['%', '#', '?'];
/// Characters Envoy percent-encodes in a context parameter's key or value.
pub(super) const PARAM_RESERVED: &[char] = &['%', '#', '[', ']', '&', '='];

/// Runtime flag under which Envoy routes xDS-TP singletons through `config_sources`.
pub(crate) const ROUTE_SINGLETONS_FLAG: &str = model::XDSTP_SINGLETONS_FLAG;

/// What a `*_resources_locator` names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CollectionLocator {
    /// An `xdstp://` collection, as the name its subscription carries.
    Xdstp(String),
    /// A `file://` collection: the file holding it.
    File(PathBuf),
}

/// `cds_resources_locator` / `lds_resources_locator` (`field`) of `dynamic`, delivered
/// through `source` (the `cds_config` / `lds_config`) when it is an `xdstp://` URL.
/// Envoy accepts glob (`.../*`) and list collections alike; a list collection's one
/// name is then matched exactly, as a singleton.
pub(crate) fn collection_locator(
    locator: &str,
    field: &str,
    source: Option<&model::ConfigSource>,
    source_field: &str,
) -> Result<Option<CollectionLocator>> {
    if locator.is_empty() {
        return Ok(None);
    }
    let path = join("dynamic_resources", field);
    let resource_type = if field.starts_with("cds") {
        CLUSTER
    } else {
        LISTENER
    };
    if let Some(file) = locator.strip_prefix("file:") {
        return file_locator(file, &path).map(Some);
    }
    let Some(rest) = locator.strip_prefix("xdstp://") else {
        // Envoy's wording.
        return Err(ConfigError::at(
            path,
            format!("Unsupported code path ({locator} is not an xdstp:// URL)"),
        ));
    };
    let (rest, directives) = match rest.split_once('#') {
        Some((rest, directives)) => (rest, Some(directives)),
        None => (rest, None),
    };
    if let Some(directives) = directives {
        check_directives(directives, &path)?;
    }
    let (rest, params) = match rest.split_once('?') {
        Some((rest, params)) => (rest, Some(params)),
        None => (rest, None),
    };
    let (authority, typed) = rest.split_once('/').unwrap_or((rest, ""));
    let (locator_type, id) = typed.split_once('/').unwrap_or((typed, ""));
    if locator_type != resource_type {
        // Envoy's wording.
        return Err(ConfigError::at(
            path,
            format!("xdstp:// type does not match {resource_type} in {locator}"),
        ));
    }
    let source_path = join("dynamic_resources", source_field);
    match source.map(|s| &s.kind) {
        Some(model::ConfigSourceKind::Ads) => {}
        Some(model::ConfigSourceKind::Api(api)) if api.api_type == model::XdsApiType::DeltaGrpc => {}
        Some(model::ConfigSourceKind::Api(_)) => {
            return Err(ConfigError::at(
                join(&source_path, "api_config_source.api_type"),
                format!("Unknown xdstp:// transport API type (the {field} collection needs ads or DELTA_GRPC)"),
            ))
        }
        Some(model::ConfigSourceKind::Path { .. } | model::ConfigSourceKind::FileCollection { .. })
        | None => {
            // Envoy's wording.
            return Err(ConfigError::at(
                source_path,
                "Missing or not supported config source specifier in envoy::config::core::v3::ConfigSource for a collection. Only ADS and gRPC in delta-xDS mode are supported.",
            ));
        }
    }
    let prefix = format!("xdstp://{authority}/{locator_type}/");
    Ok(Some(CollectionLocator::Xdstp(wire_name(
        &prefix, id, params, directives,
    ))))
}

/// A `file:` locator (`file:///abs/path`; an authority before the path is ignored, as
/// Envoy ignores it); the file must exist, as for `path_config_source`.
fn file_locator(rest: &str, path: &str) -> Result<CollectionLocator> {
    let (rest, directives) = match rest.split_once('#') {
        Some((rest, directives)) => (rest, Some(directives)),
        None => (rest, None),
    };
    if let Some(directives) = directives {
        check_directives(directives, path)?;
    }
    let file_path = match rest.strip_prefix("//") {
        Some(with_authority) => with_authority
            .find('/')
            .map_or("", |slash| &with_authority[slash..]),
        None => rest,
    };
    let decoded = percent_decode(file_path);
    Ok(CollectionLocator::File(existing_path(&decoded, path)?))
}

/// Envoy's check of a locator's directives (`#entry=...,alt=...`).
fn check_directives(directives: &str, path: &str) -> Result<()> {
    for component in directives.split(',') {
        if let Some(alt) = component.strip_prefix("alt=") {
            if !["xdstp:", "http:", "file:"]
                .iter()
                .any(|scheme| alt.starts_with(scheme))
            {
                // Envoy's wording.
                return Err(ConfigError::at(
                    path,
                    format!("{alt} does not have a xdstp:, http: or file: scheme"),
                ));
            }
        } else if !component.starts_with("entry=") {
            // Envoy's wording.
            return Err(ConfigError::at(
                path,
                format!("Unknown fragment component {component}"),
            ));
        }
    }
    Ok(())
}

/// The name Envoy 1.40 subscribes to for a collection locator: it writes the locator
/// back as a URL (path segments and parameters re-encoded, parameters in the order
/// given, directives after `#`), then its multiplexer reads that back as a resource
/// name (no fragment: a `#` and what follows belong to the last parameter, or to the
/// path without parameters) and writes it with the parameters sorted by key.
fn wire_name(prefix: &str, id: &str, params: Option<&str>, directives: Option<&str>) -> String {
    let mut segments: Vec<String> = id.split('/').map(percent_decode).collect();
    let mut pairs: Vec<(String, String)> = params
        .map(|params| {
            params
                .split('&')
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(directives) = directives {
        let tail = format!("#{directives}");
        match pairs.last_mut() {
            Some((_, value)) => value.push_str(&tail),
            None => {
                if let Some(last) = segments.last_mut() {
                    last.push_str(&tail);
                }
            }
        }
    }
    // Envoy keeps one value per key (a map).
    pairs.reverse();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.dedup_by(|later, earlier| later.0 == earlier.0);
    let mut name = prefix.to_string();
    let encoded: Vec<String> = segments
        .iter()
        .map(|s| percent_encode(s, ID_RESERVED))
        .collect();
    name.push_str(&encoded.join("/"));
    for (i, (key, value)) in pairs.iter().enumerate() {
        name.push(if i == 0 { '?' } else { '&' });
        name.push_str(&percent_encode(key, PARAM_RESERVED));
        name.push('=');
        name.push_str(&percent_encode(value, PARAM_RESERVED));
    }
    name
}

/// `%XX` escapes decoded (an invalid escape is kept as written).
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with each of `reserved` written `%XX`.
pub(super) fn percent_encode(text: &str, reserved: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if reserved.contains(&c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// `config_sources` and `default_config_source` of the bootstrap. `route_singletons`
/// is the runtime flag's value.
pub(crate) fn federation(
    proto: &bootstrap_pb::Bootstrap,
    route_singletons: bool,
    env: &Env,
) -> Result<model::Federation> {
    let mut sources = Vec::with_capacity(proto.config_sources.len());
    for (i, source) in proto.config_sources.iter().enumerate() {
        sources.push(authority_source(
            source,
            &format!("config_sources[{i}]"),
            false,
            env,
        )?);
    }
    let default = proto
        .default_config_source
        .as_ref()
        .map(|source| authority_source(source, "default_config_source", true, env))
        .transpose()?;
    Ok(model::Federation {
        sources,
        default,
        route_singletons,
    })
}

/// One federated source, checked in Envoy's order with Envoy's messages.
fn authority_source(
    source: &core_pb::ConfigSource,
    path: &str,
    is_default: bool,
    env: &Env,
) -> Result<model::AuthoritySource> {
    use core_pb::config_source::ConfigSourceSpecifier as Spec;
    let Some(Spec::ApiConfigSource(api)) = &source.config_source_specifier else {
        return Err(ConfigError::at(
            path,
            "Only api_config_source type is currently supported for xdstp-based config sources.",
        ));
    };
    if !is_default && source.authorities.is_empty() {
        return Err(ConfigError::at(
            join(path, "authorities"),
            "xdstp-based non-default config source must have at least one authority.",
        ));
    }
    let mut authorities: Vec<String> = Vec::with_capacity(source.authorities.len());
    for (i, authority) in source.authorities.iter().enumerate() {
        if authorities.contains(&authority.name) {
            return Err(ConfigError::at(
                format!("{path}.authorities[{i}].name"),
                format!("xdstp-based config source authority {} is configured more than once in an xdstp-based config source.", authority.name),
            ));
        }
        authorities.push(authority.name.clone());
    }
    let api = api_config_source(
        api,
        &join(path, "api_config_source"),
        env,
        ApiRole::Authority,
    )?;
    let initial_fetch_timeout = timeout(
        source.initial_fetch_timeout.as_ref(),
        Some(model::DEFAULT_INITIAL_FETCH_TIMEOUT),
        &join(path, "initial_fetch_timeout"),
    )?;
    Ok(model::AuthoritySource {
        authorities,
        api,
        initial_fetch_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: &str = "xdstp://cp/envoy.config.listener.v3.Listener/";

    fn wire(locator: &str) -> String {
        let source = model::ConfigSource {
            kind: model::ConfigSourceKind::Ads,
            initial_fetch_timeout: None,
        };
        match collection_locator(
            locator,
            "lds_resources_locator",
            Some(&source),
            "lds_config",
        ) {
            Ok(Some(CollectionLocator::Xdstp(name))) => name,
            other => panic!("{locator}: {other:?}"),
        }
    }

    /// Each pair measured on Envoy 1.40 (the name of its first LDS subscription).
    #[test]
    fn wire_names_are_envoys() {
        let cases = [
            ("mesh/*", "mesh/*"),
            ("mesh/list", "mesh/list"),
            ("mesh/*?b=2&a=1", "mesh/*?a=1&b=2"),
            ("mesh/*?a=x%20y", "mesh/*?a=x y"),
            (
                "mesh/*?b=x%26y&a=%23%3F%2F%25%5B",
                "mesh/*?a=%23?/%25%5B&b=x%26y",
            ),
            ("mesh/*?a", "mesh/*?a="),
            ("me%3Fsh/*", "me%3Fsh/*"),
            ("mesh/*#entry=foo", "mesh/*%23entry=foo"),
            ("mesh/*#entry=a,entry=b", "mesh/*%23entry=a,entry=b"),
            (
                "mesh/*#alt=xdstp://other/envoy.config.listener.v3.Listener/mesh/*",
                "mesh/*%23alt=xdstp://other/envoy.config.listener.v3.Listener/mesh/*",
            ),
            // Envoy picks the parameter in its hash map's order (varies by run);
            // Baton the last one written.
            ("mesh/*?b=2&a=1#entry=foo", "mesh/*?a=1%23entry%3Dfoo&b=2"),
        ];
        for (locator, expected) in cases {
            assert_eq!(wire(&format!("{L}{locator}")), format!("{L}{expected}"));
        }
    }

    #[test]
    fn bad_directives_are_refused_with_envoys_reason() {
        let source = model::ConfigSource {
            kind: model::ConfigSourceKind::Ads,
            initial_fetch_timeout: None,
        };
        for (directive, reason) in [
            ("bogus=foo", "Unknown fragment component bogus=foo"),
            (
                "alt=foo",
                "foo does not have a xdstp:, http: or file: scheme",
            ),
        ] {
            let locator = format!("{L}mesh/*#{directive}");
            let e = collection_locator(
                &locator,
                "lds_resources_locator",
                Some(&source),
                "lds_config",
            )
            .expect_err(&locator);
            assert_eq!(
                e.to_string(),
                format!("dynamic_resources.lds_resources_locator: {reason}")
            );
        }
    }
}
