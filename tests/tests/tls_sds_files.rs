//! SDS files whose secret names its certificate and key by `filename`: replacing one of
//! those files (a move over it) makes the secret re-read, as Envoy 1.40, without the
//! secret file changing; a replacement that does not fit (a key not matching the
//! certificate) counts `sds.<name>.key_rotation_failed` and the last good certificate
//! keeps serving (counted twice per failed re-read, as Envoy 1.40). A secret file moved
//! in holding the same secret under a new version counts as an update without updating
//! the context. `sds.<name>.update_time` is when the secret file was last accepted.
//! A secret file that is bad when the config loads does not stop the start, as in Envoy
//! 1.40: handshakes fail until a good file is moved in. Each swap counts in the
//! listener's `server_ssl_socket_factory.ssl_context_update_by_sds`, each handshake
//! without a certificate in its `downstream_context_secrets_not_ready`. Such a file
//! (a key not matching its certificate) named by a listener and a cluster refuses the
//! config, as Envoy's.

use std::path::Path;

use baton_tests::config::{bootstrap, direct_route, hcm, hcm_filter, route_config, vhost};
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa};
use baton_tests::{Proxy, TempDir};
use serde_json::{json, Value};

const SECRET: &str = "server_cert";
/// The listener's socket-factory stats (named after the configured address).
const FACTORY: &str = "listener.127.0.0.1_0.server_ssl_socket_factory";

/// The served certificate's expiry, named after the secret (Envoy 1.40).
const EXPIRATION: &str =
    "listener.127.0.0.1_0.ssl.certificate.server_cert.expiration_unix_time_seconds";

/// Waits until [`EXPIRATION`] is `want`.
async fn expiration_reaches(proxy: &Proxy, want: u64) -> anyhow::Result<()> {
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((proxy.stat(EXPIRATION).await? == Some(want)).then_some(()))
    })
    .await
}

async fn factory_stat(proxy: &Proxy, name: &str) -> anyhow::Result<Option<u64>> {
    proxy.stat(&format!("{FACTORY}.{name}")).await
}

/// Waits until the socket-factory counter `name` is `want`.
async fn factory_stat_reaches(proxy: &Proxy, name: &str, want: u64) -> anyhow::Result<()> {
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((factory_stat(proxy, name).await? == Some(want)).then_some(()))
    })
    .await
}

/// Copies `from` beside `to` and renames it over `to` (a move, as deployments do).
fn move_over(from: &Path, to: &Path) -> anyhow::Result<()> {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, to)?;
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
                    "common_tls_context": { "tls_certificate_sds_secret_configs": [{
                        "name": SECRET,
                        "sds_config": {
                            "path_config_source": {
                                "path": secret_path.display().to_string(),
                                "watched_directory": { "path": watched.display().to_string() },
                            },
                            "resource_api_version": "V3",
                        },
                    }]},
                },
            },
            "filters": [hcm_filter(hcm(route_config(vec![vhost(
                "all", &["*"], vec![direct_route("/", 200, "ok")],
            )])))],
        }],
    })
}

async fn served_cn(addr: std::net::SocketAddr) -> anyhow::Result<Option<String>> {
    let stream = tls::connect(addr, &ClientOptions::sni("sds.example.com")).await?;
    Ok(tls::served_cn(&stream))
}

#[tokio::test]
async fn replacing_a_file_the_secret_names_rotates_the_certificate() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("test ca")?;
    // a and b expire on different days, so the expiration gauge shows which is served.
    let issue = |name: &str, until| ca.issue_named_until(&dir, name, "sds.example.com", until);
    let (a, b, c, d) = (
        issue("a", (2040, 1, 1))?,
        issue("b", (2041, 1, 1))?,
        issue("c", (2042, 1, 1))?,
        issue("d", (2043, 1, 1))?,
    );
    // The served files, outside the watched directory, named by the secret.
    let served = dir.join("served");
    std::fs::create_dir_all(&served)?;
    let (cert, key) = (served.join("cert.pem"), served.join("key.pem"));
    move_over(&a.cert_path, &cert)?;
    move_over(&a.key_path, &key)?;
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let secret_path = watched.join("secret.json");
    let secret = json!({
        "version_info": "1",
        "resources": [{
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "name": SECRET,
            "tls_certificate": {
                "certificate_chain": { "filename": cert.display().to_string() },
                "private_key": { "filename": key.display().to_string() },
            },
        }],
    });
    std::fs::write(&secret_path, secret.to_string())?;
    let mut config = bootstrap(vec![listener(&secret_path, &watched)], vec![]);
    config["node"] = json!({ "id": "n", "cluster": "c" });
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("l").await?;
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-a"));
    assert!(
        proxy.stat(&format!("sds.{SECRET}.update_time")).await? > Some(0),
        "update_time set once the secret was accepted"
    );
    // The first read of the file counts as an update, as in Envoy.
    factory_stat_reaches(&proxy, "ssl_context_update_by_sds", 1).await?;
    assert_eq!(
        proxy.stat(EXPIRATION).await?,
        Some(tls::not_after_unix(&a.cert_pem)?)
    );
    // Envoy records no update duration for a secret file: the histogram is there, empty.
    let durations = proxy
        .admin_request(
            "GET",
            &format!("/stats?filter=^sds\\.{SECRET}\\.update_duration$"),
        )
        .await?
        .body_text();
    assert_eq!(
        durations.trim(),
        format!("sds.{SECRET}.update_duration: No recorded values")
    );

    // The certificate and key files replaced (key first): b is served.
    move_over(&b.key_path, &key)?;
    move_over(&b.cert_path, &cert)?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((served_cn(addr).await?.as_deref() == Some("cn-b")).then_some(()))
    })
    .await?;
    // The gauge follows the rotation (as Envoy's, whose context is rebuilt).
    expiration_reaches(&proxy, tls::not_after_unix(&b.cert_pem)?).await?;
    // The secret file itself was read once.
    assert_eq!(
        proxy.stat(&format!("sds.{SECRET}.update_success")).await?,
        Some(1)
    );

    // A key that does not match the certificate: refused, counted twice (as Envoy 1.40
    // counts a failed re-read), b still served. (The two moves above may or may not
    // have been seen apart, so counts start from here.)
    let failed = format!("sds.{SECRET}.key_rotation_failed");
    let failed_before = proxy.stat(&failed).await?.unwrap_or(0);
    move_over(&c.key_path, &key)?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        let now = proxy.stat(&failed).await?.unwrap_or(0);
        Ok((now > failed_before).then_some(()))
    })
    .await?;
    assert_eq!(proxy.stat(&failed).await?, Some(failed_before + 2));
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-b"));
    assert_eq!(
        proxy.stat(EXPIRATION).await?,
        Some(tls::not_after_unix(&b.cert_pem)?)
    );
    // Then d's certificate, still with c's key: refused too, and as Envoy 1.40 the
    // gauge shows the refused certificate's expiry, though b keeps serving.
    move_over(&d.cert_path, &cert)?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        let now = proxy.stat(&failed).await?.unwrap_or(0);
        Ok((now >= failed_before + 4).then_some(()))
    })
    .await?;
    expiration_reaches(&proxy, tls::not_after_unix(&d.cert_pem)?).await?;
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-b"));
    let failed_before = failed_before + 2;
    // The rotation to b counted once, the refused key not at all.
    assert_eq!(
        factory_stat(&proxy, "ssl_context_update_by_sds").await?,
        Some(2)
    );
    assert_eq!(
        factory_stat(&proxy, "downstream_context_secrets_not_ready").await?,
        Some(0)
    );
    assert_eq!(
        factory_stat(&proxy, "upstream_context_secrets_not_ready").await?,
        Some(0)
    );

    // The secret file moved in again holding the same secret under a new version: an
    // update (`update_success`, `version_text`), but the context is not updated (Envoy
    // compares the secret's hash), nor does the failed key count again.
    let mut same = secret.clone();
    same["version_info"] = json!("2");
    let tmp = watched.join("secret.tmp");
    std::fs::write(&tmp, same.to_string())?;
    std::fs::rename(&tmp, &secret_path)?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        let successes = proxy.stat(&format!("sds.{SECRET}.update_success")).await?;
        Ok((successes == Some(2)).then_some(()))
    })
    .await?;
    let text = proxy
        .admin_request(
            "GET",
            &format!("/stats?filter=^sds\\.{SECRET}\\.version_text$"),
        )
        .await?
        .body_text();
    assert_eq!(text.trim(), format!("sds.{SECRET}.version_text: \"2\""));
    assert_eq!(
        factory_stat(&proxy, "ssl_context_update_by_sds").await?,
        Some(2)
    );
    assert_eq!(proxy.stat(&failed).await?, Some(failed_before + 2));
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-b"));
    Ok(())
}

#[tokio::test]
async fn a_bad_secret_file_at_load_is_awaited() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("test ca")?;
    let issue = |name: &str| ca.issue_named(&dir, name, "sds.example.com");
    let (a, b) = (issue("a")?, issue("b")?);
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let secret_path = watched.join("secret.json");
    let secret = |cert: &Path, key: &Path| {
        json!({
            "version_info": "1",
            "resources": [{
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                "name": SECRET,
                "tls_certificate": {
                    "certificate_chain": { "filename": cert.display().to_string() },
                    "private_key": { "filename": key.display().to_string() },
                },
            }],
        })
        .to_string()
    };
    // a's certificate with b's key.
    std::fs::write(&secret_path, secret(&a.cert_path, &b.key_path))?;
    let mut config = bootstrap(vec![listener(&secret_path, &watched)], vec![]);
    config["node"] = json!({ "id": "n", "cluster": "c" });
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("l").await?;
    assert!(
        served_cn(addr).await.is_err(),
        "a handshake without a certificate"
    );
    assert_eq!(
        proxy.stat(&format!("sds.{SECRET}.update_rejected")).await?,
        Some(1)
    );
    assert_eq!(
        factory_stat(&proxy, "downstream_context_secrets_not_ready").await?,
        Some(1)
    );
    // As Envoy, the connection is closed after the ClientHello without an alert.
    let answer =
        tls::bytes_after_client_hello(addr, &ClientOptions::sni("sds.example.com")).await?;
    assert!(answer.is_empty(), "sent {answer:?}");
    assert_eq!(
        factory_stat(&proxy, "downstream_context_secrets_not_ready").await?,
        Some(2)
    );
    assert_eq!(
        proxy
            .stat("listener.127.0.0.1_0.ssl.connection_error")
            .await?
            .unwrap_or(0),
        0
    );
    assert_eq!(
        factory_stat(&proxy, "ssl_context_update_by_sds").await?,
        Some(0)
    );
    let tmp = watched.join("secret.tmp");
    std::fs::write(&tmp, secret(&a.cert_path, &a.key_path))?;
    std::fs::rename(&tmp, &secret_path)?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((served_cn(addr).await.ok().flatten().as_deref() == Some("cn-a")).then_some(()))
    })
    .await?;
    assert_eq!(
        factory_stat(&proxy, "ssl_context_update_by_sds").await?,
        Some(1)
    );
    Ok(())
}

/// A listener with a fixed certificate whose validation context and session ticket keys
/// come from SDS files (named `ca` and `tk`).
fn awaiting_listener(
    cert: &tls::TestCert,
    ca_path: &Path,
    tk_path: &Path,
    watched: &Path,
) -> Value {
    let sds = |name: &str, path: &Path| {
        json!({ "name": name, "sds_config": {
            "path_config_source": {
                "path": path.display().to_string(),
                "watched_directory": { "path": watched.display().to_string() },
            },
            "resource_api_version": "V3",
        }})
    };
    let mut l = listener(ca_path, watched);
    l["filter_chains"][0]["transport_socket"]["typed_config"] = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {
            "tls_certificates": [{
                "certificate_chain": { "filename": cert.cert_path.display().to_string() },
                "private_key": { "filename": cert.key_path.display().to_string() },
            }],
            "validation_context_sds_secret_config": sds("ca", ca_path),
        },
        "session_ticket_keys_sds_secret_config": sds("tk", tk_path),
    });
    l
}

fn secret_file(secret: Value) -> String {
    let mut resource = secret;
    resource["@type"] =
        json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret");
    json!({ "version_info": "1", "resources": [resource] }).to_string()
}

/// Bad validation-context and ticket-keys files at load do not stop the start, as in
/// Envoy 1.40: every handshake is refused (`downstream_context_secrets_not_ready`)
/// until both files hold a good secret.
#[tokio::test]
async fn bad_validation_and_ticket_key_files_at_load_are_awaited() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("test ca")?;
    let cert = ca.issue(&dir, "a", "cn-a", &["sds.example.com"], &[], KeyKind::Ecdsa)?;
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let (ca_path, tk_path) = (watched.join("ca.json"), watched.join("tk.json"));
    let good_ca = secret_file(json!({
        "name": "ca",
        "validation_context": { "trusted_ca": { "inline_string": ca.pem } },
    }));
    // 80 bytes of `k`, base64.
    let key = format!("{}a2s=", "a2tr".repeat(26));
    let good_tk = secret_file(json!({
        "name": "tk", "session_ticket_keys": { "keys": [{ "inline_bytes": key }] },
    }));
    // A CA secret under another name; ticket keys 3 bytes long.
    std::fs::write(&ca_path, good_ca.replace("\"ca\"", "\"other\""))?;
    std::fs::write(
        &tk_path,
        secret_file(json!({
            "name": "tk", "session_ticket_keys": { "keys": [{ "inline_bytes": "YWJj" }] },
        })),
    )?;
    let mut config = bootstrap(
        vec![awaiting_listener(&cert, &ca_path, &tk_path, &watched)],
        vec![],
    );
    config["node"] = json!({ "id": "n", "cluster": "c" });
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("l").await?;
    assert!(
        served_cn(addr).await.is_err(),
        "a handshake while not ready"
    );
    assert_eq!(
        factory_stat(&proxy, "downstream_context_secrets_not_ready").await?,
        Some(1)
    );
    assert_eq!(proxy.stat("sds.ca.update_rejected").await?, Some(1));
    assert_eq!(proxy.stat("sds.tk.update_rejected").await?, Some(1));

    // The CA arrives: the ticket keys are still awaited.
    let tmp = watched.join("secret.tmp");
    std::fs::write(&tmp, &good_ca)?;
    std::fs::rename(&tmp, &ca_path)?;
    factory_stat_reaches(&proxy, "ssl_context_update_by_sds", 1).await?;
    assert!(served_cn(addr).await.is_err(), "ticket keys still awaited");
    assert_eq!(
        factory_stat(&proxy, "downstream_context_secrets_not_ready").await?,
        Some(2)
    );

    // Both good: handshakes succeed.
    std::fs::write(&tmp, &good_tk)?;
    std::fs::rename(&tmp, &tk_path)?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((served_cn(addr).await.ok().flatten().as_deref() == Some("cn-a")).then_some(()))
    })
    .await?;
    assert_eq!(
        factory_stat(&proxy, "ssl_context_update_by_sds").await?,
        Some(2)
    );
    Ok(())
}

/// A secret file whose certificate does not match its key, named by a listener and by
/// a cluster: Envoy 1.40 refuses the config (the cluster reads the file first and keeps
/// the secret, the listener's context is then built from it); named by two listeners
/// it starts, each awaiting a good file.
#[tokio::test]
async fn a_bad_secret_file_shared_by_a_listener_and_a_cluster_is_a_config_error(
) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("test ca")?;
    let issue = |name: &str| ca.issue_named(&dir, name, "sds.example.com");
    let (a, b) = (issue("a")?, issue("b")?);
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let secret_path = watched.join("secret.json");
    // a's certificate with b's key.
    std::fs::write(
        &secret_path,
        secret_file(json!({
            "name": SECRET,
            "tls_certificate": {
                "certificate_chain": { "filename": a.cert_path.display().to_string() },
                "private_key": { "filename": b.key_path.display().to_string() },
            },
        })),
    )?;
    let listener = listener(&secret_path, &watched);
    let mut second = listener.clone();
    second["name"] = json!("l2");
    let mut two_listeners = bootstrap(vec![listener.clone(), second], vec![]);
    two_listeners["node"] = json!({ "id": "n", "cluster": "c" });
    let proxy = Proxy::start(&two_listeners).await?;
    drop(proxy);

    let cluster = json!({
        "name": "up",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "up",
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": "127.0.0.1", "port_value": 1 }
            }}}]}],
        },
        "transport_socket": listener["filter_chains"][0]["transport_socket"].clone(),
    });
    let mut cluster = cluster;
    cluster["transport_socket"]["typed_config"]["@type"] =
        json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    let mut shared = bootstrap(vec![listener], vec![cluster]);
    shared["node"] = json!({ "id": "n", "cluster": "c" });
    match Proxy::start(&shared).await {
        Ok(_) => anyhow::bail!("started with a bad secret file shared by a listener and a cluster"),
        Err(e) => {
            let e = format!("{e:#}");
            // Envoy: `Failed to load private key from <inline>, Cause: ...KEY_VALUES_MISMATCH`.
            assert!(e.to_lowercase().contains("key"), "{e}");
        }
    }
    Ok(())
}
