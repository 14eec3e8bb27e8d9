//! Bootstrap fields that Envoy Gateway's and Istio's generated bootstraps use:
//! `layered_runtime` (static and admin layers, flattened as Envoy's `/runtime` shows
//! them), `stats_config` (default and custom tags; the stats matcher is in `server_settings.rs`)
//! and an upstream HTTP/2 `connection_keepalive`.

use std::time::Duration;

use baton_config::load_yaml_str;
use baton_config::model::{Http2Keepalive, RuntimeLayer, RuntimeLayerKind};

fn err(yaml: &str) -> String {
    match load_yaml_str(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn layered_runtime_static_and_admin_layers() {
    let loaded = load_yaml_str(
        r#"
layered_runtime:
  layers:
  - name: global_config
    static_layer:
      envoy.restart_features.use_eds_cache_for_ads: true
      re2.max_program_size.error_level: 4294967295
      re2.max_program_size.warn_level: "1000"
      nested: { a: 0.5, b: { c: x } }
  - name: admin
    admin_layer: {}
"#,
    )
    .expect("loads");
    assert_eq!(
        loaded.model.runtime_layers,
        vec![
            RuntimeLayer {
                name: "global_config".into(),
                kind: RuntimeLayerKind::Static(vec![
                    (
                        "envoy.restart_features.use_eds_cache_for_ads".into(),
                        "true".into()
                    ),
                    ("nested.a".into(), "0.5".into()),
                    ("nested.b.c".into(), "x".into()),
                    (
                        "re2.max_program_size.error_level".into(),
                        "4294967295".into()
                    ),
                    ("re2.max_program_size.warn_level".into(), "1000".into()),
                ]),
            },
            RuntimeLayer {
                name: "admin".into(),
                kind: RuntimeLayerKind::Admin,
            },
        ]
    );
}

#[test]
fn layered_runtime_refusals() {
    let e = err("layered_runtime:\n  layers:\n  - name: r\n    rtds_layer: { name: r }\n");
    assert!(
        e.contains("layered_runtime.layers[0].rtds_layer: not supported by Baton yet"),
        "{e}"
    );
    let e = err("layered_runtime:\n  layers:\n  - name: d\n    disk_layer: { symlink_root: /srv/runtime }\n");
    assert!(
        e.contains("layered_runtime.layers[0].disk_layer: not supported by Baton yet"),
        "{e}"
    );
    let e = err("layered_runtime:\n  layers:\n  - { name: a, admin_layer: {} }\n  - { name: a, admin_layer: {} }\n");
    assert!(
        e.contains("layered_runtime.layers[1].name: duplicate runtime layer name 'a'"),
        "{e}"
    );
    let e = err("layered_runtime:\n  layers:\n  - name: s\n    static_layer: { k: [1, 2] }\n");
    assert!(e.contains("invalid runtime entry value for k"), "{e}");
}

#[test]
fn stats_config_tags_are_checked_as_envoy_does() {
    let loaded = load_yaml_str(
        "stats_config:\n  use_all_default_tags: false\n  stats_tags:\n  - { tag_name: t, regex: '^a(\\.b)' }\n  - { tag_name: f, fixed_value: v }\n  - { tag_name: envoy.cluster_name }\n",
    )
    .expect("accepted");
    assert!(!loaded.model.stats.use_all_default_tags);
    assert_eq!(loaded.model.stats.stats_tags.len(), 3);
    let e =
        err("stats_config:\n  stats_tags: [ { tag_name: envoy.cluster_name, regex: '^a(b)' } ]\n");
    assert!(
        e.contains("stats_config.stats_tags[0]: Tag name 'envoy.cluster_name' specified twice."),
        "{e}"
    );
    let e = err("stats_config:\n  stats_tags: [ { tag_name: nothing } ]\n");
    assert!(e.contains("no default regex for name: 'nothing'"), "{e}");
    let e = err("stats_config:\n  stats_tags: [ { tag_name: t, regex: '(' } ]\n");
    assert!(
        e.contains("stats_config.stats_tags[0]: invalid regex"),
        "{e}"
    );
    let e = err("stats_config:\n  stats_matcher: { inclusion_list: { patterns: [] } }\n");
    assert!(
        e.contains("stats_config.stats_matcher.inclusion_list.patterns: value must contain at least 1 item(s)"),
        "{e}"
    );
}

fn h2_cluster(keepalive: &str) -> String {
    format!(
        r#"
static_resources:
  clusters:
  - name: c
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options:
            connection_keepalive: {keepalive}
    load_assignment:
      cluster_name: c
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }} }} }}] }}]
"#
    )
}

#[test]
fn upstream_http2_connection_keepalive() {
    let loaded = load_yaml_str(&h2_cluster("{ interval: 30s, timeout: 5s }")).expect("loads");
    assert_eq!(
        loaded.model.clusters[0].http2.keepalive,
        Some(Http2Keepalive {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        })
    );
    // No interval: no periodic PINGs.
    let loaded = load_yaml_str(&h2_cluster("{ timeout: 5s }")).expect("loads");
    assert_eq!(loaded.model.clusters[0].http2.keepalive, None);
    // As Envoy's validation: the timeout is required.
    let e = err(&h2_cluster("{ interval: 30s }"));
    assert!(
        e.contains("connection_keepalive.timeout: value is required"),
        "{e}"
    );
    let e = err(&h2_cluster(
        "{ interval: 30s, timeout: 5s, connection_idle_interval: 10s }",
    ));
    assert!(
        e.contains("connection_keepalive.connection_idle_interval: not supported by Baton yet"),
        "{e}"
    );
}

#[test]
fn downstream_http2_connection_keepalive_is_refused() {
    let e = err(r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          http2_protocol_options: { connection_keepalive: { interval: 1s, timeout: 1s } }
          route_config: { virtual_hosts: [ { name: v, domains: ["*"], routes: [ { match: { prefix: / }, direct_response: { status: 200 } } ] } ] }
          http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
"#);
    assert!(
        e.contains("http2_protocol_options.connection_keepalive: not supported by Baton yet"),
        "{e}"
    );
}
