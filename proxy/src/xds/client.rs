//! Subscribing: which stream carries a type. Every `ads: {}` source shares the one
//! `ads_config` stream (SotW or delta by its `api_type`); an `api_config_source` gets a
//! stream of its own per type on that type's service; a `path_config_source` is a file
//! read at once and again whenever a file is moved over it (or, with `watched_directory`,
//! a move there changes what it resolves to); like Envoy, never on an in-place write.
//!
//! Each subscription also runs its `initial_fetch_timeout`: when neither a response
//! nor a file arrived in time, its init callback fires anyway (counting
//! `init_fetch_timeout`), so the server is not held forever, as in Envoy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use baton_config::model::{
    ApiConfigSource, ConfigSource, ConfigSourceKind, Federation, XdsApiType,
};
use baton_proto::pb::envoy::config::core::v3::Node;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::grpc::Service;
use super::inherit::{AcceptedState, Inherited};
use super::stats::SubscriptionStats;
use super::stream::{self, Command, InitOnce, StreamSettings, TypeSub};
use super::{Resource, ResourceHandler, Update};
use crate::upstream::ClusterManager;

/// Default bound on one discovery response (`max_receive_message_length` unset): large
/// enough for tens of thousands of clusters, small enough that a runaway control plane
/// cannot exhaust memory.
const DEFAULT_MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// How often a `path_config_source` file is checked for a change.
const FILE_POLL: Duration = Duration::from_millis(250);

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
                        st.init_fetch_timeout.inc();
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
                tokio::spawn(watch_file(
                    path.clone(),
                    watched_directory.clone(),
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

/// Identity of a directory entry: (device, inode, birth time). A file renamed over the
/// name changes it; writing into the file in place does not. The birth time tells a reused
/// inode apart.
type FileId = (u64, u64, Option<SystemTime>);

fn file_id(meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), meta.created().ok())
}

/// What a poll compares, to reload when Envoy does (it watches for moves only, never
/// for writes, so a half-written file is never read): the name `path` itself (a file
/// moved over it) and, with a `watched_directory`, what `path` resolves to (a symlink
/// swapped by a move in that directory, as Kubernetes updates a mounted ConfigMap).
/// None while `path` does not exist (Envoy ignores a deletion; the next move reloads).
fn watch_stamp(path: &Path, watched_directory: bool) -> Option<(FileId, Option<FileId>)> {
    let own = file_id(&std::fs::symlink_metadata(path).ok()?);
    let resolved = if watched_directory {
        std::fs::metadata(path).ok().map(|meta| file_id(&meta))
    } else {
        None
    };
    Some((own, resolved))
}

/// A `path_config_source`: applies the file now and whenever a file is moved over it
/// (or, with `watched_directory`, whenever what it resolves to changes).
async fn watch_file(
    path: PathBuf,
    watched_directory: Option<PathBuf>,
    handler: Arc<dyn ResourceHandler>,
    stats: Option<SubscriptionStats>,
    init: Arc<InitOnce>,
) {
    let watched = watched_directory.is_some();
    let mut last = None;
    let mut first = true;
    loop {
        let stamp = watch_stamp(&path, watched);
        if first || (stamp.is_some() && stamp != last) {
            first = false;
            last = stamp;
            if let Some(st) = &stats {
                st.update_attempt.inc();
            }
            match load_file(&path) {
                Ok(update) => {
                    let version = update.version_info.clone();
                    match handler.apply(update).await {
                        Ok(()) => {
                            info!(path = %path.display(), %version, "xDS file applied");
                            if let Some(st) = &stats {
                                st.accepted(&version);
                            }
                        }
                        Err(e) => {
                            warn!(path = %path.display(), error = %e, "xDS file rejected");
                            if let Some(st) = &stats {
                                st.update_rejected.inc();
                            }
                        }
                    }
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "xDS file unreadable");
                    if let Some(st) = &stats {
                        st.update_failure.inc();
                    }
                }
            }
            init.fire();
        }
        tokio::time::sleep(FILE_POLL).await;
    }
}

fn load_file(path: &Path) -> Result<Update, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let resp = baton_config::resource::parse_discovery_response(&text).map_err(|mut e| {
        e.file = Some(path.display().to_string());
        e.to_string()
    })?;
    let mut resources = Vec::with_capacity(resp.resources.len());
    for any in resp.resources {
        let name = baton_config::resource::resource_name(&any).map_err(|e| e.to_string())?;
        resources.push(Resource {
            name,
            version: resp.version_info.clone(),
            any: Arc::new(any),
        });
    }
    Ok(Update {
        version_info: resp.version_info,
        resources,
        removed: Vec::new(),
        state_of_the_world: true,
    })
}
