//! `/config_dump?include_eds`: Envoy's `EndpointsConfigDump`, one
//! `ClusterLoadAssignment` per active cluster built from its current hosts (not from the
//! configured assignment), as Envoy 1.40 builds it: clusters from `static_resources` under
//! `static_endpoint_configs`, CDS ones under `dynamic_endpoint_configs` (neither with a
//! version or a timestamp); per priority, hosts grouped by locality, the node's locality
//! first and then the others in (region, zone, sub_zone) order; the locality weight
//! (0 when unset, the last one when a locality repeats), every host's weight and health
//! (`HEALTHY` or `UNHEALTHY`) and an empty `health_check_config`; a DNS cluster's hosts
//! with the name they were resolved from and an empty `metadata`.

use std::sync::Arc;

use baton_config::model::{DiscoveryType, Locality, DEFAULT_OVERPROVISIONING_FACTOR};
use serde_json::{json, Map, Value};

use super::clusters::address_json;
use crate::upstream::{ClusterManager, Host, UpstreamCluster};

const ASSIGNMENT_TYPE: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// The `EndpointsConfigDump` section.
pub(super) fn endpoints_dump(clusters: &ClusterManager, node: &Locality) -> Value {
    let snapshot = clusters.snapshot();
    let mut all: Vec<_> = snapshot.iter().collect();
    all.sort_by(|a, b| a.0.name().cmp(b.0.name()));
    let mut statics = Vec::new();
    let mut dynamics = Vec::new();
    for (cluster, meta) in all {
        let entry = json!({ "endpoint_config": assignment(clusters, cluster, &node.name()) });
        if meta.added_via_api {
            dynamics.push(entry);
        } else {
            statics.push(entry);
        }
    }
    let mut dump = json!({ "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump" });
    if !statics.is_empty() {
        dump["static_endpoint_configs"] = Value::Array(statics);
    }
    if !dynamics.is_empty() {
        dump["dynamic_endpoint_configs"] = Value::Array(dynamics);
    }
    dump
}

/// One cluster's hosts as a `ClusterLoadAssignment`, named after its EDS service.
fn assignment(clusters: &ClusterManager, cluster: &UpstreamCluster, node_locality: &str) -> Value {
    let model = &cluster.model;
    let (name, factor) = match model.discovery {
        DiscoveryType::Eds => {
            let service = model
                .eds
                .as_ref()
                .map(|e| e.service_name.as_str())
                .filter(|s| !s.is_empty())
                .unwrap_or(model.name.as_str());
            let factor = clusters
                .eds_overprovisioning_factor(service)
                .unwrap_or(DEFAULT_OVERPROVISIONING_FACTOR);
            (service, factor)
        }
        _ => (
            model.name.as_str(),
            model.load_assignment.overprovisioning_factor,
        ),
    };
    let mut out = Map::new();
    out.insert("@type".into(), json!(ASSIGNMENT_TYPE));
    out.insert("cluster_name".into(), json!(name));
    let dns = matches!(
        model.discovery,
        DiscoveryType::StrictDns | DiscoveryType::LogicalDns
    );
    let endpoints = locality_entries(cluster, node_locality, dns);
    if !endpoints.is_empty() {
        out.insert("endpoints".into(), Value::Array(endpoints));
    }
    out.insert(
        "policy".into(),
        json!({ "overprovisioning_factor": factor }),
    );
    Value::Object(out)
}

/// One group of hosts: priority, locality name, locality weight, hosts.
struct Group {
    priority: u32,
    locality: Arc<str>,
    weight: u32,
    hosts: Vec<Arc<Host>>,
}

/// `endpoints[]`: the cluster's hosts grouped by (priority, locality) in Envoy's order
/// (`dns`: hosts resolved by a DNS cluster, which Envoy shows with an empty metadata).
fn locality_entries(cluster: &UpstreamCluster, node_locality: &str, dns: bool) -> Vec<Value> {
    let mut groups: Vec<Group> = Vec::new();
    for (priority, weight, hosts) in cluster.hosts_by_locality() {
        let Some(first) = hosts.first() else {
            continue;
        };
        let locality = first.locality.clone();
        match groups
            .iter_mut()
            .find(|g| g.priority == priority && g.locality == locality)
        {
            Some(group) => {
                group.hosts.extend(hosts.iter().cloned());
                // A repeated locality keeps the weight of its last entry (measured).
                group.weight = weight.unwrap_or(0);
            }
            None => groups.push(Group {
                priority,
                locality,
                weight: weight.unwrap_or(0),
                hosts,
            }),
        }
    }
    let split = |name: &str| -> (String, String, String) {
        let mut parts = name.splitn(3, '/');
        let mut next = || parts.next().unwrap_or("").to_string();
        (next(), next(), next())
    };
    groups.sort_by(|a, b| {
        let key = |g: &Group| {
            (
                g.priority,
                *g.locality != *node_locality,
                split(&g.locality),
            )
        };
        key(a).cmp(&key(b))
    });
    groups
        .iter()
        .map(|g| {
            let (region, zone, sub_zone) = split(&g.locality);
            let mut locality = Map::new();
            for (key, value) in [("region", region), ("zone", zone), ("sub_zone", sub_zone)] {
                if !value.is_empty() {
                    locality.insert(key.into(), Value::String(value));
                }
            }
            let mut entry = json!({
                "locality": locality,
                "lb_endpoints": g.hosts.iter().map(|h| lb_endpoint(h, dns)).collect::<Vec<_>>(),
                "load_balancing_weight": g.weight,
            });
            if g.priority != 0 {
                entry["priority"] = json!(g.priority);
            }
            entry
        })
        .collect()
}

fn lb_endpoint(host: &Host, dns: bool) -> Value {
    let mut endpoint = json!({
        "address": address_json(&host.address),
        "health_check_config": {},
    });
    if let Some(hostname) = host.hostname.as_deref().filter(|h| !h.is_empty()) {
        endpoint["hostname"] = json!(hostname);
    }
    let mut out = json!({
        "endpoint": endpoint,
        "health_status": if host.is_healthy() { "HEALTHY" } else { "UNHEALTHY" },
        "load_balancing_weight": host.weight,
    });
    if dns {
        out["metadata"] = json!({});
    }
    out
}
