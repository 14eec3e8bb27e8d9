//! xDS initialisation and warming, each over ADS state of the world and delta: a CDS
//! response that is delayed keeps the server INITIALIZING (`/ready` 503, LDS not even
//! asked, nothing listening), an LDS that never answers ends with `initial_fetch_timeout`,
//! and a listener added later with its routes delayed stays warming, not accepting; a
//! CDS response is ACKed at once during initialisation and only once its clusters warmed
//! afterwards.

mod xds_support;

use std::net::SocketAddr;
use std::time::Duration;

use baton_tests::config::{free_port, XdsTransport};
use baton_tests::xds::{
    resources, ControlPlane, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE,
};
use baton_tests::{EchoUpstream, Proxy};
use xds_support::*;

sotw_and_delta!(
    delayed_cds_keeps_server_initializing,
    lds_never_answered_goes_live_after_initial_fetch_timeout,
    listener_added_with_delayed_rds_warms_until_routes_arrive,
    cds_ack_waits_for_warming_only_after_initialization,
);

/// How long the tests watch a state that must not change (a bound for the observation,
/// not a performance threshold: the state must hold all along).
const OBSERVE: Duration = Duration::from_secs(1);

/// `/server_info` `state`.
async fn server_state(proxy: &Proxy) -> anyhow::Result<String> {
    let resp = proxy.admin_request("GET", "/server_info").await?;
    Ok(resp.json()?["state"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// True when a TCP connect to `addr` is refused (nothing listening).
async fn refused(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            baton_tests::IO_TIMEOUT,
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Checks, every 100 ms for `observe`, that `/ready` is 503, the server state is
/// `state` and `addr` refuses connections.
async fn assert_not_live(
    proxy: &Proxy,
    state: &str,
    addr: SocketAddr,
    observe: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + observe;
    while tokio::time::Instant::now() < deadline {
        assert_eq!(ready_status(proxy).await?, 503);
        assert_eq!(server_state(proxy).await?, state);
        assert!(
            refused(addr).await,
            "{addr} accepts before the server is LIVE"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// CDS held at the control plane (well inside the default 15 s `initial_fetch_timeout`):
/// `/ready` stays 503, the listener's port refuses connections, and Envoy does not ask for
/// EDS or LDS at all. Once CDS is answered, everything follows (EDS, LDS, RDS), the server
/// goes LIVE and the port serves.
///
/// Observed on Envoy 1.40: while CDS is pending `/server_info` says PRE_INITIALIZING, not
/// INITIALIZING: the cluster manager (static clusters, then CDS and its clusters)
/// initialises before the init manager starts; INITIALIZING covers LDS and RDS (see the
/// LDS test).
async fn delayed_cds_keeps_server_initializing(transport: XdsTransport) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let port = free_port()?;
    let listener_addr = SocketAddr::from(([127, 0, 0, 1], port));
    set_all(&cp, "1", &[a.addr()], port)?;
    cp.hold(CLUSTER_TYPE);
    let mut proxy = start_unready(&bootstrap(&cp, transport)).await?;
    cp.wait_for_request(|r| r.type_url == CLUSTER_TYPE, XDS_TIMEOUT)
        .await?;
    assert_not_live(&proxy, "PRE_INITIALIZING", listener_addr, OBSERVE).await?;
    let requests = cp.requests();
    assert!(
        requests.iter().all(|r| r.type_url == CLUSTER_TYPE),
        "only CDS is asked while CDS is pending:\n{}",
        baton_tests::xds::describe_requests(&requests)
    );
    assert!(cp.responses().is_empty());

    cp.release(CLUSTER_TYPE);
    proxy.wait_ready().await?;
    wait_all_acked(&cp, "1").await?;
    assert_eq!(server_state(&proxy).await?, "LIVE");
    wait_served_by(listener_addr, "a").await?;
    Ok(())
}

/// LDS never answered, with `lds_config.initial_fetch_timeout: 2s`: the server stays
/// INITIALIZING after CDS and EDS are done, then goes LIVE when the timeout fires, with
/// no listener (`listener_manager.lds.init_fetch_timeout` 1). A late LDS response still
/// applies: the listener appears and serves.
async fn lds_never_answered_goes_live_after_initial_fetch_timeout(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let port = free_port()?;
    let listener_addr = SocketAddr::from(([127, 0, 0, 1], port));
    set_all(&cp, "1", &[a.addr()], port)?;
    cp.hold(LISTENER_TYPE);
    let mut bootstrap = bootstrap(&cp, transport);
    bootstrap.lds_initial_fetch_timeout = Some(Duration::from_secs(2));
    let mut proxy = start_unready(&bootstrap).await?;
    cp.wait_for_request(|r| r.type_url == LISTENER_TYPE, XDS_TIMEOUT)
        .await?;
    cp.wait_for_ack(CLUSTER_TYPE, "1", XDS_TIMEOUT).await?;
    cp.wait_for_ack(ENDPOINT_TYPE, "1", XDS_TIMEOUT).await?;
    // Well inside the 2 s timeout, which started with the LDS request.
    assert_not_live(&proxy, "INITIALIZING", listener_addr, OBSERVE / 2).await?;

    proxy.wait_ready().await?;
    assert_eq!(server_state(&proxy).await?, "LIVE");
    let stats = stats(&proxy).await?;
    assert_eq!(
        stats.get("listener_manager.lds.init_fetch_timeout"),
        Some(&1)
    );
    assert_eq!(stats.get("listener_manager.lds.update_success"), Some(&0));
    // The initial request and the timeout are each an attempt.
    assert_eq!(stats.get("listener_manager.lds.update_attempt"), Some(&2));
    assert_eq!(
        stats.get("listener_manager.total_listeners_active"),
        Some(&0)
    );
    assert_eq!(
        stats.get("cluster_manager.cds.init_fetch_timeout"),
        Some(&0)
    );
    assert!(refused(listener_addr).await);

    cp.release(LISTENER_TYPE);
    cp.wait_for_ack(LISTENER_TYPE, "1", XDS_TIMEOUT).await?;
    wait_served_by(listener_addr, "a").await?;
    Ok(())
}

/// A listener added by LDS while RDS is held: LDS is ACKed at once, the new listener is
/// warming (`listener_manager.total_listeners_warming` 1, `/config_dump` shows it under
/// `warming_state` only) and its port refuses connections, while the existing listener
/// keeps serving. When the route configuration arrives the listener becomes active and
/// serves.
async fn listener_added_with_delayed_rds_warms_until_routes_arrive(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    wait_all_acked(&cp, "1").await?;
    let first_addr = proxy.listener_addr("http").await?;
    wait_served_by(first_addr, "a").await?;

    cp.hold(ROUTE_TYPE);
    let port = free_port()?;
    let second_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listeners = [
        resources::rds_listener("http", 0, "routes"),
        resources::rds_listener("second", port, "second_routes"),
    ];
    cp.set(LISTENER_TYPE, "2", resources::listeners(&listeners)?)?;
    cp.wait_for_ack(LISTENER_TYPE, "2", XDS_TIMEOUT).await?;
    cp.wait_for_request(
        |r| {
            r.type_url == ROUTE_TYPE
                && (r.resource_names.iter().any(|n| n == "second_routes")
                    || r.subscribe.iter().any(|n| n == "second_routes"))
        },
        XDS_TIMEOUT,
    )
    .await?;
    wait_stat(&proxy, "listener_manager.total_listeners_warming", 1).await?;
    let dump = config_dump(&proxy).await?;
    let listeners_dump = dump_section(&dump, "ListenersConfigDump")?;
    let second = dump_entry(listeners_dump, "dynamic_listeners", "/name", "second")?;
    assert_eq!(second["warming_state"]["version_info"], "2", "{second}");
    assert!(second.get("active_state").is_none(), "{second}");
    // `/init_dump` lists the warming listener's own init manager (Envoy names it with its
    // hash of the listener) and the route configuration it waits for; `mask=listener`
    // leaves out Baton's server entry, which Envoy does not have.
    let init = proxy
        .admin_request("GET", "/init_dump?mask=listener")
        .await?
        .json()?;
    let dumps = init["unready_targets_dumps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(dumps.len(), 1, "{init}");
    let manager = dumps[0]["name"].as_str().unwrap_or_default();
    assert!(
        manager.starts_with("init manager Listener-local-init-manager second "),
        "{init}"
    );
    assert_eq!(
        dumps[0]["target_names"],
        serde_json::json!(["shared target RdsRouteConfigSubscription RDS init second_routes"]),
        "{init}"
    );
    let deadline = tokio::time::Instant::now() + OBSERVE;
    while tokio::time::Instant::now() < deadline {
        assert!(refused(second_addr).await, "warming listener accepts");
        assert_eq!(get_once(first_addr, "/").await?, (200, "a".to_string()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let routes = [
        resources::route_to("routes", "backend"),
        resources::route_to("second_routes", "backend"),
    ];
    cp.set(ROUTE_TYPE, "2", resources::route_configs(&routes)?)?;
    cp.release(ROUTE_TYPE);
    wait_served_by(second_addr, "a").await?;
    let stats = wait_stat(&proxy, "listener_manager.total_listeners_warming", 0).await?;
    assert_eq!(
        stats.get("listener_manager.total_listeners_active"),
        Some(&2)
    );
    assert_eq!(stats.get("listener_manager.listener_added"), Some(&2));
    let init = proxy.admin_request("GET", "/init_dump").await?.json()?;
    assert_eq!(init, serde_json::json!({}));
    Ok(())
}

/// Measured on Envoy 1.40: while the cluster manager initialises, a CDS response adding
/// an EDS cluster is ACKed at once, after the cluster's EDS request and while the
/// cluster still warms; after initialisation, a CDS response adding an EDS cluster is
/// not ACKed until that cluster has its assignment. (A control plane that sends EDS
/// only after the CDS ACK so does not wait out `initial_fetch_timeout` at start.)
async fn cds_ack_waits_for_warming_only_after_initialization(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    let mut proxy = start_unready(&bootstrap(&cp, transport)).await?;
    set_clusters(&cp, "1", &["backend"])?;
    let ack = cp.wait_for_ack(CLUSTER_TYPE, "1", XDS_TIMEOUT).await?;
    let eds_request = cp
        .requests()
        .into_iter()
        .find(|r| {
            r.type_url == ENDPOINT_TYPE
                && (r.resource_names.iter().chain(&r.subscribe)).any(|n| n == "backend")
        })
        .ok_or_else(|| anyhow::anyhow!("no EDS request for backend"))?;
    assert!(
        eds_request.index < ack.index,
        "the EDS request (#{}) goes out before the CDS ACK (#{})",
        eds_request.index,
        ack.index
    );
    assert_eq!(
        proxy.stat("cluster_manager.warming_clusters").await?,
        Some(1),
        "the CDS ACK did not wait for the cluster to warm"
    );

    set_all(&cp, "1", &[a.addr()], 0)?;
    wait_all_acked(&cp, "1").await?;
    proxy.wait_ready().await?;
    set_clusters(&cp, "2", &["backend", "second"])?;
    let held = cp.wait_for_answer(CLUSTER_TYPE, "2", OBSERVE).await;
    assert!(
        held.is_err(),
        "CDS 2 answered while `second` warms: {held:?}"
    );
    set_endpoints(
        &cp,
        "2",
        &[("backend", &[a.addr()]), ("second", &[a.addr()])],
    )?;
    cp.wait_for_ack(CLUSTER_TYPE, "2", XDS_TIMEOUT).await?;
    assert_eq!(
        proxy.stat("cluster_manager.warming_clusters").await?,
        Some(0)
    );
    Ok(())
}
