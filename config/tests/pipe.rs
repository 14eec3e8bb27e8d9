//! `pipe` (Unix domain socket) endpoint addresses: accepted in STATIC clusters and EDS
//! assignments with Envoy's checks (path required and shorter than `sun_path`, no NUL
//! outside abstract names, `mode` at most 0777 and not on abstract sockets), refused in
//! DNS clusters and where Baton only takes IP socket addresses (listeners, admin).

use std::path::PathBuf;

use baton_config::load_yaml_str;
use baton_config::model::EndpointAddress;
use baton_config::resource::{self, ResourceContext, CLUSTER_LOAD_ASSIGNMENT_TYPE, CLUSTER_TYPE};
use prost_types::Any;

/// A bootstrap with one cluster of `cluster_type` whose only endpoint has `address`
/// (a YAML flow mapping).
fn cluster_yaml(cluster_type: &str, address: &str) -> String {
    format!(
        r#"
static_resources:
  clusters:
  - name: c
    type: {cluster_type}
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {address}
"#
    )
}

fn static_address(address: &str) -> Result<EndpointAddress, String> {
    let loaded = load_yaml_str(&cluster_yaml("STATIC", address)).map_err(|e| e.to_string())?;
    Ok(
        loaded.model.clusters[0].load_assignment.localities[0].endpoints[0]
            .address
            .clone(),
    )
}

fn static_error(address: &str) -> String {
    match static_address(address) {
        Ok(a) => panic!("expected an error for {address}, got {a:?}"),
        Err(e) => e,
    }
}

const ENDPOINT: &str =
    "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address";

#[test]
fn static_cluster_takes_a_pipe_path() {
    assert_eq!(
        static_address("{ pipe: { path: /run/xds.sock } }").unwrap(),
        EndpointAddress::Pipe(PathBuf::from("/run/xds.sock"))
    );
    // A relative path is connected to relative to the working directory, as in Envoy.
    assert_eq!(
        static_address("{ pipe: { path: up.sock } }").unwrap(),
        EndpointAddress::Pipe(PathBuf::from("up.sock"))
    );
}

#[test]
fn mode_is_accepted_up_to_0777_and_not_kept() {
    // 420 is 0644. (Envoy's YAML reader also takes `0644` as octal; Baton's YAML 1.2
    // reader takes it as decimal 644, which is out of range.)
    assert_eq!(
        static_address("{ pipe: { path: /run/a.sock, mode: 420 } }").unwrap(),
        EndpointAddress::Pipe(PathBuf::from("/run/a.sock"))
    );
    assert!(static_address("{ pipe: { path: /run/a.sock, mode: 511 } }").is_ok());
    let e = static_error("{ pipe: { path: /run/a.sock, mode: 999 } }");
    assert_eq!(
        e,
        format!("{ENDPOINT}.pipe.mode: 999 is out of range (at most 511, i.e. 0o777)")
    );
    // Read as decimal, 512 could be meant as octal 0512.
    assert!(static_error("{ pipe: { path: /run/a.sock, mode: 512 } }")
        .ends_with("; for octal 0512 write 330"));
    let e = static_error("{ pipe: { path: /run/a.sock, mode: 0644 } }");
    assert_eq!(
        e,
        format!(
            "{ENDPOINT}.pipe.mode: 644 is out of range (at most 511, i.e. 0o777); for octal 0644 write 420"
        )
    );
}

#[test]
fn abstract_names_start_with_at() {
    assert_eq!(
        static_address(r#"{ pipe: { path: "@baton-test" } }"#).unwrap(),
        EndpointAddress::Pipe(PathBuf::from("@baton-test"))
    );
    // Only the abstract namespace may carry NUL bytes in a name.
    assert!(static_address(r#"{ pipe: { path: "@a\0b" } }"#).is_ok());
    // Envoy accepts a lone "@" (the empty abstract name).
    assert!(static_address(r#"{ pipe: { path: "@" } }"#).is_ok());
    let e = static_error(r#"{ pipe: { path: "@baton-test", mode: 384 } }"#);
    assert_eq!(
        e,
        format!("{ENDPOINT}.pipe.mode: cannot be set for the abstract socket '@baton-test'")
    );
}

#[test]
fn path_is_required_short_enough_and_without_nul() {
    let missing = format!("{ENDPOINT}.pipe.path: required field is missing or empty");
    assert_eq!(static_error("{ pipe: {} }"), missing);
    assert_eq!(static_error(r#"{ pipe: { path: "" } }"#), missing);

    // sun_path holds 108 bytes with the terminating NUL: 107 fit, 108 do not.
    let fits = format!("/tmp/{}", "a".repeat(102));
    assert_eq!(fits.len(), 107);
    assert!(static_address(&format!("{{ pipe: {{ path: {fits} }} }}")).is_ok());
    let long = format!("/tmp/{}", "a".repeat(103));
    let e = static_error(&format!("{{ pipe: {{ path: {long} }} }}"));
    assert_eq!(
        e,
        format!(
            "{ENDPOINT}.pipe.path: '{long}' is 108 bytes, longer than a Unix socket path can be (107 bytes at most)"
        )
    );
    let long_abstract = format!("@{}", "a".repeat(107));
    assert!(
        static_error(&format!("{{ pipe: {{ path: \"{long_abstract}\" }} }}"))
            .contains("longer than a Unix socket path can be")
    );

    let e = static_error(r#"{ pipe: { path: "/tmp/a\0b" } }"#);
    assert_eq!(
        e,
        format!("{ENDPOINT}.pipe.path: a Unix socket path cannot contain a NUL character (only abstract '@' names can)")
    );
}

#[test]
fn dns_clusters_refuse_pipes() {
    for cluster_type in ["STRICT_DNS", "LOGICAL_DNS"] {
        let e = load_yaml_str(&cluster_yaml(
            cluster_type,
            "{ pipe: { path: /run/a.sock } }",
        ))
        .expect_err(cluster_type)
        .to_string();
        assert_eq!(
            e,
            format!("{ENDPOINT}.pipe: pipe addresses need a STATIC or EDS cluster (DNS clusters resolve socket_address names)"),
            "{cluster_type}"
        );
    }
}

#[test]
fn listeners_and_admin_still_refuse_pipes() {
    let listener = r#"
static_resources:
  listeners:
  - name: l
    address: { pipe: { path: /run/l.sock } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: c
  clusters:
  - name: c
    load_assignment:
      cluster_name: c
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { pipe: { path: /run/c.sock } } } } ] } ]
"#;
    assert_eq!(
        load_yaml_str(listener).expect_err("listener").to_string(),
        "static_resources.listeners[0].address.pipe: not supported by Baton yet"
    );
    let admin = "admin: { address: { pipe: { path: /run/admin.sock } } }\n";
    assert_eq!(
        load_yaml_str(admin).expect_err("admin").to_string(),
        "admin.address.pipe: not supported by Baton yet"
    );
}

#[test]
fn config_dump_keeps_the_pipe_as_written() {
    let loaded = load_yaml_str(&cluster_yaml(
        "STATIC",
        "{ pipe: { path: /run/a.sock, mode: 420 } }",
    ))
    .expect("config");
    let dump = baton_config::config_dump(&loaded.proto);
    let address = &dump["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
        ["lb_endpoints"][0]["endpoint"]["address"];
    assert_eq!(
        *address,
        serde_json::json!({ "pipe": { "path": "/run/a.sock", "mode": 420 } })
    );
}

const XDS_BOOTSTRAP: &str = r#"
node: { id: node1, cluster: c1 }
dynamic_resources:
  ads_config: { api_type: GRPC, grpc_services: [ { envoy_grpc: { cluster_name: xds } } ] }
  cds_config: { ads: {} }
static_resources:
  clusters:
  - name: xds
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: xds
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { pipe: { path: /run/xds.sock } } } } ] } ]
"#;

fn typed(type_url: &str, body: &str) -> Any {
    let mut value: serde_json::Value = serde_yaml_ng::from_str(body).expect("resource YAML");
    value["@type"] = serde_json::Value::String(type_url.to_string());
    let response = serde_json::json!({ "version_info": "1", "resources": [value] });
    let parsed = resource::parse_discovery_response(&response.to_string())
        .unwrap_or_else(|e| panic!("cannot parse {body}: {e}"));
    parsed.resources.into_iter().next().expect("one resource")
}

#[test]
fn control_plane_cluster_may_be_a_pipe() {
    let loaded = load_yaml_str(XDS_BOOTSTRAP).expect("bootstrap");
    assert_eq!(
        loaded.model.clusters[0].load_assignment.localities[0].endpoints[0].address,
        EndpointAddress::Pipe(PathBuf::from("/run/xds.sock"))
    );
}

#[test]
fn eds_and_cds_take_pipes_with_the_same_checks() {
    let loaded = load_yaml_str(XDS_BOOTSTRAP).expect("bootstrap");
    let ctx = ResourceContext::new(&loaded.proto).expect("context");
    let cla = resource::cluster_load_assignment(
        &ctx,
        &typed(
            CLUSTER_LOAD_ASSIGNMENT_TYPE,
            "cluster_name: svc\nendpoints: [ { lb_endpoints: [ { endpoint: { address: { pipe: { path: /run/svc.sock } } } } ] } ]\n",
        ),
    )
    .expect("assignment");
    assert_eq!(
        cla.load_assignment.localities[0].endpoints[0].address,
        EndpointAddress::Pipe(PathBuf::from("/run/svc.sock"))
    );
    let e = resource::cluster_load_assignment(
        &ctx,
        &typed(
            CLUSTER_LOAD_ASSIGNMENT_TYPE,
            "cluster_name: svc\nendpoints: [ { lb_endpoints: [ { endpoint: { address: { pipe: { path: \"\" } } } } ] } ]\n",
        ),
    )
    .expect_err("empty path");
    assert_eq!(
        e.to_string(),
        "ClusterLoadAssignment 'svc': endpoints[0].lb_endpoints[0].endpoint.address.pipe.path: required field is missing or empty"
    );

    let cluster = resource::cluster(
        &ctx,
        &typed(
            CLUSTER_TYPE,
            "name: s\ntype: STATIC\nload_assignment:\n  cluster_name: s\n  endpoints: [ { lb_endpoints: [ { endpoint: { address: { pipe: { path: /run/s.sock } } } } ] } ]\n",
        ),
    )
    .expect("CDS cluster");
    assert_eq!(
        cluster.load_assignment.localities[0].endpoints[0].address,
        EndpointAddress::Pipe(PathBuf::from("/run/s.sock"))
    );
}
