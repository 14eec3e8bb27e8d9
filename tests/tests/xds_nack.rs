//! Invalid xDS resources, each over ADS state of the world and delta: what Envoy NACKs
//! (with `error_detail`, the response's nonce and, for SotW, the last accepted version),
//! what it applies of a partly invalid response, and that the old config keeps serving.

mod xds_support;

use baton_proto::pb::envoy::config::cluster::v3::Cluster;
use baton_tests::config::{prefix_route, static_cluster, vhost, XdsTransport};
use baton_tests::xds::{
    resources, ControlPlane, LoggedRequest, LoggedResponse, CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::EchoUpstream;
use prost::Message;
use serde_json::json;
use xds_support::*;

sotw_and_delta!(
    invalid_route_config_is_nacked_and_old_routes_serve,
    invalid_listener_is_nacked_and_good_listeners_are_added,
    cds_applies_good_clusters_and_nacks_the_one_that_fails,
    cds_out_of_range_enum_rejects_the_whole_response,
    duplicate_names_and_foreign_types_are_nacked,
);

/// Waits for the answer to `type_url` at `version` and checks it is a NACK of that
/// response: same nonce, SotW `version_info` of the last accepted version (`accepted`),
/// an `error_detail` with a message. Returns the NACK.
async fn expect_nack(
    cp: &ControlPlane,
    transport: XdsTransport,
    type_url: &str,
    version: &str,
    accepted: &str,
) -> anyhow::Result<(LoggedResponse, LoggedRequest)> {
    let (response, nack) = cp.wait_for_answer(type_url, version, XDS_TIMEOUT).await?;
    assert!(nack.is_nack(), "expected a NACK, got {nack:?}");
    assert_eq!(nack.response_nonce, response.nonce);
    match transport {
        XdsTransport::Sotw => assert_eq!(nack.version_info, accepted, "{nack:?}"),
        XdsTransport::Delta => assert_eq!(nack.version_info, "", "{nack:?}"),
    }
    let status = nack.error_detail.as_ref().expect("NACK has error_detail");
    assert!(!status.message.is_empty(), "{nack:?}");
    // Envoy 1.40 reports every rejection as google.rpc.Code INTERNAL (13).
    assert_eq!(status.code, 13, "error_detail code: {status:?}");
    Ok((response, nack))
}

/// A route configuration with two virtual hosts both claiming `*` is rejected.
///
/// Observed on Envoy 1.40: NACK with `error_detail` {code 13 (INTERNAL), message "Only a
/// single wildcard domain is permitted in route routes"}; the old routes keep serving,
/// `/config_dump` keeps version 1, `rds.routes.update_rejected` counts 1. A later valid
/// version is accepted as usual.
async fn invalid_route_config_is_nacked_and_old_routes_serve(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("http").await?;
    wait_served_by(addr, "a").await?;

    let bad = resources::route_config(
        "routes",
        vec![
            vhost("one", &["*"], vec![prefix_route("/", "backend")]),
            vhost("two", &["*"], vec![prefix_route("/", "nowhere")]),
        ],
    );
    cp.set(ROUTE_TYPE, "2", resources::route_configs(&[bad])?)?;
    let (_, nack) = expect_nack(&cp, transport, ROUTE_TYPE, "2", "1").await?;
    if baton_tests::is_envoy() {
        assert_eq!(
            nack.error_message(),
            "Only a single wildcard domain is permitted in route routes"
        );
    } else {
        assert!(nack.error_message().contains("routes"), "{nack:?}");
    }
    assert_eq!(get_once(addr, "/").await?, (200, "a".to_string()));
    let stats = wait_stat(&proxy, "http.ingress.rds.routes.update_rejected", 1).await?;
    assert_eq!(
        stats.get("http.ingress.rds.routes.update_success"),
        Some(&1)
    );
    let dump = config_dump(&proxy).await?;
    let routes = dump_section(&dump, "RoutesConfigDump")?;
    let entry = dump_entry(
        routes,
        "dynamic_route_configs",
        "/route_config/name",
        "routes",
    )?;
    assert_eq!(entry["version_info"], "1", "{entry}");

    let good = resources::route_config(
        "routes",
        vec![vhost("renamed", &["*"], vec![prefix_route("/", "backend")])],
    );
    cp.set(ROUTE_TYPE, "3", resources::route_configs(&[good])?)?;
    cp.wait_for_ack(ROUTE_TYPE, "3", XDS_TIMEOUT).await?;
    wait_stat(&proxy, "http.ingress.rds.routes.update_success", 2).await?;
    assert_eq!(get_once(addr, "/").await?, (200, "a".to_string()));
    Ok(())
}

/// LDS version 2 breaks listener `http` (no filter chains) and adds a good listener
/// `extra`.
///
/// Observed on Envoy 1.40: the response is NACKed naming `http` by name and then by
/// address, with a trailing newline ("Error adding/updating listener(s) http: error adding
/// listener '127.0.0.1:0': no filter chains specified\n"), the good listener `extra` is
/// added and serves,
/// and the old `http` keeps serving; `/config_dump` shows `http` still at version 1 and
/// `extra` at 2, and `lds.update_rejected` counts 1.
async fn invalid_listener_is_nacked_and_good_listeners_are_added(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("http").await?;
    wait_served_by(addr, "a").await?;

    let broken = json!({
        "name": "http",
        "address": baton_tests::config::socket_address("127.0.0.1", 0),
        "filter_chains": [],
    });
    let extra = resources::rds_listener("extra", 0, "routes");
    cp.set(LISTENER_TYPE, "2", resources::listeners(&[broken, extra])?)?;
    let (_, nack) = expect_nack(&cp, transport, LISTENER_TYPE, "2", "1").await?;
    assert!(nack.error_message().contains("http"), "{nack:?}");
    if baton_tests::is_envoy() {
        assert_eq!(
            nack.error_message(),
            "Error adding/updating listener(s) http: error adding listener '127.0.0.1:0': \
             no filter chains specified\n"
        );
    }
    let stats = wait_stat(&proxy, "listener_manager.lds.update_rejected", 1).await?;
    assert_eq!(stats.get("listener_manager.listener_added"), Some(&2));
    assert_eq!(get_once(addr, "/").await?, (200, "a".to_string()));
    let extra_addr = proxy.listener_addr("extra").await?;
    wait_served_by(extra_addr, "a").await?;
    let dump = config_dump(&proxy).await?;
    let listeners = dump_section(&dump, "ListenersConfigDump")?;
    let http = dump_entry(listeners, "dynamic_listeners", "/name", "http")?;
    assert_eq!(http["active_state"]["version_info"], "1", "{http}");
    let extra = dump_entry(listeners, "dynamic_listeners", "/name", "extra")?;
    assert_eq!(extra["active_state"]["version_info"], "2", "{extra}");
    Ok(())
}

/// The partial CDS case of issue 14: CDS version 2 keeps `backend` and adds two good
/// STATIC clusters around a STATIC cluster whose endpoint is a hostname.
///
/// Observed on Envoy 1.40: the good clusters are added (active, `version_info` "2"), the
/// bad one is not, and the response is NACKed with one message naming it:
/// "Error adding/updating cluster(s) bad: malformed IP address: localhost. Consider
/// setting resolver_name or setting cluster type to 'STRICT_DNS' or 'LOGICAL_DNS'".
/// `cds.update_rejected` counts 1, `cds.update_success` stays 1 and `cds.version` stays
/// the hash of "1" although clusters were added.
async fn cds_applies_good_clusters_and_nacks_the_one_that_fails(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("http").await?;

    let mut bad = static_cluster("bad", &[a.addr()]);
    bad["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"]["address"] = json!("localhost");
    let clusters = [
        resources::eds_cluster("backend"),
        static_cluster("good_one", &[a.addr()]),
        bad,
        static_cluster("good_two", &[a.addr()]),
    ];
    cp.set(CLUSTER_TYPE, "2", resources::clusters(&clusters)?)?;
    let (_, nack) = expect_nack(&cp, transport, CLUSTER_TYPE, "2", "1").await?;
    assert!(nack.error_message().contains("bad"), "{nack:?}");
    assert!(!nack.error_message().contains("good"), "{nack:?}");
    if baton_tests::is_envoy() {
        assert_eq!(
            nack.error_message(),
            "Error adding/updating cluster(s) bad: malformed IP address: localhost. \
             Consider setting resolver_name or setting cluster type to 'STRICT_DNS' or \
             'LOGICAL_DNS'"
        );
    }
    let stats = wait_stat(&proxy, "cluster_manager.cds.update_rejected", 1).await?;
    assert_eq!(stats.get("cluster_manager.cds.update_success"), Some(&1));
    assert_eq!(
        stats.get("cluster_manager.cds.version"),
        Some(&13_237_225_503_670_494_420)
    );
    assert_eq!(stats.get("cluster_manager.active_clusters"), Some(&4));
    let dump = config_dump(&proxy).await?;
    let clusters = dump_section(&dump, "ClustersConfigDump")?;
    for name in ["good_one", "good_two"] {
        let entry = dump_entry(clusters, "dynamic_active_clusters", "/cluster/name", name)?;
        assert_eq!(entry["version_info"], "2", "{entry}");
    }
    assert!(
        dump_entry(clusters, "dynamic_active_clusters", "/cluster/name", "bad").is_err(),
        "{clusters}"
    );
    assert_eq!(get_once(addr, "/").await?, (200, "a".to_string()));
    Ok(())
}

/// CDS version 2 adds a good cluster and a cluster whose `lb_policy` is 99 (no such enum
/// value): proto validation fails, so the whole response is rejected and nothing of it
/// applies (the good cluster is not added), while `backend` keeps serving.
///
/// Observed on Envoy 1.40: the NACK message is the bad cluster in protobuf text format
/// (behind a `goo.gle/debug...` marker) followed by ": Proto constraint validation failed
/// (ClusterValidationError.LbPolicy: value must be one of the defined enum values)".
async fn cds_out_of_range_enum_rejects_the_whole_response(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("http").await?;

    let good = resources::to_any(CLUSTER_TYPE, &static_cluster("good", &[a.addr()]))?;
    let valid = resources::to_any(CLUSTER_TYPE, &static_cluster("broken", &[a.addr()]))?;
    let mut broken = Cluster::decode(valid.value.as_slice())?;
    broken.lb_policy = 99;
    let broken = resources::message_any(CLUSTER_TYPE, &broken);
    let backend = resources::to_any(CLUSTER_TYPE, &resources::eds_cluster("backend"))?;
    cp.set(CLUSTER_TYPE, "2", vec![backend, good, broken])?;
    let (_, nack) = expect_nack(&cp, transport, CLUSTER_TYPE, "2", "1").await?;
    assert!(nack.error_message().contains("broken"), "{nack:?}");
    assert!(nack.error_message().contains("LbPolicy"), "{nack:?}");
    let stats = wait_stat(&proxy, "cluster_manager.cds.update_rejected", 1).await?;
    assert_eq!(stats.get("cluster_manager.active_clusters"), Some(&2));
    let dump = config_dump(&proxy).await?;
    let clusters = dump_section(&dump, "ClustersConfigDump")?;
    assert!(
        dump_entry(clusters, "dynamic_active_clusters", "/cluster/name", "good").is_err(),
        "{clusters}"
    );
    assert_eq!(get_once(addr, "/").await?, (200, "a".to_string()));
    Ok(())
}

/// A response naming a resource twice, and one holding a resource of another type.
///
/// Observed on Envoy 1.40: over SotW a CDS or LDS response naming `extra` twice is
/// applied but for the second `extra` (the other new clusters and listeners are added)
/// and NACKed ("Error adding/updating cluster(s) extra: duplicate cluster extra found",
/// "Error adding/updating listener(s) dupl: duplicate listener dupl found\n"); over delta
/// it is rejected whole ("duplicate name extra found among added/updated resources").
/// A CDS response holding a Listener is rejected whole over both ("... does not match
/// the message-wide type URL ...", Envoy adding a dump of the response).
async fn duplicate_names_and_foreign_types_are_nacked(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let sotw = transport == XdsTransport::Sotw;
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let addr = proxy.listener_addr("http").await?;

    let clusters = [
        resources::eds_cluster("backend"),
        resources::static_cluster("extra", &[a.addr()]),
        resources::static_cluster("extra", &[a.addr()]),
        resources::static_cluster("third", &[a.addr()]),
    ];
    cp.set(CLUSTER_TYPE, "2", resources::clusters(&clusters)?)?;
    let (_, nack) = expect_nack(&cp, transport, CLUSTER_TYPE, "2", "1").await?;
    let expected = if sotw {
        "Error adding/updating cluster(s) extra: duplicate cluster extra found"
    } else {
        "duplicate name extra found among added/updated resources"
    };
    assert_eq!(nack.error_message(), expected);
    let active = if sotw { 4 } else { 2 };
    let stats = wait_stat(&proxy, "cluster_manager.cds.update_rejected", 1).await?;
    assert_eq!(stats.get("cluster_manager.active_clusters"), Some(&active));

    let mut mixed = resources::clusters(&[resources::eds_cluster("backend")])?;
    mixed.extend(resources::listeners(&[resources::rds_listener(
        "stray", 0, "routes",
    )])?);
    cp.set(CLUSTER_TYPE, "3", mixed)?;
    let (_, nack) = expect_nack(&cp, transport, CLUSTER_TYPE, "3", "1").await?;
    let message = nack.error_message();
    // SotW: "<type> does not match ..."; delta: "type URL <type> embedded in an
    // individual Any does not match ...".
    assert!(message.contains(LISTENER_TYPE), "{message}");
    assert!(
        message.contains(&format!(
            "does not match the message-wide type URL {CLUSTER_TYPE} in"
        )),
        "{message}"
    );
    let stats = wait_stat(&proxy, "cluster_manager.cds.update_rejected", 2).await?;
    assert_eq!(stats.get("cluster_manager.active_clusters"), Some(&active));

    let listeners = [
        resources::rds_listener("http", 0, "routes"),
        resources::rds_listener("dupl", 0, "routes"),
        resources::rds_listener("dupl", 0, "routes"),
    ];
    cp.set(LISTENER_TYPE, "2", resources::listeners(&listeners)?)?;
    let (_, nack) = expect_nack(&cp, transport, LISTENER_TYPE, "2", "1").await?;
    let expected = if sotw {
        "Error adding/updating listener(s) dupl: duplicate listener dupl found\n"
    } else {
        "duplicate name dupl found among added/updated resources"
    };
    assert_eq!(nack.error_message(), expected);
    wait_stat(&proxy, "listener_manager.lds.update_rejected", 1).await?;
    let listeners_active = if sotw { 2 } else { 1 };
    let stats = wait_stat(
        &proxy,
        "listener_manager.total_listeners_active",
        listeners_active,
    )
    .await?;
    assert_eq!(
        stats.get("listener_manager.listener_added"),
        Some(&listeners_active)
    );
    assert_eq!(get_once(addr, "/").await?, (200, "a".to_string()));
    Ok(())
}
