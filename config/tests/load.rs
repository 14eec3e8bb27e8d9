//! End-to-end tests of the public API: good configs translate to the expected model,
//! bad ones fail with `file:line: path: message`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_config::model::{self, ClusterSpecifier, NetworkFilter, PathMatch, RouteAction};
use baton_config::{config_dump, load, load_file, load_yaml_str};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn err(yaml: &str) -> String {
    match load_yaml_str(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

fn http(listener: &model::Listener) -> &model::HttpConnectionManager {
    match &listener.filter_chains[0].network {
        NetworkFilter::Http(hcm) => hcm,
        other => panic!("expected HCM, got {other:?}"),
    }
}

/// A minimal valid bootstrap around one HCM `route_config` body and extra HCM fields.
fn hcm_yaml(hcm_extra: &str, routes: &str) -> String {
    format!(
        r#"
static_resources:
  clusters:
  - name: c
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }} }}
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
{hcm_extra}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
{routes}
"#
    )
}

const ROUTE_TO_C: &str =
    "              - match: { prefix: \"/\" }\n                route: { cluster: c }";

#[test]
fn front_proxy_translates_with_envoy_defaults() {
    let loaded = load_file(&fixture("front_proxy.yaml")).expect("loads");
    let m = &loaded.model;
    assert_eq!(m.node.id, "front");
    assert_eq!(m.node.cluster, "edge");
    assert_eq!(
        m.admin.as_ref().map(|a| a.address.to_string()),
        Some("127.0.0.1:9901".into())
    );
    assert_eq!(m.listeners.len(), 2);

    let ingress = &m.listeners[0];
    assert_eq!(ingress.name, "ingress");
    assert_eq!(ingress.stat_prefix, "listener.0.0.0.0_10000.");
    assert_eq!(ingress.per_connection_buffer_limit_bytes, 1024 * 1024);
    assert!(ingress.reuse_port);
    let hcm = http(ingress);
    assert_eq!(hcm.stat_prefix, "ingress_http");
    assert_eq!(hcm.codec_type, model::CodecType::Auto);
    assert_eq!(hcm.server_name, "envoy");
    assert_eq!(hcm.max_request_headers_kb, 60);
    assert_eq!(hcm.max_headers_count, 100);
    assert_eq!(hcm.stream_idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(hcm.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!(hcm.request_timeout, None);
    assert_eq!(hcm.drain_timeout, Duration::from_secs(5));
    assert!(hcm.generate_request_id);
    assert_eq!(hcm.access_logs.len(), 1);
    assert_eq!(hcm.access_logs[0].sink, model::AccessLogSink::Stdout);
    assert!(matches!(
        hcm.access_logs[0].format,
        model::AccessLogFormat::Text(_)
    ));

    let vh = &hcm.route_config.virtual_hosts[0];
    assert_eq!(vh.domains, vec!["*"]);
    let RouteAction::Forward(first) = &vh.routes[0].action else {
        panic!("forward")
    };
    assert!(matches!(&first.cluster, ClusterSpecifier::Name(n) if n == "service1"));
    assert_eq!(first.timeout, Some(Duration::from_secs(2)));
    assert!(matches!(&vh.routes[0].matcher.path, PathMatch::Prefix(p) if p == "/service/1"));
    assert!(vh.routes[0].matcher.case_sensitive);

    let PathMatch::Regex(re) = &vh.routes[1].matcher.path else {
        panic!("regex")
    };
    assert!(re.is_match("/api/v2/users"));
    assert!(
        !re.is_match("/x/api/v2/users"),
        "safe_regex must match the whole path"
    );
    let RouteAction::Forward(weighted) = &vh.routes[1].action else {
        panic!("forward")
    };
    let ClusterSpecifier::Weighted(w) = &weighted.cluster else {
        panic!("weighted")
    };
    assert_eq!(w.total_weight, 100);
    assert_eq!(
        weighted.timeout,
        Some(Duration::from_secs(15)),
        "route timeout defaults to 15s"
    );

    let RouteAction::Redirect(redirect) = &vh.routes[2].action else {
        panic!("redirect")
    };
    assert_eq!(redirect.response_code, 302);
    let RouteAction::DirectResponse(direct) = &vh.routes[3].action else {
        panic!("direct")
    };
    assert_eq!(direct.status, 200);
    assert_eq!(direct.body.as_deref(), Some(&b"hello\n"[..]));

    let tcp = &m.listeners[1];
    assert_eq!(tcp.address.to_string(), "[::1]:10001");
    let NetworkFilter::TcpProxy(proxy) = &tcp.filter_chains[0].network else {
        panic!("tcp")
    };
    assert!(matches!(&proxy.cluster, model::TcpClusterSpecifier::Name(n) if n == "service2"));
    assert_eq!(proxy.idle_timeout, Some(Duration::from_secs(3600)));

    let s1 = &m.clusters[0];
    assert_eq!(s1.connect_timeout, Duration::from_millis(250));
    assert_eq!(s1.discovery, model::DiscoveryType::StrictDns);
    assert_eq!(
        s1.lb_policy,
        model::LbPolicy::LeastRequest { choice_count: 2 }
    );
    assert_eq!(s1.protocol, model::UpstreamProtocol::Http1);
    assert_eq!(
        s1.load_assignment.localities[0].endpoints[0].address,
        model::EndpointAddress::Dns {
            host: "service1.local".into(),
            port: 8000
        }
    );
    let s2 = &m.clusters[1];
    assert_eq!(s2.connect_timeout, Duration::from_secs(5));
    assert_eq!(s2.protocol, model::UpstreamProtocol::Http2);
    assert_eq!(s2.circuit_breakers.max_connections, 1024);
}

#[test]
fn camel_case_keys_and_json_are_accepted() {
    let json = r#"{"staticResources": {"clusters": [{"name": "a", "connectTimeout": "1.5s", "lbPolicy": "RANDOM",
        "http2ProtocolOptions": {"maxConcurrentStreams": 7}}]}}"#;
    let loaded = load_yaml_str(json).expect("loads");
    let c = &loaded.model.clusters[0];
    assert_eq!(c.connect_timeout, Duration::from_millis(1500));
    assert_eq!(c.lb_policy, model::LbPolicy::Random);
    assert_eq!(c.protocol, model::UpstreamProtocol::Http2);
    assert_eq!(c.http2.max_concurrent_streams, 7);
}

#[test]
fn yaml_merge_keys_and_anchors_work() {
    let yaml = r#"
base: &base
  connect_timeout: 3s
  type: STATIC
static_resources:
  clusters:
  - <<: *base
    name: a
"#;
    // `base` is not a Bootstrap field, so the merge works but the stray key is reported.
    assert_eq!(err(yaml), "base: unknown field");
    let yaml = r#"
static_resources:
  clusters:
  - &c
    name: a
    connect_timeout: 3s
  - <<: *c
    name: b
"#;
    let loaded = load_yaml_str(yaml).expect("loads");
    assert_eq!(loaded.model.clusters[1].name, "b");
    assert_eq!(
        loaded.model.clusters[1].connect_timeout,
        Duration::from_secs(3)
    );
}

#[test]
fn file_errors_name_file_line_and_path() {
    let e = load_file(&fixture("v2_hosts.yaml")).expect_err("v2");
    let file = fixture("v2_hosts.yaml").display().to_string();
    assert_eq!(
        e.to_string(),
        format!("{file}:13: static_resources.clusters[1].hosts: unknown field (v2 API; in v3 use load_assignment)")
    );
    assert_eq!(e.line, Some(13));

    let e = load_file(&fixture("bad_enum.json")).expect_err("enum");
    let file = fixture("bad_enum.json").display().to_string();
    assert_eq!(
        e.to_string(),
        format!("{file}:6: static_resources.clusters[0].type: unknown enum value 'STATICX'")
    );

    let e = load_file(&fixture("missing.yaml")).expect_err("missing");
    assert!(
        e.to_string()
            .contains("missing.yaml: cannot read configuration file"),
        "{e}"
    );
}

#[test]
fn inline_errors_have_no_file() {
    assert_eq!(
        err("static_resources: { clusters: [ { name: a, bogus: 1 } ] }"),
        "static_resources.clusters[0].bogus: unknown field"
    );
    assert_eq!(
        err("static_resources:\n  clusters:\n  - name: a\n    connect_timeout: soon\n"),
        "static_resources.clusters[0].connect_timeout: failed to parse duration"
    );
}

#[test]
fn v2_era_configs_get_v3_hints() {
    let e = err(&hcm_yaml("", ROUTE_TO_C).replace(
        "          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
        "          - name: envoy.router",
    ));
    assert!(e.contains("http_filters[0].name: 'envoy.router' is a v2 name; in v3 use name: envoy.filters.http.router with typed_config"), "{e}");
    assert!(
        e.contains("envoy.extensions.filters.http.router.v3.Router"),
        "{e}"
    );

    let e = err("static_resources:\n  listeners:\n  - filter_chains:\n    - filters:\n      - name: envoy.http_connection_manager\n        config: { stat_prefix: x }\n");
    assert_eq!(
        e,
        "static_resources.listeners[0].filter_chains[0].filters[0].config: unknown field (v2 API; in v3 use typed_config with an \"@type\")"
    );
    let e = err("static_resources:\n  listeners:\n  - filter_chains:\n    - filters:\n      - name: envoy.tcp_proxy\n");
    assert!(e.contains("filters[0].name: 'envoy.tcp_proxy' is a v2 name; in v3 use name: envoy.filters.network.tcp_proxy"), "{e}");

    let e = err("static_resources:\n  clusters:\n  - name: a\n    tls_context: {}\n");
    assert!(e.starts_with("static_resources.clusters[0].tls_context: unknown field (v2 API; in v3 use transport_socket"), "{e}");

    let e = err("static_resources:\n  listeners:\n  - filter_chains:\n    - filters:\n      - name: x\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager\n");
    assert!(e.contains("typed_config.@type: v2 API type"), "{e}");
    assert!(e.contains("in v3 use type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"), "{e}");
}

#[test]
fn unknown_type_and_fields_inside_any_are_errors() {
    let e = err(&hcm_yaml("          bogus_hcm_field: 1", ROUTE_TO_C));
    assert_eq!(e, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.bogus_hcm_field: unknown field");
    let e = err("static_resources:\n  listeners:\n  - filter_chains:\n    - filters:\n      - name: x\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.NopeX\n");
    assert!(
        e.contains("typed_config.@type: unknown or unsupported type"),
        "{e}"
    );
}

#[test]
fn unsupported_features_are_named() {
    let e = err(&hcm_yaml("", "              - match: { prefix: \"/\" }\n                route: { cluster: c, retry_policy: { retry_on: 5xx } }"));
    assert!(
        e.ends_with("routes[0].route.retry_policy: not supported by Baton yet"),
        "{e}"
    );
    let e = err("static_resources:\n  clusters:\n  - name: a\n    type: ORIGINAL_DST\n");
    assert_eq!(
        e,
        "static_resources.clusters[0].type: ORIGINAL_DST clusters are not supported by Baton yet"
    );
    let e = err("static_resources:\n  clusters:\n  - name: a\n    health_checks: [ { timeout: 1s, interval: 1s, tcp_health_check: {} } ]\n");
    assert_eq!(
        e,
        "static_resources.clusters[0].health_checks: not supported by Baton yet"
    );
    // Upstream TLS is built, with the SNI from the host.
    let tls = "static_resources:\n  clusters:\n  - name: a\n    transport_socket:\n      name: tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n";
    load_yaml_str(tls).expect("upstream TLS accepted");
    load_yaml_str(&format!(
        "{tls}        auto_host_sni: true\n        auto_sni_san_validation: true\n"
    ))
    .expect("auto_host_sni accepted");
    let e = err(&format!(
        "{tls}        common_tls_context: {{ validation_context: {{ trusted_ca: {{ filename: /nonexistent/ca.pem }} }} }}\n"
    ));
    assert!(
        e.starts_with("static_resources.clusters[0].transport_socket.typed_config.common_tls_context.validation_context.trusted_ca"),
        "{e}"
    );
    load_yaml_str("static_resources:\n  clusters:\n  - name: a\n    transport_socket_matches: [ { name: m, match: { tls: true } } ]\n")
        .expect("transport_socket_matches accepted");
    let legacy = load_yaml_str("static_resources:\n  clusters:\n  - name: a\n    upstream_http_protocol_options: { auto_sni: true, override_auto_sni_header: x-sni }\n")
        .expect("the deprecated cluster field is accepted");
    let auto = &legacy.model.clusters[0].auto_sni;
    assert!(auto.sni && !auto.san_validation);
    assert_eq!(
        auto.override_header.as_ref().map(|h| h.as_str()),
        Some("x-sni")
    );
    let e = err("static_resources:\n  clusters:\n  - name: a\n    transport_socket_matches: [ { match: {} } ]\n");
    assert!(
        e.starts_with("static_resources.clusters[0].transport_socket_matches[0].name"),
        "{e}"
    );
    // Fields that do not change behaviour are accepted.
    load_yaml_str(
        "node: { id: n, locality: { zone: z } }\nstats_config: { use_all_default_tags: true }",
    )
    .expect("accepted");
}

#[test]
fn tcp_proxy_access_log_is_loaded() {
    let tcp = r#"
static_resources:
  listeners:
  - name: t
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: tcp
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: c
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
  clusters:
  - name: c
    load_assignment: { cluster_name: c, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } } ] } ] }
"#;
    let loaded = load_yaml_str(tcp).expect("tcp_proxy access_log accepted");
    let NetworkFilter::TcpProxy(proxy) = &loaded.model.listeners[0].filter_chains[0].network else {
        panic!("tcp_proxy")
    };
    assert_eq!(proxy.access_logs.len(), 1);
    assert_eq!(proxy.access_logs[0].sink, model::AccessLogSink::Stdout);
}

#[test]
fn path_normalization_and_host_port_stripping_translate() {
    let hcm_of = |extra: &str| {
        let bootstrap = load_yaml_str(&hcm_yaml(extra, ROUTE_TO_C)).expect("loads");
        http(&bootstrap.model.listeners[0]).clone()
    };
    let defaults = hcm_of("");
    assert!(!defaults.normalize_path && !defaults.merge_slashes);
    assert!(!defaults.strip_matching_host_port && !defaults.strip_any_host_port);
    assert_eq!(
        defaults.path_with_escaped_slashes_action,
        model::EscapedSlashesAction::KeepUnchanged
    );
    let set = hcm_of(
        "          normalize_path: true\n          merge_slashes: true\n          strip_any_host_port: true\n          path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT",
    );
    assert!(set.normalize_path && set.merge_slashes && set.strip_any_host_port);
    assert!(!set.strip_matching_host_port);
    assert_eq!(
        set.path_with_escaped_slashes_action,
        model::EscapedSlashesAction::UnescapeAndRedirect
    );
    for (name, action) in [
        (
            "IMPLEMENTATION_SPECIFIC_DEFAULT",
            model::EscapedSlashesAction::KeepUnchanged,
        ),
        ("KEEP_UNCHANGED", model::EscapedSlashesAction::KeepUnchanged),
        ("REJECT_REQUEST", model::EscapedSlashesAction::RejectRequest),
        (
            "UNESCAPE_AND_FORWARD",
            model::EscapedSlashesAction::UnescapeAndForward,
        ),
    ] {
        let hcm = hcm_of(&format!(
            "          path_with_escaped_slashes_action: {name}"
        ));
        assert_eq!(hcm.path_with_escaped_slashes_action, action, "{name}");
    }
    assert!(hcm_of("          strip_matching_host_port: true").strip_matching_host_port);
    // Both port modes at once is Envoy's config error.
    let e = err(&hcm_yaml(
        "          strip_matching_host_port: true\n          strip_any_host_port: true",
        ROUTE_TO_C,
    ));
    assert!(
        e.ends_with("strip_matching_host_port: Only one of `strip_matching_host_port` or `strip_any_host_port` can be set."),
        "{e}"
    );
}

#[test]
fn http_filters_must_end_with_router() {
    let yaml = hcm_yaml("", ROUTE_TO_C).replace(
        "          http_filters:\n",
        "          http_filters:\n          - name: envoy.filters.http.cors\n            typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }\n",
    );
    let e = err(&yaml);
    assert!(
        e.ends_with("http_filters[0]: the router filter must be the last HTTP filter"),
        "{e}"
    );
    let e = err(&hcm_yaml("", ROUTE_TO_C).replace(
        "          http_filters:\n          - name: envoy.filters.http.router\n            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n",
        "",
    ));
    assert!(e.ends_with("typed_config.http_filters: http_filters must end with the router filter (envoy.filters.http.router, \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router)"), "{e}");
}

#[test]
fn route_validation() {
    let e = err(&hcm_yaml(
        "",
        "              - match: { prefix: \"/\" }\n                route: { cluster: nope }",
    ));
    assert!(e.ends_with("routes[0].route.cluster: unknown cluster 'nope' (not among static_resources.clusters; set validate_clusters: false to allow)"), "{e}");
    let e = err(&hcm_yaml("", "              - route: { cluster: c }"));
    assert!(
        e.ends_with("routes[0].match: required field is missing"),
        "{e}"
    );
    let e = err(&hcm_yaml("", "              - match: { safe_regex: { regex: \"(\" } }\n                route: { cluster: c }"));
    assert!(
        e.contains("routes[0].match.safe_regex.regex: invalid regex '('"),
        "{e}"
    );
    let e = err(&hcm_yaml("", "              - match: { prefix: \"/\" }\n                direct_response: { status: 700 }"));
    assert!(
        e.ends_with("routes[0].direct_response.status: status 700 is out of range (200-599)"),
        "{e}"
    );
    let e = err(&hcm_yaml("", "              - match: { prefix: \"/\" }\n                direct_response: { status: 200, body: { filename: /nonexistent/body } }"));
    assert!(
        e.contains("direct_response.body.filename: cannot read '/nonexistent/body'"),
        "{e}"
    );
}

#[test]
fn duplicate_names_and_domains_are_errors() {
    let e = err("static_resources:\n  clusters:\n  - name: a\n  - name: a\n");
    assert_eq!(
        e,
        "static_resources.clusters[1].name: duplicate cluster name 'a'"
    );
    let e = err("static_resources:\n  clusters:\n  - connect_timeout: 1s\n");
    assert_eq!(
        e,
        "static_resources.clusters[0].name: required field is missing or empty"
    );
    let yaml = hcm_yaml("", ROUTE_TO_C).replace(
        "            virtual_hosts:\n",
        "            virtual_hosts:\n            - { name: w, domains: [\"*\"], routes: [] }\n",
    );
    let e = err(&yaml);
    assert!(
        e.ends_with(
            "virtual_hosts[1].domains[0]: only a single wildcard domain '*' is permitted in route "
        ),
        "{e}"
    );
    let e = err(&hcm_yaml("", ROUTE_TO_C).replace("domains: [\"*\"]", "domains: []"));
    assert!(
        e.ends_with("virtual_hosts[0].domains: at least one domain is required"),
        "{e}"
    );
}

#[test]
fn listener_validation() {
    let e = err("static_resources:\n  listeners:\n  - name: l\n    address: { socket_address: { address: 127.0.0.1, port_value: 70000 } }\n");
    assert_eq!(e, "static_resources.listeners[0].address.socket_address.port_value: port 70000 is out of range (0-65535)");
    let e = err("static_resources:\n  listeners:\n  - name: l\n");
    assert_eq!(
        e,
        "static_resources.listeners[0].address: required field is missing"
    );
    let e = err("static_resources:\n  listeners:\n  - name: l\n    address: { socket_address: { address: 127.0.0.1, port_value: 1 } }\n");
    assert_eq!(e, "static_resources.listeners[0].filter_chains: no filter chains specified (need filter_chains or default_filter_chain)");
}

#[test]
fn durations_wrappers_enums_and_oneofs() {
    let yaml = hcm_yaml(
        "          stream_idle_timeout: 0s\n          request_timeout: 10s\n          max_request_headers_kb: 96\n          use_remote_address: true\n          codec_type: HTTP2\n          server_header_transformation: PASS_THROUGH",
        "              - match: { path: \"/x\", case_sensitive: false }\n                route: { cluster: c, timeout: 0s, host_rewrite_literal: example.com }",
    );
    let loaded = load_yaml_str(&yaml).expect("loads");
    let hcm = http(&loaded.model.listeners[0]);
    assert_eq!(hcm.stream_idle_timeout, None, "0 disables");
    assert_eq!(hcm.request_timeout, Some(Duration::from_secs(10)));
    assert_eq!(hcm.max_request_headers_kb, 96);
    assert!(hcm.use_remote_address);
    assert_eq!(hcm.codec_type, model::CodecType::Http2);
    assert_eq!(
        hcm.server_header_transformation,
        model::ServerHeaderTransformation::PassThrough
    );
    let route = &hcm.route_config.virtual_hosts[0].routes[0];
    assert!(!route.matcher.case_sensitive);
    let RouteAction::Forward(f) = &route.action else {
        panic!("forward")
    };
    assert_eq!(f.timeout, None);
    assert!(matches!(&f.host_rewrite, model::HostRewrite::Literal(h) if h == "example.com"));
}

#[test]
fn host_rewrite_path_regex() {
    let yaml = hcm_yaml(
        "          use_remote_address: false",
        "              - match: { prefix: \"/\" }\n                route: { cluster: c, host_rewrite_path_regex: { pattern: { regex: \"^/([a-z]+)/.*$\" }, substitution: \"\\\\1.example\" } }",
    );
    let loaded = load_yaml_str(&yaml).expect("loads");
    let hcm = http(&loaded.model.listeners[0]);
    let RouteAction::Forward(f) = &hcm.route_config.virtual_hosts[0].routes[0].action else {
        panic!("forward")
    };
    let model::HostRewrite::PathRegex(re, sub) = &f.host_rewrite else {
        panic!("path regex host rewrite: {:?}", f.host_rewrite)
    };
    assert_eq!(re.as_str(), "^/([a-z]+)/.*$");
    assert_eq!(sub, "\\1.example");
    let bad = yaml.replace("^/([a-z]+)/.*$", "(");
    assert!(err(&bad).contains("host_rewrite_path_regex.pattern.regex"));
}

#[test]
fn header_mutations_and_access_log_formats() {
    let yaml = hcm_yaml(
        r#"          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /tmp/baton-access.log
              log_format:
                json_format: { code: "%RESPONSE_CODE%", method: "%REQ(:METHOD)%", n: 1 }"#,
        r#"              - match: { prefix: "/" }
                route: { cluster: c }
                request_headers_to_add:
                - header: { key: X-Client, value: "%DOWNSTREAM_REMOTE_ADDRESS%" }
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
                response_headers_to_remove: [server]"#,
    );
    let loaded = load_yaml_str(&yaml).expect("loads");
    let hcm = http(&loaded.model.listeners[0]);
    assert_eq!(
        hcm.access_logs[0].sink,
        model::AccessLogSink::File("/tmp/baton-access.log".into())
    );
    let model::AccessLogFormat::Json(fields) = &hcm.access_logs[0].format else {
        panic!("json")
    };
    assert_eq!(
        fields.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        vec!["code", "method", "n"]
    );
    let headers = &hcm.route_config.virtual_hosts[0].routes[0].headers;
    assert_eq!(headers.request_add[0].name, "x-client");
    assert_eq!(
        headers.request_add[0].append_action,
        model::AppendAction::OverwriteIfExistsOrAdd
    );
    assert!(headers.request_add[0].value.as_literal().is_none());
    assert_eq!(headers.response_remove, vec![http::header::SERVER]);

    let e = err(&hcm_yaml(
        "",
        "              - match: { prefix: \"/\" }\n                route: { cluster: c }\n                request_headers_to_add: [ { header: { key: x, value: \"%NOT_A_COMMAND%\" } } ]",
    ));
    assert!(
        e.ends_with(
            "request_headers_to_add[0].header.value: unknown format command '%NOT_A_COMMAND%'"
        ),
        "{e}"
    );
}

#[test]
fn inline_yaml_merges_over_file() {
    let overlay = "node: { id: overridden }\nstatic_resources:\n  clusters:\n  - name: extra\n    load_assignment: { cluster_name: extra }\n";
    let loaded = load(Some(&fixture("front_proxy.yaml")), Some(overlay)).expect("loads");
    assert_eq!(loaded.model.node.id, "overridden");
    assert_eq!(loaded.model.node.cluster, "edge");
    assert_eq!(loaded.model.clusters.len(), 3);
    assert_eq!(loaded.model.clusters[2].name, "extra");
}

#[test]
fn direct_response_body_from_file_is_read_at_load() {
    let body = fixture("body.txt");
    let yaml = hcm_yaml(
        "",
        &format!("              - match: {{ prefix: \"/\" }}\n                direct_response: {{ status: 503, body: {{ filename: \"{}\" }} }}", body.display()),
    );
    let loaded = load_yaml_str(&yaml).expect("loads");
    let RouteAction::DirectResponse(d) =
        &http(&loaded.model.listeners[0]).route_config.virtual_hosts[0].routes[0].action
    else {
        panic!("direct")
    };
    assert_eq!(d.body.as_deref(), Some(&b"hello from file\n"[..]));
}

#[test]
fn config_dump_is_snake_case_with_type_urls() {
    let loaded = load_file(&fixture("front_proxy.yaml")).expect("loads");
    let dump = config_dump(&loaded.proto);
    let filter =
        &dump["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(
        filter["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    assert_eq!(filter["stat_prefix"], "ingress_http");
    assert_eq!(
        dump["static_resources"]["clusters"][0]["connect_timeout"],
        "0.250s"
    );
}

#[test]
fn connect_config_selects_connect_termination() {
    let routes = |upgrade: &str| {
        format!(
            "              - match: {{ connect_matcher: {{}} }}\n                route: {{ cluster: c, upgrade_configs: [ {upgrade} ] }}"
        )
    };
    let terminate = |yaml: &str| {
        let loaded = load_yaml_str(yaml).expect("loads");
        let hcm = http(&loaded.model.listeners[0]);
        let RouteAction::Forward(f) = &hcm.route_config.virtual_hosts[0].routes[0].action else {
            panic!("forward")
        };
        f.upgrade_configs[0].terminate_connect
    };
    assert!(terminate(&hcm_yaml(
        "",
        &routes("{ upgrade_type: CONNECT, connect_config: {} }")
    )));
    assert!(!terminate(&hcm_yaml(
        "",
        &routes("{ upgrade_type: CONNECT }")
    )));
    let e = err(&hcm_yaml(
        "",
        &routes("{ upgrade_type: CONNECT, connect_config: { allow_post: true } }"),
    ));
    assert!(
        e.ends_with("upgrade_configs[0].connect_config.allow_post: not supported by Baton yet"),
        "{e}"
    );
    let e = err(&hcm_yaml(
        "",
        &routes("{ upgrade_type: websocket, connect_config: {} }"),
    ));
    assert!(
        e.ends_with("upgrade_configs[0].connect_config: only valid with upgrade_type CONNECT"),
        "{e}"
    );
}

#[test]
fn unknown_static_fields_are_dropped_and_reported_when_allowed() {
    let text = r#"
static_resources:
  bogus_top: 1
  clusters:
  - name: c
    type: STATIC
    connect_timeout: 1s
    bogus_field: 1
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          not_a_field: true
          route_config: { virtual_hosts: [] }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
"#;
    assert!(baton_config::load_yaml_str(text).is_err());
    let options = baton_config::LoadOptions {
        allow_unknown_static_fields: true,
        ..Default::default()
    };
    let loaded = baton_config::load_with(None, Some(text), &options).expect("loads");
    assert_eq!(
        loaded.unknown_fields.len(),
        3,
        "{:?}",
        loaded.unknown_fields
    );
    assert!(loaded
        .unknown_fields
        .iter()
        .any(|f| f.ends_with("not_a_field")));
}

#[test]
fn disabled_extensions_fail_the_configs_that_use_them() {
    let text = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          route_config: { virtual_hosts: [] }
          http_filters:
          - name: my_router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
"#;
    let options = baton_config::LoadOptions {
        disabled_extensions: vec!["envoy.filters.http/envoy.filters.http.router".into()],
        ..Default::default()
    };
    let err = baton_config::load_with(None, Some(text), &options)
        .expect_err("router disabled")
        .to_string();
    assert!(err.contains("envoy.filters.http.router"), "{err}");
    assert!(err.contains("http_filters[0]"), "{err}");
    // Bare names are not Envoy's `category/name` form: nothing is disabled.
    let (disabled, unknown) =
        baton_config::disabled::resolve(&["envoy.filters.http.router".to_string()]);
    assert!(disabled.is_empty());
    assert_eq!(unknown.len(), 1);
    let bare = baton_config::LoadOptions {
        disabled_extensions: vec!["envoy.filters.http.router".into()],
        ..Default::default()
    };
    assert!(baton_config::load_with(None, Some(text), &bare).is_ok());
}

#[test]
fn cluster_response_header_limits_come_from_common_http_protocol_options() {
    let yaml = hcm_yaml("", ROUTE_TO_C).replace(
        "  - name: c\n",
        "  - name: c\n    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        common_http_protocol_options: { max_headers_count: 10, max_response_headers_kb: 2 }\n        explicit_http_config: { http_protocol_options: {} }\n",
    );
    let loaded = load_yaml_str(&yaml).expect("loads");
    let c = &loaded.model.clusters[0];
    assert_eq!(c.max_response_headers_count, 10);
    assert_eq!(c.max_response_headers_kb, Some(2));
    assert_eq!(c.response_headers_limit(false), 2048);
    // Defaults: 100 headers, 80 KiB on HTTP/1 and 60 KiB on HTTP/2.
    let loaded = load_yaml_str(&hcm_yaml("", ROUTE_TO_C)).expect("loads");
    let c = &loaded.model.clusters[0];
    assert_eq!(c.max_response_headers_count, 100);
    assert_eq!(c.response_headers_limit(false), 80 * 1024);
    assert_eq!(c.response_headers_limit(true), 60 * 1024);
}

#[test]
fn max_response_headers_kb_on_the_connection_manager_is_refused() {
    let e = err(&hcm_yaml(
        "          common_http_protocol_options: { max_response_headers_kb: 4 }",
        ROUTE_TO_C,
    ));
    assert!(
        e.contains("max_response_headers_kb cannot be set on http_connection_manager"),
        "{e}"
    );
}

#[test]
fn max_requests_per_connection_on_the_connection_manager_zero_unlimited() {
    let routes = "              - match: { prefix: \"/\" }\n                route: { cluster: c }";
    for (value, expected) in [("3", Some(3)), ("0", None)] {
        let loaded = load_yaml_str(&hcm_yaml(
            &format!("          common_http_protocol_options: {{ max_requests_per_connection: {value} }}"),
            routes,
        ))
        .expect("max_requests_per_connection on the connection manager");
        let hcm = http(&loaded.model.listeners[0]);
        assert_eq!(hcm.max_requests_per_connection, expected, "{value}");
    }
}

#[test]
fn stream_duration_on_the_connection_manager_and_upstream_limits_refused_by_name() {
    let routes = "              - match: { prefix: \"/\" }\n                route: { cluster: c }";
    let loaded = load_yaml_str(&hcm_yaml(
        "          common_http_protocol_options: { max_stream_duration: 2s }",
        routes,
    ))
    .expect("max_stream_duration on the connection manager");
    let hcm = http(&loaded.model.listeners[0]);
    assert_eq!(hcm.max_stream_duration, Some(Duration::from_secs(2)));
    let off = load_yaml_str(&hcm_yaml(
        "          common_http_protocol_options: { max_stream_duration: 0s }",
        routes,
    ))
    .expect("0 disables");
    assert_eq!(http(&off.model.listeners[0]).max_stream_duration, None);
    // The same message on a cluster: what Baton does not do upstream is named.
    for (field, value) in [
        ("max_stream_duration", "1s"),
        ("max_connection_duration", "1s"),
    ] {
        let e = err(&format!(
            "static_resources:\n  clusters:\n  - name: a\n    common_http_protocol_options: {{ {field}: {value} }}\n"
        ));
        assert_eq!(
            e,
            format!("static_resources.clusters[0].common_http_protocol_options.{field}: not supported by Baton yet")
        );
    }
    // Envoy checks no upstream response for underscores: accepted, and nothing to do.
    load_yaml_str(
        "static_resources:\n  clusters:\n  - name: a\n    common_http_protocol_options: { headers_with_underscores_action: REJECT_REQUEST }\n",
    )
    .expect("headers_with_underscores_action on a cluster");
}
