//! The server's dynamic configuration: which xDS subscriptions exist and where they
//! come from, created phase by phase as Envoy's init order asks for them (EDS with the
//! secondary clusters, then CDS, then LDS and RDS), each with an init target the phase
//! waits for.
//!
//! Sources: CDS and LDS from `dynamic_resources`. EDS and RDS go through the ADS stream
//! when there is one; otherwise through the first source a static EDS cluster (EDS) or
//! connection manager (RDS) names, else the CDS (EDS) or LDS (RDS) source.

use std::sync::Arc;

use baton_config::model::{
    Bootstrap, ConfigSource, ConfigSourceKind, DiscoveryType, NetworkFilter,
};
use baton_config::resource::ResourceContext;
use baton_config::Loaded;
use baton_proto::pb::envoy::config::core::v3 as core_pb;

use super::init::{InitManager, InitPhase};
use super::listener_manager::ListenerManager;
use super::xds_handlers::{CdsHandler, EdsHandler, LdsHandler, RdsHandler};
use crate::http::rds::RouteConfigProviders;
use crate::upstream::ClusterManager;
use crate::xds::{self, Subscription, SubscriptionKind, SubscriptionStats, XdsClient, XdsSettings};

/// Subscriptions of one server.
pub struct Dynamic {
    client: Arc<XdsClient>,
    ctx: Arc<ResourceContext>,
    model: Bootstrap,
    clusters: Arc<ClusterManager>,
    listeners: Arc<ListenerManager>,
    rds: Arc<RouteConfigProviders>,
    /// `listener_manager.lds.*`, made with the server (as Envoy makes them with its
    /// listener manager), before LDS subscribes once the clusters are initialised.
    lds_stats: Option<SubscriptionStats>,
    /// The CDS / LDS `xdstp://` collection names as subscribed: the locators with the
    /// bootstrap's `node_context_params` added.
    cds_collection: Option<String>,
    lds_collection: Option<String>,
}

/// The node as sent to control planes: the bootstrap's, with the command line's
/// overrides, and Baton's user agent.
pub fn node(loaded: &Loaded) -> core_pb::Node {
    let mut node = loaded.proto.node.clone().unwrap_or_default();
    node.id.clone_from(&loaded.model.node.id);
    node.cluster.clone_from(&loaded.model.node.cluster);
    if !loaded.model.node.locality.zone.is_empty() {
        // `--service-zone` overrides the bootstrap's zone.
        node.locality.get_or_insert_with(Default::default).zone =
            loaded.model.node.locality.zone.clone();
    }
    node.user_agent_name = "baton".to_string();
    let mut parts = super::VERSION
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    node.user_agent_version_type = Some(
        core_pb::node::UserAgentVersionType::UserAgentBuildVersion(core_pb::BuildVersion {
            version: Some(baton_proto::pb::envoy::r#type::v3::SemanticVersion {
                major_number: parts.next().unwrap_or(0),
                minor_number: parts.next().unwrap_or(0),
                patch: parts.next().unwrap_or(0),
            }),
            metadata: None,
        }),
    );
    node
}

/// What must be equal for a generation to start from its parent's xDS resources: the
/// config sources and the node identity (a different control plane or node may serve
/// other resources).
pub fn fingerprint(loaded: &Loaded) -> String {
    let m = &loaded.model;
    let static_sources: Vec<String> = m
        .clusters
        .iter()
        .filter_map(|c| c.eds.as_ref().map(|e| format!("{:?}", e.source)))
        .collect();
    let text = format!(
        "{:?}|{:?}|{}|{}",
        m.dynamic, static_sources, m.node.id, m.node.cluster
    );
    format!("{:016x}", xxhash_rust::xxh64::xxh64(text.as_bytes(), 0))
}

impl Dynamic {
    /// The xDS client (a successor generation asks it for the accepted resources).
    pub fn client(&self) -> Arc<XdsClient> {
        self.client.clone()
    }

    /// The parent generation's accepted resources (an encoded state from the
    /// hot-restart socket), to fall back on while the control plane is unreachable.
    pub fn inherit(&self, state: &[u8]) {
        match crate::xds::Inherited::decode(state) {
            Ok(inherited) => {
                tracing::info!(
                    resources = inherited.len(),
                    "hot restart: received the parent generation's xDS resources (used only if the control plane is unavailable)"
                );
                self.client.inherit(inherited);
            }
            Err(e) => {
                tracing::warn!(error = %e, "hot restart: the parent's xDS state cannot be decoded; not used")
            }
        }
    }

    /// The subscriptions of `loaded` (none is made yet).
    pub fn new(
        loaded: &Loaded,
        clusters: Arc<ClusterManager>,
        listeners: Arc<ListenerManager>,
        rds: Arc<RouteConfigProviders>,
        unknown_fields: baton_config::resource::UnknownFields,
    ) -> anyhow::Result<Self> {
        let ctx = Arc::new(
            ResourceContext::new(&loaded.proto)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .with_unknown_fields(unknown_fields),
        );
        let node = node(loaded);
        let with_context = |locator: &Option<String>| {
            locator.as_ref().map(|l| {
                baton_config::xdstp::with_node_context(l, &node, &loaded.proto.node_context_params)
            })
        };
        let cds_collection = with_context(&loaded.model.dynamic.cds_collection);
        let lds_collection = with_context(&loaded.model.dynamic.lds_collection);
        let client = XdsClient::new(XdsSettings {
            clusters: clusters.clone(),
            node,
            ads: loaded.model.dynamic.ads.clone(),
            federation: loaded.model.dynamic.federation.clone(),
        });
        let lds_stats = loaded
            .model
            .dynamic
            .lds
            .as_ref()
            .map(|_| SubscriptionStats::new("listener_manager.lds.", SubscriptionKind::Lds));
        Ok(Self {
            client,
            ctx,
            model: loaded.model.clone(),
            clusters,
            listeners,
            rds,
            lds_stats,
            cds_collection,
            lds_collection,
        })
    }

    fn ads_source(&self, like: Option<&ConfigSource>) -> Option<ConfigSource> {
        self.model.dynamic.ads.as_ref().map(|_| ConfigSource {
            kind: ConfigSourceKind::Ads,
            initial_fetch_timeout: like.map_or(
                Some(baton_config::model::DEFAULT_INITIAL_FETCH_TIMEOUT),
                |s| s.initial_fetch_timeout,
            ),
        })
    }

    fn eds_source(&self) -> Option<ConfigSource> {
        let static_eds = self
            .model
            .clusters
            .iter()
            .filter(|c| c.discovery == DiscoveryType::Eds)
            .find_map(|c| c.eds.as_ref().map(|e| e.source.clone()));
        if let Some(s) = &static_eds {
            if s.kind == ConfigSourceKind::Ads {
                return Some(s.clone());
            }
        }
        self.ads_source(static_eds.as_ref())
            .or(static_eds)
            .or_else(|| self.model.dynamic.cds.clone().filter(delivers_other_types))
    }

    fn rds_source(&self) -> Option<ConfigSource> {
        let static_rds = self
            .model
            .listeners
            .iter()
            .flat_map(|l| l.all_filter_chains().cloned().collect::<Vec<_>>())
            .find_map(|c| match &c.network {
                NetworkFilter::Http(h) => h.rds.as_ref().map(|r| r.source.clone()),
                NetworkFilter::TcpProxy(_) => None,
            });
        self.ads_source(static_rds.as_ref())
            .or(static_rds)
            .or_else(|| self.model.dynamic.lds.clone().filter(delivers_other_types))
    }

    /// SDS from control planes: the secrets TLS contexts name (`ads: {}` or an
    /// `api_config_source`) are subscribed through this client as the contexts are
    /// built. Listeners time their own wait for each secret.
    pub fn attach_sds(&self) {
        let client = self.client.clone();
        crate::tls::sds_xds::attach(Arc::new(move |source, names, handler| {
            client.subscribe(
                &ConfigSource {
                    initial_fetch_timeout: None,
                    ..source.clone()
                },
                Subscription {
                    type_url: xds::SECRET_TYPE,
                    names: Some(names),
                    handler,
                    stats: None,
                    on_initialized: Box::new(|| {}),
                },
            );
        }));
    }

    /// EDS, for every EDS cluster's service (secondary init waits for the first
    /// answer when static EDS clusters exist).
    pub fn subscribe_eds(&self, init: &InitManager) {
        let Some(source) = self.eds_source() else {
            return;
        };
        let has_static_eds = self
            .model
            .clusters
            .iter()
            .any(|c| c.discovery == DiscoveryType::Eds);
        let target = has_static_eds.then(|| init.add_target(InitPhase::SecondaryClusters, "EDS"));
        self.client.subscribe(
            &source,
            Subscription {
                type_url: xds::ENDPOINT_TYPE,
                names: Some(self.clusters.eds_services()),
                handler: Arc::new(EdsHandler {
                    clusters: self.clusters.clone(),
                    ctx: self.ctx.clone(),
                }),
                stats: None,
                on_initialized: Box::new(move || {
                    if let Some(t) = target {
                        t.ready();
                    }
                }),
            },
        );
    }

    /// CDS (wildcard, or the `cds_resources_locator` glob collection), when configured;
    /// the Cds phase waits for it.
    pub fn subscribe_cds(&self, init: &InitManager) {
        let Some(source) = self.model.dynamic.cds.clone() else {
            return;
        };
        let target = init.add_target(InitPhase::Cds, "CDS");
        self.client.subscribe(
            &source,
            Subscription {
                type_url: xds::CLUSTER_TYPE,
                names: collection(self.cds_collection.as_ref()),
                handler: Arc::new(CdsHandler {
                    clusters: self.clusters.clone(),
                    ctx: self.ctx.clone(),
                    init: init.clone(),
                }),
                stats: Some(SubscriptionStats::new(
                    "cluster_manager.cds.",
                    SubscriptionKind::Cds,
                )),
                on_initialized: Box::new(move || target.ready()),
            },
        );
    }

    /// LDS (wildcard, or the `lds_resources_locator` glob collection), when configured,
    /// then RDS for the route configurations
    /// listeners name; the Lds phase waits for the first LDS answer.
    pub fn subscribe_lds_and_rds(&self, init: &InitManager) {
        if let Some(source) = self.model.dynamic.lds.clone() {
            let target = init.add_target(InitPhase::Lds, "LDS");
            self.client.subscribe(
                &source,
                Subscription {
                    type_url: xds::LISTENER_TYPE,
                    names: collection(self.lds_collection.as_ref()),
                    handler: Arc::new(LdsHandler {
                        listeners: self.listeners.clone(),
                        clusters: self.clusters.clone(),
                        providers: self.rds.clone(),
                        ctx: self.ctx.clone(),
                    }),
                    stats: self.lds_stats.clone(),
                    on_initialized: Box::new(move || target.ready()),
                },
            );
        }
        if let Some(source) = self.rds_source() {
            self.client.subscribe(
                &ConfigSource {
                    // Listeners time their own wait for each route configuration.
                    initial_fetch_timeout: None,
                    ..source
                },
                Subscription {
                    type_url: xds::ROUTE_TYPE,
                    names: Some(self.rds.names()),
                    handler: Arc::new(RdsHandler {
                        providers: self.rds.clone(),
                        clusters: self.clusters.clone(),
                        ctx: self.ctx.clone(),
                    }),
                    stats: None,
                    on_initialized: Box::new(|| {}),
                },
            );
        }
    }
}

/// Whether the CDS / LDS source may stand in for EDS / RDS: not a `file://` collection,
/// which holds only its own collection.
fn delivers_other_types(source: &ConfigSource) -> bool {
    !matches!(source.kind, ConfigSourceKind::FileCollection { .. })
}

/// The names of a CDS or LDS subscription: None (wildcard), or the one glob collection
/// URL of a `*_resources_locator`, which is how Envoy subscribes to it (delta
/// `resource_names_subscribe`, SotW `resource_names`).
fn collection(locator: Option<&String>) -> Option<tokio::sync::watch::Receiver<Vec<String>>> {
    locator.map(|l| tokio::sync::watch::channel(vec![l.clone()]).1)
}
