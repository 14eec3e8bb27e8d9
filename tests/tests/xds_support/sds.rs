//! A TLS listener whose certificate is an xDS `Secret`, and that secret: shared by the
//! SDS-over-xDS tests.

use baton_tests::config::{direct_route, route_config, vhost};
use baton_tests::tls::TestCert;
use baton_tests::xds::resources;
use serde_json::{json, Value};

pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
pub const SECRET: &str = "server_cert";

pub fn secret(cert: &TestCert, key_pem: &str) -> anyhow::Result<prost_types::Any> {
    resources::to_any(
        SECRET_TYPE,
        &json!({
            "name": SECRET,
            "tls_certificate": {
                "certificate_chain": { "inline_string": cert.cert_pem },
                "private_key": { "inline_string": key_pem },
            }
        }),
    )
}

/// Listener `https` on `port`: one TLS chain whose certificate comes over ADS.
pub fn tls_listener(port: u16) -> Value {
    tls_listener_from(port, json!({ "ads": {}, "resource_api_version": "V3" }))
}

/// Listener `https` on `port` whose certificate comes from `sds_config`.
pub fn tls_listener_from(port: u16, sds_config: Value) -> Value {
    tls_listener_with(
        port,
        json!({
            "tls_certificate_sds_secret_configs": [{
                "name": SECRET,
                "sds_config": sds_config,
            }],
        }),
    )
}

/// Listener `https` on `port` answering 200 `ok`: one TLS chain with this
/// `common_tls_context`.
pub fn tls_listener_with(port: u16, common_tls_context: Value) -> Value {
    let mut listener = resources::inline_listener(
        "https",
        port,
        route_config(vec![vhost(
            "all",
            &["*"],
            vec![direct_route("/", 200, "ok")],
        )]),
    );
    listener["filter_chains"][0]["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": common_tls_context,
        },
    });
    listener
}
