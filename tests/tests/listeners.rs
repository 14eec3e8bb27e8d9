//! Listeners: several at once, IPv4 and IPv6 (`::1`), and filter chain selection by
//! `filter_chain_match.destination_port` (no matching chain closes the connection).

use std::net::SocketAddr;

use baton_tests::config::{
    bootstrap, direct_route, free_port, hcm, hcm_filter, http_listener, listener, listener_on,
    route_config, static_cluster, tcp_proxy_filter, vhost,
};
use baton_tests::{get, Proxy, RawHttp1, TcpServer};
use serde_json::{json, Value};

fn direct_hcm(body: &str) -> Value {
    hcm_filter(hcm(route_config(vec![vhost(
        "all",
        &["*"],
        vec![direct_route("/", 200, body)],
    )])))
}

#[tokio::test]
async fn several_listeners_serve_independently() -> anyhow::Result<()> {
    let echo = TcpServer::echo().await?;
    let cfg = bootstrap(
        vec![
            http_listener(
                "one",
                route_config(vec![vhost(
                    "all",
                    &["*"],
                    vec![direct_route("/", 200, "one")],
                )]),
            ),
            http_listener(
                "two",
                route_config(vec![vhost(
                    "all",
                    &["*"],
                    vec![direct_route("/", 200, "two")],
                )]),
            ),
            listener("tcp", vec![tcp_proxy_filter("echo")]),
        ],
        vec![static_cluster("echo", &[echo.addr()])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let one = proxy.listener_addr("one").await?;
    let two = proxy.listener_addr("two").await?;
    assert_ne!(one, two);
    assert_eq!(get(one, "/").await?.body_text(), "one");
    assert_eq!(get(two, "/").await?.body_text(), "two");
    let mut tcp = RawHttp1::connect(proxy.listener_addr("tcp").await?).await?;
    tcp.send(b"raw").await?;
    assert_eq!(tcp.read_exact_bytes(3).await?, b"raw");
    Ok(())
}

#[tokio::test]
async fn ipv6_loopback_listener() -> anyhow::Result<()> {
    let cfg = bootstrap(
        vec![listener_on("v6", "::1", 0, vec![direct_hcm("over v6")])],
        vec![],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("v6").await?;
    assert!(addr.is_ipv6(), "{addr}");
    assert_eq!(addr.ip(), "::1".parse::<std::net::IpAddr>()?);
    let resp = get(addr, "/").await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "over v6");
    Ok(())
}

#[tokio::test]
async fn filter_chain_selected_by_destination_port() -> anyhow::Result<()> {
    let port = free_port()?;
    let chain = |dest: u16, body: &str| json!({ "filter_chain_match": { "destination_port": dest }, "filters": [direct_hcm(body)] });
    let other_port = if port == u16::MAX { port - 1 } else { port + 1 };
    let listener = json!({
        "name": "ports",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "filter_chains": [ chain(other_port, "wrong chain"), chain(port, "port chain") ],
    });
    let proxy = Proxy::start(&bootstrap(vec![listener], vec![])).await?;
    let addr = proxy.listener_addr("ports").await?;
    assert_eq!(addr.port(), port);
    assert_eq!(get(addr, "/").await?.body_text(), "port chain");
    Ok(())
}

#[tokio::test]
async fn no_matching_filter_chain_closes_connection() -> anyhow::Result<()> {
    let port = free_port()?;
    let other_port = if port == u16::MAX { port - 1 } else { port + 1 };
    let listener = json!({
        "name": "nomatch",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "filter_chains": [ { "filter_chain_match": { "destination_port": other_port }, "filters": [direct_hcm("never")] } ],
    });
    let proxy = Proxy::start(&bootstrap(vec![listener], vec![])).await?;
    let addr: SocketAddr = proxy.listener_addr("nomatch").await?;
    let mut conn = RawHttp1::connect(addr).await?;
    // The write may race the close; what matters is that no response comes back.
    let _ = conn.send(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n").await;
    assert!(conn.read_to_close().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn default_filter_chain_catches_unmatched_connections() -> anyhow::Result<()> {
    let port = free_port()?;
    let other_port = if port == u16::MAX { port - 1 } else { port + 1 };
    let listener = json!({
        "name": "default",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "filter_chains": [ { "filter_chain_match": { "destination_port": other_port }, "filters": [direct_hcm("never")] } ],
        "default_filter_chain": { "filters": [direct_hcm("default chain")] },
    });
    let proxy = Proxy::start(&bootstrap(vec![listener], vec![])).await?;
    assert_eq!(
        get(proxy.listener_addr("default").await?, "/")
            .await?
            .body_text(),
        "default chain"
    );
    Ok(())
}
