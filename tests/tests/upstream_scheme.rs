//! The `:scheme` of requests sent to an HTTP/2 upstream, by downstream transport and
//! `scheme_header_transformation`: the downstream request's (an HTTP/2 client's own, the
//! connection's for HTTP/1: `https` over TLS), `scheme_to_overwrite`'s, or with
//! `match_upstream` the upstream connection's (plain text here: `http`). The upstream is
//! the echo server, which reports the URI it got. Measured on Envoy 1.40 (the test
//! passes on both).

use std::net::SocketAddr;

use baton_tests::config::{
    bootstrap, hcm, prefix_route, route_config, static_cluster, vhost, with_http2_upstream,
};
use baton_tests::h2raw::{hpack_literal, kind, RawH2};
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa};
use baton_tests::{get, EchoUpstream, H2Client, Proxy, RawHttp1, TempDir};
use serde_json::{json, Value};

/// A listener named `name` proxying everything to `backend`, with `transformation` as
/// its `scheme_header_transformation` and TLS when `tls` is given.
fn listener(name: &str, transformation: Value, tls: Option<(&str, &str)>) -> Value {
    let mut manager = hcm(route_config(vec![vhost(
        "all",
        &["*"],
        vec![prefix_route("/", "backend")],
    )]));
    if !transformation.is_null() {
        manager["scheme_header_transformation"] = transformation;
    }
    let mut chain = json!({
        "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": manager }],
    });
    if let Some((cert, key)) = tls {
        chain["transport_socket"] = json!({ "name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": { "tls_certificates": [{
                "certificate_chain": { "filename": cert },
                "private_key": { "filename": key },
            }] },
        } });
    }
    json!({
        "name": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [chain],
    })
}

/// The scheme of the URI the echo upstream reports (`http://test/...`).
fn scheme_of(echo_body: &str) -> anyhow::Result<String> {
    let reply: Value = serde_json::from_str(echo_body)?;
    let uri = reply["uri"].as_str().unwrap_or_default();
    anyhow::ensure!(
        reply["version"] == "HTTP/2.0",
        "not HTTP/2 upstream: {reply}"
    );
    Ok(uri.split("://").next().unwrap_or_default().to_string())
}

/// A GET over h2c with `:scheme` `scheme`; the body of its response.
async fn h2c_get_with_scheme(addr: SocketAddr, scheme: &str) -> anyhow::Result<String> {
    let mut h2 = RawH2::connect(addr).await?;
    let mut block = Vec::new();
    hpack_literal(&mut block, ":method", b"GET");
    hpack_literal(&mut block, ":scheme", scheme.as_bytes());
    hpack_literal(&mut block, ":authority", b"test");
    hpack_literal(&mut block, ":path", b"/s");
    let id = h2.next_stream_id();
    h2.send_headers(id, &block, true).await?;
    let frames = h2.read_stream(id).await?;
    let body: Vec<u8> = frames
        .iter()
        .filter(|f| f.kind == kind::DATA)
        .flat_map(|f| f.payload.clone())
        .collect();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn http2_upstream_scheme_follows_the_downstream_or_the_transformation() -> anyhow::Result<()>
{
    let dir = TempDir::new()?;
    let ca = TestCa::new("scheme ca")?;
    let server = ca.issue(
        &dir,
        "server",
        "server",
        &["scheme.example.com"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let (cert, key) = (
        server.cert_path.display().to_string(),
        server.key_path.display().to_string(),
    );
    let up = EchoUpstream::start("up").await?;
    let config = bootstrap(
        vec![
            listener("plain", Value::Null, None),
            listener("overwrite", json!({ "scheme_to_overwrite": "https" }), None),
            listener("match", json!({ "match_upstream": true }), None),
            listener("tls", Value::Null, Some((&cert, &key))),
            listener(
                "tls_match",
                json!({ "match_upstream": true }),
                Some((&cert, &key)),
            ),
        ],
        vec![with_http2_upstream(static_cluster("backend", &[up.addr()]))],
    );
    let proxy = Proxy::start(&config).await?;
    let addr = |name: &'static str| proxy.listener_addr(name);

    let mut seen = Vec::new();
    for name in ["plain", "overwrite", "match"] {
        let resp = get(addr(name).await?, "/s").await?;
        seen.push((format!("{name} HTTP/1.1"), scheme_of(&resp.body_text())?));
        let h2 = H2Client::connect(addr(name).await?).await?;
        let resp = h2.get("/s").await?;
        seen.push((
            format!("{name} h2c"),
            scheme_of(&String::from_utf8_lossy(&resp.body))?,
        ));
        let body = h2c_get_with_scheme(addr(name).await?, "https").await?;
        seen.push((format!("{name} h2c :scheme https"), scheme_of(&body)?));
    }
    let client = ClientOptions::sni("scheme.example.com");
    for name in ["tls", "tls_match"] {
        let stream = tls::connect(addr(name).await?, &client).await?;
        let mut http = RawHttp1::over(stream);
        http.send_request("GET", "/s", &[], b"").await?;
        let resp = http.read_response().await?;
        seen.push((format!("{name} HTTP/1.1"), scheme_of(&resp.body_text())?));
    }
    let expected = [
        ("plain HTTP/1.1", "http"),
        ("plain h2c", "http"),
        ("plain h2c :scheme https", "https"),
        ("overwrite HTTP/1.1", "https"),
        ("overwrite h2c", "https"),
        ("overwrite h2c :scheme https", "https"),
        ("match HTTP/1.1", "http"),
        ("match h2c", "http"),
        ("match h2c :scheme https", "http"),
        ("tls HTTP/1.1", "https"),
        ("tls_match HTTP/1.1", "http"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(seen, expected);
    Ok(())
}
