//! A static (bootstrap) cluster whose upstream CA comes from a control plane
//! (`validation_context_sds_secret_config` over its own `api_config_source`) holds the
//! server's initialisation until the secret arrives or its `initial_fetch_timeout`
//! passes, as Envoy 1.40: `/ready` answers 503 and no listener is requested meanwhile,
//! while the cluster is active (in `/clusters`, not warming). Then its connections verify
//! with the delivered CA; after a timeout they fail (503) until it arrives.
//! (Over `ads: {}` Envoy 1.40 crashes at start on such a cluster; not compared.)

mod xds_support;

use std::net::SocketAddr;
use std::time::Duration;

use baton_tests::config::XdsTransport;
use baton_tests::tls::{KeyKind, TestCa};
use baton_tests::tls_upstream::SniUpstream;
use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE, LISTENER_TYPE};
use baton_tests::{Proxy, StartOptions, TempDir};
use serde_json::{json, Value};
use xds_support::*;

const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// Static cluster `tls_up` verifying `upstream` against secret `upstream_ca`, fetched
/// over gRPC from `xds_cluster` with `initial_fetch_timeout`.
fn tls_cluster(upstream: SocketAddr, initial_fetch_timeout: Duration) -> Value {
    let mut cluster = resources::static_cluster("tls_up", &[upstream]);
    cluster["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "up.example.com",
            "common_tls_context": {
                "validation_context_sds_secret_config": {
                    "name": "upstream_ca",
                    "sds_config": {
                        "api_config_source": {
                            "api_type": "GRPC",
                            "transport_api_version": "V3",
                            "grpc_services": [{ "envoy_grpc": { "cluster_name": "xds_cluster" } }],
                        },
                        "resource_api_version": "V3",
                        "initial_fetch_timeout": resources::duration(initial_fetch_timeout),
                    },
                },
            },
        },
    });
    cluster
}

struct Setup {
    _dir: TempDir,
    ca: TestCa,
    _upstream: SniUpstream,
    cp: ControlPlane,
    proxy: Proxy,
    addr: SocketAddr,
}

/// Control plane with a listener routing to `tls_up` and no secret; the proxy started
/// without waiting for it to be ready.
async fn setup(initial_fetch_timeout: Duration) -> anyhow::Result<Setup> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["up.example.com"], &[], KeyKind::Ecdsa)?;
    let upstream = SniUpstream::start(&cert).await?;
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
    cp.set(CLUSTER_TYPE, "1", vec![])?;
    set_listener(&cp, "1", port)?;
    set_routes(&cp, "1", "tls_up")?;
    let mut config = bootstrap(&cp, XdsTransport::Sotw).build();
    config["static_resources"]["clusters"]
        .as_array_mut()
        .ok_or_else(|| anyhow::anyhow!("no static clusters"))?
        .push(tls_cluster(upstream.addr, initial_fetch_timeout));
    let proxy = Proxy::start_with(
        &config,
        StartOptions {
            no_wait_ready: true,
            ..Default::default()
        },
    )
    .await?;
    Ok(Setup {
        _dir: dir,
        ca,
        _upstream: upstream,
        cp,
        proxy,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    })
}

fn ca_secret(ca: &TestCa) -> anyhow::Result<Vec<prost_types::Any>> {
    Ok(vec![resources::to_any(
        SECRET_TYPE,
        &json!({
            "name": "upstream_ca",
            "validation_context": { "trusted_ca": { "inline_string": ca.pem } },
        }),
    )?])
}

async fn wait_ready(proxy: &Proxy) -> anyhow::Result<()> {
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((ready_status(proxy).await? == 200).then_some(()))
    })
    .await
}

#[tokio::test]
async fn initialisation_waits_for_the_secret_of_a_static_cluster() -> anyhow::Result<()> {
    // Long enough never to pass during the test.
    let s = setup(Duration::from_secs(120)).await?;
    s.cp.wait_for_request(
        |r| r.type_url == SECRET_TYPE && r.resource_names.iter().any(|n| n == "upstream_ca"),
        XDS_TIMEOUT,
    )
    .await?;
    assert_eq!(ready_status(&s.proxy).await?, 503);
    let clusters = s.proxy.admin_request("GET", "/clusters").await?.body_text();
    assert!(
        clusters.contains("tls_up::"),
        "the static cluster is active while it waits:\n{clusters}"
    );
    let all = stats(&s.proxy).await?;
    assert_eq!(all.get("cluster_manager.warming_clusters"), Some(&0));
    assert!(
        !s.cp.requests().iter().any(|r| r.type_url == LISTENER_TYPE),
        "listeners were requested before the cluster's secret arrived"
    );

    s.cp.set(SECRET_TYPE, "1", ca_secret(&s.ca)?)?;
    wait_ready(&s.proxy).await?;
    baton_tests::eventually(XDS_TIMEOUT, || async {
        Ok((get_once(s.addr, "/").await?.0 == 200).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn after_the_initial_fetch_timeout_the_server_starts_without_it() -> anyhow::Result<()> {
    let s = setup(Duration::from_secs(1)).await?;
    wait_ready(&s.proxy).await?;
    // Listeners came, the cluster has no CA yet: its connections fail.
    baton_tests::eventually(XDS_TIMEOUT, || async {
        Ok(get_once(s.addr, "/").await.ok().map(|r| r.0))
    })
    .await
    .and_then(|status| {
        anyhow::ensure!(status == 503, "status {status} without the CA");
        Ok(())
    })?;
    // As Envoy, each fails before its handshake: not a verification failure.
    for (name, want) in [
        (
            "client_ssl_socket_factory.upstream_context_secrets_not_ready",
            1,
        ),
        ("upstream_cx_connect_fail", 1),
        ("ssl.fail_verify_error", 0),
        ("ssl.connection_error", 0),
    ] {
        let stat = format!("cluster.tls_up.{name}");
        assert_eq!(s.proxy.stat(&stat).await?.unwrap_or(0), want, "{stat}");
    }
    s.cp.set(SECRET_TYPE, "1", ca_secret(&s.ca)?)?;
    baton_tests::eventually(XDS_TIMEOUT, || async {
        Ok((get_once(s.addr, "/").await?.0 == 200).then_some(()))
    })
    .await?;
    Ok(())
}
