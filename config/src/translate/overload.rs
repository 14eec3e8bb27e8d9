//! `overload_manager`: Baton implements one resource monitor, Envoy's global downstream
//! connection limit (`envoy.resource_monitors.global_downstream_max_connections`).
//! Other monitors are refused by name; actions and load shed points by `supported.rs`.

use baton_proto::pb::envoy::config::overload::v3 as overload_pb;
use baton_proto::pb::envoy::extensions::resource_monitors::downstream_connections::v3 as downstream_pb;

use super::{any_type, decode_any};
use crate::error::{ConfigError, Result};

const DOWNSTREAM_CONNECTIONS_TYPE: &str =
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";
const DOWNSTREAM_CONNECTIONS_NAME: &str =
    "envoy.resource_monitors.global_downstream_max_connections";

/// `max_active_downstream_connections` of the global connection limit monitor, if any.
pub(crate) fn global_downstream_max_connections(
    om: &overload_pb::OverloadManager,
    path: &str,
) -> Result<Option<u64>> {
    use overload_pb::resource_monitor::ConfigType;
    if om.resource_monitors.is_empty() {
        return Err(ConfigError::at(
            format!("{path}.resource_monitors"),
            "at least one resource monitor is required",
        ));
    }
    let mut limit = None;
    for (i, monitor) in om.resource_monitors.iter().enumerate() {
        let mpath = format!("{path}.resource_monitors[{i}]");
        let any = match &monitor.config_type {
            Some(ConfigType::TypedConfig(any)) => any,
            None => {
                return Err(ConfigError::at(
                    format!("{mpath}.typed_config"),
                    format!("required for resource monitor '{}'", monitor.name),
                ))
            }
        };
        if any_type(any) != DOWNSTREAM_CONNECTIONS_TYPE {
            return Err(ConfigError::at(
                format!("{mpath}.typed_config.@type"),
                format!(
                    "resource monitor '{}' is not supported by Baton yet (supported: {DOWNSTREAM_CONNECTIONS_NAME})",
                    if monitor.name.is_empty() { any_type(any) } else { monitor.name.as_str() }
                ),
            ));
        }
        if limit.is_some() {
            return Err(ConfigError::at(
                mpath,
                format!("duplicate resource monitor '{DOWNSTREAM_CONNECTIONS_NAME}'"),
            ));
        }
        let typed_path = format!("{mpath}.typed_config");
        let config: downstream_pb::DownstreamConnectionsConfig =
            decode_any(any, DOWNSTREAM_CONNECTIONS_TYPE, &typed_path)?;
        let max = u64::try_from(config.max_active_downstream_connections)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ConfigError::at(
                    format!("{typed_path}.max_active_downstream_connections"),
                    "must be greater than 0",
                )
            })?;
        limit = Some(max);
    }
    Ok(limit)
}
