//! Upstream TLS (`transport_socket` with an `UpstreamTlsContext` on a cluster): a TLS
//! upstream run by the test (tokio-rustls) records the SNI, ALPN and client certificate
//! of every handshake. Verified against a trusted CA, a SAN mismatch answered 503 with
//! Envoy's transport failure reason and counted, an unverified self-signed upstream
//! accepted, `sni` sent, upstream mTLS, ALPN `h2` to an HTTP/2 cluster. The client
//! certificate and the trusted CA from SDS files rotate for new connections, and
//! `/certs` shows the rotated ones; while the client certificate's file holds none,
//! connections fail before their handshake, as Envoy's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use baton_tests::config::{bootstrap, hcm, hcm_filter, prefix_route, route_config, vhost};
use baton_tests::tls::{self, KeyKind, TestCa, TestCert};
use baton_tests::{Proxy, TempDir};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the upstream saw in one handshake.
#[derive(Debug, Clone)]
struct Seen {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
    client_cert: bool,
    /// Subject CN of the client certificate presented.
    client_cn: Option<String>,
}

/// A TLS HTTP/1.1 upstream answering `200 upstream` to each request (one per connection).
struct TlsUpstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[allow(deprecated)]
fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsUpstream {
    /// Serves `cert`; with `client_ca`, asks for (but does not require) a client
    /// certificate from that CA. Offers `h2` and `http/1.1` by ALPN.
    async fn start(cert: &TestCert, client_ca: Option<&TestCa>) -> anyhow::Result<Self> {
        let chain = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes())?];
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())?;
        let builder = rustls::ServerConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.der())?;
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    ring(),
                )
                .allow_unauthenticated()
                .build()?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (_, session) = tls.get_ref();
                    let entry = Seen {
                        sni: session.server_name().map(str::to_string),
                        alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                        client_cert: session.peer_certificates().is_some_and(|c| !c.is_empty()),
                        client_cn: session
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|der| {
                                let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
                                let cn = cert.subject().iter_common_name().next()?;
                                cn.as_str().ok().map(str::to_owned)
                            }),
                    };
                    let h2 = entry.alpn.as_deref() == Some(b"h2");
                    if let Ok(mut seen) = log.lock() {
                        seen.push(entry);
                    }
                    if h2 {
                        return;
                    }
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Ok(Self { addr, seen, task })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn upstream_tls(ctx: Value) -> Value {
    let mut typed = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    });
    for (k, v) in ctx.as_object().into_iter().flatten() {
        typed[k] = v.clone();
    }
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": typed })
}

fn tls_cluster(addr: SocketAddr, socket: Value) -> Value {
    json!({
        "name": "tls",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "tls",
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() }
            }}}]}],
        },
        "transport_socket": socket,
    })
}

fn listener() -> Value {
    json!({
        "name": "l",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [hcm_filter(hcm(route_config(vec![vhost(
            "all", &["*"], vec![prefix_route("/", "tls")],
        )])))]}],
    })
}

async fn start(cluster: Value) -> anyhow::Result<(Proxy, SocketAddr)> {
    let proxy = Proxy::start(&bootstrap(vec![listener()], vec![cluster])).await?;
    let addr = proxy.listener_addr("l").await?;
    Ok((proxy, addr))
}

fn ca_file(dir: &TempDir, ca: &TestCa) -> anyhow::Result<String> {
    Ok(ca.write(dir, "ca")?.display().to_string())
}

#[tokio::test]
async fn trusted_ca_verifies_and_sni_is_sent() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["up.example.com"], &[], KeyKind::Ecdsa)?;
    let upstream = TlsUpstream::start(&cert, None).await?;
    let socket = upstream_tls(json!({
        "sni": "up.example.com",
        "common_tls_context": { "validation_context": {
            "trusted_ca": { "filename": ca_file(&dir, &ca)? },
            "match_typed_subject_alt_names": [
                { "san_type": "DNS", "matcher": { "exact": "up.example.com" } }
            ],
        }},
    }));
    let (proxy, addr) = start(tls_cluster(upstream.addr, socket)).await?;
    let resp = baton_tests::get(addr, "/").await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(resp.body_text(), "upstream");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].sni.as_deref(), Some("up.example.com"));
    assert_eq!(
        seen[0].alpn.as_deref(),
        Some(&b"http/1.1"[..]),
        "an HTTP/1 cluster offers http/1.1 when no ALPN is configured"
    );
    assert!(!seen[0].client_cert);
    assert_eq!(proxy.stat("cluster.tls.ssl.handshake").await?, Some(1));
    // The trusted CA's expiry, under Envoy 1.40's name for a CA configured inline or by
    // file; no certificate of its own, so no other gauge.
    assert_eq!(
        proxy.stat(&expiration("unnamed_ca_cert_e3b0c442")).await?,
        Some(tls::not_after_unix(&ca.pem)?)
    );
    assert_eq!(
        proxy.stat(&expiration("unnamed_cert_e3b0c442")).await?,
        None
    );
    Ok(())
}

/// `cluster.tls.ssl.certificate.<name>.expiration_unix_time_seconds`
fn expiration(name: &str) -> String {
    format!("cluster.tls.ssl.certificate.{name}.expiration_unix_time_seconds")
}

#[tokio::test]
async fn san_mismatch_is_503_uf_and_counted() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["up.example.com"], &[], KeyKind::Ecdsa)?;
    let upstream = TlsUpstream::start(&cert, None).await?;
    let socket = upstream_tls(json!({
        "common_tls_context": { "validation_context": {
            "trusted_ca": { "filename": ca_file(&dir, &ca)? },
            "match_typed_subject_alt_names": [
                { "san_type": "DNS", "matcher": { "exact": "other.example.com" } }
            ],
        }},
    }));
    let (proxy, addr) = start(tls_cluster(upstream.addr, socket)).await?;
    let resp = baton_tests::get(addr, "/").await?;
    assert_eq!(resp.status, 503);
    let body = resp.body_text();
    // The transport failure reason goes to access logs, not the body.
    assert_eq!(
        body,
        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    );
    assert_eq!(
        proxy.stat("cluster.tls.ssl.fail_verify_san").await?,
        Some(1)
    );
    // As Envoy: a failed verification counts only in its fail_verify_*.
    assert_eq!(
        proxy.stat("cluster.tls.ssl.connection_error").await?,
        Some(0)
    );
    assert_eq!(
        proxy.stat("cluster.tls.upstream_cx_connect_fail").await?,
        Some(1)
    );
    Ok(())
}

#[tokio::test]
async fn untrusted_chain_is_refused_with_a_ca() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let other = TestCa::new("other ca")?;
    let cert = other.issue(&dir, "up", "up", &["up.example.com"], &[], KeyKind::Ecdsa)?;
    let upstream = TlsUpstream::start(&cert, None).await?;
    let socket = upstream_tls(json!({
        "common_tls_context": { "validation_context": {
            "trusted_ca": { "filename": ca_file(&dir, &ca)? },
        }},
    }));
    let (proxy, addr) = start(tls_cluster(upstream.addr, socket)).await?;
    let resp = baton_tests::get(addr, "/").await?;
    assert_eq!(resp.status, 503);
    assert!(resp.body_text().ends_with("remote connection failure"));
    assert_eq!(
        proxy.stat("cluster.tls.ssl.fail_verify_error").await?,
        Some(1)
    );
    Ok(())
}

#[tokio::test]
async fn without_validation_context_any_certificate_is_accepted() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("nobody knows this ca")?;
    let cert = ca.issue(&dir, "up", "up", &["whatever.test"], &[], KeyKind::Rsa)?;
    let upstream = TlsUpstream::start(&cert, None).await?;
    let (_proxy, addr) = start(tls_cluster(upstream.addr, upstream_tls(json!({})))).await?;
    let resp = baton_tests::get(addr, "/").await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    let seen = upstream.seen();
    assert_eq!(seen[0].sni, None, "no sni configured: none sent");
    Ok(())
}

#[tokio::test]
async fn client_certificate_is_presented() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let server = ca.issue(&dir, "up", "up", &["up.example.com"], &[], KeyKind::Ecdsa)?;
    let client = ca.issue(
        &dir,
        "client",
        "client",
        &["client.test"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let upstream = TlsUpstream::start(&server, Some(&ca)).await?;
    let socket = upstream_tls(json!({
        "common_tls_context": { "tls_certificates": [{
            "certificate_chain": { "filename": client.cert_path.display().to_string() },
            "private_key": { "filename": client.key_path.display().to_string() },
        }]},
    }));
    let (proxy, addr) = start(tls_cluster(upstream.addr, socket)).await?;
    let resp = baton_tests::get(addr, "/").await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert!(upstream.seen()[0].client_cert);
    // The client certificate's expiry, as Envoy 1.40 names one configured by file.
    assert_eq!(
        proxy.stat(&expiration("unnamed_cert_e3b0c442")).await?,
        Some(tls::not_after_unix(&client.cert_pem)?)
    );
    Ok(())
}

#[tokio::test]
async fn http2_cluster_offers_h2_by_alpn() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let cert = ca.issue(&dir, "up", "up", &["up.example.com"], &[], KeyKind::Ecdsa)?;
    let upstream = TlsUpstream::start(&cert, None).await?;
    let mut cluster = tls_cluster(upstream.addr, upstream_tls(json!({})));
    cluster["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": { "http2_protocol_options": {} },
        }
    });
    let (_proxy, addr) = start(cluster).await?;
    // The upstream closes after the handshake: only what was offered matters here.
    let _ = baton_tests::get(addr, "/").await?;
    let seen = upstream.seen();
    assert!(!seen.is_empty());
    assert_eq!(seen[0].alpn.as_deref(), Some(&b"h2"[..]));
    Ok(())
}

/// Writes `content` beside `path` and renames it over `path` (a move the watched
/// directory sees).
fn replace_atomically(path: &std::path::Path, content: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn secret_file(name: &str, version: &str, secret: Value) -> String {
    let mut resource = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "name": name,
    });
    for (k, v) in secret.as_object().into_iter().flatten() {
        resource[k] = v.clone();
    }
    json!({ "version_info": version, "resources": [resource] }).to_string()
}

fn client_cert_secret(cert: &TestCert) -> Value {
    json!({ "tls_certificate": {
        "certificate_chain": { "inline_string": cert.cert_pem },
        "private_key": { "inline_string": cert.key_pem },
    }})
}

fn ca_secret(ca: &TestCa) -> Value {
    json!({ "validation_context": { "trusted_ca": { "inline_string": ca.pem } } })
}

#[tokio::test]
async fn client_certificate_and_trusted_ca_rotate_from_sds_files() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let other_ca = TestCa::new("other ca")?;
    let server = ca.issue(&dir, "up", "up", &["up.example.com"], &[], KeyKind::Ecdsa)?;
    let a = ca.issue(&dir, "a", "client-a", &["a.test"], &[], KeyKind::Ecdsa)?;
    let b = ca.issue(&dir, "b", "client-b", &["b.test"], &[], KeyKind::Ecdsa)?;
    let upstream = TlsUpstream::start(&server, Some(&ca)).await?;
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let cert_path = watched.join("client.json");
    let ca_path = watched.join("ca.json");
    std::fs::write(
        &cert_path,
        secret_file("client", "1", client_cert_secret(&a)),
    )?;
    std::fs::write(&ca_path, secret_file("ca", "1", ca_secret(&ca)))?;
    let sds = |name: &str, path: &std::path::Path| {
        json!({ "name": name, "sds_config": {
            "path_config_source": {
                "path": path.display().to_string(),
                "watched_directory": { "path": watched.display().to_string() },
            },
            "resource_api_version": "V3",
        }})
    };
    let socket = upstream_tls(json!({ "common_tls_context": {
        "tls_certificate_sds_secret_configs": [sds("client", &cert_path)],
        "validation_context_sds_secret_config": sds("ca", &ca_path),
    }}));
    let mut config = bootstrap(vec![listener()], vec![tls_cluster(upstream.addr, socket)]);
    config["node"] = json!({ "id": "n", "cluster": "c" });
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("l").await?;

    let resp = baton_tests::get(addr, "/").await?;
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    assert_eq!(upstream.seen()[0].client_cn.as_deref(), Some("client-a"));

    // A new client certificate: the next connection (the upstream closes each) shows it.
    replace_atomically(
        &cert_path,
        &secret_file("client", "2", client_cert_secret(&b)),
    )?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        let resp = baton_tests::get(addr, "/").await?;
        let last = upstream.seen().last().and_then(|s| s.client_cn.clone());
        Ok((resp.status == 200 && last.as_deref() == Some("client-b")).then_some(()))
    })
    .await?;
    // /certs shows the cluster's certificate now offered.
    let (serial_a, serial_b) = (
        baton_tests::tls::serial_number(&a.cert_pem)?,
        baton_tests::tls::serial_number(&b.cert_pem)?,
    );
    let (chain, _) = cluster_certs(&proxy).await?;
    assert!(
        chain.contains(&serial_b) && !chain.contains(&serial_a),
        "/certs cert_chain {chain:?}, want {serial_b} (not {serial_a})"
    );

    // A trusted CA that did not issue the upstream's certificate: verification fails.
    replace_atomically(&ca_path, &secret_file("ca", "2", ca_secret(&other_ca)))?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        let resp = baton_tests::get(addr, "/").await?;
        Ok((resp.status == 503).then_some(()))
    })
    .await?;
    assert!(proxy.stat("cluster.tls.ssl.fail_verify_error").await? >= Some(1));
    let (_, cas) = cluster_certs(&proxy).await?;
    assert_eq!(
        cas,
        vec![baton_tests::tls::serial_number(&other_ca.pem)?],
        "/certs ca_cert after the CA rotation"
    );
    // Envoy 1.40 counts 3 here (the initial load twice), Baton 2.
    assert!(proxy.stat("sds.ca.update_success").await? >= Some(2));
    // Each file's first read and each rotation, as Envoy counts them.
    assert_eq!(
        proxy
            .stat("cluster.tls.client_ssl_socket_factory.ssl_context_update_by_sds")
            .await?,
        Some(4)
    );
    assert_eq!(
        proxy
            .stat("cluster.tls.client_ssl_socket_factory.upstream_context_secrets_not_ready")
            .await?,
        Some(0)
    );
    Ok(())
}

/// The serial numbers of every `cert_chain` and `ca_cert` entry in `/certs` (only the
/// cluster has TLS here).
async fn cluster_certs(proxy: &Proxy) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let certs: Value = proxy.admin_request("GET", "/certs").await?.json()?;
    let serials = |field: &str| -> Vec<String> {
        certs["certificates"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c[field].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["serial_number"].as_str().map(str::to_string))
            .collect()
    };
    Ok((serials("cert_chain"), serials("ca_cert")))
}

/// A client-certificate SDS file that holds no usable secret when the config loads: as
/// Envoy 1.40, each connection fails before its handshake (503, `UF`, the transport
/// failure reason `TLS error: Secret is not supplied by SDS`), counted in
/// `upstream_cx_connect_fail` and `upstream_context_secrets_not_ready`, not in `ssl.*`;
/// a good file moved in makes connections offer its certificate.
#[tokio::test]
async fn a_bad_client_certificate_file_at_load_fails_connections() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("upstream ca")?;
    let server = ca.issue(&dir, "up", "up", &["up.example.com"], &[], KeyKind::Ecdsa)?;
    let a = ca.issue(&dir, "a", "client-a", &["a.test"], &[], KeyKind::Ecdsa)?;
    let upstream = TlsUpstream::start(&server, Some(&ca)).await?;
    let watched = dir.join("sds");
    std::fs::create_dir_all(&watched)?;
    let cert_path = watched.join("client.json");
    std::fs::write(&cert_path, "this is not a secret file")?;
    let socket = upstream_tls(json!({ "common_tls_context": {
        "tls_certificate_sds_secret_configs": [{ "name": "client", "sds_config": {
            "path_config_source": {
                "path": cert_path.display().to_string(),
                "watched_directory": { "path": watched.display().to_string() },
            },
            "resource_api_version": "V3",
        }}],
    }}));
    let log_path = dir.join("access.log");
    let mut config = bootstrap(vec![listener()], vec![tls_cluster(upstream.addr, socket)]);
    config["node"] = json!({ "id": "n", "cluster": "c" });
    baton_tests::config::hcm_of(&mut config, 0)["access_log"] = json!([{
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": log_path.display().to_string(),
            "log_format": { "text_format_source": {
                "inline_string": "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_TRANSPORT_FAILURE_REASON%\n",
            }},
        },
    }]);
    let proxy = Proxy::start(&config).await?;
    let addr = proxy.listener_addr("l").await?;

    let resp = baton_tests::get(addr, "/").await?;
    assert_eq!(resp.status, 503);
    assert_eq!(
        resp.body_text(),
        "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    );
    let logged = baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        Ok(log.lines().next().map(str::to_string))
    })
    .await?;
    assert_eq!(logged, "503 UF TLS_error:_Secret_is_not_supplied_by_SDS");
    for (name, want) in [
        ("upstream_cx_connect_fail", 1),
        (
            "client_ssl_socket_factory.upstream_context_secrets_not_ready",
            1,
        ),
        // (Envoy has no `ssl.*` stats before its first handshake, Baton has them at 0.)
        ("ssl.connection_error", 0),
        ("ssl.handshake", 0),
    ] {
        let stat = format!("cluster.tls.{name}");
        assert_eq!(proxy.stat(&stat).await?.unwrap_or(0), want, "{stat}");
    }
    assert!(upstream.seen().is_empty(), "no handshake was made");

    replace_atomically(
        &cert_path,
        &secret_file("client", "1", client_cert_secret(&a)),
    )?;
    baton_tests::eventually(baton_tests::STARTUP_TIMEOUT, || async {
        Ok((baton_tests::get(addr, "/").await?.status == 200).then_some(()))
    })
    .await?;
    assert_eq!(upstream.seen()[0].client_cn.as_deref(), Some("client-a"));
    Ok(())
}
