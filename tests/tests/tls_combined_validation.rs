//! `combined_validation_context` on a listener requiring client certificates: the
//! `default_validation_context` with an SDS secret's validation context merged onto it
//! as Envoy merges them (proto `MergeFrom`): the secret's `trusted_ca` replaces the
//! default's, and the SAN matchers are the default's and the secret's together. A
//! rotation of the secret merges again onto the default (the previous secret's matchers
//! are gone). From a watched SDS file and over ADS.

mod xds_support;

use std::net::SocketAddr;
use std::path::Path;

use baton_tests::config::{direct_route, hcm, hcm_filter, route_config, vhost, XdsTransport};
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa, TestCert};
use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE, LISTENER_TYPE};
use baton_tests::{Proxy, RawHttp1, TempDir};
use serde_json::{json, Value};
use xds_support::*;

const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// Two client CAs, and a client of each for the URI SANs `spiffe://a`, `b` and `c`.
struct Clients {
    server: TestCert,
    ca1: TestCa,
    ca2: TestCa,
    /// `[ca][san]`: ca 0 = ca1, 1 = ca2; san 0..3 = a, b, c.
    certs: Vec<Vec<TestCert>>,
}

impl Clients {
    fn new(dir: &TempDir) -> anyhow::Result<Self> {
        let server_ca = TestCa::new("server ca")?;
        let server = server_ca.issue(
            dir,
            "server",
            "cn-server",
            &["combined.example.com"],
            &[],
            KeyKind::Ecdsa,
        )?;
        let (ca1, ca2) = (TestCa::new("client ca 1")?, TestCa::new("client ca 2")?);
        let mut certs = Vec::new();
        for (i, ca) in [&ca1, &ca2].into_iter().enumerate() {
            let mut row = Vec::new();
            for san in ["a", "b", "c"] {
                let name = format!("client{}{san}", i + 1);
                let uri = format!("spiffe://{san}");
                row.push(ca.issue(dir, &name, &name, &[], &[uri.as_str()], KeyKind::Ecdsa)?);
            }
            certs.push(row);
        }
        Ok(Self {
            server,
            ca1,
            ca2,
            certs,
        })
    }

    /// Which clients are served, as `"<ca><san>"` names (e.g. `"2a"`), sorted.
    async fn accepted(&self, addr: SocketAddr) -> Vec<String> {
        let mut out = Vec::new();
        for (i, row) in self.certs.iter().enumerate() {
            for (j, cert) in row.iter().enumerate() {
                if matches!(get_with_client_cert(addr, cert).await, Ok(200)) {
                    out.push(format!("{}{}", i + 1, ["a", "b", "c"][j]));
                }
            }
        }
        out
    }

    /// Waits until exactly `want` are served.
    async fn wait_accepted(&self, addr: SocketAddr, want: &[&str]) -> anyhow::Result<()> {
        let got = baton_tests::eventually(XDS_TIMEOUT, || async {
            Ok((self.accepted(addr).await == want).then_some(()))
        })
        .await;
        if got.is_err() {
            anyhow::bail!("served {:?}, expected {want:?}", self.accepted(addr).await);
        }
        Ok(())
    }
}

/// An HTTPS request with `client` as the client certificate; Err when refused.
async fn get_with_client_cert(addr: SocketAddr, client: &TestCert) -> anyhow::Result<u16> {
    let opts = ClientOptions {
        client_cert: Some((client.cert_pem.clone(), client.key_pem.clone())),
        ..ClientOptions::sni("combined.example.com")
    };
    let stream = tls::connect(addr, &opts).await?;
    let mut http = RawHttp1::over(stream);
    http.send_request("GET", "/", &[], b"").await?;
    Ok(http.read_response().await?.status)
}

fn uri_matcher(san: &str) -> Value {
    json!({ "san_type": "URI", "matcher": { "exact": format!("spiffe://{san}") } })
}

/// The dynamic part: `ca`'s certificate as `trusted_ca` and one URI SAN matcher.
fn validation_context(ca: &TestCa, san: &str) -> Value {
    json!({
        "trusted_ca": { "inline_string": ca.pem },
        "match_typed_subject_alt_names": [uri_matcher(san)],
    })
}

/// The `DownstreamTlsContext`: client certificates required, validated by the default
/// (ca1, SAN `spiffe://a`) combined with the secret `client_ca` from `sds_config`.
fn tls_context(clients: &Clients, sds_config: Value) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": true,
        "common_tls_context": {
            "tls_certificates": [{
                "certificate_chain": { "inline_string": clients.server.cert_pem },
                "private_key": { "inline_string": clients.server.key_pem },
            }],
            "combined_validation_context": {
                "default_validation_context": validation_context(&clients.ca1, "a"),
                "validation_context_sds_secret_config": {
                    "name": "client_ca",
                    "sds_config": sds_config,
                },
            },
        },
    })
}

fn secret_file(version: &str, validation: Value) -> String {
    json!({
        "version_info": version,
        "resources": [{
            "@type": SECRET_TYPE,
            "name": "client_ca",
            "validation_context": validation,
        }]
    })
    .to_string()
}

fn replace_atomically(path: &Path, content: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// What the merge gives, and a rotation merging again: secret (ca2, b) onto the default
/// (ca1, a) accepts ca2's clients named a or b; then (ca1, c) accepts ca1's named a or c.
async fn check_merge_and_rotation(
    clients: &Clients,
    addr: SocketAddr,
    rotate: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    clients.wait_accepted(addr, &["2a", "2b"]).await?;
    rotate.await?;
    clients.wait_accepted(addr, &["1a", "1c"]).await
}

#[tokio::test]
async fn combined_validation_context_from_a_watched_file() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let clients = Clients::new(&dir)?;
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let secret_path = watched.join("ca.json");
    std::fs::write(
        &secret_path,
        secret_file("1", validation_context(&clients.ca2, "b")),
    )?;
    let sds_config = json!({
        "path_config_source": {
            "path": secret_path.display().to_string(),
            "watched_directory": { "path": watched.display().to_string() },
        },
        "resource_api_version": "V3",
    });
    let listener = json!({
        "name": "l",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": tls_context(&clients, sds_config),
            },
            "filters": [hcm_filter(hcm(route_config(vec![vhost(
                "all",
                &["*"],
                vec![direct_route("/", 200, "ok")],
            )])))],
        }],
    });
    let mut config = baton_tests::config::bootstrap(vec![listener], vec![]);
    config["node"] = json!({ "id": "n", "cluster": "c" });
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("l").await?;
    check_merge_and_rotation(&clients, addr, async {
        replace_atomically(
            &secret_path,
            &secret_file("2", validation_context(&clients.ca1, "c")),
        )?;
        wait_stat(&proxy, "sds.client_ca.update_success", 2).await?;
        Ok(())
    })
    .await
}

sotw_and_delta!(combined_validation_context_over_ads);

fn ca_secret(validation: Value) -> anyhow::Result<prost_types::Any> {
    resources::to_any(
        SECRET_TYPE,
        &json!({ "name": "client_ca", "validation_context": validation }),
    )
}

async fn combined_validation_context_over_ads(transport: XdsTransport) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let clients = Clients::new(&dir)?;
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
    let mut listener = resources::inline_listener(
        "https",
        port,
        route_config(vec![vhost(
            "all",
            &["*"],
            vec![direct_route("/", 200, "ok")],
        )]),
    );
    listener["filter_chains"][0]["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": tls_context(&clients, json!({ "ads": {}, "resource_api_version": "V3" })),
    });
    cp.set(CLUSTER_TYPE, "1", vec![])?;
    cp.set(LISTENER_TYPE, "1", resources::listeners(&[listener])?)?;
    cp.set(
        SECRET_TYPE,
        "1",
        vec![ca_secret(validation_context(&clients.ca2, "b"))?],
    )?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    check_merge_and_rotation(&clients, addr, async {
        cp.set(
            SECRET_TYPE,
            "2",
            vec![ca_secret(validation_context(&clients.ca1, "c"))?],
        )?;
        cp.wait_for_ack(SECRET_TYPE, "2", XDS_TIMEOUT).await?;
        Ok(())
    })
    .await?;
    drop(proxy);
    Ok(())
}
