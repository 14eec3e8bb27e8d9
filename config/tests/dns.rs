//! DNS discovery config: the Cluster's own DNS fields, the `envoy.clusters.dns` cluster
//! extension, resolver selection (cluster, deprecated spellings, bootstrap, system) and
//! the errors for what Baton does not implement.

use std::net::SocketAddr;
use std::time::Duration;

use baton_config::load_yaml_str;
use baton_config::model::{self, DiscoveryType, DnsLookupFamily, DnsResolverConfig};

const CARES: &str =
    "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig";
const DNS_CLUSTER: &str = "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster";

/// A bootstrap with `bootstrap_extra` at top level and one cluster `c` on the name
/// `backend.test`, whose other fields are `cluster_extra` (indented 4 spaces).
fn yaml(bootstrap_extra: &str, cluster_extra: &str) -> String {
    format!(
        r#"
{bootstrap_extra}
static_resources:
  clusters:
  - name: c
{cluster_extra}
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: backend.test, port_value: 80 }} }} }}
"#
    )
}

fn cluster(bootstrap_extra: &str, cluster_extra: &str) -> model::Cluster {
    let text = yaml(bootstrap_extra, cluster_extra);
    match load_yaml_str(&text) {
        Ok(loaded) => (*loaded.model.clusters[0]).clone(),
        Err(e) => panic!("{e}\n{text}"),
    }
}

fn err(bootstrap_extra: &str, cluster_extra: &str) -> String {
    let text = yaml(bootstrap_extra, cluster_extra);
    match load_yaml_str(&text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

#[test]
fn cluster_fields_give_envoy_defaults() {
    let c = cluster("", "    type: STRICT_DNS");
    assert_eq!(c.discovery, DiscoveryType::StrictDns);
    assert_eq!(c.dns_refresh_rate, Duration::from_secs(5));
    assert!(!c.respect_dns_ttl);
    assert_eq!(c.dns_lookup_family, DnsLookupFamily::Auto);
    assert_eq!(c.dns.min_refresh_rate, Duration::ZERO);
    assert_eq!(c.dns.failure_refresh_rate, None);
    assert_eq!(c.dns.jitter, Duration::ZERO);
    assert_eq!(*c.dns.resolver, DnsResolverConfig::default());
    assert_eq!(c.dns.resolver.query_timeout, Duration::from_secs(5));
    assert_eq!(c.dns.resolver.query_tries, 4);
}

#[test]
fn cluster_fields_with_ttl_backoff_jitter_and_resolver() {
    let c = cluster(
        "",
        &format!(
            r#"    type: LOGICAL_DNS
    respect_dns_ttl: true
    dns_refresh_rate: 30s
    dns_jitter: 0.5s
    dns_failure_refresh_rate: {{ base_interval: 1s }}
    dns_lookup_family: V4_ONLY
    typed_dns_resolver_config:
      name: envoy.network.dns_resolver.cares
      typed_config:
        "@type": {CARES}
        resolvers:
        - socket_address: {{ address: 127.0.0.1, port_value: 5353 }}
        - socket_address: {{ address: "::1", protocol: UDP }}
        dns_resolver_options: {{ use_tcp_for_dns_lookups: true, no_default_search_domain: true }}
        query_timeout_seconds: 2
        query_tries: 1
        rotate_nameservers: true
        edns0_max_payload_size: 1232"#
        ),
    );
    assert_eq!(c.discovery, DiscoveryType::LogicalDns);
    assert!(c.respect_dns_ttl);
    assert_eq!(c.dns_refresh_rate, Duration::from_secs(30));
    assert_eq!(c.dns.jitter, Duration::from_millis(500));
    assert_eq!(
        c.dns.failure_refresh_rate,
        Some(model::DnsFailureRefreshRate {
            base_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(10),
        })
    );
    assert_eq!(c.dns_lookup_family, DnsLookupFamily::V4Only);
    assert_eq!(
        *c.dns.resolver,
        DnsResolverConfig {
            resolvers: vec![addr("127.0.0.1:5353"), addr("[::1]:53")],
            use_resolvers_as_fallback: false,
            use_tcp: true,
            no_default_search_domain: true,
            query_timeout: Duration::from_secs(2),
            query_tries: 1,
            rotate_nameservers: true,
            edns0_max_payload_size: Some(1232),
        }
    );
}

#[test]
fn deprecated_resolver_spellings_still_work() {
    let c = cluster(
        "",
        "    type: STRICT_DNS\n    dns_resolvers: [ { socket_address: { address: 10.0.0.1, port_value: 53 } } ]\n    use_tcp_for_dns_lookups: true",
    );
    assert_eq!(c.dns.resolver.resolvers, vec![addr("10.0.0.1:53")]);
    assert!(c.dns.resolver.use_tcp);
    let c = cluster(
        "",
        "    type: STRICT_DNS\n    dns_resolution_config:\n      resolvers: [ { socket_address: { address: 10.0.0.2 } } ]\n      dns_resolver_options: { no_default_search_domain: true }",
    );
    assert_eq!(c.dns.resolver.resolvers, vec![addr("10.0.0.2:53")]);
    assert!(c.dns.resolver.no_default_search_domain);
    assert!(!c.dns.resolver.use_tcp);
    // typed_dns_resolver_config wins over dns_resolution_config, as in Envoy.
    let c = cluster(
        "",
        &format!("    type: STRICT_DNS\n    dns_resolution_config: {{ resolvers: [ {{ socket_address: {{ address: 10.0.0.2 }} }} ] }}\n    typed_dns_resolver_config: {{ name: cares, typed_config: {{ \"@type\": {CARES}, resolvers: [ {{ socket_address: {{ address: 10.0.0.3, port_value: 53 }} }} ] }} }}"),
    );
    assert_eq!(c.dns.resolver.resolvers, vec![addr("10.0.0.3:53")]);
}

#[test]
fn bootstrap_resolver_is_the_default_for_clusters_without_one() {
    let bootstrap = format!(
        "typed_dns_resolver_config: {{ name: cares, typed_config: {{ \"@type\": {CARES}, resolvers: [ {{ socket_address: {{ address: 10.0.0.9, port_value: 5300 }} }} ] }} }}"
    );
    let c = cluster(&bootstrap, "    type: STRICT_DNS");
    assert_eq!(c.dns.resolver.resolvers, vec![addr("10.0.0.9:5300")]);
    // A cluster's own resolver wins.
    let c = cluster(
        &bootstrap,
        "    type: STRICT_DNS\n    dns_resolvers: [ { socket_address: { address: 10.0.0.1, port_value: 53 } } ]",
    );
    assert_eq!(c.dns.resolver.resolvers, vec![addr("10.0.0.1:53")]);
    // A lone use_tcp_for_dns_lookups does not make a cluster resolver (Envoy keeps the
    // bootstrap's).
    let c = cluster(
        &bootstrap,
        "    type: STRICT_DNS\n    use_tcp_for_dns_lookups: true",
    );
    assert_eq!(c.dns.resolver.resolvers, vec![addr("10.0.0.9:5300")]);
    assert!(!c.dns.resolver.use_tcp);
    // The deprecated bootstrap spellings.
    let c = cluster(
        "dns_resolution_config: { resolvers: [ { socket_address: { address: 10.0.0.8 } } ] }",
        "    type: STRICT_DNS",
    );
    assert_eq!(c.dns.resolver.resolvers, vec![addr("10.0.0.8:53")]);
    let c = cluster("use_tcp_for_dns_lookups: true", "    type: STRICT_DNS");
    assert!(c.dns.resolver.use_tcp);
    assert!(c.dns.resolver.resolvers.is_empty());
}

#[test]
fn dns_cluster_extension() {
    let c = cluster(
        "",
        &format!(
            r#"    cluster_type:
      name: envoy.clusters.dns
      typed_config:
        "@type": {DNS_CLUSTER}
        respect_dns_ttl: true
        dns_min_refresh_rate: 2s
        dns_refresh_rate: 3600s
        dns_failure_refresh_rate: {{ base_interval: 1s, max_interval: 4s }}
        dns_lookup_family: V4_PREFERRED
        all_addresses_in_single_endpoint: true
        typed_dns_resolver_config:
          name: envoy.network.dns_resolver.cares
          typed_config: {{ "@type": {CARES}, resolvers: [ {{ socket_address: {{ address: 127.0.0.1, port_value: 5353 }} }} ] }}
    respect_dns_ttl: false
    dns_refresh_rate: 1s"#
        ),
    );
    assert_eq!(c.discovery, DiscoveryType::LogicalDns);
    // The extension's settings, not the Cluster's (ignored, as in Envoy).
    assert!(c.respect_dns_ttl);
    assert_eq!(c.dns_refresh_rate, Duration::from_secs(3600));
    assert_eq!(c.dns.min_refresh_rate, Duration::from_secs(2));
    assert_eq!(
        c.dns.failure_refresh_rate,
        Some(model::DnsFailureRefreshRate {
            base_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(4),
        })
    );
    assert_eq!(c.dns_lookup_family, DnsLookupFamily::V4Preferred);
    assert_eq!(c.dns.resolver.resolvers, vec![addr("127.0.0.1:5353")]);
    // Defaults: strict, AUTO, the bootstrap's resolver.
    let c = cluster(
        "use_tcp_for_dns_lookups: true",
        &format!("    cluster_type: {{ name: envoy.clusters.dns, typed_config: {{ \"@type\": {DNS_CLUSTER} }} }}"),
    );
    assert_eq!(c.discovery, DiscoveryType::StrictDns);
    assert_eq!(c.dns_lookup_family, DnsLookupFamily::Auto);
    assert_eq!(c.dns_refresh_rate, Duration::from_secs(5));
    assert!(c.dns.resolver.use_tcp);
}

#[test]
fn invalid_dns_settings_are_errors() {
    let e = err("", &format!("    cluster_type: {{ name: envoy.clusters.dns, typed_config: {{ \"@type\": {DNS_CLUSTER}, dns_min_refresh_rate: 0.5s }} }}"));
    assert_eq!(
        e,
        "static_resources.clusters[0].cluster_type.typed_config.dns_min_refresh_rate: must be at least 1s"
    );
    let e = err(
        "",
        "    type: STRICT_DNS\n    dns_failure_refresh_rate: { base_interval: 2s, max_interval: 1s }",
    );
    assert_eq!(
        e,
        "static_resources.clusters[0].dns_failure_refresh_rate.max_interval: must be greater than or equal to base_interval"
    );
    let e = err(
        "",
        "    type: STRICT_DNS\n    dns_failure_refresh_rate: { max_interval: 1s }",
    );
    assert_eq!(
        e,
        "static_resources.clusters[0].dns_failure_refresh_rate.base_interval: required field is missing"
    );
    let e = err("", "    type: STRICT_DNS\n    dns_refresh_rate: 0.001s");
    assert_eq!(
        e,
        "static_resources.clusters[0].dns_refresh_rate: must be greater than 1ms"
    );
    let e = err(
        "",
        "    type: STRICT_DNS\n    dns_resolvers: [ { socket_address: { address: dns.example, port_value: 53 } } ]",
    );
    assert_eq!(
        e,
        "static_resources.clusters[0].dns_resolvers[0].socket_address.address: DNS resolver 'dns.example' is not an IP address"
    );
    let e = err(
        "",
        "    type: STRICT_DNS\n    dns_resolution_config: { dns_resolver_options: { use_tcp_for_dns_lookups: true } }",
    );
    assert_eq!(
        e,
        "static_resources.clusters[0].dns_resolution_config.resolvers: must have at least 1 item"
    );
    let e = err("", &format!("    type: STRICT_DNS\n    typed_dns_resolver_config: {{ name: c, typed_config: {{ \"@type\": {CARES}, query_tries: 0 }} }}"));
    assert_eq!(
        e,
        "static_resources.clusters[0].typed_dns_resolver_config.typed_config.query_tries: must be at least 1"
    );
}

#[test]
fn unimplemented_resolver_knobs_and_resolvers_are_rejected() {
    for field in [
        "filter_unroutable_families: true",
        "udp_max_queries: 10",
        "max_udp_channel_duration: 10s",
        "reinit_channel_on_timeout: true",
        "qcache_max_ttl: 30",
    ] {
        let e = err(
            "",
            &format!("    type: STRICT_DNS\n    typed_dns_resolver_config: {{ name: c, typed_config: {{ \"@type\": {CARES}, {field} }} }}"),
        );
        let name = field.split(':').next().unwrap_or_default();
        assert_eq!(
            e,
            format!("static_resources.clusters[0].typed_dns_resolver_config.typed_config.{name}: not supported by Baton yet")
        );
    }
    let e = err(
        "",
        "    type: STRICT_DNS\n    typed_dns_resolver_config: { name: envoy.network.dns_resolver.getaddrinfo, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig } }",
    );
    // Not vendored, so the loader does not know the type at all.
    assert!(e.contains("unknown or unsupported type"), "{e}");
    let e = err(
        "",
        "    cluster_type: { name: envoy.clusters.aggregate, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer } }",
    );
    assert!(
        e.starts_with("static_resources.clusters[0].cluster_type: cluster type 'envoy.clusters.aggregate' is not supported by Baton yet"),
        "{e}"
    );
}
