//! A test xDS control plane: a tonic server for ADS (state of the world and delta) and the
//! per-type CDS/EDS/LDS/RDS/SDS services, on 127.0.0.1 (port 0 or a given port, plain or
//! TLS) or a Unix socket, that can be stopped and restarted on the same address.
//!
//! Tests [`ControlPlane::set`] a snapshot per type URL; every subscribed stream gets it
//! (SotW: the whole filtered set; delta: what changed, with per-resource versions, and
//! what was removed). [`ControlPlane::hold`] withholds a type's responses until
//! [`ControlPlane::release`]. Every request and response is logged, and the `wait_for_*`
//! helpers wait (bounded) for a request or response matching a predicate.

pub mod resources;
mod server;
mod state;
mod stream;
pub use stream::CONTROL_PLANE_IDENTIFIER;
#[cfg(test)]
mod tests;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use prost_types::Any;
use tokio::sync::watch;

pub use resources::{
    short_type, ALL_TYPES, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE,
};
pub use state::{LoggedRequest, LoggedResponse, Service, Snapshot, VersionedResource};
pub use tls::{Handshake, ServingTls};

use server::Listener;
use state::{Inner, Shared};
use stream::StreamContext;

/// Where the control plane listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// One run of the server (between start and stop).
#[derive(Debug)]
struct Run {
    stopped: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The test control plane. Stops (closing every connection) when dropped.
#[derive(Debug)]
pub struct ControlPlane {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    /// TLS over the TCP endpoint, when started with [`ControlPlane::start_tls`].
    tls: Option<Arc<ServingTls>>,
    run: Option<Run>,
}

impl ControlPlane {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(0).await
    }

    /// Starts on 127.0.0.1:`port` (0 = a free port).
    pub async fn start_on(port: u16) -> anyhow::Result<Self> {
        Self::start_at(Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], port)))).await
    }

    /// Starts on a Unix socket at `path` (Envoy's `pipe` address).
    pub async fn start_unix(path: &Path) -> anyhow::Result<Self> {
        Self::start_at(Endpoint::Unix(path.to_path_buf())).await
    }

    /// Starts on 127.0.0.1 with a free port, serving TLS with `config` (see
    /// [`crate::tls::server_config`]); [`ControlPlane::tls`] swaps it and tells what each
    /// handshake negotiated.
    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> anyhow::Result<Self> {
        Self::start_with(
            Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            Some(ServingTls::new(config)),
        )
        .await
    }

    async fn start_at(endpoint: Endpoint) -> anyhow::Result<Self> {
        Self::start_with(endpoint, None).await
    }

    async fn start_with(endpoint: Endpoint, tls: Option<Arc<ServingTls>>) -> anyhow::Result<Self> {
        let mut control_plane = Self {
            shared: Arc::new(Shared::new()),
            endpoint,
            tls,
            run: None,
        };
        control_plane.restart().await?;
        Ok(control_plane)
    }

    /// The TCP address (with the bound port). For a Unix-socket control plane this is
    /// 127.0.0.1:0; use [`ControlPlane::endpoint`].
    pub fn addr(&self) -> SocketAddr {
        match &self.endpoint {
            Endpoint::Tcp(addr) => *addr,
            Endpoint::Unix(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// Where the control plane listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The TLS side (started with [`ControlPlane::start_tls`]).
    pub fn tls(&self) -> Option<&Arc<ServingTls>> {
        self.tls.as_ref()
    }

    /// Stops serving: the listener closes and every connection is dropped (as when a
    /// control plane crashes). Snapshots, holds and the log are kept for a restart.
    pub async fn stop(&mut self) {
        if let Some(run) = self.run.take() {
            let _ = run.stopped.send(true);
            run.task.abort();
            let _ = run.task.await;
        }
    }

    /// (Re)starts serving on the same address; a no-op while running. Streams opened after
    /// this start fresh (nothing sent yet) against the kept snapshots.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.run.is_some() {
            return Ok(());
        }
        let listener = match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let tcp = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("control plane binding {addr}"))?;
                self.endpoint = Endpoint::Tcp(tcp.local_addr()?);
                match &self.tls {
                    Some(tls) => Listener::Tls(tcp, tls.clone()),
                    None => Listener::Tcp(tcp),
                }
            }
            Endpoint::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let unix = tokio::net::UnixListener::bind(path)
                    .with_context(|| format!("control plane binding {}", path.display()))?;
                Listener::Unix(unix, path.clone())
            }
        };
        let (stopped, stopped_rx) = watch::channel(false);
        let ctx = StreamContext {
            shared: Arc::clone(&self.shared),
            stopped: stopped_rx,
        };
        let task = server::serve(listener, ctx);
        self.run = Some(Run { stopped, task });
        Ok(())
    }

    /// Replaces the snapshot of `type_url` with `resources` at `version` and pushes it to
    /// every stream subscribed to the type. A resource keeps its per-resource version (delta)
    /// when its bytes are unchanged; otherwise its version becomes `version`.
    pub fn set(&self, type_url: &str, version: &str, resources: Vec<Any>) -> anyhow::Result<()> {
        let mut named = Vec::with_capacity(resources.len());
        for any in resources {
            named.push((resources::resource_name(&any)?, any));
        }
        {
            let mut inner = self.shared.lock();
            let previous = inner.snapshots.get(type_url);
            let resources = named
                .into_iter()
                .map(|(name, any)| {
                    let unchanged = previous.and_then(|snapshot| {
                        snapshot
                            .resources
                            .iter()
                            .find(|(n, r)| *n == name && r.any == any)
                            .map(|(_, r)| r.version.clone())
                    });
                    let resource = VersionedResource {
                        version: unchanged.unwrap_or_else(|| version.to_string()),
                        any,
                    };
                    (name, resource)
                })
                .collect();
            inner.snapshots.insert(
                type_url.to_string(),
                Snapshot {
                    version: version.to_string(),
                    resources,
                },
            );
        }
        self.shared.config_changed();
        Ok(())
    }

    /// Sends every stream the whole subscribed set of `type_url` again, unchanged (what
    /// control planes do with EDS after a CDS update, so that modified EDS clusters can
    /// finish warming: Envoy's delta client does not ask again by itself).
    pub fn resend(&self, type_url: &str) {
        *self
            .shared
            .lock()
            .resends
            .entry(type_url.to_string())
            .or_default() += 1;
        self.shared.config_changed();
    }

    /// The current snapshot of `type_url`, if any.
    pub fn snapshot(&self, type_url: &str) -> Option<Snapshot> {
        self.shared.lock().snapshots.get(type_url).cloned()
    }

    /// Withholds responses of `type_url` (requests are still logged) until
    /// [`ControlPlane::release`].
    pub fn hold(&self, type_url: &str) {
        self.shared.lock().held.insert(type_url.to_string());
        self.shared.config_changed();
    }

    /// Sends every resource of `type_url` to every stream, whatever it subscribed to
    /// (to see which names a client keeps).
    pub fn send_unsubscribed(&self, type_url: &str) {
        self.shared.lock().unfiltered.insert(type_url.to_string());
        self.shared.config_changed();
    }

    /// Lets responses of `type_url` go out again; streams get what they lack at once.
    pub fn release(&self, type_url: &str) {
        self.shared.lock().held.remove(type_url);
        self.shared.config_changed();
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every response sent so far, in order.
    pub fn responses(&self) -> Vec<LoggedResponse> {
        self.shared.lock().responses.clone()
    }

    /// The `:authority` of every stream opened so far, in order.
    pub fn authorities(&self) -> Vec<String> {
        self.shared.lock().authorities.clone()
    }

    /// Number of streams currently open.
    pub fn streams(&self) -> usize {
        self.shared.lock().open_streams
    }

    /// Waits (bounded) until `check` finds something in the state.
    async fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Inner) -> Option<T>,
    ) -> anyhow::Result<T> {
        let mut log = self.shared.log.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            log.borrow_and_update();
            if let Some(found) = check(&self.shared.lock()) {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, log.changed())
                .await
                .is_err()
            {
                let inner = self.shared.lock();
                bail!(
                    "control plane: no {what} within {timeout:?}; requests:\n{}\nresponses:\n{}",
                    describe_requests(&inner.requests),
                    describe_responses(&inner.responses),
                );
            }
        }
    }

    /// Waits (bounded) for the first logged request (old or new) matching `pred`.
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&LoggedRequest) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<LoggedRequest> {
        self.wait_until(timeout, "matching request", |inner| {
            inner.requests.iter().find(|r| pred(r)).cloned()
        })
        .await
    }

    /// Waits (bounded) for the first logged response (old or new) matching `pred`.
    pub async fn wait_for_response(
        &self,
        pred: impl Fn(&LoggedResponse) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<LoggedResponse> {
        self.wait_until(timeout, "matching response", |inner| {
            inner.responses.iter().find(|r| pred(r)).cloned()
        })
        .await
    }

    /// Waits (bounded) until a response of `type_url` at `version` was sent and the client
    /// answered its nonce; returns (response, the answering request). The request may be an
    /// ACK or a NACK: check [`LoggedRequest::is_nack`].
    pub async fn wait_for_answer(
        &self,
        type_url: &str,
        version: &str,
        timeout: Duration,
    ) -> anyhow::Result<(LoggedResponse, LoggedRequest)> {
        let what = format!("answer to {} version {version}", short_type(type_url));
        self.wait_until(timeout, &what, |inner| {
            inner
                .responses
                .iter()
                .filter(|r| r.type_url == type_url && r.version == version)
                .find_map(|response| {
                    inner
                        .requests
                        .iter()
                        .find(|r| r.stream == response.stream && r.response_nonce == response.nonce)
                        .map(|request| (response.clone(), request.clone()))
                })
        })
        .await
    }

    /// Waits (bounded) until a response of `type_url` at `version` was ACKed; fails if it
    /// was NACKed.
    pub async fn wait_for_ack(
        &self,
        type_url: &str,
        version: &str,
        timeout: Duration,
    ) -> anyhow::Result<LoggedRequest> {
        let (_, answer) = self.wait_for_answer(type_url, version, timeout).await?;
        if answer.is_nack() {
            bail!(
                "{} version {version} was NACKed: {}",
                short_type(type_url),
                answer.error_message()
            );
        }
        Ok(answer)
    }

    /// Waits (bounded) until at least `count` streams are open.
    pub async fn wait_for_streams(&self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        let what = format!("{count} open streams");
        self.wait_until(timeout, &what, |inner| {
            (inner.open_streams >= count).then_some(())
        })
        .await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            let _ = run.stopped.send(true);
            run.task.abort();
        }
    }
}

/// One line per request, for failure messages.
pub fn describe_requests(requests: &[LoggedRequest]) -> String {
    requests
        .iter()
        .map(|r| {
            format!(
                "  #{} stream {} {:?}{} {} version={:?} nonce={:?} names={:?} sub={:?} unsub={:?} initial={:?} node={} error={:?}",
                r.index,
                r.stream,
                r.service,
                if r.delta { " delta" } else { "" },
                short_type(&r.type_url),
                r.version_info,
                r.response_nonce,
                r.resource_names,
                r.subscribe,
                r.unsubscribe,
                r.initial_resource_versions,
                r.node.as_ref().map_or("-", |n| n.id.as_str()),
                r.error_message(),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line per response, for failure messages.
pub fn describe_responses(responses: &[LoggedResponse]) -> String {
    responses
        .iter()
        .map(|r| {
            format!(
                "  stream {}{} {} version={:?} nonce={:?} resources={:?} removed={:?}",
                r.stream,
                if r.delta { " delta" } else { "" },
                short_type(&r.type_url),
                r.version,
                r.nonce,
                r.resources,
                r.removed,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
