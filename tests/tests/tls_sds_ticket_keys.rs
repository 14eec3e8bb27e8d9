//! `session_ticket_keys_sds_secret_config` from a watched SDS file: clients resume with
//! tickets sealed under the secret's keys; replacing the file with other keys rotates
//! them without a restart (a ticket sealed under a key no longer listed makes a full
//! handshake, the next one resumes under the new key); a key of the wrong length is
//! refused (`update_rejected`) and the current keys stay. The same keys over ADS (SotW
//! and delta): clients resume under the delivered keys, and under the next ones.

mod xds_support;

use std::path::Path;
use std::sync::Arc;

use baton_tests::config::{bootstrap, direct_route, hcm, hcm_filter, route_config, vhost};
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa, TestCert};
use baton_tests::{Proxy, RawHttp1, TempDir};
use serde_json::{json, Value};

fn keys_file(version: &str, keys: &[&[u8]]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        // ASCII bytes, so `inline_string` carries them.
        .map(|k| json!({ "inline_string": String::from_utf8_lossy(k) }))
        .collect();
    json!({
        "version_info": version,
        "resources": [{
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "name": "ticket_keys",
            "session_ticket_keys": { "keys": keys },
        }]
    })
    .to_string()
}

fn replace_atomically(path: &Path, content: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn config(cert: &TestCert, secret_path: &Path, watched: &Path) -> Value {
    let ctx = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": { "tls_certificates": [{
            "certificate_chain": { "inline_string": cert.cert_pem },
            "private_key": { "inline_string": cert.key_pem },
        }] },
        "session_ticket_keys_sds_secret_config": {
            "name": "ticket_keys",
            "sds_config": {
                "path_config_source": {
                    "path": secret_path.display().to_string(),
                    "watched_directory": { "path": watched.display().to_string() },
                },
                "resource_api_version": "V3",
            },
        },
    });
    let listener = json!({
        "name": "l",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "filters": [hcm_filter(hcm(route_config(vec![vhost(
                "all",
                &["*"],
                vec![direct_route("/", 200, "ok")],
            )])))],
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": ctx },
        }],
    });
    let mut config = bootstrap(vec![listener], vec![]);
    config["node"] = json!({ "id": "n", "cluster": "c" });
    config
}

/// One request over a new TLS connection made with `client` (its session cache shared);
/// whether the handshake resumed a session.
async fn resumed(
    addr: std::net::SocketAddr,
    client: &Arc<rustls::ClientConfig>,
) -> anyhow::Result<bool> {
    let opts = ClientOptions::sni("tickets.example.com");
    let stream = tls::connect_with(addr, &opts, client.clone()).await?;
    let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let mut http = RawHttp1::over(stream);
    http.send_request("GET", "/", &[("connection", "close")], b"")
        .await?;
    let resp = http.read_response().await?;
    anyhow::ensure!(resp.status == 200, "status {}", resp.status);
    Ok(resumed)
}

async fn wait_counter(proxy: &Proxy, name: &str, want: u64) -> anyhow::Result<()> {
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((proxy.stat(name).await? == Some(want)).then_some(()))
    })
    .await
}

#[tokio::test]
async fn ticket_keys_rotate_from_a_watched_sds_file() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("ticket ca")?;
    let cert = ca.issue(
        &dir,
        "server",
        "cn-server",
        &["tickets.example.com"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let (k1, k2) = ([1u8; 80], [2u8; 80]);
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let secret_path = watched.join("keys.json");
    std::fs::write(&secret_path, keys_file("1", &[&k1]))?;
    let proxy = Proxy::start(&config(&cert, &secret_path, &watched)).await?;
    let addr = proxy.listener_addr("l").await?;
    let client = tls::client_config(&ClientOptions::sni("tickets.example.com"))?;

    assert!(!resumed(addr, &client).await?, "first handshake resumed");
    assert!(
        resumed(addr, &client).await?,
        "not resumed under the SDS keys"
    );

    // Other keys: the ticket sealed under k1 no longer opens; new tickets resume.
    replace_atomically(&secret_path, &keys_file("2", &[&k2]))?;
    wait_counter(&proxy, "sds.ticket_keys.update_success", 2).await?;
    assert!(
        !resumed(addr, &client).await?,
        "resumed a ticket sealed under a key no longer configured"
    );
    assert!(
        resumed(addr, &client).await?,
        "not resumed under the new keys"
    );

    // A key of the wrong length: refused, the current keys stay.
    replace_atomically(&secret_path, &keys_file("3", &[&[3u8; 10]]))?;
    wait_counter(&proxy, "sds.ticket_keys.update_rejected", 1).await?;
    assert!(
        resumed(addr, &client).await?,
        "the rejected keys replaced k2"
    );
    Ok(())
}

sotw_and_delta!(ticket_keys_over_ads);

fn keys_secret(keys: &[u8]) -> anyhow::Result<prost_types::Any> {
    baton_tests::xds::resources::to_any(
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        &json!({
            "name": "ticket_keys",
            "session_ticket_keys": { "keys": [{ "inline_string": String::from_utf8_lossy(keys) }] },
        }),
    )
}

async fn ticket_keys_over_ads(transport: baton_tests::config::XdsTransport) -> anyhow::Result<()> {
    use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE, LISTENER_TYPE};
    use xds_support::{bootstrap as xds_bootstrap, start, XDS_TIMEOUT};
    const SECRET_TYPE: &str =
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    let dir = TempDir::new()?;
    let ca = TestCa::new("ticket ca")?;
    let cert = ca.issue(
        &dir,
        "server",
        "cn-server",
        &["tickets.example.com"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
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
            "common_tls_context": { "tls_certificates": [{
                "certificate_chain": { "inline_string": cert.cert_pem },
                "private_key": { "inline_string": cert.key_pem },
            }] },
            "session_ticket_keys_sds_secret_config": {
                "name": "ticket_keys",
                "sds_config": resources::ads_source(),
            },
        },
    });
    cp.set(CLUSTER_TYPE, "1", vec![])?;
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
    cp.set(SECRET_TYPE, "1", vec![keys_secret(&[1u8; 80])?])?;
    let proxy = start(&xds_bootstrap(&cp, transport)).await?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let client = tls::client_config(&ClientOptions::sni("tickets.example.com"))?;
    assert!(!resumed(addr, &client).await?, "first handshake resumed");
    assert!(
        resumed(addr, &client).await?,
        "not resumed under the delivered keys"
    );

    cp.set(SECRET_TYPE, "2", vec![keys_secret(&[2u8; 80])?])?;
    cp.wait_for_ack(SECRET_TYPE, "2", XDS_TIMEOUT).await?;
    assert!(
        !resumed(addr, &client).await?,
        "resumed a ticket sealed under a key no longer delivered"
    );
    assert!(
        resumed(addr, &client).await?,
        "not resumed under the new keys"
    );
    drop(proxy);
    Ok(())
}
