//! Zone-aware and priority load-balancing test support: clusters whose hosts are spread
//! over zones and priorities, a proxy in `zone-a` with a local cluster, and counting which
//! upstream answered each request (`tests/tests/zone_aware.rs`, `tests/tests/lb_levels.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::config::{
    bootstrap, endpoint, http_listener, prefix_route, route_config, static_cluster, vhost,
};
use crate::{EchoUpstream, Proxy, RawHttp1};

pub const REGION: &str = "region-1";

/// `endpoints[]` entries: one locality per `(zone, addresses)`.
pub fn zoned_endpoints(zones: &[(&str, Vec<SocketAddr>)]) -> Value {
    let localities: Vec<Value> = zones
        .iter()
        .map(|(zone, addrs)| {
            let endpoints: Vec<Value> = addrs.iter().map(|a| endpoint(*a)).collect();
            json!({
                "locality": { "region": REGION, "zone": zone },
                "lb_endpoints": endpoints,
            })
        })
        .collect();
    json!(localities)
}

/// A STATIC cluster whose hosts are spread over zones.
pub fn zoned_cluster(name: &str, zones: &[(&str, Vec<SocketAddr>)]) -> Value {
    let mut cluster = static_cluster(name, &[]);
    cluster["load_assignment"]["endpoints"] = zoned_endpoints(zones);
    cluster
}

/// `n` addresses nobody connects to: the local cluster's members (the other proxies of
/// this service), which only count for their zones.
pub fn peers(first_port: u16, n: u16) -> Vec<SocketAddr> {
    (0..n)
        .map(|i| SocketAddr::from(([127, 0, 0, 2], first_port + i)))
        .collect()
}

/// A proxy in zone `zone-a` routing everything to `backend`, with `local` as its local
/// cluster.
pub fn zone_config(backend: Value, local: &[(&str, Vec<SocketAddr>)]) -> Value {
    let mut config = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                vec![prefix_route("/", "backend")],
            )]),
        )],
        vec![backend, zoned_cluster("local_service", local)],
    );
    config["node"] = json!({
        "id": "zone-test",
        "cluster": "local_service",
        "locality": { "region": REGION, "zone": "zone-a" },
    });
    config["cluster_manager"] = json!({ "local_cluster_name": "local_service" });
    config
}

/// Sends `n` requests on one connection and counts the answering upstreams by name.
pub async fn spread(proxy: &Proxy, n: usize) -> anyhow::Result<HashMap<String, usize>> {
    let mut conn = RawHttp1::connect(proxy.listener_addr("http").await?).await?;
    let mut counts = HashMap::new();
    for _ in 0..n {
        conn.send_request("GET", "/", &[], b"").await?;
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 200, "{}", resp.body_text());
        let name = resp.header("x-upstream-name").unwrap_or_default();
        *counts.entry(name.to_string()).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Requests answered by upstreams whose name starts with `zone`'s letter.
pub fn in_zone(counts: &HashMap<String, usize>, letter: char) -> usize {
    counts
        .iter()
        .filter(|(name, _)| name.starts_with(letter))
        .map(|(_, n)| n)
        .sum()
}

pub async fn counter(proxy: &Proxy, name: &str) -> anyhow::Result<u64> {
    proxy
        .stat(&format!("cluster.backend.{name}"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no stat cluster.backend.{name}"))
}

/// Each `(name, value)` of `expected` is what `cluster.backend.<name>` reads.
pub async fn assert_counters(proxy: &Proxy, expected: &[(&str, u64)]) -> anyhow::Result<()> {
    for (name, value) in expected {
        assert_eq!(counter(proxy, name).await?, *value, "{name}");
    }
    Ok(())
}

pub async fn upstreams(names: &[&str]) -> anyhow::Result<Vec<EchoUpstream>> {
    let mut out = Vec::new();
    for name in names {
        out.push(EchoUpstream::start(name).await?);
    }
    Ok(out)
}

pub fn addrs(ups: &[EchoUpstream]) -> Vec<SocketAddr> {
    ups.iter().map(EchoUpstream::addr).collect()
}

/// The `backend` cluster with `ups[0]` in zone-a and `ups[1]` in zone-b.
pub fn two_zone_backend(ups: &[EchoUpstream]) -> Value {
    zoned_cluster(
        "backend",
        &[
            ("zone-a", vec![ups[0].addr()]),
            ("zone-b", vec![ups[1].addr()]),
        ],
    )
}

/// `endpoints[]` entry: one locality at `priority` whose hosts have `health_status`.
pub fn locality_at(zone: &str, priority: u32, addrs: &[SocketAddr], health: &str) -> Value {
    let endpoints: Vec<Value> = addrs
        .iter()
        .map(|a| {
            let mut e = endpoint(*a);
            e["health_status"] = json!(health);
            e
        })
        .collect();
    json!({
        "locality": { "region": REGION, "zone": zone },
        "priority": priority,
        "lb_endpoints": endpoints,
    })
}
