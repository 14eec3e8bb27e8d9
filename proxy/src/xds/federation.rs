//! xDS-TP federation: which stream serves a named resource. With the runtime flag
//! `envoy.reloadable_features.xdstp_based_config_singleton_subscriptions` on (as in
//! Envoy 1.40, off by default), an EDS or RDS name `xdstp://<authority>/...` is
//! subscribed on the ADS stream of the first bootstrap `config_sources` entry naming the
//! authority, else of `default_config_source`, else through the resource's own config
//! source; every other name keeps its own source.
//!
//! A subscription's names are split once per change into one list per target (a names
//! watch each), so one handler serves the resources every stream delivers.
//!
//! As Envoy reads the flag each time it creates a subscription (one per EDS cluster or
//! RDS route configuration), a name is routed by the flag's value when it first appears
//! and stays on that stream while it is subscribed; with an admin runtime layer, a
//! `/runtime_modify` of the flag so applies to names subscribed afterwards.

use std::collections::HashMap;

use std::sync::Arc;

use baton_config::model::{AuthoritySource, Federation};
use tokio::sync::watch;

use super::client::Parts;

/// Where a subset of a subscription's names goes.
pub(super) enum Target {
    /// The resource's own config source.
    Own,
    /// A federated source: its index (0.. = `config_sources`, then the default) and it.
    Authority(usize, AuthoritySource),
}

/// Whether `type_url`'s names are routed by authority.
pub(super) fn routes(
    federation: &Federation,
    type_url: &str,
    names: &Option<watch::Receiver<Vec<String>>>,
) -> bool {
    (federation.route_singletons || crate::runtime::snapshot().has_admin_layer())
        && names.is_some()
        && (type_url == super::ENDPOINT_TYPE || type_url == super::ROUTE_TYPE)
        && (!federation.sources.is_empty() || federation.default.is_some())
}

/// Index of the target serving `name` when singletons are routed: 0 = own source,
/// 1 + i = federated source i.
fn target_of(federation: &Federation, name: &str) -> usize {
    let Some(source) = federation.authority_source(name) else {
        return 0;
    };
    let index = federation
        .sources
        .iter()
        .position(|s| std::ptr::eq(s, source))
        .unwrap_or(federation.sources.len());
    1 + index
}

/// Whether the runtime flag is on now (the static layers, then `/runtime_modify`).
fn flag_now() -> bool {
    crate::runtime::snapshot()
        .get(baton_config::model::XDSTP_SINGLETONS_FLAG)
        .is_some_and(|v| v == "true" || v.parse::<f64>().is_ok_and(|n| n != 0.0))
}

/// Splits names per target, each name keeping the target it got when it first appeared.
struct Router {
    federation: Federation,
    targets: usize,
    assigned: HashMap<String, usize>,
}

impl Router {
    /// `names` split per target (one list per target, in target order); a new name is
    /// routed when `route` (the flag's value now) says so.
    fn split(&mut self, names: &[String], route: bool) -> Vec<Vec<String>> {
        self.assigned
            .retain(|name, _| names.iter().any(|n| n == name));
        let mut lists = vec![Vec::new(); self.targets];
        for name in names {
            let target = *self.assigned.entry(name.clone()).or_insert_with(|| {
                if route {
                    target_of(&self.federation, name)
                } else {
                    0
                }
            });
            lists[target].push(name.clone());
        }
        lists
    }
}

/// `parts` as one subscription per target, each with its share of the names (kept up
/// to date as the names change); the handler, stats and init callback are shared.
pub(super) fn split(federation: &Federation, parts: Parts) -> Vec<(Target, Parts)> {
    let Parts {
        type_url,
        names,
        handler,
        stats,
        init,
    } = parts;
    let Some(mut names) = names else {
        return Vec::new();
    };
    let mut targets = vec![Target::Own];
    for (i, source) in federation.sources.iter().enumerate() {
        targets.push(Target::Authority(i, source.clone()));
    }
    if let Some(default) = &federation.default {
        targets.push(Target::Authority(federation.sources.len(), default.clone()));
    }
    let mut router = Router {
        federation: federation.clone(),
        targets: targets.len(),
        assigned: HashMap::new(),
    };
    let first = router.split(&names.borrow_and_update(), flag_now());
    let mut senders = Vec::with_capacity(targets.len());
    let mut out = Vec::with_capacity(targets.len());
    for (target, list) in targets.into_iter().zip(first) {
        let (tx, rx) = watch::channel(list);
        senders.push(tx);
        out.push((
            target,
            Parts {
                type_url,
                names: Some(rx),
                handler: Arc::clone(&handler),
                stats: stats.clone(),
                init: Arc::clone(&init),
            },
        ));
    }
    tokio::spawn(async move {
        while names.changed().await.is_ok() {
            let lists = router.split(&names.borrow_and_update(), flag_now());
            for (tx, list) in senders.iter().zip(lists) {
                tx.send_if_modified(|current| {
                    let changed = *current != list;
                    *current = list;
                    changed
                });
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_config::model::{ApiConfigSource, XdsApiType};

    fn source(authorities: &[&str]) -> AuthoritySource {
        AuthoritySource {
            authorities: authorities.iter().map(|a| a.to_string()).collect(),
            api: ApiConfigSource {
                api_type: XdsApiType::DeltaGrpc,
                cluster_name: "xds".into(),
                grpc_timeout: None,
                max_receive_message_length: None,
                set_node_on_first_message_only: false,
                rate_limit: None,
            },
            initial_fetch_timeout: None,
        }
    }

    #[test]
    fn names_go_to_the_source_naming_their_authority_else_the_default() {
        let mut federation = Federation {
            sources: vec![source(&["a.example"]), source(&["b.example", "c.example"])],
            default: Some(source(&[])),
            route_singletons: true,
        };
        let names: Vec<String> = [
            "plain",
            "xdstp://a.example/envoy.config.endpoint.v3.ClusterLoadAssignment/x",
            "xdstp://c.example/envoy.config.endpoint.v3.ClusterLoadAssignment/y",
            "xdstp://other.example/envoy.config.endpoint.v3.ClusterLoadAssignment/z",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect();
        let router = |federation: &Federation, targets| Router {
            federation: federation.clone(),
            targets,
            assigned: HashMap::new(),
        };
        let lists = router(&federation, 4).split(&names, true);
        assert_eq!(lists[0], [names[0].clone()]);
        assert_eq!(lists[1], [names[1].clone()]);
        assert_eq!(lists[2], [names[2].clone()]);
        assert_eq!(lists[3], [names[3].clone()]);
        federation.default = None;
        let mut three = router(&federation, 3);
        let lists = three.split(&names, true);
        assert_eq!(lists[0], [names[0].clone(), names[3].clone()]);
        // Names keep their target; new ones follow the flag as it is now.
        let mut more = names.clone();
        more.push("xdstp://a.example/envoy.config.endpoint.v3.ClusterLoadAssignment/w".into());
        let lists = three.split(&more, false);
        assert_eq!(
            lists[0],
            [names[0].clone(), names[3].clone(), more[4].clone()]
        );
        assert_eq!(lists[1], [names[1].clone()]);
        // A name dropped and subscribed again is routed anew.
        three.split(&names[..1], false);
        let lists = three.split(&more, true);
        assert_eq!(lists[1], [names[1].clone(), more[4].clone()]);
        let lists = router(&federation, 3).split(&names, false);
        assert_eq!(lists[0], names);
    }
}
