//! `http_filters` (the connection manager's filter chain, router last) and
//! `typed_per_filter_config` (per-route filter overrides), with Envoy 1.40's rules:
//! a filter Baton does not implement is refused unless `is_optional`, in which case it
//! is left out; the router must be last and cannot be `disabled` (it may be optional);
//! a per-route config for a filter Baton does not implement is refused unless its
//! `FilterConfig` wrapper is `is_optional`, and a `FilterConfig { disabled: true }` is
//! kept whatever it names.

use std::collections::HashMap;

use baton_proto::pb::envoy::config::route::v3 as route_pb;
use baton_proto::pb::envoy::extensions::filters::http::router::v3 as router_pb;
use baton_proto::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm_pb;

use super::{any_type, decode_any, required};
use crate::error::{ConfigError, Result};
use crate::model;

/// `envoy.filters.http.router`'s config message.
pub(crate) const ROUTER_TYPE: &str = "envoy.extensions.filters.http.router.v3.Router";

/// The per-route wrapper that carries `is_optional` and `disabled`.
pub(crate) const FILTER_CONFIG_TYPE: &str = "envoy.config.route.v3.FilterConfig";

/// The translated chain: the filters before the router, and the router's own config.
pub(crate) struct HttpFilterChain {
    pub(crate) filters: Vec<model::HttpFilter>,
    pub(crate) router: model::RouterConfig,
}

/// `http_filters` at `path`.
pub(crate) fn http_filters(filters: &[hcm_pb::HttpFilter], path: &str) -> Result<HttpFilterChain> {
    use hcm_pb::http_filter::ConfigType;
    let must_end_with_router = || {
        ConfigError::at(
            path,
            format!("http_filters must end with the router filter (envoy.filters.http.router, \"@type\": type.googleapis.com/{ROUTER_TYPE})"),
        )
    };
    let Some(last) = filters.len().checked_sub(1) else {
        return Err(must_end_with_router());
    };
    let mut chain = Vec::new();
    let mut router = None;
    for (i, filter) in filters.iter().enumerate() {
        let fpath = format!("{path}[{i}]");
        required(&filter.name, &format!("{fpath}.name"))?;
        let any = match &filter.config_type {
            Some(ConfigType::TypedConfig(any)) => Some(any),
            Some(ConfigType::ConfigDiscovery(_)) => {
                return Err(ConfigError::unsupported(format!(
                    "{fpath}.config_discovery"
                )))
            }
            None => None,
        };
        let type_name = any.map(any_type).unwrap_or_default();
        if let (Some(any), ROUTER_TYPE) = (any, type_name) {
            if i != last {
                return Err(ConfigError::at(
                    fpath,
                    "the router filter must be the last HTTP filter",
                ));
            }
            if filter.disabled {
                return Err(ConfigError::at(
                    format!("{fpath}.disabled"),
                    "the router filter ends the chain and cannot be disabled",
                ));
            }
            let config: router_pb::Router =
                decode_any(any, ROUTER_TYPE, &format!("{fpath}.typed_config"))?;
            router = Some(model::RouterConfig {
                suppress_envoy_headers: config.suppress_envoy_headers,
            });
            continue;
        }
        match implemented(type_name) {
            Some(kind) => chain.push(model::HttpFilter {
                name: filter.name.clone(),
                kind,
                disabled: filter.disabled,
                is_optional: filter.is_optional,
            }),
            // Envoy skips an optional filter it has no implementation for; so does Baton.
            None if filter.is_optional => {}
            None if i < last => {
                let what = if type_name.is_empty() {
                    filter.name.as_str()
                } else {
                    type_name
                };
                return Err(ConfigError::at(
                    fpath,
                    format!("HTTP filter '{what}' is not supported by Baton yet"),
                ));
            }
            None if any.is_none() => {
                return Err(ConfigError::at(
                    format!("{fpath}.typed_config"),
                    format!("required: \"@type\": type.googleapis.com/{ROUTER_TYPE}"),
                ))
            }
            None => {
                return Err(ConfigError::at(
                    format!("{fpath}.typed_config.@type"),
                    format!(
                        "HTTP filter '{type_name}' is not supported by Baton yet; http_filters must end with the router ({ROUTER_TYPE})"
                    ),
                ))
            }
        }
    }
    let router = router.ok_or_else(must_end_with_router)?;
    Ok(HttpFilterChain {
        filters: chain,
        router,
    })
}

/// The model of a filter Baton implements, by its `typed_config` type (none yet: each
/// new filter adds an arm that decodes its config).
fn implemented(_type_name: &str) -> Option<model::HttpFilterKind> {
    None
}

/// `typed_per_filter_config` at `path` (route config, virtual host, route or weighted
/// cluster entry).
pub(crate) fn filter_overrides(
    map: &HashMap<String, prost_types::Any>,
    path: &str,
) -> Result<model::FilterOverrides> {
    let mut overrides = model::FilterOverrides::default();
    if map.is_empty() {
        return Ok(overrides);
    }
    // Sorted, so the first error reported does not depend on hash order.
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    for name in names {
        let epath = format!("{path}.typed_per_filter_config[\"{name}\"]");
        let any = &map[name];
        let config = if any_type(any) == FILTER_CONFIG_TYPE {
            let wrapper: route_pb::FilterConfig = decode_any(any, FILTER_CONFIG_TYPE, &epath)?;
            if wrapper.disabled {
                // Envoy ignores `config` of a disabled entry.
                overrides.set(name.clone(), model::FilterOverride::Disabled);
                continue;
            }
            if wrapper.is_optional {
                // No Baton filter has a per-route config yet, so every optional entry is
                // one Baton may ignore.
                continue;
            }
            match wrapper.config {
                Some(config) => config,
                None => {
                    return Err(ConfigError::at(
                        format!("{epath}.config"),
                        format!("per-filter config for '{name}' is empty (set config, disabled or is_optional)"),
                    ))
                }
            }
        } else {
            any.clone()
        };
        let type_name = any_type(&config);
        if type_name == ROUTER_TYPE {
            return Err(ConfigError::at(
                epath,
                "the router filter has no per-route or per-virtual-host config",
            ));
        }
        return Err(ConfigError::at(
            epath,
            format!(
                "per-route config of HTTP filter '{name}' ('{type_name}') is not supported by Baton yet"
            ),
        ));
    }
    Ok(overrides)
}
