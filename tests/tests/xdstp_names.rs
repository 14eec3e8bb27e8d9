//! `xdstp://` names. A singleton resource named by an `xdstp://` URL (here an EDS
//! `service_name` and an RDS `route_config_name`) is subscribed to and matched by that
//! exact name over ADS, SotW and delta, as Envoy 1.40 does, with or without
//! `node_context_params` in the bootstrap. Those go into the names of the CDS / LDS
//! collection subscriptions only, as `xds.node.<field>` context parameters, and a
//! collection's members must carry them too. Glob collections are in
//! `xdstp_collections.rs`, federation in `xdstp_federation.rs`.

mod xds_support;

use baton_tests::config::static_cluster;
use baton_tests::config::XdsTransport;
use baton_tests::xds::{
    resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::{EchoUpstream, Proxy, StartOptions};
use serde_json::json;
use xds_support::*;

const SERVICE: &str = "xdstp://cp.example/envoy.config.endpoint.v3.ClusterLoadAssignment/backend";
const ROUTES: &str = "xdstp://cp.example/envoy.config.route.v3.RouteConfiguration/routes";

sotw_and_delta!(
    xdstp_names_are_subscribed_by_name,
    node_context_params_go_into_collection_names,
);

async fn xdstp_names_are_subscribed_by_name(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let mut backend = resources::eds_cluster("backend");
    backend["eds_cluster_config"]["service_name"] = json!(SERVICE);
    cp.set(CLUSTER_TYPE, "1", resources::clusters(&[backend])?)?;
    cp.set(
        ENDPOINT_TYPE,
        "1",
        resources::load_assignments(&[resources::load_assignment(SERVICE, &[a.addr()])])?,
    )?;
    let listener = resources::rds_listener("http", 0, ROUTES);
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
    let routes = resources::route_to(ROUTES, "backend");
    cp.set(ROUTE_TYPE, "1", resources::route_configs(&[routes])?)?;
    let mut config = bootstrap(&cp, transport).build();
    // Measured on Envoy 1.40: singleton names get no node context parameters.
    config["node_context_params"] = json!(["id", "cluster"]);
    let proxy = Proxy::start(&config).await?;
    wait_all_acked(&cp, "1").await?;
    wait_served_by(proxy.listener_addr("http").await?, "a").await?;
    for (type_url, name) in [(ENDPOINT_TYPE, SERVICE), (ROUTE_TYPE, ROUTES)] {
        let names = first_subscription(&cp, type_url, transport)?;
        assert_eq!(names, [name]);
    }
    Ok(())
}

const MESH: &str = "xdstp://cp.example/envoy.config.cluster.v3.Cluster/mesh/";

/// Observed on Envoy 1.40 (SotW and delta): the collection's name carries one
/// `xds.node.<field>` parameter per known field named (`bogus` is ignored), sorted with
/// the locator's own parameters by key; `metadata` gives one parameter per key with the
/// value as JSON; `%`, `#`, `[`, `]`, `&` and `=` are percent-encoded, other characters
/// (space, `"`, `{`, `:`) are not. A member named with only the locator's parameters is
/// not one of the collection; a member with all of them is.
async fn node_context_params_go_into_collection_names(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let user_agent = if baton_tests::is_envoy() {
        "envoy"
    } else {
        "baton"
    };
    let node_params = format!(
        "xds.node.cluster=test-cluster&xds.node.id=test-node\
         &xds.node.locality.region=r 1&xds.node.locality.zone=z%261\
         &xds.node.metadata.k=\"v\"&xds.node.metadata.n=1\
         &xds.node.metadata.o={{\"x\":%5B1,\"y\"%5D}}&xds.node.user_agent_name={user_agent}"
    );
    let member = format!("{MESH}a?b=2&{node_params}&zz=1");
    let clusters = [
        static_cluster(&member, &[a.addr()]),
        static_cluster(&format!("{MESH}locator_only?b=2&zz=1"), &[a.addr()]),
    ];
    cp.set(CLUSTER_TYPE, "1", resources::clusters(&clusters)?)?;
    let mut config = bootstrap(&cp, transport).build();
    config["dynamic_resources"]["cds_resources_locator"] = json!(format!("{MESH}*?zz=1&b=2"));
    config["node"]["locality"] = json!({"region": "r 1", "zone": "z&1", "sub_zone": "s"});
    config["node"]["metadata"] = json!({"k": "v", "n": 1, "o": {"x": [1, "y"]}});
    config["node_context_params"] = json!([
        "id",
        "cluster",
        "locality.zone",
        "metadata",
        "user_agent_name",
        "locality.region",
        "bogus"
    ]);
    let opts = StartOptions {
        no_wait_ready: true,
        ..Default::default()
    };
    let proxy = Proxy::start_with(&config, opts).await?;
    cp.wait_for_ack(CLUSTER_TYPE, "1", XDS_TIMEOUT).await?;
    let names = first_subscription(&cp, CLUSTER_TYPE, transport)?;
    assert_eq!(names, [format!("{MESH}*?b=2&{node_params}&zz=1")]);
    let dump = config_dump(&proxy).await?;
    let clusters = dump_section(&dump, "ClustersConfigDump")?;
    // Active or still warming: either way the member was taken.
    let taken: Vec<&str> = ["dynamic_active_clusters", "dynamic_warming_clusters"]
        .iter()
        .filter_map(|array| clusters[*array].as_array())
        .flatten()
        .filter_map(|c| c["cluster"]["name"].as_str())
        .collect();
    assert_eq!(taken, [member.as_str()], "{clusters}");
    Ok(())
}
