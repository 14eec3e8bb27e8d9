//! Upstream clusters: STATIC, STRICT_DNS and LOGICAL_DNS on `localhost`, lb policies
//! (ROUND_ROBIN, LEAST_REQUEST, RANDOM), endpoint weights, priorities, HTTP/1.1 keep-alive
//! reuse (counted at the upstream) and HTTP/2 upstreams with multiplexing.

use std::collections::HashMap;
use std::net::SocketAddr;

use baton_tests::config::{
    bootstrap, endpoint, http_listener, prefix_route, route_config, static_cluster, vhost,
    with_http2_upstream,
};
use baton_tests::{get, EchoUpstream, H2Client, Proxy, RawHttp1};
use serde_json::{json, Value};

fn proxy_config(cluster: Value) -> Value {
    bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                vec![prefix_route("/", "backend")],
            )]),
        )],
        vec![cluster],
    )
}

/// Upstream names answering `n` requests sent on one downstream connection (one worker).
async fn names_on_one_connection(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<String>> {
    let mut conn = RawHttp1::connect(addr).await?;
    let mut names = Vec::new();
    for _ in 0..n {
        conn.send_request("GET", "/", &[], b"").await?;
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 200, "{}", resp.body_text());
        names.push(
            resp.header("x-upstream-name")
                .unwrap_or_default()
                .to_string(),
        );
    }
    Ok(names)
}

fn counts(names: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for name in names {
        *counts.entry(name.clone()).or_insert(0) += 1;
    }
    counts
}

fn with_policy(mut cluster: Value, policy: &str) -> Value {
    cluster["lb_policy"] = json!(policy);
    cluster
}

#[tokio::test]
async fn round_robin_alternates_between_hosts() -> anyhow::Result<()> {
    let (a, b) = (
        EchoUpstream::start("a").await?,
        EchoUpstream::start("b").await?,
    );
    let proxy = Proxy::start(&proxy_config(static_cluster(
        "backend",
        &[a.addr(), b.addr()],
    )))
    .await?;
    let names = names_on_one_connection(proxy.listener_addr("http").await?, 6).await?;
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "{names:?}");
    }
    Ok(())
}

#[tokio::test]
async fn least_request_and_random_use_every_host() -> anyhow::Result<()> {
    let (a, b) = (
        EchoUpstream::start("a").await?,
        EchoUpstream::start("b").await?,
    );
    for policy in ["LEAST_REQUEST", "RANDOM"] {
        let cluster = with_policy(static_cluster("backend", &[a.addr(), b.addr()]), policy);
        let proxy = Proxy::start(&proxy_config(cluster)).await?;
        let names = names_on_one_connection(proxy.listener_addr("http").await?, 60).await?;
        let counts = counts(&names);
        // Either host missing from 60 picks has probability ~2^-59.
        assert_eq!(counts.len(), 2, "{policy}: {counts:?}");
    }
    Ok(())
}

#[tokio::test]
async fn endpoint_weights_skew_round_robin() -> anyhow::Result<()> {
    let (a, b) = (
        EchoUpstream::start("a").await?,
        EchoUpstream::start("b").await?,
    );
    let mut heavy = endpoint(a.addr());
    heavy["load_balancing_weight"] = json!(4);
    let mut light = endpoint(b.addr());
    light["load_balancing_weight"] = json!(1);
    let mut cluster = static_cluster("backend", &[]);
    cluster["load_assignment"]["endpoints"] = json!([{ "lb_endpoints": [heavy, light] }]);
    let proxy = Proxy::start(&proxy_config(cluster)).await?;
    let counts = counts(&names_on_one_connection(proxy.listener_addr("http").await?, 50).await?);
    let (heavy_n, light_n) = (
        counts.get("a").copied().unwrap_or(0),
        counts.get("b").copied().unwrap_or(0),
    );
    assert!(light_n > 0 && heavy_n > 2 * light_n, "{counts:?}");
    Ok(())
}

#[tokio::test]
async fn lower_priority_is_used_only_when_needed() -> anyhow::Result<()> {
    let (a, b) = (
        EchoUpstream::start("a").await?,
        EchoUpstream::start("b").await?,
    );
    let mut cluster = static_cluster("backend", &[]);
    cluster["load_assignment"]["endpoints"] = json!([
        { "priority": 0, "lb_endpoints": [endpoint(a.addr())] },
        { "priority": 1, "lb_endpoints": [endpoint(b.addr())] },
    ]);
    let proxy = Proxy::start(&proxy_config(cluster)).await?;
    let names = names_on_one_connection(proxy.listener_addr("http").await?, 10).await?;
    assert!(names.iter().all(|n| n == "a"), "{names:?}");
    Ok(())
}

#[tokio::test]
async fn locality_weights_with_several_localities() -> anyhow::Result<()> {
    let (a, b) = (
        EchoUpstream::start("a").await?,
        EchoUpstream::start("b").await?,
    );
    let mut cluster = static_cluster("backend", &[]);
    cluster["load_assignment"]["endpoints"] = json!([
        { "locality": { "zone": "z1" }, "lb_endpoints": [endpoint(a.addr())] },
        { "locality": { "zone": "z2" }, "lb_endpoints": [endpoint(b.addr())] },
    ]);
    let proxy = Proxy::start(&proxy_config(cluster)).await?;
    let counts = counts(&names_on_one_connection(proxy.listener_addr("http").await?, 10).await?);
    assert_eq!(counts.len(), 2, "{counts:?}");
    Ok(())
}

fn dns_cluster(kind: &str, port: u16) -> Value {
    json!({
        "name": "backend",
        "type": kind,
        "connect_timeout": "0.25s",
        "dns_lookup_family": "V4_ONLY",
        "dns_refresh_rate": "1s",
        "load_assignment": { "cluster_name": "backend", "endpoints": [ { "lb_endpoints": [
            { "endpoint": { "address": { "socket_address": { "address": "localhost", "port_value": port } } } }
        ] } ] },
    })
}

#[tokio::test]
async fn strict_and_logical_dns_clusters_resolve_localhost() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("dns").await?;
    for kind in ["STRICT_DNS", "LOGICAL_DNS"] {
        let proxy = Proxy::start(&proxy_config(dns_cluster(kind, upstream.port()))).await?;
        let resp = get(proxy.listener_addr("http").await?, "/dns").await?;
        assert_eq!(resp.status, 200, "{kind}: {}", resp.body_text());
        assert_eq!(resp.header("x-upstream-name"), Some("dns"), "{kind}");
    }
    Ok(())
}

#[tokio::test]
async fn http1_upstream_connections_are_reused() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&proxy_config(static_cluster("backend", &[upstream.addr()]))).await?;
    let addr = proxy.listener_addr("http").await?;
    names_on_one_connection(addr, 5).await?;
    assert_eq!(
        upstream.connections(),
        1,
        "one downstream connection, one worker, one pooled upstream connection"
    );
    // Fresh downstream connections land on one of the 2 workers, each with its own pool.
    for _ in 0..6 {
        assert_eq!(get(addr, "/").await?.status, 200);
    }
    assert!(
        upstream.connections() <= 2,
        "{} upstream connections",
        upstream.connections()
    );
    assert_eq!(upstream.requests(), 11);
    Ok(())
}

#[tokio::test]
async fn upstream_close_is_not_reused() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&proxy_config(static_cluster("backend", &[upstream.addr()]))).await?;
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    for path in ["/?close=1", "/?close=1", "/"] {
        conn.send_request("GET", path, &[], b"").await?;
        assert_eq!(conn.read_response().await?.status, 200);
    }
    assert_eq!(upstream.connections(), 3);
    Ok(())
}

#[tokio::test]
async fn http2_upstream_multiplexes_on_one_connection() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("h2").await?;
    let cluster = with_http2_upstream(static_cluster("backend", &[upstream.addr()]));
    let proxy = Proxy::start(&proxy_config(cluster)).await?;
    let client = H2Client::connect(proxy.listener_addr("http").await?).await?;
    let requests = (0..8).map(|i| {
        let client = client.clone();
        async move { client.get(&format!("/m/{i}?delay_ms=50")).await }
    });
    for resp in futures_util::future::join_all(requests).await {
        let resp = resp?;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()?["version"], "HTTP/2.0");
    }
    assert_eq!(upstream.connections(), 1);
    // An HTTP/1.1 client through the same cluster is also carried over HTTP/2 upstream.
    let resp = get(proxy.listener_addr("http").await?, "/h1").await?;
    assert_eq!(resp.json()?["version"], "HTTP/2.0");
    Ok(())
}
