//! baton-supervisor with an xDS bootstrap: a generation whose control plane has not
//! answered yet is STARTING, and `ctl status` shows what its initialisation waits for
//! (the generation's sd_notify `STATUS=`); once the control plane answers it goes LIVE.
//! Baton only (the supervisor runs baton).

mod supervisor_support;

use std::time::Duration;

use baton_tests::config::{free_port, XdsBootstrap};
use baton_tests::xds::{
    resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::{EchoUpstream, TempDir};
use supervisor_support::*;

#[tokio::test]
async fn status_shows_what_a_starting_generation_waits_for() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let port = free_port()?;
    cp.set(
        CLUSTER_TYPE,
        "1",
        resources::clusters(&[resources::eds_cluster("backend")])?,
    )?;
    cp.set(
        ENDPOINT_TYPE,
        "1",
        resources::load_assignments(&[resources::load_assignment("backend", &[a.addr()])])?,
    )?;
    cp.set(
        LISTENER_TYPE,
        "1",
        resources::listeners(&[resources::rds_listener("http", port, "routes")])?,
    )?;
    cp.set(
        ROUTE_TYPE,
        "1",
        resources::route_configs(&[resources::route_to("routes", "backend")])?,
    )?;
    cp.hold(CLUSTER_TYPE);

    let dir = TempDir::new()?;
    let config = dir.join("xds.yaml");
    std::fs::write(
        &config,
        serde_json::to_string_pretty(&XdsBootstrap::new(cp.addr()).build())?,
    )?;
    let mut sup = SupervisorProcess::start(
        &dir,
        SupervisorOptions {
            binary: baton_binary(),
            baton_args: vec!["-c".into(), config.display().to_string()],
            ..Default::default()
        },
    )?;
    let detail = baton_tests::eventually(Duration::from_secs(20), || {
        let status = sup.status();
        async move {
            let status = status?;
            let generation = &status["generations"][0];
            let detail = generation["detail"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Ok((generation["state"] == "STARTING" && detail.contains("CDS")).then_some(detail))
        }
    })
    .await?;
    assert!(detail.contains("waiting for CDS"), "{detail}");
    let (code, table, _) = sup.ctl(&["status"])?;
    assert_eq!(code, 1, "nothing is LIVE yet: {table}");
    assert!(table.contains("STARTING"), "{table}");
    assert!(table.contains("waiting for CDS"), "{table}");

    cp.release(CLUSTER_TYPE);
    sup.wait_live().await?;
    let served = baton_tests::get(([127, 0, 0, 1], port).into(), "/").await?;
    assert_eq!(served.status, 200);
    Ok(())
}
