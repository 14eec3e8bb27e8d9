//! Where dynamic configuration comes from: `dynamic_resources`, the `ConfigSource`s of
//! CDS/LDS/EDS/RDS, and the standalone `ClusterLoadAssignment` an EDS response carries.
//! Everything is validated and defaulted; the xDS client only reads it.

use std::path::PathBuf;
use std::time::Duration;

use super::LoadAssignment;

/// Envoy's runtime flag under which xDS-TP singletons (EDS, RDS) go to the config source
/// of their authority (`config_sources` / `default_config_source`).
pub const XDSTP_SINGLETONS_FLAG: &str =
    "envoy.reloadable_features.xdstp_based_config_singleton_subscriptions";

/// Envoy's default `initial_fetch_timeout`.
pub const DEFAULT_INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// `dynamic_resources` (every field None without it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicResources {
    /// `ads_config`: the one aggregated stream `ads: {}` sources share.
    pub ads: Option<ApiConfigSource>,
    /// `cds_config`
    pub cds: Option<ConfigSource>,
    /// `lds_config`
    pub lds: Option<ConfigSource>,
    /// `cds_resources_locator` when it is an `xdstp://` URL: the one name CDS subscribes
    /// to through `cds` instead of the wildcard (a glob collection `xdstp://authority/
    /// envoy.config.cluster.v3.Cluster/path/*`, or a list collection, matched as a
    /// singleton), written as Envoy sends it (context parameters sorted). A `file://`
    /// locator is `cds` itself (a `FileCollection` source).
    pub cds_collection: Option<String>,
    /// `lds_resources_locator`: the same for listeners, through `lds`.
    pub lds_collection: Option<String>,
    /// The bootstrap's `config_sources` and `default_config_source` (xDS-TP federation).
    pub federation: Federation,
}

/// xDS-TP federation: which control plane serves the `xdstp://` names of an authority.
/// Envoy 1.40 builds these streams but subscribes through them only with the runtime
/// flag `envoy.reloadable_features.xdstp_based_config_singleton_subscriptions` (then an
/// EDS or RDS resource named `xdstp://<authority>/...` goes to the source naming the
/// authority, else to the default source, else to its own config source); without it
/// every resource keeps its own config source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Federation {
    /// `config_sources`, in order (the first naming an authority serves it).
    pub sources: Vec<AuthoritySource>,
    /// `default_config_source`: serves authorities no source names.
    pub default: Option<AuthoritySource>,
    /// The runtime flag is set in a static layer: xDS-TP singletons are routed.
    pub route_singletons: bool,
}

/// One federated config source: an aggregated gRPC stream of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthoritySource {
    /// `authorities[].name` (empty for the default source).
    pub authorities: Vec<String>,
    /// `api_config_source`: `AGGREGATED_GRPC` (state of the world, `api_type` Grpc here)
    /// or `AGGREGATED_DELTA_GRPC` (DeltaGrpc), on its own ADS stream.
    pub api: ApiConfigSource,
    /// `initial_fetch_timeout` of the source.
    pub initial_fetch_timeout: Option<Duration>,
}

impl Federation {
    /// The source serving `name` when singletons are routed: the first naming its
    /// authority, else the default; None for a name that is not `xdstp://` or when
    /// nothing serves its authority (the resource's own config source then).
    pub fn source_for(&self, name: &str) -> Option<&AuthoritySource> {
        if !self.route_singletons {
            return None;
        }
        self.authority_source(name)
    }

    /// The source that serves `name`'s authority whatever the runtime flag says: the
    /// first naming it, else the default; None for a name that is not `xdstp://` or
    /// when nothing serves its authority.
    pub fn authority_source(&self, name: &str) -> Option<&AuthoritySource> {
        let authority = xdstp_authority(name)?;
        self.sources
            .iter()
            .find(|s| s.authorities.iter().any(|a| a == authority))
            .or(self.default.as_ref())
    }
}

/// The authority of an `xdstp://authority/...` name.
pub fn xdstp_authority(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("xdstp://")?;
    Some(
        rest.split_once('/')
            .map_or(rest, |(authority, _)| authority),
    )
}

/// `ConfigSource`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSource {
    /// Which transport delivers the resources.
    pub kind: ConfigSourceKind,
    /// `initial_fetch_timeout`: default 15 s; 0 in config = wait forever = None.
    pub initial_fetch_timeout: Option<Duration>,
}

/// The `config_source_specifier` oneof of a `ConfigSource`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigSourceKind {
    /// `ads: {}`: the `dynamic_resources.ads_config` stream (translation checks it is
    /// configured).
    Ads,
    /// `api_config_source` (gRPC / delta gRPC, non-aggregated).
    Api(ApiConfigSource),
    /// `path_config_source` (and the deprecated `path`), with `watched_directory`. The
    /// path existed when the config was translated.
    Path {
        /// `path`: a file holding a `DiscoveryResponse` (YAML or JSON).
        path: PathBuf,
        /// `watched_directory.path`: reload when this directory sees a move (the
        /// atomic-rename deployment pattern); None: watch the file itself.
        watched_directory: Option<PathBuf>,
    },
    /// A `file://` `cds_resources_locator` / `lds_resources_locator`: a file holding an
    /// `envoy.service.discovery.v3.Resource` whose resource is a `ListenerCollection` /
    /// `ClusterCollection` of inline entries, reloaded as a `path_config_source` file
    /// (when a file is moved over it). The path existed when the config was translated.
    FileCollection {
        /// The locator's path.
        path: PathBuf,
    },
}

/// `ApiConfigSource` of `api_type` GRPC or DELTA_GRPC with one `envoy_grpc` service.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfigSource {
    /// `api_type`
    pub api_type: XdsApiType,
    /// `grpc_services[0].envoy_grpc.cluster_name`: a static, non-EDS cluster.
    pub cluster_name: String,
    /// `grpc_services[0].timeout` when set and not zero.
    pub grpc_timeout: Option<Duration>,
    /// `grpc_services[0].envoy_grpc.max_receive_message_length` when set (0 = no
    /// limit, as in Envoy).
    pub max_receive_message_length: Option<u32>,
    /// `set_node_on_first_message_only`
    pub set_node_on_first_message_only: bool,
    /// `rate_limit_settings`: None when unset (no rate limiting of requests).
    pub rate_limit: Option<RateLimitSettings>,
}

/// `ApiConfigSource.api_type` values Baton implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdsApiType {
    /// `GRPC`: state of the world.
    Grpc,
    /// `DELTA_GRPC`: incremental.
    DeltaGrpc,
}

/// `rate_limit_settings`: a token bucket on discovery requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitSettings {
    /// `max_tokens` (default 100).
    pub max_tokens: u32,
    /// `fill_rate` in tokens per second (default 10; always > 0).
    pub fill_rate: f64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            max_tokens: 100,
            fill_rate: 10.0,
        }
    }
}

/// `eds_cluster_config` of a `type: EDS` cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct EdsConfig {
    /// `service_name`: the ClusterLoadAssignment to subscribe to (default: the cluster's
    /// name).
    pub service_name: String,
    /// `eds_config`
    pub source: ConfigSource,
}

/// HCM `rds`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rds {
    /// `route_config_name`
    pub route_config_name: String,
    /// `config_source`
    pub source: ConfigSource,
}

/// A translated `ClusterLoadAssignment` (an EDS resource).
#[derive(Debug, Clone, Default)]
pub struct ClusterLoadAssignment {
    /// `cluster_name`: the EDS cluster's `service_name` (or name) it is for.
    pub cluster_name: String,
    /// The endpoints, in the same form as a static cluster's `load_assignment`.
    pub load_assignment: LoadAssignment,
}

/// How long initialisation may wait for control planes, from the chained
/// `initial_fetch_timeout`s of a bootstrap (what a supervisor should allow a new
/// generation before it reports LIVE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdsInitBudget {
    /// No dynamic resources: initialisation does not wait for a control plane.
    Static,
    /// At most this long: static EDS, CDS, the CDS clusters' EDS, LDS, then RDS.
    Bounded(Duration),
    /// Some subscription waits forever (`initial_fetch_timeout: 0s`).
    Unbounded,
}

impl super::Bootstrap {
    /// The longest initialisation can wait for control planes (see [`XdsInitBudget`]).
    pub fn xds_init_budget(&self) -> XdsInitBudget {
        let static_eds: Vec<Option<Duration>> = self
            .clusters
            .iter()
            .filter_map(|c| c.eds.as_ref().map(|e| e.source.initial_fetch_timeout))
            .collect();
        let static_rds: Vec<Option<Duration>> = self
            .listeners
            .iter()
            .flat_map(|l| l.all_filter_chains())
            .filter_map(|c| match &c.network {
                super::NetworkFilter::Http(h) => {
                    h.rds.as_ref().map(|r| r.source.initial_fetch_timeout)
                }
                super::NetworkFilter::TcpProxy(_) => None,
            })
            .collect();
        let dynamic = &self.dynamic;
        if static_eds.is_empty()
            && static_rds.is_empty()
            && dynamic.cds.is_none()
            && dynamic.lds.is_none()
        {
            return XdsInitBudget::Static;
        }
        // Steps run one after another; each waits at most its longest timeout (None:
        // forever).
        let longest = |list: &[Option<Duration>]| -> Option<Duration> {
            list.iter()
                .try_fold(Duration::ZERO, |acc, t| t.map(|t| acc.max(t)))
        };
        let default = Some(DEFAULT_INITIAL_FETCH_TIMEOUT);
        let mut steps = vec![longest(&static_eds)];
        if let Some(cds) = &dynamic.cds {
            // CDS, then the EDS of the clusters it delivers (their own timeouts are
            // unknown until then: Envoy's default).
            steps.push(cds.initial_fetch_timeout);
            steps.push(default);
        }
        if let Some(lds) = &dynamic.lds {
            steps.push(lds.initial_fetch_timeout);
            if static_rds.is_empty() {
                steps.push(default);
            }
        }
        steps.push(longest(&static_rds));
        let mut total = Duration::ZERO;
        for step in steps {
            match step {
                Some(d) => total += d,
                None => return XdsInitBudget::Unbounded,
            }
        }
        XdsInitBudget::Bounded(total)
    }
}
