//! Upgrades through the HTTP connection manager: websocket (`upgrade_configs`) relayed to an
//! upstream that switches protocols, CONNECT terminated by the proxy (`connect_config`) and
//! CONNECT forwarded to the upstream.

use std::net::SocketAddr;

use baton_tests::config::{
    bootstrap, hcm, hcm_filter, listener, route_config, static_cluster, vhost,
};
use baton_tests::{Proxy, RawHttp1, TcpServer};
use serde_json::{json, Value};

async fn start(
    hcm_extra: Value,
    routes: Vec<Value>,
    upstream: SocketAddr,
) -> anyhow::Result<(Proxy, SocketAddr)> {
    let mut typed = hcm(route_config(vec![vhost("all", &["*"], routes)]));
    baton_tests::config::merge(&mut typed, hcm_extra);
    let cfg = bootstrap(
        vec![listener("http", vec![hcm_filter(typed)])],
        vec![static_cluster("backend", &[upstream])],
    );
    let proxy = Proxy::start(&cfg).await?;
    let addr = proxy.listener_addr("http").await?;
    Ok((proxy, addr))
}

const WS_REQUEST: &[u8] =
    b"GET /ws HTTP/1.1\r\nhost: test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";

#[tokio::test]
async fn websocket_upgrade_relays_bytes_both_ways() -> anyhow::Result<()> {
    let upstream = TcpServer::upgrade_echo().await?;
    let routes = vec![json!({ "match": { "prefix": "/" }, "route": { "cluster": "backend" } })];
    let (_proxy, addr) = start(
        json!({ "upgrade_configs": [ { "upgrade_type": "websocket" } ] }),
        routes,
        upstream.addr(),
    )
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(WS_REQUEST).await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 101);
    assert_eq!(resp.header("upgrade"), Some("websocket"));
    for message in [&b"first frame"[..], b"second"] {
        conn.send(message).await?;
        assert_eq!(conn.read_exact_bytes(message.len()).await?, message);
    }
    let heads = upstream.request_heads();
    assert_eq!(heads.len(), 1);
    let head = heads[0].to_ascii_lowercase();
    assert!(head.contains("upgrade: websocket"), "{head}");
    Ok(())
}

#[tokio::test]
async fn websocket_upgrade_without_upgrade_configs_is_403() -> anyhow::Result<()> {
    let upstream = TcpServer::upgrade_echo().await?;
    let routes = vec![json!({ "match": { "prefix": "/" }, "route": { "cluster": "backend" } })];
    let (_proxy, addr) = start(json!({}), routes, upstream.addr()).await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(WS_REQUEST).await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 403);
    assert_eq!(upstream.connections(), 0);
    Ok(())
}

#[tokio::test]
async fn connect_terminated_by_proxy_tunnels_tcp() -> anyhow::Result<()> {
    let upstream = TcpServer::echo().await?;
    let routes = vec![json!({
        "match": { "connect_matcher": {} },
        "route": { "cluster": "backend", "upgrade_configs": [ { "upgrade_type": "CONNECT", "connect_config": {} } ] },
    })];
    let (_proxy, addr) = start(
        json!({ "upgrade_configs": [ { "upgrade_type": "CONNECT" } ] }),
        routes,
        upstream.addr(),
    )
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"CONNECT backend.example:443 HTTP/1.1\r\nhost: backend.example:443\r\n\r\n")
        .await?;
    let resp = conn.read_response_to("HEAD").await?;
    assert_eq!(resp.status, 200);
    conn.send(b"tunnelled bytes").await?;
    assert_eq!(conn.read_exact_bytes(15).await?, b"tunnelled bytes");
    Ok(())
}

#[tokio::test]
async fn connect_forwarded_to_upstream() -> anyhow::Result<()> {
    let upstream = TcpServer::upgrade_echo().await?;
    let routes =
        vec![json!({ "match": { "connect_matcher": {} }, "route": { "cluster": "backend" } })];
    let (_proxy, addr) = start(
        json!({ "upgrade_configs": [ { "upgrade_type": "CONNECT" } ] }),
        routes,
        upstream.addr(),
    )
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    conn.send(b"CONNECT backend.example:443 HTTP/1.1\r\nhost: backend.example:443\r\n\r\n")
        .await?;
    let resp = conn.read_response_to("HEAD").await?;
    assert_eq!(resp.status, 200);
    conn.send(b"through").await?;
    assert_eq!(conn.read_exact_bytes(7).await?, b"through");
    let heads = upstream.request_heads();
    assert!(
        heads
            .first()
            .is_some_and(|h| h.starts_with("CONNECT backend.example:443")),
        "{heads:?}"
    );
    Ok(())
}
