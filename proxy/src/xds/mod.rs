//! The xDS client: subscriptions to Envoy's discovery services over gRPC, state of the
//! world (SotW) or incremental (delta), on one aggregated stream (ADS) or one stream per
//! type (`api_config_source`).
//!
//! Reading order: `client` (subscribe: which stream a config source maps to) ->
//! `stream` (one gRPC stream: connect with Envoy's jittered backoff, send requests in
//! subscription order, ACK/NACK every response exactly as Envoy does) -> `grpc` (the
//! channel to the control-plane cluster and the service paths) -> `stats`. Beside them:
//! `updates` (a response as an [`Update`]), `collection` (xDS-TP glob collection
//! membership), `file_source` (`path_config_source` and `file://` collections),
//! `federation` (xDS-TP names routed by authority).
//!
//! What a response *means* is not decided here: each subscription has a
//! [`ResourceHandler`] (implemented by `server/`, which owns the cluster and listener
//! managers) that applies an [`Update`] and answers Ok (ACK) or the error detail of a
//! NACK. The handler is awaited before the next response is read, so updates apply in
//! order, one at a time, as in Envoy.

mod backoff;
mod client;
mod collection;
mod federation;
mod file_source;
mod grpc;
mod inherit;
mod rate_limit;
mod stats;
mod stream;
mod updates;

use std::future::Future;
use std::pin::Pin;

pub use client::{Subscription, XdsClient, XdsSettings};
pub use inherit::{AcceptedState, Inherited};
pub use stats::{SubscriptionKind, SubscriptionStats};

/// Type URL of CDS resources.
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Type URL of EDS resources.
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// Type URL of LDS resources.
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Type URL of SDS resources.
pub const SECRET_TYPE: &str = baton_config::sds::SECRET_TYPE;
/// Type URL of RDS resources.
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// One resource of a response.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its name (delta: as sent; SotW: read from the resource).
    pub name: String,
    /// Delta: the resource's own version; SotW: the response's `version_info`.
    pub version: String,
    /// The resource as received, shared with what keeps it (the accepted state handed
    /// to a successor, `/config_dump`) instead of copied for each.
    pub any: std::sync::Arc<prost_types::Any>,
}

/// One response, for a handler to apply.
#[derive(Debug, Clone)]
pub struct Update {
    /// `version_info` (SotW) or `system_version_info` (delta).
    pub version_info: String,
    /// Added or updated resources (SotW: every resource of the type that exists).
    pub resources: Vec<Resource>,
    /// Delta: `removed_resources`. SotW: empty (absence from `resources` is removal for
    /// CDS and LDS; the handler decides).
    pub removed: Vec<String>,
    /// True for SotW (the response is the whole set).
    pub state_of_the_world: bool,
}

impl Update {
    /// What the update says, as one number: an accepted update whose fingerprint
    /// differs from the last one's changed the config (`config_reload`). Over delta
    /// every update that adds, changes or removes something does.
    pub fn fingerprint(&self) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for r in &self.resources {
            h.update(r.name.as_bytes());
            h.update(&[0]);
            h.update(&r.any.value);
        }
        for name in &self.removed {
            h.update(name.as_bytes());
            h.update(&[1]);
        }
        h.digest()
    }
}

/// A future a handler returns.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Applies one type's updates. `Err(detail)` NACKs the response with that
/// `error_detail` message (whatever part of it could be applied stays applied).
pub trait ResourceHandler: Send + Sync {
    /// Applies `update`.
    fn apply(&self, update: Update) -> HandlerFuture<'_>;
    /// The initial fetch gave up (timeout) or failed: waiting listeners/clusters stop
    /// waiting for this subscription.
    fn initial_fetch_failed(&self) {}
    /// After an accepted update: what its ACK waits for (None: ACK at once).
    fn ack_barrier(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        None
    }
}
