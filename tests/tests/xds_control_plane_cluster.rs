//! The control-plane connection as Envoy 1.40 shows it: its streams carry the cluster's
//! name as `:authority`, the connection counts in the xDS cluster's `upstream_cx_*` and
//! the stream in its `upstream_rq_*` (measured on Envoy: one connection, HTTP/2; one
//! request, active while the stream is open, counted as a 200 once its response
//! headers came).

mod xds_support;

use baton_tests::config::XdsTransport;
use baton_tests::xds::ControlPlane;
use baton_tests::EchoUpstream;
use xds_support::*;

sotw_and_delta!(control_plane_connection_counts_in_its_cluster,);

async fn control_plane_connection_counts_in_its_cluster(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let authorities = cp.authorities();
    assert!(!authorities.is_empty());
    assert!(
        authorities.iter().all(|a| a == "xds_cluster"),
        "{authorities:?}"
    );
    let prefix = "cluster.xds_cluster.";
    let expected: &[(&str, u64)] = &[
        ("upstream_cx_total", 1),
        ("upstream_cx_http2_total", 1),
        ("upstream_cx_connect_fail", 0),
        ("upstream_cx_destroy", 0),
        ("upstream_rq_total", 1),
        ("upstream_rq_pending_total", 1),
        ("upstream_rq_active", 1),
        ("upstream_rq_200", 1),
        ("upstream_rq_2xx", 1),
        ("upstream_rq_completed", 1),
    ];
    for (name, value) in expected {
        let name = format!("{prefix}{name}");
        assert_eq!(proxy.stat(&name).await?, Some(*value), "{name}");
    }
    Ok(())
}
