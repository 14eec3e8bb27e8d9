//! Helpers shared by the config integration tests.

// Each test file uses its own subset.
#![allow(dead_code)]

/// A bootstrap with one listener whose HCM has `fields` (YAML flow fields after
/// `stat_prefix`), the router and one direct-response route.
pub fn hcm_bootstrap(fields: &str) -> String {
    format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: hcm
        typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, stat_prefix: s, {fields}, http_filters: [ {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }} ], route_config: {{ virtual_hosts: [ {{ name: v, domains: ["*"], routes: [ {{ match: {{ prefix: "/" }}, direct_response: {{ status: 200 }} }} ] }} ] }} }}
"#
    )
}

/// A self-signed ECDSA P-256 certificate for `cn` and its key (PEM), made by
/// `openssl req` in `dir`.
pub fn self_signed(dir: &std::path::Path, cn: &str) -> (String, String) {
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .arg("-subj")
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("running openssl (install openssl)");
    assert!(status.success(), "openssl req failed");
    (
        std::fs::read_to_string(cert).expect("cert"),
        std::fs::read_to_string(key).expect("key"),
    )
}
