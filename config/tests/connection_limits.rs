//! Connection limits at config load: the overload manager's global downstream connection
//! limit and the `connection_limit` network filter are translated; other resource
//! monitors, overload actions and network filters before the terminal one are refused
//! with the field named.

use baton_config::load_yaml_str;

const LISTENER: &str = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    bypass_overload_manager: BYPASS
    filter_chains:
    - filters:
      - FIRST
      - name: tcp
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: c
  clusters:
  - name: c
    connect_timeout: 1s
    load_assignment: { cluster_name: c, endpoints: [] }
"#;

const LIMIT: &str = r#"{ name: envoy.filters.network.connection_limit, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit, stat_prefix: cl, max_connections: 3, delay: 0.5s } }"#;

fn with(first: &str, bypass: bool, overload: &str) -> String {
    format!(
        "{overload}\n{}",
        LISTENER
            .replace("FIRST", first)
            .replace("BYPASS", if bypass { "true" } else { "false" })
    )
}

const MONITOR: &str = r#"
overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 7
"#;

#[test]
fn global_limit_and_connection_limit_filter_translate() {
    let loaded = load_yaml_str(&with(LIMIT, true, MONITOR)).expect("valid");
    assert_eq!(loaded.model.global_downstream_max_connections, Some(7));
    let listener = &loaded.model.listeners[0];
    assert!(listener.ignore_global_conn_limit);
    let limit = listener.filter_chains[0]
        .connection_limit
        .as_ref()
        .expect("connection_limit");
    assert_eq!(limit.stat_prefix, "cl");
    assert_eq!(limit.max_connections, 3);
    assert_eq!(limit.delay, std::time::Duration::from_millis(500));
}

#[test]
fn unsupported_overload_parts_are_refused_by_name() {
    let action = format!(
        "{MONITOR}  actions:\n  - name: envoy.overload_actions.stop_accepting_requests\n    triggers: [ {{ name: envoy.resource_monitors.global_downstream_max_connections, threshold: {{ value: 0.9 }} }} ]\n"
    );
    let e = load_yaml_str(&with(LIMIT, false, &action))
        .expect_err("actions refused")
        .to_string();
    assert!(e.contains("overload_manager.actions"), "{e}");

    let heap = MONITOR.replace(
        "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
        "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
    );
    let e = load_yaml_str(&with(LIMIT, false, &heap))
        .expect_err("other monitors refused")
        .to_string();
    assert!(e.contains("overload_manager.resource_monitors[0]"), "{e}");

    let zero = MONITOR.replace(": 7", ": 0");
    let e = load_yaml_str(&with(LIMIT, false, &zero))
        .expect_err("zero refused")
        .to_string();
    assert!(e.contains("max_active_downstream_connections"), "{e}");
}

#[test]
fn connection_limit_needs_max_connections_and_other_filters_stay_refused() {
    let no_max = LIMIT.replace(", max_connections: 3", "");
    let e = load_yaml_str(&with(&no_max, false, ""))
        .expect_err("max_connections required")
        .to_string();
    assert!(e.contains("filters[0].typed_config.max_connections"), "{e}");

    let other = r#"{ name: envoy.filters.network.rbac, typed_config: { "@type": type.googleapis.com/google.protobuf.Empty } }"#;
    let e = load_yaml_str(&with(other, false, ""))
        .expect_err("other network filters refused")
        .to_string();
    assert!(e.contains("filters[0]"), "{e}");
}
