//! `tls_params.signature_algorithms` on a listener, as Envoy 1.40: an ECDSA P-256
//! certificate serves when the list has `ecdsa_secp256r1_sha256` and fails the handshake
//! when the list has only RSA schemes; an unknown name is a config error with Envoy's
//! message. The test passes on both.

use baton_tests::config::{bootstrap, direct_route, hcm, route_config, vhost};
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa};
use baton_tests::{run_to_completion, Proxy, RawHttp1, TempDir};
use serde_json::{json, Value};

fn listener(name: &str, cert: &tls::TestCert, algorithms: &[&str]) -> Value {
    let manager = hcm(route_config(vec![vhost(
        "all",
        &["*"],
        vec![direct_route("/", 200, "ok")],
    )]));
    json!({
        "name": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "tls_params": { "signature_algorithms": algorithms },
                    "tls_certificates": [{
                        "certificate_chain": { "filename": cert.cert_path.display().to_string() },
                        "private_key": { "filename": cert.key_path.display().to_string() },
                    }],
                },
            } },
            "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": manager }],
        }],
    })
}

/// An ECDSA P-256 certificate for `sig.example.com`, in `dir`.
fn ecdsa_cert(dir: &TempDir) -> anyhow::Result<tls::TestCert> {
    TestCa::new("sigalg ca")?.issue(
        dir,
        "server",
        "server",
        &["sig.example.com"],
        &[],
        KeyKind::Ecdsa,
    )
}

#[tokio::test]
async fn signature_algorithms_limit_what_the_server_signs_with() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let cert = ecdsa_cert(&dir)?;
    let config = bootstrap(
        vec![
            listener(
                "ecdsa",
                &cert,
                &["rsa_pss_rsae_sha256", "ecdsa_secp256r1_sha256"],
            ),
            listener(
                "rsa_only",
                &cert,
                &["rsa_pss_rsae_sha256", "rsa_pkcs1_sha256"],
            ),
        ],
        vec![],
    );
    let proxy = Proxy::start(&config).await?;
    let opts = ClientOptions::sni("sig.example.com");
    let stream = tls::connect(proxy.listener_addr("ecdsa").await?, &opts).await?;
    let mut http = RawHttp1::over(stream);
    http.send_request("GET", "/", &[], b"").await?;
    assert_eq!(http.read_response().await?.body_text(), "ok");
    let refused = tls::connect(proxy.listener_addr("rsa_only").await?, &opts).await;
    assert!(
        refused.is_err(),
        "handshake succeeded with only RSA schemes allowed"
    );
    Ok(())
}

#[test]
fn an_unknown_signature_algorithm_is_a_config_error() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let cert = ecdsa_cert(&dir)?;
    let config = bootstrap(
        vec![listener(
            "l",
            &cert,
            &["ecdsa_secp256r1_sha256", "bogus_alg"],
        )],
        vec![],
    );
    let file = dir.join("bad.json");
    std::fs::write(&file, serde_json::to_string(&config)?)?;
    let (status, out, err) =
        run_to_completion(&["--mode", "validate", "-c", &file.display().to_string()])?;
    assert!(!status.success());
    let text = format!("{out}{err}");
    assert!(
        text.contains(
            "Failed to initialize TLS signature algorithms ecdsa_secp256r1_sha256:bogus_alg"
        ),
        "{text}"
    );
    Ok(())
}
