//! The bundled examples: every `examples/*.yaml` validates (except `bad-v2.yaml`, which must
//! fail, see cli.rs), and the quickstart actually serves: `/` directly and `/service` through
//! its cluster to its second listener.

use std::path::PathBuf;

use baton_tests::config::free_port;
use baton_tests::{get, run_to_completion, Proxy, StartOptions};

fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

#[test]
fn every_example_validates() -> anyhow::Result<()> {
    let mut checked = 0;
    for entry in std::fs::read_dir(examples_dir())? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.ends_with(".yaml") || name.starts_with("bad-") {
            continue;
        }
        let path_text = path.display().to_string();
        let (status, out, err) = run_to_completion(&["--mode", "validate", "-c", &path_text])?;
        assert!(status.success(), "{name}: {status}\n{out}\n{err}");
        assert!(
            format!("{out}{err}").contains(&format!("configuration '{path_text}' OK")),
            "{name}: {out}\n{err}"
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} examples found");
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
