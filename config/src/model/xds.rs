//! Where dynamic configuration comes from: `dynamic_resources`, the `ConfigSource`s of
//! CDS/LDS/EDS/RDS, and the standalone `ClusterLoadAssignment` an EDS response carries.
//! Everything is validated and defaulted; the xDS client only reads it.

use std::path::PathBuf;
use std::time::Duration;

use super::LoadAssignment;

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
