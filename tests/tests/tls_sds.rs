//! SDS from files: a listener's certificate comes from a named `Secret` in a
//! `path_config_source` file with a `watched_directory`. Replacing the file atomically
//! (write, then rename into the directory) rotates the certificate for new handshakes
//! without a restart while an open keep-alive connection keeps serving; a bad update
//! (key not matching its certificate, or an unparseable file) is refused and the last
//! good certificate keeps serving. The same for a client-certificate trusted CA from a
//! `validation_context_sds_secret_config` file. Counted as `sds.<secret name>.*` (with the
//! accepted version in the text readout `version_text`). A
//! certificate from `static_resources.secrets` is served and dumped with its key redacted.

use std::path::Path;

use baton_tests::config::{bootstrap, direct_route, hcm, hcm_filter, route_config, vhost};
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa, TestCert};
use baton_tests::{Proxy, RawHttp1, TempDir};
use rustls::pki_types::pem::PemObject;
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

fn sds_config(name: &str, secret_path: &Path, watched: &Path) -> Value {
    json!({
        "name": name,
        "sds_config": {
            "path_config_source": {
                "path": secret_path.display().to_string(),
                "watched_directory": { "path": watched.display().to_string() },
            },
            "resource_api_version": "V3",
        }
    })
}

/// A listener whose one TLS chain has `context` as its `DownstreamTlsContext` fields.
fn listener(context: Value) -> Value {
    let mut typed_config = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    });
    for (k, v) in context.as_object().into_iter().flatten() {
        typed_config[k] = v.clone();
    }
    json!({
        "name": "l",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": typed_config,
            },
            "filters": [hcm_filter(hcm(route_config(vec![vhost(
                "all",
                &["*"],
                vec![direct_route("/", 200, "ok")],
            )])))],
        }],
    })
}

/// A bootstrap with `listener` and the node identity Envoy requires for any SDS
/// subscription.
fn config_with(listener: Value) -> Value {
    let mut config = bootstrap(vec![listener], vec![]);
    config["node"] = json!({ "id": "n", "cluster": "c" });
    config
}

async fn wait_stat(proxy: &Proxy, name: &str, want: u64) -> anyhow::Result<()> {
    let got = baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((proxy.stat(name).await? == Some(want)).then_some(()))
    })
    .await;
    if let Err(e) = got {
        let all = proxy.admin_request("GET", "/stats?filter=sds").await?;
        anyhow::bail!("{name} never reached {want}: {e}\n{}", all.body_text());
    }
    Ok(())
}

/// The CN a fresh handshake is served.
/// `sds.<SECRET>.version_text` as `/stats` prints it (text, then checked against the
/// JSON form), None when absent.
async fn version_text(proxy: &Proxy) -> anyhow::Result<Option<String>> {
    let name = format!("sds.{SECRET}.version_text");
    let path = format!("/stats?filter=^{}$", name.replace('.', "\\."));
    let text = proxy.admin_request("GET", &path).await?.body_text();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")));
    let quoted = line.map(|l| l.trim_matches('"').to_string());
    let json: Value = serde_json::from_str(
        &proxy
            .admin_request("GET", &format!("{path}&format=json"))
            .await?
            .body_text(),
    )?;
    let in_json = json["stats"]
        .as_array()
        .and_then(|stats| stats.iter().find(|s| s["name"] == name.as_str()))
        .map(|s| s["value"].as_str().map(str::to_string));
    assert_eq!(in_json, quoted.clone().map(Some), "{name} in JSON: {json}");
    Ok(quoted)
}

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

    let proxy = Proxy::start(&config_with(listener(json!({
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [sds_config(SECRET, &secret_path, &watched)],
        }
    }))))
    .await?;
    let addr = proxy.listener_addr("l").await?;
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-a"));
    wait_stat(&proxy, &format!("sds.{SECRET}.update_success"), 1).await?;
    // The accepted version_info as a text readout; Prometheus leaves it out unless asked.
    assert_eq!(version_text(&proxy).await?.as_deref(), Some("1"));
    let prometheus = proxy
        .admin_request("GET", "/stats/prometheus")
        .await?
        .body_text();
    assert!(!prometheus.contains("version_text"));
    // The secret's name is a label, as Envoy's tag extraction makes it.
    let success = format!("envoy_sds_update_success{{envoy_xds_resource_name=\"{SECRET}\"}} 1");
    assert!(prometheus.lines().any(|l| l == success), "{prometheus}");
    let prometheus = proxy
        .admin_request("GET", "/stats/prometheus?text_readouts")
        .await?
        .body_text();
    // A gauge of 0 with the text as a label, the secret another.
    let series = prometheus
        .lines()
        .find(|l| l.starts_with("envoy_sds_version_text{"));
    assert!(
        series.is_some_and(
            |l| l.contains(&format!("envoy_xds_resource_name=\"{SECRET}\""))
                && l.ends_with("text_value=\"1\"} 0")
        ),
        "{prometheus}"
    );

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
            proxy.stat(&format!("sds.{SECRET}.{name}")).await?,
            Some(want),
            "sds.{SECRET}.{name}"
        );
    }
    assert_eq!(version_text(&proxy).await?.as_deref(), Some("2"));

    // The connection made with A is still open and serving.
    kept.send_request("GET", "/", &[], b"").await?;
    assert_eq!(kept.read_response().await?.status, 200);
    Ok(())
}

fn validation_file(version: &str, ca_pem: &str) -> Value {
    json!({
        "version_info": version,
        "resources": [{
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "name": "client_ca",
            "validation_context": { "trusted_ca": { "inline_string": ca_pem } }
        }]
    })
}

/// An HTTPS request with `client` as the client certificate; Err when refused (TLS 1.3
/// clients learn of a rejection only when they read).
async fn get_with_client_cert(
    addr: std::net::SocketAddr,
    client: &TestCert,
) -> anyhow::Result<u16> {
    let opts = ClientOptions {
        client_cert: Some((client.cert_pem.clone(), client.key_pem.clone())),
        ..ClientOptions::sni("sds.example.com")
    };
    let stream = tls::connect(addr, &opts).await?;
    let mut http = RawHttp1::over(stream);
    http.send_request("GET", "/", &[], b"").await?;
    Ok(http.read_response().await?.status)
}

#[tokio::test]
async fn trusted_ca_rotates_from_a_watched_sds_file() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let server_ca = TestCa::new("server ca")?;
    let server = issue(&server_ca, &dir, "server")?;
    let (ca1, ca2) = (TestCa::new("client ca 1")?, TestCa::new("client ca 2")?);
    let client1 = ca1.issue(&dir, "client1", "cn-client1", &[], &[], KeyKind::Ecdsa)?;
    let client2 = ca2.issue(&dir, "client2", "cn-client2", &[], &[], KeyKind::Ecdsa)?;
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let secret_path = watched.join("ca.json");
    std::fs::write(&secret_path, validation_file("1", &ca1.pem).to_string())?;

    let proxy = Proxy::start(&config_with(listener(json!({
        "require_client_certificate": true,
        "common_tls_context": {
            "tls_certificates": [{
                "certificate_chain": { "inline_string": server.cert_pem },
                "private_key": { "inline_string": server.key_pem },
            }],
            "validation_context_sds_secret_config": sds_config("client_ca", &secret_path, &watched),
        }
    }))))
    .await?;
    let addr = proxy.listener_addr("l").await?;
    assert_eq!(get_with_client_cert(addr, &client1).await?, 200);
    assert!(get_with_client_cert(addr, &client2).await.is_err());
    wait_stat(&proxy, "sds.client_ca.update_success", 1).await?;

    replace_atomically(&secret_path, &validation_file("2", &ca2.pem).to_string())?;
    wait_stat(&proxy, "sds.client_ca.update_success", 2).await?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok(matches!(get_with_client_cert(addr, &client2).await, Ok(200)).then_some(()))
    })
    .await?;
    assert!(get_with_client_cert(addr, &client1).await.is_err());

    // A file that does not parse: the second CA stays.
    replace_atomically(&secret_path, "{ not json")?;
    wait_stat(&proxy, "sds.client_ca.update_failure", 1).await?;
    assert_eq!(get_with_client_cert(addr, &client2).await?, 200);
    Ok(())
}

/// A certificate from `static_resources.secrets`, named without `sds_config`: served,
/// and listed in `/config_dump`'s `static_secrets` with the key's file name redacted.
/// Its expiration gauge, and that of a trusted CA from a static secret, are named
/// after the secrets (as Envoy 1.40's, not `unnamed_cert_e3b0c442`).
#[tokio::test]
async fn certificate_from_a_static_secret() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("test ca")?;
    let a = issue(&ca, &dir, "a")?;
    let mut config = config_with(listener(json!({
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [{ "name": "static_cert" }],
            "validation_context_sds_secret_config": { "name": "static_ca" },
        }
    })));
    config["static_resources"]["secrets"] = json!([{
        "name": "static_cert",
        "tls_certificate": {
            "certificate_chain": { "filename": a.cert_path.display().to_string() },
            "private_key": { "filename": a.key_path.display().to_string() },
        }
    }, {
        "name": "static_ca",
        "validation_context": { "trusted_ca": { "inline_string": ca.pem } },
    }]);
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("l").await?;
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-a"));
    let gauge = |name: &str| {
        format!("listener.127.0.0.1_0.ssl.certificate.{name}.expiration_unix_time_seconds")
    };
    let not_after = baton_tests::tls::not_after_unix(&a.cert_pem)?;
    assert_eq!(proxy.stat(&gauge("static_cert")).await?, Some(not_after));
    assert!(proxy.stat(&gauge("static_ca")).await?.is_some());
    assert_eq!(proxy.stat(&gauge("unnamed_cert_e3b0c442")).await?, None);
    let dump: Value = proxy.admin_request("GET", "/config_dump").await?.json()?;
    let secrets = dump["configs"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|s| s["@type"] == "type.googleapis.com/envoy.admin.v3.SecretsConfigDump")
        })
        .cloned()
        .unwrap_or(Value::Null);
    let entry = &secrets["static_secrets"][0];
    assert_eq!(entry["name"], "static_cert", "{secrets}");
    let secret = &entry["secret"];
    assert_eq!(
        secret["@type"], "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "{secrets}"
    );
    assert_eq!(
        secret["tls_certificate"]["certificate_chain"]["filename"],
        a.cert_path.display().to_string(),
        "{secrets}"
    );
    assert_eq!(
        secret["tls_certificate"]["private_key"]["filename"], "[redacted]",
        "{secrets}"
    );
    Ok(())
}

/// The leaf's serial as `/certs` prints it (hex, no leading zero bytes) and its whole
/// days until expiry from now.
fn serial_and_days(cert_pem: &str) -> anyhow::Result<(String, u64)> {
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())?;
    let raw = cert.tbs_certificate.raw_serial();
    let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let serial = raw[first..].iter().map(|b| format!("{b:02x}")).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let secs = cert.validity().not_after.timestamp() - i64::try_from(now.as_secs())?;
    Ok((serial, u64::try_from(secs / 86_400).unwrap_or(0)))
}

/// The `(serial_number, days_until_expiration)` of every served certificate in `/certs`.
async fn certs_served(proxy: &Proxy) -> anyhow::Result<Vec<(String, String)>> {
    let certs: Value = proxy.admin_request("GET", "/certs").await?.json()?;
    Ok(certs["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["cert_chain"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            (
                c["serial_number"].as_str().unwrap_or_default().to_string(),
                c["days_until_expiration"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect())
}

/// `/certs` after an SDS rotation shows the certificate now served: its serial number
/// and days until expiration, not the one read at start.
#[tokio::test]
async fn certs_shows_the_rotated_certificate() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("test ca")?;
    let a = issue(&ca, &dir, "a")?;
    let b = issue(&ca, &dir, "b")?;
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let secret_path = watched.join("secret.json");
    std::fs::write(
        &secret_path,
        secret_file("1", &a.cert_pem, &a.key_pem).to_string(),
    )?;
    let proxy = Proxy::start(&config_with(listener(json!({
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [sds_config(SECRET, &secret_path, &watched)],
        }
    }))))
    .await?;
    let addr = proxy.listener_addr("l").await?;
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-a"));
    let (serial_a, days_a) = serial_and_days(&a.cert_pem)?;
    let (serial_b, days_b) = serial_and_days(&b.cert_pem)?;
    assert_eq!(
        certs_served(&proxy).await?,
        vec![(serial_a, days_a.to_string())]
    );

    replace_atomically(
        &secret_path,
        &secret_file("2", &b.cert_pem, &b.key_pem).to_string(),
    )?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((served_cn(addr).await?.as_deref() == Some("cn-b")).then_some(()))
    })
    .await?;
    assert_eq!(
        certs_served(&proxy).await?,
        vec![(serial_b, days_b.to_string())]
    );
    Ok(())
}
