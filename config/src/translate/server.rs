//! Bootstrap-wide settings outside the resources: `cluster_manager`,
//! `application_log_config`, `deferred_stat_options` and `bootstrap_extensions`, checked
//! as Envoy checks them at startup.

use std::collections::HashSet;

use baton_proto::pb::envoy::config::bootstrap::v3 as bootstrap_pb;
use baton_proto::pb::envoy::extensions::bootstrap::internal_listener::v3 as internal_listener_pb;

use super::decode_any;
use crate::error::{ConfigError, Result};
use crate::model;

const INTERNAL_LISTENER_TYPE: &str =
    "envoy.extensions.bootstrap.internal_listener.v3.InternalListener";

/// `cluster_manager`; `static_clusters` are the names of `static_resources.clusters`
/// (the local cluster must be one of them). `upstream_bind_config` and
/// `load_stats_config` are refused by the allowlist.
pub(crate) fn cluster_manager(
    proto: Option<&bootstrap_pb::ClusterManager>,
    static_clusters: &HashSet<String>,
) -> Result<model::ClusterManagerConfig> {
    let Some(proto) = proto else {
        return Ok(model::ClusterManagerConfig::default());
    };
    let local_cluster_name = if proto.local_cluster_name.is_empty() {
        None
    } else if static_clusters.contains(&proto.local_cluster_name) {
        Some(proto.local_cluster_name.clone())
    } else {
        return Err(ConfigError::at(
            "cluster_manager.local_cluster_name",
            format!(
                "local cluster '{}' must be defined",
                proto.local_cluster_name
            ),
        ));
    };
    let outlier_event_log_path = proto
        .outlier_detection
        .as_ref()
        .map(|o| o.event_log_path.clone())
        .filter(|p| !p.is_empty());
    Ok(model::ClusterManagerConfig {
        local_cluster_name,
        outlier_event_log_path,
        enable_deferred_cluster_creation: proto.enable_deferred_cluster_creation,
    })
}

/// `application_log_config` (whether `--log-format` is also given is the command
/// line's check).
pub(crate) fn application_log_format(
    proto: Option<&bootstrap_pb::bootstrap::ApplicationLogConfig>,
) -> Result<Option<model::ApplicationLogFormat>> {
    use bootstrap_pb::bootstrap::application_log_config::log_format::LogFormat;
    let path = "application_log_config.log_format";
    let Some(format) = proto.and_then(|c| c.log_format.as_ref()) else {
        return Ok(None);
    };
    match &format.log_format {
        Some(LogFormat::TextFormat(text)) => {
            Ok(Some(model::ApplicationLogFormat::Text(text.clone())))
        }
        Some(LogFormat::JsonFormat(json)) => {
            let json = struct_to_json(json);
            if json.to_string().contains("%v") {
                return Err(ConfigError::at(
                    format!("{path}.json_format"),
                    "Usage of %v is unavailable for JSON log formats",
                ));
            }
            Ok(Some(model::ApplicationLogFormat::Json(json)))
        }
        None => Err(ConfigError::at(
            path,
            "one of json_format, text_format is required",
        )),
    }
}

/// `bootstrap_extensions`: the internal listener (typed or, unwrapped at load, as a
/// `TypedStruct`); every other type is refused by its type URL.
pub(crate) fn bootstrap_extensions(
    proto: &[baton_proto::pb::envoy::config::core::v3::TypedExtensionConfig],
) -> Result<Vec<model::BootstrapExtension>> {
    let mut out = Vec::with_capacity(proto.len());
    for (i, extension) in proto.iter().enumerate() {
        let path = format!("bootstrap_extensions[{i}]");
        if extension.name.is_empty() {
            return Err(ConfigError::at(
                format!("{path}.name"),
                "value length must be at least 1 characters",
            ));
        }
        let config_path = format!("{path}.typed_config");
        let Some(any) = &extension.typed_config else {
            return Err(ConfigError::at(config_path, "value is required"));
        };
        let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
        if type_name != INTERNAL_LISTENER_TYPE {
            return Err(ConfigError::at(
                format!("{config_path}.@type"),
                format!(
                    "bootstrap extension '{}' of type '{}' is not supported by Baton yet",
                    extension.name, any.type_url
                ),
            ));
        }
        let config: internal_listener_pb::InternalListener =
            decode_any(any, INTERNAL_LISTENER_TYPE, &config_path)?;
        let buffer_size_kb = config.buffer_size_kb.unwrap_or(1024);
        if !(1..=8192).contains(&buffer_size_kb) {
            return Err(ConfigError::at(
                format!("{config_path}.buffer_size_kb"),
                "value must be inside range [1, 8192]",
            ));
        }
        out.push(model::BootstrapExtension::InternalListener { buffer_size_kb });
    }
    Ok(out)
}

/// A protobuf Struct as JSON.
fn struct_to_json(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
    }
}
