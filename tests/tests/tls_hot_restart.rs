//! TLS across hot restarts. A client resumes its session (TLS 1.3 ticket) with the next
//! generation: Baton hands the ticket keys it generated to the child for every TLS
//! context whose config is unchanged (beyond Envoy, whose every generation makes its own
//! keys, so resumption there breaks at each restart; that part is Baton-only). A TLS
//! listener under load goes through several hot restarts with no failed handshake.

mod hot_restart_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_tests::config::{bootstrap, direct_route, hcm, hcm_filter, route_config, vhost};
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa, TestCert};
use baton_tests::RawHttp1;
use hot_restart_support::{exited_cleanly, Service, EXIT_TIMEOUT};
use serde_json::{json, Value};

/// Bound for the clients to make progress between two steps.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(20);

/// One TLS listener `https` on 127.0.0.1:`port` (fixed: Envoy's child passes sockets by
/// their bound address) answering 200 "ok", no ticket keys configured.
fn tls_config(cert: &TestCert, admin_port: u16, port: u16) -> Value {
    let ctx = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": { "tls_certificates": [{
            "certificate_chain": { "filename": cert.cert_path.display().to_string() },
            "private_key": { "filename": cert.key_path.display().to_string() },
        }] },
    });
    let routes = route_config(vec![vhost(
        "all",
        &["*"],
        vec![direct_route("/", 200, "ok")],
    )]);
    let listener = json!({
        "name": "https",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
        "filter_chains": [{
            "filters": [hcm_filter(hcm(routes))],
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": ctx },
        }],
    });
    let mut cfg = bootstrap(vec![listener], vec![]);
    cfg["admin"] = json!({ "address": { "socket_address": {
        "address": "127.0.0.1", "port_value": admin_port } } });
    cfg
}

/// One request over a new TLS connection made with `config` (its session cache shared);
/// whether the handshake resumed a session.
async fn get_once(
    addr: std::net::SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> anyhow::Result<bool> {
    let opts = ClientOptions::sni("localhost");
    let stream = tls::connect_with(addr, &opts, config.clone()).await?;
    let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let mut http = RawHttp1::over(stream);
    http.send_request("GET", "/", &[("connection", "close")], b"")
        .await?;
    let resp = http.read_response().await?;
    anyhow::ensure!(resp.status == 200, "status {}", resp.status);
    Ok(resumed)
}

fn test_cert(svc: &Service) -> anyhow::Result<TestCert> {
    let ca = TestCa::new("Baton Test CA")?;
    ca.issue(
        svc.dir(),
        "server",
        "localhost",
        &["localhost"],
        &[],
        KeyKind::Ecdsa,
    )
}

/// A TLS listener config (`tls_config` with a fresh certificate and ports) written into
/// the service's directory: (admin port, listener port, config path).
fn write_tls_config(svc: &Service) -> anyhow::Result<(u16, u16, std::path::PathBuf)> {
    let cert = test_cert(svc)?;
    let admin_port = baton_tests::config::free_port()?;
    let port = baton_tests::config::free_port()?;
    let config = svc.write_config("config", &tls_config(&cert, admin_port, port))?;
    Ok((admin_port, port, config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_across_a_hot_restart() -> anyhow::Result<()> {
    let svc = Service::new()?;
    let (admin_port, port, config) = write_tls_config(&svc)?;
    let mut gen0 = svc.start(0, &config, &[]).await?;
    let addr = gen0.listener_addr("https").await?;
    let client = tls::client_config(&ClientOptions::sni("localhost"))?;
    assert!(!get_once(addr, &client).await?, "first handshake is full");
    assert!(get_once(addr, &client).await?, "same generation resumes");

    let mut gen1 = svc.start(1, &config, &[]).await?;
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "epoch 0 exit: {status}");
    let resumed = get_once(addr, &client).await?;
    if baton_tests::is_envoy() {
        // Envoy's new generation made its own keys.
        assert!(!resumed, "Envoy does not resume across a hot restart");
        return Ok(());
    }
    assert!(resumed, "session resumed with the new generation");
    assert!(
        gen1.log().contains("took over session ticket keys"),
        "{}",
        gen1.log()
    );

    // A changed TLS context (another certificate) starts with keys of its own.
    let other = TestCa::new("Other CA")?.issue(
        svc.dir(),
        "other",
        "localhost",
        &["localhost"],
        &[],
        KeyKind::Ecdsa,
    )?;
    let changed = svc.write_config("changed", &tls_config(&other, admin_port, port))?;
    let _gen2 = svc.start(2, &changed, &[]).await?;
    let status = gen1.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "epoch 1 exit: {status}");
    assert!(
        !get_once(addr, &client).await?,
        "a changed context does not resume the old sessions"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_listener_through_reloads_under_load_fails_no_handshake() -> anyhow::Result<()> {
    let svc = Service::new()?;
    let (_, _, config) = write_tls_config(&svc)?;
    let mut previous = svc.start(0, &config, &[]).await?;
    let addr = previous.listener_addr("https").await?;

    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..4 {
        let (ok, failures, stopped) = (ok.clone(), failures.clone(), stopped.clone());
        // Half resume sessions, half always make full handshakes.
        let shared = tls::client_config(&ClientOptions::sni("localhost"))?;
        clients.push(tokio::spawn(async move {
            while !stopped.load(Ordering::Acquire) {
                let config = if i % 2 == 0 {
                    shared.clone()
                } else {
                    match tls::client_config(&ClientOptions::sni("localhost")) {
                        Ok(c) => c,
                        Err(e) => {
                            failures
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(e.to_string());
                            return;
                        }
                    }
                };
                match get_once(addr, &config).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{e:#}")),
                }
            }
        }));
    }
    let progress = |want: u64| {
        let ok = ok.clone();
        async move {
            baton_tests::eventually(PROGRESS_TIMEOUT, || {
                let ok = ok.clone();
                async move { Ok((ok.load(Ordering::Relaxed) >= want).then_some(())) }
            })
            .await
        }
    };
    progress(20).await?;
    for epoch in 1..=3 {
        let next = svc.start(epoch, &config, &[]).await?;
        let before = ok.load(Ordering::Relaxed);
        progress(before + 20).await?;
        let status = previous.wait_exit(EXIT_TIMEOUT).await?;
        assert!(exited_cleanly(status), "epoch {} exit: {status}", epoch - 1);
        previous = next;
    }
    let before = ok.load(Ordering::Relaxed);
    progress(before + 20).await?;
    stopped.store(true, Ordering::Release);
    stop.notify_waiters();
    for c in clients {
        tokio::time::timeout(PROGRESS_TIMEOUT, c).await??;
    }
    let failures = failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        failures.is_empty(),
        "{} failed of {}: {:?}",
        failures.len(),
        ok.load(Ordering::Relaxed) + failures.len() as u64,
        &failures[..failures.len().min(5)]
    );
    Ok(())
}

/// A TLS listener the new generation's config leaves out: once the old generation has
/// exited, its `listener.<address>.*` (the `ssl.certificate.*` gauges included) and its
/// connection manager's `http.ingress.*` are gone from the new generation's `/stats`,
/// as Envoy's (whose child shows the parent's stats only while the parent runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_left_out_by_the_new_generation_leaves_its_stats() -> anyhow::Result<()> {
    let svc = Service::new()?;
    let (admin_port, port, config) = write_tls_config(&svc)?;
    let mut gen0 = svc.start(0, &config, &[]).await?;
    let addr = gen0.listener_addr("https").await?;
    let client = tls::client_config(&ClientOptions::sni("localhost"))?;
    get_once(addr, &client).await?;
    let listener_prefix = format!("listener.127.0.0.1_{port}.");
    let stats = gen0.admin_get("/stats").await?.body_text();
    assert!(
        stats.contains(&format!("{listener_prefix}ssl.certificate.")),
        "{stats}"
    );

    let mut without = bootstrap(vec![], vec![]);
    without["admin"] = json!({ "address": { "socket_address": {
        "address": "127.0.0.1", "port_value": admin_port } } });
    let without = svc.write_config("without", &without)?;
    let gen1 = svc.start(1, &without, &[]).await?;
    let status = gen0.wait_exit(EXIT_TIMEOUT).await?;
    assert!(exited_cleanly(status), "epoch 0 exit: {status}");
    baton_tests::eventually(PROGRESS_TIMEOUT, || async {
        let stats = gen1.admin_get("/stats").await?.body_text();
        let gone = !stats.contains(&listener_prefix) && !stats.contains("http.ingress.");
        Ok(gone.then_some(()))
    })
    .await?;
    // The new generation's own stats stay.
    let stats = gen1.admin_get("/stats").await?.body_text();
    for kept in [
        "listener.admin.downstream_cx_total",
        "http.admin.downstream_rq_total",
    ] {
        assert!(stats.contains(kept), "{kept}: {stats}");
    }
    Ok(())
}
