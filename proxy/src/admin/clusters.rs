//! `/clusters` in Envoy's text (`cluster::host::stat::value`) and JSON shapes.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::upstream::{ClusterManager, HostAddress};

/// Text form.
pub(super) fn clusters_text(cm: &ClusterManager) -> String {
    let mut out = String::new();
    let snapshot = cm.snapshot();
    for (cluster, meta) in snapshot.iter() {
        let name = &cluster.model.name;
        let cb = &cluster.model.circuit_breakers;
        let _ = writeln!(
            out,
            "{name}::observability_name::{}",
            cluster.model.stat_name
        );
        for prio in ["default_priority", "high_priority"] {
            let _ = writeln!(
                out,
                "{name}::{prio}::max_connections::{}",
                cb.max_connections
            );
            let _ = writeln!(
                out,
                "{name}::{prio}::max_pending_requests::{}",
                cb.max_pending_requests
            );
            let _ = writeln!(out, "{name}::{prio}::max_requests::{}", cb.max_requests);
            let _ = writeln!(out, "{name}::{prio}::max_retries::{}", cb.max_retries);
        }
        let _ = writeln!(out, "{name}::added_via_api::{}", meta.added_via_api);
        for host in cluster.hosts() {
            let h = format!("{name}::{}", host.address);
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let _ = writeln!(out, "{h}::cx_active::{}", load(&host.cx_active));
            let _ = writeln!(out, "{h}::cx_connect_fail::{}", load(&host.cx_connect_fail));
            let _ = writeln!(out, "{h}::cx_total::{}", load(&host.cx_total));
            let _ = writeln!(out, "{h}::rq_active::{}", load(&host.rq_active));
            let _ = writeln!(out, "{h}::rq_error::{}", load(&host.rq_error));
            let success = load(&host.rq_total).saturating_sub(load(&host.rq_error));
            let _ = writeln!(out, "{h}::rq_success::{success}");
            let _ = writeln!(out, "{h}::rq_timeout::0");
            let _ = writeln!(out, "{h}::rq_total::{}", load(&host.rq_total));
            let _ = writeln!(
                out,
                "{h}::hostname::{}",
                host.hostname.as_deref().unwrap_or("")
            );
            let health = if host.is_healthy() {
                "healthy"
            } else {
                "/eds_health_status/unhealthy"
            };
            let _ = writeln!(out, "{h}::health_flags::{health}");
            let _ = writeln!(out, "{h}::weight::{}", host.weight);
            let mut parts = host.locality.split('/');
            for key in ["region", "zone", "sub_zone"] {
                let _ = writeln!(out, "{h}::{key}::{}", parts.next().unwrap_or(""));
            }
            let _ = writeln!(out, "{h}::canary::false");
            let _ = writeln!(out, "{h}::priority::{}", host.priority);
            let _ = writeln!(out, "{h}::success_rate::-1");
            let _ = writeln!(out, "{h}::local_origin_success_rate::-1");
        }
    }
    out
}

/// JSON form (`?format=json`).
pub(super) fn clusters_json(cm: &ClusterManager) -> Value {
    let snapshot = cm.snapshot();
    let statuses: Vec<Value> = snapshot
        .iter()
        .map(|(cluster, meta)| {
            let hosts: Vec<Value> = cluster
                .hosts()
                .iter()
                .map(|host| {
                    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                    json!({
                        "address": address_json(&host.address),
                        "stats": [
                            {"name": "cx_active", "type": "GAUGE", "value": load(&host.cx_active).to_string()},
                            {"name": "cx_total", "value": load(&host.cx_total).to_string()},
                            {"name": "cx_connect_fail", "value": load(&host.cx_connect_fail).to_string()},
                            {"name": "rq_active", "type": "GAUGE", "value": load(&host.rq_active).to_string()},
                            {"name": "rq_total", "value": load(&host.rq_total).to_string()},
                            {"name": "rq_error", "value": load(&host.rq_error).to_string()},
                        ],
                        "health_status": {"eds_health_status": if host.is_healthy() { "HEALTHY" } else { "UNHEALTHY" }},
                        "weight": host.weight,
                        "hostname": host.hostname.clone().unwrap_or_default(),
                        "priority": host.priority,
                    })
                })
                .collect();
            json!({
                "name": cluster.model.name,
                "observability_name": cluster.model.stat_name,
                "added_via_api": meta.added_via_api,
                "host_statuses": hosts,
            })
        })
        .collect();
    json!({ "cluster_statuses": statuses })
}

/// A host's `envoy.config.core.v3.Address`, as Envoy lists it (a pipe without `mode`).
pub(super) fn address_json(address: &HostAddress) -> Value {
    match address {
        HostAddress::Ip(addr) => json!({"socket_address": {
            "address": addr.ip().to_string(),
            "port_value": addr.port()}}),
        HostAddress::Pipe(pipe) => json!({"pipe": {"path": pipe.name()}}),
    }
}
