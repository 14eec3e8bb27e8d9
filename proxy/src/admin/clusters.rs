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
            let _ = writeln!(out, "{h}::rq_pending_active::0");
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

/// JSON form (`?format=json`): Envoy's `ClusterStatuses` in proto3 JSON, so fields at
/// their default (`added_via_api: false`, a zero counter's `value`, an empty `hostname`,
/// priority 0) are left out, as Envoy leaves them out.
pub(super) fn clusters_json(cm: &ClusterManager) -> Value {
    let snapshot = cm.snapshot();
    let statuses: Vec<Value> = snapshot
        .iter()
        .map(|(cluster, meta)| {
            let hosts: Vec<Value> = cluster.hosts().iter().map(|h| host_json(h)).collect();
            let cb = &cluster.model.circuit_breakers;
            let threshold = |priority: Option<&str>| {
                let mut t = json!({
                    "max_connections": cb.max_connections,
                    "max_pending_requests": cb.max_pending_requests,
                    "max_requests": cb.max_requests,
                    "max_retries": cb.max_retries,
                });
                if let Some(p) = priority {
                    t["priority"] = json!(p);
                }
                t
            };
            let mut status = json!({
                "name": cluster.model.name,
                "circuit_breakers": {"thresholds": [threshold(None), threshold(Some("HIGH"))]},
                "observability_name": cluster.model.stat_name,
                "host_statuses": hosts,
            });
            if meta.added_via_api {
                status["added_via_api"] = json!(true);
            }
            status
        })
        .collect();
    json!({ "cluster_statuses": statuses })
}

/// One `HostStatus`: Envoy's counters, then its gauges, each without `value` when zero.
fn host_json(host: &crate::upstream::Host) -> Value {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let total = load(&host.rq_total);
    let error = load(&host.rq_error);
    let stat = |name: &str, gauge: bool, value: u64| {
        let mut s = json!({ "name": name });
        if gauge {
            s["type"] = json!("GAUGE");
        }
        if value != 0 {
            s["value"] = json!(value.to_string());
        }
        s
    };
    let mut locality = serde_json::Map::new();
    for (key, part) in ["region", "zone", "sub_zone"]
        .into_iter()
        .zip(host.locality.split('/'))
    {
        if !part.is_empty() {
            locality.insert(key.to_string(), json!(part));
        }
    }
    let mut status = json!({
        "address": address_json(&host.address),
        "stats": [
            stat("cx_connect_fail", false, load(&host.cx_connect_fail)),
            stat("cx_total", false, load(&host.cx_total)),
            stat("rq_error", false, error),
            stat("rq_success", false, total.saturating_sub(error)),
            stat("rq_timeout", false, 0),
            stat("rq_total", false, total),
            stat("cx_active", true, load(&host.cx_active)),
            stat("rq_active", true, load(&host.rq_active)),
            stat("rq_pending_active", true, 0),
        ],
        "health_status": {"eds_health_status": if host.is_healthy() { "HEALTHY" } else { "UNHEALTHY" }},
        "weight": host.weight,
        "locality": locality,
    });
    if let Some(hostname) = host.hostname.as_deref().filter(|h| !h.is_empty()) {
        status["hostname"] = json!(hostname);
    }
    if host.priority != 0 {
        status["priority"] = json!(host.priority);
    }
    status
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
