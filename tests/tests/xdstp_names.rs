//! `xdstp://` names. A singleton resource named by an `xdstp://` URL (here an EDS
//! `service_name` and an RDS `route_config_name`) is subscribed to and matched by that exact name over ADS, SotW and
//! delta, as Envoy 1.40 does when the bootstrap has no `node_context_params`. Glob
//! collections are in `xdstp_collections.rs`, federation in `xdstp_federation.rs`.

mod xds_support;

use baton_tests::config::XdsTransport;
use baton_tests::xds::{
    resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::EchoUpstream;
use serde_json::json;
use xds_support::*;

const SERVICE: &str = "xdstp://cp.example/envoy.config.endpoint.v3.ClusterLoadAssignment/backend";
const ROUTES: &str = "xdstp://cp.example/envoy.config.route.v3.RouteConfiguration/routes";

sotw_and_delta!(xdstp_names_are_subscribed_by_name);

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
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    wait_served_by(proxy.listener_addr("http").await?, "a").await?;
    for (type_url, name) in [(ENDPOINT_TYPE, SERVICE), (ROUTE_TYPE, ROUTES)] {
        let names = first_subscription(&cp, type_url, transport)?;
        assert_eq!(names, [name]);
    }
    Ok(())
}
