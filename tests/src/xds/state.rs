//! The control plane's shared state: one snapshot per type URL (what every stream should
//! converge to), the held types, and the log of every request received and response sent.
//! Streams read it under a short std mutex (never held across an await) and wake on the
//! `config` watch; waiters in tests wake on the `log` watch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use baton_proto::pb::envoy::config::core::v3::Node;
use baton_proto::pb::google::rpc::Status as RpcStatus;
use prost_types::Any;
use tokio::sync::watch;

/// One resource of a snapshot with its own version (for delta xDS).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedResource {
    /// The snapshot version in which this resource last changed.
    pub version: String,
    /// The encoded resource.
    pub any: Any,
}

/// The resources of one type the control plane currently serves.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `version_info` of SotW responses and `system_version_info` of delta responses.
    pub version: String,
    /// Resources with their names, in the order given to `set` (duplicates kept, so a
    /// test can send a response that names a resource twice).
    pub resources: Vec<(String, VersionedResource)>,
}

/// Which gRPC service a stream came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `AggregatedDiscoveryService` (ADS).
    Ads,
    /// `ClusterDiscoveryService`.
    Cds,
    /// `EndpointDiscoveryService`.
    Eds,
    /// `ListenerDiscoveryService`.
    Lds,
    /// `RouteDiscoveryService`.
    Rds,
    /// `SecretDiscoveryService`.
    Sds,
}

/// A DiscoveryRequest or DeltaDiscoveryRequest as received, flattened into one shape.
/// (`Debug` shows the node by id only: Envoy's node lists hundreds of extensions.)
#[derive(Clone)]
pub struct LoggedRequest {
    /// Index in the request log.
    pub index: usize,
    /// Id of the stream (unique for the control plane's lifetime, across restarts).
    pub stream: u64,
    /// The service the stream belongs to.
    pub service: Service,
    /// True for DeltaDiscoveryRequest.
    pub delta: bool,
    /// `node` (Envoy sends it on the first request of a stream, or on every request).
    pub node: Option<Node>,
    /// `type_url`.
    pub type_url: String,
    /// SotW `version_info` (empty for delta).
    pub version_info: String,
    /// `response_nonce`.
    pub response_nonce: String,
    /// SotW `resource_names`.
    pub resource_names: Vec<String>,
    /// Delta `resource_names_subscribe`.
    pub subscribe: Vec<String>,
    /// Delta `resource_names_unsubscribe`.
    pub unsubscribe: Vec<String>,
    /// Delta `initial_resource_versions`.
    pub initial_resource_versions: BTreeMap<String, String>,
    /// `error_detail` (set on a NACK).
    pub error_detail: Option<RpcStatus>,
    /// When the control plane received it (for `xds-scale`'s response-to-ACK times).
    pub at: Instant,
}

impl std::fmt::Debug for LoggedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedRequest")
            .field("index", &self.index)
            .field("stream", &self.stream)
            .field("service", &self.service)
            .field("delta", &self.delta)
            .field("node_id", &self.node.as_ref().map(|n| n.id.as_str()))
            .field("type_url", &self.type_url)
            .field("version_info", &self.version_info)
            .field("response_nonce", &self.response_nonce)
            .field("resource_names", &self.resource_names)
            .field("subscribe", &self.subscribe)
            .field("unsubscribe", &self.unsubscribe)
            .field("initial_resource_versions", &self.initial_resource_versions)
            .field("error_detail", &self.error_detail)
            .finish()
    }
}

impl LoggedRequest {
    /// True for a NACK (the request carries `error_detail`).
    pub fn is_nack(&self) -> bool {
        self.error_detail.is_some()
    }

    /// The NACK's error message, or "" for an ACK or first request.
    pub fn error_message(&self) -> &str {
        self.error_detail
            .as_ref()
            .map_or("", |s| s.message.as_str())
    }
}

/// A DiscoveryResponse or DeltaDiscoveryResponse as sent.
#[derive(Debug, Clone)]
pub struct LoggedResponse {
    /// Id of the stream it went out on.
    pub stream: u64,
    /// True for DeltaDiscoveryResponse.
    pub delta: bool,
    /// `type_url`.
    pub type_url: String,
    /// `version_info` (SotW) or `system_version_info` (delta).
    pub version: String,
    /// `nonce`.
    pub nonce: String,
    /// Names of the resources sent, each with its per-resource version (the snapshot
    /// version for SotW).
    pub resources: Vec<(String, String)>,
    /// Delta `removed_resources`.
    pub removed: Vec<String>,
    /// When it was queued on the stream (it goes out as soon as the stream is polled).
    pub at: Instant,
}

/// Everything behind the mutex.
#[derive(Debug, Default)]
pub struct Inner {
    /// Current snapshot per type URL.
    pub snapshots: HashMap<String, Snapshot>,
    /// Types whose responses are withheld until released.
    pub held: HashSet<String>,
    /// Types sent whole to every stream, whatever it subscribed to.
    pub unfiltered: HashSet<String>,
    /// Per type, how many times [`crate::xds::ControlPlane::resend`] was called: a stream
    /// that has seen fewer re-sends the whole subscribed set once.
    pub resends: HashMap<String, u64>,
    /// Every request received, in order.
    pub requests: Vec<LoggedRequest>,
    /// Every response sent, in order.
    pub responses: Vec<LoggedResponse>,
    /// Streams currently open.
    pub open_streams: usize,
    /// Streams opened so far (stream ids).
    pub streams_opened: u64,
    /// Nonces handed out so far.
    pub nonces: u64,
    /// The `:authority` of every gRPC request (stream) received, in order.
    pub authorities: Vec<String>,
}

/// State shared by the control plane handle and every stream.
#[derive(Debug)]
pub struct Shared {
    inner: Mutex<Inner>,
    /// Bumped when a snapshot or a hold changes: streams re-evaluate what to send.
    pub config: watch::Sender<u64>,
    /// Bumped when a request or response is logged or a stream opens or closes.
    pub log: watch::Sender<u64>,
}

impl Shared {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            config: watch::Sender::new(0),
            log: watch::Sender::new(0),
        }
    }

    /// Locks the state. A panic while locked (a test assertion in a stream cannot happen:
    /// streams do not assert) would poison it; the data stays usable, so poison is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every stream to re-evaluate its subscriptions.
    pub fn config_changed(&self) {
        self.config.send_modify(|n| *n += 1);
    }

    /// Wakes every test waiting on the log.
    pub fn log_changed(&self) {
        self.log.send_modify(|n| *n += 1);
    }

    /// Appends a request to the log.
    pub fn log_request(&self, mut request: LoggedRequest) {
        {
            let mut inner = self.lock();
            request.index = inner.requests.len();
            inner.requests.push(request);
        }
        self.log_changed();
    }

    /// Opens a stream: returns its id and a guard that closes it when dropped.
    pub fn open_stream(self: &std::sync::Arc<Self>) -> StreamGuard {
        let id = {
            let mut inner = self.lock();
            inner.open_streams += 1;
            inner.streams_opened += 1;
            inner.streams_opened
        };
        self.log_changed();
        StreamGuard {
            id,
            shared: std::sync::Arc::clone(self),
        }
    }
}

impl Inner {
    /// The re-send generation of `type_url`.
    pub fn resend_generation(&self, type_url: &str) -> u64 {
        self.resends.get(type_url).copied().unwrap_or(0)
    }

    /// A fresh nonce, unique for the control plane's lifetime.
    pub fn next_nonce(&mut self) -> String {
        self.nonces += 1;
        format!("n{}", self.nonces)
    }
}

/// Counts a stream as open for as long as it lives.
#[derive(Debug)]
pub struct StreamGuard {
    /// The stream's id.
    pub id: u64,
    shared: std::sync::Arc<Shared>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared.lock().open_streams -= 1;
        self.shared.log_changed();
    }
}
