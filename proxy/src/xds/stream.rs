//! One gRPC discovery stream (ADS, or one type's own service), state of the world or
//! delta, for the life of the server.
//!
//! On every (re)connect the stream sends one request per subscribed type, in the order
//! the types were subscribed (CDS, EDS, LDS, RDS as init subscribes them), carrying what
//! was last accepted (SotW: `version_info`; delta: `initial_resource_versions`) and no
//! nonce. Each response is handed to the type's handler and answered before the next
//! one is read:
//! - ACK: SotW `version_info` = the response's, `response_nonce` = its nonce, the
//!   subscribed names; delta: `response_nonce` only.
//! - NACK: the same, but SotW `version_info` stays the last accepted one, and
//!   `error_detail` carries code 13 (INTERNAL, as Envoy) and the handler's message.
//!
//! A subscription whose names change (EDS clusters, RDS route configs) sends a new
//! request at once (SotW: the whole list with the current version and nonce; delta: the
//! names subscribed and unsubscribed). A failed stream reconnects after Envoy's jittered
//! backoff; meanwhile the last accepted config keeps serving.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use baton_config::model::RateLimitSettings;
use baton_proto::pb::envoy::config::core::v3::Node;
use baton_proto::pb::envoy::service::discovery::v3 as discovery;
use baton_proto::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::grpc::{self, GrpcError, Service};
use super::inherit::AcceptedState;
use super::rate_limit::Limited;
use super::stats::{ControlPlaneStats, SubscriptionStats};
use super::{ResourceHandler, Update};
use crate::upstream::ClusterManager;

/// Envoy's `error_detail` code for every rejected update (google.rpc.Code INTERNAL).
const NACK_CODE: i32 = 13;

/// Runs once, from whichever comes first: the first response or the fetch timeout.
#[derive(Default)]
pub(crate) struct InitOnce(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl InitOnce {
    pub(crate) fn new(f: Box<dyn FnOnce() + Send>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(Some(f))))
    }

    /// Whether the callback has run.
    pub(crate) fn fired(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    /// Runs the callback if it has not run yet; returns whether it ran now.
    pub(crate) fn fire(&self) -> bool {
        let f = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        match f {
            Some(f) => {
                f();
                true
            }
            None => false,
        }
    }
}

/// One type on a stream.
pub(crate) struct TypeSub {
    pub(crate) type_url: &'static str,
    /// None: wildcard (CDS, LDS).
    pub(crate) names: Option<Vec<String>>,
    pub(crate) handler: Arc<dyn ResourceHandler>,
    pub(crate) stats: Option<SubscriptionStats>,
    pub(crate) init: Arc<InitOnce>,
    /// SotW: last accepted `version_info`.
    version: String,
    /// SotW: last response nonce.
    nonce: String,
    /// Delta: accepted resources and their versions.
    versions: HashMap<String, String>,
    /// Delta: names the server was told we subscribe to.
    sent: BTreeSet<String>,
    /// A request for this type went out on the current connection. A named type with
    /// no names yet sends nothing (an empty list would be a wildcard).
    announced: bool,
    /// The parent generation's accepted resources of this type, used only if the
    /// control plane cannot be reached or does not answer in time.
    pub(crate) inherited: Option<Update>,
    /// Where accepted updates are recorded (for a successor generation).
    pub(crate) accepted: Arc<AcceptedState>,
    /// The source of `names` (EDS and RDS): read again before a response on this
    /// stream is answered, so a CDS response's new EDS names go out before its ACK, as
    /// Envoy sends them.
    pub(crate) names_watch: Option<tokio::sync::watch::Receiver<Vec<String>>>,
    /// SotW: [`Update::fingerprint`] of the last accepted update (`config_reload`).
    fingerprint: Option<u64>,
}

impl TypeSub {
    pub(crate) fn new(
        type_url: &'static str,
        names: Option<Vec<String>>,
        handler: Arc<dyn ResourceHandler>,
        stats: Option<SubscriptionStats>,
        init: Arc<InitOnce>,
    ) -> Self {
        Self {
            type_url,
            names,
            handler,
            stats,
            init,
            version: String::new(),
            nonce: String::new(),
            versions: HashMap::new(),
            sent: BTreeSet::new(),
            announced: false,
            inherited: None,
            accepted: Arc::new(AcceptedState::default()),
            names_watch: None,
            fingerprint: None,
        }
    }

    fn names_list(&self) -> Vec<String> {
        self.names.clone().unwrap_or_default()
    }

    /// A CDS or LDS subscription to an xDS-TP glob collection (`cds_resources_locator`
    /// / `lds_resources_locator`): its one name is the collection's URL.
    fn is_glob_collection(&self) -> bool {
        self.collection().is_some_and(|name| {
            name.split('?')
                .next()
                .is_some_and(|path| path.ends_with("/*"))
        })
    }

    /// The collection a CDS or LDS subscription names (`*_resources_locator`), if any.
    fn collection(&self) -> Option<&str> {
        if self.type_url != super::CLUSTER_TYPE && self.type_url != super::LISTENER_TYPE {
            return None;
        }
        match self.names.as_deref() {
            Some([name]) if name.starts_with("xdstp://") => Some(name),
            _ => None,
        }
    }
}

/// What a stream is asked to do.
pub(crate) enum Command {
    /// Subscribe to one more type.
    Add(Box<TypeSub>),
    /// The names of a type changed.
    Names(&'static str, Vec<String>),
    /// The type's `initial_fetch_timeout` passed.
    FetchTimeout(&'static str),
}

/// How a stream connects.
#[derive(Clone)]
pub(crate) struct StreamSettings {
    pub(crate) clusters: Arc<ClusterManager>,
    pub(crate) cluster_name: String,
    pub(crate) service: Service,
    pub(crate) delta: bool,
    pub(crate) node: Node,
    pub(crate) set_node_on_first_message_only: bool,
    pub(crate) max_message: Option<usize>,
    /// `rate_limit_settings`
    pub(crate) rate_limit: Option<RateLimitSettings>,
}

enum End {
    CommandsClosed,
    Failed(String),
}

/// Runs the stream until every subscriber is gone.
pub(crate) async fn run(settings: StreamSettings, mut commands: mpsc::UnboundedReceiver<Command>) {
    let stats = ControlPlaneStats::new();
    let mut subs: Vec<TypeSub> = Vec::new();
    let mut backoff = Backoff::default();
    loop {
        if subs.is_empty() {
            match commands.recv().await {
                Some(cmd) => absorb(&mut subs, cmd),
                None => return,
            }
        }
        while let Ok(cmd) = commands.try_recv() {
            absorb(&mut subs, cmd);
        }
        let end = session(&settings, &mut subs, &mut commands, &mut backoff, &stats).await;
        stats.connected_state.set(0);
        match end {
            End::CommandsClosed => return,
            End::Failed(reason) => {
                warn!(cluster = %settings.cluster_name, %reason, "xDS stream failed; reconnecting");
                for s in subs.iter_mut() {
                    if let Some(st) = &s.stats {
                        st.update_failure.inc();
                    }
                    // Unreachable control plane during init: start from the parent's
                    // resources, if there are some.
                    if s.inherited.is_some() && !s.init.fired() {
                        fall_back(s, &stats).await;
                    }
                }
            }
        }
        let delay = backoff.next_delay();
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                cmd = commands.recv() => match cmd {
                    Some(Command::FetchTimeout(type_url)) => {
                        fetch_timeout(&mut subs, type_url, &stats).await;
                    }
                    Some(cmd) => absorb(&mut subs, cmd),
                    None => return,
                },
            }
        }
    }
}

/// Applies the parent generation's resources of `sub` (if any) as if they had just been
/// accepted, and ends its initial fetch.
async fn fall_back(sub: &mut TypeSub, stats: &ControlPlaneStats) {
    if let Some(update) = sub.inherited.take() {
        let count = update.resources.len();
        let versions: Vec<(String, String)> = update
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect();
        let version_info = update.version_info.clone();
        let recorded = update.clone();
        match sub.handler.apply(update).await {
            Ok(()) => {
                info!(type_url = sub.type_url, resources = count, version = %version_info, "xDS: control plane unavailable; started from the parent generation's resources");
                stats.inherited_resources.add(count as u64);
                sub.accepted.record(sub.type_url, &recorded);
                sub.version = version_info.clone();
                sub.versions = versions.into_iter().collect();
                sub.fingerprint = Some(recorded.fingerprint());
                if let Some(st) = &sub.stats {
                    st.accepted(&version_info, std::time::Duration::ZERO, true);
                }
            }
            Err(e) => {
                warn!(type_url = sub.type_url, error = %e, "xDS: the parent generation's resources were rejected")
            }
        }
    }
    sub.init.fire();
}

/// The initial fetch of `type_url` timed out: fall back to the parent's resources, and
/// let initialisation go on.
async fn fetch_timeout(subs: &mut [TypeSub], type_url: &str, stats: &ControlPlaneStats) {
    let Some(sub) = subs.iter_mut().find(|s| s.type_url == type_url) else {
        return;
    };
    if sub.init.fired() {
        return;
    }
    warn!(%type_url, "xDS initial fetch timed out; continuing without it");
    if let Some(st) = &sub.stats {
        st.fetch_timed_out();
    }
    fall_back(sub, stats).await;
    sub.handler.initial_fetch_failed();
}

fn absorb(subs: &mut Vec<TypeSub>, cmd: Command) {
    match cmd {
        Command::Add(sub) => {
            subs.retain(|s| s.type_url != sub.type_url);
            subs.push(*sub);
        }
        Command::Names(type_url, names) => {
            if let Some(s) = subs.iter_mut().find(|s| s.type_url == type_url) {
                if s.names.is_some() {
                    s.names = Some(names);
                }
            }
        }
        // Handled where an await is possible.
        Command::FetchTimeout(_) => {}
    }
}

/// Sends requests; both transports behind one interface, through the rate limit when
/// one is configured.
struct Sender {
    delta: bool,
    sotw: Option<mpsc::UnboundedSender<discovery::DiscoveryRequest>>,
    incremental: Option<mpsc::UnboundedSender<discovery::DeltaDiscoveryRequest>>,
    node: Node,
    node_every_time: bool,
    sent_any: bool,
    limit: Option<Limited<Outgoing>>,
    stats: ControlPlaneStats,
}

impl Sender {
    fn node(&mut self) -> Option<Node> {
        let node = (!self.sent_any || self.node_every_time).then(|| self.node.clone());
        self.sent_any = true;
        node
    }

    fn send_sotw(&mut self, req: discovery::DiscoveryRequest) -> bool {
        self.send(Outgoing::Sotw(req))
    }

    fn send_delta(&mut self, req: discovery::DeltaDiscoveryRequest) -> bool {
        self.send(Outgoing::Delta(req))
    }

    fn send(&mut self, req: Outgoing) -> bool {
        let req = match self.limit.as_mut() {
            None => req,
            Some(limit) => {
                let (now, held) = limit.admit(req);
                if held {
                    self.stats.rate_limit_enforced.inc();
                    self.stats.pending_requests.set(limit.queue.len() as u64);
                }
                match now {
                    Some(req) => req,
                    None => return true,
                }
            }
        };
        self.write(req)
    }

    fn write(&mut self, req: Outgoing) -> bool {
        match req {
            Outgoing::Sotw(r) => self.sotw.as_ref().is_some_and(|tx| tx.send(r).is_ok()),
            Outgoing::Delta(r) => self
                .incremental
                .as_ref()
                .is_some_and(|tx| tx.send(r).is_ok()),
        }
    }

    /// When requests held back by the rate limit may go (never, when none are).
    async fn held_back(&mut self) {
        match self.limit.as_mut() {
            Some(l) if !l.queue.is_empty() => {
                let at = l.bucket.next_token_at(tokio::time::Instant::now());
                tokio::time::sleep_until(at).await;
            }
            _ => std::future::pending().await,
        }
    }

    /// Sends what the rate limit lets go now.
    fn release_held(&mut self) {
        let Some(limit) = self.limit.as_mut() else {
            return;
        };
        let (ready, still_held) = limit.release();
        if still_held {
            self.stats.rate_limit_enforced.inc();
        }
        self.stats.pending_requests.set(limit.queue.len() as u64);
        for req in ready {
            self.write(req);
        }
    }

    /// The first request of a type on this connection.
    fn initial(&mut self, sub: &mut TypeSub) -> bool {
        if sub.names.as_ref().is_some_and(Vec::is_empty) {
            sub.announced = false;
            return true;
        }
        sub.announced = true;
        let node = self.node();
        if self.delta {
            let names: BTreeSet<String> = sub.names_list().into_iter().collect();
            sub.sent = names.clone();
            self.send_delta(discovery::DeltaDiscoveryRequest {
                node,
                type_url: sub.type_url.to_string(),
                resource_names_subscribe: names.into_iter().collect(),
                initial_resource_versions: sub.versions.clone(),
                ..Default::default()
            })
        } else {
            sub.nonce.clear();
            self.send_sotw(discovery::DiscoveryRequest {
                version_info: sub.version.clone(),
                node,
                resource_names: sub.names_list(),
                type_url: sub.type_url.to_string(),
                ..Default::default()
            })
        }
    }

    /// The names of a type changed.
    fn names_changed(&mut self, sub: &mut TypeSub) -> bool {
        if !sub.announced {
            return self.initial(sub);
        }
        let node = self.node();
        if self.delta {
            let names: BTreeSet<String> = sub.names_list().into_iter().collect();
            let subscribe: Vec<String> = names.difference(&sub.sent).cloned().collect();
            let unsubscribe: Vec<String> = sub.sent.difference(&names).cloned().collect();
            if subscribe.is_empty() && unsubscribe.is_empty() {
                return true;
            }
            for n in &unsubscribe {
                sub.versions.remove(n);
            }
            sub.sent = names;
            self.send_delta(discovery::DeltaDiscoveryRequest {
                node,
                type_url: sub.type_url.to_string(),
                resource_names_subscribe: subscribe,
                resource_names_unsubscribe: unsubscribe,
                ..Default::default()
            })
        } else {
            self.send_sotw(discovery::DiscoveryRequest {
                version_info: sub.version.clone(),
                node,
                resource_names: sub.names_list(),
                type_url: sub.type_url.to_string(),
                response_nonce: sub.nonce.clone(),
                ..Default::default()
            })
        }
    }
}

/// One connection: open, request every type, then answer responses until it fails.
async fn session(
    settings: &StreamSettings,
    subs: &mut Vec<TypeSub>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    backoff: &mut Backoff,
    stats: &ControlPlaneStats,
) -> End {
    let channel = match grpc::connect(&settings.clusters, &settings.cluster_name).await {
        Ok(c) => c,
        Err(e) => return End::Failed(e.to_string()),
    };
    let mut sender = Sender {
        delta: settings.delta,
        sotw: None,
        incremental: None,
        node: settings.node.clone(),
        node_every_time: !settings.set_node_on_first_message_only,
        sent_any: false,
        limit: settings.rate_limit.map(Limited::new),
        stats: stats.clone(),
    };
    // `_active` counts the stream in `upstream_rq_active` for as long as it is open.
    let (mut responses, _active) = if settings.delta {
        let (tx, rx) = mpsc::unbounded_channel();
        sender.incremental = Some(tx);
        match grpc::open_delta(
            channel,
            settings.service,
            receiver_stream(rx),
            settings.max_message,
        )
        .await
        {
            Ok((s, active)) => (Responses::Delta(s), active),
            Err(e) => return End::Failed(e.to_string()),
        }
    } else {
        let (tx, rx) = mpsc::unbounded_channel();
        sender.sotw = Some(tx);
        match grpc::open_sotw(
            channel,
            settings.service,
            receiver_stream(rx),
            settings.max_message,
        )
        .await
        {
            Ok((s, active)) => (Responses::Sotw(s), active),
            Err(e) => return End::Failed(e.to_string()),
        }
    };
    stats.connected_state.set(1);
    info!(cluster = %settings.cluster_name, delta = settings.delta, "xDS stream connected");
    // Envoy asks again in its own order: clusters, endpoints, listeners, routes.
    subs.sort_by_key(|s| type_rank(s.type_url));
    for s in subs.iter_mut() {
        if let Some(st) = &s.stats {
            st.update_attempt.inc();
        }
        sender.initial(s);
    }
    let mut pending: Option<PendingAck> = None;
    loop {
        let barrier = async {
            match pending.as_mut() {
                Some(p) => (&mut p.barrier).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = barrier => {
                if let Some(p) = pending.take() {
                    sender.send(p.answer);
                }
            }
            _ = sender.held_back() => sender.release_held(),
            msg = responses.next() => match msg {
                Ok(Some(resp)) => {
                    backoff.reset();
                    if let Some(id) = resp.control_plane_identifier() {
                        stats.identifier.set(id);
                    }
                    let answer = handle(resp, subs, &mut sender).await;
                    sync_names(subs, &mut sender);
                    match answer {
                        Answer::Now(a) => {
                            sender.send(a);
                        }
                        // A newer response supersedes an answer still waiting.
                        Answer::Later(p) => pending = Some(p),
                        Answer::Sent => {}
                    }
                }
                Ok(None) => return End::Failed("closed by the control plane".into()),
                Err(e) => return End::Failed(e.to_string()),
            },
            cmd = commands.recv() => match cmd {
                None => return End::CommandsClosed,
                Some(Command::Add(sub)) => {
                    let mut sub = *sub;
                    subs.retain(|s| s.type_url != sub.type_url);
                    if let Some(st) = &sub.stats {
                        st.update_attempt.inc();
                    }
                    sender.initial(&mut sub);
                    subs.push(sub);
                }
                Some(Command::FetchTimeout(type_url)) => {
                    fetch_timeout(subs, type_url, stats).await;
                }
                Some(Command::Names(type_url, names)) => {
                    if let Some(s) = subs.iter_mut().find(|s| s.type_url == type_url) {
                        set_names(s, names, &mut sender);
                    }
                }
            },
        }
    }
}

/// A named type's names became `names`: asks for them if they differ.
fn set_names(sub: &mut TypeSub, names: Vec<String>, sender: &mut Sender) {
    if sub.names.is_some() && sub.names.as_ref() != Some(&names) {
        sub.names = Some(names);
        sender.names_changed(sub);
    }
}

/// Brings every named type on this stream up to its source's current names (what a
/// response just applied may have changed) before that response is answered.
fn sync_names(subs: &mut [TypeSub], sender: &mut Sender) {
    for s in subs.iter_mut() {
        let Some(rx) = s.names_watch.as_ref() else {
            continue;
        };
        // Compared in place, copied only when they differ: the EDS names of 10,000
        // clusters were copied after every response, changed or not.
        let names = {
            let current = rx.borrow();
            if s.names.is_none() || s.names.as_deref() == Some(current.as_slice()) {
                continue;
            }
            current.clone()
        };
        set_names(s, names, sender);
    }
}

/// What answering one response takes.
enum Answer {
    /// Send this now.
    Now(Outgoing),
    /// Send once its barrier resolves.
    Later(PendingAck),
    /// Already answered.
    Sent,
}

fn type_rank(type_url: &str) -> u8 {
    match type_url {
        super::CLUSTER_TYPE => 0,
        super::ENDPOINT_TYPE => 1,
        super::LISTENER_TYPE => 2,
        super::ROUTE_TYPE => 3,
        _ => 4,
    }
}

fn receiver_stream<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

enum Responses {
    Sotw(tonic::Streaming<discovery::DiscoveryResponse>),
    Delta(tonic::Streaming<discovery::DeltaDiscoveryResponse>),
}

/// One response of either transport.
pub(super) enum Response {
    Sotw(discovery::DiscoveryResponse),
    Delta(discovery::DeltaDiscoveryResponse),
}

impl Response {
    /// `control_plane.identifier`, when the response carries a `control_plane` (Envoy
    /// keeps the last one given in `control_plane.identifier`).
    fn control_plane_identifier(&self) -> Option<&str> {
        let control_plane = match self {
            Self::Sotw(r) => r.control_plane.as_ref(),
            Self::Delta(r) => r.control_plane.as_ref(),
        };
        control_plane.map(|c| c.identifier.as_str())
    }
}

impl Responses {
    async fn next(&mut self) -> Result<Option<Response>, GrpcError> {
        Ok(match self {
            Self::Sotw(s) => s.message().await?.map(Response::Sotw),
            Self::Delta(s) => s.message().await?.map(Response::Delta),
        })
    }
}

/// Applies one response through its type's handler and answers it (or returns the
/// answer to send once the handler's barrier resolves).
async fn handle(mut resp: Response, subs: &mut [TypeSub], sender: &mut Sender) -> Answer {
    let type_url = match &resp {
        Response::Sotw(r) => r.type_url.clone(),
        Response::Delta(r) => r.type_url.clone(),
    };
    let Some(sub) = subs.iter_mut().find(|s| s.type_url == type_url) else {
        warn!(%type_url, "xDS response for a type not subscribed; ignored");
        return Answer::Sent;
    };
    if let Some(collection) = sub.collection() {
        super::collection::keep_members(&mut resp, collection);
    }
    // Measured on Envoy 1.40: a glob collection's watch never hears of a response
    // holding none of its members and (delta) removing none (nothing removed, nothing
    // counted, its initial fetch not ended); the response is ACKed.
    if sub.is_glob_collection() {
        match &resp {
            Response::Sotw(r) if r.resources.is_empty() => {
                sub.version = r.version_info.clone();
                sub.nonce = r.nonce.clone();
                let node = sender.node();
                sender.send(Outgoing::Sotw(discovery::DiscoveryRequest {
                    version_info: sub.version.clone(),
                    node,
                    resource_names: sub.names_list(),
                    type_url: type_url.clone(),
                    response_nonce: r.nonce.clone(),
                    ..Default::default()
                }));
                return Answer::Sent;
            }
            Response::Delta(r) if r.resources.is_empty() && r.removed_resources.is_empty() => {
                let node = sender.node();
                sender.send(Outgoing::Delta(discovery::DeltaDiscoveryRequest {
                    node,
                    type_url: type_url.clone(),
                    response_nonce: r.nonce.clone(),
                    ..Default::default()
                }));
                return Answer::Sent;
            }
            _ => {}
        }
    }
    if let Some(st) = &sub.stats {
        st.update_attempt.inc();
    }
    let (update, nonce) = match resp {
        Response::Sotw(mut r) => {
            let nonce = std::mem::take(&mut r.nonce);
            (super::updates::sotw_update(r), nonce)
        }
        Response::Delta(mut r) => {
            let nonce = std::mem::take(&mut r.nonce);
            (super::updates::delta_update(r), nonce)
        }
    };
    let version_info = update
        .as_ref()
        .map(|u| u.version_info.clone())
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let mut reloaded = false;
    let result = match update {
        Ok(update) => {
            let names: Vec<(String, String)> = update
                .resources
                .iter()
                .map(|r| (r.name.clone(), r.version.clone()))
                .collect();
            let removed = update.removed.clone();
            let empty = update.resources.is_empty() && update.removed.is_empty();
            let fingerprint = update.fingerprint();
            let recorded = update.clone();
            let result = sub.handler.apply(update).await;
            if result.is_ok() {
                // Over delta an update only says what changed.
                reloaded = if sender.delta {
                    !empty
                } else {
                    sub.fingerprint != Some(fingerprint)
                };
                sub.fingerprint = Some(fingerprint);
                sub.accepted.record(sub.type_url, &recorded);
                // The control plane answered: the parent's resources are not needed.
                sub.inherited = None;
                for (name, version) in names {
                    sub.versions.insert(name, version);
                }
                for name in removed {
                    sub.versions.remove(&name);
                }
                if empty {
                    if let Some(st) = &sub.stats {
                        st.empty();
                    }
                }
            }
            result
        }
        Err(detail) => Err(detail),
    };
    let accepted = result.is_ok();
    match &result {
        Ok(()) => {
            debug!(%type_url, version = %version_info, "xDS update accepted");
            if let Some(st) = &sub.stats {
                st.accepted(&version_info, started.elapsed(), reloaded);
            }
            if !sender.delta {
                sub.version = version_info;
            }
        }
        Err(detail) => {
            warn!(%type_url, version = %version_info, error = %detail, "xDS update rejected");
            if let Some(st) = &sub.stats {
                st.rejected(sender.delta);
            }
        }
    }
    let error_detail = result.err().map(|message| RpcStatus {
        code: NACK_CODE,
        message,
        details: Vec::new(),
    });
    let node = sender.node();
    let answer = if sender.delta {
        Outgoing::Delta(discovery::DeltaDiscoveryRequest {
            node,
            type_url: type_url.clone(),
            response_nonce: nonce,
            error_detail,
            ..Default::default()
        })
    } else {
        sub.nonce = nonce.clone();
        Outgoing::Sotw(discovery::DiscoveryRequest {
            version_info: sub.version.clone(),
            node,
            resource_names: sub.names_list(),
            type_url: type_url.clone(),
            response_nonce: nonce,
            error_detail,
            ..Default::default()
        })
    };
    // Envoy: the first response ends the initial fetch whether it was accepted or not.
    sub.init.fire();
    // As Envoy, an accepted CDS response is ACKed once the clusters it added have
    // warmed (their EDS requests go out first).
    match sub.handler.ack_barrier().filter(|_| accepted) {
        Some(barrier) => Answer::Later(PendingAck { barrier, answer }),
        None => Answer::Now(answer),
    }
}

/// An answer to a response, sent once its barrier resolves.
struct PendingAck {
    barrier: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    answer: Outgoing,
}

/// A request of either transport.
enum Outgoing {
    Sotw(discovery::DiscoveryRequest),
    Delta(discovery::DeltaDiscoveryRequest),
}
