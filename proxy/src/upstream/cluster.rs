//! One upstream cluster at run time: its current host set (swapped whole when DNS
//! changes it), circuit breakers, and the entry points the HTTP connection manager and
//! tcp_proxy call (`send_http`, `connect_tcp`).

use std::sync::Arc;

use arc_swap::ArcSwap;
use baton_config::model::{self, UpstreamProtocol};
use tokio::net::TcpStream;

use super::circuit::CircuitBreakers;
use super::error::UpstreamError;
use super::host::Host;
use super::host_set::{HostSet, LocalityHosts};
use super::{connect, pool, RequestBody, SendOptions, UpstreamResponse};

/// A cluster: configuration, hosts and breakers. Shared by all workers; connection pools
/// live per worker thread (see `pool`).
#[derive(Debug)]
pub struct UpstreamCluster {
    /// The configuration it was built from.
    pub model: Arc<model::Cluster>,
    host_set: ArcSwap<HostSet>,
    breakers: CircuitBreakers,
}

impl UpstreamCluster {
    pub(crate) fn new(model: Arc<model::Cluster>, localities: Vec<LocalityHosts>) -> Self {
        let breakers = CircuitBreakers::new(&model.circuit_breakers);
        Self {
            model,
            host_set: ArcSwap::from_pointee(HostSet::new(localities)),
            breakers,
        }
    }

    /// Name of the cluster.
    pub fn name(&self) -> &str {
        &self.model.name
    }

    /// Replaces the hosts (DNS re-resolution). Readers keep the set they loaded.
    pub(crate) fn set_hosts(&self, localities: Vec<LocalityHosts>) {
        self.host_set.store(Arc::new(HostSet::new(localities)));
    }

    /// Rebuilds the host set from the current hosts, e.g. after their health changed
    /// (health checking and outlier detection call this).
    pub fn refresh_health(&self) {
        let localities = self.host_set.load().localities().to_vec();
        self.set_hosts(localities);
    }

    /// The current host set.
    pub(crate) fn host_set(&self) -> arc_swap::Guard<Arc<HostSet>> {
        self.host_set.load()
    }

    pub(crate) fn breakers(&self) -> &CircuitBreakers {
        &self.breakers
    }

    /// Current hosts with their counters, for admin /clusters (config order).
    pub fn hosts(&self) -> Vec<Arc<Host>> {
        self.host_set.load().all().to_vec()
    }

    /// Chooses a host with the cluster's lb_policy.
    pub fn pick_host(&self) -> Result<Arc<Host>, UpstreamError> {
        self.host_set
            .load()
            .pick(self.model.lb_policy)
            .cloned()
            .ok_or(UpstreamError::NoHealthyUpstream)
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
        let host = self.pick_host()?;
        let http2 = !opts.upgrade
            && match self.model.protocol {
                UpstreamProtocol::Http1 => false,
                UpstreamProtocol::Http2 => true,
                UpstreamProtocol::UseDownstream => opts.downstream_http2,
            };
        let response = pool::send(self, &host, req, http2, opts.upgrade).await?;
        Ok(UpstreamResponse { response, host })
    }

    /// A raw TCP connection to a picked host (tcp_proxy, CONNECT termination), honouring
    /// `connect_timeout` and `max_connections`. A bare `TcpStream` carries no guard, so
    /// the connection stops counting in `cx_active` when this returns; callers that
    /// keep it open should use [`Self::connect_tcp_counted`].
    pub async fn connect_tcp(&self) -> Result<(TcpStream, Arc<Host>), UpstreamError> {
        let (stream, host, _open) = self.connect_tcp_counted().await?;
        Ok((stream, host))
    }

    /// Like [`Self::connect_tcp`], also returning the guard that keeps the connection
    /// counted in `cx_active` (cluster breaker and host) while it is held.
    pub async fn connect_tcp_counted(
        &self,
    ) -> Result<(TcpStream, Arc<Host>, ConnectionGuard), UpstreamError> {
        let host = self.pick_host()?;
        let (stream, open) = connect::connect(self, &host).await?;
        Ok((stream, host, ConnectionGuard { _open: open }))
    }
}

/// Keeps one upstream connection counted (host `cx_active`, cluster `max_connections`)
/// until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    _open: super::host::OpenConnection,
}
