//! The stats of an EDS cluster's subscription, under `cluster.<name>.` beside the
//! cluster's own, as Envoy 1.40 shows them (each value here was read from Envoy first,
//! over ADS state of the world and delta): the subscription's start counts an
//! `update_attempt`; each assignment counts an attempt and a success (and
//! `update_no_rebuild` when it changes nothing), sets `version_text`, `version` (its
//! xxHash64) and `update_time`; a NACKed one counts an attempt and `update_rejected` and
//! changes nothing else (over delta it counts two attempts); `warming_state` is 1 while a CDS cluster waits for its first
//! assignment; `init_fetch_timeout` counts a first assignment that did not come in time.

mod xds_support;

use std::collections::BTreeMap;
use std::time::Duration;

use baton_tests::config::XdsTransport;
use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE};
use baton_tests::{EchoUpstream, Proxy};
use serde_json::json;
use xds_support::*;

sotw_and_delta!(
    eds_updates_are_counted_per_cluster,
    eds_initial_fetch_timeout_is_counted,
);

/// xxHash64 of the `version_info`, Envoy's `version`.
fn version_hash(v: &str) -> u64 {
    match v {
        "1" => 13_237_225_503_670_494_420,
        "2" => 6_927_017_134_761_466_251,
        "3" => 2_744_517_546_871_237_796,
        _ => 0,
    }
}

/// `cluster.backend.*` subscription names and their values (update_time as set or not).
async fn eds_stats(proxy: &Proxy, cluster: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let filter = format!(
        "^cluster[.]{cluster}[.](update_|version|init_fetch|assignment_|membership_excluded|warming_state)"
    );
    let prefix = format!("cluster.{cluster}.");
    Ok(stat_lines(proxy, &filter)
        .await?
        .into_iter()
        .filter_map(|(name, value)| {
            let name = name.strip_prefix(&prefix)?.to_string();
            let value = match name.as_str() {
                "update_time" if value != "0" => "set".to_string(),
                "update_duration" => "histogram".to_string(),
                _ => value,
            };
            Some((name, value))
        })
        .collect())
}

fn expect(
    version_text: &str,
    attempt: u64,
    success: u64,
    no_rebuild: u64,
    rejected: u64,
    accepted_version: &str,
    warming: u64,
) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = [
        "assignment_stale",
        "assignment_timeout_received",
        "assignment_use_cached",
        "init_fetch_timeout",
        "membership_excluded",
        "update_empty",
        "update_failure",
    ]
    .iter()
    .map(|n| (n.to_string(), "0".to_string()))
    .collect();
    let set = |m: &mut BTreeMap<String, String>, k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    set(&mut m, "version_text", format!("\"{version_text}\""));
    set(&mut m, "update_attempt", attempt.to_string());
    set(&mut m, "update_success", success.to_string());
    set(&mut m, "update_no_rebuild", no_rebuild.to_string());
    set(&mut m, "update_rejected", rejected.to_string());
    set(
        &mut m,
        "version",
        version_hash(accepted_version).to_string(),
    );
    set(&mut m, "warming_state", warming.to_string());
    set(&mut m, "update_duration", "histogram".into());
    let time = if success > 0 { "set" } else { "0" };
    set(&mut m, "update_time", time.into());
    m
}

async fn eds_updates_are_counted_per_cluster(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let proxy = start_unready(&bootstrap(&cp, transport)).await?;
    set_clusters(&cp, "1", &["backend"])?;
    cp.wait_for_ack(CLUSTER_TYPE, "1", XDS_TIMEOUT).await?;
    wait_stat(&proxy, "cluster_manager.warming_clusters", 1).await?;
    assert_eq!(
        eds_stats(&proxy, "backend").await?,
        expect("", 1, 0, 0, 0, "", 1)
    );

    set_all(&cp, "1", &[a.addr()], 0)?;
    wait_all_acked(&cp, "1").await?;
    wait_stat(&proxy, "cluster.backend.update_success", 1).await?;
    assert_eq!(
        eds_stats(&proxy, "backend").await?,
        expect("1", 2, 1, 0, 0, "1", 0)
    );

    set_endpoints(&cp, "2", &[("backend", &[a.addr(), b.addr()])])?;
    cp.wait_for_ack(ENDPOINT_TYPE, "2", XDS_TIMEOUT).await?;
    wait_stat(&proxy, "cluster.backend.update_success", 2).await?;
    assert_eq!(
        eds_stats(&proxy, "backend").await?,
        expect("2", 3, 2, 0, 0, "2", 0)
    );

    // State of the world only: the control plane sends the same assignment again
    // (the delta one sends nothing for an unchanged resource).
    let (attempts, successes, no_rebuild, accepted) = if transport == XdsTransport::Sotw {
        set_endpoints(&cp, "3", &[("backend", &[a.addr(), b.addr()])])?;
        cp.wait_for_ack(ENDPOINT_TYPE, "3", XDS_TIMEOUT).await?;
        wait_stat(&proxy, "cluster.backend.update_success", 3).await?;
        assert_eq!(
            eds_stats(&proxy, "backend").await?,
            expect("3", 4, 3, 1, 0, "3", 0)
        );
        (4, 3, 1, "3")
    } else {
        (3, 2, 0, "2")
    };

    let mut bad = resources::load_assignment("backend", &[a.addr()]);
    bad["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["address"] =
        json!("localhost");
    cp.set(ENDPOINT_TYPE, "4", resources::load_assignments(&[bad])?)?;
    let (_, answer) = cp.wait_for_answer(ENDPOINT_TYPE, "4", XDS_TIMEOUT).await?;
    assert!(answer.is_nack(), "{answer:?}");
    wait_stat(&proxy, "cluster.backend.update_rejected", 1).await?;
    // Measured: over delta Envoy counts two attempts for a NACKed response.
    let nack_attempts = if transport == XdsTransport::Sotw {
        1
    } else {
        2
    };
    assert_eq!(
        eds_stats(&proxy, "backend").await?,
        expect(
            accepted,
            attempts + nack_attempts,
            successes,
            no_rebuild,
            1,
            accepted,
            0
        )
    );
    Ok(())
}

/// A CDS cluster whose assignment never comes within its `eds_config`'s
/// `initial_fetch_timeout` counts `init_fetch_timeout` once, with an attempt (the
/// subscription's start is the other), and stops warming.
async fn eds_initial_fetch_timeout_is_counted(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let proxy = start_unready(&bootstrap(&cp, transport)).await?;
    let cluster = resources::eds_cluster_from(
        "late",
        resources::ads_source_with_timeout(Duration::from_millis(300)),
    );
    cp.set(CLUSTER_TYPE, "1", resources::clusters(&[cluster])?)?;
    cp.wait_for_ack(CLUSTER_TYPE, "1", XDS_TIMEOUT).await?;
    wait_stat(&proxy, "cluster.late.init_fetch_timeout", 1).await?;
    wait_stat(&proxy, "cluster_manager.warming_clusters", 0).await?;
    let stats = eds_stats(&proxy, "late").await?;
    assert_eq!(stats.get("warming_state").map(String::as_str), Some("0"));
    assert_eq!(stats.get("update_attempt").map(String::as_str), Some("2"));
    assert_eq!(stats.get("update_success").map(String::as_str), Some("0"));
    assert_eq!(stats.get("version_text").map(String::as_str), Some("\"\""));
    Ok(())
}
