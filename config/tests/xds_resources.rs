//! The per-resource entry points (`baton_config::resource`): one Cluster, Listener,
//! RouteConfiguration or ClusterLoadAssignment as an `Any`, translated with the static
//! config's checks, errors naming the resource and a path relative to it.

use std::time::Duration;

use baton_config::model::{self, ConfigSourceKind, EndpointAddress, NetworkFilter};
use baton_config::resource::{
    self, ResourceContext, CLUSTER_LOAD_ASSIGNMENT_TYPE, CLUSTER_TYPE, LISTENER_TYPE,
    ROUTE_CONFIGURATION_TYPE,
};
use prost_types::Any;

const BOOTSTRAP: &str = r#"
node: { id: node1, cluster: c1 }
dynamic_resources:
  ads_config: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: xds } } ] }
  cds_config: { ads: {} }
  lds_config: { ads: {} }
static_resources:
  clusters:
  - name: xds
    load_assignment:
      cluster_name: xds
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 18000 } } } } ] } ]
"#;

fn ctx() -> ResourceContext {
    let loaded = baton_config::load_yaml_str(BOOTSTRAP).expect("bootstrap");
    ResourceContext::new(&loaded.proto).expect("context")
}

/// One resource written in YAML (with its `@type`) as a control plane would send it.
fn any(yaml: &str) -> Any {
    let value: serde_json::Value = serde_yaml_ng::from_str(yaml).expect("resource YAML");
    let response = serde_json::json!({ "version_info": "1", "resources": [value] });
    let parsed = resource::parse_discovery_response(&response.to_string())
        .unwrap_or_else(|e| panic!("cannot parse {yaml}: {e}"));
    parsed.resources.into_iter().next().expect("one resource")
}

fn typed(type_url: &str, body: &str) -> Any {
    any(&format!("\"@type\": {type_url}\n{body}"))
}

fn known(names: &'static [&'static str]) -> impl Fn(&str) -> bool {
    move |name| names.contains(&name)
}

#[test]
fn cluster_translates_like_a_static_one() {
    let ctx = ctx();
    let c = resource::cluster(
        &ctx,
        &typed(
            CLUSTER_TYPE,
            "name: backend\ntype: STRICT_DNS\nlb_policy: LEAST_REQUEST\nload_assignment:\n  cluster_name: backend\n  endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: example.com, port_value: 80 } } } } ] } ]\n",
        ),
    )
    .expect("cluster");
    assert_eq!(c.name, "backend");
    assert_eq!(c.discovery, model::DiscoveryType::StrictDns);
    assert_eq!(
        c.lb_policy,
        model::LbPolicy::LeastRequest { choice_count: 2 }
    );
    assert!(c.eds.is_none());

    let eds = resource::cluster(
        &ctx,
        &typed(
            CLUSTER_TYPE,
            "name: svc\ntype: EDS\neds_cluster_config: { eds_config: { ads: {}, initial_fetch_timeout: 3s } }\n",
        ),
    )
    .expect("EDS cluster");
    let config = eds.eds.expect("eds config");
    assert_eq!(config.service_name, "svc");
    assert_eq!(config.source.kind, ConfigSourceKind::Ads);
    assert_eq!(
        config.source.initial_fetch_timeout,
        Some(Duration::from_secs(3))
    );
}

#[test]
fn cluster_errors_name_the_resource_and_field() {
    let ctx = ctx();
    let cases = [
        (
            "name: bad\nload_assignment:\n  cluster_name: bad\n  endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: example.com, port_value: 80 } } } } ] } ]\n",
            "Cluster 'bad': load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: 'example.com' is not an IP address (STATIC clusters need IPs; use STRICT_DNS for names)",
        ),
        (
            "name: hc\nhealth_checks: [ { timeout: 1s, interval: 1s, tcp_health_check: {} } ]\n",
            "Cluster 'hc': health_checks: not supported by Baton yet",
        ),
        (
            "name: ring\nlb_policy: RING_HASH\n",
            "Cluster 'ring': lb_policy: RING_HASH is not supported by Baton yet",
        ),
        (
            "name: svc\ntype: EDS\n",
            "Cluster 'svc': eds_cluster_config: cannot create an EDS cluster without an EDS config",
        ),
        (
            "name: svc\ntype: EDS\neds_cluster_config: { eds_config: { api_config_source: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: from-cds } } ] } } }\n",
            "Cluster 'svc': eds_cluster_config.eds_config.api_config_source.grpc_services[0].envoy_grpc.cluster_name: unknown cluster 'from-cds': the control-plane cluster must be a statically defined non-EDS cluster (static_resources.clusters)",
        ),
        (
            "connect_timeout: 1s\n",
            "Cluster: name: required field is missing or empty",
        ),
    ];
    for (body, expected) in cases {
        let e = resource::cluster(&ctx, &typed(CLUSTER_TYPE, body)).unwrap_err();
        assert_eq!(e.to_string(), expected);
        assert_eq!(e.type_url, CLUSTER_TYPE);
    }
    let e = resource::cluster(
        &ctx,
        &typed(
            CLUSTER_TYPE,
            "name: hc\nhealth_checks: [ { timeout: 1s, interval: 1s, tcp_health_check: {} } ]\n",
        ),
    )
    .unwrap_err();
    assert_eq!(e.name.as_deref(), Some("hc"));
    assert_eq!(e.error.path, "health_checks");
}

#[test]
fn wrong_unknown_and_undecodable_resources_are_errors() {
    let ctx = ctx();
    let listener = typed(LISTENER_TYPE, "name: l\n");
    let e = resource::cluster(&ctx, &listener).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("Listener 'l': @type: expected {CLUSTER_TYPE}, got '{LISTENER_TYPE}'")
    );
    let unknown = Any {
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Nope".into(),
        value: vec![],
    };
    let e = resource::cluster(&ctx, &unknown).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Nope: @type: unknown or unsupported resource type 'type.googleapis.com/envoy.config.cluster.v3.Nope'"
    );
    assert!(resource::resource_name(&unknown).is_err());
    let garbage = Any {
        type_url: CLUSTER_TYPE.into(),
        value: vec![0x0a, 0xff, 0x01],
    };
    let e = resource::cluster(&ctx, &garbage).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("Cluster: cannot decode '{CLUSTER_TYPE}'")),
        "{e}"
    );
    assert!(resource::resource_name(&garbage).is_err());
    // An out-of-range enum decodes, then fails translation (a NACK, not a panic).
    let mut bad_enum = typed(CLUSTER_TYPE, "name: e\n");
    bad_enum.value.extend_from_slice(&[0x30, 0x63]); // lb_policy (field 6) = 99
    let e = resource::cluster(&ctx, &bad_enum).unwrap_err();
    assert_eq!(e.to_string(), "Cluster 'e': lb_policy: unknown enum value");
}

const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

fn listener_yaml(hcm_body: &str) -> String {
    format!(
        r#"name: web
address: {{ socket_address: {{ address: 127.0.0.1, port_value: 10000 }} }}
filter_chains:
- filters:
  - name: hcm
    typed_config:
      "@type": {HCM}
      stat_prefix: web
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
{hcm_body}"#
    )
}

#[test]
fn listener_with_inline_routes_validates_known_clusters() {
    let ctx = ctx();
    let routes = "      route_config:\n        virtual_hosts: [ { name: v, domains: [\"*\"], routes: [ { match: { prefix: \"/\" }, route: { cluster: backend } } ] } ]\n";
    let res = typed(LISTENER_TYPE, &listener_yaml(routes));
    let l = resource::listener(&ctx, &res, &known(&["backend"])).expect("listener");
    assert_eq!(l.name, "web");
    assert_eq!(l.address.port(), 10000);
    let e = resource::listener(&ctx, &res, &known(&[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Listener 'web': filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster 'backend' (not among the static and CDS clusters; set validate_clusters: false to allow)"
    );
    let unvalidated = typed(
        LISTENER_TYPE,
        &listener_yaml(&routes.replace(
            "route_config:\n",
            "route_config:\n        validate_clusters: false\n",
        )),
    );
    resource::listener(&ctx, &unvalidated, &known(&[])).expect("validate_clusters: false");
}

#[test]
fn listener_with_rds() {
    let ctx = ctx();
    let res = typed(
        LISTENER_TYPE,
        &listener_yaml(
            "      rds: { route_config_name: web-routes, config_source: { ads: {} } }\n",
        ),
    );
    let l = resource::listener(&ctx, &res, &known(&[])).expect("listener");
    let NetworkFilter::Http(hcm) = &l.filter_chains[0].network else {
        panic!("expected an HCM")
    };
    let rds = hcm.rds.as_ref().expect("rds");
    assert_eq!(rds.route_config_name, "web-routes");
    assert_eq!(rds.source.kind, ConfigSourceKind::Ads);

    let bad = typed(
        LISTENER_TYPE,
        &listener_yaml(
            "      rds: { route_config_name: r, config_source: { ads: {} } }\n      tracing: { provider: { name: envoy.tracers.zipkin } }\n",
        ),
    );
    let e = resource::listener(&ctx, &bad, &known(&[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Listener 'web': filter_chains[0].filters[0].typed_config.tracing.provider: not supported by Baton yet"
    );
    // What Istio puts on every HTTP listener: sampling without a provider, the UUID
    // request-id extension.
    let istio = typed(
        LISTENER_TYPE,
        &listener_yaml(
            "      rds: { route_config_name: r, config_source: { ads: {} } }\n      tracing: { client_sampling: { value: 100 }, random_sampling: { value: 1 }, overall_sampling: { value: 100 }, custom_tags: [ { tag: istio.mesh_id, environment: { name: ISTIO_META_MESH_ID, default_value: unknown } } ] }\n      request_id_extension: { typed_config: { \"@type\": type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig, use_request_id_for_trace_sampling: true } }\n",
        ),
    );
    let l = resource::listener(&ctx, &istio, &known(&[])).expect("Istio's tracing");
    let NetworkFilter::Http(hcm) = &l.filter_chains[0].network else {
        panic!("expected an HCM")
    };
    assert_eq!(hcm.tracing.map(|t| t.random.numerator), Some(100));
}

#[test]
fn route_configuration_does_not_validate_clusters_by_default() {
    let ctx = ctx();
    let body = "name: routes\nvirtual_hosts: [ { name: v, domains: [\"*\"], routes: [ { match: { prefix: \"/\" }, route: { cluster: later } } ] } ]\n";
    let rc =
        resource::route_configuration(&ctx, &typed(ROUTE_CONFIGURATION_TYPE, body), &known(&[]))
            .expect("RDS tables may name clusters CDS has not delivered yet");
    assert_eq!(rc.name, "routes");
    assert_eq!(rc.virtual_hosts[0].routes.len(), 1);

    let validated = typed(
        ROUTE_CONFIGURATION_TYPE,
        &format!("validate_clusters: true\n{body}"),
    );
    let e = resource::route_configuration(&ctx, &validated, &known(&[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RouteConfiguration 'routes': virtual_hosts[0].routes[0].route.cluster: unknown cluster 'later' (not among the static and CDS clusters; set validate_clusters: false to allow)"
    );
    resource::route_configuration(&ctx, &validated, &known(&["later"])).expect("known");

    let retry = typed(
        ROUTE_CONFIGURATION_TYPE,
        &body.replace(
            "cluster: later",
            "cluster: later, retry_policy: { retry_on: 5xx }",
        ),
    );
    let e = resource::route_configuration(&ctx, &retry, &known(&[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RouteConfiguration 'routes': virtual_hosts[0].routes[0].route.retry_policy: not supported by Baton yet"
    );
    let dup = typed(
        ROUTE_CONFIGURATION_TYPE,
        "name: routes\nvirtual_hosts: [ { name: a, domains: [\"*\"] }, { name: b, domains: [\"*\"] } ]\n",
    );
    let e = resource::route_configuration(&ctx, &dup, &known(&[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RouteConfiguration 'routes': virtual_hosts[1].domains[0]: only a single wildcard domain '*' is permitted in route routes"
    );
}

#[test]
fn cluster_load_assignment_translates_localities() {
    let ctx = ctx();
    let body = r#"cluster_name: svc
policy: { overprovisioning_factor: 200 }
endpoints:
- locality: { region: r, zone: z1 }
  load_balancing_weight: 3
  lb_endpoints:
  - endpoint: { address: { socket_address: { address: 10.0.0.1, port_value: 8080 } }, hostname: one }
    load_balancing_weight: 5
  - endpoint: { address: { socket_address: { address: "::1", port_value: 8080 } } }
    health_status: UNHEALTHY
- priority: 1
  lb_endpoints:
  - endpoint: { address: { socket_address: { address: 10.0.0.2, port_value: 8080 } } }
"#;
    let cla = resource::cluster_load_assignment(&ctx, &typed(CLUSTER_LOAD_ASSIGNMENT_TYPE, body))
        .expect("assignment");
    assert_eq!(cla.cluster_name, "svc");
    let la = &cla.load_assignment;
    assert_eq!(la.overprovisioning_factor, 200);
    assert_eq!(la.localities.len(), 2);
    assert_eq!(la.localities[0].locality, "r/z1/");
    assert_eq!(la.localities[0].weight, Some(3));
    assert_eq!(la.localities[1].priority, 1);
    let first = &la.localities[0].endpoints[0];
    assert_eq!(
        first.address,
        EndpointAddress::Ip("10.0.0.1:8080".parse().unwrap())
    );
    assert_eq!((first.weight, first.hostname.as_deref()), (5, Some("one")));
    assert!(first.healthy);
    assert!(!la.localities[0].endpoints[1].healthy);

    let empty = resource::cluster_load_assignment(
        &ctx,
        &typed(CLUSTER_LOAD_ASSIGNMENT_TYPE, "cluster_name: gone\n"),
    )
    .expect("an empty assignment");
    assert!(empty.load_assignment.localities.is_empty());
    assert_eq!(
        empty.load_assignment.overprovisioning_factor,
        model::DEFAULT_OVERPROVISIONING_FACTOR
    );
}

#[test]
fn cluster_load_assignment_errors() {
    let ctx = ctx();
    let endpoint = |address: &str| {
        format!("endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: {address}, port_value: 80 }} }} }} }} ] }} ]")
    };
    let cases = [
        (
            format!("cluster_name: svc\n{}\n", endpoint("localhost")),
            "ClusterLoadAssignment 'svc': endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: 'localhost' is not an IP address (EDS endpoints must be IPs)".to_string(),
        ),
        (
            endpoint("10.0.0.1"),
            "ClusterLoadAssignment: cluster_name: required field is missing or empty".to_string(),
        ),
        (
            "cluster_name: svc\npolicy: { drop_overloads: [ { category: c, drop_percentage: { numerator: 1 } } ] }\n".to_string(),
            "ClusterLoadAssignment 'svc': policy.drop_overloads: not supported by Baton yet".to_string(),
        ),
        (
            "cluster_name: svc\npolicy: { endpoint_stale_after: 5s }\n".to_string(),
            "ClusterLoadAssignment 'svc': policy.endpoint_stale_after: not supported by Baton yet".to_string(),
        ),
        (
            "cluster_name: svc\nendpoints: [ { load_balancing_weight: 0 } ]\n".to_string(),
            "ClusterLoadAssignment 'svc': endpoints[0].load_balancing_weight: must be at least 1".to_string(),
        ),
    ];
    for (body, expected) in cases {
        let e =
            resource::cluster_load_assignment(&ctx, &typed(CLUSTER_LOAD_ASSIGNMENT_TYPE, &body))
                .unwrap_err();
        assert_eq!(e.to_string(), expected);
    }
}

#[test]
fn resource_names_and_json() {
    let cases = [
        (typed(CLUSTER_TYPE, "name: a\nconnect_timeout: 1s\n"), "a"),
        (typed(LISTENER_TYPE, "name: b\n"), "b"),
        (typed(ROUTE_CONFIGURATION_TYPE, "name: c\n"), "c"),
        (
            typed(CLUSTER_LOAD_ASSIGNMENT_TYPE, "cluster_name: d\n"),
            "d",
        ),
    ];
    for (res, name) in &cases {
        assert_eq!(resource::resource_name(res).expect("name"), *name);
    }
    let json = resource::resource_json(&cases[0].0);
    assert_eq!(
        json,
        serde_json::json!({ "@type": CLUSTER_TYPE, "name": "a", "connect_timeout": "1s" })
    );
}

#[test]
fn discovery_response_files_name_the_bad_line() {
    let text = "version_info: \"7\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: a\n  nonsense: 1\n";
    let e = resource::parse_discovery_response(text).unwrap_err();
    assert_eq!(e.path, "resources[0].nonsense");
    assert_eq!(e.line, Some(5));
    let ok = resource::parse_discovery_response(&text.replace("  nonsense: 1\n", ""))
        .expect("valid response");
    assert_eq!(ok.version_info, "7");
    assert_eq!(resource::resource_name(&ok.resources[0]).unwrap(), "a");
}

fn lb(policies: &str) -> String {
    format!("name: lb\ntype: EDS\neds_cluster_config: {{ eds_config: {{ ads: {{}} }} }}\nload_balancing_policy:\n  policies:\n{policies}")
}

fn policy(kind: &str, message: &str, body: &str) -> String {
    format!("  - typed_extension_config:\n      name: envoy.load_balancing_policies.{kind}\n      typed_config: {{ \"@type\": type.googleapis.com/envoy.extensions.load_balancing_policies.{kind}.v3.{message}{body} }}\n")
}

#[test]
fn typed_load_balancing_policies() {
    let ctx = ctx();
    let cluster = |yaml: &str| resource::cluster(&ctx, &typed(CLUSTER_TYPE, yaml));
    // As Envoy Gateway sends it: the enum and the typed policy together (the typed wins).
    let eg = format!(
        "lb_policy: RING_HASH\n{}",
        lb(&policy("least_request", "LeastRequest", ""))
    );
    assert_eq!(
        cluster(&eg).expect("least_request").lb_policy,
        model::LbPolicy::LeastRequest { choice_count: 2 }
    );
    let three = lb(&policy(
        "least_request",
        "LeastRequest",
        ", choice_count: 3",
    ));
    assert_eq!(
        cluster(&three).expect("choice_count").lb_policy,
        model::LbPolicy::LeastRequest { choice_count: 3 }
    );
    let rr = lb(&policy("round_robin", "RoundRobin", ""));
    assert_eq!(
        cluster(&rr).expect("rr").lb_policy,
        model::LbPolicy::RoundRobin
    );
    let random = lb(&policy("random", "Random", ""));
    assert_eq!(
        cluster(&random).expect("random").lb_policy,
        model::LbPolicy::Random
    );

    let cases = [
        (
            lb(&format!("{}{}", policy("ring_hash", "RingHash", ""), policy("round_robin", "RoundRobin", ""))),
            "Cluster 'lb': load_balancing_policy.policies[0].typed_extension_config: load balancing policy 'envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash' is not supported by Baton yet (supported: round_robin, least_request, random)",
        ),
        (
            lb(&policy("round_robin", "RoundRobin", ", slow_start_config: { slow_start_window: 10s }")),
            "Cluster 'lb': load_balancing_policy.policies[0].typed_extension_config.typed_config.slow_start_config: not supported by Baton yet",
        ),
        (
            lb(&policy("least_request", "LeastRequest", ", choice_count: 1")),
            "Cluster 'lb': load_balancing_policy.policies[0].typed_extension_config.typed_config.choice_count: must be at least 2",
        ),
        (
            lb(&policy("least_request", "LeastRequest", ", selection_method: FULL_SCAN")),
            "Cluster 'lb': load_balancing_policy.policies[0].typed_extension_config.typed_config.selection_method: not supported by Baton yet",
        ),
        (
            lb("  []\n").replace("  policies:\n  []", "  policies: []"),
            "Cluster 'lb': load_balancing_policy: no supported load balancing policy for cluster 'lb' among [] (supported: round_robin, least_request, random)",
        ),
        (
            "name: lb\nlb_policy: LOAD_BALANCING_POLICY_CONFIG\n".to_string(),
            "Cluster 'lb': load_balancing_policy: required with lb_policy LOAD_BALANCING_POLICY_CONFIG",
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(
            cluster(&yaml).unwrap_err().to_string(),
            expected,
            "for {yaml}"
        );
    }
}

/// Envoy skips a policy type it does not know and takes the next; so does Baton.
#[test]
fn unknown_policy_types_are_skipped() {
    use baton_proto::pb::envoy::config::cluster::v3 as cluster_pb;
    use baton_proto::pb::envoy::config::core::v3::TypedExtensionConfig;
    use prost::Message;
    let entry = |name: &str, type_url: &str| cluster_pb::load_balancing_policy::Policy {
        typed_extension_config: Some(TypedExtensionConfig {
            name: name.into(),
            typed_config: Some(Any {
                type_url: type_url.into(),
                value: vec![],
            }),
        }),
    };
    let proto = cluster_pb::Cluster {
        name: "custom".into(),
        load_balancing_policy: Some(cluster_pb::LoadBalancingPolicy {
            policies: vec![
                entry("mine", "type.googleapis.com/com.example.MyBalancer"),
                entry(
                    "envoy.load_balancing_policies.random",
                    "type.googleapis.com/envoy.extensions.load_balancing_policies.random.v3.Random",
                ),
            ],
        }),
        ..Default::default()
    };
    let res = Any {
        type_url: CLUSTER_TYPE.into(),
        value: proto.encode_to_vec(),
    };
    let c = resource::cluster(&ctx(), &res).expect("the known policy");
    assert_eq!(c.lb_policy, model::LbPolicy::Random);
}

#[test]
fn unknown_fields_in_resources_follow_the_policy() {
    use baton_config::resource::UnknownFields;
    let mut res = any(
        "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: c\nconnect_timeout: 1s\ntype: STATIC\n",
    );
    // Field 999, varint 1: no Cluster field has that number.
    res.value.extend_from_slice(&[0xb8, 0x3e, 0x01]);
    assert!(resource::cluster(&ctx(), &res).is_ok(), "warn by default");
    let ignore = ctx().with_unknown_fields(UnknownFields::Ignore);
    assert!(resource::cluster(&ignore, &res).is_ok());
    let reject = ctx().with_unknown_fields(UnknownFields::Reject);
    let err = resource::cluster(&reject, &res)
        .expect_err("rejected")
        .to_string();
    assert!(err.contains("999"), "{err}");
    assert!(err.contains("'c'"), "{err}");
}
