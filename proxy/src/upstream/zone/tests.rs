//! Zone routing arithmetic (Envoy's percentages in hundredths of a percent) and picks.

use super::*;
use crate::upstream::host_set::LocalityHosts;

fn load(name: &str, hosts: u64) -> LocalityLoad {
    LocalityLoad {
        name: Arc::from(name),
        hosts,
        weight: hosts,
    }
}

fn config(min_cluster_size: u64) -> ZoneAwareLbConfig {
    ZoneAwareLbConfig {
        min_cluster_size,
        ..ZoneAwareLbConfig::default()
    }
}

#[test]
fn percentages_match_localities_by_name() {
    let local = [load("a", 2), load("b", 2)];
    let upstream = [load("a", 1), load("b", 2), load("c", 1)];
    assert_eq!(
        locality_percentages(&local, &upstream, false),
        vec![(5000, 2500), (5000, 5000), (0, 2500)]
    );
}

#[test]
fn weight_basis_uses_host_weights() {
    let local = [load("a", 1), load("b", 1)];
    let mut heavy = load("a", 1);
    heavy.weight = 3;
    let upstream = [heavy, load("b", 1)];
    assert_eq!(
        locality_percentages(&local, &upstream, true),
        vec![(5000, 7500), (5000, 2500)]
    );
    assert_eq!(
        locality_percentages(&local, &upstream, false),
        vec![(5000, 5000), (5000, 5000)]
    );
}

#[test]
fn local_zone_with_enough_share_is_direct() {
    let local = [load("a", 1), load("b", 1)];
    let upstream = [load("a", 3), load("b", 3)];
    assert_eq!(
        routing_state(&upstream, true, &local, true, &config(6)),
        Ok(RoutingState::Direct)
    );
}

#[test]
fn overloaded_local_zone_routes_its_share_and_spreads_the_rest() {
    // Upstream: 1/3 in a; local: 1/2 in a -> 3333 * 10000 / 5000 = 6666 local.
    let local = [load("a", 2), load("b", 2)];
    let upstream = [load("a", 1), load("b", 2)];
    assert_eq!(
        routing_state(&upstream, true, &local, true, &config(1)),
        Ok(RoutingState::Residual {
            local_percent: 6666,
            residual_capacity: vec![0, 1666],
        })
    );
}

#[test]
fn residual_capacity_accumulates_only_spare_localities() {
    // Envoy's own example: local 40/40/20, upstream 25/50/25.
    let local = [load("a", 4), load("b", 4), load("c", 2)];
    let upstream = [load("a", 1), load("b", 2), load("c", 1)];
    assert_eq!(
        routing_state(&upstream, true, &local, true, &config(1)),
        Ok(RoutingState::Residual {
            local_percent: 6250,
            residual_capacity: vec![0, 1000, 1500],
        })
    );
}

#[test]
fn upstream_without_the_local_zone_is_all_residual() {
    let local = [load("a", 1), load("b", 1), load("c", 1)];
    let upstream = [load("b", 1), load("c", 1)];
    assert_eq!(
        routing_state(&upstream, false, &local, true, &config(1)),
        Ok(RoutingState::Residual {
            local_percent: 0,
            residual_capacity: vec![1667, 3334],
        })
    );
}

#[test]
fn preconditions_turn_routing_off() {
    let local = [load("a", 1), load("b", 1)];
    let upstream = [load("a", 1), load("b", 1)];
    assert_eq!(
        routing_state(&upstream[..1], true, &local, true, &config(1)),
        Err(Off::OneLocality)
    );
    assert_eq!(
        routing_state(&upstream, true, &local[..1], true, &config(1)),
        Err(Off::OneLocality)
    );
    assert_eq!(
        routing_state(&upstream, true, &local, false, &config(1)),
        Err(Off::LocalClusterNotOk)
    );
    assert_eq!(
        routing_state(&upstream, true, &local, true, &config(6)),
        Err(Off::ClusterTooSmall)
    );
}

#[test]
fn force_local_zone_needs_its_minimum_of_local_hosts() {
    let local = [load("a", 9), load("b", 1)];
    let upstream = [load("a", 2), load("b", 9)];
    let forced = |min| ZoneAwareLbConfig {
        force_local_zone_min_size: Some(min),
        ..config(1)
    };
    assert_eq!(
        routing_state(&upstream, true, &local, true, &forced(2)),
        Ok(RoutingState::Direct)
    );
    assert!(matches!(
        routing_state(&upstream, true, &local, true, &forced(3)),
        Ok(RoutingState::Residual { .. })
    ));
    assert!(matches!(
        routing_state(&upstream, true, &local, true, &config(1)),
        Ok(RoutingState::Residual { .. })
    ));
    // A one-zone local cluster still routes when forced (measured on Envoy 1.40).
    assert_eq!(
        routing_state(&upstream, true, &local[..1], true, &forced(1)),
        Ok(RoutingState::Direct)
    );
    assert_eq!(
        routing_state(&upstream, true, &local[..1], true, &config(1)),
        Err(Off::OneLocality)
    );
}

fn host(port: u16, zone: &str) -> Arc<Host> {
    Arc::new(Host::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        None,
        1,
        Arc::from(format!("r/{zone}/").as_str()),
        0,
        true,
    ))
}

fn set(hosts: &[(u16, &str)]) -> HostSet {
    HostSet::new(
        hosts
            .iter()
            .map(|(port, zone)| LocalityHosts {
                priority: 0,
                weight: None,
                hosts: vec![host(*port, zone)],
            })
            .collect(),
        Default::default(),
    )
}

fn stats() -> ZoneStats {
    crate::stats::ClusterStats::new(crate::stats::store(), "zone_unit").zone
}

#[test]
fn balancer_picks_the_local_zone_directly_and_follows_the_local_cluster() {
    let zone = LocalZone::new("r/a/", "local");
    let upstream = set(&[(1, "a"), (2, "b")]);
    let balancer = ZoneBalancer::new(zone.clone(), config(1), 50);
    let stats = stats();
    balancer.rebuild(&upstream, &stats);
    // No local cluster yet: not routed.
    assert!(matches!(
        balancer.pick(&upstream, LbPolicy::RoundRobin, &stats),
        ZonePick::NotRouted
    ));
    zone.publish_local(&set(&[(10, "a"), (11, "b")]));
    for _ in 0..10 {
        match balancer.pick(&upstream, LbPolicy::RoundRobin, &stats) {
            ZonePick::Host(h) => assert_eq!(&*h.locality, "r/a/"),
            _ => panic!("not zone routed"),
        }
    }
    // The local cluster leaves zone a: local zone not ok, routing off.
    zone.publish_local(&set(&[(10, "b"), (11, "c")]));
    assert!(matches!(
        balancer.pick(&upstream, LbPolicy::RoundRobin, &stats),
        ZonePick::NotRouted
    ));
}

#[test]
fn residual_picks_add_up() {
    let zone = LocalZone::new("r/a/", "local");
    zone.publish_local(&set(&[(10, "a"), (11, "a"), (12, "b"), (13, "b")]));
    let upstream = set(&[(1, "a"), (2, "b"), (3, "b")]);
    let balancer = ZoneBalancer::new(zone, config(1), 50);
    let stats = stats();
    balancer.rebuild(&upstream, &stats);
    let (mut local, mut cross) = (0u64, 0u64);
    for _ in 0..300 {
        match balancer.pick(&upstream, LbPolicy::RoundRobin, &stats) {
            ZonePick::Host(h) if &*h.locality == "r/a/" => local += 1,
            ZonePick::Host(_) => cross += 1,
            _ => panic!("not zone routed"),
        }
    }
    assert_eq!(local + cross, 300);
    assert!(local > 0 && cross > 0, "{local} / {cross}");
}
