//! SDS from files at load: a `tls_certificate_sds_secret_configs` entry's secret file is
//! read with the config. A file without the named secret, or one that does not parse,
//! leaves its certificate awaited (as Envoy 1.40, which starts and waits for a good
//! file); a missing file, or a secret field Baton does not implement, is a config error
//! naming the file; SDS needs a node identity, as in Envoy.

mod common;

use std::path::PathBuf;

use baton_config::load_yaml_str;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("baton-config-sds-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn config(secret_file: &std::path::Path, node: bool) -> String {
    let dir = secret_file.parent().expect("parent").display().to_string();
    format!(
        r#"
{node}
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificate_sds_secret_configs:
            - name: server_cert
              sds_config:
                path_config_source:
                  path: {file}
                  watched_directory: {{ path: {dir} }}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: x
  clusters:
  - name: x
    load_assignment:
      cluster_name: x
      endpoints: [ {{ lb_endpoints: [ {{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 1 }} }} }} }} ] }} ]
"#,
        node = if node {
            "node: { id: n1, cluster: c1 }"
        } else {
            ""
        },
        file = secret_file.display(),
    )
}

#[test]
fn a_secret_file_without_the_named_secret_leaves_its_certificate_awaited() {
    let dir = temp_dir("name");
    let file = dir.join("secret.yaml");
    std::fs::write(
        &file,
        r#"
version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: other
  tls_certificate:
    certificate_chain: { inline_string: "x" }
    private_key: { inline_string: "y" }
"#,
    )
    .expect("write");
    let loaded = load_yaml_str(&config(&file, true)).expect("loads, awaiting the secret");
    let tls = loaded.model.listeners[0].filter_chains[0]
        .tls
        .clone()
        .expect("a TLS chain");
    assert!(tls.certificates[0].is_awaiting());
    assert_eq!(tls.sds_certificates.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unparseable_secret_file_is_awaited_and_a_missing_one_is_an_error() {
    let dir = temp_dir("parse");
    let file = dir.join("secret.json");
    std::fs::write(&file, "{ not json").expect("write");
    let loaded = load_yaml_str(&config(&file, true)).expect("loads, awaiting the secret");
    let tls = loaded.model.listeners[0].filter_chains[0]
        .tls
        .clone()
        .expect("a TLS chain");
    assert!(tls.certificates[0].is_awaiting());
    let missing = dir.join("missing.json");
    let err = load_yaml_str(&config(&missing, true)).expect_err("missing file");
    let text = err.to_string();
    assert!(text.contains(&missing.display().to_string()), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_good_secret_loads_and_sds_needs_a_node_identity() {
    let dir = temp_dir("node");
    let (cert, key) = common::self_signed(&dir, "sds.example.com");
    let file = dir.join("secret.json");
    let secret = serde_json::json!({
        "version_info": "1",
        "resources": [{
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "name": "server_cert",
            "tls_certificate": {
                "certificate_chain": { "inline_string": cert },
                "private_key": { "inline_string": key },
            }
        }]
    });
    std::fs::write(&file, secret.to_string()).expect("write");

    let loaded = load_yaml_str(&config(&file, true)).expect("good secret");
    let tls = loaded.model.listeners[0].filter_chains[0]
        .tls
        .clone()
        .expect("a TLS chain");
    assert_eq!(tls.certificates.len(), 1);
    assert_eq!(tls.certificates[0].dns_names, vec!["sds.example.com"]);
    assert_eq!(tls.sds_certificates.len(), 1);
    assert_eq!(tls.sds_certificates[0].slot, 0);
    assert_eq!(tls.sds_certificates[0].source.secret_name, "server_cert");
    assert!(loaded.model.check_node_for_xds().is_ok());

    let loaded = load_yaml_str(&config(&file, false)).expect("loads without a node");
    let err = loaded.model.check_node_for_xds().expect_err("no node");
    assert!(
        err.to_string()
            .contains("node 'id' and 'cluster' are required"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_secret_field_baton_does_not_implement_is_refused() {
    let dir = temp_dir("unsupported");
    let file = dir.join("secret.yaml");
    std::fs::write(
        &file,
        r#"
resources:
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: server_cert
  tls_certificate:
    certificate_chain: { inline_string: "x" }
    private_key: { inline_string: "y" }
    password: { inline_string: "z" }
"#,
    )
    .expect("write");
    let err = load_yaml_str(&config(&file, true)).expect_err("password");
    let text = err.to_string();
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("tls_certificate.password"), "{text}");
    assert!(text.contains("not supported by Baton yet"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
