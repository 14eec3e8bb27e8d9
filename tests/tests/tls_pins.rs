//! Certificate pins (`verify_certificate_hash`, `verify_certificate_spki`) on client
//! certificates and upstream certificates, as Envoy 1.40 checks them: either list
//! matching is enough; with `trusted_ca` the chain must pass too; without it only the
//! pin is checked; a pin makes a client certificate mandatory; a mismatch counts in
//! `ssl.fail_verify_cert_hash`; malformed values are config errors worded as Envoy's.
//! Also `require_sni`, which Envoy 1.40 accepts and does not enforce.

use std::net::SocketAddr;

use baton_tests::config::{bootstrap, direct_route, hcm, hcm_filter, route_config, vhost};
use baton_tests::config::{prefix_route, static_cluster};
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa, TestCert};
use baton_tests::tls_upstream::SniUpstream;
use baton_tests::{Proxy, RawHttp1, TempDir};
use serde_json::{json, Value};

const PREFIX: &str = "listener.127.0.0.1_0.ssl";

fn tls_listener(server: &TestCert, extra: Value) -> Value {
    let mut ctx = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": { "tls_certificates": [{
            "certificate_chain": { "filename": server.cert_path.display().to_string() },
            "private_key": { "filename": server.key_path.display().to_string() },
        }]},
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        if k == "validation_context" {
            ctx["common_tls_context"][k] = v.clone();
        } else {
            ctx[k] = v.clone();
        }
    }
    json!({
        "name": "l",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": ctx },
            "filters": [hcm_filter(hcm(route_config(vec![vhost(
                "all", &["*"], vec![direct_route("/", 200, "pinned")],
            )])))],
        }],
    })
}

async fn wait_stat(proxy: &Proxy, name: &str, want: u64) -> anyhow::Result<()> {
    let got = baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((proxy.stat(name).await? == Some(want)).then_some(()))
    })
    .await;
    if let Err(e) = got {
        let all = proxy.admin_request("GET", "/stats?filter=ssl").await?;
        anyhow::bail!("{name} never reached {want}: {e}\n{}", all.body_text());
    }
    Ok(())
}

/// A request over TLS with `client` (or no client certificate): the body, or the error
/// (a TLS 1.3 client learns of a rejected certificate when it reads).
async fn get_with(addr: SocketAddr, client: Option<&TestCert>) -> anyhow::Result<String> {
    let opts = ClientOptions {
        client_cert: client.map(|c| (c.cert_pem.clone(), c.key_pem.clone())),
        ..ClientOptions::sni("pins.example.com")
    };
    let stream = tls::connect(addr, &opts).await?;
    let mut http = RawHttp1::over(stream);
    http.send_request("GET", "/", &[], b"").await?;
    Ok(http.read_response().await?.body_text())
}

struct Certs {
    dir: TempDir,
    ca: TestCa,
    server: TestCert,
    /// Issued by `ca`.
    good: TestCert,
    /// Issued by `ca` too.
    other: TestCert,
    /// Issued by another CA.
    foreign: TestCert,
}

fn certs() -> anyhow::Result<Certs> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("pins ca")?;
    let foreign_ca = TestCa::new("foreign ca")?;
    let server = ca.issue(
        &dir,
        "server",
        "server",
        &["pins.example.com"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let good = ca.issue(&dir, "good", "good", &[], &[], KeyKind::Ecdsa)?;
    let other = ca.issue(&dir, "other", "other", &[], &[], KeyKind::Ecdsa)?;
    let foreign = foreign_ca.issue(&dir, "foreign", "foreign", &[], &[], KeyKind::Ecdsa)?;
    Ok(Certs {
        dir,
        ca,
        server,
        good,
        other,
        foreign,
    })
}

#[tokio::test]
async fn a_pin_without_trusted_ca_is_all_that_is_checked_and_makes_a_certificate_mandatory(
) -> anyhow::Result<()> {
    let c = certs()?;
    let proxy = Proxy::start(&bootstrap(
        vec![tls_listener(
            &c.server,
            json!({ "validation_context": {
                "verify_certificate_hash": [tls::cert_fingerprint(&c.foreign)?],
            }}),
        )],
        vec![],
    ))
    .await?;
    let addr = proxy.listener_addr("l").await?;
    // Another CA's certificate, pinned: no chain check without trusted_ca.
    assert_eq!(get_with(addr, Some(&c.foreign)).await?, "pinned");
    assert!(get_with(addr, Some(&c.good)).await.is_err());
    wait_stat(&proxy, &format!("{PREFIX}.fail_verify_cert_hash"), 1).await?;
    // Not required by require_client_certificate, but by the pin.
    assert!(get_with(addr, None).await.is_err());
    wait_stat(&proxy, &format!("{PREFIX}.fail_verify_no_cert"), 1).await?;
    assert_eq!(proxy.stat(&format!("{PREFIX}.handshake")).await?, Some(1));
    assert_eq!(
        proxy.stat(&format!("{PREFIX}.fail_verify_error")).await?,
        Some(0)
    );
    Ok(())
}

#[tokio::test]
async fn with_trusted_ca_chain_and_either_pin_list_must_pass() -> anyhow::Result<()> {
    let c = certs()?;
    let ca_path = c.ca.write(&c.dir, "ca")?;
    // `other` pinned by hash (plain lowercase hex), `good` by SPKI, `foreign` by hash
    // (its chain fails).
    let other_hex = tls::cert_fingerprint(&c.other)?
        .replace(':', "")
        .to_ascii_lowercase();
    let proxy = Proxy::start(&bootstrap(
        vec![tls_listener(
            &c.server,
            json!({
                "require_client_certificate": true,
                "validation_context": {
                    "trusted_ca": { "filename": ca_path.display().to_string() },
                    "verify_certificate_hash": [other_hex, tls::cert_fingerprint(&c.foreign)?],
                    "verify_certificate_spki": [tls::spki_pin(&c.good)?],
                },
            }),
        )],
        vec![],
    ))
    .await?;
    let addr = proxy.listener_addr("l").await?;
    assert_eq!(get_with(addr, Some(&c.good)).await?, "pinned");
    assert_eq!(get_with(addr, Some(&c.other)).await?, "pinned");
    assert!(get_with(addr, Some(&c.foreign)).await.is_err());
    wait_stat(&proxy, &format!("{PREFIX}.fail_verify_error"), 1).await?;
    assert_eq!(
        proxy
            .stat(&format!("{PREFIX}.fail_verify_cert_hash"))
            .await?,
        Some(0)
    );
    assert_eq!(proxy.stat(&format!("{PREFIX}.handshake")).await?, Some(2));
    Ok(())
}

#[tokio::test]
async fn a_ca_issued_certificate_that_is_not_pinned_is_refused() -> anyhow::Result<()> {
    let c = certs()?;
    let ca_path = c.ca.write(&c.dir, "ca")?;
    let proxy = Proxy::start(&bootstrap(
        vec![tls_listener(
            &c.server,
            json!({ "validation_context": {
                "trusted_ca": { "filename": ca_path.display().to_string() },
                "verify_certificate_spki": [tls::spki_pin(&c.good)?],
            }}),
        )],
        vec![],
    ))
    .await?;
    let addr = proxy.listener_addr("l").await?;
    assert!(get_with(addr, Some(&c.other)).await.is_err());
    wait_stat(&proxy, &format!("{PREFIX}.fail_verify_cert_hash"), 1).await?;
    assert_eq!(get_with(addr, Some(&c.good)).await?, "pinned");
    Ok(())
}

fn upstream_listener() -> Value {
    json!({
        "name": "l",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [hcm_filter(hcm(route_config(vec![vhost(
            "all", &["*"], vec![prefix_route("/", "up")],
        )])))]}],
    })
}

fn pinned_cluster(addr: SocketAddr, validation: Value) -> Value {
    let mut cluster = static_cluster("up", &[addr]);
    cluster["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "up.example.com",
            "common_tls_context": { "validation_context": validation },
        },
    });
    cluster
}

#[tokio::test]
async fn upstream_certificates_are_pinned_too() -> anyhow::Result<()> {
    let c = certs()?;
    let up_cert =
        c.ca.issue(&c.dir, "up", "up", &["up.example.com"], &[], KeyKind::Ecdsa)?;
    let upstream = SniUpstream::start(&up_cert).await?;
    // Pinned by SPKI alone (no trusted_ca): accepted.
    let proxy = Proxy::start(&bootstrap(
        vec![upstream_listener()],
        vec![pinned_cluster(
            upstream.addr,
            json!({ "verify_certificate_spki": [tls::spki_pin(&up_cert)?] }),
        )],
    ))
    .await?;
    let addr = proxy.listener_addr("l").await?;
    let resp = baton_tests::get(addr, "/").await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    drop(proxy);
    // Another certificate's hash (and a trusted CA the upstream passes): 503, counted.
    let ca_path = c.ca.write(&c.dir, "ca")?;
    let proxy = Proxy::start(&bootstrap(
        vec![upstream_listener()],
        vec![pinned_cluster(
            upstream.addr,
            json!({
                "trusted_ca": { "filename": ca_path.display().to_string() },
                "verify_certificate_hash": [tls::cert_fingerprint(&c.good)?],
            }),
        )],
    ))
    .await?;
    let addr = proxy.listener_addr("l").await?;
    let resp = baton_tests::get(addr, "/").await?;
    assert_eq!(resp.status, 503);
    assert!(
        resp.body_text().ends_with("remote connection failure"),
        "{}",
        resp.body_text()
    );
    assert_eq!(
        proxy.stat("cluster.up.ssl.fail_verify_cert_hash").await?,
        Some(1)
    );
    assert_eq!(
        proxy.stat("cluster.up.ssl.fail_verify_error").await?,
        Some(0)
    );
    Ok(())
}

/// The config error, or why the proxy did start.
async fn config_error(validation: Value) -> anyhow::Result<String> {
    let c = certs()?;
    match Proxy::start(&bootstrap(
        vec![tls_listener(
            &c.server,
            json!({ "validation_context": validation }),
        )],
        vec![],
    ))
    .await
    {
        Ok(_) => anyhow::bail!("the proxy started"),
        Err(e) => Ok(format!("{e:#}")),
    }
}

#[tokio::test]
async fn malformed_pins_are_config_errors_worded_as_envoy() -> anyhow::Result<()> {
    let hex = "EA5128B01164F2F4CFE1DAE00C60F809C18254D40988ED7ED664E296A9B8A726";
    let colon_inside = format!("{}:{}", &hex[..62], &hex[62..]);
    let e = config_error(json!({ "verify_certificate_hash": [colon_inside] })).await?;
    assert!(
        e.contains(&format!("Invalid hex-encoded SHA-256 {colon_inside}")),
        "{e}"
    );
    let e = config_error(json!({ "verify_certificate_hash": ["z".repeat(64)] })).await?;
    assert!(e.contains("Invalid hex-encoded SHA-256"), "{e}");
    let e = config_error(json!({ "verify_certificate_hash": ["abcd"] })).await?;
    assert!(
        e.contains("value length must be at least 64 characters"),
        "{e}"
    );
    let e = config_error(json!({ "verify_certificate_spki": ["!".repeat(44)] })).await?;
    assert!(
        e.contains(&format!(
            "Invalid base64-encoded SHA-256 {}",
            "!".repeat(44)
        )),
        "{e}"
    );
    let e = config_error(json!({ "verify_certificate_spki": ["YWJj"] })).await?;
    assert!(
        e.contains("value length must be at least 44 characters"),
        "{e}"
    );
    Ok(())
}

#[tokio::test]
async fn require_sni_is_accepted_and_not_enforced_as_in_envoy() -> anyhow::Result<()> {
    let c = certs()?;
    let proxy = Proxy::start(&bootstrap(
        vec![tls_listener(&c.server, json!({ "require_sni": true }))],
        vec![],
    ))
    .await?;
    let addr = proxy.listener_addr("l").await?;
    // No SNI at all, then one no certificate names: both served (Envoy 1.40 does not
    // implement require_sni).
    let stream = tls::connect(addr, &ClientOptions::default()).await?;
    let mut http = RawHttp1::over(stream);
    http.send_request("GET", "/", &[], b"").await?;
    assert_eq!(http.read_response().await?.body_text(), "pinned");
    let stream = tls::connect(addr, &ClientOptions::sni("unknown.example.org")).await?;
    let mut http = RawHttp1::over(stream);
    http.send_request("GET", "/", &[], b"").await?;
    assert_eq!(http.read_response().await?.body_text(), "pinned");
    wait_stat(&proxy, &format!("{PREFIX}.handshake"), 2).await?;
    assert_eq!(
        proxy.stat(&format!("{PREFIX}.connection_error")).await?,
        Some(0)
    );
    Ok(())
}
