//! `socket_address.ipv4_compat` on a listener, as Envoy 1.40: an IPv6 listener on an
//! IPv4-mapped address (`::ffff:127.0.0.1`, loopback only) takes IPv4 clients with it;
//! on an IPv4 address it is a config error with Envoy's message. (Envoy Gateway sets it
//! on `::` listeners in dual-stack clusters.) The test passes on both.

use baton_tests::config::{bootstrap, direct_route, route_config, vhost};
use baton_tests::{get, run_to_completion, Proxy, TempDir};
use serde_json::json;

fn listener(address: &str, ipv4_compat: bool) -> serde_json::Value {
    let manager = baton_tests::config::hcm(route_config(vec![vhost(
        "all",
        &["*"],
        vec![direct_route("/", 200, "ok")],
    )]));
    json!({
        "name": "http",
        "address": { "socket_address": { "address": address, "port_value": 0, "ipv4_compat": ipv4_compat } },
        "filter_chains": [{ "filters": [baton_tests::config::hcm_filter(manager)] }],
    })
}

#[tokio::test]
async fn an_ipv4_mapped_listener_with_ipv4_compat_serves_ipv4_clients() -> anyhow::Result<()> {
    let proxy = Proxy::start(&bootstrap(vec![listener("::ffff:127.0.0.1", true)], vec![])).await?;
    let bound = proxy.listener_addr("http").await?;
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], bound.port()));
    let resp = get(v4, "/").await?;
    assert_eq!((resp.status, resp.body_text().as_str()), (200, "ok"));
    Ok(())
}

#[test]
fn ipv4_compat_on_an_ipv4_listener_is_refused() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let file = dir.join("v4.json");
    let config = bootstrap(vec![listener("127.0.0.1", true)], vec![]);
    std::fs::write(&file, serde_json::to_string(&config)?)?;
    let (status, out, err) =
        run_to_completion(&["--mode", "validate", "-c", &file.display().to_string()])?;
    assert!(!status.success(), "{out}{err}");
    let text = format!("{out}{err}");
    assert!(
        text.contains(
            "Only IPv6 address '::' or valid IPv4-mapped IPv6 address can set ipv4_compat: 127.0.0.1:0"
        ),
        "{text}"
    );
    Ok(())
}
