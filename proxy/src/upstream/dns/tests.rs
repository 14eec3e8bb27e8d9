//! DNS discovery state: host identity across re-resolution, empty answers, failures,
//! the refresh schedule and the `update_*` counters.

use std::net::IpAddr;
use std::time::Duration;

use baton_config::model::{DnsFailureRefreshRate, DnsLookupFamily, DnsResolverConfig};

use super::*;
use crate::upstream::test_support::cluster;

const SECOND: Duration = Duration::from_secs(1);

fn discovery(kind: DiscoveryType, respect_ttl: bool) -> DnsDiscovery {
    let mut model = cluster(
        "dns",
        vec![
            EndpointAddress::Dns {
                host: "backend.test".to_owned(),
                port: 8080,
            },
            EndpointAddress::Ip("10.9.9.9:80".parse().expect("addr")),
        ],
    );
    if kind == DiscoveryType::LogicalDns {
        model.load_assignment.localities[0].endpoints.truncate(1);
    }
    model.discovery = kind;
    model.respect_dns_ttl = respect_ttl;
    model.dns_refresh_rate = 60 * SECOND;
    model.dns_lookup_family = DnsLookupFamily::V4Only;
    let resolver = Arc::new(DnsResolver::new(&DnsResolverConfig::default()));
    DnsDiscovery::new(Arc::new(model), resolver)
}

fn answer(ips: &[(&str, u64)]) -> Result<Vec<Resolved>, ResolveError> {
    Ok(ips
        .iter()
        .map(|(ip, ttl)| Resolved {
            ip: ip.parse::<IpAddr>().expect("ip"),
            ttl: Duration::from_secs(*ttl),
        })
        .collect())
}

fn addresses(d: &DnsDiscovery) -> Vec<String> {
    d.localities()
        .iter()
        .flat_map(|l| l.hosts.iter().map(|h| h.address.to_string()))
        .collect()
}

/// Applies `answer` to the DNS target and returns how long after the call the target is
/// next due: the range `[due - after, due - before]` (no clock threshold involved).
fn apply_timed(
    d: &mut DnsDiscovery,
    answer: Result<Vec<Resolved>, ResolveError>,
) -> (Applied, Duration, Duration) {
    let before = Instant::now();
    let applied = d.apply(0, answer);
    let after = Instant::now();
    let due = d.targets[0].due;
    (applied, due - after, due - before)
}

/// `answer` schedules the next resolution exactly `wait` later.
fn assert_next_after(
    d: &mut DnsDiscovery,
    answer: Result<Vec<Resolved>, ResolveError>,
    wait: Duration,
) -> Applied {
    let (applied, low, high) = apply_timed(d, answer);
    assert!(
        low <= wait && wait <= high,
        "due in [{low:?}, {high:?}], expected {wait:?}"
    );
    applied
}

#[tokio::test]
async fn ip_endpoints_are_hosts_before_any_resolution() {
    let d = discovery(DiscoveryType::StrictDns, false);
    assert_eq!(addresses(&d), ["10.9.9.9:80"]);
    assert!(d.next_due().is_some_and(|due| due <= Instant::now()));
}

#[tokio::test]
async fn same_address_keeps_its_host_and_new_ones_join() {
    let mut d = discovery(DiscoveryType::StrictDns, false);
    assert_eq!(d.apply(0, answer(&[("10.0.0.1", 30)])), Applied::Changed);
    let first = d.targets[0].hosts[0].clone();
    assert_eq!(first.hostname.as_deref(), Some("backend.test"));
    assert_eq!(addresses(&d), ["10.0.0.1:8080", "10.9.9.9:80"]);
    assert_eq!(d.apply(0, answer(&[("10.0.0.1", 30)])), Applied::Unchanged);
    assert!(Arc::ptr_eq(&d.targets[0].hosts[0], &first));
    assert_eq!(
        d.apply(
            0,
            answer(&[("10.0.0.2", 30), ("10.0.0.1", 30), ("10.0.0.2", 30)])
        ),
        Applied::Changed
    );
    assert_eq!(
        addresses(&d),
        [
            "10.0.0.2:8080",
            "10.0.0.1:8080",
            "10.0.0.2:8080",
            "10.9.9.9:80"
        ]
    );
    assert!(Arc::ptr_eq(&d.targets[0].hosts[1], &first));
}

#[tokio::test]
async fn strict_empty_answer_empties_the_target_and_failure_keeps_it() {
    let mut d = discovery(DiscoveryType::StrictDns, false);
    d.apply(0, answer(&[("10.0.0.1", 30)]));
    // Without dns_failure_refresh_rate a failure retries at dns_refresh_rate.
    let failed = assert_next_after(&mut d, Err(ResolveError::new("timed out")), 60 * SECOND);
    assert_eq!(failed, Applied::Failed);
    assert_eq!(addresses(&d), ["10.0.0.1:8080", "10.9.9.9:80"]);
    assert_eq!(d.apply(0, answer(&[])), Applied::Changed);
    assert_eq!(addresses(&d), ["10.9.9.9:80"]);
}

#[tokio::test]
async fn logical_keeps_one_host_on_the_first_address_and_empty_is_a_failure() {
    let mut d = discovery(DiscoveryType::LogicalDns, true);
    // The first address's TTL schedules the refresh.
    let applied = assert_next_after(
        &mut d,
        answer(&[("10.0.0.1", 20), ("10.0.0.2", 5)]),
        20 * SECOND,
    );
    assert_eq!(applied, Applied::Changed);
    assert_eq!(addresses(&d), ["10.0.0.1:8080"]);
    assert_eq!(d.apply(0, answer(&[])), Applied::Failed);
    assert_eq!(addresses(&d), ["10.0.0.1:8080"]);
}

#[tokio::test]
async fn refresh_follows_the_smallest_ttl_when_respected() {
    let mut d = discovery(DiscoveryType::StrictDns, true);
    assert_next_after(
        &mut d,
        answer(&[("10.0.0.1", 30), ("10.0.0.2", 7)]),
        7 * SECOND,
    );
    // TTL 0 (and hosts-file answers) keep dns_refresh_rate.
    assert_next_after(&mut d, answer(&[("10.0.0.1", 0)]), 60 * SECOND);
    let mut d = discovery(DiscoveryType::StrictDns, false);
    assert_next_after(&mut d, answer(&[("10.0.0.1", 7)]), 60 * SECOND);
}

#[tokio::test]
async fn failures_back_off_and_success_resets() {
    let mut d = discovery(DiscoveryType::StrictDns, true);
    let mut model = (*d.model).clone();
    model.dns.failure_refresh_rate = Some(DnsFailureRefreshRate {
        base_interval: SECOND,
        max_interval: 4 * SECOND,
    });
    d = DnsDiscovery::new(Arc::new(model), d.resolver.clone());
    for _ in 0..5 {
        let (_, low, _) = apply_timed(&mut d, Err(ResolveError::new("refused")));
        assert!(low <= 4 * SECOND, "{low:?}");
    }
    assert_next_after(&mut d, answer(&[("10.0.0.1", 9)]), 9 * SECOND);
    // The backoff starts again from base_interval.
    let (_, low, _) = apply_timed(&mut d, Err(ResolveError::new("refused")));
    assert!(low < SECOND, "{low:?}");
}

#[tokio::test]
async fn resolutions_count_update_stats() {
    let mut model = cluster(
        "dns_stats",
        vec![EndpointAddress::Dns {
            host: "localhost".to_owned(),
            port: 1,
        }],
    );
    model.discovery = DiscoveryType::StrictDns;
    let resolver = Arc::new(DnsResolver::new(&DnsResolverConfig::default()));
    let mut d = DnsDiscovery::new(Arc::new(model), resolver);
    let stats = ClusterStats::new(crate::stats::store(), "dns_stats_unit");
    assert!(d.resolve_due(Instant::now(), &stats).await);
    // Not due again yet: nothing is resolved.
    assert!(!d.resolve_due(Instant::now(), &stats).await);
    let later = Instant::now() + 3600 * SECOND;
    assert!(!d.resolve_due(later, &stats).await);
    let snapshot = crate::stats::store().snapshot().expect("snapshot");
    let value = |name: &str| snapshot.value(&format!("cluster.dns_stats_unit.{name}"));
    assert_eq!(value("update_attempt"), Some(2));
    assert_eq!(value("update_success"), Some(2));
    assert_eq!(value("update_no_rebuild"), Some(1));
    assert_eq!(value("update_failure"), Some(0));
    assert_eq!(addresses(&d), ["127.0.0.1:1"]);
}
