//! Subscribing: which stream carries a type. Every `ads: {}` source shares the one
//! `ads_config` stream (SotW or delta by its `api_type`); an `api_config_source` gets a
//! stream of its own per type on that type's service; a `path_config_source` or a
//! `file://` collection is a file (`file_source`).
//!
//! Each subscription also runs its `initial_fetch_timeout`: when neither a response
//! nor a file arrived in time, its init callback fires anyway (counting
//! `init_fetch_timeout`), so the server is not held forever, as in Envoy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_config::model::{
    ApiConfigSource, ConfigSource, ConfigSourceKind, Federation, XdsApiType,
};
use baton_proto::pb::envoy::config::core::v3::Node;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::file_source::{self, FileShape, FileSource};
use super::grpc::Service;
use super::inherit::{AcceptedState, Inherited};
use super::stats::SubscriptionStats;
use super::stream::{self, Command, InitOnce, StreamSettings, TypeSub};
use super::ResourceHandler;
use crate::upstream::ClusterManager;

/// Default bound on one discovery response (`max_receive_message_length` unset): large
/// enough for tens of thousands of clusters, small enough that a runaway control plane
/// cannot exhaust memory.
const DEFAULT_MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// What the client needs from the server.
#[derive(Clone)]
pub struct XdsSettings {
    /// Where control-plane clusters live.
    pub clusters: Arc<ClusterManager>,
    /// The node sent to control planes.
    pub node: Node,
    /// `dynamic_resources.ads_config`.
    pub ads: Option<ApiConfigSource>,
    /// The bootstrap's xDS-TP federation (`config_sources`, `default_config_source`).
    pub federation: Federation,
}

/// One subscription to one type.
pub struct Subscription {
    /// The type URL.
    pub type_url: &'static str,
    /// Names to subscribe to, changing over time; None for a wildcard (CDS, LDS).
    pub names: Option<watch::Receiver<Vec<String>>>,
    /// Applies the type's updates.
    pub handler: Arc<dyn ResourceHandler>,
    /// Its stats, when the type has subscription-level ones.
    pub stats: Option<SubscriptionStats>,
    /// Called once: first response (accepted or not) or fetch timeout.
    pub on_initialized: Box<dyn FnOnce() + Send>,
}

/// A subscription taken apart (its init callback wrapped to run once).
pub(super) struct Parts {
    pub(super) type_url: &'static str,
    pub(super) names: Option<watch::Receiver<Vec<String>>>,
    pub(super) handler: Arc<dyn ResourceHandler>,
    pub(super) stats: Option<SubscriptionStats>,
    pub(super) init: Arc<InitOnce>,
}

/// The server's xDS client: one per server, living on the main runtime.
pub struct XdsClient {
    settings: XdsSettings,
    streams: Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>,
    /// What this generation accepted (handed to a successor on hot restart).
    accepted: Arc<AcceptedState>,
    /// What the parent generation accepted (used only without a control plane).
    inherited: Mutex<Option<Arc<Inherited>>>,
}

impl XdsClient {
    /// A client with no subscription yet.
    pub fn new(settings: XdsSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            streams: Mutex::new(HashMap::new()),
            accepted: Arc::new(AcceptedState::default()),
            inherited: Mutex::new(None),
        })
    }

    /// The parent generation's resources, to fall back on while the control plane
    /// cannot be reached during initialisation.
    pub fn inherit(&self, inherited: Inherited) {
        *self.inherited.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(inherited));
    }

    /// Everything this generation accepted, encoded for a successor.
    pub fn accepted_state(&self) -> Option<Vec<u8>> {
        self.accepted.encode()
    }

    /// Subscribes through `source`.
    pub fn subscribe(&self, source: &ConfigSource, sub: Subscription) {
        let Subscription {
            type_url,
            names,
            handler,
            stats,
            on_initialized,
        } = sub;
        let init = InitOnce::new(on_initialized);
        let parts = Parts {
            type_url,
            names,
            handler,
            stats,
            init,
        };
        if super::federation::routes(&self.settings.federation, type_url, &parts.names) {
            let routed = super::federation::split(&self.settings.federation, parts);
            let fetch_timeout = source.initial_fetch_timeout;
            for (target, parts) in routed {
                match target {
                    super::federation::Target::Own => self.dispatch(source, parts),
                    super::federation::Target::Authority(index, authority) => self.on_stream(
                        &format!("xdstp-authority|{index}"),
                        &authority.api,
                        Service::Aggregated,
                        parts,
                        // The resource's own timeout, as Envoy's subscription keeps it.
                        fetch_timeout,
                    ),
                }
            }
            return;
        }
        self.dispatch(source, parts);
    }

    /// Subscribes `parts` through `source` itself.
    fn dispatch(&self, source: &ConfigSource, parts: Parts) {
        let type_url = parts.type_url;
        let init = parts.init.clone();
        if let (Some(timeout), ConfigSourceKind::Path { .. }) =
            (source.initial_fetch_timeout, &source.kind)
        {
            let stats = parts.stats.clone();
            let handler = parts.handler.clone();
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if init.fire() {
                    warn!(%type_url, ?timeout, "xDS initial fetch timed out; continuing without it");
                    if let Some(st) = stats {
                        st.fetch_timed_out();
                    }
                    handler.initial_fetch_failed();
                }
            });
        }
        let timeout = source.initial_fetch_timeout;
        match &source.kind {
            ConfigSourceKind::Ads => match &self.settings.ads {
                Some(ads) => self.on_stream("ads", ads, Service::Aggregated, parts, timeout),
                None => warn!(%type_url, "ads source without ads_config; not subscribed"),
            },
            ConfigSourceKind::Api(api) => {
                let key = format!("{}|{:?}|{}", api.cluster_name, api.api_type, type_url);
                self.on_stream(&key, api, Service::Single(type_url), parts, timeout);
            }
            ConfigSourceKind::Path {
                path,
                watched_directory,
            } => {
                tokio::spawn(file_source::watch_file(
                    FileSource {
                        path: path.clone(),
                        watched_directory: watched_directory.clone(),
                        shape: FileShape::DiscoveryResponse,
                    },
                    parts.handler,
                    parts.stats,
                    parts.init,
                ));
            }
            ConfigSourceKind::FileCollection { path } => {
                tokio::spawn(file_source::watch_file(
                    FileSource {
                        path: path.clone(),
                        watched_directory: None,
                        shape: FileShape::Collection,
                    },
                    parts.handler,
                    parts.stats,
                    parts.init,
                ));
            }
        }
    }

    fn on_stream(
        &self,
        key: &str,
        api: &ApiConfigSource,
        service: Service,
        sub: Parts,
        fetch_timeout: Option<Duration>,
    ) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let tx = streams
            .entry(key.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let settings = StreamSettings {
                    clusters: self.settings.clusters.clone(),
                    cluster_name: api.cluster_name.clone(),
                    service,
                    delta: api.api_type == XdsApiType::DeltaGrpc,
                    node: self.settings.node.clone(),
                    set_node_on_first_message_only: api.set_node_on_first_message_only,
                    max_message: Some(match api.max_receive_message_length {
                        Some(0) => usize::MAX,
                        Some(n) => n as usize,
                        None => DEFAULT_MAX_MESSAGE,
                    }),
                    rate_limit: api.rate_limit,
                };
                tokio::spawn(stream::run(settings, rx));
                tx
            })
            .clone();
        drop(streams);
        let names = sub.names.as_ref().map(|rx| rx.borrow().clone());
        let mut type_sub = TypeSub::new(sub.type_url, names, sub.handler, sub.stats, sub.init);
        type_sub.accepted = self.accepted.clone();
        type_sub.names_watch = sub.names.clone();
        type_sub.inherited = self
            .inherited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|i| i.take(sub.type_url));
        let _ = tx.send(Command::Add(Box::new(type_sub)));
        if let Some(timeout) = fetch_timeout {
            let tx = tx.clone();
            let type_url = sub.type_url;
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                let _ = tx.send(Command::FetchTimeout(type_url));
            });
        }
        if let Some(mut rx) = sub.names {
            let type_url = sub.type_url;
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let names = rx.borrow_and_update().clone();
                    if tx.send(Command::Names(type_url, names)).is_err() {
                        return;
                    }
                }
            });
        }
    }
}
