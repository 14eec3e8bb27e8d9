//! SDS over ADS (state of the world and delta): an LDS listener whose certificate is a
//! `Secret` named with `sds_config: { ads: {} }`. The proxy subscribes to the secret by
//! name and does not listen until it arrives; a handshake then shows certificate A;
//! pushing B rotates it for new handshakes while a keep-alive connection made with A
//! keeps serving; a secret whose key does not match its certificate is NACKed with the
//! error and B keeps serving. Counted as `sds.<name>.*`; `/config_dump` lists the
//! secret under `dynamic_active_secrets` without its private key. The same through an
//! `api_config_source` of its own (`SecretDiscoveryService`). A client-certificate CA
//! (`validation_context_sds_secret_config`) over ADS rotates too. A secret that never
//! arrives holds the listener only for `initial_fetch_timeout`. Each secret that changes
//! counts in its listener's `server_ssl_socket_factory.ssl_context_update_by_sds`; the
//! listener's `ssl.certificate.<secret>.expiration_unix_time_seconds` follows the
//! rotation and `sds.<name>.update_duration` records the updates.

mod xds_support;

use baton_tests::config::XdsTransport;
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa, TestCert};
use baton_tests::xds::{resources, ControlPlane, Service, CLUSTER_TYPE, LISTENER_TYPE};
use baton_tests::{RawHttp1, TempDir};
use serde_json::json;
use xds_support::sds::{secret, tls_listener, tls_listener_from, SECRET, SECRET_TYPE};
use xds_support::*;

sotw_and_delta!(
    listener_certificate_over_ads_rotates_in_place,
    listener_certificate_over_its_own_sds_stream,
    client_ca_over_ads_rotates,
    sds_counters_through_updates_and_a_nack,
);

/// The listener's `server_ssl_socket_factory.ssl_context_update_by_sds`.
/// The control plane's version "1": no clusters, `listener` alone.
fn serve_no_clusters_and(cp: &ControlPlane, listener: serde_json::Value) -> anyhow::Result<()> {
    cp.set(CLUSTER_TYPE, "1", vec![])?;
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)
}

fn update_by_sds(port: u16) -> String {
    format!("listener.127.0.0.1_{port}.server_ssl_socket_factory.ssl_context_update_by_sds")
}

async fn served_cn(addr: std::net::SocketAddr) -> anyhow::Result<Option<String>> {
    let stream = tls::connect(addr, &ClientOptions::sni("sds.example.com")).await?;
    Ok(tls::served_cn(&stream))
}

async fn wait_served_cn(addr: std::net::SocketAddr, want: &str) -> anyhow::Result<()> {
    baton_tests::eventually(XDS_TIMEOUT, || async {
        Ok(matches!(served_cn(addr).await, Ok(Some(cn)) if cn == want).then_some(()))
    })
    .await
}

async fn listener_certificate_over_ads_rotates_in_place(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("sds ca")?;
    // Different expiries, so the expiration gauge shows which certificate is served.
    let issue = |name: &str, until| ca.issue_named_until(&dir, name, "sds.example.com", until);
    let (a, b, c) = (
        issue("a", (2040, 1, 1))?,
        issue("b", (2041, 1, 1))?,
        issue("c", (2042, 1, 1))?,
    );
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
    serve_no_clusters_and(&cp, tls_listener(port))?;
    let proxy = start_unready(&bootstrap(&cp, transport)).await?;
    let expiration =
        format!("listener.127.0.0.1_{port}.ssl.certificate.{SECRET}.expiration_unix_time_seconds");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // The proxy asks for the secret by name, and does not listen without it.
    cp.wait_for_request(
        |r| {
            r.type_url == SECRET_TYPE
                && (r.resource_names.iter().any(|n| n == SECRET)
                    || r.subscribe.iter().any(|n| n == SECRET))
        },
        XDS_TIMEOUT,
    )
    .await?;
    cp.wait_for_ack(LISTENER_TYPE, "1", XDS_TIMEOUT).await?;
    assert!(
        served_cn(addr).await.is_err(),
        "listening before the secret arrived"
    );
    assert_eq!(ready_status(&proxy).await?, 503);

    cp.set(SECRET_TYPE, "1", vec![secret(&a, &a.key_pem)?])?;
    cp.wait_for_ack(SECRET_TYPE, "1", XDS_TIMEOUT).await?;
    wait_served_cn(addr, "cn-a").await?;
    wait_stat(&proxy, &format!("sds.{SECRET}.update_success"), 1).await?;
    // Each accepted secret that changed counts in the context's socket factory.
    let factory = update_by_sds(port);
    assert_eq!(proxy.stat(&factory).await?, Some(1), "{factory}");
    wait_stat(&proxy, &expiration, tls::not_after_unix(&a.cert_pem)?).await?;
    // A control plane's update is timed (unlike a secret file's, as in Envoy).
    let durations = format!("/stats?filter=^sds\\.{SECRET}\\.update_duration$");
    baton_tests::eventually(XDS_TIMEOUT, || async {
        let body = proxy.admin_request("GET", &durations).await?.body_text();
        Ok((body.contains("update_duration: P0(")).then_some(()))
    })
    .await?;

    // A keep-alive connection made with A.
    let stream = tls::connect(addr, &ClientOptions::sni("sds.example.com")).await?;
    assert_eq!(tls::served_cn(&stream).as_deref(), Some("cn-a"));
    let mut kept = RawHttp1::over(stream);
    kept.send_request("GET", "/", &[], b"").await?;
    assert_eq!(kept.read_response().await?.status, 200);

    cp.set(SECRET_TYPE, "2", vec![secret(&b, &b.key_pem)?])?;
    cp.wait_for_ack(SECRET_TYPE, "2", XDS_TIMEOUT).await?;
    wait_served_cn(addr, "cn-b").await?;
    assert_eq!(proxy.stat(&factory).await?, Some(2), "{factory}");
    wait_stat(&proxy, &expiration, tls::not_after_unix(&b.cert_pem)?).await?;
    kept.send_request("GET", "/", &[], b"").await?;
    assert_eq!(kept.read_response().await?.status, 200);

    // /config_dump: the delivered secret, its key redacted. (Checked before the bad
    // update: Envoy 1.40 then shows the rejected secret, though it keeps serving B.)
    let dump = config_dump(&proxy).await?;
    let secrets = dump_section(&dump, "SecretsConfigDump")?;
    let active = &secrets["dynamic_active_secrets"][0];
    assert_eq!(active["name"], SECRET, "{secrets}");
    assert_eq!(active["version_info"], "2", "{secrets}");
    let cert = &active["secret"]["tls_certificate"];
    assert_eq!(
        cert["certificate_chain"]["inline_string"], b.cert_pem,
        "{secrets}"
    );
    assert_eq!(
        cert["private_key"]["inline_string"], "[redacted]",
        "{secrets}"
    );
    assert!(!dump.to_string().contains("PRIVATE KEY"), "{secrets}");

    // C's certificate with B's key: NACKed with the error; B keeps serving.
    cp.set(SECRET_TYPE, "3", vec![secret(&c, &b.key_pem)?])?;
    let (_, answer) = cp.wait_for_answer(SECRET_TYPE, "3", XDS_TIMEOUT).await?;
    assert!(
        answer.is_nack(),
        "a key not matching its certificate: {answer:?}"
    );
    assert!(!answer.error_message().is_empty());
    wait_stat(&proxy, &format!("sds.{SECRET}.update_rejected"), 1).await?;
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-b"));
    assert_eq!(proxy.stat(&factory).await?, Some(2), "{factory}");
    // As Envoy 1.40, the expiration gauge shows the refused certificate's expiry (C),
    // though B keeps serving.
    wait_stat(&proxy, &expiration, tls::not_after_unix(&c.cert_pem)?).await?;
    kept.send_request("GET", "/", &[], b"").await?;
    assert_eq!(kept.read_response().await?.status, 200);

    Ok(())
}

/// `sds_config: { api_config_source }` (gRPC or delta gRPC as `transport`): the secret
/// comes on a `SecretDiscoveryService` stream of its own, not on ADS.
async fn listener_certificate_over_its_own_sds_stream(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("sds ca")?;
    let issue = |name: &str| ca.issue_named(&dir, name, "sds.example.com");
    let (a, b) = (issue("a")?, issue("b")?);
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
    let api_type = match transport {
        XdsTransport::Sotw => "GRPC",
        XdsTransport::Delta => "DELTA_GRPC",
    };
    let sds_config = json!({
        "api_config_source": {
            "api_type": api_type,
            "transport_api_version": "V3",
            "grpc_services": [{ "envoy_grpc": { "cluster_name": "xds_cluster" } }],
        },
        "resource_api_version": "V3",
    });
    serve_no_clusters_and(&cp, tls_listener_from(port, sds_config))?;
    let proxy = start_unready(&bootstrap(&cp, transport)).await?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let request = cp
        .wait_for_request(|r| r.type_url == SECRET_TYPE, XDS_TIMEOUT)
        .await?;
    assert_eq!(request.service, Service::Sds, "{request:?}");
    assert_eq!(
        request.delta,
        transport == XdsTransport::Delta,
        "{request:?}"
    );
    cp.wait_for_ack(LISTENER_TYPE, "1", XDS_TIMEOUT).await?;
    assert!(
        served_cn(addr).await.is_err(),
        "listening before the secret"
    );

    cp.set(SECRET_TYPE, "1", vec![secret(&a, &a.key_pem)?])?;
    cp.wait_for_ack(SECRET_TYPE, "1", XDS_TIMEOUT).await?;
    wait_served_cn(addr, "cn-a").await?;
    cp.set(SECRET_TYPE, "2", vec![secret(&b, &b.key_pem)?])?;
    cp.wait_for_ack(SECRET_TYPE, "2", XDS_TIMEOUT).await?;
    wait_served_cn(addr, "cn-b").await?;
    wait_stat(&proxy, &format!("sds.{SECRET}.update_success"), 2).await?;
    Ok(())
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

fn ca_secret(ca: &TestCa) -> anyhow::Result<prost_types::Any> {
    resources::to_any(
        SECRET_TYPE,
        &json!({
            "name": "client_ca",
            "validation_context": { "trusted_ca": { "inline_string": ca.pem } },
        }),
    )
}

/// `require_client_certificate` with the trusted CA over ADS: clients of the delivered
/// CA are served, then those of the next one.
async fn client_ca_over_ads_rotates(transport: XdsTransport) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let server_ca = TestCa::new("server ca")?;
    let server = server_ca.issue(
        &dir,
        "server",
        "cn-server",
        &["sds.example.com"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let (ca1, ca2) = (TestCa::new("client ca 1")?, TestCa::new("client ca 2")?);
    let client1 = ca1.issue(&dir, "client1", "cn-client1", &[], &[], KeyKind::Ecdsa)?;
    let client2 = ca2.issue(&dir, "client2", "cn-client2", &[], &[], KeyKind::Ecdsa)?;
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
    let mut listener = tls_listener(port);
    let context = &mut listener["filter_chains"][0]["transport_socket"]["typed_config"];
    context["require_client_certificate"] = json!(true);
    context["common_tls_context"]["validation_context_sds_secret_config"] = json!({
        "name": "client_ca",
        "sds_config": { "ads": {}, "resource_api_version": "V3" },
    });
    serve_no_clusters_and(&cp, listener)?;
    cp.set(
        SECRET_TYPE,
        "1",
        vec![secret(&server, &server.key_pem)?, ca_secret(&ca1)?],
    )?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    baton_tests::eventually(XDS_TIMEOUT, || async {
        Ok(matches!(get_with_client_cert(addr, &client1).await, Ok(200)).then_some(()))
    })
    .await?;
    assert!(get_with_client_cert(addr, &client2).await.is_err());
    // The certificate and the CA.
    let factory = update_by_sds(port);
    assert_eq!(proxy.stat(&factory).await?, Some(2), "{factory}");

    cp.set(
        SECRET_TYPE,
        "2",
        vec![secret(&server, &server.key_pem)?, ca_secret(&ca2)?],
    )?;
    cp.wait_for_ack(SECRET_TYPE, "2", XDS_TIMEOUT).await?;
    baton_tests::eventually(XDS_TIMEOUT, || async {
        Ok(matches!(get_with_client_cert(addr, &client2).await, Ok(200)).then_some(()))
    })
    .await?;
    assert!(get_with_client_cert(addr, &client1).await.is_err());
    // The CA only: SotW resent the certificate unchanged, which Envoy does not count.
    assert_eq!(proxy.stat(&factory).await?, Some(3), "{factory}");
    // (Not compared: `sds.client_ca.update_success` when the SotW subscription's names
    // grow and version 1 is sent again; Envoy counts 2 here, Baton 3 in SotW.)
    drop(proxy);
    Ok(())
}

/// A secret that never arrives: the listener waits for it (`/init_dump` names it), stops
/// waiting after the source's `initial_fetch_timeout`, the server goes LIVE, and
/// handshakes fail (no certificate).
#[tokio::test]
async fn listener_stops_waiting_after_the_initial_fetch_timeout() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
    let sds_config = json!({
        "ads": {},
        "resource_api_version": "V3",
        "initial_fetch_timeout": "1s",
    });
    serve_no_clusters_and(&cp, tls_listener_from(port, sds_config))?;
    let proxy = start_unready(&bootstrap(&cp, XdsTransport::Sotw)).await?;
    cp.wait_for_request(|r| r.type_url == SECRET_TYPE, XDS_TIMEOUT)
        .await?;
    // While it waits, `/init_dump` names the secret as Envoy 1.40 does.
    let init = proxy
        .admin_request("GET", "/init_dump?mask=listener")
        .await?
        .json()?;
    assert_eq!(
        init["unready_targets_dumps"][0]["target_names"],
        json!([format!("shared target SdsApi {SECRET}")]),
        "{init}"
    );
    baton_tests::eventually(XDS_TIMEOUT, || async {
        Ok((ready_status(&proxy).await? == 200).then_some(()))
    })
    .await?;
    wait_stat(&proxy, &format!("sds.{SECRET}.init_fetch_timeout"), 1).await?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // Listening (the TCP connect succeeds), but no certificate to serve.
    let tcp = tokio::net::TcpStream::connect(addr).await;
    assert!(tcp.is_ok(), "not listening after the timeout: {tcp:?}");
    assert!(
        served_cn(addr).await.is_err(),
        "a handshake without a certificate"
    );
    Ok(())
}

/// `sds.<name>.*` through a walk of updates, Envoy 1.40's values (SotW and delta): a
/// resent unchanged secret counts as an update (SotW; delta sends nothing) without
/// updating the context; a NACK counts `update_rejected` (and in delta a second
/// attempt); the last good secret resent after a NACK counts as a change, since Envoy
/// took the refused secret in before its context refused it; a delta removal counts as
/// an accepted update of the new version (the secret keeps serving).
async fn sds_counters_through_updates_and_a_nack(transport: XdsTransport) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("sds ca")?;
    let issue = |name: &str| ca.issue_named(&dir, name, "sds.example.com");
    let (a, b, c) = (issue("a")?, issue("b")?, issue("c")?);
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
    serve_no_clusters_and(&cp, tls_listener(port))?;
    let proxy = start_unready(&bootstrap(&cp, transport)).await?;
    let delta = transport == XdsTransport::Delta;
    let factory = update_by_sds(port);
    // [update_attempt, update_success, update_rejected, ssl_context_update_by_sds] and
    // `version_text` once the proxy answered `version`.
    let expect = |version: &'static str, counts: [u64; 4], text: &'static str| {
        let (proxy, factory, cp) = (&proxy, &factory, &cp);
        async move {
            if !(delta && version == "3") {
                // (Delta sends nothing for an unchanged secret.)
                cp.wait_for_answer(SECRET_TYPE, version, XDS_TIMEOUT)
                    .await?;
            }
            let names = ["update_attempt", "update_success", "update_rejected"];
            let want = counts;
            baton_tests::eventually(XDS_TIMEOUT, || async {
                let all = stats(proxy).await?;
                let mut now = [0; 4];
                for (i, name) in names.iter().enumerate() {
                    now[i] = all
                        .get(&format!("sds.{SECRET}.{name}"))
                        .copied()
                        .unwrap_or(0);
                }
                now[3] = all.get(factory).copied().unwrap_or(0);
                Ok((now == want).then_some(()))
            })
            .await
            .map_err(|e| e.context(format!("version {version}: expected {want:?}")))?;
            let readout = proxy
                .admin_request(
                    "GET",
                    &format!("/stats?filter=^sds\\.{SECRET}\\.version_text$"),
                )
                .await?
                .body_text();
            anyhow::ensure!(
                readout.trim() == format!("sds.{SECRET}.version_text: \"{text}\""),
                "version {version}: {readout}"
            );
            anyhow::Ok(())
        }
    };
    cp.set(SECRET_TYPE, "1", vec![secret(&a, &a.key_pem)?])?;
    // The subscription's first request counts as an attempt.
    expect("1", [2, 1, 0, 1], "1").await?;
    cp.set(SECRET_TYPE, "2", vec![secret(&b, &b.key_pem)?])?;
    expect("2", [3, 2, 0, 2], "2").await?;
    cp.set(SECRET_TYPE, "3", vec![secret(&b, &b.key_pem)?])?;
    if delta {
        expect("3", [3, 2, 0, 2], "2").await?;
    } else {
        expect("3", [4, 3, 0, 2], "3").await?;
    }
    // C's certificate with B's key: NACKed.
    cp.set(SECRET_TYPE, "4", vec![secret(&c, &b.key_pem)?])?;
    if delta {
        expect("4", [5, 2, 1, 2], "2").await?;
    } else {
        expect("4", [5, 3, 1, 2], "3").await?;
    }
    assert_eq!(
        served_cn(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await?
            .as_deref(),
        Some("cn-b")
    );
    // B again: a change against the refused C.
    cp.set(SECRET_TYPE, "5", vec![secret(&b, &b.key_pem)?])?;
    if delta {
        expect("5", [6, 3, 1, 3], "5").await?;
    } else {
        expect("5", [6, 4, 1, 3], "5").await?;
    }
    if delta {
        cp.set(SECRET_TYPE, "6", vec![])?;
        expect("6", [7, 4, 1, 3], "6").await?;
        assert_eq!(
            served_cn(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
                .await?
                .as_deref(),
            Some("cn-b")
        );
    }
    Ok(())
}
