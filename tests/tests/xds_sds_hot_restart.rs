//! Beyond Envoy: a hot restart while the control plane is unreachable keeps serving a TLS
//! listener whose certificate came over SDS (ADS). The new generation takes its parent's
//! accepted resources, the `Secret` included, over the hot-restart socket (never written
//! to disk), validates them like fresh ones and serves the same certificate; once the
//! control plane is back, a new secret rotates in as usual. Baton only (Envoy's new
//! generation loses every xDS listener when the control plane is down).

mod hot_restart_support;
mod xds_support;

use baton_tests::config::{free_port, XdsTransport};
use baton_tests::skip_for_envoy;
use baton_tests::tls::{self, ClientOptions, TestCa};
use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE, LISTENER_TYPE};
use baton_tests::{RawHttp1, TempDir};
use hot_restart_support::{exited_cleanly, Service, EXIT_TIMEOUT};
use std::net::SocketAddr;
use xds_support::sds::{secret, tls_listener, SECRET_TYPE};
use xds_support::*;

sotw_and_delta!(hot_restart_with_the_control_plane_down_keeps_the_sds_certificate);

/// The certificate's CN served on a new handshake, after one request answered 200.
async fn served_cn(addr: SocketAddr) -> anyhow::Result<Option<String>> {
    let stream = tls::connect(addr, &ClientOptions::sni("sds.example.com")).await?;
    let cn = tls::served_cn(&stream);
    let mut http = RawHttp1::over(stream);
    http.send_request("GET", "/", &[], b"").await?;
    anyhow::ensure!(http.read_response().await?.status == 200, "not 200");
    Ok(cn)
}

async fn wait_served_cn(addr: SocketAddr, want: &str) -> anyhow::Result<()> {
    baton_tests::eventually(XDS_TIMEOUT, || async {
        Ok(matches!(served_cn(addr).await, Ok(Some(cn)) if cn == want).then_some(()))
    })
    .await
}

async fn hot_restart_with_the_control_plane_down_keeps_the_sds_certificate(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    skip_for_envoy!("Envoy's new generation loses the xDS listener when the control plane is down");
    let dir = TempDir::new()?;
    let ca = TestCa::new("sds ca")?;
    let issue = |name: &str| ca.issue_named(&dir, name, "sds.example.com");
    let (a, b) = (issue("a")?, issue("b")?);
    let mut cp = ControlPlane::start().await?;
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    cp.set(CLUSTER_TYPE, "1", vec![])?;
    cp.set(
        LISTENER_TYPE,
        "1",
        resources::listeners(&[tls_listener(port)])?,
    )?;
    cp.set(SECRET_TYPE, "1", vec![secret(&a, &a.key_pem)?])?;

    let service = Service::new()?;
    let config = service.write_config("config", &bootstrap(&cp, transport).build())?;
    let mut gen0 = service.start(0, &config, &[]).await?;
    cp.wait_for_ack(SECRET_TYPE, "1", XDS_TIMEOUT).await?;
    wait_served_cn(addr, "cn-a").await?;

    cp.stop().await;
    let mut gen1 = service.spawn(1, &config, &[])?;
    gen1.wait_live().await?;
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "epoch 0 exit: {status}");
    // Only generation 1 is left, with the certificate it took from its parent.
    assert_eq!(served_cn(addr).await?.as_deref(), Some("cn-a"));
    let stats = gen1.admin_get("/stats").await?.body_text();
    let inherited = stats
        .lines()
        .find_map(|l| l.strip_prefix("control_plane.inherited_resources: "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(inherited.is_some_and(|n| n >= 2), "{stats}");

    // The control plane comes back with a new certificate: generation 1 rotates to it.
    cp.restart().await?;
    cp.set(SECRET_TYPE, "2", vec![secret(&b, &b.key_pem)?])?;
    wait_served_cn(addr, "cn-b").await?;
    Ok(())
}
