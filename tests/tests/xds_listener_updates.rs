//! LDS updates of a listener at the same address, as Envoy 1.40 applies them in place:
//! filter chains whose config did not change keep their connections
//! (`listener_manager.listener_in_place_updated` counts the update); a changed chain's
//! connections are drained (with `--drain-strategy immediate` the next response on them
//! carries `connection: close`) while new connections get the new chain. A removed
//! listener drains (`/config_dump` shows it under `draining_state`) and stops accepting.

mod xds_support;

use baton_tests::config::{direct_route, vhost, XdsTransport};
use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE, LISTENER_TYPE};
use baton_tests::{Proxy, RawHttp1, StartOptions};
use serde_json::{json, Value};
use xds_support::*;

sotw_and_delta!(
    unchanged_chains_keep_their_connections_changed_ones_drain,
    removed_listener_stops_accepting,
);

/// Listener `http` on `port` with one chain answering `body` directly, plus, when
/// `decoy`, a second chain that never matches (source 10.0.0.0/8).
fn listener(port: u16, body: &str, decoy: bool) -> Value {
    let routes = baton_tests::config::route_config(vec![vhost(
        "all",
        &["*"],
        vec![direct_route("/", 200, body)],
    )]);
    let mut l = resources::inline_listener("http", port, routes);
    if decoy {
        let mut chain = l["filter_chains"][0].clone();
        chain["filter_chain_match"] = json!({ "source_prefix_ranges": [ { "address_prefix": "10.0.0.0", "prefix_len": 8 } ] });
        if let Some(chains) = l["filter_chains"].as_array_mut() {
            chains.push(chain);
        }
    }
    l
}

/// A control plane serving listener `http` (answering "one") at version 1, and Baton
/// (or Envoy) serving it; returns them and the listener's port.
async fn serving_one(transport: XdsTransport) -> anyhow::Result<(ControlPlane, Proxy, u16)> {
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
    // No clusters: CDS answers at once, so the server does not wait out its fetch timeout.
    cp.set(CLUSTER_TYPE, "1", Vec::new())?;
    cp.set(
        LISTENER_TYPE,
        "1",
        resources::listeners(&[listener(port, "one", false)])?,
    )?;
    let proxy = start_immediate(&cp, transport).await?;
    Ok((cp, proxy, port))
}

async fn start_immediate(cp: &ControlPlane, transport: XdsTransport) -> anyhow::Result<Proxy> {
    Proxy::start_with(
        &bootstrap(cp, transport).build(),
        StartOptions {
            extra_args: [
                "--drain-strategy",
                "immediate",
                "--drain-time-s",
                "5",
                "--parent-shutdown-time-s",
                "10",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        },
    )
    .await
}

async fn unchanged_chains_keep_their_connections_changed_ones_drain(
    transport: XdsTransport,
) -> anyhow::Result<()> {
    let (cp, proxy, port) = serving_one(transport).await?;
    let addr = proxy.listener_addr("http").await?;
    let mut kept = RawHttp1::connect(addr).await?;
    kept.send_request("GET", "/", &[], b"").await?;
    let first = kept.read_response().await?;
    assert_eq!(first.body_text(), "one");

    // Version 2 adds a chain and leaves the first one as it was.
    cp.set(
        LISTENER_TYPE,
        "2",
        resources::listeners(&[listener(port, "one", true)])?,
    )?;
    cp.wait_for_ack(LISTENER_TYPE, "2", XDS_TIMEOUT).await?;
    wait_stat(&proxy, "listener_manager.listener_in_place_updated", 1).await?;
    kept.send_request("GET", "/", &[], b"").await?;
    let same = kept.read_response().await?;
    assert_eq!(same.body_text(), "one");
    assert!(
        !same.connection_close(),
        "an unchanged chain's connection was drained"
    );

    // Version 3 changes the first chain: its old connection drains, new ones see "two".
    cp.set(
        LISTENER_TYPE,
        "3",
        resources::listeners(&[listener(port, "two", true)])?,
    )?;
    cp.wait_for_ack(LISTENER_TYPE, "3", XDS_TIMEOUT).await?;
    wait_stat(&proxy, "listener_manager.listener_in_place_updated", 2).await?;
    kept.send_request("GET", "/", &[], b"").await?;
    let drained = kept.read_response().await?;
    assert!(
        drained.connection_close(),
        "a changed chain's connection was not drained"
    );
    let (status, _) = get_once(addr, "/").await?;
    assert_eq!(status, 200);
    let fresh = baton_tests::get(addr, "/").await?;
    assert_eq!(fresh.body_text(), "two");
    // An in-place update's draining chains are not a draining listener: `/config_dump`
    // shows the listener active only, with the new config. Its `version_info` is the
    // version of the update for Baton; Envoy 1.40 keeps showing the version the
    // listener was first added with ("1") after in-place updates (a known difference).
    let dump = config_dump(&proxy).await?;
    let listeners = dump_section(&dump, "ListenersConfigDump")?;
    let http = dump_entry(listeners, "dynamic_listeners", "/name", "http")?;
    let version = if baton_tests::is_envoy() { "1" } else { "3" };
    assert_eq!(http["active_state"]["version_info"], version, "{http}");
    let chains = &http["active_state"]["listener"]["filter_chains"];
    assert_eq!(chains.as_array().map(Vec::len), Some(2), "{http}");
    assert!(http.get("draining_state").is_none(), "{http}");
    Ok(())
}

async fn removed_listener_stops_accepting(transport: XdsTransport) -> anyhow::Result<()> {
    let (cp, proxy, _port) = serving_one(transport).await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(baton_tests::get(addr, "/").await?.body_text(), "one");
    cp.set(LISTENER_TYPE, "2", Vec::new())?;
    cp.wait_for_ack(LISTENER_TYPE, "2", XDS_TIMEOUT).await?;
    wait_stat(&proxy, "listener_manager.listener_removed", 1).await?;
    // During its drain time (5 s) `/config_dump` shows it under `draining_state` only.
    let dump = config_dump(&proxy).await?;
    let listeners = dump_section(&dump, "ListenersConfigDump")?;
    let http = dump_entry(listeners, "dynamic_listeners", "/name", "http")?;
    assert_eq!(http["draining_state"]["version_info"], "1", "{http}");
    assert_eq!(http["draining_state"]["listener"]["name"], "http", "{http}");
    assert!(http.get("active_state").is_none(), "{http}");
    baton_tests::eventually(XDS_TIMEOUT, || async {
        Ok(tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(()))
    })
    .await?;
    Ok(())
}
