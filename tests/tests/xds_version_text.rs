//! The `version_text` text readouts of the xDS subscriptions (CDS, LDS, RDS), as Envoy
//! 1.40 shows them in `/stats`, `/stats?format=json` and `/stats/prometheus?text_readouts`:
//! `cluster_manager.cds.version_text` and `listener_manager.lds.version_text` exist from
//! the start with `""`, `http.<prefix>.rds.<name>.version_text` from the RDS
//! subscription's start; each holds the last accepted `version_info`, and a NACK leaves
//! it (and the `version` gauge, its xxHash64) unchanged.

mod xds_support;

use baton_tests::config::{prefix_route, vhost, XdsTransport};
use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use baton_tests::{EchoUpstream, Proxy};
use serde_json::Value;
use xds_support::*;

/// The subscriptions' readouts (an EDS cluster's `cluster.<name>.version_text` is left
/// out: Baton does not have it yet).
const FILTER: &str =
    r"^(cluster_manager\.cds|listener_manager\.lds|http\.ingress\.rds\.routes)\.version_text$";

/// xxHash64 of "1", Envoy's `version` for `version_info` "1".
const VERSION_1_HASH: u64 = 13_237_225_503_670_494_420;

sotw_and_delta!(version_text_is_the_accepted_version_info);

/// The readouts as `/stats` prints them, checked against `/stats?format=json` and
/// `/stats/prometheus?text_readouts`: (name, value) sorted by name.
async fn readouts(proxy: &Proxy) -> anyhow::Result<Vec<(String, String)>> {
    let text = proxy
        .admin_request("GET", &format!("/stats?filter={FILTER}"))
        .await?
        .body_text();
    let mut from_text: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(": ")?;
            let value = value.strip_prefix('"')?.strip_suffix('"')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect();
    from_text.sort();

    let json: Value = serde_json::from_str(
        &proxy
            .admin_request("GET", &format!("/stats?format=json&filter={FILTER}"))
            .await?
            .body_text(),
    )?;
    let mut from_json: Vec<(String, String)> = json["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["name"].as_str()?.into(), s["value"].as_str()?.into())))
        .collect();
    from_json.sort();
    assert_eq!(from_text, from_json, "{text}\n{json}");

    let prometheus = proxy
        .admin_request("GET", "/stats/prometheus?text_readouts")
        .await?
        .body_text();
    for (name, value) in &from_text {
        let line = match name.as_str() {
            "cluster_manager.cds.version_text" => {
                format!("envoy_cluster_manager_cds_version_text{{text_value=\"{value}\"}} 0")
            }
            "listener_manager.lds.version_text" => {
                format!("envoy_listener_manager_lds_version_text{{text_value=\"{value}\"}} 0")
            }
            _ => format!(
                "envoy_http_rds_version_text{{envoy_rds_route_config=\"routes\",\
                 envoy_http_conn_manager_prefix=\"ingress\",text_value=\"{value}\"}} 0"
            ),
        };
        assert!(
            prometheus.lines().any(|l| l == line),
            "{line} in\n{prometheus}"
        );
    }
    Ok(from_text)
}

fn expected(entries: &[(&str, &str)]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Observed on Envoy 1.40 (SotW and delta): before any response only the CDS and LDS
/// readouts exist, both `""`; after version 1 is ACKed the three read "1"; after CDS, LDS
/// and RDS version 2 are each NACKed they still read "1" and `version` stays the hash of
/// "1".
async fn version_text_is_the_accepted_version_info(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let proxy = start_unready(&bootstrap(&cp, transport)).await?;
    cp.wait_for_request(|r| r.type_url == CLUSTER_TYPE, XDS_TIMEOUT)
        .await?;
    assert_eq!(
        readouts(&proxy).await?,
        expected(&[
            ("cluster_manager.cds.version_text", ""),
            ("listener_manager.lds.version_text", ""),
        ])
    );

    set_all(&cp, "1", &[a.addr()], 0)?;
    wait_all_acked(&cp, "1").await?;
    wait_stat(&proxy, "http.ingress.rds.routes.update_success", 1).await?;
    let accepted = expected(&[
        ("cluster_manager.cds.version_text", "1"),
        ("http.ingress.rds.routes.version_text", "1"),
        ("listener_manager.lds.version_text", "1"),
    ]);
    assert_eq!(readouts(&proxy).await?, accepted);

    set_nacked_clusters_and_listener(&cp, "2", a.addr())?;
    let bad_routes = resources::route_config(
        "routes",
        vec![
            vhost("one", &["*"], vec![prefix_route("/", "backend")]),
            vhost("two", &["*"], vec![prefix_route("/", "backend")]),
        ],
    );
    cp.set(ROUTE_TYPE, "2", resources::route_configs(&[bad_routes])?)?;
    for type_url in [CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE] {
        let (_, answer) = cp.wait_for_answer(type_url, "2", XDS_TIMEOUT).await?;
        assert!(answer.is_nack(), "{answer:?}");
    }
    let stats = wait_stat(&proxy, "http.ingress.rds.routes.update_rejected", 1).await?;
    for prefix in [
        "cluster_manager.cds",
        "listener_manager.lds",
        "http.ingress.rds.routes",
    ] {
        assert_eq!(
            stats.get(&format!("{prefix}.version")),
            Some(&VERSION_1_HASH)
        );
    }
    assert_eq!(readouts(&proxy).await?, accepted);
    Ok(())
}
