//! xDS basics against the test control plane, each over ADS state of the world and delta:
//! traffic through CDS+EDS+LDS+RDS with `/config_dump` showing the dynamic resources and
//! their versions, the shape of the first requests and of ACKs, `set_node_on_first_message_only`,
//! non-aggregated CDS/LDS/EDS/RDS streams, a control plane on a Unix socket, and the xDS
//! stats.

mod xds_support;

use std::collections::BTreeMap;

use baton_tests::config::{prefix_route, vhost, XdsBootstrap, XdsTransport};
use baton_tests::xds::{
    resources, ControlPlane, LoggedRequest, Service, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE,
    ROUTE_TYPE,
};
use baton_tests::{EchoUpstream, TempDir};
use xds_support::*;

sotw_and_delta!(
    traffic_through_cds_eds_lds_rds,
    first_requests_and_acks,
    node_on_first_message_only,
    separate_cds_lds_eds_rds_streams,
    xds_stats,
);

/// CDS (an EDS cluster), EDS, LDS (a listener with RDS) and RDS over one ADS stream:
/// the listener serves through the cluster, and `/config_dump` shows each resource under
/// Envoy's keys: `ClustersConfigDump.dynamic_active_clusters[].{version_info, cluster,
/// last_updated}` next to `static_clusters[]` (no version), `ListenersConfigDump.
/// dynamic_listeners[].{name, active_state.{version_info, listener, last_updated}}`,
/// `RoutesConfigDump.dynamic_route_configs[].{version_info, route_config, last_updated}`,
/// and a top-level `version_info` in the cluster and listener sections (the last accepted
/// CDS/LDS version; the routes section has none).
///
/// Observed on Envoy 1.40: when CDS version 2 adds cluster `other` and repeats `backend`
/// unchanged (SotW) or does not send it (delta), `backend` keeps `version_info` "1": an
/// unchanged cluster is skipped, and a dynamic cluster's version is the one it was last
/// added or modified with. EDS endpoints change without touching the cluster's version.
async fn traffic_through_cds_eds_lds_rds(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("http").await?;
    wait_served_by(addr, "a").await?;

    let dump = config_dump(&proxy).await?;
    let clusters = dump_section(&dump, "ClustersConfigDump")?;
    assert_eq!(clusters["version_info"], "1", "{clusters}");
    let backend = dump_entry(
        clusters,
        "dynamic_active_clusters",
        "/cluster/name",
        "backend",
    )?;
    assert_eq!(backend["version_info"], "1", "{backend}");
    assert_eq!(backend["cluster"]["type"], "EDS", "{backend}");
    assert!(backend["last_updated"].is_string(), "{backend}");
    let xds_cluster = dump_entry(clusters, "static_clusters", "/cluster/name", "xds_cluster")?;
    assert!(xds_cluster.get("version_info").is_none(), "{xds_cluster}");
    let listeners = dump_section(&dump, "ListenersConfigDump")?;
    assert_eq!(listeners["version_info"], "1", "{listeners}");
    let http = dump_entry(listeners, "dynamic_listeners", "/name", "http")?;
    assert_eq!(http["active_state"]["version_info"], "1", "{http}");
    assert_eq!(http["active_state"]["listener"]["name"], "http", "{http}");
    assert!(http["active_state"]["last_updated"].is_string(), "{http}");
    assert!(http.get("warming_state").is_none(), "{http}");
    let routes = dump_section(&dump, "RoutesConfigDump")?;
    let route_config = dump_entry(
        routes,
        "dynamic_route_configs",
        "/route_config/name",
        "routes",
    )?;
    assert_eq!(route_config["version_info"], "1", "{route_config}");
    assert!(route_config["last_updated"].is_string(), "{route_config}");

    // `/clusters` marks the CDS cluster `added_via_api`; the JSON form leaves the field
    // out when false, as proto3 JSON does.
    let text = proxy.admin_request("GET", "/clusters").await?.body_text();
    assert!(text.contains("backend::added_via_api::true\n"), "{text}");
    assert!(
        text.contains("xds_cluster::added_via_api::false\n"),
        "{text}"
    );
    let json = proxy
        .admin_request("GET", "/clusters?format=json")
        .await?
        .json()?;
    let status = |name: &str| {
        json["cluster_statuses"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(status("backend")["added_via_api"], true, "{json}");
    assert!(
        status("xds_cluster").get("added_via_api").is_none(),
        "{json}"
    );

    // Endpoints move to b; a second cluster appears next to the unchanged `backend`.
    set_endpoints(
        &cp,
        "2",
        &[("backend", &[b.addr()]), ("other", &[a.addr()])],
    )?;
    set_clusters(&cp, "2", &["backend", "other"])?;
    cp.wait_for_ack(CLUSTER_TYPE, "2", XDS_TIMEOUT).await?;
    cp.wait_for_ack(ENDPOINT_TYPE, "2", XDS_TIMEOUT).await?;
    wait_served_by(addr, "b").await?;
    let dump = config_dump(&proxy).await?;
    let clusters = dump_section(&dump, "ClustersConfigDump")?;
    assert_eq!(clusters["version_info"], "2", "{clusters}");
    let backend = dump_entry(
        clusters,
        "dynamic_active_clusters",
        "/cluster/name",
        "backend",
    )?;
    assert_eq!(backend["version_info"], "1", "{backend}");
    let other = dump_entry(
        clusters,
        "dynamic_active_clusters",
        "/cluster/name",
        "other",
    )?;
    assert_eq!(other["version_info"], "2", "{other}");
    Ok(())
}

/// The first request of each type and the answer to each response.
///
/// Observed on Envoy 1.40 (both transports): the stream opens with a wildcard CDS request
/// (SotW: no `resource_names`; delta: no `resource_names_subscribe`, the legacy wildcard),
/// with empty `version_info` and `response_nonce`. The EDS request for the new cluster
/// comes before the CDS ACK; LDS is asked only once the clusters are initialised, and RDS
/// when the listener arrives. So the first request of each type comes in the order CDS,
/// EDS, LDS, RDS. EDS and RDS name their resources. Every request carries `node` (id,
/// cluster, the bootstrap's metadata and locality, `user_agent_name` "envoy" ("baton"
/// for Baton), `user_agent_build_version` 1.40.x, no `client_features`), not only the
/// first. An ACK names the response's nonce; a SotW ACK also carries its `version_info`,
/// a delta ACK has no version at all.
async fn first_requests_and_acks(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let mut config = bootstrap(&cp, transport).build();
    config["node"]["metadata"] = serde_json::json!({ "ISTIO_VERSION": "1.24.0", "n": 1 });
    config["node"]["locality"] = serde_json::json!({ "region": "r", "zone": "z", "sub_zone": "s" });
    let _proxy = baton_tests::Proxy::start(&config).await?;
    wait_all_acked(&cp, "1").await?;

    let requests = cp.requests();
    let log = baton_tests::xds::describe_requests(&requests);
    let first = &requests[0];
    assert_eq!(first.type_url, CLUSTER_TYPE, "{log}");
    assert_eq!(first.delta, transport == XdsTransport::Delta, "{log}");
    assert_eq!(first.service, Service::Ads, "{log}");
    let node = first.node.as_ref().expect("first request has a node");
    assert_eq!(node.id, "test-node");
    assert_eq!(node.cluster, "test-cluster");
    if baton_tests::is_envoy() {
        assert_eq!(node.user_agent_name, "envoy");
        assert!(node.user_agent_version_type.is_some(), "{node:?}");
    } else {
        assert_eq!(node.user_agent_name, "baton");
    }
    // The bootstrap's metadata and locality as given; a build version; no client
    // features (Envoy 1.40 sends none either).
    let metadata = node.metadata.as_ref().expect("node metadata");
    assert_eq!(metadata.fields.len(), 2, "{node:?}");
    assert!(metadata.fields.contains_key("ISTIO_VERSION"), "{node:?}");
    let locality = node.locality.as_ref().expect("node locality");
    assert_eq!(
        (
            locality.region.as_str(),
            locality.zone.as_str(),
            locality.sub_zone.as_str()
        ),
        ("r", "z", "s")
    );
    assert!(node.user_agent_version_type.is_some(), "{node:?}");
    assert!(node.client_features.is_empty(), "{node:?}");
    assert!(requests.iter().all(|r| r.node.is_some()), "{log}");

    let mut order: Vec<&str> = Vec::new();
    for request in &requests {
        if !order.contains(&request.type_url.as_str()) {
            order.push(&request.type_url);
        }
    }
    assert_eq!(
        order,
        [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE],
        "{log}"
    );

    let first_of = |type_url: &str| -> &LoggedRequest {
        requests
            .iter()
            .find(|r| r.type_url == type_url)
            .expect("asked for every type")
    };
    for type_url in [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE] {
        let request = first_of(type_url);
        assert_eq!(request.version_info, "", "{log}");
        assert_eq!(request.response_nonce, "", "{log}");
        assert!(!request.is_nack(), "{log}");
    }
    let names = |r: &LoggedRequest| match transport {
        XdsTransport::Sotw => r.resource_names.clone(),
        XdsTransport::Delta => r.subscribe.clone(),
    };
    assert!(names(first_of(CLUSTER_TYPE)).is_empty(), "{log}");
    assert!(names(first_of(LISTENER_TYPE)).is_empty(), "{log}");
    assert_eq!(names(first_of(ENDPOINT_TYPE)), ["backend"], "{log}");
    assert_eq!(names(first_of(ROUTE_TYPE)), ["routes"], "{log}");

    for response in cp.responses() {
        let ack = requests
            .iter()
            .find(|r| r.stream == response.stream && r.response_nonce == response.nonce)
            .unwrap_or_else(|| panic!("no ACK of {response:?}\n{log}"));
        assert_eq!(ack.type_url, response.type_url, "{log}");
        assert!(!ack.is_nack(), "{log}");
        match transport {
            XdsTransport::Sotw => assert_eq!(ack.version_info, response.version, "{log}"),
            XdsTransport::Delta => {
                assert_eq!(ack.version_info, "", "{log}");
                assert!(
                    ack.subscribe.is_empty() && ack.unsubscribe.is_empty(),
                    "{log}"
                );
            }
        }
    }
    Ok(())
}

/// With `set_node_on_first_message_only: true`, only the stream's first request carries
/// `node` (observed on Envoy 1.40, both transports).
async fn node_on_first_message_only(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let mut bootstrap = bootstrap(&cp, transport);
    bootstrap.node_on_first_message_only = true;
    let _proxy = start(&bootstrap).await?;
    wait_all_acked(&cp, "1").await?;
    let requests = cp.requests();
    let log = baton_tests::xds::describe_requests(&requests);
    assert_eq!(
        requests[0].node.as_ref().map(|n| n.id.as_str()),
        Some("test-node"),
        "{log}"
    );
    assert!(requests[1..].iter().all(|r| r.node.is_none()), "{log}");
    Ok(())
}

/// `cds_config` and `lds_config` with their own gRPC `api_config_source` (no ADS), and the
/// EDS cluster and RDS listener pointing at the same source: each type gets its own stream
/// on its own service (CDS, EDS, LDS, RDS), and traffic flows as over ADS.
async fn separate_cds_lds_eds_rds_streams(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let mut bootstrap = bootstrap(&cp, transport);
    bootstrap.aggregated = false;
    let source = bootstrap.resource_source();
    let cluster = resources::eds_cluster_from("backend", source.clone());
    cp.set(CLUSTER_TYPE, "1", resources::clusters(&[cluster])?)?;
    set_endpoints(&cp, "1", &[("backend", &[a.addr()])])?;
    let listener = resources::rds_listener_from("http", 0, "routes", source);
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
    set_routes(&cp, "1", "backend")?;
    let proxy = start(&bootstrap).await?;
    wait_all_acked(&cp, "1").await?;
    wait_served_by(proxy.listener_addr("http").await?, "a").await?;

    let requests = cp.requests();
    let log = baton_tests::xds::describe_requests(&requests);
    let mut streams: BTreeMap<&str, (Service, u64)> = BTreeMap::new();
    for request in &requests {
        let seen = streams
            .entry(request.type_url.as_str())
            .or_insert((request.service, request.stream));
        assert_eq!(*seen, (request.service, request.stream), "{log}");
    }
    assert_eq!(streams[CLUSTER_TYPE].0, Service::Cds, "{log}");
    assert_eq!(streams[ENDPOINT_TYPE].0, Service::Eds, "{log}");
    assert_eq!(streams[LISTENER_TYPE].0, Service::Lds, "{log}");
    assert_eq!(streams[ROUTE_TYPE].0, Service::Rds, "{log}");
    assert_eq!(cp.streams(), 4, "{log}");
    Ok(())
}

/// The stats Envoy keeps for xDS after the first snapshot, then after a CDS update that
/// modifies a cluster and an RDS update.
///
/// Observed on Envoy 1.40: a modified EDS cluster warms until an EDS response for it
/// arrives, and the CDS ACK waits for that (no ACK while any cluster of the response
/// warms). Over SotW, Envoy re-sends its EDS request unchanged (same names, version and
/// nonce) and the control plane answers it again; over delta Envoy sends nothing, and
/// without a push from the control plane the cluster would warm until the EDS
/// `initial_fetch_timeout` (15 s). With `other` absent from the EDS snapshot, a new
/// cluster `other` likewise stays warming.
///
/// Observed on Envoy 1.40: `update_attempt` counts the initial request too (2 after the
/// first response), `<...>.version` is xxHash64 (seed 0) of the accepted `version_info`
/// (13237225503670494420 for "1"; the delta system version), `cluster_added` counts the
/// static `xds_cluster` as well, and `control_plane.connected_state` is 1 while the stream
/// is up.
async fn xds_stats(transport: XdsTransport) -> anyhow::Result<()> {
    const VERSION_1_HASH: u64 = 13_237_225_503_670_494_420;
    const VERSION_2_HASH: u64 = 6_927_017_134_761_466_251;
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let stats = wait_stat(&proxy, "http.ingress.rds.routes.update_success", 1).await?;
    let expected: &[(&str, u64)] = &[
        ("control_plane.connected_state", 1),
        ("control_plane.pending_requests", 0),
        ("control_plane.rate_limit_enforced", 0),
        ("cluster_manager.cds.update_attempt", 2),
        ("cluster_manager.cds.update_success", 1),
        ("cluster_manager.cds.update_rejected", 0),
        ("cluster_manager.cds.update_failure", 0),
        ("cluster_manager.cds.init_fetch_timeout", 0),
        ("cluster_manager.cds.version", VERSION_1_HASH),
        ("cluster_manager.cluster_added", 2),
        ("cluster_manager.cluster_modified", 0),
        ("cluster_manager.cluster_removed", 0),
        ("cluster_manager.active_clusters", 2),
        ("cluster_manager.warming_clusters", 0),
        ("listener_manager.lds.update_attempt", 2),
        ("listener_manager.lds.update_success", 1),
        ("listener_manager.lds.update_rejected", 0),
        ("listener_manager.lds.update_failure", 0),
        ("listener_manager.lds.version", VERSION_1_HASH),
        ("listener_manager.listener_added", 1),
        ("listener_manager.listener_modified", 0),
        ("listener_manager.listener_removed", 0),
        ("listener_manager.total_listeners_active", 1),
        ("listener_manager.total_listeners_warming", 0),
        ("http.ingress.rds.routes.update_attempt", 2),
        ("http.ingress.rds.routes.update_success", 1),
        ("http.ingress.rds.routes.update_rejected", 0),
        ("http.ingress.rds.routes.version", VERSION_1_HASH),
        ("cluster.backend.update_success", 1),
        ("cluster.backend.membership_total", 1),
    ];
    assert_stats(&stats, expected);
    // The text readout holds the `control_plane.identifier` the responses carry.
    assert_eq!(
        stat_lines(&proxy, "^control_plane.identifier$").await?,
        [(
            "control_plane.identifier".to_string(),
            format!("\"{}\"", baton_tests::xds::CONTROL_PLANE_IDENTIFIER)
        )]
    );

    // Modify `backend` (a longer connect timeout) and the routes at version 2.
    let mut cluster = resources::eds_cluster("backend");
    cluster["connect_timeout"] = serde_json::json!("0.5s");
    cp.set(CLUSTER_TYPE, "2", resources::clusters(&[cluster])?)?;
    if transport == XdsTransport::Delta {
        // The modified cluster warms until its assignment arrives again; over delta Envoy
        // does not ask for it (see the doc comment), so push it as control planes do.
        cp.resend(ENDPOINT_TYPE);
    }
    // Changed routes (a renamed virtual host): delta sends only resources that changed.
    let routes = resources::route_config(
        "routes",
        vec![vhost("renamed", &["*"], vec![prefix_route("/", "backend")])],
    );
    cp.set(ROUTE_TYPE, "2", resources::route_configs(&[routes])?)?;
    cp.wait_for_ack(CLUSTER_TYPE, "2", XDS_TIMEOUT).await?;
    cp.wait_for_ack(ROUTE_TYPE, "2", XDS_TIMEOUT).await?;
    let stats = wait_stat(&proxy, "cluster_manager.cluster_modified", 1).await?;
    let stats = if stats.get("http.ingress.rds.routes.update_success") == Some(&2) {
        stats
    } else {
        wait_stat(&proxy, "http.ingress.rds.routes.update_success", 2).await?
    };
    assert_stats(
        &stats,
        &[
            ("cluster_manager.cds.update_success", 2),
            ("cluster_manager.cds.version", VERSION_2_HASH),
            ("cluster_manager.cluster_added", 2),
            ("cluster_manager.active_clusters", 2),
            ("http.ingress.rds.routes.version", VERSION_2_HASH),
            ("listener_manager.lds.update_success", 1),
        ],
    );
    Ok(())
}

fn assert_stats(stats: &BTreeMap<String, u64>, expected: &[(&str, u64)]) {
    let diffs: Vec<String> = expected
        .iter()
        .filter(|(name, value)| stats.get(*name) != Some(value))
        .map(|(name, value)| format!("{name}: expected {value}, got {:?}", stats.get(*name)))
        .collect();
    assert!(diffs.is_empty(), "stats differ:\n{}", diffs.join("\n"));
}

/// The control plane on a Unix socket (`pipe` address of the `xds_cluster` endpoint).
#[tokio::test]
async fn control_plane_over_unix_socket() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let path = dir.join("xds.sock");
    let cp = ControlPlane::start_unix(&path).await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let mut bootstrap = XdsBootstrap::new(cp.addr());
    bootstrap.pipe = Some(path);
    let proxy = start(&bootstrap).await?;
    wait_all_acked(&cp, "1").await?;
    wait_served_by(proxy.listener_addr("http").await?, "a").await?;
    Ok(())
}
