//! Cluster manager updates: CDS adds, no-op updates, modifications that warm and swap,
//! removals, static clusters CDS may not touch, EDS warming and host identity.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use baton_config::model::{self, DiscoveryType, EndpointAddress};

use super::{ClusterChange, ClusterManager, ClusterSource};
use crate::upstream::test_support::cluster;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn cds(hash: u64) -> ClusterSource {
    ClusterSource::Cds {
        version_info: format!("v{hash}"),
        config_hash: hash,
        config_dump: None,
    }
}

fn static_cluster(name: &str, port: u16) -> Arc<model::Cluster> {
    Arc::new(cluster(name, vec![EndpointAddress::Ip(addr(port))]))
}

fn eds_cluster(name: &str) -> Arc<model::Cluster> {
    let mut c = cluster(name, Vec::new());
    c.discovery = DiscoveryType::Eds;
    c.load_assignment = model::LoadAssignment::default();
    Arc::new(c)
}

fn assignment(ports: &[u16]) -> Arc<model::LoadAssignment> {
    let c = cluster(
        "unused",
        ports
            .iter()
            .map(|p| EndpointAddress::Ip(addr(*p)))
            .collect(),
    );
    Arc::new(c.load_assignment)
}

#[tokio::test]
async fn cds_cluster_is_added_updated_and_removed() {
    let cm = ClusterManager::new();
    assert_eq!(
        cm.add_or_update(static_cluster("a", 1), cds(1)),
        ClusterChange::Added
    );
    let first = cm.get("a").expect("a static CDS cluster is active at once");
    assert_eq!(
        cm.add_or_update(static_cluster("a", 1), cds(1)),
        ClusterChange::Unchanged
    );
    assert!(
        Arc::ptr_eq(&first, &cm.get("a").expect("a")),
        "no-op update kept the cluster"
    );
    assert_eq!(
        cm.add_or_update(static_cluster("a", 2), cds(2)),
        ClusterChange::Modified
    );
    let second = cm.get("a").expect("a");
    assert_eq!(second.hosts()[0].address.ip(), Some(addr(2)));
    assert_eq!(
        first.hosts()[0].address.ip(),
        Some(addr(1)),
        "holders keep the old cluster"
    );
    assert!(cm
        .snapshot()
        .iter()
        .all(|(_, m)| m.added_via_api && m.version_info == "v2"));
    assert!(cm.remove("a"));
    assert!(cm.get("a").is_none());
    assert!(!cm.remove("a"));
}

#[tokio::test]
async fn static_clusters_are_not_touched_by_cds() {
    let cm = ClusterManager::initialize(&[static_cluster("s", 1)])
        .await
        .expect("init");
    assert_eq!(
        cm.add_or_update(static_cluster("s", 2), cds(9)),
        ClusterChange::Unchanged
    );
    assert_eq!(
        cm.get("s").expect("s").hosts()[0].address.ip(),
        Some(addr(1))
    );
    assert!(!cm.remove("s"));
    assert!(cm.get("s").is_some());
}

#[tokio::test]
async fn eds_cluster_warms_until_its_assignment_then_keeps_hosts() {
    let cm = ClusterManager::new();
    assert_eq!(
        cm.add_or_update(eds_cluster("e"), cds(1)),
        ClusterChange::Added
    );
    assert!(cm.get("e").is_none(), "warming clusters are not routable");
    assert_eq!(cm.warming_names(), ["e"]);
    assert_eq!(*cm.eds_services().borrow(), ["e"]);
    cm.set_assignment("e", assignment(&[1, 2]));
    let e = cm.get("e").expect("active after its assignment");
    assert_eq!(e.hosts().len(), 2);
    tokio::time::timeout(Duration::from_secs(1), cm.wait_warm())
        .await
        .expect("nothing warming");
    // A new assignment keeps the hosts it shares with the old one.
    let kept = e.hosts()[1].clone();
    cm.set_assignment("e", assignment(&[2, 3]));
    let hosts = e.hosts();
    assert!(Arc::ptr_eq(&hosts[0], &kept));
    assert_eq!(hosts[1].address.ip(), Some(addr(3)));
    // A modified EDS cluster warms with the known assignment at once.
    assert_eq!(
        cm.add_or_update(eds_cluster("e"), cds(2)),
        ClusterChange::Modified
    );
    assert_eq!(cm.get("e").expect("e").hosts().len(), 2);
    assert!(cm.remove("e"));
    assert!(cm.eds_services().borrow().is_empty());
}

#[tokio::test(start_paused = true)]
async fn eds_cluster_activates_without_hosts_after_the_fetch_timeout() {
    let cm = ClusterManager::new();
    cm.add_or_update(eds_cluster("late"), cds(1));
    assert!(cm.get("late").is_none());
    tokio::time::timeout(Duration::from_secs(60), cm.wait_warm())
        .await
        .expect("the fetch timeout ends warming");
    assert!(cm.get("late").expect("active").hosts().is_empty());
}
