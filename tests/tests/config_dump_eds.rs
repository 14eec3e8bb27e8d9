//! `/config_dump?include_eds`: Envoy's `EndpointsConfigDump` with the endpoints of static
//! clusters (`static_endpoint_configs`) and of CDS clusters (`dynamic_endpoint_configs`),
//! built from the live hosts. Each assignment is compared whole with what Envoy 1.40
//! shows (measured): hosts grouped per priority and locality, the node's locality first,
//! then the others in order; a repeated locality merged, with its last weight; weights
//! and health always written, `health_check_config: {}`, `UNKNOWN` and `DRAINING` shown
//! as `HEALTHY` and `UNHEALTHY`; no version or timestamp on the EDS entries.

mod xds_support;

use std::net::SocketAddr;
use std::time::Duration;

use baton_tests::config::XdsTransport;
use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE};
use baton_tests::{EchoUpstream, Proxy};
use serde_json::{json, Value};
use xds_support::*;

const ASSIGNMENT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

async fn dump(proxy: &Proxy, query: &str) -> anyhow::Result<Value> {
    let resp = proxy
        .admin_request("GET", &format!("/config_dump{query}"))
        .await?;
    anyhow::ensure!(resp.status == 200, "{} {}", resp.status, resp.body_text());
    Ok(serde_json::from_str(&resp.body_text())?)
}

/// The `@type`s of the dump's sections, in order.
fn section_types(dump: &Value) -> Vec<String> {
    dump["configs"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|s| {
                    s["@type"]
                        .as_str()
                        .unwrap_or("")
                        .rsplit('.')
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `endpoint_config` named `name` in `list` (`static_endpoint_configs` or
/// `dynamic_endpoint_configs`), checking that the entry holds nothing else.
fn assignment<'a>(section: &'a Value, list: &str, name: &str) -> anyhow::Result<&'a Value> {
    let entries = section[list]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no {list} in {section}"))?;
    let entry = entries
        .iter()
        .find(|e| e["endpoint_config"]["cluster_name"] == name)
        .ok_or_else(|| anyhow::anyhow!("no {name} in {list}: {section}"))?;
    let keys: Vec<&String> = entry
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    anyhow::ensure!(keys == ["endpoint_config"], "{entry}");
    Ok(&entry["endpoint_config"])
}

fn ep(port: u16) -> Value {
    json!({ "endpoint": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } } } })
}

/// A host as Envoy dumps it.
fn dumped(addr: SocketAddr, health: &str, weight: u32) -> Value {
    json!({
        "endpoint": {
            "address": { "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } },
            "health_check_config": {},
        },
        "health_status": health,
        "load_balancing_weight": weight,
    })
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn include_eds_shows_static_and_eds_endpoints() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let mut named = resources::eds_cluster("named");
    named["eds_cluster_config"]["service_name"] = json!("svc");
    cp.set(
        CLUSTER_TYPE,
        "1",
        resources::clusters(&[resources::eds_cluster("backend"), named])?,
    )?;
    let mut draining = ep(2001);
    draining["health_status"] = json!("DRAINING");
    draining["endpoint"]["hostname"] = json!("h1");
    let mut unknown = ep(2002);
    unknown["health_status"] = json!("UNKNOWN");
    unknown["load_balancing_weight"] = json!(7);
    let svc = json!({
        "cluster_name": "svc",
        "endpoints": [ { "lb_endpoints": [draining, unknown] } ],
        "policy": { "overprovisioning_factor": 150 },
    });
    cp.set(
        ENDPOINT_TYPE,
        "1",
        resources::load_assignments(&[resources::load_assignment("backend", &[a.addr()]), svc])?,
    )?;

    let mut config = bootstrap(&cp, XdsTransport::Sotw).build();
    config["node"]["locality"] = json!({ "region": "r", "zone": "z2" });
    let mut backend = baton_tests::config::static_cluster("static_backend", &[]);
    backend["load_assignment"]["endpoints"] = json!([
        { "locality": { "region": "r", "zone": "z2" }, "load_balancing_weight": 2, "lb_endpoints": [ep(1003)] },
        { "locality": { "region": "r", "zone": "z1" }, "load_balancing_weight": 5, "lb_endpoints": [ep(1004)] },
        { "locality": { "region": "r", "zone": "z2" }, "load_balancing_weight": 4, "lb_endpoints": [ep(1005)] },
        { "lb_endpoints": [ep(1006), ep(1007)] },
        { "priority": 1, "locality": { "region": "r", "zone": "z0" }, "lb_endpoints": [ep(1008)] },
    ]);
    // A static EDS cluster whose assignment never comes.
    let unanswered = resources::eds_cluster_from(
        "static_eds",
        resources::ads_source_with_timeout(Duration::from_millis(500)),
    );
    let dns = |name: &str, kind: &str| {
        json!({
            "name": name, "type": kind, "connect_timeout": "1s", "dns_lookup_family": "V4_ONLY",
            "load_assignment": { "cluster_name": name, "endpoints": [ { "lb_endpoints": [
                { "endpoint": { "address": { "socket_address": { "address": "localhost", "port_value": 9 } } } },
            ] } ] },
        })
    };
    let clusters = config["static_resources"]["clusters"]
        .as_array_mut()
        .ok_or_else(|| anyhow::anyhow!("clusters"))?;
    clusters.extend([
        backend,
        unanswered,
        dns("strict_dns", "STRICT_DNS"),
        dns("logical_dns", "LOGICAL_DNS"),
    ]);
    let proxy = Proxy::start(&config).await?;
    wait_all_acked(&cp, "1").await?;

    let plain = dump(&proxy, "").await?;
    assert!(
        !section_types(&plain).contains(&"EndpointsConfigDump".to_string()),
        "{plain}"
    );
    let full = dump(&proxy, "?include_eds").await?;
    let types = section_types(&full);
    assert_eq!(
        &types[..3],
        [
            "BootstrapConfigDump",
            "ClustersConfigDump",
            "EndpointsConfigDump"
        ],
        "{types:?}"
    );
    let section = &full["configs"][2];
    let policy = |factor: u32| json!({ "overprovisioning_factor": factor });

    assert_eq!(
        assignment(section, "static_endpoint_configs", "static_backend")?,
        &json!({
            "@type": ASSIGNMENT,
            "cluster_name": "static_backend",
            "endpoints": [
                { "locality": { "region": "r", "zone": "z2" },
                  "lb_endpoints": [dumped(local(1003), "HEALTHY", 1), dumped(local(1005), "HEALTHY", 1)],
                  "load_balancing_weight": 4 },
                { "locality": {},
                  "lb_endpoints": [dumped(local(1006), "HEALTHY", 1), dumped(local(1007), "HEALTHY", 1)],
                  "load_balancing_weight": 0 },
                { "locality": { "region": "r", "zone": "z1" },
                  "lb_endpoints": [dumped(local(1004), "HEALTHY", 1)],
                  "load_balancing_weight": 5 },
                { "locality": { "region": "r", "zone": "z0" },
                  "lb_endpoints": [dumped(local(1008), "HEALTHY", 1)],
                  "load_balancing_weight": 0, "priority": 1 },
            ],
            "policy": policy(140),
        })
    );
    // DNS hosts carry the name they were resolved from and an empty metadata.
    for name in ["strict_dns", "logical_dns"] {
        let mut host = dumped(local(9), "HEALTHY", 1);
        host["endpoint"]["hostname"] = json!("localhost");
        host["metadata"] = json!({});
        assert_eq!(
            assignment(section, "static_endpoint_configs", name)?,
            &json!({
                "@type": ASSIGNMENT,
                "cluster_name": name,
                "endpoints": [ { "locality": {}, "lb_endpoints": [host], "load_balancing_weight": 0 } ],
                "policy": policy(140),
            }),
            "{name}"
        );
    }
    assert_eq!(
        assignment(section, "static_endpoint_configs", "static_eds")?,
        &json!({ "@type": ASSIGNMENT, "cluster_name": "static_eds", "policy": policy(140) })
    );
    assert_eq!(
        assignment(section, "static_endpoint_configs", "xds_cluster")?,
        &json!({
            "@type": ASSIGNMENT,
            "cluster_name": "xds_cluster",
            "endpoints": [ { "locality": {}, "lb_endpoints": [dumped(cp.addr(), "HEALTHY", 1)], "load_balancing_weight": 0 } ],
            "policy": policy(140),
        })
    );
    let backend_with = |addr: SocketAddr| {
        json!({
            "@type": ASSIGNMENT,
            "cluster_name": "backend",
            "endpoints": [ { "locality": {}, "lb_endpoints": [dumped(addr, "HEALTHY", 1)], "load_balancing_weight": 0 } ],
            "policy": policy(140),
        })
    };
    assert_eq!(
        assignment(section, "dynamic_endpoint_configs", "backend")?,
        &backend_with(a.addr())
    );
    let mut drained = dumped(local(2001), "UNHEALTHY", 1);
    drained["endpoint"]["hostname"] = json!("h1");
    assert_eq!(
        assignment(section, "dynamic_endpoint_configs", "svc")?,
        &json!({
            "@type": ASSIGNMENT,
            "cluster_name": "svc",
            "endpoints": [ { "locality": {}, "lb_endpoints": [drained, dumped(local(2002), "HEALTHY", 7)], "load_balancing_weight": 0 } ],
            "policy": policy(150),
        })
    );
    for list in ["static_endpoint_configs", "dynamic_endpoint_configs"] {
        let names: Vec<&str> = section[list]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|e| e["endpoint_config"]["cluster_name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let expected: &[&str] = if list.starts_with("static") {
            &[
                "logical_dns",
                "static_backend",
                "static_eds",
                "strict_dns",
                "xds_cluster",
            ]
        } else {
            &["backend", "svc"]
        };
        assert_eq!(names, expected, "{list}");
    }

    // An EDS update shows in the next dump.
    cp.set(
        ENDPOINT_TYPE,
        "2",
        resources::load_assignments(&[resources::load_assignment("backend", &[b.addr()])])?,
    )?;
    cp.wait_for_ack(ENDPOINT_TYPE, "2", XDS_TIMEOUT).await?;
    let full = dump(&proxy, "?include_eds").await?;
    assert_eq!(
        assignment(&full["configs"][2], "dynamic_endpoint_configs", "backend")?,
        &backend_with(b.addr())
    );
    Ok(())
}
