//! Priority levels, panic and the runtime keys of load balancing, as Envoy 1.40 applies
//! them: the assignment's `policy.overprovisioning_factor` in the priority split,
//! `common_lb_config.healthy_panic_threshold`, and the runtime keys
//! `upstream.healthy_panic_threshold`, `upstream.zone_routing.enabled`,
//! `upstream.zone_routing.min_cluster_size` and
//! `upstream.zone_routing.force_local_zone.min_size` (static layers and `/runtime_modify`).
//!
//! "Unhealthy" hosts here are live upstreams marked `UNHEALTHY` in the assignment, so a
//! pick that lands on one still answers and the test sees where it went. Assertions are
//! exact where the choice is deterministic; where Envoy picks at random they allow any
//! split and only require that a side with a fair share was chosen at all (each bound
//! says how unlikely a miss is).

use baton_tests::config::static_cluster;
use baton_tests::zone::*;
use baton_tests::Proxy;
use serde_json::{json, Value};

/// The `backend` cluster with `endpoints` as its `load_assignment.endpoints`.
fn backend_with(endpoints: Value) -> Value {
    let mut backend = static_cluster("backend", &[]);
    backend["load_assignment"]["endpoints"] = endpoints;
    backend
}

/// A bootstrap routing everything to `backend` (zone-a node, a two-zone local cluster).
fn config_for(backend: Value) -> Value {
    let local = [("zone-a", peers(1000, 1)), ("zone-b", peers(2000, 1))];
    zone_config(backend, &local)
}

/// `config` with one static runtime layer holding `values`, then an admin layer.
fn with_runtime(mut config: Value, values: Value) -> Value {
    config["layered_runtime"] = json!({ "layers": [
        { "name": "static", "static_layer": values },
        { "name": "admin", "admin_layer": {} },
    ]});
    config
}

/// A proxy routing to `backend` (see [`config_for`]) with the static runtime `values`.
async fn start_with_runtime(backend: Value, values: Value) -> anyhow::Result<Proxy> {
    Proxy::start(&with_runtime(config_for(backend), values)).await
}

/// 20 requests all answered by `a1` (the healthy host of priority 0), none in panic.
async fn all_to_the_healthy_host_without_panic(proxy: &Proxy) -> anyhow::Result<()> {
    let counts = spread(proxy, 20).await?;
    assert_eq!(in_zone(&counts, 'a'), 20, "{counts:?}");
    assert_counters(proxy, &[("lb_healthy_panic", 0)]).await
}

/// Priority 0: `a1` healthy and `u1` marked unhealthy (half healthy); priority 1: `x1`.
async fn half_healthy_priority_zero(
    factor: Option<u32>,
) -> anyhow::Result<(Vec<baton_tests::EchoUpstream>, Value)> {
    let ups = upstreams(&["a1", "u1", "x1"]).await?;
    let mut backend = backend_with(json!([
        locality_at("zone-a", 0, &[ups[0].addr()], "HEALTHY"),
        locality_at("zone-a", 0, &[ups[1].addr()], "UNHEALTHY"),
        locality_at("zone-a", 1, &[ups[2].addr()], "HEALTHY"),
    ]));
    if let Some(factor) = factor {
        backend["load_assignment"]["policy"] = json!({ "overprovisioning_factor": factor });
    }
    Ok((ups, backend))
}

#[tokio::test]
async fn default_overprovisioning_spills_a_half_healthy_priority_zero() -> anyhow::Result<()> {
    // 1.4 x 50% healthy: priority 0 takes 70% of the picks, priority 1 the other 30%.
    let (_ups, backend) = half_healthy_priority_zero(None).await?;
    let proxy = Proxy::start(&config_for(backend)).await?;
    let counts = spread(&proxy, 60).await?;
    assert_eq!(in_zone(&counts, 'u'), 0, "{counts:?}");
    // 0.7^60 and 0.3^60: below 1e-9.
    assert!(
        in_zone(&counts, 'a') > 0 && in_zone(&counts, 'x') > 0,
        "{counts:?}"
    );
    assert_counters(&proxy, &[("lb_healthy_panic", 0)]).await?;
    Ok(())
}

#[tokio::test]
async fn overprovisioning_factor_200_keeps_priority_zero_whole() -> anyhow::Result<()> {
    // 2.0 x 50% healthy: priority 0 is fully available and takes every pick.
    let (_ups, backend) = half_healthy_priority_zero(Some(200)).await?;
    let proxy = Proxy::start(&config_for(backend)).await?;
    all_to_the_healthy_host_without_panic(&proxy).await
}

#[tokio::test]
async fn overprovisioning_factor_100_spills_a_mostly_healthy_priority_zero() -> anyhow::Result<()> {
    // 1.0 x 80% healthy: priority 1 takes 20% of the picks (with the default 1.4 priority 0
    // would take them all).
    let ups = upstreams(&["a1", "a2", "a3", "a4", "u1", "x1"]).await?;
    let mut backend = backend_with(json!([
        locality_at("zone-a", 0, &addrs(&ups[..4]), "HEALTHY"),
        locality_at("zone-a", 0, &[ups[4].addr()], "UNHEALTHY"),
        locality_at("zone-a", 1, &[ups[5].addr()], "HEALTHY"),
    ]));
    backend["load_assignment"]["policy"] = json!({ "overprovisioning_factor": 100 });
    let proxy = Proxy::start(&config_for(backend)).await?;
    let counts = spread(&proxy, 100).await?;
    assert_eq!(in_zone(&counts, 'u'), 0, "{counts:?}");
    // 0.8^100: about 2e-10.
    assert!(in_zone(&counts, 'x') > 0, "{counts:?}");
    assert_eq!(
        in_zone(&counts, 'a') + in_zone(&counts, 'x'),
        100,
        "{counts:?}"
    );
    Ok(())
}

/// One priority: `a1` healthy, `u1`..`u3` marked unhealthy (25% healthy: in panic under
/// the default threshold of 50%).
async fn quarter_healthy() -> anyhow::Result<(Vec<baton_tests::EchoUpstream>, Value)> {
    let ups = upstreams(&["a1", "u1", "u2", "u3"]).await?;
    let backend = backend_with(json!([
        locality_at("zone-a", 0, &[ups[0].addr()], "HEALTHY"),
        locality_at("zone-a", 0, &addrs(&ups[1..]), "UNHEALTHY"),
    ]));
    Ok((ups, backend))
}

#[tokio::test]
async fn under_the_default_panic_threshold_every_host_is_picked() -> anyhow::Result<()> {
    let (_ups, backend) = quarter_healthy().await?;
    let proxy = Proxy::start(&config_for(backend)).await?;
    let counts = spread(&proxy, 40).await?;
    // Round robin over all four hosts: the unhealthy ones take picks too.
    assert!(in_zone(&counts, 'u') > 0, "{counts:?}");
    assert_counters(&proxy, &[("lb_healthy_panic", 40)]).await?;
    Ok(())
}

#[tokio::test]
async fn healthy_panic_threshold_zero_never_panics() -> anyhow::Result<()> {
    let (_ups, mut backend) = quarter_healthy().await?;
    backend["common_lb_config"] = json!({ "healthy_panic_threshold": { "value": 0 } });
    let proxy = Proxy::start(&config_for(backend)).await?;
    all_to_the_healthy_host_without_panic(&proxy).await
}

#[tokio::test]
async fn healthy_panic_threshold_runtime_key_overrides_the_cluster() -> anyhow::Result<()> {
    let (_ups, mut backend) = quarter_healthy().await?;
    backend["common_lb_config"] = json!({ "healthy_panic_threshold": { "value": 60 } });
    let proxy =
        start_with_runtime(backend, json!({ "upstream.healthy_panic_threshold": 0 })).await?;
    all_to_the_healthy_host_without_panic(&proxy).await
}

#[tokio::test]
async fn healthy_panic_threshold_100_panics_with_one_unhealthy_host() -> anyhow::Result<()> {
    // Half healthy is not under the default 50%, but is under 100%.
    let ups = upstreams(&["a1", "u1"]).await?;
    let mut backend = backend_with(json!([
        locality_at("zone-a", 0, &[ups[0].addr()], "HEALTHY"),
        locality_at("zone-a", 0, &[ups[1].addr()], "UNHEALTHY"),
    ]));
    backend["common_lb_config"] = json!({ "healthy_panic_threshold": { "value": 100 } });
    let proxy = Proxy::start(&config_for(backend)).await?;
    let counts = spread(&proxy, 20).await?;
    assert!(in_zone(&counts, 'u') > 0, "{counts:?}");
    assert_counters(&proxy, &[("lb_healthy_panic", 20)]).await?;
    Ok(())
}

/// Three upstream hosts in each zone and a local cluster split the same way: zone routing
/// sends every pick to zone-a ("all directly") unless something turns it off.
async fn even_zones() -> anyhow::Result<(Vec<baton_tests::EchoUpstream>, Value)> {
    let ups = upstreams(&["a1", "a2", "a3", "b1", "b2", "b3"]).await?;
    let backend = zoned_cluster(
        "backend",
        &[("zone-a", addrs(&ups[..3])), ("zone-b", addrs(&ups[3..]))],
    );
    Ok((ups, backend))
}

const ZONE_COUNTERS_OFF: [(&str, u64); 3] = [
    ("lb_zone_routing_all_directly", 0),
    ("lb_zone_routing_sampled", 0),
    ("lb_zone_routing_cross_zone", 0),
];

#[tokio::test]
async fn zone_routing_enabled_zero_in_runtime_turns_routing_off() -> anyhow::Result<()> {
    let (_ups, backend) = even_zones().await?;
    let proxy = start_with_runtime(backend, json!({ "upstream.zone_routing.enabled": 0 })).await?;
    let counts = spread(&proxy, 12).await?;
    // Plain round robin over both zones.
    assert!(in_zone(&counts, 'b') > 0, "{counts:?}");
    assert_counters(&proxy, &ZONE_COUNTERS_OFF).await?;
    Ok(())
}

#[tokio::test]
async fn zone_routing_min_cluster_size_in_runtime_overrides_the_cluster() -> anyhow::Result<()> {
    let (_ups, mut backend) = even_zones().await?;
    backend["common_lb_config"] = json!({ "zone_aware_lb_config": { "min_cluster_size": 2 } });
    let proxy = start_with_runtime(
        backend,
        json!({ "upstream.zone_routing.min_cluster_size": 100 }),
    )
    .await?;
    let counts = spread(&proxy, 12).await?;
    assert!(in_zone(&counts, 'b') > 0, "{counts:?}");
    assert_counters(&proxy, &ZONE_COUNTERS_OFF).await?;
    assert!(counter(&proxy, "lb_zone_cluster_too_small").await? > 0);
    Ok(())
}

#[tokio::test]
async fn force_local_zone_min_size_in_runtime_forces_the_local_zone() -> anyhow::Result<()> {
    // One host in zone-a, two in zone-b: without forcing, zone-a (a third of the hosts,
    // half of the local cluster) takes only part of the picks.
    let ups = upstreams(&["a1", "b1", "b2"]).await?;
    let mut backend = zoned_cluster(
        "backend",
        &[
            ("zone-a", vec![ups[0].addr()]),
            ("zone-b", addrs(&ups[1..])),
        ],
    );
    backend["common_lb_config"] = json!({ "zone_aware_lb_config": { "min_cluster_size": 1 } });
    let proxy = start_with_runtime(
        backend,
        json!({ "upstream.zone_routing.force_local_zone.min_size": 1 }),
    )
    .await?;
    let counts = spread(&proxy, 12).await?;
    assert_eq!(in_zone(&counts, 'a'), 12, "{counts:?}");
    assert_counters(&proxy, &[("lb_zone_routing_all_directly", 12)]).await?;
    Ok(())
}

#[tokio::test]
async fn runtime_modify_turns_zone_routing_off_for_the_next_picks() -> anyhow::Result<()> {
    let (_ups, backend) = even_zones().await?;
    let proxy = start_with_runtime(backend, json!({})).await?;
    let before = spread(&proxy, 6).await?;
    assert_eq!(in_zone(&before, 'a'), 6, "{before:?}");
    let resp = proxy
        .admin_request("POST", "/runtime_modify?upstream.zone_routing.enabled=0")
        .await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let after = spread(&proxy, 12).await?;
    assert!(in_zone(&after, 'b') > 0, "{after:?}");
    assert_counters(&proxy, &[("lb_zone_routing_all_directly", 6)]).await?;
    Ok(())
}
