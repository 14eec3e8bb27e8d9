//! xDS-TP in the bootstrap: the collection locators of `dynamic_resources`
//! (`cds_resources_locator`, `lds_resources_locator`) and federation (`config_sources`,
//! `default_config_source`), validated as Envoy 1.40 validates them. Envoy's refusals
//! keep Envoy's reason; what Envoy accepts and Baton cannot do yet (list collections,
//! context parameters, `file://` collections) is refused naming the field.

use baton_proto::pb::envoy::config::bootstrap::v3 as bootstrap_pb;
use baton_proto::pb::envoy::config::core::v3 as core_pb;

use super::xds::{api_config_source, join, ApiRole};
use super::{timeout, Env};
use crate::error::{ConfigError, Result};
use crate::model;

/// Full name of the resource type of CDS collections.
const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
/// Full name of the resource type of LDS collections.
const LISTENER: &str = "envoy.config.listener.v3.Listener";

/// Runtime flag under which Envoy routes xDS-TP singletons through `config_sources`.
pub(crate) const ROUTE_SINGLETONS_FLAG: &str = model::XDSTP_SINGLETONS_FLAG;

/// `cds_resources_locator` / `lds_resources_locator` (`field`) of `dynamic`, delivered
/// through `source` (the `cds_config` / `lds_config`): the glob collection's URL.
pub(crate) fn collection_locator(
    locator: &str,
    field: &str,
    source: Option<&model::ConfigSource>,
    source_field: &str,
) -> Result<Option<String>> {
    if locator.is_empty() {
        return Ok(None);
    }
    let path = join("dynamic_resources", field);
    let resource_type = if field.starts_with("cds") {
        CLUSTER
    } else {
        LISTENER
    };
    let Some(rest) = locator.strip_prefix("xdstp://") else {
        if locator.starts_with("file://") {
            return Err(ConfigError::at(
                path,
                "not supported by Baton yet (file:// collections; use an xdstp:// glob collection)",
            ));
        }
        // Envoy's wording.
        return Err(ConfigError::at(
            path,
            format!("Unsupported code path ({locator} is not an xdstp:// URL)"),
        ));
    };
    if locator.contains(['?', '#']) {
        return Err(ConfigError::at(
            path,
            "not supported by Baton yet (context parameters and directives in a collection locator)",
        ));
    }
    let (_authority, typed) = rest.split_once('/').unwrap_or((rest, ""));
    let (locator_type, id) = typed.split_once('/').unwrap_or((typed, ""));
    if locator_type != resource_type {
        // Envoy's wording.
        return Err(ConfigError::at(
            path,
            format!("xdstp:// type does not match {resource_type} in {locator}"),
        ));
    }
    if id != "*" && !id.ends_with("/*") {
        return Err(ConfigError::at(
            path,
            "not supported by Baton yet (list collections; a glob collection ends in /*)",
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
        Some(model::ConfigSourceKind::Path { .. }) | None => {
            // Envoy's wording.
            return Err(ConfigError::at(
                source_path,
                "Missing or not supported config source specifier in envoy::config::core::v3::ConfigSource for a collection. Only ADS and gRPC in delta-xDS mode are supported.",
            ));
        }
    }
    Ok(Some(locator.to_string()))
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
