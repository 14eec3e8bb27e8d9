//! The counters of the CDS, LDS and RDS subscriptions, as Envoy 1.40 shows them (each
//! value read from Envoy first, over ADS state of the world and delta): which names
//! each has (`config_reload` for CDS and RDS, `update_empty` for RDS only, `update_time`
//! and `update_duration` for all), an attempt for the initial request and for each
//! response, two for a NACKed one over delta, and `config_reload` only when an accepted
//! response changed the config.

mod xds_support;

use std::collections::BTreeMap;

use baton_tests::config::XdsTransport;
use baton_tests::xds::{ControlPlane, CLUSTER_TYPE, LISTENER_TYPE};
use baton_tests::{EchoUpstream, Proxy};
use xds_support::*;

sotw_and_delta!(subscription_counters_are_envoys);

const PREFIXES: [&str; 3] = [
    "cluster_manager.cds.",
    "listener_manager.lds.",
    "http.ingress.rds.routes.",
];

/// Every `/stats` line under the three subscriptions: name -> value, with
/// `update_time` / `config_reload_time_ms` as "set" or "0".
async fn subscription_stats(proxy: &Proxy) -> anyhow::Result<BTreeMap<String, String>> {
    let filter = "^(cluster_manager[.]cds|listener_manager[.]lds|http[.]ingress[.]rds[.]routes)[.]";
    Ok(stat_lines(proxy, filter)
        .await?
        .into_iter()
        .map(|(name, value)| {
            let value = if name.ends_with("update_time") || name.ends_with("_time_ms") {
                if value == "0" { "0" } else { "set" }.to_string()
            } else if name.ends_with("update_duration") || name.ends_with("version_text") {
                "-".to_string()
            } else {
                value
            };
            (name, value)
        })
        .collect())
}

/// The expected lines: `attempts`, `rejected`, `reloads` per subscription (CDS, LDS,
/// RDS), each having accepted one response.
fn expected(attempts: u64, rejected: u64, reloads: [u64; 3]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (i, prefix) in PREFIXES.iter().enumerate() {
        let mut put = |name: &str, value: String| {
            m.insert(format!("{prefix}{name}"), value);
        };
        put("init_fetch_timeout", "0".into());
        put("update_attempt", attempts.to_string());
        put("update_failure", "0".into());
        put("update_rejected", rejected.to_string());
        put("update_success", "1".into());
        put("update_time", "set".into());
        put("version", "13237225503670494420".into());
        put("version_text", "-".into());
        put("update_duration", "-".into());
        if i != 1 {
            put("config_reload", reloads[i].to_string());
            put("config_reload_time_ms", "set".into());
        }
        if i == 2 {
            put("update_empty", "0".into());
        }
    }
    m
}

async fn subscription_counters_are_envoys(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let proxy = start_unready(&bootstrap(&cp, transport)).await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    wait_all_acked(&cp, "1").await?;
    wait_stat(&proxy, "http.ingress.rds.routes.update_success", 1).await?;
    assert_eq!(subscription_stats(&proxy).await?, expected(2, 0, [1, 0, 1]));

    // Version 2 of CDS and LDS is NACKed.
    set_nacked_clusters_and_listener(&cp, "2", a.addr())?;
    for type_url in [CLUSTER_TYPE, LISTENER_TYPE] {
        let (_, answer) = cp.wait_for_answer(type_url, "2", XDS_TIMEOUT).await?;
        assert!(answer.is_nack(), "{answer:?}");
    }
    wait_stat(&proxy, "listener_manager.lds.update_rejected", 1).await?;
    let nack_attempts = if transport == XdsTransport::Sotw {
        1
    } else {
        2
    };
    let mut want = expected(2, 0, [1, 0, 1]);
    for prefix in &PREFIXES[..2] {
        want.insert(
            format!("{prefix}update_attempt"),
            (2 + nack_attempts).to_string(),
        );
        want.insert(format!("{prefix}update_rejected"), "1".into());
    }
    assert_eq!(subscription_stats(&proxy).await?, want);
    Ok(())
}
