//! Bootstrap-wide settings of Istio's and Envoy Gateway's generated bootstraps:
//! `stats_config.stats_matcher`, `cluster_manager`, `application_log_config`,
//! `deferred_stat_options`, `bootstrap_extensions` (the internal listener, typed or as a
//! `TypedStruct`) and a cluster's `upstream_connection_options`, with Envoy 1.40's
//! errors for what it refuses.

use baton_config::load_yaml_str;
use baton_config::model::{ApplicationLogFormat, BootstrapExtension, StatsMatcher, TcpKeepalive};

const CLUSTER: &str = r#"
static_resources:
  clusters:
  - name: local
    connect_timeout: 1s
    load_assignment: { cluster_name: local, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } } ] } ] }
"#;

fn with_cluster(extra: &str) -> String {
    format!("{CLUSTER}{extra}")
}

fn err(yaml: &str) -> String {
    match load_yaml_str(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn stats_matcher_lists_and_reject_all() {
    let loaded = load_yaml_str(
        r#"
stats_config:
  stats_matcher:
    inclusion_list:
      patterns:
      - prefix: "reporter="
      - suffix: rbac.allowed
      - safe_regex: { regex: 'vhost\..*\.route\..*' }
      - exact: server.live
      - contains: xds-grpc
"#,
    )
    .expect("loads");
    let matcher = &loaded.model.stats.matcher;
    assert!(matches!(matcher, StatsMatcher::Inclusion(p) if p.len() == 5));
    assert!(matcher.accepts("reporter=.istio_requests_total"));
    assert!(matcher.accepts("vhost.a.route.b.upstream_rq_total"));
    assert!(matcher.accepts("cluster.xds-grpc.upstream_cx_total"));
    assert!(!matcher.accepts("cluster.backend.upstream_cx_total"));
    assert!(!matcher.accepts("x.vhost.a.route.b"));

    let reject = load_yaml_str("stats_config: { stats_matcher: { reject_all: true } }").unwrap();
    assert!(!reject.model.stats.matcher.accepts("server.live"));
    let accept = load_yaml_str("stats_config: { stats_matcher: { reject_all: false } }").unwrap();
    assert!(accept.model.stats.matcher.accepts_all());

    let e = err("stats_config: { stats_matcher: {} }");
    assert!(
        e.contains("stats_config.stats_matcher: one of reject_all"),
        "{e}"
    );
    let e = err("stats_config: { stats_matcher: { exclusion_list: { patterns: [ { safe_regex: { regex: '(' } } ] } } }");
    assert!(
        e.contains(
            "stats_config.stats_matcher.exclusion_list.patterns[0].safe_regex.regex: invalid regex"
        ),
        "{e}"
    );
}

#[test]
fn cluster_manager_local_cluster_must_exist() {
    let loaded = load_yaml_str(&with_cluster(
        r#"
cluster_manager:
  local_cluster_name: local
  enable_deferred_cluster_creation: true
  outlier_detection: { event_log_path: /dev/stdout }
"#,
    ))
    .expect("loads");
    let cm = &loaded.model.cluster_manager;
    assert_eq!(cm.local_cluster_name.as_deref(), Some("local"));
    assert_eq!(cm.outlier_event_log_path.as_deref(), Some("/dev/stdout"));
    assert!(cm.enable_deferred_cluster_creation);

    // Envoy 1.40: "local cluster 'nope' must be defined".
    let e = err(&with_cluster(
        "cluster_manager: { local_cluster_name: nope }",
    ));
    assert!(
        e.contains("cluster_manager.local_cluster_name: local cluster 'nope' must be defined"),
        "{e}"
    );
    let e = err(&with_cluster(
        "cluster_manager: { upstream_bind_config: { source_address: { address: 127.0.0.1, port_value: 0 } } }",
    ));
    assert!(
        e.contains("cluster_manager.upstream_bind_config: not supported by Baton yet"),
        "{e}"
    );
    let e = err(&with_cluster(
        "cluster_manager: { load_stats_config: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: local } } ] } }",
    ));
    assert!(
        e.contains("cluster_manager.load_stats_config: not supported by Baton yet"),
        "{e}"
    );
}

#[test]
fn application_log_config_and_deferred_stats() {
    let loaded = load_yaml_str(
        r#"
application_log_config: { log_format: { text_format: "%Y-%m-%dT%T.%fZ\t%l\tenvoy %n %g:%#\t%v\tthread=%t" } }
deferred_stat_options: { enable_deferred_creation_stats: true }
"#,
    )
    .expect("loads");
    assert!(matches!(
        loaded.model.application_log_format,
        Some(ApplicationLogFormat::Text(ref t)) if t.starts_with("%Y-%m-%dT")
    ));
    assert!(loaded.model.deferred_creation_stats);

    let json = load_yaml_str(
        "application_log_config: { log_format: { json_format: { level: '%l', msg: '%j', n: { a: '%n' } } } }",
    )
    .expect("loads");
    assert!(matches!(
        json.model.application_log_format,
        Some(ApplicationLogFormat::Json(_))
    ));
    // Envoy 1.40: "Usage of %v is unavailable for JSON log formats".
    let e = err("application_log_config: { log_format: { json_format: { msg: '%v' } } }");
    assert!(
        e.contains("application_log_config.log_format.json_format: Usage of %v is unavailable for JSON log formats"),
        "{e}"
    );
}

#[test]
fn internal_listener_bootstrap_extension() {
    for typed_config in [
        // As Istio gives it.
        r#"{ "@type": type.googleapis.com/udpa.type.v1.TypedStruct, type_url: type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener, value: { buffer_size_kb: 64 } }"#,
        r#"{ "@type": type.googleapis.com/xds.type.v3.TypedStruct, type_url: type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener, value: { buffer_size_kb: 64 } }"#,
        r#"{ "@type": type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener, buffer_size_kb: 64 }"#,
    ] {
        let yaml = format!(
            "bootstrap_extensions: [ {{ name: envoy.bootstrap.internal_listener, typed_config: {typed_config} }} ]"
        );
        let loaded = load_yaml_str(&yaml).expect("loads");
        assert_eq!(
            loaded.model.bootstrap_extensions,
            vec![BootstrapExtension::InternalListener { buffer_size_kb: 64 }]
        );
    }
    let e = err(
        r#"bootstrap_extensions: [ { name: envoy.bootstrap.internal_listener, typed_config: { "@type": type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener, buffer_size_kb: 9000 } } ]"#,
    );
    assert!(e.contains("value must be inside range [1, 8192]"), "{e}");
    // Another extension is refused under its own type, TypedStruct or not.
    let e = err(
        r#"bootstrap_extensions: [ { name: foo, typed_config: { "@type": type.googleapis.com/udpa.type.v1.TypedStruct, type_url: type.googleapis.com/foo.v3.Bar, value: {} } } ]"#,
    );
    assert!(
        e.contains("bootstrap_extensions[0].typed_config.@type: unknown or unsupported type 'type.googleapis.com/foo.v3.Bar'"),
        "{e}"
    );
    let e = err(
        r#"bootstrap_extensions: [ { name: lb, typed_config: { "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.random.v3.Random } } ]"#,
    );
    assert!(
        e.contains("bootstrap_extensions[0].typed_config.@type"),
        "{e}"
    );
    assert!(e.contains("not supported by Baton yet"), "{e}");
    // A listener that is itself internal stays refused.
    let e = err(
        "static_resources: { listeners: [ { name: i, internal_listener: {}, filter_chains: [ { filters: [] } ] } ] }",
    );
    assert!(
        e.contains("static_resources.listeners[0].internal_listener: not supported by Baton yet"),
        "{e}"
    );
}

#[test]
fn upstream_connection_options_tcp_keepalive() {
    let yaml = format!(
        "{}    upstream_connection_options: {{ tcp_keepalive: {{ keepalive_time: 300, keepalive_probes: 3 }}, set_local_interface_name_on_upstream_connections: true }}\n",
        CLUSTER.trim_end_matches('\n').to_string() + "\n"
    );
    let loaded = load_yaml_str(&yaml).expect("loads");
    let options = &loaded.model.clusters[0].upstream_connection_options;
    assert_eq!(
        options.tcp_keepalive,
        Some(TcpKeepalive {
            probes: Some(3),
            time_secs: Some(300),
            interval_secs: None,
        })
    );
    assert!(options.set_local_interface_name);
    let e = err(&format!(
        "{}    upstream_connection_options: {{ happy_eyeballs_config: {{ first_address_family_version: V4 }} }}\n",
        CLUSTER.trim_end_matches('\n').to_string() + "\n"
    ));
    assert!(
        e.contains("static_resources.clusters[0].upstream_connection_options.happy_eyeballs_config: not supported by Baton yet"),
        "{e}"
    );
}
