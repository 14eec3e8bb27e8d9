//! One upstream cluster at run time: its current host set (swapped whole when DNS
//! changes it), circuit breakers, and the entry points the HTTP connection manager and
//! tcp_proxy call (`send_http`, `connect_tcp`). Its `cluster.<stat_name>.*` stats are
//! resolved once here; the pools and connections below count through them.

use std::sync::Arc;

use arc_swap::ArcSwap;
use baton_config::model::{self, UpstreamProtocol};

use crate::stats::ClusterStats;
use crate::tls::client::{ClientTls, TlsOverrides};
use baton_shared_stats::Counter;

use super::circuit::{CircuitBreakers, Slot};
use super::error::UpstreamError;
use super::host::Host;
use super::host_set::{HostSet, LevelPolicy, LocalityHosts};
use super::stream::UpstreamStream;
use super::zone::{LocalZone, ZoneBalancer, ZonePick};
use super::{
    connect, pool, ConnFactsSlot, RequestBody, SendOptions, UpstreamResponse, UpstreamScheme,
};

/// A cluster: configuration, hosts and breakers. Shared by all workers; connection pools
/// live per worker thread (see `pool`).
#[derive(Debug)]
pub struct UpstreamCluster {
    /// The configuration it was built from.
    pub model: Arc<model::Cluster>,
    /// Its name, shared with each request's stream info (`%UPSTREAM_CLUSTER_RAW%`).
    pub name: Arc<str>,
    /// `alt_stat_name` if set, else the name (`%UPSTREAM_CLUSTER%`, as Envoy's
    /// observability name).
    pub observability_name: Arc<str>,
    host_set: ArcSwap<HostSet>,
    breakers: CircuitBreakers,
    stats: Arc<ClusterStats>,
    /// The `transport_socket`'s `UpstreamTlsContext` built (`Err`: rustls refused it;
    /// every connect with it fails).
    tls: Option<BuiltTls>,
    /// `transport_socket_matches`, built, in order.
    socket_matches: Vec<SocketMatch>,
    /// Some transport socket is TLS (requests may then set SNI and SAN).
    any_tls: bool,
    /// Zone-aware routing, when the bootstrap has a local cluster and this cluster does
    /// not weight localities.
    zone: Option<ZoneBalancer>,
    /// The zone context to tell about host changes when this is the local cluster.
    local_of: Option<Arc<LocalZone>>,
    /// `fail_traffic_on_panic`
    fail_traffic_on_panic: bool,
}

/// A TLS context built for connecting, or why rustls refused it.
type BuiltTls = Result<Arc<ClientTls>, String>;

/// One built `transport_socket_matches` entry.
#[derive(Debug)]
struct SocketMatch {
    tls: Option<BuiltTls>,
    /// `cluster.<name>.<match name>.total_match_count`: hosts that took it.
    count: DebugCounter,
}

/// A counter in a `Debug` struct.
struct DebugCounter(Counter);

impl std::fmt::Debug for DebugCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counter")
    }
}

impl UpstreamCluster {
    /// A cluster over `localities` (from an assignment whose overprovisioning factor is
    /// `overprovisioning_percent`), zone-aware against `local_zone` when given.
    pub(crate) fn with_zone(
        model: Arc<model::Cluster>,
        localities: Vec<LocalityHosts>,
        overprovisioning_percent: u32,
        local_zone: Option<Arc<LocalZone>>,
    ) -> Self {
        let stats = Arc::new(ClusterStats::new(crate::stats::store(), &model.stat_name));
        let breakers = CircuitBreakers::new(&model.circuit_breakers, Some(&stats));
        let host_set = HostSet::new(
            localities,
            LevelPolicy::of(&model, overprovisioning_percent),
        );
        update_membership(&stats, None, &host_set);
        let zone_config = match model.locality_lb {
            model::LocalityLb::ZoneAware(config) => Some(config),
            model::LocalityLb::LocalityWeighted => None,
        };
        let local_of = local_zone
            .as_ref()
            .filter(|z| z.is_local_cluster(&model.name))
            .cloned();
        if let Some(zone) = &local_of {
            zone.publish_local(&host_set);
        }
        let zone = local_zone.zip(zone_config).map(|(zone, config)| {
            ZoneBalancer::new(zone, config, model.healthy_panic_threshold_percent)
        });
        if let Some(zone) = &zone {
            zone.rebuild(&host_set, &stats.zone);
        }
        // The cluster's prefix as its stats built it (not formatted again per cluster).
        let prefix: &str = stats.prefix();
        // Every TLS socket of the cluster counts in its one `cluster.<name>.ssl.*`.
        let any_tls = model.tls.is_some()
            || model
                .transport_socket_matches
                .iter()
                .any(|m| m.tls.is_some());
        let ssl = any_tls.then(|| {
            Arc::new(crate::tls::SslStats::new(
                crate::stats::store(),
                prefix,
                crate::tls::stats::FactorySide::Client,
            ))
        });
        let build = |ctx: &Arc<model::UpstreamTlsContext>| -> BuiltTls {
            let ssl = ssl.clone().unwrap_or_else(|| {
                Arc::new(crate::tls::SslStats::new(
                    crate::stats::store(),
                    prefix,
                    crate::tls::stats::FactorySide::Client,
                ))
            });
            let built = ClientTls::new(ctx, ssl.clone()).map(Arc::new).map_err(|e| {
                tracing::error!(cluster = %model.name, error = %e, "upstream TLS context refused");
                e.to_string()
            });
            let current = built.as_ref().ok().and_then(|t| t.current_state());
            crate::tls::certs::register_upstream(ctx, current, &ssl);
            built
        };
        let tls = model.tls.as_ref().map(build);
        let socket_matches = if model.transport_socket_matches.is_empty() {
            Vec::new()
        } else {
            let scope = crate::stats::Scope::new(crate::stats::store(), prefix);
            model
                .transport_socket_matches
                .iter()
                .map(|m| SocketMatch {
                    tls: m.tls.as_ref().map(build),
                    count: DebugCounter(scope.counter(&format!("{}.total_match_count", m.name))),
                })
                .collect()
        };
        let name: Arc<str> = Arc::from(model.name.as_str());
        let cluster = Self {
            host_set: ArcSwap::from_pointee(host_set),
            breakers,
            stats,
            tls,
            socket_matches,
            any_tls,
            zone,
            local_of,
            fail_traffic_on_panic: zone_config.is_some_and(|c| c.fail_traffic_on_panic),
            observability_name: match &model.alt_stat_name {
                Some(alt) => Arc::from(&**alt),
                None => name.clone(),
            },
            name,
            model,
        };
        cluster.count_socket_matches(cluster.host_set.load().all(), &[]);
        cluster
    }

    /// Which of `transport_socket_matches` `host` connects with (`None`: the cluster's
    /// `transport_socket`). Chosen at each connect: a few map lookups and string
    /// comparisons at most.
    fn transport_socket_of(&self, host: &Host) -> Option<usize> {
        self.model
            .transport_socket_for(host.socket_match.as_deref())
    }

    /// Counts each host of `hosts` not in `old` in its socket's `total_match_count`:
    /// once per host, as Envoy counts when it creates a host.
    fn count_socket_matches(&self, hosts: &[Arc<Host>], old: &[Arc<Host>]) {
        for host in hosts {
            if old.iter().any(|o| Arc::ptr_eq(o, host)) {
                continue;
            }
            match self
                .transport_socket_of(host)
                .and_then(|i| self.socket_matches.get(i))
            {
                Some(m) => m.count.0.inc(),
                None => self.stats.default_match_count.inc(),
            }
        }
    }

    /// The secrets a control plane delivers for the cluster's TLS contexts (its
    /// `transport_socket` and `transport_socket_matches`): it warms until they are ready.
    pub fn secret_providers(&self) -> Vec<Arc<crate::tls::sds_xds::SecretProvider>> {
        let contexts = std::iter::once(&self.tls)
            .chain(self.socket_matches.iter().map(|m| &m.tls))
            .filter_map(|t| t.as_ref().and_then(|t| t.as_ref().ok()));
        let mut out: Vec<Arc<crate::tls::sds_xds::SecretProvider>> = Vec::new();
        for p in contexts.flat_map(|t| t.secret_providers().iter()) {
            if !out.iter().any(|o| Arc::ptr_eq(o, p)) {
                out.push(p.clone());
            }
        }
        out
    }

    /// `cluster.<stat_name>.*`
    pub fn stats(&self) -> &Arc<ClusterStats> {
        &self.stats
    }

    /// Name of the cluster.
    pub fn name(&self) -> &str {
        &self.model.name
    }

    /// Replaces the hosts (DNS re-resolution; the cluster's own assignment's factor).
    /// Readers keep the set they loaded.
    pub(crate) fn set_hosts(&self, localities: Vec<LocalityHosts>) {
        let factor = self.model.load_assignment.overprovisioning_factor;
        self.set_assigned_hosts(localities, factor);
    }

    /// Replaces the hosts with those of an assignment (EDS) whose overprovisioning factor
    /// is `overprovisioning_percent`.
    pub(crate) fn set_assigned_hosts(
        &self,
        localities: Vec<LocalityHosts>,
        overprovisioning_percent: u32,
    ) {
        let policy = LevelPolicy::of(&self.model, overprovisioning_percent);
        let new = Arc::new(HostSet::new(localities, policy));
        let old = self.host_set.swap(new.clone());
        match (&self.local_of, &self.zone) {
            // Rebuilds every registered cluster, this one included.
            (Some(local), _) => local.publish_local(&new),
            (None, Some(zone)) => zone.rebuild(&new, &self.stats.zone),
            (None, None) => {}
        }
        self.count_socket_matches(new.all(), old.all());
        update_membership(&self.stats, Some(&old), &new);
    }

    /// Rebuilds the zone-aware routing for the current hosts (the local cluster changed).
    pub(crate) fn rebuild_zone(&self) {
        if let Some(zone) = &self.zone {
            zone.rebuild(&self.host_set.load(), &self.stats.zone);
        }
    }

    /// Rebuilds the host set from the current hosts, e.g. after their health changed
    /// (health checking and outlier detection call this).
    pub fn refresh_health(&self) {
        let current = self.host_set.load();
        let localities = current.localities().to_vec();
        let factor = current.policy().overprovisioning_percent;
        drop(current);
        self.set_assigned_hosts(localities, u32::try_from(factor).unwrap_or(u32::MAX));
    }

    /// The TLS client side `host` connects with (`None`: plain text): its
    /// `transport_socket_matches` entry, else the cluster's `transport_socket`.
    pub(crate) fn tls_for(&self, host: &Host) -> Option<&BuiltTls> {
        match self.transport_socket_of(host) {
            Some(i) => self.socket_matches.get(i).and_then(|m| m.tls.as_ref()),
            None => self.tls.as_ref(),
        }
    }

    pub(crate) fn breakers(&self) -> &CircuitBreakers {
        &self.breakers
    }

    /// Current hosts per configured locality entry, as (priority, locality weight,
    /// hosts), for admin `/config_dump?include_eds` (config order).
    pub fn hosts_by_locality(&self) -> Vec<(u32, Option<u32>, Vec<Arc<Host>>)> {
        self.host_set
            .load()
            .localities()
            .iter()
            .map(|l| (l.priority, l.weight, l.hosts.clone()))
            .collect()
    }

    /// Current hosts with their counters, for admin /clusters (config order).
    pub fn hosts(&self) -> Vec<Arc<Host>> {
        self.host_set.load().all().to_vec()
    }

    /// Chooses a host with the cluster's lb_policy, zone-aware when configured (counting
    /// `lb_healthy_panic` when the choice was made in panic mode,
    /// `upstream_cx_none_healthy` when there is none).
    pub fn pick_host(&self) -> Result<Arc<Host>, UpstreamError> {
        let set = self.host_set.load();
        let level = set.choose_level();
        // Only a pick that lands on priority 0 is zone routed, also when a share of the
        // traffic spills over to lower priorities (as in Envoy).
        if let Some(zone) = self
            .zone
            .as_ref()
            .filter(|_| level.is_some_and(|l| l.zone_routable()))
        {
            match zone.pick(&set, self.model.lb_policy, &self.stats.zone) {
                ZonePick::Host(host) => return Ok(host),
                ZonePick::Fail => {
                    self.stats.upstream_cx_none_healthy.inc();
                    return Err(UpstreamError::NoHealthyUpstream);
                }
                ZonePick::NotRouted => {}
            }
        }
        // A set without any host counts as panicking, as in Envoy.
        let panic = level.is_none_or(|l| l.panic());
        let mut host = level.and_then(|l| l.pick(self.model.lb_policy));
        if panic {
            self.stats.lb_healthy_panic.inc();
            if self.fail_traffic_on_panic {
                host = None;
            }
        }
        match host {
            Some(h) => Ok(h.clone()),
            None => {
                self.stats.upstream_cx_none_healthy.inc();
                Err(UpstreamError::NoHealthyUpstream)
            }
        }
    }

    /// One more request in flight (`max_requests`); an overflow counts
    /// `upstream_rq_pending_overflow`, as Envoy charges it.
    pub(crate) fn request_slot(&self) -> Result<Slot, UpstreamError> {
        self.breakers.request().ok_or_else(|| {
            self.stats.upstream_rq_pending_overflow.inc();
            UpstreamError::Overflow
        })
    }

    /// One more request waiting for a new connection (`max_pending_requests`), counted
    /// in `upstream_rq_pending_total` / `_active` (or `_overflow`).
    pub(crate) fn pending_slot(&self) -> Result<PendingRequest, UpstreamError> {
        match self.breakers.pending() {
            Some(slot) => {
                self.stats.upstream_rq_pending_total.inc();
                self.stats.upstream_rq_pending_active.inc();
                Ok(PendingRequest {
                    _slot: slot,
                    stats: self.stats.clone(),
                })
            }
            None => {
                self.stats.upstream_rq_pending_overflow.inc();
                Err(UpstreamError::Overflow)
            }
        }
    }

    /// Picks a host and sends the request through this worker thread's connection pool
    /// for that host: HTTP/1.1 keep-alive reuse, or HTTP/2 multiplexing when the cluster
    /// speaks HTTP/2 (or `UseDownstream` and the downstream is HTTP/2). Upgrades always
    /// take a dedicated HTTP/1.1 connection. A response of any status is Ok;
    /// connection-level failures are [`UpstreamError`]s.
    pub async fn send_http(
        &self,
        req: http::Request<RequestBody>,
        opts: &SendOptions,
    ) -> Result<UpstreamResponse, UpstreamError> {
        self.send_http_noting(req, opts, &ConnFactsSlot::new())
            .await
    }

    /// [`Self::send_http`], noting in `facts` the connection the request went out on.
    pub async fn send_http_noting(
        &self,
        mut req: http::Request<RequestBody>,
        opts: &SendOptions,
        facts: &ConnFactsSlot,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let host = self.pick_host()?;
        if let Some(rewrite) = opts.auto_host_rewrite {
            if let Some(value) = host
                .hostname
                .as_deref()
                .filter(|name| !name.is_empty())
                .and_then(|name| http::HeaderValue::from_str(name).ok())
            {
                crate::http::headers::forwarding::rewrite_host(
                    req.headers_mut(),
                    value,
                    rewrite.keep_original,
                    rewrite.append_x_forwarded_host,
                );
            }
        }
        let http2 = !opts.upgrade
            && match self.model.protocol {
                UpstreamProtocol::Http1 => false,
                UpstreamProtocol::Http2 => true,
                UpstreamProtocol::UseDownstream => opts.downstream_http2,
            };
        let tls = self.tls_overrides(&req);
        let scheme = match opts.scheme {
            UpstreamScheme::Http => "http",
            UpstreamScheme::Https => "https",
            UpstreamScheme::MatchUpstream if self.tls_for(&host).is_some() => "https",
            UpstreamScheme::MatchUpstream => "http",
        };
        // Pinned in place, not copied into this future (see `http::stream::handle`).
        let response = std::pin::pin!(pool::send(
            self,
            &host,
            &tls,
            req,
            (http2, scheme),
            opts.upgrade,
            facts
        ))
        .await?;
        Ok(UpstreamResponse { response, host })
    }

    /// Its name when `alt_stat_name` renames it for `%UPSTREAM_CLUSTER%`
    /// (`%UPSTREAM_CLUSTER_RAW%` is otherwise the observability name itself).
    pub fn raw_name_if_renamed(&self) -> Option<Arc<str>> {
        self.model
            .alt_stat_name
            .is_some()
            .then(|| self.name.clone())
    }

    /// The TLS options `upstream_http_protocol_options` takes from `req`: its
    /// `override_auto_sni_header` when present and not empty, else its host, port
    /// dropped. An IP address is no SNI (the configured one stays), as in Envoy.
    fn tls_overrides(&self, req: &http::Request<RequestBody>) -> TlsOverrides {
        let auto = &self.model.auto_sni;
        if !self.any_tls || !(auto.sni || auto.san_validation) {
            return TlsOverrides::default();
        }
        let header = |name: &http::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        };
        let value = auto
            .override_header
            .as_ref()
            .and_then(header)
            .or_else(|| header(&http::header::HOST))
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        let Some(value) = value else {
            return TlsOverrides::default();
        };
        let host = authority_host(value);
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        let name: Arc<str> = Arc::from(host);
        TlsOverrides {
            sni: (auto.sni && !is_ip).then(|| name.clone()),
            verify_san: auto.san_validation.then_some(name),
        }
    }

    /// A raw connection to a picked host (tcp_proxy, CONNECT termination): TCP, or a
    /// Unix socket for a `pipe` host, honouring `connect_timeout` and
    /// `max_connections`. A bare stream carries no guard, so the connection stops
    /// counting in `cx_active` when this returns; callers that keep it open should use
    /// [`Self::connect_tcp_counted`].
    pub async fn connect_tcp(&self) -> Result<(UpstreamStream, Arc<Host>), UpstreamError> {
        let (stream, host, _open) = self.connect_tcp_counted().await?;
        Ok((stream, host))
    }

    /// Like [`Self::connect_tcp`], also returning the guard that keeps the connection
    /// counted in `cx_active` (cluster breaker and host) while it is held.
    pub async fn connect_tcp_counted(
        &self,
    ) -> Result<(UpstreamStream, Arc<Host>, ConnectionGuard), UpstreamError> {
        let host = self.pick_host()?;
        // Envoy's TCP pool counts a connection request as pending until it connects,
        // then as a request (`upstream_rq_total`).
        let pending = self.pending_slot()?;
        let no_overrides = TlsOverrides::default();
        let (stream, open) = connect::connect(self, &host, &no_overrides, connect::Protocol::Tcp)
            .await
            .inspect_err(|e| pending.failed(e))?;
        drop(pending);
        self.stats.upstream_rq_total.inc();
        Ok((stream, host, ConnectionGuard { _open: open }))
    }
}

/// The host part of an authority: the port dropped, an IPv6 literal's brackets too.
fn authority_host(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(authority, |(ip, _)| ip);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// A request waiting for a new connection: holds the `max_pending_requests` slot and
/// counts in `upstream_rq_pending_active` until dropped.
#[derive(Debug)]
pub(crate) struct PendingRequest {
    _slot: Slot,
    stats: Arc<ClusterStats>,
}

impl PendingRequest {
    /// The connection it waited for failed: `upstream_rq_pending_failure_eject`
    /// (a circuit-breaker overflow is not a failed connection).
    pub(crate) fn failed(&self, error: &UpstreamError) {
        if !matches!(error, UpstreamError::Overflow) {
            self.stats.upstream_rq_pending_failure_eject.inc();
        }
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        self.stats.upstream_rq_pending_active.dec();
    }
}

/// `membership_*` after the host set changed (config, DNS, health). Envoy counts a
/// `membership_change` when hosts are added or removed, not when only health changes.
fn update_membership(stats: &ClusterStats, old: Option<&HostSet>, new: &HostSet) {
    let hosts = new.all();
    let healthy = hosts.iter().filter(|h| h.is_healthy()).count();
    stats.membership_total.set(hosts.len() as u64);
    stats.membership_healthy.set(healthy as u64);
    stats.membership_degraded.set(0);
    let old_hosts = old.map(HostSet::all).unwrap_or_default();
    let same = old_hosts.len() == hosts.len()
        && old_hosts
            .iter()
            .zip(hosts)
            .all(|(a, b)| a.address == b.address);
    if !same {
        stats.membership_change.inc();
    }
}

/// Keeps one upstream connection counted (host `cx_active`, cluster `max_connections`)
/// until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    _open: super::host::OpenConnection,
}
