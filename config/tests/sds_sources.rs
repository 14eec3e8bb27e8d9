//! Where SDS secrets come from besides files: `static_resources.secrets` named by an
//! `SdsSecretConfig` without `sds_config` (downstream and upstream; an unknown name is
//! Envoy's `Unknown static secret` error), and a control plane (`ads: {}`), which the
//! model records for the proxy to subscribe.

mod common;

use baton_config::load_yaml_str;

/// A self-signed certificate and key for `static.example.com`, made in a directory of
/// its own (tests run in parallel: one must not remove another's while it is in use).
fn self_signed() -> (String, String) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "baton-config-sds-sources-{}-{n}",
        std::process::id()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let pems = common::self_signed(&dir, "static.example.com");
    let _ = std::fs::remove_dir_all(&dir);
    pems
}

/// A listener and a cluster whose TLS contexts name `downstream` and `upstream` with
/// `sds_config` `source` (None: static), and `secrets` among the static resources.
fn config(
    downstream: &str,
    upstream: &str,
    source: Option<&str>,
    secrets: &str,
    ads: bool,
) -> String {
    let sds_config = source
        .map(|s| format!(", sds_config: {s}"))
        .unwrap_or_default();
    let dynamic = if ads {
        "dynamic_resources: { ads_config: { api_type: GRPC, transport_api_version: V3, grpc_services: [ { envoy_grpc: { cluster_name: x } } ] } }"
    } else {
        ""
    };
    format!(
        r#"
node: {{ id: n1, cluster: c1 }}
{dynamic}
static_resources:
  secrets: {secrets}
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs: [ {{ name: {downstream}{sds_config} }} ]
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: x
  clusters:
  - name: x
    type: STATIC
    load_assignment:
      cluster_name: x
      endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }} }} }} ] }} ]
  - name: tls
    type: STATIC
    load_assignment:
      cluster_name: tls
      endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 2 }} }} }} }} ] }} ]
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          tls_certificate_sds_secret_configs: [ {{ name: {upstream}{sds_config} }} ]
"#
    )
}

fn static_secret(name: &str, cert: &str, key: &str) -> String {
    serde_json::json!([{
        "name": name,
        "tls_certificate": {
            "certificate_chain": { "inline_string": cert },
            "private_key": { "inline_string": key },
        }
    }])
    .to_string()
}

#[test]
fn static_secrets_are_resolved_downstream_and_upstream() {
    let (cert, key) = self_signed();
    let secrets = static_secret("cert", &cert, &key);
    let loaded = load_yaml_str(&config("cert", "cert", None, &secrets, false)).expect("loads");
    let tls = loaded.model.listeners[0].filter_chains[0]
        .tls
        .clone()
        .expect("a TLS chain");
    assert_eq!(tls.certificates.len(), 1);
    assert_eq!(tls.certificates[0].dns_names, vec!["static.example.com"]);
    assert!(tls.sds_certificates.is_empty() && tls.xds_certificates.is_empty());
    let up = loaded.model.clusters[1].tls.clone().expect("upstream TLS");
    assert_eq!(up.certificates.len(), 1);
    assert!(up.sds_certificate.is_none() && up.xds_certificate.is_none());
}

#[test]
fn an_unknown_static_secret_is_a_config_error_as_in_envoy() {
    let (cert, key) = self_signed();
    let secrets = static_secret("cert", &cert, &key);
    for (down, up) in [("missing", "cert"), ("cert", "missing")] {
        let err = load_yaml_str(&config(down, up, None, &secrets, false)).expect_err("unknown");
        assert!(
            err.to_string().contains("Unknown static secret: missing"),
            "{err}"
        );
    }
    let twice = serde_json::json!([
        { "name": "cert", "tls_certificate": { "certificate_chain": { "inline_string": cert }, "private_key": { "inline_string": key } } },
        { "name": "cert", "tls_certificate": { "certificate_chain": { "inline_string": cert }, "private_key": { "inline_string": key } } },
    ])
    .to_string();
    let err = load_yaml_str(&config("cert", "cert", None, &twice, false)).expect_err("dup");
    assert!(
        err.to_string()
            .contains("Duplicate static secret name cert"),
        "{err}"
    );
}

#[test]
fn ads_secrets_are_left_for_the_proxy_to_subscribe() {
    let loaded = load_yaml_str(&config("a", "b", Some("{ ads: {} }"), "[]", true)).expect("loads");
    let tls = loaded.model.listeners[0].filter_chains[0]
        .tls
        .clone()
        .expect("a TLS chain");
    assert!(tls.certificates.is_empty());
    assert_eq!(tls.xds_certificates.len(), 1);
    assert_eq!(tls.xds_certificates[0].secret_name, "a");
    let up = loaded.model.clusters[1].tls.clone().expect("upstream TLS");
    assert_eq!(
        up.xds_certificate.as_ref().map(|s| s.secret_name.as_str()),
        Some("b")
    );
    assert!(loaded.model.uses_sds());

    let err =
        load_yaml_str(&config("a", "b", Some("{ ads: {} }"), "[]", false)).expect_err("no ads");
    assert!(err.to_string().contains("ADS must be configured"), "{err}");
}
