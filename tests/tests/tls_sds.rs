//! SDS from files: a listener's certificate comes from a named `Secret` in a
//! `path_config_source` file with a `watched_directory`. Replacing the file atomically
//! (write, then rename into the directory) rotates the certificate for new handshakes
//! without a restart while an open keep-alive connection keeps serving; a bad update
//! (key not matching its certificate, or an unparseable file) is refused and the last
//! good certificate keeps serving. Counted as `sds.<secret name>.*`.

use std::path::Path;

use baton_tests::config::{bootstrap, direct_route, hcm, hcm_filter, route_config, vhost};
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa, TestCert};
use baton_tests::{Proxy, RawHttp1, TempDir};
use serde_json::{json, Value};

const SECRET: &str = "server_cert";

fn secret_file(version: &str, cert_pem: &str, key_pem: &str) -> Value {
    json!({
        "version_info": version,
        "resources": [{
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "name": SECRET,
            "tls_certificate": {
                "certificate_chain": { "inline_string": cert_pem },
                "private_key": { "inline_string": key_pem },
            }
        }]
    })
}

/// Writes `content` beside `path` and renames it over `path` (the atomic deployment
/// pattern the watched directory sees as a move).
fn replace_atomically(path: &Path, content: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn listener(secret_path: &Path, watched: &Path) -> Value {
    json!({
        "name": "l",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "common_tls_context": {
                        "tls_certificate_sds_secret_configs": [{
                            "name": SECRET,
                            "sds_config": {
                                "path_config_source": {
                                    "path": secret_path.display().to_string(),
                                    "watched_directory": { "path": watched.display().to_string() },
                                },
                                "resource_api_version": "V3",
                            }
                        }]
                    }
                }
            },
            "filters": [hcm_filter(hcm(route_config(vec![vhost(
                "all",
                &["*"],
                vec![direct_route("/", 200, "ok")],
            )])))],
        }],
    })
}

async fn stat(proxy: &Proxy, name: &str) -> anyhow::Result<Option<u64>> {
    let resp = proxy
        .admin_request(
            "GET",
            &format!("/stats?filter=^{}$", name.replace('.', "\\.")),
        )
        .await?;
    Ok(resp.body_text().lines().find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    }))
}

async fn wait_stat(proxy: &Proxy, name: &str, want: u64) -> anyhow::Result<()> {
    let got = baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((stat(proxy, name).await? == Some(want)).then_some(()))
    })
    .await;
    if let Err(e) = got {
        let all = proxy.admin_request("GET", "/stats?filter=sds").await?;
        anyhow::bail!("{name} never reached {want}: {e}\n{}", all.body_text());
    }
    Ok(())
}

/// The CN a fresh handshake is served.
async fn served_cn(addr: std::net::SocketAddr) -> anyhow::Result<Option<String>> {
    let stream = tls::connect(addr, &ClientOptions::sni("sds.example.com")).await?;
    Ok(tls::served_cn(&stream))
}

fn issue(ca: &TestCa, dir: &TempDir, name: &str) -> anyhow::Result<TestCert> {
    ca.issue(
        dir,
        name,
        &format!("cn-{name}"),
        &["sds.example.com"],
        &[],
        KeyKind::Ecdsa,
    )
}

#[tokio::test]
async fn certificate_rotates_from_a_watched_sds_file_without_a_restart() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("test ca")?;
    let a = issue(&ca, &dir, "a")?;
    let b = issue(&ca, &dir, "b")?;
    let c = issue(&ca, &dir, "c")?;
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let secret_path = watched.join("secret.json");
    std::fs::write(
        &secret_path,
        secret_file("1", &a.cert_pem, &a.key_pem).to_string(),
    )?;

    let mut config = bootstrap(vec![listener(&secret_path, &watched)], vec![]);
    // Envoy requires a node id and cluster for any SDS subscription.
    config["node"] = json!({ "id": "n", "cluster": "c" });
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("l").await?;
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-a"));
    wait_stat(&proxy, &format!("sds.{SECRET}.update_success"), 1).await?;

    // A keep-alive connection made with A.
    let stream = tls::connect(addr, &ClientOptions::sni("sds.example.com")).await?;
    assert_eq!(tls::served_cn(&stream).as_deref(), Some("cn-a"));
    let mut kept = RawHttp1::over(stream);
    kept.send_request("GET", "/", &[], b"").await?;
    assert_eq!(kept.read_response().await?.status, 200);

    replace_atomically(
        &secret_path,
        &secret_file("2", &b.cert_pem, &b.key_pem).to_string(),
    )?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((served_cn(addr).await?.as_deref() == Some("cn-b")).then_some(()))
    })
    .await?;
    wait_stat(&proxy, &format!("sds.{SECRET}.update_success"), 2).await?;

    // The connection made before the rotation still serves.
    kept.send_request("GET", "/", &[], b"").await?;
    assert_eq!(kept.read_response().await?.status, 200);

    // C's certificate with B's key: refused; B keeps serving.
    replace_atomically(
        &secret_path,
        &secret_file("3", &c.cert_pem, &b.key_pem).to_string(),
    )?;
    wait_stat(&proxy, &format!("sds.{SECRET}.update_rejected"), 1).await?;
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-b"));

    // Not a DiscoveryResponse at all: refused too; B keeps serving.
    replace_atomically(&secret_path, "{ this is not json")?;
    // (A file that does not parse is a failure, as Envoy counts it, not a rejection.)
    wait_stat(&proxy, &format!("sds.{SECRET}.update_failure"), 1).await?;
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-b"));
    for (name, want) in [
        ("update_success", 2),
        ("update_rejected", 1),
        ("update_attempt", 4),
        ("update_failure", 1),
        // xxHash64 of the last accepted version_info ("2"), as Envoy reports it.
        ("version", 6927017134761466251),
    ] {
        assert_eq!(
            stat(&proxy, &format!("sds.{SECRET}.{name}")).await?,
            Some(want),
            "sds.{SECRET}.{name}"
        );
    }

    // The connection made with A is still open and serving.
    kept.send_request("GET", "/", &[], b"").await?;
    assert_eq!(kept.read_response().await?.status, 200);
    Ok(())
}
