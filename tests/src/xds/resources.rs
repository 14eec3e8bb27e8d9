//! xDS resources for the test control plane: type URLs, JSON builders for clusters,
//! cluster load assignments, listeners and route configurations (the same JSON shapes as
//! [`crate::config`]'s static builders), and their conversion into `prost_types::Any`
//! through the proto3 JSON mapping (prost-reflect over baton-proto's descriptor set).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, Context};
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage};
use prost_types::Any;
use serde_json::{json, Value};

use crate::config;

/// Type URL of `envoy.config.cluster.v3.Cluster` (CDS).
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Type URL of `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// Type URL of `envoy.config.listener.v3.Listener` (LDS).
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Type URL of `envoy.config.route.v3.RouteConfiguration` (RDS).
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// Type URL of `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The four types in the order Envoy subscribes to them at startup.
pub const ALL_TYPES: [&str; 4] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE];

/// Short name of a type URL for messages (`Cluster`, `ClusterLoadAssignment`, ...).
pub fn short_type(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

/// The descriptor pool of baton-proto, decoded once.
fn pool() -> anyhow::Result<&'static DescriptorPool> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(baton_proto::FDS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| anyhow!("baton-proto descriptor set: {e}"))
}

/// Encodes the JSON form of the message named by `type_url` (proto3 JSON mapping, nested
/// `typed_config` with `@type` included) as an `Any`.
pub fn to_any(type_url: &str, json: &Value) -> anyhow::Result<Any> {
    let full_name = type_url.rsplit('/').next().unwrap_or(type_url);
    let descriptor = pool()?
        .get_message_by_name(full_name)
        .with_context(|| format!("{full_name} is not in baton-proto"))?;
    let message =
        DynamicMessage::deserialize_with_options(descriptor, json, &DeserializeOptions::new())
            .with_context(|| format!("{full_name} from {json}"))?;
    Ok(Any {
        type_url: type_url.to_string(),
        value: message.encode_to_vec(),
    })
}

/// Encodes a prost message (e.g. one built from a decoded resource and then broken on
/// purpose) as an `Any` of `type_url`.
pub fn message_any(type_url: &str, message: &impl Message) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: message.encode_to_vec(),
    }
}

/// Clusters as `Any`s.
pub fn clusters(clusters: &[Value]) -> anyhow::Result<Vec<Any>> {
    clusters.iter().map(|c| to_any(CLUSTER_TYPE, c)).collect()
}

/// Cluster load assignments as `Any`s.
pub fn load_assignments(assignments: &[Value]) -> anyhow::Result<Vec<Any>> {
    assignments
        .iter()
        .map(|a| to_any(ENDPOINT_TYPE, a))
        .collect()
}

/// Listeners as `Any`s.
pub fn listeners(listeners: &[Value]) -> anyhow::Result<Vec<Any>> {
    listeners.iter().map(|l| to_any(LISTENER_TYPE, l)).collect()
}

/// Route configurations as `Any`s.
pub fn route_configs(route_configs: &[Value]) -> anyhow::Result<Vec<Any>> {
    route_configs
        .iter()
        .map(|r| to_any(ROUTE_TYPE, r))
        .collect()
}

/// A config source that points at ADS (`{ads: {}}`, v3), for EDS and RDS inside resources.
pub fn ads_source() -> Value {
    json!({ "ads": {}, "resource_api_version": "V3" })
}

/// A config source over ADS with an `initial_fetch_timeout`.
pub fn ads_source_with_timeout(initial_fetch_timeout: Duration) -> Value {
    json!({
        "ads": {},
        "resource_api_version": "V3",
        "initial_fetch_timeout": duration(initial_fetch_timeout),
    })
}

/// A duration in proto3 JSON form (`"1.500s"`).
pub fn duration(duration: Duration) -> String {
    format!("{}.{:03}s", duration.as_secs(), duration.subsec_millis())
}

/// An EDS cluster (round robin, 0.25 s connect timeout) whose endpoints come over ADS
/// under the cluster's own name.
pub fn eds_cluster(name: &str) -> Value {
    eds_cluster_from(name, ads_source())
}

/// An EDS cluster whose endpoints come from `eds_config` (a config source).
pub fn eds_cluster_from(name: &str, eds_config: Value) -> Value {
    json!({
        "name": name,
        "type": "EDS",
        "connect_timeout": "0.25s",
        "lb_policy": "ROUND_ROBIN",
        "eds_cluster_config": { "eds_config": eds_config },
    })
}

/// A STATIC cluster over `addrs` (the same shape as in static config).
pub fn static_cluster(name: &str, addrs: &[SocketAddr]) -> Value {
    config::static_cluster(name, addrs)
}

/// A cluster load assignment for `cluster` with one locality holding `addrs`.
pub fn load_assignment(cluster: &str, addrs: &[SocketAddr]) -> Value {
    let endpoints: Vec<Value> = addrs.iter().map(|a| config::endpoint(*a)).collect();
    json!({ "cluster_name": cluster, "endpoints": [ { "lb_endpoints": endpoints } ] })
}

/// A route configuration named `name` whose one virtual host (any domain) sends every
/// path to `cluster`.
pub fn route_to(name: &str, cluster: &str) -> Value {
    route_config(
        name,
        vec![config::vhost(
            "all",
            &["*"],
            vec![config::prefix_route("/", cluster)],
        )],
    )
}

/// A route configuration named `name` with `virtual_hosts`.
pub fn route_config(name: &str, virtual_hosts: Vec<Value>) -> Value {
    json!({ "name": name, "virtual_hosts": virtual_hosts })
}

/// A listener named `name` on `127.0.0.1:port` (0 = any) whose HCM (stat prefix
/// `ingress`) takes its routes from RDS over ADS under `route_config_name`.
pub fn rds_listener(name: &str, port: u16, route_config_name: &str) -> Value {
    rds_listener_from(name, port, route_config_name, ads_source())
}

/// A listener like [`rds_listener`] whose routes come from `config_source`.
pub fn rds_listener_from(
    name: &str,
    port: u16,
    route_config_name: &str,
    config_source: Value,
) -> Value {
    let hcm = json!({
        "@type": config::HCM_TYPE,
        "stat_prefix": "ingress",
        "rds": { "config_source": config_source, "route_config_name": route_config_name },
        "http_filters": [ config::router_filter() ],
    });
    config::listener_on(name, "127.0.0.1", port, vec![config::hcm_filter(hcm)])
}

/// A listener named `name` on `127.0.0.1:port` (0 = any) whose HCM (stat prefix
/// `ingress`) carries `route_config` inline.
pub fn inline_listener(name: &str, port: u16, route_config: Value) -> Value {
    config::listener_on(
        name,
        "127.0.0.1",
        port,
        vec![config::hcm_filter(config::hcm(route_config))],
    )
}

/// The name of a resource: field 1 of Cluster, Listener, RouteConfiguration (`name`) and
/// ClusterLoadAssignment (`cluster_name`) alike, so one decoder serves all four.
pub fn resource_name(any: &Any) -> anyhow::Result<String> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct NameOnly {
        #[prost(string, tag = "1")]
        name: String,
    }
    let decoded = NameOnly::decode(any.value.as_slice())
        .with_context(|| format!("decoding the name of a {}", any.type_url))?;
    Ok(decoded.name)
}
