//! DNS clusters against a test DNS responder: `respect_dns_ttl` re-resolves at the
//! answer's TTL (STRICT_DNS with the Cluster's own fields, LOGICAL_DNS through the
//! `envoy.clusters.dns` extension with `dns_min_refresh_rate`) while a cluster without it
//! keeps `dns_refresh_rate`; resolvers from the cluster, the bootstrap and the deprecated
//! spellings; an NXDOMAIN on refresh empties a STRICT_DNS cluster.
//!
//! Upstreams "first" (127.0.0.1:P) and "second" (127.0.0.2:P) share a port, so the DNS
//! answer alone decides where requests go.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use baton_tests::config::{bootstrap, http_listener, prefix_route, route_config, vhost};
use baton_tests::dns::DnsResponder;
use baton_tests::{eventually, get, EchoUpstream, Proxy};
use serde_json::{json, Value};

const NAME: &str = "backend.dns-ttl.test";
const CARES: &str =
    "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig";
const DNS_CLUSTER: &str = "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster";
const FIRST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const SECOND: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Bound for the proxy to pick up a changed answer: a 1 s TTL plus a loaded machine.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Echo upstreams "first" on 127.0.0.1:P and "second" on 127.0.0.2:P.
async fn upstream_pair() -> anyhow::Result<(EchoUpstream, EchoUpstream)> {
    for _ in 0..20 {
        let first = EchoUpstream::start_on("first", SocketAddr::from((FIRST, 0))).await?;
        if let Ok(second) =
            EchoUpstream::start_on("second", SocketAddr::from((SECOND, first.port()))).await
        {
            return Ok((first, second));
        }
    }
    anyhow::bail!("no port free on both 127.0.0.1 and 127.0.0.2")
}

fn resolver(responder: &DnsResponder) -> Value {
    let addr = responder.addr();
    json!({
        "name": "envoy.network.dns_resolver.cares",
        "typed_config": {
            "@type": CARES,
            "resolvers": [ { "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } } ],
        },
    })
}

fn load_assignment(name: &str, port: u16) -> Value {
    json!({ "cluster_name": name, "endpoints": [ { "lb_endpoints": [
        { "endpoint": { "address": { "socket_address": { "address": NAME, "port_value": port } } } }
    ] } ] })
}

/// A STRICT_DNS cluster using the Cluster's own DNS fields, plus `extra` fields.
fn strict_cluster(name: &str, port: u16, extra: Value) -> Value {
    let mut cluster = json!({
        "name": name,
        "type": "STRICT_DNS",
        "connect_timeout": "1s",
        "dns_lookup_family": "V4_ONLY",
        "load_assignment": load_assignment(name, port),
    });
    if let (Some(cluster), Value::Object(extra)) = (cluster.as_object_mut(), extra) {
        cluster.extend(extra);
    }
    cluster
}

fn proxy_config(routes: &[(&str, &str)], clusters: Vec<Value>) -> Value {
    bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                routes
                    .iter()
                    .map(|(prefix, cluster)| prefix_route(prefix, cluster))
                    .collect(),
            )]),
        )],
        clusters,
    )
}

/// The upstream that answered a GET of `path`.
async fn upstream_of(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let resp = get(addr, path).await?;
    anyhow::ensure!(
        resp.status == 200,
        "{path}: {} {}",
        resp.status,
        resp.body_text()
    );
    Ok(resp
        .header("x-upstream-name")
        .unwrap_or_default()
        .to_string())
}

/// `cluster.<cluster>.update_*` counters from admin `/stats`.
async fn update_stats(proxy: &Proxy, cluster: &str) -> anyhow::Result<HashMap<String, u64>> {
    let prefix = format!("cluster.{cluster}.update_");
    let resp = proxy
        .admin_request(
            "GET",
            &format!("/stats?filter=^cluster\\.{cluster}\\.update_"),
        )
        .await?;
    Ok(resp
        .body_text()
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            let stat = name.strip_prefix(&prefix)?;
            Some((stat.to_string(), value.trim().parse().ok()?))
        })
        .collect())
}

#[tokio::test]
async fn respect_dns_ttl_follows_the_answer_and_refresh_rate_does_not() -> anyhow::Result<()> {
    let (first, _second) = upstream_pair().await?;
    let port = first.port();
    let strict_dns = DnsResponder::start(NAME, FIRST, 1).await?;
    let logical_dns = DnsResponder::start(NAME, FIRST, 1).await?;
    let fixed_dns = DnsResponder::start(NAME, FIRST, 1).await?;
    let clusters = vec![
        strict_cluster(
            "ttl_strict",
            port,
            json!({
                "respect_dns_ttl": true,
                "dns_refresh_rate": "3600s",
                "typed_dns_resolver_config": resolver(&strict_dns),
            }),
        ),
        json!({
            "name": "ttl_logical",
            "connect_timeout": "1s",
            "cluster_type": { "name": "envoy.clusters.dns", "typed_config": {
                "@type": DNS_CLUSTER,
                "respect_dns_ttl": true,
                "dns_min_refresh_rate": "1s",
                "dns_refresh_rate": "3600s",
                "dns_lookup_family": "V4_ONLY",
                "all_addresses_in_single_endpoint": true,
                "typed_dns_resolver_config": resolver(&logical_dns),
            } },
            "load_assignment": load_assignment("ttl_logical", port),
        }),
        strict_cluster(
            "fixed",
            port,
            json!({
                "respect_dns_ttl": false,
                "dns_refresh_rate": "3600s",
                "typed_dns_resolver_config": resolver(&fixed_dns),
            }),
        ),
    ];
    let proxy = Proxy::start(&proxy_config(
        &[
            ("/strict", "ttl_strict"),
            ("/logical", "ttl_logical"),
            ("/fixed", "fixed"),
        ],
        clusters,
    ))
    .await?;
    let addr = proxy.listener_addr("http").await?;
    for path in ["/strict", "/logical", "/fixed"] {
        assert_eq!(upstream_of(addr, path).await?, "first", "{path}");
    }

    for responder in [&strict_dns, &logical_dns, &fixed_dns] {
        responder.set_answer(SECOND, 1);
    }
    // The TTL-respecting clusters move to the new address once the 1 s TTL has passed...
    let polls = eventually(SWITCH_TIMEOUT, || async {
        let strict = upstream_of(addr, "/strict").await?;
        let logical = upstream_of(addr, "/logical").await?;
        Ok((strict == "second" && logical == "second").then_some(()))
    })
    .await;
    polls.map_err(|e| e.context(proxy.log()))?;
    // ... by which time the fixed-rate cluster still has its only answer.
    for _ in 0..5 {
        assert_eq!(upstream_of(addr, "/fixed").await?, "first");
    }
    assert_eq!(
        fixed_dns.queries(),
        1,
        "dns_refresh_rate 3600s: one resolution"
    );
    assert!(strict_dns.queries() >= 2, "{}", strict_dns.queries());
    assert!(logical_dns.queries() >= 2, "{}", logical_dns.queries());

    let fixed = update_stats(&proxy, "fixed").await?;
    assert_eq!(fixed.get("attempt"), Some(&1), "{fixed:?}");
    assert_eq!(fixed.get("success"), Some(&1), "{fixed:?}");
    let strict = update_stats(&proxy, "ttl_strict").await?;
    assert!(strict.get("success").is_some_and(|n| *n >= 2), "{strict:?}");
    assert_eq!(strict.get("failure"), Some(&0), "{strict:?}");
    Ok(())
}

#[tokio::test]
async fn clusters_without_a_resolver_use_the_bootstrap_one() -> anyhow::Result<()> {
    let (first, _second) = upstream_pair().await?;
    let port = first.port();
    let bootstrap_dns = DnsResponder::start(NAME, FIRST, 30).await?;
    // The deprecated cluster spelling answers the other address, to tell them apart.
    let cluster_dns = DnsResponder::start(NAME, SECOND, 30).await?;
    let cluster_addr = cluster_dns.addr();
    let mut config = proxy_config(
        &[
            ("/bootstrap", "via_bootstrap"),
            ("/deprecated", "via_cluster"),
        ],
        vec![
            strict_cluster("via_bootstrap", port, json!({})),
            strict_cluster(
                "via_cluster",
                port,
                json!({ "dns_resolvers": [ { "socket_address": {
                    "address": cluster_addr.ip().to_string(), "port_value": cluster_addr.port()
                } } ] }),
            ),
        ],
    );
    config["typed_dns_resolver_config"] = resolver(&bootstrap_dns);
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(upstream_of(addr, "/bootstrap").await?, "first");
    assert_eq!(upstream_of(addr, "/deprecated").await?, "second");
    assert_eq!(bootstrap_dns.queries(), 1);
    assert_eq!(cluster_dns.queries(), 1);
    Ok(())
}

#[tokio::test]
async fn nxdomain_on_refresh_empties_a_strict_dns_cluster() -> anyhow::Result<()> {
    let (first, _second) = upstream_pair().await?;
    let dns = DnsResponder::start(NAME, FIRST, 1).await?;
    let proxy = Proxy::start(&proxy_config(
        &[("/", "gone")],
        vec![strict_cluster(
            "gone",
            first.port(),
            json!({ "respect_dns_ttl": true, "typed_dns_resolver_config": resolver(&dns) }),
        )],
    ))
    .await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(upstream_of(addr, "/").await?, "first");
    dns.remove_name();
    // The name no longer exists: the cluster has no hosts left (Envoy's 503).
    let resp = eventually(SWITCH_TIMEOUT, || async {
        let resp = get(addr, "/").await?;
        Ok((resp.status == 503).then_some(resp))
    })
    .await?;
    assert_eq!(resp.body_text(), "no healthy upstream");
    let stats = update_stats(&proxy, "gone").await?;
    assert_eq!(
        stats.get("failure"),
        Some(&0),
        "an empty answer is a success: {stats:?}"
    );
    Ok(())
}
