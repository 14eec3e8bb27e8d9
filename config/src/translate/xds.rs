//! `dynamic_resources`, `ConfigSource`s (CDS/LDS, a cluster's `eds_cluster_config`, an
//! HCM's `rds`) and `ApiConfigSource`s, validated as Envoy validates them: the
//! control-plane cluster must be a static non-EDS cluster, `ads: {}` needs `ads_config`,
//! aggregated api types are refused, only the v3 transport exists.

use std::path::PathBuf;

use baton_proto::pb::envoy::config::bootstrap::v3 as bootstrap_pb;
use baton_proto::pb::envoy::config::cluster::v3 as cluster_pb;
use baton_proto::pb::envoy::config::core::v3 as core_pb;

use super::{required, timeout, with_lazy_path, Env};
use crate::error::{ConfigError, Result};
use crate::model;

pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// `dynamic_resources` of the bootstrap.
pub(crate) fn dynamic_resources(
    dynamic: Option<&bootstrap_pb::bootstrap::DynamicResources>,
    env: &Env,
) -> Result<model::DynamicResources> {
    let Some(dynamic) = dynamic else {
        return Ok(model::DynamicResources::default());
    };
    let path = "dynamic_resources";
    let ads = dynamic
        .ads_config
        .as_ref()
        .map(|api| api_config_source(api, &join(path, "ads_config"), env, ApiRole::Ads))
        .transpose()?;
    let cds = dynamic
        .cds_config
        .as_ref()
        .map(|cs| config_source(cs, &join(path, "cds_config"), env))
        .transpose()?;
    let lds = dynamic
        .lds_config
        .as_ref()
        .map(|cs| config_source(cs, &join(path, "lds_config"), env))
        .transpose()?;
    let cds_locator = super::xdstp::collection_locator(
        &dynamic.cds_resources_locator,
        "cds_resources_locator",
        cds.as_ref(),
        "cds_config",
    )?;
    let (cds, cds_collection) = with_collection(cds, cds_locator);
    let lds_locator = super::xdstp::collection_locator(
        &dynamic.lds_resources_locator,
        "lds_resources_locator",
        lds.as_ref(),
        "lds_config",
    )?;
    let (lds, lds_collection) = with_collection(lds, lds_locator);
    Ok(model::DynamicResources {
        ads,
        cds,
        lds,
        cds_collection,
        lds_collection,
        federation: model::Federation::default(),
    })
}

/// CDS's or LDS's source and collection name given its `*_resources_locator`: an
/// `xdstp://` collection goes through `source`; a `file://` one replaces it (Envoy reads
/// the file whatever `*_config` says, and needs no `*_config` for it).
fn with_collection(
    source: Option<model::ConfigSource>,
    locator: Option<super::xdstp::CollectionLocator>,
) -> (Option<model::ConfigSource>, Option<String>) {
    match locator {
        None => (source, None),
        Some(super::xdstp::CollectionLocator::Xdstp(name)) => (source, Some(name)),
        Some(super::xdstp::CollectionLocator::File(path)) => (
            Some(model::ConfigSource {
                kind: model::ConfigSourceKind::FileCollection { path },
                initial_fetch_timeout: None,
            }),
            None,
        ),
    }
}

/// `eds_cluster_config` of a `type: EDS` cluster named `name`.
pub(crate) fn eds_cluster_config(
    c: &cluster_pb::Cluster,
    name: &str,
    path: &str,
    env: &Env,
) -> Result<model::EdsConfig> {
    let field = join(path, "eds_cluster_config");
    let Some(eds) = &c.eds_cluster_config else {
        // Envoy's wording.
        return Err(ConfigError::at(
            field,
            "cannot create an EDS cluster without an EDS config",
        ));
    };
    let source_path = format!("{field}.eds_config");
    let Some(source) = &eds.eds_config else {
        return Err(ConfigError::at(
            source_path,
            "required: an EDS cluster needs a config source (ads, api_config_source or path_config_source)",
        ));
    };
    Ok(model::EdsConfig {
        service_name: if eds.service_name.is_empty() {
            name.to_string()
        } else {
            eds.service_name.clone()
        },
        source: config_source(source, &source_path, env)?,
    })
}

/// An HCM's `rds`.
pub(crate) fn rds(
    rds: &baton_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3::Rds,
    path: &str,
    env: &Env,
) -> Result<model::Rds> {
    let Some(source) = &rds.config_source else {
        return Err(ConfigError::at(
            join(path, "config_source"),
            "required: an RDS config needs a config_source (xDS-TP route_config_name is not supported by Baton yet)",
        ));
    };
    // Envoy accepts an empty route_config_name, and so does Baton.
    Ok(model::Rds {
        route_config_name: rds.route_config_name.clone(),
        source: config_source(source, &join(path, "config_source"), env)?,
    })
}

/// A `ConfigSource`.
pub(crate) fn config_source(
    cs: &core_pb::ConfigSource,
    path: &str,
    env: &Env,
) -> Result<model::ConfigSource> {
    use core_pb::config_source::ConfigSourceSpecifier as Spec;
    if !cs.authorities.is_empty() {
        return Err(ConfigError::unsupported(join(path, "authorities")));
    }
    // Paths formatted only for an error: every EDS cluster of a CDS update passes here.
    with_lazy_path(
        || join(path, "resource_api_version"),
        |p| api_version(cs.resource_api_version, p, "resource"),
    )?;
    let initial_fetch_timeout = with_lazy_path(
        || join(path, "initial_fetch_timeout"),
        |p| {
            timeout(
                cs.initial_fetch_timeout.as_ref(),
                Some(model::DEFAULT_INITIAL_FETCH_TIMEOUT),
                p,
            )
        },
    )?;
    let kind = match &cs.config_source_specifier {
        Some(Spec::Ads(_)) => {
            if !env.ads_configured {
                // Envoy only notices when it subscribes (and then shuts down); refusing
                // the config says it earlier.
                return Err(ConfigError::at(
                    join(path, "ads"),
                    "ADS must be configured to support an ADS config source (dynamic_resources.ads_config is not set)",
                ));
            }
            model::ConfigSourceKind::Ads
        }
        Some(Spec::ApiConfigSource(api)) => model::ConfigSourceKind::Api(api_config_source(
            api,
            &join(path, "api_config_source"),
            env,
            ApiRole::Single,
        )?),
        Some(Spec::PathConfigSource(source)) => {
            let source_path = join(path, "path_config_source");
            let file = existing_path(&source.path, &join(&source_path, "path"))?;
            let watched_directory = source
                .watched_directory
                .as_ref()
                .map(|dir| {
                    let dir_path = format!("{source_path}.watched_directory.path");
                    let dir = existing_path(&dir.path, &dir_path)?;
                    if !dir.is_dir() {
                        return Err(ConfigError::at(
                            dir_path,
                            format!("'{}' is not a directory", dir.display()),
                        ));
                    }
                    Ok(dir)
                })
                .transpose()?;
            model::ConfigSourceKind::Path {
                path: file,
                watched_directory,
            }
        }
        Some(Spec::Path(file)) => model::ConfigSourceKind::Path {
            path: existing_path(file, &join(path, "path"))?,
            watched_directory: None,
        },
        Some(Spec::Self_(_)) => return Err(ConfigError::unsupported(join(path, "self"))),
        None => return Err(ConfigError::at(
            path,
            "missing config source specifier (one of ads, api_config_source, path_config_source)",
        )),
    };
    Ok(model::ConfigSource {
        kind,
        initial_fetch_timeout,
    })
}

/// Envoy refuses a config whose file-based source does not exist yet.
pub(crate) fn existing_path(file: &str, path: &str) -> Result<PathBuf> {
    let file = required(file, path)?;
    let buf = PathBuf::from(file);
    if !buf.exists() {
        return Err(ConfigError::at(
            path,
            format!("paths must refer to an existing path in the system: '{file}' does not exist"),
        ));
    }
    Ok(buf)
}

/// Where an `ApiConfigSource` sits: `ads_config` or a source of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiRole {
    Ads,
    Single,
    /// A bootstrap `config_sources` entry or `default_config_source`: only the
    /// aggregated types (mapped to Grpc / DeltaGrpc, each on an ADS stream of its own).
    Authority,
}

pub(crate) fn api_config_source(
    api: &core_pb::ApiConfigSource,
    path: &str,
    env: &Env,
    role: ApiRole,
) -> Result<model::ApiConfigSource> {
    use core_pb::api_config_source::ApiType;
    let type_path = join(path, "api_type");
    let api_type = match ApiType::try_from(api.api_type) {
        Ok(ApiType::AggregatedGrpc) if role == ApiRole::Authority => model::XdsApiType::Grpc,
        Ok(ApiType::AggregatedDeltaGrpc) if role == ApiRole::Authority => {
            model::XdsApiType::DeltaGrpc
        }
        Ok(_) if role == ApiRole::Authority => {
            // Envoy's wording.
            return Err(ConfigError::at(
                type_path,
                "xdstp-based config source authority only supports AGGREGATED_GRPC and AGGREGATED_DELTA_GRPC types.",
            ));
        }
        Ok(ApiType::Grpc) => model::XdsApiType::Grpc,
        Ok(ApiType::DeltaGrpc) => model::XdsApiType::DeltaGrpc,
        Ok(ApiType::Rest) => {
            return Err(ConfigError::at(
                type_path,
                "REST is not supported by Baton yet (use GRPC or DELTA_GRPC)",
            ))
        }
        Ok(aggregated @ (ApiType::AggregatedGrpc | ApiType::AggregatedDeltaGrpc)) => {
            // Envoy 1.40 refuses both, in ads_config too.
            let hint = match role {
                ApiRole::Ads => "ads_config must use GRPC or DELTA_GRPC",
                ApiRole::Single | ApiRole::Authority => {
                    "use GRPC or DELTA_GRPC, or `ads: {}` to share the ads_config stream"
                }
            };
            return Err(ConfigError::at(
                type_path,
                format!(
                    "unsupported config source {} ({hint})",
                    aggregated.as_str_name()
                ),
            ));
        }
        Ok(ApiType::DeprecatedAndUnavailableDoNotUse) => {
            return Err(ConfigError::at(
                type_path,
                "required: GRPC or DELTA_GRPC (a gRPC service needs a gRPC api_type)",
            ))
        }
        Err(_) => return Err(ConfigError::at(type_path, "unknown enum value")),
    };
    api_version(
        api.transport_api_version,
        &join(path, "transport_api_version"),
        "transport",
    )?;
    if !api.cluster_names.is_empty() {
        return Err(ConfigError::at(
            join(path, "cluster_names"),
            "a gRPC api_config_source must not have cluster_names (name the cluster in grpc_services[0].envoy_grpc.cluster_name)",
        ));
    }
    if !api.config_validators.is_empty() {
        return Err(ConfigError::unsupported(join(path, "config_validators")));
    }
    let services_path = join(path, "grpc_services");
    let service = match api.grpc_services.as_slice() {
        [service] => service,
        [] => {
            return Err(ConfigError::at(
                services_path,
                "API configs must have a gRPC service defined",
            ))
        }
        _ => {
            return Err(ConfigError::at(
                services_path,
                "a gRPC api_config_source must have no more than 1 gRPC service",
            ))
        }
    };
    let service_path = format!("{services_path}[0]");
    let cluster_name = grpc_service_cluster(service, &service_path, env)?;
    let rate_limit = api
        .rate_limit_settings
        .as_ref()
        .map(|settings| rate_limit_settings(settings, &join(path, "rate_limit_settings")))
        .transpose()?;
    Ok(model::ApiConfigSource {
        api_type,
        cluster_name,
        grpc_timeout: timeout(
            service.timeout.as_ref(),
            None,
            &format!("{service_path}.timeout"),
        )?,
        max_receive_message_length: match &service.target_specifier {
            Some(core_pb::grpc_service::TargetSpecifier::EnvoyGrpc(envoy)) => {
                envoy.max_receive_message_length
            }
            _ => None,
        },
        set_node_on_first_message_only: api.set_node_on_first_message_only,
        rate_limit,
    })
}

/// `grpc_services[0]`: `envoy_grpc` naming a static cluster that is not itself EDS
/// (Envoy builds the control-plane connection before any xDS arrives).
fn grpc_service_cluster(service: &core_pb::GrpcService, path: &str, env: &Env) -> Result<String> {
    use core_pb::grpc_service::TargetSpecifier;
    if !service.initial_metadata.is_empty() {
        return Err(ConfigError::unsupported(format!("{path}.initial_metadata")));
    }
    if service.retry_policy.is_some() {
        return Err(ConfigError::unsupported(format!("{path}.retry_policy")));
    }
    let envoy = match &service.target_specifier {
        Some(TargetSpecifier::EnvoyGrpc(envoy)) => envoy,
        Some(TargetSpecifier::GoogleGrpc(_)) => {
            return Err(ConfigError::at(
                format!("{path}.google_grpc"),
                "not supported by Baton yet (use envoy_grpc with a static cluster)",
            ))
        }
        None => {
            return Err(ConfigError::at(
                path,
                "one of envoy_grpc, google_grpc is required",
            ))
        }
    };
    let name_path = format!("{path}.envoy_grpc.cluster_name");
    let name = required(&envoy.cluster_name, &name_path)?;
    if !envoy.authority.is_empty() {
        return Err(ConfigError::unsupported(format!(
            "{path}.envoy_grpc.authority"
        )));
    }
    if envoy.retry_policy.is_some() {
        return Err(ConfigError::unsupported(format!(
            "{path}.envoy_grpc.retry_policy"
        )));
    }
    if envoy.skip_envoy_headers {
        return Err(ConfigError::unsupported(format!(
            "{path}.envoy_grpc.skip_envoy_headers"
        )));
    }
    if !env.control_plane_clusters.contains(name) {
        return Err(ConfigError::at(
            name_path,
            format!("unknown cluster '{name}': the control-plane cluster must be a statically defined non-EDS cluster (static_resources.clusters)"),
        ));
    }
    Ok(name.to_string())
}

fn rate_limit_settings(
    settings: &core_pb::RateLimitSettings,
    path: &str,
) -> Result<model::RateLimitSettings> {
    let defaults = model::RateLimitSettings::default();
    let fill_rate = settings.fill_rate.unwrap_or(defaults.fill_rate);
    if fill_rate.is_nan() || fill_rate <= 0.0 {
        return Err(ConfigError::at(
            format!("{path}.fill_rate"),
            "must be greater than 0",
        ));
    }
    Ok(model::RateLimitSettings {
        max_tokens: settings.max_tokens.unwrap_or(defaults.max_tokens),
        fill_rate,
    })
}

/// `transport_api_version` / `resource_api_version`: AUTO means v3 today; V2 is gone.
fn api_version(raw: i32, path: &str, what: &str) -> Result<()> {
    use core_pb::ApiVersion;
    match ApiVersion::try_from(raw) {
        Ok(ApiVersion::Auto | ApiVersion::V3) => Ok(()),
        Ok(ApiVersion::V2) => Err(ConfigError::at(
            path,
            format!("the V2 xDS {what} API version is not supported (use V3)"),
        )),
        Err(_) => Err(ConfigError::at(path, "unknown enum value")),
    }
}
