//! `rate_limit_settings` on the ADS `api_config_source`: a token bucket on the discovery
//! requests the proxy sends. With one token refilled twice a second, initialisation
//! (CDS, EDS, LDS, RDS requests and their ACKs) is held back: `control_plane.
//! rate_limit_enforced` counts, and every request still goes out in order, so every type
//! ends up ACKed and traffic flows (observed on Envoy 1.40 with the same bootstrap).

mod xds_support;

use baton_tests::config::merge;
use baton_tests::xds::ControlPlane;
use baton_tests::EchoUpstream;
use serde_json::json;
use xds_support::*;

sotw_and_delta!(requests_over_the_rate_limit_wait_and_are_all_sent);

async fn requests_over_the_rate_limit_wait_and_are_all_sent(
    transport: baton_tests::config::XdsTransport,
) -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    let a = EchoUpstream::start("a").await?;
    set_all(&cp, "1", &[a.addr()], 0)?;
    let mut config = bootstrap(&cp, transport).build();
    merge(
        &mut config,
        json!({ "dynamic_resources": { "ads_config": {
            "rate_limit_settings": { "max_tokens": 1, "fill_rate": 2.0 }
        } } }),
    );
    let proxy = baton_tests::Proxy::start(&config).await?;
    wait_all_acked(&cp, "1").await?;
    wait_served_by(proxy.listener_addr("http").await?, "a").await?;
    let stats = stats(&proxy).await?;
    assert!(
        stats
            .get("control_plane.rate_limit_enforced")
            .copied()
            .unwrap_or(0)
            > 0,
        "the bucket held requests back: {stats:?}"
    );
    assert_eq!(stats.get("control_plane.pending_requests"), Some(&0));

    // Updates after initialisation still arrive and apply.
    let b = EchoUpstream::start("b").await?;
    set_endpoints(&cp, "2", &[("backend", &[b.addr()])])?;
    wait_served_by(proxy.listener_addr("http").await?, "b").await?;
    Ok(())
}
