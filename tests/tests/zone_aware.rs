//! Zone-aware routing: `cluster_manager.local_cluster_name`, the node's locality and the
//! upstream cluster's zone-aware config (`common_lb_config.zone_aware_lb_config` or a typed
//! policy's `locality_lb_config`). Upstreams are tagged with zones; the test counts which
//! ones answered and reads the `cluster.<name>.lb_zone_*` counters, which are exact per
//! pick (each request picks once), so no assertion depends on timing.

use std::net::SocketAddr;

use baton_tests::config::{
    bootstrap, http_listener, prefix_route, route_config, static_cluster, vhost,
};
use baton_tests::zone::*;
use baton_tests::{EchoUpstream, Proxy};
use serde_json::{json, Value};

#[tokio::test]
async fn local_zone_takes_everything_when_it_has_enough_hosts() -> anyhow::Result<()> {
    // Upstream: half its hosts in zone-a; local cluster: half in zone-a too, so the local
    // zone can take all of this proxy's traffic ("all directly").
    let a = upstreams(&["a1", "a2", "a3"]).await?;
    let b = upstreams(&["b1", "b2", "b3"]).await?;
    let backend = zoned_cluster("backend", &[("zone-a", addrs(&a)), ("zone-b", addrs(&b))]);
    let local = [("zone-a", peers(1000, 1)), ("zone-b", peers(2000, 1))];
    let proxy = Proxy::start(&zone_config(backend, &local)).await?;
    let counts = spread(&proxy, 12).await?;
    assert_eq!(in_zone(&counts, 'a'), 12, "{counts:?}");
    assert_counters(
        &proxy,
        &[
            ("lb_zone_routing_all_directly", 12),
            ("lb_zone_routing_sampled", 0),
            ("lb_zone_routing_cross_zone", 0),
            ("lb_zone_cluster_too_small", 0),
        ],
    )
    .await?;
    assert!(counter(&proxy, "lb_recalculate_zone_structures").await? > 0);
    Ok(())
}

#[tokio::test]
async fn service_zone_sets_the_nodes_zone() -> anyhow::Result<()> {
    // The bootstrap puts the node in zone-b; `--service-zone zone-a` moves it to zone-a.
    let a = upstreams(&["a1", "a2", "a3"]).await?;
    let b = upstreams(&["b1", "b2", "b3"]).await?;
    let backend = zoned_cluster("backend", &[("zone-a", addrs(&a)), ("zone-b", addrs(&b))]);
    let local = [("zone-a", peers(1000, 1)), ("zone-b", peers(2000, 1))];
    let mut config = zone_config(backend, &local);
    config["node"]["locality"]["zone"] = json!("zone-b");
    let opts = baton_tests::StartOptions {
        extra_args: vec!["--service-zone".into(), "zone-a".into()],
        ..Default::default()
    };
    let proxy = Proxy::start_with(&config, opts).await?;
    let counts = spread(&proxy, 6).await?;
    assert_eq!(in_zone(&counts, 'a'), 6, "{counts:?}");
    assert_eq!(counter(&proxy, "lb_zone_routing_all_directly").await?, 6);
    Ok(())
}

#[tokio::test]
async fn small_cluster_is_balanced_over_every_zone() -> anyhow::Result<()> {
    // Two upstream hosts: under the default min_cluster_size (6), so no zone routing.
    let ups = upstreams(&["a1", "b1"]).await?;
    let backend = two_zone_backend(&ups);
    let local = [("zone-a", peers(1000, 1)), ("zone-b", peers(2000, 1))];
    let proxy = Proxy::start(&zone_config(backend, &local)).await?;
    let counts = spread(&proxy, 10).await?;
    assert_eq!(in_zone(&counts, 'a'), 5, "{counts:?}");
    assert_eq!(in_zone(&counts, 'b'), 5, "{counts:?}");
    assert!(counter(&proxy, "lb_zone_cluster_too_small").await? > 0);
    assert_counters(
        &proxy,
        &[
            ("lb_zone_routing_all_directly", 0),
            ("lb_zone_routing_sampled", 0),
            ("lb_zone_routing_cross_zone", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn min_cluster_size_from_common_lb_config_enables_small_clusters() -> anyhow::Result<()> {
    let ups = upstreams(&["a1", "b1"]).await?;
    let mut backend = two_zone_backend(&ups);
    backend["common_lb_config"] = json!({ "zone_aware_lb_config": { "min_cluster_size": 2 } });
    let local = [("zone-a", peers(1000, 1)), ("zone-b", peers(2000, 1))];
    let proxy = Proxy::start(&zone_config(backend, &local)).await?;
    let counts = spread(&proxy, 10).await?;
    assert_eq!(in_zone(&counts, 'a'), 10, "{counts:?}");
    assert_counters(
        &proxy,
        &[
            ("lb_zone_routing_all_directly", 10),
            ("lb_zone_cluster_too_small", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn overloaded_local_zone_sends_the_residual_cross_zone() -> anyhow::Result<()> {
    // Upstream: a third of its hosts in zone-a; local cluster: half. Two thirds of the
    // picks may stay in zone-a ("sampled"), the rest go to zone-b ("cross zone"). Typed
    // least_request policy with its own locality_lb_config.
    let a = upstreams(&["a1"]).await?;
    let b = upstreams(&["b1", "b2"]).await?;
    let mut backend = zoned_cluster("backend", &[("zone-a", addrs(&a)), ("zone-b", addrs(&b))]);
    backend["load_balancing_policy"] = json!({ "policies": [{ "typed_extension_config": {
        "name": "envoy.load_balancing_policies.least_request",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
            "locality_lb_config": { "zone_aware_lb_config": { "min_cluster_size": 1 } },
        },
    }}]});
    let local = [("zone-a", peers(1000, 2)), ("zone-b", peers(2000, 2))];
    let proxy = Proxy::start(&zone_config(backend, &local)).await?;
    let n = 60;
    let counts = spread(&proxy, n).await?;
    let sampled = counter(&proxy, "lb_zone_routing_sampled").await?;
    let cross = counter(&proxy, "lb_zone_routing_cross_zone").await?;
    assert_eq!(sampled + cross, n as u64);
    // Each side has probability below 1e-10 of never being chosen in 60 picks.
    assert!(sampled > 0 && cross > 0, "sampled {sampled}, cross {cross}");
    assert_eq!(in_zone(&counts, 'a') as u64, sampled, "{counts:?}");
    assert_eq!(in_zone(&counts, 'b') as u64, cross, "{counts:?}");
    assert_counters(
        &proxy,
        &[
            ("lb_zone_routing_all_directly", 0),
            ("lb_zone_no_capacity_left", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn upstream_without_the_local_zone_is_all_cross_zone() -> anyhow::Result<()> {
    // The node is in zone-a, the upstream only in zone-b and zone-c: every pick goes
    // cross zone, to the zones with room left (both here).
    let ups = upstreams(&["b1", "c1"]).await?;
    let mut backend = zoned_cluster(
        "backend",
        &[
            ("zone-b", vec![ups[0].addr()]),
            ("zone-c", vec![ups[1].addr()]),
        ],
    );
    backend["common_lb_config"] = json!({ "zone_aware_lb_config": { "min_cluster_size": 1 } });
    let local = [
        ("zone-a", peers(1000, 1)),
        ("zone-b", peers(2000, 1)),
        ("zone-c", peers(3000, 1)),
    ];
    let proxy = Proxy::start(&zone_config(backend, &local)).await?;
    let counts = spread(&proxy, 10).await?;
    assert_eq!(
        in_zone(&counts, 'b') + in_zone(&counts, 'c'),
        10,
        "{counts:?}"
    );
    assert_counters(
        &proxy,
        &[
            ("lb_zone_routing_cross_zone", 10),
            ("lb_zone_routing_sampled", 0),
            ("lb_zone_routing_all_directly", 0),
            ("lb_local_cluster_not_ok", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn local_cluster_without_the_nodes_zone_is_not_ok() -> anyhow::Result<()> {
    // The local cluster has no member in the node's zone: no zone routing at all.
    let ups = upstreams(&["a1", "b1"]).await?;
    let mut backend = two_zone_backend(&ups);
    backend["common_lb_config"] = json!({ "zone_aware_lb_config": { "min_cluster_size": 1 } });
    let local = [("zone-b", peers(2000, 1)), ("zone-c", peers(3000, 1))];
    let proxy = Proxy::start(&zone_config(backend, &local)).await?;
    let counts = spread(&proxy, 10).await?;
    assert_eq!(in_zone(&counts, 'a'), 5, "{counts:?}");
    assert_eq!(in_zone(&counts, 'b'), 5, "{counts:?}");
    assert!(counter(&proxy, "lb_local_cluster_not_ok").await? > 0);
    assert_counters(
        &proxy,
        &[
            ("lb_zone_routing_all_directly", 0),
            ("lb_zone_routing_cross_zone", 0),
            ("lb_zone_routing_sampled", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn zone_stats_exist_on_every_cluster() -> anyhow::Result<()> {
    let up = EchoUpstream::start("a1").await?;
    let config = bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                vec![prefix_route("/", "backend")],
            )]),
        )],
        vec![static_cluster("backend", &[up.addr()])],
    );
    let proxy = Proxy::start(&config).await?;
    for name in [
        "lb_local_cluster_not_ok",
        "lb_recalculate_zone_structures",
        "lb_zone_cluster_too_small",
        "lb_zone_no_capacity_left",
        "lb_zone_routing_all_directly",
        "lb_zone_routing_cross_zone",
        "lb_zone_routing_sampled",
    ] {
        assert_eq!(counter(&proxy, name).await?, 0, "{name}");
    }
    // Envoy 1.40 matches localities by name and no longer has this one.
    let gone = "cluster.backend.lb_zone_number_differs";
    assert_eq!(proxy.stat(gone).await?, None);
    Ok(())
}

/// Validates `config` (`--mode validate`); the exit status and the output.
fn validate(config: &Value) -> anyhow::Result<(bool, String)> {
    let dir = baton_tests::TempDir::new()?;
    let path = dir.join("config.yaml");
    std::fs::write(&path, serde_json::to_string_pretty(config)?)?;
    let path = path.display().to_string();
    let (status, out, err) =
        baton_tests::run_to_completion(&["--mode", "validate", "-c", path.as_str()])?;
    Ok((status.success(), format!("{out}{err}")))
}

#[test]
fn local_cluster_must_exist() -> anyhow::Result<()> {
    let backend = static_cluster("backend", &[SocketAddr::from(([127, 0, 0, 1], 1))]);
    let mut config = zone_config(backend, &[("zone-a", peers(1000, 1))]);
    config["cluster_manager"]["local_cluster_name"] = json!("nope");
    let (ok, output) = validate(&config)?;
    assert!(!ok, "{output}");
    assert!(
        output.contains("local cluster 'nope' must be defined"),
        "{output}"
    );
    Ok(())
}

/// Sets the local cluster's endpoints over EDS at `version`.
fn set_local_endpoints(
    cp: &baton_tests::xds::ControlPlane,
    version: &str,
    zones: &[(&str, Vec<SocketAddr>)],
) -> anyhow::Result<()> {
    let assignment =
        json!({ "cluster_name": "local_service", "endpoints": zoned_endpoints(zones) });
    cp.set(
        baton_tests::xds::ENDPOINT_TYPE,
        version,
        baton_tests::xds::resources::load_assignments(&[assignment])?,
    )
}

#[tokio::test]
async fn local_cluster_from_eds_follows_its_updates() -> anyhow::Result<()> {
    // As Envoy Gateway does: the local cluster is an EDS cluster over ADS.
    use baton_tests::xds::{resources, ControlPlane, ENDPOINT_TYPE};
    let cp = ControlPlane::start().await?;
    let a = upstreams(&["a1", "a2", "a3"]).await?;
    let b = upstreams(&["b1", "b2", "b3"]).await?;
    set_local_endpoints(
        &cp,
        "1",
        &[("zone-a", peers(1000, 1)), ("zone-b", peers(2000, 1))],
    )?;
    let backend = zoned_cluster("backend", &[("zone-a", addrs(&a)), ("zone-b", addrs(&b))]);
    let mut config = zone_config(backend, &[]);
    let xds = baton_tests::config::XdsBootstrap::new(cp.addr()).build();
    let clusters = config["static_resources"]["clusters"]
        .as_array_mut()
        .ok_or_else(|| anyhow::anyhow!("clusters"))?;
    clusters.pop();
    clusters.push(resources::eds_cluster("local_service"));
    clusters.push(xds["static_resources"]["clusters"][0].clone());
    config["dynamic_resources"] = json!({ "ads_config": xds["dynamic_resources"]["ads_config"] });
    let proxy = Proxy::start(&config).await?;
    let counts = spread(&proxy, 6).await?;
    assert_eq!(in_zone(&counts, 'a'), 6, "{counts:?}");
    assert_eq!(counter(&proxy, "lb_zone_routing_all_directly").await?, 6);

    // The local cluster leaves zone-a: zone routing stops, counted when it changes (not
    // when it is down to one zone: Envoy then stops silently).
    set_local_endpoints(
        &cp,
        "2",
        &[("zone-b", peers(2000, 1)), ("zone-c", peers(3000, 1))],
    )?;
    cp.wait_for_ack(ENDPOINT_TYPE, "2", std::time::Duration::from_secs(10))
        .await?;
    baton_tests::eventually(std::time::Duration::from_secs(10), || async {
        Ok((counter(&proxy, "lb_local_cluster_not_ok").await? > 0).then_some(()))
    })
    .await?;
    // Round robin over all six hosts again.
    let counts = spread(&proxy, 12).await?;
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![2; 6],
        "{counts:?}"
    );
    assert_eq!(counter(&proxy, "lb_zone_routing_all_directly").await?, 6);
    Ok(())
}

#[tokio::test]
async fn priority_zero_share_is_zone_routed_when_spilling_over() -> anyhow::Result<()> {
    // Priority 0: three healthy hosts in zone-a, two healthy and five unhealthy in zone-b
    // (half healthy: 70% of the picks, 1.4 x 50); priority 1 (x1, x2, zone-b) takes the
    // other 30%. Zone routing applies to the priority-0 share: zone-a holds 60% of its
    // healthy hosts against 50% of the local cluster, so all of it stays in zone-a.
    let a = upstreams(&["a1", "a2", "a3"]).await?;
    let b = upstreams(&["b1", "b2"]).await?;
    let x = upstreams(&["x1", "x2"]).await?;
    let mut backend = static_cluster("backend", &[]);
    backend["load_assignment"]["endpoints"] = json!([
        locality_at("zone-a", 0, &addrs(&a), "HEALTHY"),
        locality_at("zone-b", 0, &addrs(&b), "HEALTHY"),
        locality_at("zone-b", 0, &peers(4000, 5), "UNHEALTHY"),
        locality_at("zone-b", 1, &addrs(&x), "HEALTHY"),
    ]);
    backend["common_lb_config"] = json!({ "zone_aware_lb_config": { "min_cluster_size": 1 } });
    let local = [("zone-a", peers(1000, 1)), ("zone-b", peers(2000, 1))];
    let proxy = Proxy::start(&zone_config(backend, &local)).await?;
    let n = 60;
    let counts = spread(&proxy, n).await?;
    let direct = counter(&proxy, "lb_zone_routing_all_directly").await?;
    assert_eq!(in_zone(&counts, 'b'), 0, "{counts:?}");
    assert_eq!(in_zone(&counts, 'a') as u64, direct, "{counts:?}");
    assert_eq!(
        in_zone(&counts, 'a') + in_zone(&counts, 'x'),
        n,
        "{counts:?}"
    );
    // Each side has probability below 1e-9 of never being chosen in 60 picks.
    assert!(direct > 0 && in_zone(&counts, 'x') > 0, "{counts:?}");
    assert_counters(
        &proxy,
        &[
            ("lb_zone_routing_sampled", 0),
            ("lb_zone_routing_cross_zone", 0),
            ("lb_healthy_panic", 0),
        ],
    )
    .await?;
    Ok(())
}

/// `backend` with a typed round-robin policy whose zone-aware config is `zone_aware`.
fn with_typed_zone_config(mut backend: Value, zone_aware: Value) -> Value {
    backend["load_balancing_policy"] = json!({ "policies": [{ "typed_extension_config": {
        "name": "envoy.load_balancing_policies.round_robin",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
            "locality_lb_config": { "zone_aware_lb_config": zone_aware },
        },
    }}]});
    backend
}

/// One upstream host in zone-a (`a1`), two in zone-b: zone-a's share (a third) is below
/// the local cluster's (half), the residual case without forcing.
async fn overloaded_zone_a() -> anyhow::Result<(Vec<EchoUpstream>, Value)> {
    let ups = upstreams(&["a1", "b1", "b2"]).await?;
    let backend = zoned_cluster(
        "backend",
        &[
            ("zone-a", vec![ups[0].addr()]),
            ("zone-b", vec![ups[1].addr(), ups[2].addr()]),
        ],
    );
    Ok((ups, backend))
}

/// A proxy routing to `backend` with the typed policy's `zone_aware_lb_config` set to
/// `zone_aware`, its local cluster two hosts in zone-a and two in zone-b.
async fn start_beside_two_zones(backend: Value, zone_aware: Value) -> anyhow::Result<Proxy> {
    let backend = with_typed_zone_config(backend, zone_aware);
    let local = [("zone-a", peers(1000, 2)), ("zone-b", peers(2000, 2))];
    Proxy::start(&zone_config(backend, &local)).await
}

#[tokio::test]
async fn force_local_zone_sends_everything_to_the_local_zone() -> anyhow::Result<()> {
    let (_ups, backend) = overloaded_zone_a().await?;
    let proxy = start_beside_two_zones(
        backend,
        json!({ "min_cluster_size": 1, "force_local_zone": {} }),
    )
    .await?;
    let counts = spread(&proxy, 12).await?;
    assert_eq!(in_zone(&counts, 'a'), 12, "{counts:?}");
    assert_counters(
        &proxy,
        &[
            ("lb_zone_routing_all_directly", 12),
            ("lb_zone_routing_sampled", 0),
            ("lb_zone_routing_cross_zone", 0),
        ],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn force_local_zone_under_min_size_keeps_the_residual() -> anyhow::Result<()> {
    // One healthy zone-a host, `min_size: 2`: not forced, the usual residual split.
    let (_ups, backend) = overloaded_zone_a().await?;
    let proxy = start_beside_two_zones(
        backend,
        json!({ "min_cluster_size": 1, "force_local_zone": { "min_size": 2 } }),
    )
    .await?;
    let n = 60;
    let counts = spread(&proxy, n).await?;
    let sampled = counter(&proxy, "lb_zone_routing_sampled").await?;
    let cross = counter(&proxy, "lb_zone_routing_cross_zone").await?;
    assert_eq!(sampled + cross, n as u64);
    assert!(sampled > 0 && cross > 0, "sampled {sampled}, cross {cross}");
    assert_eq!(in_zone(&counts, 'a') as u64, sampled, "{counts:?}");
    assert_eq!(counter(&proxy, "lb_zone_routing_all_directly").await?, 0);
    Ok(())
}

#[tokio::test]
async fn force_local_zone_routes_with_a_one_zone_local_cluster() -> anyhow::Result<()> {
    // A local cluster in zone-a only turns zone routing off, unless it is forced.
    let (_ups, backend) = overloaded_zone_a().await?;
    let forced = with_typed_zone_config(
        backend.clone(),
        json!({ "min_cluster_size": 1, "force_local_zone": {} }),
    );
    let local = [("zone-a", peers(1000, 2))];
    let proxy = Proxy::start(&zone_config(forced, &local)).await?;
    let counts = spread(&proxy, 6).await?;
    assert_eq!(in_zone(&counts, 'a'), 6, "{counts:?}");
    assert_eq!(counter(&proxy, "lb_zone_routing_all_directly").await?, 6);
    drop(proxy);

    let plain = with_typed_zone_config(backend, json!({ "min_cluster_size": 1 }));
    let proxy = Proxy::start(&zone_config(plain, &local)).await?;
    let counts = spread(&proxy, 6).await?;
    assert_eq!(in_zone(&counts, 'a'), 2, "{counts:?}");
    assert_eq!(in_zone(&counts, 'b'), 4, "{counts:?}");
    assert_eq!(counter(&proxy, "lb_zone_routing_all_directly").await?, 0);
    Ok(())
}

#[tokio::test]
async fn force_locality_direct_routing_is_force_local_zone_of_one() -> anyhow::Result<()> {
    // The deprecated flag: forced with a minimum of one local host, here with a one-zone
    // local cluster too.
    let (_ups, backend) = overloaded_zone_a().await?;
    let forced = with_typed_zone_config(
        backend,
        json!({ "min_cluster_size": 1, "force_locality_direct_routing": true }),
    );
    let local = [("zone-a", peers(1000, 2))];
    let proxy = Proxy::start(&zone_config(forced, &local)).await?;
    let counts = spread(&proxy, 6).await?;
    assert_eq!(in_zone(&counts, 'a'), 6, "{counts:?}");
    assert_eq!(counter(&proxy, "lb_zone_routing_all_directly").await?, 6);
    Ok(())
}

#[tokio::test]
async fn force_local_zone_without_healthy_local_hosts_is_cross_zone() -> anyhow::Result<()> {
    // The upstream's zone-a host is unhealthy: nothing to force, every pick cross zone.
    let ups = upstreams(&["a1", "b1", "b2"]).await?;
    let mut backend = static_cluster("backend", &[]);
    backend["load_assignment"]["endpoints"] = json!([
        locality_at("zone-a", 0, &[ups[0].addr()], "UNHEALTHY"),
        locality_at("zone-b", 0, &[ups[1].addr(), ups[2].addr()], "HEALTHY"),
    ]);
    let proxy = start_beside_two_zones(
        backend,
        json!({ "min_cluster_size": 1, "force_local_zone": {} }),
    )
    .await?;
    let counts = spread(&proxy, 10).await?;
    assert_eq!(in_zone(&counts, 'b'), 10, "{counts:?}");
    assert_counters(
        &proxy,
        &[
            ("lb_zone_routing_cross_zone", 10),
            ("lb_zone_routing_all_directly", 0),
        ],
    )
    .await?;
    Ok(())
}
