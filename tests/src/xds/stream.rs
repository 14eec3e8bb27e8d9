//! One xDS stream, state of the world or delta, as a response stream driven by the
//! requests it receives and by snapshot changes: every request is logged, subscriptions
//! are tracked per type URL, and a response goes out whenever what the client should have
//! (the snapshot filtered by its subscription) differs from what was last sent on this
//! stream, unless the type is held.
//!
//! SotW: `resource_names` replaces the subscription; an empty list is a wildcard for CDS
//! and LDS, `*` is a wildcard for any type. A response carries every subscribed resource
//! at the snapshot's version. Delta: subscribe / unsubscribe edit the subscription (the
//! first CDS or LDS request with no names is a wildcard), `initial_resource_versions`
//! seeds what the client has, and a response carries only resources whose per-resource
//! version differs from the client's, plus `removed_resources` for names it has that the
//! snapshot no longer holds. The first request of a type is always answered (possibly
//! empty), so the client's initial fetch completes.
//!
//! A SotW request that repeats the nonce of a response already answered is a re-request
//! (Envoy sends one when a modified EDS cluster starts warming: same names, version and
//! nonce) and gets the current set again, as go-control-plane does; delta clients send
//! nothing then, so a test pushes the assignment again with `ControlPlane::resend`.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use baton_proto::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use futures_util::Stream;
use tokio::sync::watch;
use tonic::{Status, Streaming};

use super::resources::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};
use super::state::{LoggedRequest, LoggedResponse, Service, Shared, StreamGuard};

/// What every response says of the control plane (`control_plane.identifier` in the
/// proxy's stats).
pub const CONTROL_PLANE_IDENTIFIER: &str = "baton-test-control-plane";

fn control_plane() -> baton_proto::pb::envoy::config::core::v3::ControlPlane {
    baton_proto::pb::envoy::config::core::v3::ControlPlane {
        identifier: CONTROL_PLANE_IDENTIFIER.to_string(),
    }
}

/// A boxed response stream, as the tonic service traits want it.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The type a non-aggregated service serves (used when a request leaves `type_url` empty).
fn service_type(service: Service) -> &'static str {
    match service {
        Service::Ads => "",
        Service::Cds => CLUSTER_TYPE,
        Service::Eds => ENDPOINT_TYPE,
        Service::Lds => LISTENER_TYPE,
        Service::Rds => ROUTE_TYPE,
        Service::Sds => SECRET_TYPE,
    }
}

/// CDS and LDS treat an empty subscription as "everything" (legacy wildcard).
fn is_wildcard_type(type_url: &str) -> bool {
    type_url == CLUSTER_TYPE || type_url == LISTENER_TYPE
}

/// Whether `name` is subscribed by `names`: named exactly, or a member of a subscribed
/// xDS-TP glob collection (`xdstp://authority/type/path/*` holds every
/// `xdstp://authority/type/path/<id>` whose `<id>` has no further `/`). As Envoy's
/// watch map matches them, context parameters (`?k=v&...`) must be the collection's,
/// in any order.
fn is_subscribed(names: &BTreeSet<String>, name: &str) -> bool {
    if names.contains(name) {
        return true;
    }
    if !name.starts_with("xdstp://") {
        return false;
    }
    let (path, params) = split_context_params(name);
    match path.rsplit_once('/') {
        Some((parent, id)) if !id.is_empty() => {
            let glob = format!("{parent}/*");
            names.iter().any(|subscribed| {
                let (sub_path, sub_params) = split_context_params(subscribed);
                sub_path == glob && sub_params == params
            })
        }
        _ => false,
    }
}

/// An `xdstp://` name's path and its sorted context parameters.
fn split_context_params(name: &str) -> (&str, Vec<&str>) {
    match name.split_once('?') {
        Some((path, query)) => {
            let mut params: Vec<&str> = query.split('&').collect();
            params.sort_unstable();
            (path, params)
        }
        None => (name, Vec::new()),
    }
}

/// What drives every stream: the shared state, its config watch, and the server's stop
/// signal (set when the control plane stops, so streams end with the connections).
#[derive(Debug, Clone)]
pub struct StreamContext {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// True once the server run this stream belongs to is stopped.
    pub stopped: watch::Receiver<bool>,
}

/// What a stream is woken by.
enum Wake<T> {
    Request(T),
    ConfigChanged,
    End,
}

/// Waits for the next request, snapshot change or stop.
async fn wake<T>(
    inbound: &mut Streaming<T>,
    config: &mut watch::Receiver<u64>,
    stopped: &mut watch::Receiver<bool>,
) -> Wake<T> {
    tokio::select! {
        message = inbound.message() => match message {
            Ok(Some(request)) => Wake::Request(request),
            Ok(None) | Err(_) => Wake::End,
        },
        changed = config.changed() => match changed {
            Ok(()) => Wake::ConfigChanged,
            Err(_) => Wake::End,
        },
        _ = stopped.wait_for(|stopped| *stopped) => Wake::End,
    }
}

/// Subscription of one type on a SotW stream.
#[derive(Debug, Default)]
struct SotwSubscription {
    wildcard: bool,
    names: BTreeSet<String>,
    /// (version, wildcard, names) of the last response sent for this type.
    sent: Option<(String, bool, BTreeSet<String>)>,
    /// Nonce of the last response sent, and whether a request already answered it.
    last_nonce: String,
    last_answered: bool,
    /// Re-send generation of the type this subscription has caught up with.
    resend_seen: u64,
}

/// A state-of-the-world stream.
struct SotwStream {
    guard: StreamGuard,
    ctx: StreamContext,
    service: Service,
    inbound: Streaming<DiscoveryRequest>,
    config: watch::Receiver<u64>,
    /// Subscriptions in the order the client first asked for each type.
    subscriptions: Vec<(String, SotwSubscription)>,
    queue: VecDeque<DiscoveryResponse>,
}

/// The response stream of a SotW stream (ADS or one of the per-type services).
pub fn sotw(
    ctx: StreamContext,
    service: Service,
    inbound: Streaming<DiscoveryRequest>,
) -> ResponseStream<DiscoveryResponse> {
    let stream = SotwStream {
        guard: ctx.shared.open_stream(),
        config: ctx.shared.config.subscribe(),
        ctx,
        service,
        inbound,
        subscriptions: Vec::new(),
        queue: VecDeque::new(),
    };
    Box::pin(futures_util::stream::unfold(
        stream,
        |mut stream| async move { stream.next().await.map(|response| (Ok(response), stream)) },
    ))
}

impl SotwStream {
    async fn next(&mut self) -> Option<DiscoveryResponse> {
        loop {
            if let Some(response) = self.queue.pop_front() {
                return Some(response);
            }
            let mut stopped = self.ctx.stopped.clone();
            match wake(&mut self.inbound, &mut self.config, &mut stopped).await {
                Wake::Request(request) => self.on_request(request),
                Wake::ConfigChanged => {
                    for index in 0..self.subscriptions.len() {
                        self.evaluate(index);
                    }
                }
                Wake::End => return None,
            }
        }
    }

    fn on_request(&mut self, request: DiscoveryRequest) {
        let type_url = if request.type_url.is_empty() {
            service_type(self.service).to_string()
        } else {
            request.type_url.clone()
        };
        self.ctx.shared.log_request(LoggedRequest {
            index: 0,
            stream: self.guard.id,
            service: self.service,
            delta: false,
            node: request.node,
            type_url: type_url.clone(),
            version_info: request.version_info,
            response_nonce: request.response_nonce.clone(),
            resource_names: request.resource_names.clone(),
            subscribe: Vec::new(),
            unsubscribe: Vec::new(),
            initial_resource_versions: BTreeMap::new(),
            error_detail: request.error_detail,
            at: Instant::now(),
        });
        let index = match self.subscriptions.iter().position(|(t, _)| *t == type_url) {
            Some(index) => index,
            None => {
                let subscription = SotwSubscription {
                    resend_seen: self.ctx.shared.lock().resend_generation(&type_url),
                    ..Default::default()
                };
                self.subscriptions.push((type_url.clone(), subscription));
                self.subscriptions.len() - 1
            }
        };
        let subscription = &mut self.subscriptions[index].1;
        if !request.response_nonce.is_empty() && request.response_nonce == subscription.last_nonce {
            if subscription.last_answered {
                subscription.sent = None;
            }
            subscription.last_answered = true;
        }
        let names = request.resource_names;
        subscription.wildcard =
            names.iter().any(|n| n == "*") || (names.is_empty() && is_wildcard_type(&type_url));
        subscription.names = names.into_iter().filter(|n| n != "*").collect();
        self.evaluate(index);
    }

    /// Queues a response for subscription `index` if the client should get one.
    fn evaluate(&mut self, index: usize) {
        let (type_url, subscription) = &mut self.subscriptions[index];
        {
            let mut inner = self.ctx.shared.lock();
            if inner.held.contains(type_url.as_str()) {
                return;
            }
            let generation = inner.resend_generation(type_url);
            if generation != subscription.resend_seen {
                subscription.resend_seen = generation;
                subscription.sent = None;
            }
            let unfiltered = inner.unfiltered.contains(type_url.as_str());
            let Some(snapshot) = inner.snapshots.get(type_url.as_str()) else {
                return;
            };
            let target = (
                snapshot.version.clone(),
                subscription.wildcard,
                subscription.names.clone(),
            );
            if subscription.sent.as_ref() == Some(&target) {
                return;
            }
            let selected: Vec<_> = snapshot
                .resources
                .iter()
                .filter(|(name, _)| {
                    subscription.wildcard || unfiltered || is_subscribed(&subscription.names, name)
                })
                .map(|(name, resource)| (name.clone(), resource.any.clone()))
                .collect();
            let version = snapshot.version.clone();
            let nonce = inner.next_nonce();
            inner.responses.push(LoggedResponse {
                stream: self.guard.id,
                delta: false,
                type_url: type_url.clone(),
                version: version.clone(),
                nonce: nonce.clone(),
                resources: selected
                    .iter()
                    .map(|(name, _)| (name.clone(), version.clone()))
                    .collect(),
                removed: Vec::new(),
                at: Instant::now(),
            });
            subscription.last_nonce = nonce.clone();
            self.queue.push_back(DiscoveryResponse {
                version_info: version,
                resources: selected.into_iter().map(|(_, any)| any).collect(),
                type_url: type_url.clone(),
                nonce,
                control_plane: Some(control_plane()),
                ..Default::default()
            });
            subscription.sent = Some(target);
            subscription.last_answered = false;
        }
        self.ctx.shared.log_changed();
    }
}

/// Subscription of one type on a delta stream.
#[derive(Debug, Default)]
struct DeltaSubscription {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Resource name -> version the client has (sent on this stream, or declared in
    /// `initial_resource_versions`).
    known: BTreeMap<String, String>,
    answered: bool,
    /// Re-send generation of the type this subscription has caught up with.
    resend_seen: u64,
}

/// A delta (incremental) stream.
struct DeltaStream {
    guard: StreamGuard,
    ctx: StreamContext,
    service: Service,
    inbound: Streaming<DeltaDiscoveryRequest>,
    config: watch::Receiver<u64>,
    subscriptions: Vec<(String, DeltaSubscription)>,
    queue: VecDeque<DeltaDiscoveryResponse>,
}

/// The response stream of a delta stream (ADS or one of the per-type services).
pub fn delta(
    ctx: StreamContext,
    service: Service,
    inbound: Streaming<DeltaDiscoveryRequest>,
) -> ResponseStream<DeltaDiscoveryResponse> {
    let stream = DeltaStream {
        guard: ctx.shared.open_stream(),
        config: ctx.shared.config.subscribe(),
        ctx,
        service,
        inbound,
        subscriptions: Vec::new(),
        queue: VecDeque::new(),
    };
    Box::pin(futures_util::stream::unfold(
        stream,
        |mut stream| async move { stream.next().await.map(|response| (Ok(response), stream)) },
    ))
}

impl DeltaStream {
    async fn next(&mut self) -> Option<DeltaDiscoveryResponse> {
        loop {
            if let Some(response) = self.queue.pop_front() {
                return Some(response);
            }
            let mut stopped = self.ctx.stopped.clone();
            match wake(&mut self.inbound, &mut self.config, &mut stopped).await {
                Wake::Request(request) => self.on_request(request),
                Wake::ConfigChanged => {
                    for index in 0..self.subscriptions.len() {
                        self.evaluate(index);
                    }
                }
                Wake::End => return None,
            }
        }
    }

    fn on_request(&mut self, request: DeltaDiscoveryRequest) {
        let type_url = if request.type_url.is_empty() {
            service_type(self.service).to_string()
        } else {
            request.type_url.clone()
        };
        self.ctx.shared.log_request(LoggedRequest {
            index: 0,
            stream: self.guard.id,
            service: self.service,
            delta: true,
            node: request.node,
            type_url: type_url.clone(),
            version_info: String::new(),
            response_nonce: request.response_nonce,
            resource_names: Vec::new(),
            subscribe: request.resource_names_subscribe.clone(),
            unsubscribe: request.resource_names_unsubscribe.clone(),
            initial_resource_versions: request
                .initial_resource_versions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            error_detail: request.error_detail,
            at: Instant::now(),
        });
        let index = match self.subscriptions.iter().position(|(t, _)| *t == type_url) {
            Some(index) => index,
            None => {
                let subscription = DeltaSubscription {
                    wildcard: request.resource_names_subscribe.is_empty()
                        && is_wildcard_type(&type_url),
                    known: request.initial_resource_versions.into_iter().collect(),
                    resend_seen: self.ctx.shared.lock().resend_generation(&type_url),
                    ..Default::default()
                };
                self.subscriptions.push((type_url, subscription));
                self.subscriptions.len() - 1
            }
        };
        let subscription = &mut self.subscriptions[index].1;
        for name in request.resource_names_subscribe {
            if name == "*" {
                subscription.wildcard = true;
            } else {
                subscription.names.insert(name);
            }
        }
        for name in request.resource_names_unsubscribe {
            if name == "*" {
                subscription.wildcard = false;
            } else {
                subscription.names.remove(&name);
                subscription.known.remove(&name);
            }
        }
        self.evaluate(index);
    }

    /// Queues a response for subscription `index` if the client lacks something.
    fn evaluate(&mut self, index: usize) {
        let (type_url, subscription) = &mut self.subscriptions[index];
        {
            let mut inner = self.ctx.shared.lock();
            if inner.held.contains(type_url.as_str()) {
                return;
            }
            let generation = inner.resend_generation(type_url);
            let resend_all = generation != subscription.resend_seen;
            subscription.resend_seen = generation;
            let unfiltered = inner.unfiltered.contains(type_url.as_str());
            let Some(snapshot) = inner.snapshots.get(type_url.as_str()) else {
                return;
            };
            let updated: Vec<Resource> = snapshot
                .resources
                .iter()
                .filter(|(name, _)| {
                    subscription.wildcard || unfiltered || is_subscribed(&subscription.names, name)
                })
                .filter(|(name, resource)| {
                    resend_all || subscription.known.get(name) != Some(&resource.version)
                })
                .map(|(name, resource)| Resource {
                    name: name.clone(),
                    version: resource.version.clone(),
                    resource: Some(resource.any.clone()),
                    ..Default::default()
                })
                .collect();
            let present: HashSet<&str> = snapshot
                .resources
                .iter()
                .map(|(name, _)| name.as_str())
                .collect();
            let removed: Vec<String> = subscription
                .known
                .keys()
                .filter(|name| !present.contains(name.as_str()))
                .cloned()
                .collect();
            if updated.is_empty() && removed.is_empty() && subscription.answered {
                return;
            }
            let version = snapshot.version.clone();
            let nonce = inner.next_nonce();
            for resource in &updated {
                subscription
                    .known
                    .insert(resource.name.clone(), resource.version.clone());
            }
            for name in &removed {
                subscription.known.remove(name);
            }
            subscription.answered = true;
            inner.responses.push(LoggedResponse {
                stream: self.guard.id,
                delta: true,
                type_url: type_url.clone(),
                version: version.clone(),
                nonce: nonce.clone(),
                resources: updated
                    .iter()
                    .map(|r| (r.name.clone(), r.version.clone()))
                    .collect(),
                removed: removed.clone(),
                at: Instant::now(),
            });
            self.queue.push_back(DeltaDiscoveryResponse {
                system_version_info: version,
                resources: updated,
                type_url: type_url.clone(),
                removed_resources: removed,
                nonce,
                control_plane: Some(control_plane()),
                ..Default::default()
            });
        }
        self.ctx.shared.log_changed();
    }
}
