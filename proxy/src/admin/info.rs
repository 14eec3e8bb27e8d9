//! `/server_info` and `/listeners` bodies in Envoy's shapes.

use std::net::SocketAddr;
use std::time::SystemTime;

use serde_json::{json, Value};

use super::AdminContext;
use super::ListenerStatus;

/// Envoy formats durations in /server_info as whole seconds with an `s` suffix.
fn secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs())
}

/// `/server_info` JSON.
pub(super) fn server_info(ctx: &AdminContext) -> Value {
    let state = &ctx.state;
    let first = *state
        .first_start_wall
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let all_epochs = SystemTime::now().duration_since(first).unwrap_or_default();
    json!({
        "version": crate::server::version_line(),
        "state": super::reported_state(state).as_str(),
        "hot_restart_version": "baton.hot_restart.v1",
        "command_line_options": state.options.to_server_info_json(),
        "node": {
            "id": ctx.node.id,
            "cluster": ctx.node.cluster,
            "user_agent_name": "baton",
            "user_agent_version": crate::server::VERSION,
        },
        "uptime_current_epoch": secs(state.started.elapsed()),
        "uptime_all_epochs": secs(all_epochs),
        "restart_epoch": state.options.restart_epoch,
        "hot_restart_generation": state.hot_restart_generation.load(std::sync::atomic::Ordering::Relaxed),
    })
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

/// `/listeners?format=json`.
pub(super) fn listeners_json(listeners: &[ListenerStatus]) -> Value {
    let statuses: Vec<Value> = listeners
        .iter()
        .map(|l| json!({"name": l.name, "local_address": socket_address(l.local_address)}))
        .collect();
    json!({ "listener_statuses": statuses })
}

/// `/listeners` text: `name::address` per line.
pub(super) fn listeners_text(listeners: &[ListenerStatus]) -> String {
    listeners
        .iter()
        .map(|l| format!("{}::{}\n", l.name, l.local_address))
        .collect()
}

/// Envoy's timestamp form (RFC 3339, UTC, `Z`).
pub(crate) fn timestamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `/config_dump`: Envoy's envelope around the bootstrap (static resources appear in
/// the bootstrap dump and again as static clusters/listeners/routes).
pub(super) fn config_dump(ctx: &super::AdminContext) -> Value {
    let bootstrap = &ctx.config_dump;
    let static_resources = bootstrap.get("static_resources");
    let list = |key: &str| -> Vec<Value> {
        static_resources
            .and_then(|s| s.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let clusters: Vec<Value> = list("clusters")
        .into_iter()
        .map(|c| json!({"cluster": c}))
        .collect();
    let listeners: Vec<Value> = list("listeners")
        .into_iter()
        .map(|l| {
            let name = l.get("name").cloned().unwrap_or(Value::Null);
            json!({"name": name, "active_state": {"listener": l}})
        })
        .collect();
    let snapshot = ctx.clusters.snapshot();
    let mut active = Vec::new();
    for (_, meta) in snapshot.iter().filter(|(_, m)| m.added_via_api) {
        active.push(json!({
            "version_info": meta.version_info,
            "cluster": meta.config_dump.as_deref().cloned().unwrap_or(Value::Null),
            "last_updated": timestamp(meta.last_updated),
        }));
    }
    let warming: Vec<Value> = ctx
        .clusters
        .warming_clusters()
        .into_iter()
        .map(|(_, meta)| {
            json!({
                "version_info": meta.version_info,
                "cluster": meta.config_dump.as_deref().cloned().unwrap_or(Value::Null),
                "last_updated": timestamp(meta.last_updated),
            })
        })
        .collect();
    let mut clusters_dump = json!({
        "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        "static_clusters": clusters,
    });
    let cds_version = ctx.clusters.cds_version();
    if !cds_version.is_empty() {
        clusters_dump["version_info"] = Value::String(cds_version);
    }
    if !active.is_empty() {
        clusters_dump["dynamic_active_clusters"] = Value::Array(active);
    }
    if !warming.is_empty() {
        clusters_dump["dynamic_warming_clusters"] = Value::Array(warming);
    }
    let mut listeners_dump = json!({
        "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
        "static_listeners": listeners,
    });
    let lds_version = ctx.listeners.lds_version();
    if !lds_version.is_empty() {
        listeners_dump["version_info"] = Value::String(lds_version);
    }
    let dynamic_listeners = ctx.listeners.dynamic_listeners_dump();
    if !dynamic_listeners.is_empty() {
        listeners_dump["dynamic_listeners"] = Value::Array(dynamic_listeners);
    }
    let mut configs = vec![
        json!({"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": bootstrap}),
        clusters_dump,
        listeners_dump,
    ];
    let routes = ctx.listeners.dynamic_route_configs_dump();
    if !routes.is_empty() {
        configs.push(json!({
            "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": routes,
        }));
    }
    json!({ "configs": configs })
}
