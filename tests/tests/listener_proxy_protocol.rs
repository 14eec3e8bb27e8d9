//! The `proxy_protocol` listener filter in front of TLS (a load balancer passing TLS
//! through with a PROXY header): the header is read first, the `tls_inspector` then
//! finds the ClientHello and picks the filter chain by SNI, and the request carries the
//! client address of the header (`x-forwarded-for` with `use_remote_address`). The
//! plain-text cases are in the differential area `proxy_protocol`. Measured on Envoy
//! 1.40 (the test passes on both).

use baton_tests::config::{bootstrap, hcm, prefix_route, route_config, static_cluster, vhost};
use baton_tests::tls::{client_config, ClientOptions, KeyKind, TestCa};
use baton_tests::{EchoUpstream, Proxy, RawHttp1, TempDir, IO_TIMEOUT};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_proxy_header_before_tls_gives_the_client_address() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("pp ca")?;
    let server = ca.issue(
        &dir,
        "server",
        "server",
        &["pp.example.com"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let up = EchoUpstream::start("up").await?;
    let mut manager = hcm(route_config(vec![vhost(
        "all",
        &["*"],
        vec![prefix_route("/", "backend")],
    )]));
    manager["use_remote_address"] = json!(true);
    let listener = json!({
        "name": "tls",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "listener_filters": [
            { "name": "envoy.filters.listener.proxy_protocol", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol" } },
            { "name": "envoy.filters.listener.tls_inspector", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" } },
        ],
        "filter_chains": [{
            "filter_chain_match": { "server_names": ["pp.example.com"] },
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": { "tls_certificates": [{
                    "certificate_chain": { "filename": server.cert_path.display().to_string() },
                    "private_key": { "filename": server.key_path.display().to_string() },
                }] },
            } },
            "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": manager }],
        }],
    });
    let proxy = Proxy::start(&bootstrap(
        vec![listener],
        vec![static_cluster("backend", &[up.addr()])],
    ))
    .await?;
    let addr = proxy.listener_addr("tls").await?;

    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(b"PROXY TCP4 203.0.113.9 10.0.0.1 40000 443\r\n")
        .await?;
    let opts = ClientOptions::sni("pp.example.com");
    let name = rustls::pki_types::ServerName::try_from("pp.example.com")?;
    let tls = tokio::time::timeout(
        IO_TIMEOUT,
        tokio_rustls::TlsConnector::from(client_config(&opts)?).connect(name, tcp),
    )
    .await??;
    let mut http = RawHttp1::over(tls);
    http.send_request("GET", "/who", &[], b"").await?;
    let resp = http.read_response().await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let echoed: Value = serde_json::from_str(&resp.body_text())?;
    let xff = echoed["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h[0] == "x-forwarded-for")
        .map(|h| h[1].clone());
    assert_eq!(xff, Some(json!("203.0.113.9")), "{echoed}");
    let xfp = echoed["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h[0] == "x-forwarded-proto")
        .map(|h| h[1].clone());
    assert_eq!(xfp, Some(json!("https")), "{echoed}");
    Ok(())
}
