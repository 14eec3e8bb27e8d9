//! TLS to the control plane: `xds_cluster` with an `UpstreamTlsContext` and the test
//! control plane serving TLS (certificates made in the test). ADS over TLS delivers the
//! usual snapshot and traffic flows, with `h2` offered by ALPN and the SNI sent; mTLS
//! when the control plane requires a client certificate; a control plane whose
//! certificate fails verification is never spoken to (no request reaches it, nothing is
//! applied, each retry counts in `cluster.xds_cluster.ssl.fail_verify_error`), and once
//! it serves a good certificate the proxy converges.

mod xds_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use baton_tests::config::upstream_tls;
use baton_tests::tls::{server_config, KeyKind, TestCa, TestCert};
use baton_tests::xds::{ControlPlane, Handshake, ServingTls};
use baton_tests::{eventually, EchoUpstream, TempDir};
use serde_json::{json, Value};
use xds_support::*;

/// The name the control plane's certificate is for, sent as SNI.
const XDS_NAME: &str = "xds.test";

/// Bound for the proxy to get past failed attempts: Envoy's xDS backoff starts at
/// 500 ms and doubles (jittered) per failure.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(40);

/// A control-plane certificate for `XDS_NAME` issued by `ca`.
fn xds_cert(dir: &TempDir, ca: &TestCa, file: &str) -> anyhow::Result<TestCert> {
    ca.issue(dir, file, XDS_NAME, &[XDS_NAME], &[], KeyKind::Ecdsa)
}

/// The `UpstreamTlsContext` of `xds_cluster`: SNI `XDS_NAME`, verified against `ca`
/// with the SAN matched, and `client` as the client certificate when given.
fn xds_tls(dir: &TempDir, ca: &TestCa, client: Option<&TestCert>) -> anyhow::Result<Value> {
    let mut common = json!({ "validation_context": {
        "trusted_ca": { "filename": ca.write(dir, "xds-ca")?.display().to_string() },
        "match_typed_subject_alt_names": [
            { "san_type": "DNS", "matcher": { "exact": XDS_NAME } }
        ],
    }});
    if let Some(cert) = client {
        common["tls_certificates"] = json!([{
            "certificate_chain": { "filename": cert.cert_path.display().to_string() },
            "private_key": { "filename": cert.key_path.display().to_string() },
        }]);
    }
    Ok(upstream_tls(
        json!({ "sni": XDS_NAME, "common_tls_context": common }),
    ))
}

fn serving(cp: &ControlPlane) -> anyhow::Result<&Arc<ServingTls>> {
    cp.tls()
        .ok_or_else(|| anyhow::anyhow!("control plane without TLS"))
}

/// Waits (bounded) until stat `name` is at least `min`.
async fn wait_stat_at_least(
    proxy: &baton_tests::Proxy,
    name: &str,
    min: u64,
) -> anyhow::Result<BTreeMap<String, u64>> {
    eventually(CONVERGE_TIMEOUT, || async {
        let all = stats(proxy).await?;
        Ok((all.get(name).copied().unwrap_or(0) >= min).then_some(all))
    })
    .await
    .map_err(|e| e.context(format!("{name} never reached {min}")))
}

sotw_and_delta!(ads_over_tls);

/// ADS over TLS: the snapshot is ACKed and traffic flows; the control plane saw SNI
/// `xds.test`, `h2` negotiated by ALPN (as for an HTTP/2 cluster without configured
/// ALPN) and no client certificate; the handshake counts in the cluster's `ssl.*`.
async fn ads_over_tls(transport: baton_tests::config::XdsTransport) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("xds ca")?;
    let cert = xds_cert(&dir, &ca, "xds")?;
    let cp = ControlPlane::start_tls(server_config(&cert, None, &[b"h2"])?).await?;
    let upstream = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[upstream.addr()], 0)?;
    let proxy =
        start(&bootstrap(&cp, transport).transport_socket(xds_tls(&dir, &ca, None)?)).await?;
    wait_all_acked(&cp, "1").await?;
    wait_served_by(proxy.listener_addr("http").await?, "a").await?;

    let handshakes = serving(&cp)?.handshakes();
    assert!(!handshakes.is_empty(), "no handshake logged");
    for handshake in &handshakes {
        assert_eq!(
            handshake,
            &Handshake {
                alpn: Some("h2".into()),
                sni: Some(XDS_NAME.into()),
                client_cert: false,
            }
        );
    }
    let all = stats(&proxy).await?;
    assert_eq!(all.get("control_plane.connected_state"), Some(&1));
    assert!(
        all.get("cluster.xds_cluster.ssl.handshake")
            .copied()
            .unwrap_or(0)
            >= 1,
        "{:?}",
        all.get("cluster.xds_cluster.ssl.handshake")
    );
    assert_eq!(
        all.get("cluster.xds_cluster.ssl.fail_verify_error"),
        Some(&0)
    );
    Ok(())
}

/// A control plane that requires a client certificate (mTLS) gets the one configured in
/// `tls_certificates`, and serves.
#[tokio::test]
async fn mtls_to_control_plane() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("xds ca")?;
    let cert = xds_cert(&dir, &ca, "xds")?;
    let clients = TestCa::new("proxy client ca")?;
    let client = clients.issue(
        &dir,
        "client",
        "proxy",
        &["proxy.test"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let cp = ControlPlane::start_tls(server_config(&cert, Some(&clients), &[b"h2"])?).await?;
    let upstream = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[upstream.addr()], 0)?;
    let boot = bootstrap(&cp, baton_tests::config::XdsTransport::Sotw).transport_socket(xds_tls(
        &dir,
        &ca,
        Some(&client),
    )?);
    let proxy = start(&boot).await?;
    wait_all_acked(&cp, "1").await?;
    wait_served_by(proxy.listener_addr("http").await?, "a").await?;
    let handshakes = serving(&cp)?.handshakes();
    assert!(
        !handshakes.is_empty() && handshakes.iter().all(|h| h.client_cert),
        "{handshakes:?}"
    );
    Ok(())
}

/// A control plane whose certificate is not from the trusted CA is never spoken to: no
/// request reaches it, no listener is applied, each attempt counts in
/// `ssl.fail_verify_error` and is retried with backoff. Once it serves a good
/// certificate, the proxy converges and traffic flows.
#[tokio::test]
async fn unverified_control_plane_is_not_used_until_fixed() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("xds ca")?;
    let rogue = TestCa::new("rogue ca")?;
    let bad = xds_cert(&dir, &rogue, "bad")?;
    let good = xds_cert(&dir, &ca, "good")?;
    let cp = ControlPlane::start_tls(server_config(&bad, None, &[b"h2"])?).await?;
    let upstream = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[upstream.addr()], 0)?;
    let boot = bootstrap(&cp, baton_tests::config::XdsTransport::Sotw)
        .initial_fetch_timeout(Duration::ZERO)
        .transport_socket(xds_tls(&dir, &ca, None)?);
    // Envoy logs a failing xDS stream at debug until it has failed for a while.
    let proxy = baton_tests::Proxy::start_with(
        &boot.build(),
        baton_tests::StartOptions {
            no_wait_ready: true,
            log_level: Some("debug".into()),
            ..Default::default()
        },
    )
    .await?;

    // Retried: two failed verifications, and nothing got through.
    let all = wait_stat_at_least(&proxy, "cluster.xds_cluster.ssl.fail_verify_error", 2).await?;
    assert_eq!(all.get("control_plane.connected_state"), Some(&0));
    assert_eq!(all.get("cluster.xds_cluster.ssl.handshake"), Some(&0));
    assert!(cp.requests().is_empty(), "{:?}", cp.requests());
    assert!(serving(&cp)?.handshakes().is_empty());
    assert!(!serving(&cp)?.failures().is_empty());
    assert_eq!(ready_status(&proxy).await?, 503);
    // The reason is logged, in Envoy's words (BoringSSL's for a failed verification).
    let log = proxy.log();
    assert!(log.contains("CERTIFICATE_VERIFY_FAILED"), "{log}");
    let dump = config_dump(&proxy).await?;
    let listeners = dump_section(&dump, "ListenersConfigDump")?;
    assert!(
        listeners
            .get("dynamic_listeners")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty),
        "{listeners}"
    );

    // Fixed: the next attempt verifies and the proxy converges.
    serving(&cp)?.set_config(server_config(&good, None, &[b"h2"])?);
    for type_url in baton_tests::xds::ALL_TYPES {
        cp.wait_for_ack(type_url, "1", CONVERGE_TIMEOUT).await?;
    }
    wait_served_by(proxy.listener_addr("http").await?, "a").await?;
    assert_eq!(ready_status(&proxy).await?, 200);
    Ok(())
}
