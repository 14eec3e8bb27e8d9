//! `POST /drain_listeners`, as Envoy 1.40 answers it (checked side by side):
//! - without `graceful`: `OK`, the listeners stop at once and new connections are
//!   refused; `/listeners` still lists them; `listener_manager.listener_stopped` counts
//!   each stopped listener; open connections are not cut.
//! - with `graceful` (and `skip_exit`): connections are discouraged over the drain time
//!   (with `--drain-strategy immediate`, every response carries `connection: close`)
//!   while new connections are still accepted until the drain time is over.
//! - with `inboundonly`: only listeners whose `traffic_direction` is INBOUND stop; the
//!   others keep accepting.
//! - it requires POST.

use std::time::Duration;

use baton_tests::config::{
    bootstrap, direct_route, http_listener, route_config, simple_proxy, vhost,
};
use baton_tests::eventually::eventually;
use baton_tests::{EchoUpstream, Proxy, RawHttp1, StartOptions};

fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn drain_listeners_stops_accepting_and_keeps_open_connections() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start(&simple_proxy(&[upstream.addr()])).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut open = RawHttp1::connect(addr).await?;
    open.send_request("GET", "/before", &[], b"").await?;
    assert_eq!(open.read_response().await?.status, 200);

    let get = proxy.admin_request("GET", "/drain_listeners").await?;
    assert_eq!(get.status, 405, "mutating endpoint needs POST");
    let resp = proxy.admin_request("POST", "/drain_listeners").await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "OK\n");

    eventually(Duration::from_secs(10), || async {
        Ok(tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(()))
    })
    .await?;
    // The connection opened before is still served.
    open.send_request("GET", "/after", &[], b"").await?;
    assert_eq!(open.read_response().await?.status, 200);

    let listeners = proxy.admin_request("GET", "/listeners").await?;
    assert_eq!(listeners.body_text().trim(), format!("http::{addr}"));
    let stats = proxy.admin_request("GET", "/stats").await?.body_text();
    assert_eq!(
        stat(&stats, "listener_manager.listener_stopped"),
        Some(1),
        "{stats}"
    );
    Ok(())
}

#[tokio::test]
async fn graceful_drain_discourages_connections_but_keeps_accepting() -> anyhow::Result<()> {
    let upstream = EchoUpstream::start("a").await?;
    let proxy = Proxy::start_with(
        &simple_proxy(&[upstream.addr()]),
        StartOptions {
            extra_args: vec![
                "--drain-strategy".into(),
                "immediate".into(),
                "--drain-time-s".into(),
                "30".into(),
                "--parent-shutdown-time-s".into(),
                "60".into(),
            ],
            ..Default::default()
        },
    )
    .await?;
    let addr = proxy.listener_addr("http").await?;
    let resp = proxy
        .admin_request("POST", "/drain_listeners?graceful&skip_exit")
        .await?;
    assert_eq!(resp.status, 200);
    let answer = eventually(Duration::from_secs(10), || async {
        let mut conn = RawHttp1::connect(addr).await?;
        conn.send_request("GET", "/during", &[], b"").await?;
        let r = conn.read_response().await?;
        Ok(r.connection_close().then_some(r))
    })
    .await?;
    assert_eq!(answer.status, 200, "new connections are still served");
    let stats = proxy.admin_request("GET", "/stats").await?.body_text();
    assert_eq!(
        stat(&stats, "listener_manager.listener_stopped"),
        Some(0),
        "{stats}"
    );
    Ok(())
}

#[tokio::test]
async fn inboundonly_stops_only_inbound_listeners() -> anyhow::Result<()> {
    let direct = |body: &str| {
        route_config(vec![vhost(
            "all",
            &["*"],
            vec![direct_route("/", 200, body)],
        )])
    };
    let mut inbound = http_listener("inbound", direct("in"));
    inbound["traffic_direction"] = serde_json::json!("INBOUND");
    let mut outbound = http_listener("outbound", direct("out"));
    outbound["traffic_direction"] = serde_json::json!("OUTBOUND");
    let unspecified = http_listener("unspecified", direct("any"));
    let proxy = Proxy::start(&bootstrap(vec![inbound, outbound, unspecified], vec![])).await?;
    let inbound_addr = proxy.listener_addr("inbound").await?;
    let others = [
        proxy.listener_addr("outbound").await?,
        proxy.listener_addr("unspecified").await?,
    ];
    let resp = proxy
        .admin_request("POST", "/drain_listeners?inboundonly")
        .await?;
    assert_eq!(resp.status, 200);
    eventually(Duration::from_secs(10), || async {
        Ok(tokio::net::TcpStream::connect(inbound_addr)
            .await
            .is_err()
            .then_some(()))
    })
    .await?;
    for addr in others {
        let mut conn = RawHttp1::connect(addr).await?;
        conn.send_request("GET", "/", &[], b"").await?;
        assert_eq!(conn.read_response().await?.status, 200, "{addr}");
    }
    let stats = proxy.admin_request("GET", "/stats").await?.body_text();
    assert_eq!(
        stat(&stats, "listener_manager.listener_stopped"),
        Some(1),
        "{stats}"
    );
    Ok(())
}
