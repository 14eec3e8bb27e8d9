//! `transport_socket_matcher` on clusters: the unified matcher over endpoint and locality
//! metadata names a `transport_socket_matches` entry per endpoint (their `match` fields
//! are then ignored); no match, or a name no entry has, leaves the endpoint on the
//! cluster's `transport_socket`. One cluster mixes a TLS upstream and a plain one.

use std::net::SocketAddr;

use baton_tests::config::bootstrap;
use baton_tests::socket_match::{
    answered_by, listener, raw_socket, start, tls_socket, MixedUpstreams,
};
use baton_tests::{run_to_completion, EchoUpstream, Proxy, TempDir};
use serde_json::{json, Value};

/// An endpoint with `filter_metadata` (any filters).
fn endpoint(addr: SocketAddr, filter_metadata: Value) -> Value {
    let mut ep = json!({ "endpoint": { "address": { "socket_address": {
        "address": addr.ip().to_string(), "port_value": addr.port()
    }}}});
    if !filter_metadata.is_null() {
        ep["metadata"] = json!({ "filter_metadata": filter_metadata });
    }
    ep
}

fn metadata_input(kind: &str, filter: Option<&str>, path: &[&str]) -> Value {
    let mut config = json!({
        "@type": format!(
            "type.googleapis.com/envoy.extensions.matching.common_inputs.transport_socket.v3.{kind}"
        ),
        "path": path.iter().map(|k| json!({ "key": k })).collect::<Vec<_>>(),
    });
    if let Some(filter) = filter {
        config["filter"] = json!(filter);
    }
    json!({ "name": "input", "typed_config": config })
}

fn name_action(name: &str) -> Value {
    json!({ "action": { "name": "envoy.matching.action.transport_socket.name", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.transport_socket.v3.TransportSocketNameAction",
        "name": name,
    }}})
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
        (n == name).then(|| v.trim().parse().ok())?
    }))
}

#[tokio::test]
async fn endpoint_metadata_selects_tls_and_no_match_keeps_the_cluster_socket() -> anyhow::Result<()>
{
    let MixedUpstreams { tls, plain, .. } = MixedUpstreams::start().await?;
    let cluster = json!({
        "name": "c",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": { "cluster_name": "c", "endpoints": [{ "lb_endpoints": [
            // The input's default filter is `envoy.lb`; a number is read as "2".
            endpoint(tls.addr, json!({ "envoy.lb": { "mode": "secure", "v": 2 } })),
            endpoint(plain.addr(), json!({ "envoy.lb": { "mode": "plain" } })),
        ]}]},
        // An empty `match` would take every endpoint without a matcher: the matcher
        // replaces the entries' own matching.
        "transport_socket_matches": [
            { "name": "secure", "match": {}, "transport_socket": tls_socket("m.test") },
        ],
        "transport_socket_matcher": { "matcher_list": { "matchers": [{
            "predicate": { "and_matcher": { "predicate": [
                { "single_predicate": {
                    "input": metadata_input("EndpointMetadataInput", None, &["mode"]),
                    "value_match": { "prefix": "sec" } } },
                { "single_predicate": {
                    "input": metadata_input("EndpointMetadataInput", None, &["v"]),
                    "value_match": { "exact": "2" } } },
            ]}},
            "on_match": name_action("secure"),
        }]}},
    });
    let (proxy, addr) = start(cluster).await?;
    assert_eq!(answered_by(addr).await?, vec!["m.test", "plain"]);
    assert_eq!(
        stat(&proxy, "cluster.c.secure.total_match_count").await?,
        Some(1)
    );
    assert_eq!(
        stat(&proxy, "cluster.c.default.total_match_count").await?,
        Some(1)
    );
    let handshakes = tls.handshakes().len() as u64;
    assert!(handshakes >= 1);
    assert_eq!(
        stat(&proxy, "cluster.c.ssl.handshake").await?,
        Some(handshakes)
    );
    Ok(())
}

#[tokio::test]
async fn locality_metadata_tree_and_on_no_match() -> anyhow::Result<()> {
    let MixedUpstreams { tls, plain, .. } = MixedUpstreams::start().await?;
    let locality_md = |zone: &str| json!({ "filter_metadata": { "net": { "zone": zone } } });
    let cluster = json!({
        "name": "c",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": { "cluster_name": "c", "endpoints": [
            { "metadata": locality_md("remote-east"), "lb_endpoints": [endpoint(tls.addr, Value::Null)] },
            { "metadata": locality_md("local"), "lb_endpoints": [endpoint(plain.addr(), Value::Null)] },
        ]},
        "transport_socket_matches": [
            { "name": "plain", "transport_socket": raw_socket() },
            { "name": "remote", "transport_socket": tls_socket("m.test") },
        ],
        // The longest prefix wins: "remote-" over "r".
        "transport_socket_matcher": {
            "matcher_tree": {
                "input": metadata_input("LocalityMetadataInput", Some("net"), &["zone"]),
                "prefix_match_map": { "map": {
                    "remote-": name_action("remote"),
                    "r": name_action("plain"),
                }},
            },
            "on_no_match": name_action("plain"),
        },
        "transport_socket": tls_socket("default.test"),
    });
    let (proxy, addr) = start(cluster).await?;
    assert_eq!(answered_by(addr).await?, vec!["m.test", "plain"]);
    assert_eq!(
        stat(&proxy, "cluster.c.remote.total_match_count").await?,
        Some(1)
    );
    assert_eq!(
        stat(&proxy, "cluster.c.plain.total_match_count").await?,
        Some(1)
    );
    assert_eq!(
        stat(&proxy, "cluster.c.default.total_match_count").await?,
        Some(0)
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_name_is_the_cluster_socket() -> anyhow::Result<()> {
    let plain = EchoUpstream::start("plain").await?;
    let cluster = json!({
        "name": "c",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": { "cluster_name": "c", "endpoints": [{ "lb_endpoints": [
            endpoint(plain.addr(), Value::Null),
        ]}]},
        "transport_socket_matches": [
            { "name": "tls", "transport_socket": tls_socket("m.test") },
        ],
        // Envoy accepts an action naming no entry; the endpoint keeps the cluster's socket.
        "transport_socket_matcher": { "on_no_match": name_action("missing") },
    });
    let (proxy, addr) = start(cluster).await?;
    assert_eq!(answered_by(addr).await?, vec!["plain"]);
    assert_eq!(
        stat(&proxy, "cluster.c.default.total_match_count").await?,
        Some(1)
    );
    assert_eq!(
        stat(&proxy, "cluster.c.tls.total_match_count").await?,
        Some(0)
    );
    Ok(())
}

#[tokio::test]
async fn duplicate_entry_names_are_a_config_error_with_a_matcher() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let cluster = json!({
        "name": "c",
        "type": "STATIC",
        "connect_timeout": "1s",
        "transport_socket_matches": [
            { "name": "tls", "transport_socket": tls_socket("a.test") },
            { "name": "tls", "transport_socket": raw_socket() },
        ],
        "transport_socket_matcher": { "on_no_match": name_action("tls") },
    });
    let path = dir.join("bootstrap.json");
    std::fs::write(
        &path,
        bootstrap(vec![listener()], vec![cluster]).to_string(),
    )?;
    let path = path.display().to_string();
    let (status, out, err) = run_to_completion(&["--mode", "validate", "-c", &path])?;
    assert!(!status.success(), "{out}{err}");
    assert!(
        format!("{out}{err}")
            .contains("Duplicate transport socket name 'tls' found in transport_socket_matches"),
        "{out}{err}"
    );
    Ok(())
}
