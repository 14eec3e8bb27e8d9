//! A full stats region degrades, never crashes (issue 4): with a region far too small for
//! the config (`--stats-max-stats`, Baton-specific), every request is still served, the
//! stats that did not fit keep counting in process memory, and `server.stats_overflow`
//! says how many did not fit. Without the flag the region is sized from the config, so a
//! config with more clusters than the old fixed 64 Ki stats had room for does not overflow.

use baton_tests::config::{simple_proxy, static_cluster};
use baton_tests::{get, skip_for_envoy, EchoUpstream, Proxy, StartOptions, TempDir};

fn stat(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(": ")?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn full_region_counts_overflow_and_the_proxy_keeps_serving() -> anyhow::Result<()> {
    skip_for_envoy!("--stats-max-stats is Baton's region sizing flag");
    let upstream = EchoUpstream::start("a").await?;
    let runtime = TempDir::new()?;
    let proxy = Proxy::start_with(
        &simple_proxy(&[upstream.addr()]),
        StartOptions {
            extra_args: vec![
                "--runtime-dir".into(),
                runtime.path().display().to_string(),
                "--stats-max-stats".into(),
                "16".into(),
            ],
            ..Default::default()
        },
    )
    .await?;
    let addr = proxy.listener_addr("http").await?;
    for _ in 0..20 {
        let r = get(addr, "/").await?;
        assert_eq!(r.status, 200);
    }
    let stats = proxy.admin_request("GET", "/stats").await?;
    assert_eq!(stats.status, 200);
    let text = stats.body_text();
    let overflow = stat(&text, "server.stats_overflow").unwrap_or(0);
    assert!(overflow > 0, "region of 16 stats should overflow:\n{text}");
    assert_eq!(
        upstream.requests(),
        20,
        "every request reached the upstream"
    );
    Ok(())
}

/// Clusters in the big config: about 100 stats each, so together past the 64 Ki names a
/// fixed-size region used to hold.
const BIG_CONFIG_CLUSTERS: usize = 1_000;

#[tokio::test]
async fn region_sized_from_the_config_does_not_overflow() -> anyhow::Result<()> {
    skip_for_envoy!("server.stats_overflow is Baton's region overflow counter");
    let upstream = EchoUpstream::start("a").await?;
    let runtime = TempDir::new()?;
    let mut config = simple_proxy(&[upstream.addr()]);
    let clusters = config
        .pointer_mut("/static_resources/clusters")
        .and_then(|c| c.as_array_mut())
        .ok_or_else(|| anyhow::anyhow!("simple_proxy has no cluster list"))?;
    for i in 0..BIG_CONFIG_CLUSTERS {
        clusters.push(static_cluster(&format!("extra{i}"), &[upstream.addr()]));
    }
    let proxy = Proxy::start_with(
        &config,
        StartOptions {
            extra_args: vec!["--runtime-dir".into(), runtime.path().display().to_string()],
            ..Default::default()
        },
    )
    .await?;
    let addr = proxy.listener_addr("http").await?;
    assert_eq!(get(addr, "/").await?.status, 200);
    let stats = proxy
        .admin_request("GET", "/stats?filter=^server.stats_overflow$")
        .await?;
    assert_eq!(stats.status, 200);
    let text = stats.body_text();
    assert_eq!(
        stat(&text, "server.stats_overflow"),
        Some(0),
        "a region sized from {BIG_CONFIG_CLUSTERS} clusters must not overflow:\n{text}"
    );
    Ok(())
}
