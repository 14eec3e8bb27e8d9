//! Bootstraps with xDS: `dynamic_resources` (ADS over GRPC / DELTA_GRPC, CDS/LDS via ADS,
//! their own `api_config_source` or `path_config_source`), `type: EDS` clusters and HCM
//! `rds`, and the errors Envoy 1.40 gives for the same mistakes (checked side by side
//! with `envoy --mode validate`).

use std::path::PathBuf;
use std::time::Duration;

use baton_config::load_yaml_str;
use baton_config::model::{self, ConfigSourceKind, NetworkFilter, XdsApiType};

/// The control-plane cluster (static, HTTP/2) plus `extra` clusters.
fn bootstrap(dynamic: &str, extra_clusters: &str) -> String {
    format!(
        r#"
node: {{ id: node1, cluster: c1 }}
{dynamic}
static_resources:
  clusters:
  - name: xds
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment:
      cluster_name: xds
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 18000 }} }} }}
{extra_clusters}"#
    )
}

const ADS_GRPC: &str = r#"
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [ { envoy_grpc: { cluster_name: xds } } ]
  cds_config: { ads: {}, resource_api_version: V3 }
  lds_config: { ads: {}, resource_api_version: V3 }
"#;

fn load(yaml: &str) -> model::Bootstrap {
    match load_yaml_str(yaml) {
        Ok(loaded) => loaded.model,
        Err(e) => panic!("unexpected error: {e}\n{yaml}"),
    }
}

fn err(yaml: &str) -> String {
    match load_yaml_str(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("baton-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, "resources: []\n").expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn ads_grpc_with_cds_and_lds_over_it() {
    let b = load(&bootstrap(ADS_GRPC, ""));
    let ads = b.dynamic.ads.as_ref().expect("ads_config");
    assert_eq!(ads.api_type, XdsApiType::Grpc);
    assert_eq!(ads.cluster_name, "xds");
    assert_eq!(ads.grpc_timeout, None);
    assert_eq!(ads.max_receive_message_length, None);
    assert!(!ads.set_node_on_first_message_only);
    assert_eq!(ads.rate_limit, None);
    for source in [&b.dynamic.cds, &b.dynamic.lds] {
        let source = source.as_ref().expect("config source");
        assert_eq!(source.kind, ConfigSourceKind::Ads);
        assert_eq!(source.initial_fetch_timeout, Some(Duration::from_secs(15)));
    }
    assert!(b.uses_xds());
    b.check_node_for_xds().expect("node is set");
}

#[test]
fn ads_delta_grpc_and_its_options() {
    let dynamic = r#"
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    grpc_services: [ { envoy_grpc: { cluster_name: xds, max_receive_message_length: 1048576 }, timeout: 3s } ]
    set_node_on_first_message_only: true
    rate_limit_settings: { max_tokens: 5 }
  cds_config: { ads: {}, initial_fetch_timeout: 0s }
  lds_config: { ads: {}, initial_fetch_timeout: 2s }
"#;
    let b = load(&bootstrap(dynamic, ""));
    let ads = b.dynamic.ads.as_ref().expect("ads_config");
    assert_eq!(ads.api_type, XdsApiType::DeltaGrpc);
    assert_eq!(ads.grpc_timeout, Some(Duration::from_secs(3)));
    assert_eq!(ads.max_receive_message_length, Some(1_048_576));
    assert!(ads.set_node_on_first_message_only);
    assert_eq!(
        ads.rate_limit,
        Some(model::RateLimitSettings {
            max_tokens: 5,
            fill_rate: 10.0
        })
    );
    // 0 = wait forever.
    assert_eq!(b.dynamic.cds.as_ref().unwrap().initial_fetch_timeout, None);
    assert_eq!(
        b.dynamic.lds.as_ref().unwrap().initial_fetch_timeout,
        Some(Duration::from_secs(2))
    );
}

#[test]
fn cds_and_lds_with_their_own_api_config_source() {
    let dynamic = r#"
dynamic_resources:
  cds_config:
    resource_api_version: V3
    api_config_source: { api_type: GRPC, transport_api_version: V3, grpc_services: [ { envoy_grpc: { cluster_name: xds } } ] }
  lds_config:
    api_config_source: { api_type: DELTA_GRPC, grpc_services: [ { envoy_grpc: { cluster_name: xds } } ] }
"#;
    let b = load(&bootstrap(dynamic, ""));
    assert!(b.dynamic.ads.is_none());
    let ConfigSourceKind::Api(cds) = &b.dynamic.cds.as_ref().unwrap().kind else {
        panic!("cds: {:?}", b.dynamic.cds)
    };
    assert_eq!(
        (cds.api_type, cds.cluster_name.as_str()),
        (XdsApiType::Grpc, "xds")
    );
    let ConfigSourceKind::Api(lds) = &b.dynamic.lds.as_ref().unwrap().kind else {
        panic!("lds: {:?}", b.dynamic.lds)
    };
    assert_eq!(lds.api_type, XdsApiType::DeltaGrpc);
}

#[test]
fn path_config_sources_with_watched_directory() {
    let dir = TempDir::new("paths");
    let cds = dir.file("cds.yaml");
    let lds = dir.file("lds.yaml");
    let dynamic = format!(
        r#"
dynamic_resources:
  cds_config: {{ path_config_source: {{ path: "{}", watched_directory: {{ path: "{}" }} }} }}
  lds_config: {{ path: "{}" }}
"#,
        cds.display(),
        dir.0.display(),
        lds.display()
    );
    let b = load(&bootstrap(&dynamic, ""));
    assert_eq!(
        b.dynamic.cds.as_ref().unwrap().kind,
        ConfigSourceKind::Path {
            path: cds.clone(),
            watched_directory: Some(dir.0.clone())
        }
    );
    assert_eq!(
        b.dynamic.lds.as_ref().unwrap().kind,
        ConfigSourceKind::Path {
            path: lds,
            watched_directory: None
        }
    );

    let missing = dynamic.replace("cds.yaml", "nope.yaml");
    let e = err(&bootstrap(&missing, ""));
    assert!(e.starts_with("dynamic_resources.cds_config.path_config_source.path: paths must refer to an existing path in the system: '"), "{e}");
    let not_watched = dynamic.replace(
        &format!("path: \"{}\" }}", dir.0.display()),
        "path: \"/nonexistent/baton\" }",
    );
    let e = err(&bootstrap(&not_watched, ""));
    assert!(e.starts_with("dynamic_resources.cds_config.path_config_source.watched_directory.path: paths must refer to an existing path"), "{e}");
}

#[test]
fn eds_clusters_and_hcm_rds() {
    let clusters = r#"
  - name: svc
    type: EDS
    connect_timeout: 1s
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: V3 }, service_name: svc-endpoints }
  - name: plain
    type: EDS
    eds_cluster_config:
      eds_config: { api_config_source: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: xds } } ] } }
    # Envoy ignores an EDS cluster's load_assignment (even with a host name in it).
    load_assignment:
      cluster_name: plain
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: localhost, port_value: 1 } } } } ] } ]
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          rds: { route_config_name: routes, config_source: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 1s } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
"#;
    let b = load(&bootstrap(ADS_GRPC, clusters));
    let svc = &b.clusters[1];
    assert_eq!(svc.discovery, model::DiscoveryType::Eds);
    let eds = svc.eds.as_ref().expect("eds config");
    assert_eq!(eds.service_name, "svc-endpoints");
    assert_eq!(eds.source.kind, ConfigSourceKind::Ads);
    let plain = &b.clusters[2];
    assert!(plain.load_assignment.localities.is_empty());
    let eds = plain.eds.as_ref().expect("eds config");
    assert_eq!(eds.service_name, "plain", "defaults to the cluster name");
    assert!(matches!(eds.source.kind, ConfigSourceKind::Api(_)));
    assert!(b.clusters[0].eds.is_none());

    let NetworkFilter::Http(hcm) = &b.listeners[0].filter_chains[0].network else {
        panic!("expected an HCM")
    };
    let rds = hcm.rds.as_ref().expect("rds");
    assert_eq!(rds.route_config_name, "routes");
    assert_eq!(
        rds.source.initial_fetch_timeout,
        Some(Duration::from_secs(1))
    );
    assert!(hcm.route_config.virtual_hosts.is_empty());
    assert_eq!(hcm.route_config.name, "routes");
}

#[test]
fn static_routes_may_name_static_eds_clusters_but_not_cds_ones() {
    let clusters = |route_cluster: &str| {
        format!(
            r#"
  - name: svc
    type: EDS
    eds_cluster_config: {{ eds_config: {{ ads: {{}} }} }}
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
          route_config:
            virtual_hosts: [ {{ name: v, domains: ["*"], routes: [ {{ match: {{ prefix: "/" }}, route: {{ cluster: {route_cluster} }} }} ] }} ]
"#
        )
    };
    load(&bootstrap(ADS_GRPC, &clusters("svc")));
    let e = err(&bootstrap(ADS_GRPC, &clusters("from-cds")));
    assert!(e.ends_with("route.cluster: unknown cluster 'from-cds' (not among static_resources.clusters; set validate_clusters: false to allow)"), "{e}");
}

#[test]
fn node_is_required_when_xds_is_used() {
    let yaml = bootstrap(ADS_GRPC, "").replace("node: { id: node1, cluster: c1 }", "");
    let mut b = load(&yaml);
    assert_eq!(
        b.check_node_for_xds().unwrap_err().to_string(),
        "node: node 'id' and 'cluster' are required when xDS is used; set them in 'node' or with --service-node and --service-cluster"
    );
    b.node.id = "from-cli".into();
    b.node.cluster = "from-cli".into();
    b.check_node_for_xds()
        .expect("--service-node / --service-cluster suffice");
    // Static-only bootstraps never needed a node.
    let b = load(&bootstrap("", ""));
    assert!(!b.uses_xds());
    b.check_node_for_xds().expect("no xDS");
}

/// Each mistake and the error, whose meaning matches Envoy's (noted after each).
#[test]
fn config_source_errors_match_envoy() {
    let ads_service = "grpc_services: [ { envoy_grpc: { cluster_name: xds } } ]";
    let cases: Vec<(String, &str)> = vec![
        // Envoy: (at start-up) ADS must be configured to support an ADS config source
        (
            "dynamic_resources: { cds_config: { ads: {} } }".into(),
            "dynamic_resources.cds_config.ads: ADS must be configured to support an ADS config source (dynamic_resources.ads_config is not set)",
        ),
        // Envoy: Unknown gRPC client cluster 'nope'
        (
            "dynamic_resources: { ads_config: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: nope } } ] } }".into(),
            "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name: unknown cluster 'nope': the control-plane cluster must be a statically defined non-EDS cluster (static_resources.clusters)",
        ),
        // Envoy: ApiConfigSource type must be of non-aggregated gRPC
        (
            format!("dynamic_resources: {{ ads_config: {{ api_type: AGGREGATED_GRPC, {ads_service} }} }}"),
            "dynamic_resources.ads_config.api_type: unsupported config source AGGREGATED_GRPC (ads_config must use GRPC or DELTA_GRPC)",
        ),
        // Envoy: Unsupported config source AGGREGATED_DELTA_GRPC
        (
            format!("dynamic_resources: {{ cds_config: {{ api_config_source: {{ api_type: AGGREGATED_DELTA_GRPC, {ads_service} }} }} }}"),
            "dynamic_resources.cds_config.api_config_source.api_type: unsupported config source AGGREGATED_DELTA_GRPC (use GRPC or DELTA_GRPC, or `ads: {}` to share the ads_config stream)",
        ),
        // Envoy: if not a gRPC type, must not have a gRPC service specified (Envoy has REST)
        (
            format!("dynamic_resources: {{ lds_config: {{ api_config_source: {{ api_type: REST, {ads_service} }} }} }}"),
            "dynamic_resources.lds_config.api_config_source.api_type: REST is not supported by Baton yet (use GRPC or DELTA_GRPC)",
        ),
        (
            format!("dynamic_resources: {{ ads_config: {{ {ads_service} }} }}"),
            "dynamic_resources.ads_config.api_type: required: GRPC or DELTA_GRPC (a gRPC service needs a gRPC api_type)",
        ),
        // Envoy: V2 xDS transport protocol version is deprecated
        (
            format!("dynamic_resources: {{ ads_config: {{ api_type: GRPC, transport_api_version: V2, {ads_service} }} }}"),
            "dynamic_resources.ads_config.transport_api_version: the V2 xDS transport API version is not supported (use V3)",
        ),
        // Envoy accepts V2 here with a deprecation warning; Baton only has V3.
        (
            format!("dynamic_resources: {{ ads_config: {{ api_type: GRPC, {ads_service} }}, cds_config: {{ ads: {{}}, resource_api_version: V2 }} }}"),
            "dynamic_resources.cds_config.resource_api_version: the V2 xDS resource API version is not supported (use V3)",
        ),
        // Envoy: API configs must have either a gRPC service or a cluster name defined
        (
            "dynamic_resources: { ads_config: { api_type: GRPC } }".into(),
            "dynamic_resources.ads_config.grpc_services: API configs must have a gRPC service defined",
        ),
        // Envoy: ...GRPC must have no more than 1 gRPC services specified
        (
            "dynamic_resources: { ads_config: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: xds } }, { envoy_grpc: { cluster_name: xds } } ] } }".into(),
            "dynamic_resources.ads_config.grpc_services: a gRPC api_config_source must have no more than 1 gRPC service",
        ),
        // Envoy: ...GRPC must not have a cluster name specified
        (
            format!("dynamic_resources: {{ ads_config: {{ api_type: GRPC, cluster_names: [xds], {ads_service} }} }}"),
            "dynamic_resources.ads_config.cluster_names: a gRPC api_config_source must not have cluster_names (name the cluster in grpc_services[0].envoy_grpc.cluster_name)",
        ),
        // Envoy accepts google_grpc.
        (
            "dynamic_resources: { ads_config: { api_type: GRPC, grpc_services: [ { google_grpc: { target_uri: \"127.0.0.1:1\", stat_prefix: x } } ] } }".into(),
            "dynamic_resources.ads_config.grpc_services[0].google_grpc: not supported by Baton yet (use envoy_grpc with a static cluster)",
        ),
        // Envoy: (PGV) cluster_name min_len 1
        (
            "dynamic_resources: { ads_config: { api_type: GRPC, grpc_services: [ { envoy_grpc: {} } ] } }".into(),
            "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name: required field is missing or empty",
        ),
        // Envoy: (PGV) the config_source_specifier oneof is required
        (
            "dynamic_resources: { cds_config: {} }".into(),
            "dynamic_resources.cds_config: missing config source specifier (one of ads, api_config_source, path_config_source)",
        ),
        // Envoy: (PGV) fill_rate > 0
        (
            format!("dynamic_resources: {{ ads_config: {{ api_type: GRPC, {ads_service}, rate_limit_settings: {{ fill_rate: 0 }} }} }}"),
            "dynamic_resources.ads_config.rate_limit_settings.fill_rate: must be greater than 0",
        ),
        // Envoy: a collection with no config source to deliver it.
        (
            "dynamic_resources: { cds_resources_locator: \"xdstp://cp/envoy.config.cluster.v3.Cluster/*\" }".into(),
            "dynamic_resources.cds_config: Missing or not supported config source specifier in envoy::config::core::v3::ConfigSource for a collection. Only ADS and gRPC in delta-xDS mode are supported.",
        ),
        // Envoy: a file:// collection that does not exist.
        (
            "dynamic_resources: { lds_resources_locator: \"file:///nonexistent/lds.yaml\" }".into(),
            "dynamic_resources.lds_resources_locator: paths must refer to an existing path in the system: '/nonexistent/lds.yaml' does not exist",
        ),
        // Envoy: directives are checked.
        (
            format!("dynamic_resources: {{ ads_config: {{ api_type: DELTA_GRPC, {ads_service} }}, lds_config: {{ ads: {{}} }}, lds_resources_locator: \"xdstp://cp/envoy.config.listener.v3.Listener/*#bogus=1\" }}"),
            "dynamic_resources.lds_resources_locator: Unknown fragment component bogus=1",
        ),
        (
            "dynamic_resources: { cds_config: { self: {} } }".into(),
            "dynamic_resources.cds_config.self: not supported by Baton yet",
        ),
        (
            format!("dynamic_resources: {{ ads_config: {{ api_type: GRPC, {ads_service}, config_validators: [ {{ name: v }} ] }} }}"),
            "dynamic_resources.ads_config.config_validators: not supported by Baton yet",
        ),
    ];
    for (dynamic, expected) in cases {
        assert_eq!(err(&bootstrap(&dynamic, "")), expected, "for {dynamic}");
    }
}

#[test]
fn eds_cluster_errors_match_envoy() {
    let eds = |cluster_fields: &str| format!("  - name: svc\n    type: EDS\n{cluster_fields}");
    let cases = [
        // Envoy: cannot create an EDS cluster without an EDS config
        (
            eds(""),
            "static_resources.clusters[1].eds_cluster_config: cannot create an EDS cluster without an EDS config",
        ),
        // Envoy: Missing config source specifier in envoy::config::core::v3::ConfigSource
        (
            eds("    eds_cluster_config: { service_name: x }\n"),
            "static_resources.clusters[1].eds_cluster_config.eds_config: required: an EDS cluster needs a config source (ads, api_config_source or path_config_source)",
        ),
        // Envoy: ApiConfigSource must have a statically defined non-EDS cluster: 'svc'
        // does not exist, was added via api, or is an EDS cluster
        (
            eds("    eds_cluster_config: { eds_config: { api_config_source: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: svc } } ] } } }\n"),
            "static_resources.clusters[1].eds_cluster_config.eds_config.api_config_source.grpc_services[0].envoy_grpc.cluster_name: unknown cluster 'svc': the control-plane cluster must be a statically defined non-EDS cluster (static_resources.clusters)",
        ),
    ];
    for (clusters, expected) in cases {
        let e = err(&bootstrap(ADS_GRPC, &clusters));
        assert_eq!(e, expected, "for {clusters}");
    }
}

#[test]
fn rds_errors_match_envoy() {
    let listener = |rds: &str| {
        format!(
            r#"
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          rds: {rds}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
"#
        )
    };
    let prefix = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.rds";
    // Envoy: An RDS config must have either a 'config_source' or an xDS-TP based
    // 'route_config_name'.
    let e = err(&bootstrap(ADS_GRPC, &listener("{ route_config_name: r }")));
    assert_eq!(e, format!("{prefix}.config_source: required: an RDS config needs a config_source (xDS-TP route_config_name is not supported by Baton yet)"));
    let e = err(&bootstrap(
        "",
        &listener("{ route_config_name: r, config_source: { ads: {} } }"),
    ));
    assert_eq!(e, format!("{prefix}.config_source.ads: ADS must be configured to support an ADS config source (dynamic_resources.ads_config is not set)"));
    // Envoy accepts an empty route_config_name.
    let b = load(&bootstrap(
        ADS_GRPC,
        &listener("{ config_source: { ads: {} } }"),
    ));
    let NetworkFilter::Http(hcm) = &b.listeners[0].filter_chains[0].network else {
        panic!("expected an HCM")
    };
    assert_eq!(hcm.rds.as_ref().unwrap().route_config_name, "");
}

#[test]
fn errors_in_files_carry_the_line() {
    let dir = TempDir::new("lines");
    let path = dir.0.join("bootstrap.yaml");
    let yaml = bootstrap("dynamic_resources:\n  cds_config: { ads: {} }\n", "");
    std::fs::write(&path, &yaml).expect("write bootstrap");
    let e = baton_config::load_file(&path).unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert_eq!(e.path, "dynamic_resources.cds_config.ads");
}

#[test]
fn init_budget_chains_the_fetch_timeouts() {
    use baton_config::model::XdsInitBudget;
    use std::time::Duration;
    assert_eq!(
        load(&bootstrap("", "")).xds_init_budget(),
        XdsInitBudget::Static
    );
    // CDS 15 s, the CDS clusters' EDS 15 s, LDS 15 s, their RDS 15 s.
    assert_eq!(
        load(&bootstrap(ADS_GRPC, "")).xds_init_budget(),
        XdsInitBudget::Bounded(Duration::from_secs(60))
    );
    let quick = ADS_GRPC
        .replace(
            "cds_config: { ads: {}, resource_api_version: V3 }",
            "cds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 2s }",
        )
        .replace(
            "lds_config: { ads: {}, resource_api_version: V3 }",
            "lds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 0s }",
        );
    assert_eq!(
        load(&bootstrap(&quick, "")).xds_init_budget(),
        XdsInitBudget::Unbounded
    );
}
