//! A CDS cluster whose upstream TLS secrets come from the control plane (the client
//! certificate in `tls_certificate_sds_secret_configs`, the upstream's CA in
//! `validation_context_sds_secret_config`, both over ADS) warms until they arrive, as
//! Envoy: `cluster_manager.warming_clusters` counts it, requests find no cluster, and
//! no connection reaches the upstream without the certificate. Once both secrets
//! arrive the cluster is active and connects with the delivered client certificate,
//! verifying the upstream against the delivered CA.

mod xds_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use baton_tests::config::XdsTransport;
use baton_tests::tls::{KeyKind, TestCa, TestCert};
use baton_tests::xds::{resources, ControlPlane, CLUSTER_TYPE};
use baton_tests::TempDir;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xds_support::*;

const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

sotw_and_delta!(cluster_warms_until_its_secrets_arrive);

/// An HTTPS upstream requiring a client certificate of `client_ca`: counts TCP
/// connections, records each accepted client certificate's CN, answers 200.
struct MtlsUpstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    client_cns: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MtlsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MtlsUpstream {
    async fn start(cert: &TestCert, client_ca: &TestCa) -> anyhow::Result<Self> {
        let config = baton_tests::tls::server_config(cert, Some(client_ca), &[b"http/1.1"])?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let client_cns = Arc::new(Mutex::new(Vec::new()));
        let (count, cns) = (connections.clone(), client_cns.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, cns) = (acceptor.clone(), cns.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let cn = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|der| {
                            let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
                            let cn = cert.subject().iter_common_name().next()?;
                            cn.as_str().ok().map(str::to_owned)
                        })
                        .unwrap_or_default();
                    if let Ok(mut cns) = cns.lock() {
                        cns.push(cn);
                    }
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let response = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if tls.write_all(response.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            connections,
            client_cns,
            task,
        })
    }
}

/// Cluster `tls_up` (STATIC, `upstream`) whose client certificate and upstream CA
/// come over ADS.
fn tls_cluster(upstream: SocketAddr) -> Value {
    let mut cluster = resources::static_cluster("tls_up", &[upstream]);
    cluster["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [{
                    "name": "client_cert",
                    "sds_config": resources::ads_source(),
                }],
                "validation_context_sds_secret_config": {
                    "name": "upstream_ca",
                    "sds_config": resources::ads_source(),
                },
            },
        },
    });
    cluster
}

fn secrets(client: &TestCert, upstream_ca: &TestCa) -> anyhow::Result<Vec<prost_types::Any>> {
    Ok(vec![
        resources::to_any(
            SECRET_TYPE,
            &json!({
                "name": "client_cert",
                "tls_certificate": {
                    "certificate_chain": { "inline_string": client.cert_pem },
                    "private_key": { "inline_string": client.key_pem },
                },
            }),
        )?,
        resources::to_any(
            SECRET_TYPE,
            &json!({
                "name": "upstream_ca",
                "validation_context": { "trusted_ca": { "inline_string": upstream_ca.pem } },
            }),
        )?,
    ])
}

async fn cluster_warms_until_its_secrets_arrive(transport: XdsTransport) -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let (upstream_ca, client_ca) = (TestCa::new("upstream ca")?, TestCa::new("client ca")?);
    let upstream_cert = upstream_ca.issue(
        &dir,
        "upstream",
        "cn-upstream",
        &["upstream.example.com"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let client = client_ca.issue(&dir, "client", "cn-client", &[], &[], KeyKind::Ecdsa)?;
    let upstream = MtlsUpstream::start(&upstream_cert, &client_ca).await?;

    // Initialised without the TLS cluster (a plain one, so routes resolve).
    let plain = baton_tests::EchoUpstream::start("plain").await?;
    let cp = ControlPlane::start().await?;
    let port = baton_tests::config::free_port()?;
    cp.set(
        CLUSTER_TYPE,
        "1",
        resources::clusters(&[resources::static_cluster("plain", &[plain.addr()])])?,
    )?;
    set_listener(&cp, "1", port)?;
    set_routes(&cp, "1", "tls_up")?;
    cp.set(SECRET_TYPE, "1", vec![])?;
    let proxy = start(&bootstrap(&cp, transport)).await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    // The TLS cluster arrives without its secrets: it warms, requests find no cluster.
    cp.set(
        CLUSTER_TYPE,
        "2",
        resources::clusters(&[
            resources::static_cluster("plain", &[plain.addr()]),
            tls_cluster(upstream.addr),
        ])?,
    )?;
    // (Its CDS response is answered once the cluster has warmed, by Envoy and Baton.)
    for name in ["client_cert", "upstream_ca"] {
        cp.wait_for_request(
            |r| {
                r.type_url == SECRET_TYPE
                    && (r.resource_names.iter().any(|r| r == name)
                        || r.subscribe.iter().any(|s| s == name))
            },
            XDS_TIMEOUT,
        )
        .await?;
    }
    wait_stat(&proxy, "cluster_manager.warming_clusters", 1).await?;
    let (status, _) = get_once(addr, "/").await?;
    assert_eq!(status, 503, "a warming cluster is not used");
    let clusters = proxy.admin_request("GET", "/clusters").await?.body_text();
    assert!(
        !clusters.contains("tls_up::"),
        "a warming cluster is listed in /clusters:\n{clusters}"
    );
    // `/config_dump` lists it under `dynamic_warming_clusters`, with its version.
    let dump = config_dump(&proxy).await?;
    let section = dump_section(&dump, "ClustersConfigDump")?;
    let warming = dump_entry(
        section,
        "dynamic_warming_clusters",
        "/cluster/name",
        "tls_up",
    )?;
    assert_eq!(warming["version_info"], "2", "{warming}");
    assert!(warming["last_updated"].is_string(), "{warming}");
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        0,
        "connected without the client certificate"
    );

    // The secrets arrive: the cluster is active and connects with the certificate.
    cp.set(SECRET_TYPE, "2", secrets(&client, &upstream_ca)?)?;
    cp.wait_for_ack(SECRET_TYPE, "2", XDS_TIMEOUT).await?;
    cp.wait_for_ack(CLUSTER_TYPE, "2", XDS_TIMEOUT).await?;
    wait_stat(&proxy, "cluster_manager.warming_clusters", 0).await?;
    baton_tests::eventually(XDS_TIMEOUT, || async {
        Ok((get_once(addr, "/").await?.0 == 200).then_some(()))
    })
    .await?;
    let cns = upstream
        .client_cns
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    assert!(
        !cns.is_empty() && cns.iter().all(|cn| cn == "cn-client"),
        "client certificates seen upstream: {cns:?}"
    );
    let stat = "cluster.tls_up.client_ssl_socket_factory.ssl_context_update_by_sds";
    // The certificate and the CA, each counted once in the cluster's socket factory.
    assert_eq!(proxy.stat(stat).await?, Some(2), "{stat}");
    drop(proxy);
    Ok(())
}
