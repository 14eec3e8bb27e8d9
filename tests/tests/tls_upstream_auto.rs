//! Upstream SNI and SAN taken from the request or the host: `auto_sni`,
//! `override_auto_sni_header` and `auto_san_validation` (cluster
//! `upstream_http_protocol_options`), `auto_host_sni` and `auto_sni_san_validation`
//! (`UpstreamTlsContext`). A keep-alive TLS upstream run by the test answers each request
//! with the SNI of its connection and records every handshake, so connection reuse is
//! visible: connections with different SNI are never shared.

use std::net::SocketAddr;

use baton_tests::client::RawHttp1;
use baton_tests::config::{bootstrap, hcm, hcm_filter, prefix_route, route_config, vhost};
use baton_tests::tls::{KeyKind, TestCa};
use baton_tests::tls_upstream::SniUpstream;
use baton_tests::{Proxy, TempDir};
use serde_json::{json, Value};

fn upstream_tls(ctx: Value) -> Value {
    let mut typed = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    });
    for (k, v) in ctx.as_object().into_iter().flatten() {
        typed[k] = v.clone();
    }
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": typed })
}

/// A cluster of one endpoint (with `hostname` when given) and `upstream_http_protocol_options`.
fn cluster(addr: SocketAddr, hostname: Option<&str>, socket: Value, auto: Value) -> Value {
    let mut endpoint = json!({ "address": { "socket_address": {
        "address": addr.ip().to_string(), "port_value": addr.port()
    }}});
    if let Some(name) = hostname {
        endpoint["hostname"] = json!(name);
    }
    let mut options = json!({
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": { "http_protocol_options": {} },
    });
    if !auto.is_null() {
        options["upstream_http_protocol_options"] = auto;
    }
    json!({
        "name": "tls",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "tls",
            "endpoints": [{ "lb_endpoints": [{ "endpoint": endpoint }]}],
        },
        "transport_socket": socket,
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options,
        },
    })
}

async fn start(cluster: Value) -> anyhow::Result<(Proxy, SocketAddr)> {
    let listener = json!({
        "name": "l",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [hcm_filter(hcm(route_config(vec![vhost(
            "all", &["*"], vec![prefix_route("/", "tls")],
        )])))]}],
    });
    let proxy = Proxy::start(&bootstrap(vec![listener], vec![cluster])).await?;
    let addr = proxy.listener_addr("l").await?;
    Ok((proxy, addr))
}

/// `GET /` on `conn` with the given headers: (status, body).
async fn get(conn: &mut RawHttp1, headers: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
    conn.send_request("GET", "/", headers, b"").await?;
    let resp = conn.read_response().await?;
    Ok((resp.status, resp.body_text()))
}

fn ca_file(dir: &TempDir, ca: &TestCa) -> anyhow::Result<String> {
    Ok(ca.write(dir, "ca")?.display().to_string())
}

#[tokio::test]
async fn auto_sni_sends_the_host_and_never_shares_connections_across_sni() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["a.test"], &[], KeyKind::Ecdsa)?;
    let upstream = SniUpstream::start(&cert).await?;
    let (_proxy, addr) = start(cluster(
        upstream.addr,
        None,
        upstream_tls(json!({ "sni": "configured.test" })),
        json!({ "auto_sni": true }),
    ))
    .await?;
    // One downstream connection: one worker, one set of pools.
    let mut conn = RawHttp1::connect(addr).await?;
    assert_eq!(
        get(&mut conn, &[("host", "a.test:8443")]).await?,
        (200, "a.test".to_string()),
        "the port is not part of the SNI"
    );
    assert_eq!(
        get(&mut conn, &[("host", "b.test")]).await?,
        (200, "b.test".to_string())
    );
    assert_eq!(
        get(&mut conn, &[("host", "a.test")]).await?,
        (200, "a.test".to_string())
    );
    assert_eq!(
        upstream.handshakes(),
        vec![Some("a.test".to_string()), Some("b.test".to_string())],
        "the third request reuses the a.test connection"
    );
    Ok(())
}

#[tokio::test]
async fn override_auto_sni_header_wins_over_the_host_when_present() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["a.test"], &[], KeyKind::Ecdsa)?;
    let upstream = SniUpstream::start(&cert).await?;
    let (_proxy, addr) = start(cluster(
        upstream.addr,
        None,
        upstream_tls(json!({})),
        json!({ "auto_sni": true, "override_auto_sni_header": "x-sni" }),
    ))
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    assert_eq!(
        get(&mut conn, &[("host", "a.test"), ("x-sni", "c.test")]).await?,
        (200, "c.test".to_string())
    );
    assert_eq!(
        get(&mut conn, &[("host", "a.test"), ("x-sni", "")]).await?,
        (200, "a.test".to_string()),
        "an empty header falls back to the host"
    );
    assert_eq!(
        get(&mut conn, &[("host", "a.test")]).await?,
        (200, "a.test".to_string())
    );
    Ok(())
}

#[tokio::test]
async fn auto_sni_sends_none_for_an_ip_host() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["a.test"], &[], KeyKind::Ecdsa)?;
    let upstream = SniUpstream::start(&cert).await?;
    let (_proxy, addr) = start(cluster(
        upstream.addr,
        None,
        upstream_tls(json!({ "sni": "configured.test" })),
        json!({ "auto_sni": true }),
    ))
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    assert_eq!(
        get(&mut conn, &[("host", "127.0.0.1:80")]).await?,
        (200, "configured.test".to_string()),
        "an IP host leaves the configured sni"
    );
    Ok(())
}

#[tokio::test]
async fn auto_san_validation_checks_the_host() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(
        &dir,
        "up",
        "up",
        &["a.test", "*.wild.test"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let upstream = SniUpstream::start(&cert).await?;
    let socket = upstream_tls(json!({
        "common_tls_context": { "validation_context": {
            "trusted_ca": { "filename": ca_file(&dir, &ca)? },
            "match_typed_subject_alt_names": [
                { "san_type": "DNS", "matcher": { "suffix": ".test" } }
            ],
        }},
    }));
    let (proxy, addr) = start(cluster(
        upstream.addr,
        None,
        socket,
        json!({ "auto_sni": true, "auto_san_validation": true }),
    ))
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    assert_eq!(
        get(&mut conn, &[("host", "a.test")]).await?,
        (200, "a.test".to_string())
    );
    assert_eq!(
        get(&mut conn, &[("host", "x.wild.test")]).await?,
        (200, "x.wild.test".to_string()),
        "a wildcard SAN covers one label"
    );
    let mut conn = RawHttp1::connect(addr).await?;
    let (status, _) = get(&mut conn, &[("host", "b.test")]).await?;
    assert_eq!(status, 503);
    let mut conn = RawHttp1::connect(addr).await?;
    let (status, _) = get(&mut conn, &[("host", "y.x.wild.test")]).await?;
    assert_eq!(status, 503);
    assert_eq!(
        proxy.stat("cluster.tls.ssl.fail_verify_san").await?,
        Some(2)
    );
    assert_eq!(proxy.stat("cluster.tls.ssl.handshake").await?, Some(2));
    Ok(())
}

#[tokio::test]
async fn auto_san_validation_applies_with_the_configured_matchers() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["a.test"], &[], KeyKind::Ecdsa)?;
    let upstream = SniUpstream::start(&cert).await?;
    let socket = upstream_tls(json!({
        "common_tls_context": { "validation_context": {
            "trusted_ca": { "filename": ca_file(&dir, &ca)? },
            "match_typed_subject_alt_names": [
                { "san_type": "DNS", "matcher": { "exact": "nothing.test" } }
            ],
        }},
    }));
    let (proxy, addr) = start(cluster(
        upstream.addr,
        None,
        socket,
        json!({ "auto_sni": true, "auto_san_validation": true }),
    ))
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    let (status, _) = get(&mut conn, &[("host", "a.test")]).await?;
    assert_eq!(
        status, 503,
        "the host matches, the configured matcher does not"
    );
    assert_eq!(
        proxy.stat("cluster.tls.ssl.fail_verify_san").await?,
        Some(1)
    );
    Ok(())
}

#[tokio::test]
async fn auto_san_validation_without_auto_sni_keeps_the_configured_sni() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["a.test"], &[], KeyKind::Ecdsa)?;
    let upstream = SniUpstream::start(&cert).await?;
    let socket = upstream_tls(json!({
        "sni": "configured.test",
        "common_tls_context": { "validation_context": {
            "trusted_ca": { "filename": ca_file(&dir, &ca)? },
        }},
    }));
    let (_proxy, addr) = start(cluster(
        upstream.addr,
        None,
        socket,
        json!({ "auto_san_validation": true }),
    ))
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    assert_eq!(
        get(&mut conn, &[("host", "a.test")]).await?,
        (200, "configured.test".to_string())
    );
    let mut conn = RawHttp1::connect(addr).await?;
    let (status, _) = get(&mut conn, &[("host", "b.test")]).await?;
    assert_eq!(status, 503);
    Ok(())
}

#[tokio::test]
async fn auto_host_sni_sends_the_endpoint_hostname() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["ep.test"], &[], KeyKind::Ecdsa)?;
    let upstream = SniUpstream::start(&cert).await?;
    let (_proxy, addr) = start(cluster(
        upstream.addr,
        Some("ep.test"),
        upstream_tls(json!({ "sni": "configured.test", "auto_host_sni": true })),
        Value::Null,
    ))
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    assert_eq!(
        get(&mut conn, &[("host", "a.test")]).await?,
        (200, "ep.test".to_string())
    );
    Ok(())
}

#[tokio::test]
async fn auto_sni_san_validation_checks_the_sni_sent() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["good.test"], &[], KeyKind::Ecdsa)?;
    let upstream = SniUpstream::start(&cert).await?;
    let validation = json!({
        "trusted_ca": { "filename": ca_file(&dir, &ca)? },
        "match_typed_subject_alt_names": [
            { "san_type": "DNS", "matcher": { "exact": "nothing.test" } }
        ],
    });
    let (proxy, addr) = start(cluster(
        upstream.addr,
        None,
        upstream_tls(json!({
            "auto_sni_san_validation": true,
            "common_tls_context": { "validation_context": validation },
        })),
        json!({ "auto_sni": true }),
    ))
    .await?;
    let mut conn = RawHttp1::connect(addr).await?;
    assert_eq!(
        get(&mut conn, &[("host", "good.test")]).await?,
        (200, "good.test".to_string())
    );
    let mut conn = RawHttp1::connect(addr).await?;
    let (status, _) = get(&mut conn, &[("host", "bad.test")]).await?;
    assert_eq!(status, 503);
    assert_eq!(
        proxy.stat("cluster.tls.ssl.fail_verify_san").await?,
        Some(1)
    );
    Ok(())
}

#[tokio::test]
async fn auto_sni_takes_the_authority_of_an_http2_request() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["a.test"], &[], KeyKind::Ecdsa)?;
    let upstream = SniUpstream::start(&cert).await?;
    let (_proxy, addr) = start(cluster(
        upstream.addr,
        None,
        upstream_tls(json!({})),
        json!({ "auto_sni": true }),
    ))
    .await?;
    let client = baton_tests::H2Client::connect(addr)
        .await?
        .with_authority("h2.test:443");
    let resp = client.get("/").await?;
    assert_eq!(resp.status, 200);
    assert_eq!(&resp.body[..], b"h2.test");
    Ok(())
}
