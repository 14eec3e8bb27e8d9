//! `file://` collection locators (`dynamic_resources.lds_resources_locator` /
//! `cds_resources_locator`), as Envoy 1.40 reads them: the file holds an
//! `envoy.service.discovery.v3.Resource` whose `resource` is a `ListenerCollection` of
//! `xds.core.v3.CollectionEntry` inline entries, needs no `lds_config`, and is re-read
//! when a file is moved over it. Members are named by their entry's `name` and carry
//! its `version` (`/config_dump` `active_state.version_info`); the `Resource`'s `version`
//! is the subscription's (`ListenersConfigDump.version_info`, `lds.version_text`). A file
//! that does not parse counts `update_failure`, one with a listener that does not build
//! `update_rejected`, and the last good listeners keep serving; a collection without
//! entries removes every listener. A CDS collection file never loads: Envoy's
//! `ClusterCollection` has a single `entries` field, which Envoy refuses as a collection
//! (`update_failure` each time), and the server starts without those clusters.

mod xds_support;

use baton_tests::config::{bootstrap, prefix_route, route_config, static_cluster, vhost};
use baton_tests::xds::resources;
use baton_tests::{EchoUpstream, Proxy, TempDir};
use serde_json::{json, Value};
use xds_support::*;

/// `type.googleapis.com/` + a collection type.
const LISTENER_COLLECTION: &str = "type.googleapis.com/envoy.config.listener.v3.ListenerCollection";
const CLUSTER_COLLECTION: &str = "type.googleapis.com/envoy.config.cluster.v3.ClusterCollection";

/// A collection file at `version` whose `entries` are inline `(name, version,
/// resource)` entries of type `member_type`.
fn collection_file(
    version: &str,
    collection_type: &str,
    member_type: &str,
    entries: &[(&str, &str, Value)],
) -> Value {
    let entries: Vec<Value> = entries
        .iter()
        .map(|(name, entry_version, resource)| {
            let mut resource = resource.clone();
            resource["@type"] = json!(member_type);
            json!({ "inline_entry": { "name": name, "version": entry_version, "resource": resource } })
        })
        .collect();
    json!({ "version": version, "resource": { "@type": collection_type, "entries": entries } })
}

/// Listener `http` on 127.0.0.1:0 routing everything to `cluster`, as entry `e<version>`
/// of a listener collection at `v<version>`.
fn listener_file(version: u32, cluster: &str) -> Value {
    let routes = route_config(vec![vhost("all", &["*"], vec![prefix_route("/", cluster)])]);
    let listener = resources::inline_listener("http", 0, routes);
    collection_file(
        &format!("v{version}"),
        LISTENER_COLLECTION,
        resources::LISTENER_TYPE,
        &[("http", &format!("e{version}"), listener)],
    )
}

/// Writes `content` to `path` the way Envoy picks it up: a new file moved over it.
fn replace(path: &std::path::Path, content: &Value) -> anyhow::Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, serde_json::to_string_pretty(content)?)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

/// The bootstrap: static clusters `a` and `b`, and `locators` (field, file).
fn file_bootstrap(
    a: &EchoUpstream,
    b: &EchoUpstream,
    locators: &[(&str, &std::path::Path)],
) -> Value {
    let mut config = bootstrap(
        Vec::new(),
        vec![
            static_cluster("a", &[a.addr()]),
            static_cluster("b", &[b.addr()]),
        ],
    );
    config["node"] = json!({ "id": "test-node", "cluster": "test-cluster" });
    for (field, path) in locators {
        config["dynamic_resources"][*field] = json!(format!("file://{}", path.display()));
    }
    config
}

#[tokio::test]
async fn a_listener_collection_file_loads_reloads_and_keeps_the_last_good_one() -> anyhow::Result<()>
{
    let dir = TempDir::new()?;
    let lds = dir.join("lds.yaml");
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    replace(&lds, &listener_file(1, "a"))?;
    let proxy = Proxy::start(&file_bootstrap(&a, &b, &[("lds_resources_locator", &lds)])).await?;
    wait_served_by(proxy.listener_addr("http").await?, "a").await?;
    let all = stats(&proxy).await?;
    assert_eq!(all.get("listener_manager.lds.update_success"), Some(&1));
    assert_eq!(all.get("listener_manager.listener_added"), Some(&1));
    let dump = config_dump(&proxy).await?;
    let listeners = dump_section(&dump, "ListenersConfigDump")?;
    assert_eq!(listeners["version_info"], "v1");
    let http = dump_entry(listeners, "dynamic_listeners", "/name", "http")?;
    assert_eq!(http["active_state"]["version_info"], "e1");

    // A new file moved over the old one is read.
    replace(&lds, &listener_file(2, "b"))?;
    wait_stat(&proxy, "listener_manager.lds.update_success", 2).await?;
    wait_served_by(proxy.listener_addr("http").await?, "b").await?;

    // A listener that does not build: rejected, the last good one serves.
    let mut bad = listener_file(3, "a");
    bad["resource"]["entries"][0]["inline_entry"]["resource"]["address"]["socket_address"]
        ["address"] = json!("not-an-ip");
    replace(&lds, &bad)?;
    wait_stat(&proxy, "listener_manager.lds.update_rejected", 1).await?;
    // A file that is not a listener collection: a failure, the last good one serves.
    let wrong = collection_file("v4", CLUSTER_COLLECTION, resources::LISTENER_TYPE, &[]);
    replace(&lds, &wrong)?;
    let all = wait_stat(&proxy, "listener_manager.lds.update_failure", 1).await?;
    assert_eq!(all.get("listener_manager.lds.update_attempt"), Some(&4));
    assert_eq!(all.get("listener_manager.lds.update_success"), Some(&2));
    wait_served_by(proxy.listener_addr("http").await?, "b").await?;
    let dump = config_dump(&proxy).await?;
    assert_eq!(
        dump_section(&dump, "ListenersConfigDump")?["version_info"],
        "v2"
    );

    // No entry left: every listener goes.
    let empty = collection_file("v5", LISTENER_COLLECTION, resources::LISTENER_TYPE, &[]);
    replace(&lds, &empty)?;
    let all = wait_stat(&proxy, "listener_manager.listener_removed", 1).await?;
    assert_eq!(all.get("listener_manager.lds.update_success"), Some(&3));
    Ok(())
}

#[tokio::test]
async fn a_cluster_collection_file_never_loads() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let cds = dir.join("cds.yaml");
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    // `entries` as a single entry, the only shape Envoy can read.
    let mut file = collection_file(
        "v1",
        CLUSTER_COLLECTION,
        resources::CLUSTER_TYPE,
        &[("c", "e1", static_cluster("c", &[a.addr()]))],
    );
    file["resource"]["entries"] = file["resource"]["entries"][0].clone();
    replace(&cds, &file)?;
    let proxy = Proxy::start(&file_bootstrap(&a, &b, &[("cds_resources_locator", &cds)])).await?;
    let all = wait_stat(&proxy, "cluster_manager.cds.update_failure", 1).await?;
    assert_eq!(all.get("cluster_manager.cds.update_attempt"), Some(&1));
    assert_eq!(all.get("cluster_manager.cds.update_success"), Some(&0));
    assert_eq!(all.get("cluster_manager.cluster_added"), Some(&2));
    assert_eq!(ready_status(&proxy).await?, 200);
    Ok(())
}
