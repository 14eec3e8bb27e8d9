//! Stats of listeners and clusters removed at run time leave `/stats` as Envoy's do.
//! Measured on Envoy 1.40 (LDS and CDS from files, then from a control plane): once a
//! removed TLS listener's drain is over, every `listener.<address>.*` stat (its
//! `ssl.certificate.<name>.expiration_unix_time_seconds` gauges included) and the
//! `http.<stat_prefix>.*` of its connection manager (`downstream_cx_ssl_active`, ...) are
//! gone from `/stats` and `/stats/prometheus`; a removed cluster's `cluster.<name>.*`
//! (its `ssl.*` too) go at once; `server.days_until_first_cert_expiring` is back to
//! 4294967295 without certificates. A listener added again has its stats again, its
//! counters from 0.

mod xds_support;

use baton_tests::config::{upstream_tls, XdsTransport};
use baton_tests::tls::{self, ClientOptions, TestCa};
use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE, LISTENER_TYPE};
use baton_tests::{Proxy, TempDir};
use serde_json::{json, Value};
use xds_support::*;

/// `server.days_until_first_cert_expiring` without any certificate, as Envoy.
const NO_CERTIFICATE_DAYS: u64 = 4_294_967_295;

/// Listener `https` on `port` serving `cert_pem` / `key_pem` (configured inline).
fn tls_listener(port: u16, cert_pem: &str, key_pem: &str) -> Value {
    sds::tls_listener_with(
        port,
        json!({
            "tls_certificates": [{
                "certificate_chain": { "inline_string": cert_pem },
                "private_key": { "inline_string": key_pem },
            }],
        }),
    )
}

/// Cluster `tls_up` verifying its upstream against `ca_pem` (never connected to).
fn tls_cluster(ca_pem: &str) -> Value {
    let mut cluster =
        resources::static_cluster("tls_up", &[std::net::SocketAddr::from(([127, 0, 0, 1], 9))]);
    cluster["transport_socket"] = upstream_tls(json!({
        "common_tls_context": {
            "validation_context": { "trusted_ca": { "inline_string": ca_pem } },
        },
    }));
    cluster
}

/// `/stats` and `/stats/prometheus`, one after the other.
async fn stats_texts(proxy: &Proxy) -> anyhow::Result<(String, String)> {
    let text = proxy.admin_request("GET", "/stats").await?.body_text();
    let prometheus = proxy
        .admin_request("GET", "/stats/prometheus")
        .await?
        .body_text();
    Ok((text, prometheus))
}

#[tokio::test]
async fn a_removed_tls_listener_and_cluster_leave_the_stats() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("removal ca")?;
    let cert = ca.issue_named(&dir, "a", "removal.example.com")?;
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
    let listener = tls_listener(port, &cert.cert_pem, &cert.key_pem);
    cp.set(
        CLUSTER_TYPE,
        "1",
        resources::clusters(&[tls_cluster(&ca.pem)])?,
    )?;
    cp.set(
        LISTENER_TYPE,
        "1",
        resources::listeners(std::slice::from_ref(&listener))?,
    )?;
    let proxy = start(&bootstrap(&cp, XdsTransport::Sotw)).await?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = tls::connect(addr, &ClientOptions::sni("removal.example.com")).await?;
    drop(stream);

    let listener_gauge = format!(
        "listener.127.0.0.1_{port}.ssl.certificate.unnamed_cert_e3b0c442.expiration_unix_time_seconds"
    );
    let cluster_gauge =
        "cluster.tls_up.ssl.certificate.unnamed_ca_cert_e3b0c442.expiration_unix_time_seconds";
    let not_after = tls::not_after_unix(&cert.cert_pem)?;
    assert_eq!(proxy.stat(&listener_gauge).await?, Some(not_after));
    assert!(proxy.stat(cluster_gauge).await?.is_some());
    wait_stat(&proxy, "http.ingress.downstream_cx_ssl_total", 1).await?;
    let days = proxy.stat("server.days_until_first_cert_expiring").await?;
    assert!(days.is_some_and(|d| d < NO_CERTIFICATE_DAYS), "{days:?}");

    let listener_prefix = format!("listener.127.0.0.1_{port}.");
    let prometheus_address = format!("envoy_listener_address=\"127.0.0.1_{port}\"");
    let prometheus_names = [
        prometheus_address.as_str(),
        "envoy_cluster_name=\"tls_up\"",
        "envoy_http_conn_manager_prefix=\"ingress\"",
    ];
    let (text, prometheus) = stats_texts(&proxy).await?;
    assert!(text.contains(&listener_prefix) && text.contains("cluster.tls_up."));
    for name in prometheus_names {
        assert!(prometheus.contains(name), "{name}: {prometheus}");
    }

    // Both removed: the cluster's stats go at once, the listener's after its drain
    // (`--drain-time-s 1`).
    cp.set(CLUSTER_TYPE, "2", vec![])?;
    cp.set(LISTENER_TYPE, "2", vec![])?;
    cp.wait_for_ack(LISTENER_TYPE, "2", XDS_TIMEOUT).await?;
    cp.wait_for_ack(CLUSTER_TYPE, "2", XDS_TIMEOUT).await?;
    baton_tests::eventually(XDS_TIMEOUT, || async {
        let (text, prometheus) = stats_texts(&proxy).await?;
        let gone = !text.contains(&listener_prefix)
            && !text.contains("cluster.tls_up.")
            && !text.contains("http.ingress.")
            && !prometheus_names
                .iter()
                .any(|name| prometheus.contains(name));
        Ok(gone.then_some(()))
    })
    .await?;
    // Refreshed by the periodic stats flush (5 s), as Envoy's.
    wait_stat(
        &proxy,
        "server.days_until_first_cert_expiring",
        NO_CERTIFICATE_DAYS,
    )
    .await?;

    // Added again: its stats are back.
    cp.set(LISTENER_TYPE, "3", resources::listeners(&[listener])?)?;
    cp.wait_for_ack(LISTENER_TYPE, "3", XDS_TIMEOUT).await?;
    wait_stat(&proxy, &listener_gauge, not_after).await?;
    let (text, _) = stats_texts(&proxy).await?;
    assert!(
        text.contains("http.ingress.downstream_cx_ssl_active"),
        "{text}"
    );
    // Its counters start again from 0 (the first life's connection is not counted).
    for counter in [
        format!("{listener_prefix}downstream_cx_total"),
        "http.ingress.downstream_cx_ssl_total".to_string(),
        "http.ingress.downstream_cx_total".to_string(),
    ] {
        assert_eq!(proxy.stat(&counter).await?, Some(0), "{counter}");
    }
    Ok(())
}
