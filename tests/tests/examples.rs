//! The bundled examples: every bootstrap under `examples/` validates (except `bad-v2.yaml`,
//! which must fail, see cli.rs), and they actually serve: the quickstart `/` directly and
//! `/service` through its cluster to its second listener; `xds/files/` the same from its
//! CDS and LDS files, also after the LDS file is replaced as its README says; `xds/ads.yaml`
//! under the test control plane, with `api_type` GRPC and DELTA_GRPC.

use std::path::{Path, PathBuf};

mod xds_support;

use baton_tests::config::{free_port, XdsTransport};
use baton_tests::xds::ControlPlane;
use baton_tests::{eventually, get, run_to_completion_in, EchoUpstream, Proxy, StartOptions};
use xds_support::{set_all, wait_all_acked, wait_served_by, XDS_TIMEOUT};

fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

/// Every `*.yaml` under `dir`, recursively, sorted.
fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            yaml_files(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "yaml") {
            found.push(path);
        }
    }
    found.sort();
    Ok(())
}

/// True for an xDS `DiscoveryResponse` file (a `path_config_source` of an example, with a
/// top-level `resources:`), which is not a bootstrap; those are checked by serving.
fn is_discovery_response(text: &str) -> bool {
    text.lines().any(|line| line.starts_with("resources:"))
}

#[test]
fn every_example_validates() -> anyhow::Result<()> {
    let root = examples_dir().join("..").canonicalize()?;
    let mut files = Vec::new();
    yaml_files(&examples_dir(), &mut files)?;
    let mut checked = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("bad-") || is_discovery_response(&std::fs::read_to_string(&path)?) {
            continue;
        }
        // Generated bootstraps: they need the command-line node (and Istio's does not
        // load whole yet); examples_generated.rs validates them.
        if path.parent().is_some_and(|p| p.ends_with("envoy-gateway")) {
            continue;
        }
        // Relative to the repository root, where the examples say to run them from (their
        // `path_config_source` paths are relative to the working directory).
        let relative = path.canonicalize()?;
        let relative = relative.strip_prefix(&root)?.display().to_string();
        let (status, out, err) =
            run_to_completion_in(Some(&root), &["--mode", "validate", "-c", &relative])?;
        assert!(status.success(), "{relative}: {status}\n{out}\n{err}");
        assert!(
            format!("{out}{err}").contains(&format!("configuration '{relative}' OK")),
            "{relative}: {out}\n{err}"
        );
        checked.push(relative);
    }
    for expected in [
        "examples/quickstart.yaml",
        "examples/xds/ads.yaml",
        "examples/xds/files/bootstrap.yaml",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} not checked: {checked:?}"
        );
    }
    assert!(checked.len() >= 6, "only {checked:?} checked");
    Ok(())
}

#[tokio::test]
async fn quickstart_serves_direct_and_proxied_routes() -> anyhow::Result<()> {
    // Same file, with its fixed ports swapped for free ones so tests can run in parallel.
    let text = std::fs::read_to_string(examples_dir().join("quickstart.yaml"))?;
    let (front, service, admin) = (free_port()?, free_port()?, free_port()?);
    let text = text
        .replace("port_value: 10000", &format!("port_value: {front}"))
        .replace("port_value: 10001", &format!("port_value: {service}"))
        .replace("port_value: 9901", &format!("port_value: {admin}"));
    let proxy = Proxy::start_text(&text, "yaml", StartOptions::default()).await?;
    let front_addr = proxy.listener_addr("front").await?;
    assert_eq!(front_addr.port(), front);
    let root = get(front_addr, "/").await?;
    assert_eq!(root.status, 200);
    assert!(
        root.body_text().starts_with("Hello from Baton"),
        "{}",
        root.body_text()
    );
    let proxied = get(front_addr, "/service").await?;
    assert_eq!(proxied.status, 200);
    assert_eq!(
        proxied.body_text(),
        "Hello from the service behind Baton.\n"
    );
    assert!(
        proxied.header("x-envoy-upstream-service-time").is_some(),
        "{:?}",
        proxied.headers
    );
    assert_eq!(get(front_addr, "/nope").await?.status, 404);
    Ok(())
}

/// Replaces `path` the way examples/xds/README.md says: a new copy next to it, renamed over.
fn replace_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(".{}.new", name.unwrap_or_default()));
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

#[tokio::test]
async fn xds_files_example_serves_and_reloads() -> anyhow::Result<()> {
    // A copy of examples/xds/files in a private dir, with free ports and absolute paths.
    let dir = baton_tests::TempDir::new()?;
    let (front, service) = (free_port()?, free_port()?);
    let source = examples_dir().join("xds/files");
    let ports = |text: String| {
        text.replace("port_value: 10000", &format!("port_value: {front}"))
            .replace("port_value: 10001", &format!("port_value: {service}"))
            .replace("port_value: 9901", "port_value: 0")
    };
    for name in ["cds.yaml", "lds.yaml"] {
        std::fs::write(
            dir.join(name),
            ports(std::fs::read_to_string(source.join(name))?),
        )?;
    }
    let bootstrap = ports(std::fs::read_to_string(source.join("bootstrap.yaml"))?)
        .replace("examples/xds/files", &dir.path().display().to_string());
    let proxy = Proxy::start_text(&bootstrap, "yaml", StartOptions::default()).await?;
    let front_addr = proxy.listener_addr("front").await?;
    assert_eq!(front_addr.port(), front);
    let root = get(front_addr, "/").await?;
    assert_eq!(root.status, 200);
    assert_eq!(
        root.body_text(),
        "Hello from Baton (file-based xDS). Try /service.\n"
    );
    let proxied = get(front_addr, "/service").await?;
    assert_eq!(proxied.status, 200);
    assert_eq!(
        proxied.body_text(),
        "Hello from the service behind Baton.\n"
    );
    assert!(
        proxied.header("x-envoy-upstream-service-time").is_some(),
        "{:?}",
        proxied.headers
    );
    assert_eq!(get(front_addr, "/nope").await?.status, 404);

    // The README's update: a copy with a new greeting and version, moved over lds.yaml.
    let lds = dir.join("lds.yaml");
    let updated = std::fs::read_to_string(&lds)?
        .replace("Hello from Baton", "Hello again")
        .replace("version_info: \"1\"", "version_info: \"2\"");
    replace_atomically(&lds, &updated)?;
    eventually(XDS_TIMEOUT, || async {
        let body = get(front_addr, "/").await?.body_text();
        Ok(body.starts_with("Hello again").then_some(()))
    })
    .await?;
    assert_eq!(get(front_addr, "/service").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn xds_ads_example_serves_under_a_control_plane() -> anyhow::Result<()> {
    for transport in [XdsTransport::Sotw, XdsTransport::Delta] {
        let cp = ControlPlane::start().await?;
        let upstream = EchoUpstream::start("a").await?;
        set_all(&cp, "1", &[upstream.addr()], 0)?;
        let mut text = std::fs::read_to_string(examples_dir().join("xds/ads.yaml"))?
            .replace(
                "port_value: 18000",
                &format!("port_value: {}", cp.addr().port()),
            )
            .replace("port_value: 9901", "port_value: 0");
        if transport == XdsTransport::Delta {
            text = text.replace("    api_type: GRPC\n", "    api_type: DELTA_GRPC\n");
        }
        let proxy = Proxy::start_text(&text, "yaml", StartOptions::default()).await?;
        wait_all_acked(&cp, "1").await?;
        let delta = cp.requests().iter().all(|r| r.delta);
        assert_eq!(delta, transport == XdsTransport::Delta, "{transport:?}");
        wait_served_by(proxy.listener_addr("http").await?, "a").await?;
    }
    Ok(())
}
