//! File-based xDS (`path_config_source`): clusters (CDS) and listeners (LDS) read from
//! `DiscoveryResponse` files serve traffic; replacing the LDS file the way Envoy expects
//! (write a new file, rename it over the old one), with and without `watched_directory`,
//! changes the routes while a bounded request loop fails nothing; an invalid file is
//! rejected and the old config keeps serving; a file written in place is not reloaded
//! (Envoy watches for moves only); a Kubernetes ConfigMap-style symlink swap in the
//! watched directory is.

mod xds_support;

use std::path::PathBuf;

use baton_tests::config::{
    direct_route, hcm, hcm_filter, listener_on, prefix_route, route_config, static_cluster, vhost,
};
use baton_tests::xds::{CLUSTER_TYPE, LISTENER_TYPE};
use baton_tests::{eventually, get, EchoUpstream, Proxy, TempDir};
use serde_json::{json, Value};
use xds_support::*;

/// A directory holding `cds.yaml` and `lds.yaml`, and the bootstrap that reads them.
struct XdsFiles {
    dir: TempDir,
    /// Whether the bootstrap sets `watched_directory` (the files' directory).
    watched_directory: bool,
}

impl XdsFiles {
    fn new(watched_directory: bool) -> anyhow::Result<Self> {
        let dir = TempDir::new()?;
        std::fs::create_dir(dir.join("xds"))?;
        Ok(Self {
            dir,
            watched_directory,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join("xds").join(name)
    }

    /// Replaces file `name` atomically: written under a temporary name in the same
    /// directory, then renamed over it.
    fn replace(&self, name: &str, response: &Value) -> anyhow::Result<()> {
        let temp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&temp, serde_json::to_string_pretty(response)?)?;
        std::fs::rename(&temp, self.path(name))?;
        Ok(())
    }

    /// Overwrites file `name` in place (same inode), the way Envoy does not pick up.
    fn write_in_place(&self, name: &str, response: &Value) -> anyhow::Result<()> {
        std::fs::write(self.path(name), serde_json::to_string_pretty(response)?)?;
        Ok(())
    }

    fn source(&self, name: &str) -> Value {
        let mut path_config_source = json!({ "path": self.path(name).display().to_string() });
        if self.watched_directory {
            path_config_source["watched_directory"] =
                json!({ "path": self.dir.join("xds").display().to_string() });
        }
        json!({ "resource_api_version": "V3", "path_config_source": path_config_source })
    }

    fn bootstrap(&self) -> Value {
        json!({
            "node": { "id": "test-node", "cluster": "test-cluster" },
            "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
            "dynamic_resources": {
                "cds_config": self.source("cds.yaml"),
                "lds_config": self.source("lds.yaml"),
            },
        })
    }

    /// Writes CDS (clusters `a` and `b`) and LDS (routes to `a`) at version 1 and starts
    /// the proxy; returns it with the listener's address once `/` is served by `a`.
    async fn start(
        &self,
        a: &EchoUpstream,
        b: &EchoUpstream,
    ) -> anyhow::Result<(Proxy, std::net::SocketAddr)> {
        self.replace("cds.yaml", &clusters("1", a, b))?;
        self.replace("lds.yaml", &listener("1", "a"))?;
        let proxy = Proxy::start(&self.bootstrap()).await?;
        let addr = proxy.listener_addr("http").await?;
        wait_served_by(addr, "a").await?;
        Ok((proxy, addr))
    }
}

/// A `DiscoveryResponse` at `version` holding `resources` of `type_url`.
fn discovery_response(version: &str, type_url: &str, resources: Vec<Value>) -> Value {
    let resources: Vec<Value> = resources
        .into_iter()
        .map(|mut resource| {
            resource["@type"] = json!(type_url);
            resource
        })
        .collect();
    json!({ "version_info": version, "resources": resources })
}

/// CDS: STATIC clusters `a` and `b` over the upstreams of the same names.
fn clusters(version: &str, a: &EchoUpstream, b: &EchoUpstream) -> Value {
    discovery_response(
        version,
        CLUSTER_TYPE,
        vec![
            static_cluster("a", &[a.addr()]),
            static_cluster("b", &[b.addr()]),
        ],
    )
}

/// LDS: listener `http` on 127.0.0.1:0 with inline routes: `/version` answers
/// `version` directly, everything else goes to `cluster`.
fn listener(version: &str, cluster: &str) -> Value {
    let routes = route_config(vec![vhost(
        "all",
        &["*"],
        vec![
            direct_route("/version", 200, version),
            prefix_route("/", cluster),
        ],
    )]);
    discovery_response(
        version,
        LISTENER_TYPE,
        vec![listener_on(
            "http",
            "127.0.0.1",
            0,
            vec![hcm_filter(hcm(routes))],
        )],
    )
}

/// Requests the loop must see answered around each step.
const PER_STEP: usize = 30;

/// CDS and LDS from files: `/` is proxied to cluster `a` from the CDS file, `/version`
/// answered from the LDS file's routes.
///
/// Observed on Envoy 1.40: each file counts one `update_attempt` and one `update_success`
/// (`cluster_manager.cds.*`, `listener_manager.lds.*`); the clusters are dynamic
/// (`cluster_manager.cluster_added` 2) and the listener too (`listener_added` 1).
#[tokio::test]
async fn cds_and_lds_from_files_serve_traffic() -> anyhow::Result<()> {
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let files = XdsFiles::new(true)?;
    let (proxy, addr) = files.start(&a, &b).await?;
    let version = get(addr, "/version").await?;
    assert_eq!((version.status, version.body_text()), (200, "1".into()));
    let all = stats(&proxy).await?;
    for (name, value) in [
        ("cluster_manager.cds.update_attempt", 1),
        ("cluster_manager.cds.update_success", 1),
        ("cluster_manager.cds.update_rejected", 0),
        ("listener_manager.lds.update_attempt", 1),
        ("listener_manager.lds.update_success", 1),
        ("listener_manager.lds.update_rejected", 0),
        ("cluster_manager.cluster_added", 2),
        ("listener_manager.listener_added", 1),
    ] {
        assert_eq!(all.get(name), Some(&value), "{name}: {all:#?}");
    }
    Ok(())
}

#[tokio::test]
async fn replacing_the_lds_file_changes_routes_without_failures() -> anyhow::Result<()> {
    replace_lds_under_load(false, false).await
}

#[tokio::test]
async fn replacing_the_lds_file_in_a_watched_directory_changes_routes_without_failures(
) -> anyhow::Result<()> {
    replace_lds_under_load(true, false).await
}

/// Keep-alive clients too: the changed listener's old connections are told to close
/// (`connection: close` on their next response) while they drain, so no request races
/// the end of the drain.
///
/// Envoy 1.40 fails this (measured: one request per change): its old filter chain's
/// HTTP/1.1 connections get no `connection: close` during the drain and are closed when
/// the drain time ends, so a request sent just then fails. Issue 14 asks for 0 failed
/// requests when a listener changes.
#[tokio::test]
async fn replacing_the_lds_file_drains_keep_alive_connections_without_failures(
) -> anyhow::Result<()> {
    baton_tests::skip_for_envoy!(
        "Envoy closes a changed filter chain's keep-alive connections at the end of the drain without connection: close"
    );
    replace_lds_under_load(false, true).await
}

/// A request loop (a new connection per request, or keep-alive connections) runs while the LDS file is replaced twice
/// (routes to `b`, then back to `a`). Every request succeeds, the loop sees each change,
/// and the listener's `/version` follows the file.
///
/// Observed on Envoy 1.40: the changed listener's old connections drain (a response with
/// `connection: close`) and new connections get the new routes; no request fails.
async fn replace_lds_under_load(watched_directory: bool, keep_alive: bool) -> anyhow::Result<()> {
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let files = XdsFiles::new(watched_directory)?;
    let (proxy, addr) = files.start(&a, &b).await?;
    let requests = if keep_alive {
        RequestLoop::start(addr)
    } else {
        RequestLoop::start_new_connections(addr)
    };
    requests.wait_more(PER_STEP).await?;

    // New connections get the new routes at once; the loop's keep-alive connection keeps
    // its old filter chain until the drain (`--drain-time-s 1`) closes it and the loop
    // reconnects, so it sees each change a little later.
    files.replace("lds.yaml", &listener("2", "b"))?;
    wait_served_by(addr, "b").await?;
    requests.wait_for_upstream("b").await?;
    requests.wait_more(PER_STEP).await?;
    files.replace("lds.yaml", &listener("3", "a"))?;
    wait_served_by(addr, "a").await?;
    requests.wait_for_upstream("a").await?;
    requests.wait_more(PER_STEP).await?;

    let outcome = requests.finish().await?;
    assert!(outcome.failures.is_empty(), "{outcome:#?}");
    for name in ["a", "b"] {
        assert!(outcome.upstreams.contains_key(name), "{outcome:#?}");
    }
    assert_eq!(get(addr, "/version").await?.body_text(), "3");
    wait_stat(&proxy, "listener_manager.lds.update_success", 3).await?;
    Ok(())
}

/// An LDS file whose route configuration is invalid (two virtual hosts claiming `*`) is
/// rejected whole: `listener_manager.lds.update_rejected` counts it, the old routes keep
/// serving, and a later valid file applies.
///
/// Observed on Envoy 1.40: `update_rejected` 1 with `update_success` unchanged; the
/// listener keeps version 1's routes.
#[tokio::test]
async fn an_invalid_lds_file_is_rejected_and_the_old_config_serves() -> anyhow::Result<()> {
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let files = XdsFiles::new(false)?;
    let (proxy, addr) = files.start(&a, &b).await?;
    let requests = RequestLoop::start_new_connections(addr);
    requests.wait_more(PER_STEP).await?;

    let mut bad = listener("2", "b");
    let vhosts = bad
        .pointer_mut(
            "/resources/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts",
        )
        .and_then(Value::as_array_mut)
        .ok_or_else(|| anyhow::anyhow!("the listener has no inline virtual_hosts"))?;
    vhosts.push(vhost("second", &["*"], vec![prefix_route("/", "b")]));
    files.replace("lds.yaml", &bad)?;
    let all = wait_stat(&proxy, "listener_manager.lds.update_rejected", 1).await?;
    assert_eq!(
        all.get("listener_manager.lds.update_success"),
        Some(&1),
        "{all:#?}"
    );
    requests.wait_more(PER_STEP).await?;
    assert_eq!(get_once(addr, "/").await?, (200, "a".to_string()));
    assert_eq!(get(addr, "/version").await?.body_text(), "1");

    files.replace("lds.yaml", &listener("3", "b"))?;
    wait_served_by(addr, "b").await?;
    requests.wait_more(PER_STEP).await?;
    let outcome = requests.finish().await?;
    assert!(outcome.failures.is_empty(), "{outcome:#?}");
    wait_stat(&proxy, "listener_manager.lds.update_success", 2).await?;
    Ok(())
}

/// An LDS file that cannot be parsed (broken YAML) fails the update and the old config
/// keeps serving.
///
/// Observed on Envoy 1.40: counted as `listener_manager.lds.update_failure`, not
/// `update_rejected` (which counts files that parse but do not apply; an unknown `@type`
/// is a failure too), `update_success` unchanged.
#[tokio::test]
async fn an_unparsable_lds_file_fails_and_the_old_config_serves() -> anyhow::Result<()> {
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let files = XdsFiles::new(true)?;
    let (proxy, addr) = files.start(&a, &b).await?;
    let temp = files.path(".lds.yaml.tmp");
    std::fs::write(&temp, "version_info: \"2\"\nresources: [ {\n")?;
    std::fs::rename(&temp, files.path("lds.yaml"))?;
    let all = wait_stat(&proxy, "listener_manager.lds.update_failure", 1).await?;
    for (name, value) in [
        ("listener_manager.lds.update_attempt", 2),
        ("listener_manager.lds.update_success", 1),
        ("listener_manager.lds.update_rejected", 0),
    ] {
        assert_eq!(all.get(name), Some(&value), "{name}: {all:#?}");
    }
    assert_eq!(get_once(addr, "/").await?, (200, "a".to_string()));
    assert_eq!(get(addr, "/version").await?.body_text(), "1");
    Ok(())
}

/// Envoy reloads a `path_config_source` only when a file is moved (into the watched
/// directory, or over the file): a file rewritten in place keeps serving the old config
/// (a half-written file is never read) until the next move.
#[tokio::test]
async fn a_file_written_in_place_is_not_reloaded_until_a_move() -> anyhow::Result<()> {
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let files = XdsFiles::new(false)?;
    let (proxy, addr) = files.start(&a, &b).await?;
    files.write_in_place("lds.yaml", &listener("2", "b"))?;
    // Two later replacements of the CDS file, one after the other, are seen: a polling
    // watcher (Baton checks each file every 250 ms) has looked at the LDS file since the
    // in-place write by the time the second is applied.
    let mut cds_attempts = stats(&proxy).await?["cluster_manager.cds.update_attempt"];
    for version in ["2", "3"] {
        files.replace("cds.yaml", &clusters(version, &a, &b))?;
        cds_attempts += 1;
        wait_stat(&proxy, "cluster_manager.cds.update_attempt", cds_attempts).await?;
    }
    assert_eq!(get(addr, "/version").await?.body_text(), "1");
    let all = stats(&proxy).await?;
    assert_eq!(
        all.get("listener_manager.lds.update_attempt"),
        Some(&1),
        "{all:#?}"
    );

    files.replace("lds.yaml", &listener("3", "b"))?;
    eventually(XDS_TIMEOUT, || async {
        Ok((get(addr, "/version").await?.body_text() == "3").then_some(()))
    })
    .await?;
    wait_served_by(addr, "b").await?;
    Ok(())
}

/// With `watched_directory`, a move anywhere in the directory makes Envoy reread the file,
/// which is how Kubernetes updates a mounted ConfigMap: `lds.yaml` is a symlink to
/// `..data/lds.yaml`, and `..data` (a symlink to a versioned directory) is replaced by
/// renaming a new symlink over it. The listener follows the swap.
#[tokio::test]
async fn a_configmap_style_symlink_swap_in_the_watched_directory_reloads() -> anyhow::Result<()> {
    use std::os::unix::fs::symlink;
    let a = EchoUpstream::start("a").await?;
    let b = EchoUpstream::start("b").await?;
    let files = XdsFiles::new(true)?;
    let write_version = |dir: &str, version: &str, cluster: &str| -> anyhow::Result<()> {
        std::fs::create_dir(files.path(dir))?;
        let cds = serde_json::to_string_pretty(&clusters(version, &a, &b))?;
        std::fs::write(files.path(dir).join("cds.yaml"), cds)?;
        let lds = serde_json::to_string_pretty(&listener(version, cluster))?;
        std::fs::write(files.path(dir).join("lds.yaml"), lds)?;
        Ok(())
    };
    write_version("..v1", "1", "a")?;
    symlink("..v1", files.path("..data"))?;
    symlink("..data/cds.yaml", files.path("cds.yaml"))?;
    symlink("..data/lds.yaml", files.path("lds.yaml"))?;
    let proxy = Proxy::start(&files.bootstrap()).await?;
    let addr = proxy.listener_addr("http").await?;
    wait_served_by(addr, "a").await?;

    write_version("..v2", "2", "b")?;
    symlink("..v2", files.path("..data_tmp"))?;
    std::fs::rename(files.path("..data_tmp"), files.path("..data"))?;
    wait_served_by(addr, "b").await?;
    assert_eq!(get(addr, "/version").await?.body_text(), "2");
    Ok(())
}
