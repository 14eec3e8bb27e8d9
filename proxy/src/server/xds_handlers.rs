//! What each xDS type does to the server, as Envoy 1.40 applies it:
//! - CDS: every cluster is translated first. A proto constraint failure (an enum value
//!   that does not exist) rejects the whole response; otherwise the good clusters are
//!   added or updated (warming as the cluster manager does), SotW removes the API
//!   clusters the response no longer lists, and the clusters that failed are named in
//!   the NACK.
//! - EDS: each assignment replaces its clusters' hosts; failures are NACKed.
//! - LDS: as CDS, through the listener manager (failed listeners named in the NACK).
//! - RDS: each route configuration replaces its provider's table; an invalid one changes
//!   nothing and is NACKed.

use std::sync::Arc;
use std::time::SystemTime;

use baton_config::resource::{self, ResourceContext, ResourceError};
use baton_proto::pb::envoy::config::listener::v3 as listener_pb;
use prost::Message;

use super::init::{InitManager, InitPhase};
use super::listener_manager::{ListenerError, ListenerManager, ListenerMeta};
use crate::http::rds::{RouteConfigMeta, RouteConfigProviders};
use crate::listener::ListenerHashes;
use crate::upstream::{ClusterManager, ClusterSource};
use crate::xds::{HandlerFuture, ResourceHandler, Update};

fn hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, 0).max(1)
}

/// A failure that Envoy's proto validation (PGV) catches before anything is built:
/// Envoy rejects the whole response then.
fn is_proto_validation(e: &ResourceError) -> bool {
    e.error.message == "unknown enum value"
}

/// Envoy's wording for a proto constraint failure, naming the field's message type.
fn proto_validation_detail(e: &ResourceError) -> String {
    let kind = e.type_url.rsplit('.').next().unwrap_or("Resource");
    let field = e.error.path.rsplit('.').next().unwrap_or("");
    let camel: String = field
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect();
    format!(
        "{e}: Proto constraint validation failed ({kind}ValidationError.{camel}: value must be one of the defined enum values)"
    )
}

/// CDS.
pub struct CdsHandler {
    /// The clusters.
    pub clusters: Arc<ClusterManager>,
    /// Translation context.
    pub ctx: Arc<ResourceContext>,
    /// The server's initialisation (the ACK waits for warming only once the cluster
    /// manager has initialised).
    pub init: InitManager,
}

impl ResourceHandler for CdsHandler {
    /// Measured on Envoy 1.40: while the cluster manager initialises, a CDS response is
    /// ACKed at once (after the EDS requests of the clusters it added), even if they
    /// still warm; afterwards the ACK waits until the clusters it added have warmed.
    fn ack_barrier(
        &self,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
        if self.init.phase() <= InitPhase::CdsClusters {
            return None;
        }
        let clusters = self.clusters.clone();
        Some(Box::pin(async move { clusters.wait_warm().await }))
    }

    fn apply(&self, update: Update) -> HandlerFuture<'_> {
        Box::pin(async move {
            let mut good = Vec::new();
            let mut errors = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for r in &update.resources {
                // A SotW name given twice: as Envoy, the first applies and the
                // response is NACKed.
                if !seen.insert(r.name.as_str()) {
                    errors.push(format!("{0}: duplicate cluster {0} found", r.name));
                    continue;
                }
                match resource::cluster(&self.ctx, &r.any) {
                    Ok(model) => good.push((r, model)),
                    Err(e) if is_proto_validation(&e) => return Err(proto_validation_detail(&e)),
                    Err(e) => errors.push(format!("{}: {}", r.name, e.error)),
                }
            }
            let batch = good
                .into_iter()
                .map(|(r, model)| {
                    (
                        Arc::new(model),
                        ClusterSource::Cds {
                            // As Envoy: the resource's own version.
                            version_info: r.version.clone(),
                            config_hash: hash(&r.any.value),
                            config_dump: Some(resource::ResourceDump::shared(r.any.clone())),
                        },
                    )
                })
                .collect();
            self.clusters.add_or_update_all(batch);
            let removed: Vec<String> = if update.state_of_the_world {
                let listed: std::collections::HashSet<&str> =
                    update.resources.iter().map(|r| r.name.as_str()).collect();
                let snapshot = self.clusters.snapshot();
                snapshot
                    .iter()
                    .filter(|(_, m)| m.added_via_api)
                    .map(|(c, _)| c.name().to_string())
                    .chain(self.clusters.warming_names())
                    .filter(|n| !listed.contains(n.as_str()))
                    .collect()
            } else {
                update.removed.clone()
            };
            for name in removed {
                self.clusters.remove(&name);
            }
            if errors.is_empty() {
                self.clusters.set_cds_version(&update.version_info);
                Ok(())
            } else {
                Err(format!(
                    "Error adding/updating cluster(s) {}",
                    errors.join(", ")
                ))
            }
        })
    }
}

/// EDS.
pub struct EdsHandler {
    /// The clusters.
    pub clusters: Arc<ClusterManager>,
    /// Translation context.
    pub ctx: Arc<ResourceContext>,
}

impl ResourceHandler for EdsHandler {
    fn initial_fetch_failed(&self) {
        self.clusters.eds_fetch_timed_out();
    }

    fn apply(&self, update: Update) -> HandlerFuture<'_> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let mut errors = Vec::new();
            let mut assignments = Vec::with_capacity(update.resources.len());
            for r in &update.resources {
                match resource::cluster_load_assignment(&self.ctx, &r.any) {
                    Ok(cla) => assignments.push((cla.cluster_name, Arc::new(cla.load_assignment))),
                    Err(e) => {
                        self.clusters
                            .reject_assignment(&r.name, !update.state_of_the_world);
                        errors.push(e.to_string());
                    }
                }
            }
            self.clusters
                .set_assignments(assignments, &update.version_info, started);
            for name in &update.removed {
                self.clusters.remove_assignment(name, &update.version_info);
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("\n"))
            }
        })
    }
}

/// Config identity of an LDS listener: whole, without chains, and per chain.
pub fn listener_hashes(any: &prost_types::Any) -> ListenerHashes {
    let Ok(mut proto) = listener_pb::Listener::decode(any.value.as_slice()) else {
        return ListenerHashes {
            whole: hash(&any.value),
            ..Default::default()
        };
    };
    let chains = proto
        .filter_chains
        .iter()
        .map(|c| hash(&c.encode_to_vec()))
        .collect();
    let default_chain = proto
        .default_filter_chain
        .as_ref()
        .map(|c| hash(&c.encode_to_vec()));
    proto.filter_chains.clear();
    proto.default_filter_chain = None;
    ListenerHashes {
        whole: hash(&any.value),
        base: hash(&proto.encode_to_vec()),
        chains,
        default_chain,
    }
}

/// LDS.
pub struct LdsHandler {
    /// The listeners.
    pub listeners: Arc<ListenerManager>,
    /// The clusters (inline route configs check their clusters).
    pub clusters: Arc<ClusterManager>,
    /// RDS route configurations (names no listener uses any more are dropped).
    pub providers: Arc<RouteConfigProviders>,
    /// Translation context.
    pub ctx: Arc<ResourceContext>,
}

impl ResourceHandler for LdsHandler {
    fn apply(&self, update: Update) -> HandlerFuture<'_> {
        Box::pin(async move {
            let mut errors = Vec::new();
            let known = |c: &str| self.clusters.has_cluster(c);
            let mut good = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for r in &update.resources {
                // A SotW name given twice: as Envoy, the first applies and the
                // response is NACKed.
                if !seen.insert(r.name.as_str()) {
                    errors.push(format!("{0}: duplicate listener {0} found", r.name));
                    continue;
                }
                match resource::listener(&self.ctx, &r.any, &known) {
                    Ok(model) => good.push((r, model)),
                    Err(e) if is_proto_validation(&e) => return Err(proto_validation_detail(&e)),
                    Err(e) => errors.push(format!("{}: {}", r.name, e.error)),
                }
            }
            let listed: std::collections::HashSet<String> =
                update.resources.iter().map(|r| r.name.clone()).collect();
            let removed: Vec<String> = if update.state_of_the_world {
                self.listeners
                    .states()
                    .into_iter()
                    .filter(|s| s.state != "draining")
                    .filter(|s| s.meta.as_ref().is_some_and(|m| m.added_via_api))
                    .map(|s| s.name)
                    .filter(|n| !listed.contains(n))
                    .collect()
            } else {
                update.removed.clone()
            };
            // Removals first, so a listener taking over a removed one's address can bind.
            for name in removed {
                self.listeners.remove(&name);
            }
            for (r, model) in good {
                let meta = ListenerMeta {
                    added_via_api: true,
                    // As Envoy: the resource's own version (a delta resource's, a
                    // collection entry's; SotW: the response's).
                    version_info: r.version.clone(),
                    last_updated: SystemTime::now(),
                    config_dump: Some(resource::ResourceDump::shared(r.any.clone())),
                };
                let address = model.address;
                match self
                    .listeners
                    .add_or_update(Arc::new(model), listener_hashes(&r.any), meta)
                    .await
                {
                    Ok(_) => {}
                    Err(e @ ListenerError::Static(_)) => errors.push(e.to_string()),
                    Err(e) => errors.push(format!("{} ({address}): {e}", r.name)),
                }
            }
            self.providers.prune();
            crate::tls::sds_xds::prune();
            if errors.is_empty() {
                self.listeners.set_lds_version(&update.version_info);
                Ok(())
            } else {
                Err(format!(
                    "Error adding/updating listener(s) {}\n",
                    errors.join(", ")
                ))
            }
        })
    }
}

/// RDS.
pub struct RdsHandler {
    /// Route configurations in use.
    pub providers: Arc<RouteConfigProviders>,
    /// The clusters (for `validate_clusters: true`).
    pub clusters: Arc<ClusterManager>,
    /// Translation context.
    pub ctx: Arc<ResourceContext>,
}

impl ResourceHandler for RdsHandler {
    fn apply(&self, update: Update) -> HandlerFuture<'_> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let known = |c: &str| self.clusters.has_cluster(c);
            let mut errors = Vec::new();
            for r in &update.resources {
                let Some(provider) = self.providers.get(&r.name) else {
                    continue;
                };
                match resource::route_configuration(&self.ctx, &r.any, &known) {
                    Ok(model) => {
                        provider.stats().update_attempt.inc();
                        let reloaded = provider.update(
                            Arc::new(model),
                            RouteConfigMeta {
                                version_info: update.version_info.clone(),
                                last_updated: SystemTime::now(),
                                config_dump: resource::ResourceDump::shared(r.any.clone()),
                            },
                        );
                        provider.stats().accepted(
                            &update.version_info,
                            started.elapsed(),
                            reloaded,
                        );
                    }
                    Err(e) => {
                        provider.stats().update_attempt.inc();
                        provider.stats().rejected(!update.state_of_the_world);
                        errors.push(e.to_string());
                    }
                }
            }
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("\n"))
            }
        })
    }

    fn initial_fetch_failed(&self) {
        for p in self.providers.all() {
            p.give_up_waiting();
        }
    }
}
