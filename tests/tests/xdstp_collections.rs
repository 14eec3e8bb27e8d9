//! xDS-TP glob collections (`dynamic_resources.cds_resources_locator` /
//! `lds_resources_locator`), as Envoy 1.40 subscribes to them over ADS: the one name of
//! the CDS / LDS subscription is the collection's URL (delta `resource_names_subscribe`,
//! SotW `resource_names`), the control plane answers with the collection's members,
//! named by their full `xdstp://` URLs, and those are the cluster and listener names (in
//! `/config_dump`, `/listeners`, and in stats with `xdstp://` written `xdstp_`). Delta
//! removes a member named in `removed_resources`, SotW one missing from a response that
//! still holds members; a response without any member (and, delta, removing none)
//! changes nothing (Envoy's collection watch never hears of it, so a first one does not
//! end the initial fetch) and is ACKed. The collection's
//! `initial_fetch_timeout` is the `cds_config` one. A `DELTA_GRPC` `api_config_source`
//! carries a collection on a stream of its own.
//!
//! Context parameters (`?k=v`) are sent sorted by key, and members carry the same ones
//! (in any order). A list collection (a locator not ending in `/*`) is accepted and
//! holds only its own name, as a singleton. Anything else a response holds is ignored.
//! Directives (`#entry=...`, `#alt=...`) are
//! checked, then folded into the name Envoy subscribes to (`#` written `%23`).
//! `file://` locators are in `xdstp_collection_files.rs`.

mod xds_support;

use std::time::Duration;

use baton_tests::config::XdsTransport;
use baton_tests::xds::{
    resources, ControlPlane, Service, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::EchoUpstream;
use serde_json::json;
use xds_support::*;

const CLUSTERS: &str = "xdstp://cp.example/envoy.config.cluster.v3.Cluster/mesh/*";
const LISTENERS: &str = "xdstp://cp.example/envoy.config.listener.v3.Listener/mesh/*";
const BACKEND: &str = "xdstp://cp.example/envoy.config.cluster.v3.Cluster/mesh/backend";
const BACKEND2: &str = "xdstp://cp.example/envoy.config.cluster.v3.Cluster/mesh/backend2";
const HTTP: &str = "xdstp://cp.example/envoy.config.listener.v3.Listener/mesh/http";
/// `BACKEND`'s stat scope, as Envoy sanitizes it.
const BACKEND_STATS: &str = "cluster.xdstp_cp.example/envoy.config.cluster.v3.Cluster/mesh/backend";

/// The bootstrap with both collection locators.
fn collection_bootstrap(
    cp: &ControlPlane,
    transport: XdsTransport,
    cds_timeout: Option<Duration>,
) -> serde_json::Value {
    let mut xds = bootstrap(cp, transport);
    xds.cds_initial_fetch_timeout = cds_timeout;
    let mut config = xds.build();
    config["dynamic_resources"]["cds_resources_locator"] = json!(CLUSTERS);
    config["dynamic_resources"]["lds_resources_locator"] = json!(LISTENERS);
    config
}

/// Clusters `names` (EDS) with endpoints `addrs` each, at `version`.
fn set_members(
    cp: &ControlPlane,
    version: &str,
    members: &[(&str, std::net::SocketAddr)],
) -> anyhow::Result<()> {
    let clusters: Vec<_> = members
        .iter()
        .map(|(n, _)| resources::eds_cluster(n))
        .collect();
    let assignments: Vec<_> = members
        .iter()
        .map(|(n, a)| resources::load_assignment(n, &[*a]))
        .collect();
    cp.set(CLUSTER_TYPE, version, resources::clusters(&clusters)?)?;
    cp.set(
        ENDPOINT_TYPE,
        version,
        resources::load_assignments(&assignments)?,
    )
}

sotw_and_delta!(glob_collections_are_subscribed_named_and_removed);

async fn glob_collections_are_subscribed_named_and_removed(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    set_members(&cp, "1", &[(BACKEND, a.addr())])?;
    let listener = resources::rds_listener(HTTP, 0, "routes");
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
    let routes = resources::route_to("routes", BACKEND);
    cp.set(ROUTE_TYPE, "1", resources::route_configs(&[routes])?)?;
    let proxy = baton_tests::Proxy::start(&collection_bootstrap(&cp, transport, None)).await?;
    wait_all_acked(&cp, "1").await?;
    // The subscriptions name the collections.
    for (type_url, locator) in [(CLUSTER_TYPE, CLUSTERS), (LISTENER_TYPE, LISTENERS)] {
        let names = first_subscription(&cp, type_url, transport)?;
        assert_eq!(names, [locator]);
    }
    // Members are named by their URLs.
    wait_served_by(proxy.listener_addr(HTTP).await?, "a").await?;
    let all = wait_stat(&proxy, &format!("{BACKEND_STATS}.membership_total"), 1).await?;
    assert_eq!(all.get("cluster_manager.cds.update_success"), Some(&1));
    assert_eq!(all.get("listener_manager.lds.update_success"), Some(&1));
    let dump = config_dump(&proxy).await?;
    let clusters = dump_section(&dump, "ClustersConfigDump")?;
    let backend = dump_entry(
        clusters,
        "dynamic_active_clusters",
        "/cluster/name",
        BACKEND,
    )?;
    assert_eq!(backend["version_info"], "1");
    let listeners = dump_section(&dump, "ListenersConfigDump")?;
    dump_entry(listeners, "dynamic_listeners", "/name", HTTP)?;

    // A new member replaces the old one: the old one is removed (delta: named in
    // `removed_resources`; SotW: absent from a response that holds members).
    set_members(&cp, "2", &[(BACKEND2, b.addr())])?;
    let routes = resources::route_to("routes", BACKEND2);
    cp.set(ROUTE_TYPE, "2", resources::route_configs(&[routes])?)?;
    cp.wait_for_ack(CLUSTER_TYPE, "2", XDS_TIMEOUT).await?;
    cp.wait_for_ack(ROUTE_TYPE, "2", XDS_TIMEOUT).await?;
    wait_served_by(proxy.listener_addr(HTTP).await?, "b").await?;
    let all = wait_stat(&proxy, "cluster_manager.cluster_removed", 1).await?;
    assert_eq!(all.get("cluster_manager.cds.update_success"), Some(&2));
    let dump = config_dump(&proxy).await?;
    let clusters = dump_section(&dump, "ClustersConfigDump")?;
    assert!(dump_entry(
        clusters,
        "dynamic_active_clusters",
        "/cluster/name",
        BACKEND
    )
    .is_err());
    dump_entry(
        clusters,
        "dynamic_active_clusters",
        "/cluster/name",
        BACKEND2,
    )?;

    // No member left.
    cp.set(CLUSTER_TYPE, "3", Vec::new())?;
    cp.wait_for_ack(CLUSTER_TYPE, "3", XDS_TIMEOUT).await?;
    match transport {
        XdsTransport::Delta => {
            let all = wait_stat(&proxy, "cluster_manager.cluster_removed", 2).await?;
            assert_eq!(all.get("cluster_manager.cds.update_success"), Some(&3));
        }
        XdsTransport::Sotw => {
            // Envoy: the collection's watch is not told; the ACK above is all.
            let all = stats(&proxy).await?;
            assert_eq!(all.get("cluster_manager.cluster_removed"), Some(&1));
            assert_eq!(all.get("cluster_manager.cds.update_success"), Some(&2));
            assert_eq!(all.get("cluster_manager.cds.update_attempt"), Some(&3));
            wait_served_by(proxy.listener_addr(HTTP).await?, "b").await?;
        }
    }
    Ok(())
}

sotw_and_delta!(a_collection_not_answered_in_time_lets_the_server_start);

async fn a_collection_not_answered_in_time_lets_the_server_start(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_members(&cp, "1", &[(BACKEND, a.addr())])?;
    let listener = resources::rds_listener(HTTP, 0, "routes");
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
    let routes = resources::route_to("routes", BACKEND);
    cp.set(ROUTE_TYPE, "1", resources::route_configs(&[routes])?)?;
    cp.hold(CLUSTER_TYPE);
    let config = collection_bootstrap(&cp, transport, Some(Duration::from_secs(1)));
    let proxy = baton_tests::Proxy::start(&config).await?;
    let all = wait_stat(&proxy, "cluster_manager.cds.init_fetch_timeout", 1).await?;
    assert_eq!(all.get("cluster_manager.cds.update_success"), Some(&0));
    assert_eq!(ready_status(&proxy).await?, 200);
    // The collection arrives later and serves.
    cp.release(CLUSTER_TYPE);
    cp.wait_for_ack(CLUSTER_TYPE, "1", XDS_TIMEOUT).await?;
    wait_served_by(proxy.listener_addr(HTTP).await?, "a").await?;
    Ok(())
}

#[tokio::test]
async fn a_collection_comes_over_its_own_delta_stream() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let backend = resources::static_cluster(BACKEND, &[a.addr()]);
    cp.set(CLUSTER_TYPE, "1", resources::clusters(&[backend])?)?;
    let routes = resources::route_to("routes", BACKEND);
    let listener = resources::inline_listener(HTTP, 0, routes);
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
    let mut xds = bootstrap(&cp, XdsTransport::Delta);
    xds.aggregated = false;
    let mut config = xds.build();
    config["dynamic_resources"]["cds_resources_locator"] = json!(CLUSTERS);
    config["dynamic_resources"]["lds_resources_locator"] = json!(LISTENERS);
    let proxy = baton_tests::Proxy::start(&config).await?;
    cp.wait_for_ack(CLUSTER_TYPE, "1", XDS_TIMEOUT).await?;
    cp.wait_for_ack(LISTENER_TYPE, "1", XDS_TIMEOUT).await?;
    wait_served_by(proxy.listener_addr(HTTP).await?, "a").await?;
    for (type_url, service, locator) in [
        (CLUSTER_TYPE, Service::Cds, CLUSTERS),
        (LISTENER_TYPE, Service::Lds, LISTENERS),
    ] {
        let first = cp
            .requests()
            .into_iter()
            .find(|r| r.type_url == type_url)
            .ok_or_else(|| anyhow::anyhow!("no {type_url} request"))?;
        assert_eq!(first.service, service);
        assert!(first.delta);
        assert_eq!(first.subscribe, [locator]);
    }
    Ok(())
}

/// CDS and LDS through `transport` with `cds` and `lds` as their locators.
fn locator_bootstrap(
    cp: &ControlPlane,
    transport: XdsTransport,
    cds: &str,
    lds: &str,
) -> serde_json::Value {
    let mut config = bootstrap(cp, transport).build();
    config["dynamic_resources"]["cds_resources_locator"] = json!(cds);
    config["dynamic_resources"]["lds_resources_locator"] = json!(lds);
    config
}

/// Cluster `cluster` over `upstream` and listener `listener` routing to it, at "1".
fn set_static_members(
    cp: &ControlPlane,
    cluster: &str,
    listener: &str,
    upstream: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let backend = resources::static_cluster(cluster, &[upstream]);
    cp.set(CLUSTER_TYPE, "1", resources::clusters(&[backend])?)?;
    let routes = resources::route_to("routes", cluster);
    let listener = resources::inline_listener(listener, 0, routes);
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)
}

sotw_and_delta!(context_parameters_are_sent_sorted_and_members_carry_them);

async fn context_parameters_are_sent_sorted_and_members_carry_them(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let backend = format!("{BACKEND}?region=eu&app=web");
    let http = format!("{HTTP}?app=web&region=eu");
    set_static_members(&cp, &backend, &http, a.addr())?;
    let config = locator_bootstrap(
        &cp,
        transport,
        &format!("{CLUSTERS}?region=eu&app=web"),
        &format!("{LISTENERS}?region=eu&app=web"),
    );
    let proxy = baton_tests::Proxy::start(&config).await?;
    cp.wait_for_ack(CLUSTER_TYPE, "1", XDS_TIMEOUT).await?;
    cp.wait_for_ack(LISTENER_TYPE, "1", XDS_TIMEOUT).await?;
    for (type_url, locator) in [(CLUSTER_TYPE, CLUSTERS), (LISTENER_TYPE, LISTENERS)] {
        let names = first_subscription(&cp, type_url, transport)?;
        assert_eq!(names, [format!("{locator}?app=web&region=eu")]);
    }
    wait_served_by(proxy.listener_addr(&http).await?, "a").await?;
    let dump = config_dump(&proxy).await?;
    let clusters = dump_section(&dump, "ClustersConfigDump")?;
    dump_entry(
        clusters,
        "dynamic_active_clusters",
        "/cluster/name",
        &backend,
    )?;
    Ok(())
}

sotw_and_delta!(a_list_collection_is_one_name);

async fn a_list_collection_is_one_name(transport: XdsTransport) -> anyhow::Result<()> {
    const LIST: &str = "xdstp://cp.example/envoy.config.listener.v3.Listener/mesh/edge";
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_static_members(&cp, BACKEND, LIST, a.addr())?;
    // Names beside it, which the list collection does not hold.
    let strangers = [
        format!("{LIST}/deeper"),
        format!("{LIST}?app=web"),
        "plain".into(),
    ];
    let mut listeners = vec![resources::inline_listener(
        LIST,
        0,
        resources::route_to("routes", BACKEND),
    )];
    for name in &strangers {
        let routes = resources::route_to("routes", BACKEND);
        listeners.push(resources::inline_listener(name, 0, routes));
    }
    cp.set(LISTENER_TYPE, "1", resources::listeners(&listeners)?)?;
    cp.send_unsubscribed(LISTENER_TYPE);
    let proxy =
        baton_tests::Proxy::start(&locator_bootstrap(&cp, transport, CLUSTERS, LIST)).await?;
    cp.wait_for_ack(LISTENER_TYPE, "1", XDS_TIMEOUT).await?;
    assert_eq!(first_subscription(&cp, LISTENER_TYPE, transport)?, [LIST]);
    wait_served_by(proxy.listener_addr(LIST).await?, "a").await?;
    let dump = config_dump(&proxy).await?;
    let listeners = dump_section(&dump, "ListenersConfigDump")?;
    for name in &strangers {
        assert!(
            dump_entry(listeners, "dynamic_listeners", "/name", name).is_err(),
            "{name} kept"
        );
    }
    Ok(())
}

sotw_and_delta!(directives_are_folded_into_the_subscribed_name);

async fn directives_are_folded_into_the_subscribed_name(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_static_members(&cp, BACKEND, HTTP, a.addr())?;
    // Envoy's CDS waits out its timeout (nothing it is told of), then LDS starts.
    let mut config = collection_bootstrap(&cp, transport, Some(Duration::from_secs(1)));
    config["dynamic_resources"]["cds_resources_locator"] =
        json!(format!("{CLUSTERS}?b=2&a=1#entry=backend"));
    config["dynamic_resources"]["lds_resources_locator"] = json!(format!(
        "{LISTENERS}#entry=http,alt=xdstp://other/envoy.config.listener.v3.Listener/mesh/*"
    ));
    // Nothing the control plane holds matches those names: no need to wait for LIVE.
    let options = baton_tests::StartOptions {
        no_wait_ready: true,
        ..Default::default()
    };
    let _proxy = baton_tests::Proxy::start_with(&config, options).await?;
    cp.wait_for_request(|r| r.type_url == LISTENER_TYPE, XDS_TIMEOUT)
        .await?;
    // Envoy writes the directives into the value of one parameter (which one follows
    // its hash map's order, different from run to run; Baton: the last one written), or
    // after the path.
    let cds = first_subscription(&cp, CLUSTER_TYPE, transport)?;
    let either = [
        format!("{CLUSTERS}?a=1%23entry%3Dbackend&b=2"),
        format!("{CLUSTERS}?a=1&b=2%23entry%3Dbackend"),
    ];
    assert!(either.iter().any(|name| cds == [name.as_str()]), "{cds:?}");
    if !baton_tests::is_envoy() {
        assert_eq!(cds, [either[0].as_str()]);
    }
    assert_eq!(
        first_subscription(&cp, LISTENER_TYPE, transport)?,
        [format!(
            "{LISTENERS}%23entry=http,alt=xdstp://other/envoy.config.listener.v3.Listener/mesh/*"
        )]
    );
    Ok(())
}

sotw_and_delta!(an_answer_without_members_is_not_heard);

/// A first answer holding no member (nothing in the collection yet) is ACKed, but the
/// collection's watch never hears of it: CDS initialises only at its timeout.
async fn an_answer_without_members_is_not_heard(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    cp.set(CLUSTER_TYPE, "1", Vec::new())?;
    let listener = resources::rds_listener(HTTP, 0, "routes");
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
    let routes = resources::route_to("routes", BACKEND);
    cp.set(ROUTE_TYPE, "1", resources::route_configs(&[routes])?)?;
    let config = collection_bootstrap(&cp, transport, Some(Duration::from_secs(1)));
    let proxy = baton_tests::Proxy::start(&config).await?;
    cp.wait_for_ack(CLUSTER_TYPE, "1", XDS_TIMEOUT).await?;
    let all = wait_stat(&proxy, "cluster_manager.cds.init_fetch_timeout", 1).await?;
    assert_eq!(all.get("cluster_manager.cds.update_success"), Some(&0));
    Ok(())
}

sotw_and_delta!(members_outside_the_collection_are_ignored);

/// What a collection keeps of what the control plane sends: only members named under
/// its path with its context parameters (in any order); anything else is dropped.
async fn members_outside_the_collection_are_ignored(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let member = format!("{BACKEND}?region=eu&app=web");
    let strangers = [
        BACKEND.to_string(),
        format!("{BACKEND2}?app=api&region=eu"),
        "xdstp://cp.example/envoy.config.cluster.v3.Cluster/other/x?app=web&region=eu".into(),
        "plain".into(),
    ];
    let mut clusters = vec![resources::static_cluster(&member, &[a.addr()])];
    for name in &strangers {
        clusters.push(resources::static_cluster(name, &[a.addr()]));
    }
    cp.set(CLUSTER_TYPE, "1", resources::clusters(&clusters)?)?;
    cp.send_unsubscribed(CLUSTER_TYPE);
    let routes = resources::route_to("routes", &member);
    let listener = resources::inline_listener(HTTP, 0, routes);
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
    let config = locator_bootstrap(
        &cp,
        transport,
        &format!("{CLUSTERS}?app=web&region=eu"),
        LISTENERS,
    );
    let proxy = baton_tests::Proxy::start(&config).await?;
    cp.wait_for_ack(LISTENER_TYPE, "1", XDS_TIMEOUT).await?;
    wait_served_by(proxy.listener_addr(HTTP).await?, "a").await?;
    let dump = config_dump(&proxy).await?;
    let clusters = dump_section(&dump, "ClustersConfigDump")?;
    dump_entry(
        clusters,
        "dynamic_active_clusters",
        "/cluster/name",
        &member,
    )?;
    for name in &strangers {
        assert!(
            dump_entry(clusters, "dynamic_active_clusters", "/cluster/name", name).is_err(),
            "{name} kept"
        );
    }
    Ok(())
}
