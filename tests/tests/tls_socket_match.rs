//! `transport_socket_matches` on clusters: each endpoint's transport socket is the first
//! match whose `match` is a subset of the endpoint's `envoy.transport_socket_match`
//! metadata, else of its locality's, else the cluster's `transport_socket`. One cluster
//! mixes a TLS upstream and a plain one; both answer through the proxy.

use std::net::SocketAddr;

use baton_tests::socket_match::{answered_by, raw_socket, start, tls_socket, MixedUpstreams};
use baton_tests::tls::TestCa;
use baton_tests::{EchoUpstream, Proxy, TempDir};
use serde_json::{json, Value};

fn endpoint(addr: SocketAddr, metadata: Value) -> Value {
    let mut ep = json!({ "endpoint": { "address": { "socket_address": {
        "address": addr.ip().to_string(), "port_value": addr.port()
    }}}});
    if !metadata.is_null() {
        ep["metadata"] = json!({ "filter_metadata": { "envoy.transport_socket_match": metadata } });
    }
    ep
}

async fn stats(proxy: &Proxy, prefix: &str) -> anyhow::Result<Vec<(String, u64)>> {
    let resp = proxy
        .admin_request(
            "GET",
            &format!("/stats?filter=^{}", prefix.replace('.', "\\.")),
        )
        .await?;
    Ok(resp
        .body_text()
        .lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(": ")?;
            Some((n.to_string(), v.trim().parse().ok()?))
        })
        .collect())
}

async fn stat(proxy: &Proxy, name: &str) -> anyhow::Result<Option<u64>> {
    Ok(stats(proxy, name)
        .await?
        .into_iter()
        .find_map(|(n, v)| (n == name).then_some(v)))
}

#[tokio::test]
async fn endpoint_metadata_picks_tls_for_one_endpoint_and_plain_for_another() -> anyhow::Result<()>
{
    let MixedUpstreams { tls, plain, .. } = MixedUpstreams::start().await?;
    let cluster = json!({
        "name": "c",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": { "cluster_name": "c", "endpoints": [{ "lb_endpoints": [
            endpoint(tls.addr, json!({ "secure": true, "tier": "gold" })),
            endpoint(plain.addr(), Value::Null),
        ]}]},
        "transport_socket_matches": [
            { "name": "other", "match": { "secure": true, "tier": "silver" },
              "transport_socket": tls_socket("other.test") },
            { "name": "secure", "match": { "secure": true },
              "transport_socket": tls_socket("m.test") },
        ],
    });
    let (proxy, addr) = start(cluster).await?;
    assert_eq!(answered_by(addr).await?, vec!["m.test", "plain"]);
    assert_eq!(
        stat(&proxy, "cluster.c.secure.total_match_count").await?,
        Some(1)
    );
    assert_eq!(
        stat(&proxy, "cluster.c.other.total_match_count").await?,
        Some(0)
    );
    assert_eq!(
        stat(&proxy, "cluster.c.default.total_match_count").await?,
        Some(1)
    );
    // The matched socket counts in the cluster's own `ssl.*`.
    let handshakes = tls.handshakes().len() as u64;
    assert!(handshakes >= 1);
    assert_eq!(
        stat(&proxy, "cluster.c.ssl.handshake").await?,
        Some(handshakes)
    );
    Ok(())
}

#[tokio::test]
async fn locality_metadata_then_the_cluster_socket() -> anyhow::Result<()> {
    let MixedUpstreams { tls, plain, .. } = MixedUpstreams::start().await?;
    let cluster = json!({
        "name": "c",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": { "cluster_name": "c", "endpoints": [
            { "lb_endpoints": [endpoint(tls.addr, json!({ "other": 1 }))] },
            { "metadata": { "filter_metadata": {
                  "envoy.transport_socket_match": { "plain": true } } },
              "lb_endpoints": [endpoint(plain.addr(), json!({ "plain": false }))] },
        ]},
        "transport_socket_matches": [
            { "name": "plain", "match": { "plain": true }, "transport_socket": raw_socket() },
        ],
        "transport_socket": tls_socket("default.test"),
    });
    let (_proxy, addr) = start(cluster).await?;
    assert_eq!(answered_by(addr).await?, vec!["default.test", "plain"]);
    Ok(())
}

#[tokio::test]
async fn certs_lists_every_upstream_context() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let ca_path = ca.write(&dir, "ca")?.display().to_string();
    let plain = EchoUpstream::start("plain").await?;
    let verified = json!({ "name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": { "validation_context": { "trusted_ca": { "filename": ca_path } } },
    }});
    let cluster = json!({
        "name": "c",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": { "cluster_name": "c", "endpoints": [{ "lb_endpoints": [
            endpoint(plain.addr(), json!({ "plain": true })),
        ]}]},
        "transport_socket_matches": [
            { "name": "plain", "match": { "plain": true }, "transport_socket": raw_socket() },
            { "name": "verified", "match": { "v": true }, "transport_socket": verified },
        ],
        "transport_socket": tls_socket("default.test"),
    });
    let (proxy, _addr) = start(cluster).await?;
    let certs = proxy.admin_request("GET", "/certs").await?.json()?;
    let mut contexts: Vec<(usize, Vec<String>)> = certs["certificates"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|c| {
                    let cas = c["ca_cert"].as_array().cloned().unwrap_or_default();
                    let chain = c["cert_chain"].as_array().map_or(0, Vec::len);
                    let paths = cas
                        .iter()
                        .filter_map(|ca| ca["path"].as_str().map(str::to_string))
                        .collect();
                    (chain, paths)
                })
                .collect()
        })
        .unwrap_or_default();
    contexts.sort();
    // Envoy lists contexts in no particular order.
    assert_eq!(contexts, vec![(0, vec![]), (0, vec![ca_path])], "{certs}");
    Ok(())
}
