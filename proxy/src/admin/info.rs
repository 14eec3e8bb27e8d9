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

/// A JSON object that keeps its keys in the given order: serde_json's `Map` sorts keys,
/// and Envoy prints `/server_info` in its proto's field order.
pub(super) struct Ordered(Vec<(&'static str, Field)>);

/// A value of an [`Ordered`] object.
pub(super) enum Field {
    /// Any JSON value.
    Value(Value),
    /// A nested ordered object.
    Object(Ordered),
}

impl<T: Into<Value>> From<T> for Field {
    fn from(v: T) -> Self {
        Field::Value(v.into())
    }
}

impl serde::Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                Field::Value(v) => map.serialize_entry(k, v)?,
                Field::Object(o) => map.serialize_entry(k, o)?,
            }
        }
        map.end()
    }
}

/// The value Envoy shows for an option.
type DefaultValue = fn() -> Value;

/// Envoy's `command_line_options` keys in its order, with the value Envoy shows for an
/// option Baton does not take (or that was not given).
const COMMAND_LINE_KEYS: &[(&str, DefaultValue)] = &[
    ("base_id", || json!("0")),
    ("concurrency", || json!(1)),
    ("config_path", || json!("")),
    ("config_yaml", || json!("")),
    ("allow_unknown_static_fields", || json!(false)),
    ("admin_address_path", || json!("")),
    ("local_address_ip_version", || json!("v4")),
    ("log_level", || json!("info")),
    ("component_log_level", || json!("")),
    ("log_format", || json!("")),
    ("log_path", || json!("")),
    ("service_cluster", || json!("")),
    ("service_node", || json!("")),
    ("service_zone", || json!("")),
    ("file_flush_interval", || json!("10s")),
    ("drain_time", || json!("600s")),
    ("parent_shutdown_time", || json!("900s")),
    ("mode", || json!("Serve")),
    ("disable_hot_restart", || json!(false)),
    ("enable_mutex_tracing", || json!(false)),
    ("restart_epoch", || json!(0)),
    ("cpuset_threads", || json!(false)),
    ("reject_unknown_dynamic_fields", || json!(false)),
    ("log_format_escaped", || json!(false)),
    ("disabled_extensions", || json!([])),
    ("ignore_unknown_dynamic_fields", || json!(false)),
    ("use_dynamic_base_id", || json!(false)),
    ("base_id_path", || json!("")),
    ("drain_strategy", || json!("Gradual")),
    ("enable_fine_grain_logging", || json!(false)),
    ("socket_path", || json!("")),
    ("socket_mode", || json!(0)),
    ("enable_core_dump", || json!(false)),
    ("stats_tag", || json!([])),
    ("skip_hot_restart_on_no_parent", || json!(false)),
    ("skip_hot_restart_parent_stats", || json!(false)),
    ("skip_deprecated_logs", || json!(false)),
    ("file_flush_min_size", || json!(0)),
    ("log_stacktrace_single_entry", || json!(false)),
];

/// `command_line_options`: exactly Envoy's keys, in Envoy's order and types.
fn command_line_options(options: &crate::server::cli::Options) -> Ordered {
    let mut given = options.to_server_info_json();
    let mut fields = Vec::with_capacity(COMMAND_LINE_KEYS.len());
    for (key, default) in COMMAND_LINE_KEYS {
        let value = given.get_mut(*key).map(Value::take).unwrap_or_else(default);
        let value = match (*key, value) {
            // spdlog's name, as Envoy prints it.
            ("log_level", Value::String(l)) if l == "warn" => json!("warning"),
            // Envoy shows the mode as a number, and 0 unless --socket-mode was given
            // (Baton cannot tell the default 600 from an explicit one).
            ("socket_mode", Value::String(m)) => {
                json!(match u32::from_str_radix(&m, 8) {
                    Ok(0o600) | Err(_) => 0,
                    Ok(mode) => mode,
                })
            }
            (_, v) => v,
        };
        fields.push((*key, Field::Value(value)));
    }
    Ordered(fields)
}

/// `/server_info`, with Envoy's key set and order.
pub(super) fn server_info(ctx: &AdminContext) -> Ordered {
    let state = &ctx.state;
    let first = *state
        .first_start_wall
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let all_epochs = SystemTime::now().duration_since(first).unwrap_or_default();
    let mut version = crate::server::VERSION
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let build_version = Ordered(vec![
        (
            "version",
            Field::Object(Ordered(vec![
                ("major_number", version.next().unwrap_or(0).into()),
                ("minor_number", version.next().unwrap_or(0).into()),
                ("patch", version.next().unwrap_or(0).into()),
            ])),
        ),
        (
            "metadata",
            Field::Object(Ordered(vec![(
                "build.type",
                if cfg!(debug_assertions) {
                    "DEBUG"
                } else {
                    "RELEASE"
                }
                .into(),
            )])),
        ),
    ]);
    let node = Ordered(vec![
        ("id", ctx.node.id.clone().into()),
        ("cluster", ctx.node.cluster.clone().into()),
        ("user_agent_name", "baton".into()),
        ("user_agent_build_version", Field::Object(build_version)),
        ("extensions", json!([]).into()),
        ("client_features", json!([]).into()),
        ("listening_addresses", json!([]).into()),
        ("dynamic_parameters", json!({}).into()),
    ]);
    Ordered(vec![
        ("version", crate::server::version_line().into()),
        ("state", super::reported_state(state).as_str().into()),
        ("uptime_current_epoch", secs(state.started.elapsed()).into()),
        ("uptime_all_epochs", secs(all_epochs).into()),
        (
            "hot_restart_version",
            crate::server::hot_restart::version_text().into(),
        ),
        (
            "command_line_options",
            Field::Object(command_line_options(&state.options)),
        ),
        ("node", Field::Object(node)),
        ("hot_restart_initializing", false.into()),
    ])
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}})
}

/// `/listeners?format=json`.
pub(super) fn listeners_json(listeners: &[ListenerStatus]) -> ListenersJson {
    ListenersJson {
        listener_statuses: listeners
            .iter()
            .map(|l| ListenerStatusJson {
                name: l.name.clone(),
                local_address: socket_address(l.local_address),
            })
            .collect(),
    }
}

/// `/listeners?format=json`, fields in Envoy's order (`name` first; a `Value` object
/// would sort them).
#[derive(Debug, serde::Serialize)]
pub(super) struct ListenersJson {
    listener_statuses: Vec<ListenerStatusJson>,
}

#[derive(Debug, serde::Serialize)]
struct ListenerStatusJson {
    name: String,
    local_address: Value,
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
/// the bootstrap dump and again as static clusters/listeners/routes); `include_eds` adds
/// the endpoints after the clusters, as Envoy does.
pub(super) fn config_dump(ctx: &super::AdminContext, include_eds: bool) -> Value {
    let bootstrap = ctx.config_dump.json();
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
            "cluster": meta
                .config_dump
                .as_ref()
                .map_or(Value::Null, baton_config::resource::ResourceDump::json),
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
                "cluster": meta
                .config_dump
                .as_ref()
                .map_or(Value::Null, baton_config::resource::ResourceDump::json),
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
    ];
    if include_eds {
        configs.push(super::endpoints::endpoints_dump(
            &ctx.clusters,
            &ctx.node.locality,
        ));
    }
    configs.push(listeners_dump);
    let routes = ctx.listeners.dynamic_route_configs_dump();
    if !routes.is_empty() {
        configs.push(json!({
            "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": routes,
        }));
    }
    if let Some(secrets) = secrets_dump(&list("secrets")) {
        configs.push(secrets);
    }
    json!({ "configs": configs })
}

/// Envoy's `SecretsConfigDump`: static secrets as configured, control-plane ones as
/// delivered (active) or still awaited (warming); private keys redacted.
fn secrets_dump(static_secrets: &[Value]) -> Option<Value> {
    const SECRET_TYPE: &str =
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    let statics: Vec<Value> = static_secrets
        .iter()
        .map(|s| {
            let mut secret = serde_json::Map::new();
            secret.insert("@type".into(), Value::String(SECRET_TYPE.into()));
            if let Some(fields) = s.as_object() {
                secret.extend(fields.clone());
            }
            json!({"name": s.get("name").cloned().unwrap_or(Value::Null), "secret": secret})
        })
        .collect();
    let mut active = Vec::new();
    let mut warming = Vec::new();
    for p in crate::tls::sds_xds::all() {
        match p.meta() {
            Some(meta) => active.push(json!({
                "name": p.name(),
                "version_info": meta.version_info,
                "last_updated": timestamp(meta.last_updated),
                "secret": meta.config_dump.json(),
            })),
            None => warming.push(json!({
                "name": p.name(),
                "secret": {"@type": SECRET_TYPE, "name": p.name()},
            })),
        }
    }
    if statics.is_empty() && active.is_empty() && warming.is_empty() {
        return None;
    }
    let mut dump = json!({"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"});
    if !statics.is_empty() {
        dump["static_secrets"] = Value::Array(statics);
    }
    if !active.is_empty() {
        dump["dynamic_active_secrets"] = Value::Array(active);
    }
    if !warming.is_empty() {
        dump["dynamic_warming_secrets"] = Value::Array(warming);
    }
    Some(dump)
}
