//! OCSP stapling downstream: `ocsp_staple` on a `TlsCertificate` and
//! `ocsp_staple_policy`. The CA, certificate and OCSP responses are made in the test with
//! `openssl ocsp`; `openssl s_client -status` asks for the staple and prints what it got.
//! `ssl.ocsp_staple_*` count as Envoy 1.40's: a client asking is a request, answered
//! with a response or (no staple) an omission, or a failure when the policy leaves no
//! certificate (an expired staple under strict or must-staple); a client not asking
//! counts nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use baton_tests::config::{bootstrap, direct_route, hcm, hcm_filter, route_config, vhost};
use baton_tests::{Proxy, TempDir};
use serde_json::{json, Value};

/// Runs `openssl args...` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .context("running openssl (install openssl)")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

/// A CA with a key on disk (openssl signs the OCSP responses with it).
fn make_ca(dir: &Path) -> anyhow::Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=ocsp test ca",
            "-days",
            "30",
        ],
    )?;
    std::fs::write(dir.join("index.txt"), "")?;
    Ok(())
}

/// A leaf `<name>.pem` / `<name>.key` for `dns`, recorded as valid in the CA's index,
/// and `<name>.ocsp`: a good OCSP response for it valid for a day.
fn make_leaf(dir: &Path, name: &str, dns: &str) -> anyhow::Result<()> {
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName=DNS:{dns}\n"))?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={dns}"),
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &format!("{}", 1000 + name.len()),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
        ],
    )?;
    let serial = String::from_utf8(openssl(
        dir,
        &["x509", "-in", &format!("{name}.pem"), "-noout", "-serial"],
    )?)?;
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    let mut index = std::fs::read_to_string(dir.join("index.txt"))?;
    index.push_str(&format!(
        "V\t301231235959Z\t\t{serial}\tunknown\t/CN={dns}\n"
    ));
    std::fs::write(dir.join("index.txt"), index)?;
    openssl(
        dir,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            &format!("{name}.pem"),
            "-no_nonce",
            "-reqout",
            &format!("{name}.req"),
        ],
    )?;
    openssl(
        dir,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
            "-CA",
            "ca.pem",
            "-reqin",
            &format!("{name}.req"),
            "-respout",
            &format!("{name}.ocsp"),
            "-ndays",
            "1",
        ],
    )?;
    Ok(())
}

/// `<name>-expired.ocsp`: `<name>.ocsp` with its dates (produced, this update, next
/// update) moved back to January 2020, so it expired long ago (`openssl ocsp` only makes
/// responses valid from now). Its signature no longer verifies, which neither Envoy nor
/// Baton checks (that is the client's to do).
fn make_expired_staple(dir: &Path, name: &str) -> anyhow::Result<()> {
    const GENERALIZED_TIME: [u8; 2] = [0x18, 15];
    let mut der = std::fs::read(dir.join(format!("{name}.ocsp")))?;
    let starts: Vec<usize> = der
        .windows(17)
        .enumerate()
        .filter(|(_, w)| w[..2] == GENERALIZED_TIME && w[16] == b'Z')
        .map(|(i, _)| i + 2)
        .collect();
    anyhow::ensure!(starts.len() == 3, "dates of {name}.ocsp: {starts:?}");
    for (n, start) in starts.into_iter().enumerate() {
        // The last date is the next update: a day after the others.
        let date: &[u8] = if n == 2 {
            b"20200102000000Z"
        } else {
            b"20200101000000Z"
        };
        der[start..start + 15].copy_from_slice(date);
    }
    std::fs::write(dir.join(format!("{name}-expired.ocsp")), der)?;
    Ok(())
}

fn tls_listener(dir: &Path, cert: &str, staple: Option<&str>, policy: Option<&str>) -> Value {
    let path = |f: String| dir.join(f).display().to_string();
    let mut certificate = json!({
        "certificate_chain": { "filename": path(format!("{cert}.pem")) },
        "private_key": { "filename": path(format!("{cert}.key")) },
    });
    if let Some(staple) = staple {
        certificate["ocsp_staple"] = json!({ "filename": path(format!("{staple}.ocsp")) });
    }
    let mut ctx = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": { "tls_certificates": [certificate] },
    });
    if let Some(policy) = policy {
        ctx["ocsp_staple_policy"] = json!(policy);
    }
    json!({
        "name": "tls",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{
            "filters": [hcm_filter(hcm(route_config(vec![vhost(
                "all", &["*"], vec![direct_route("/", 200, "ok")],
            )])))],
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": ctx },
        }],
    })
}

/// What `openssl s_client` prints for a handshake with `ocsp.test` (asking for a staple
/// with `-status` when `ask`), and whether the handshake completed.
fn s_client(addr: SocketAddr, dir: &Path, ask: bool) -> anyhow::Result<(String, bool)> {
    let target = addr.to_string();
    let mut args = vec!["s_client", "-connect", &target, "-servername", "ocsp.test"];
    if ask {
        args.push("-status");
    }
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .context("running openssl s_client")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let done = text.contains("Cipher is") && !text.contains("Cipher is (NONE)");
    Ok((text, done))
}

/// What `openssl s_client -status` says about the staple: `Some(true)` a successful
/// response, `Some(false)` none sent; `None`: the handshake failed.
fn staple_seen(addr: SocketAddr, dir: &Path) -> anyhow::Result<Option<bool>> {
    let (text, done) = s_client(addr, dir, true)?;
    if !done {
        return Ok(None);
    }
    if text.contains("OCSP Response Status: successful") {
        return Ok(Some(true));
    }
    anyhow::ensure!(text.contains("OCSP response: no response sent"), "{text}");
    Ok(Some(false))
}

/// Whether `openssl s_client` without `-status` completed a handshake.
fn handshake_without_asking(addr: SocketAddr, dir: &Path) -> anyhow::Result<bool> {
    Ok(s_client(addr, dir, false)?.1)
}

/// `listener.127.0.0.1_0.ssl.ocsp_staple_{requests,responses,omitted,failed}`.
async fn staple_counts(proxy: &Proxy) -> anyhow::Result<[u64; 4]> {
    let mut counts = [0; 4];
    for (i, name) in ["requests", "responses", "omitted", "failed"]
        .iter()
        .enumerate()
    {
        let stat = format!("listener.127.0.0.1_0.ssl.ocsp_staple_{name}");
        counts[i] = proxy
            .stat(&stat)
            .await?
            .with_context(|| format!("{stat} missing"))?;
    }
    Ok(counts)
}

fn fixtures() -> anyhow::Result<(TempDir, PathBuf)> {
    let dir = TempDir::new()?;
    let path = dir.join("");
    make_ca(&path)?;
    make_leaf(&path, "leaf", "ocsp.test")?;
    make_leaf(&path, "other", "other.test")?;
    make_expired_staple(&path, "leaf")?;
    Ok((dir, path))
}

async fn start(listener: Value) -> anyhow::Result<(Proxy, SocketAddr)> {
    let proxy = Proxy::start(&bootstrap(vec![listener], vec![])).await?;
    let addr = proxy.listener_addr("tls").await?;
    Ok((proxy, addr))
}

#[tokio::test]
async fn the_staple_is_sent_to_clients_asking_for_it() -> anyhow::Result<()> {
    let (_dir, path) = fixtures()?;
    let (proxy, addr) = start(tls_listener(&path, "leaf", Some("leaf"), None)).await?;
    let dir = path.clone();
    let seen = tokio::task::spawn_blocking(move || staple_seen(addr, &dir)).await??;
    assert_eq!(seen, Some(true));
    // `/certs` shows the staple's validity (a day).
    let certs = proxy.admin_request("GET", "/certs").await?.json()?;
    let ocsp = &certs["certificates"][0]["cert_chain"][0]["ocsp_details"];
    let from = ocsp["valid_from"].as_str().unwrap_or_default();
    let to = ocsp["expiration"].as_str().unwrap_or_default();
    assert!(
        from.ends_with('Z') && to.ends_with('Z') && from < to,
        "{certs}"
    );
    let resp = proxy
        .admin_request("GET", "/stats?filter=seconds_until_first_ocsp")
        .await?;
    let seconds: u64 = resp
        .body_text()
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .parse()?;
    assert!((86_000..=86_400).contains(&seconds), "{}", resp.body_text());
    asked_then_not_asked_counts(&proxy, addr, &path).await
}

/// After one client asked for the staple and got it: requests, responses, omitted,
/// failed are 1, 1, 0, 0; a client that does not ask then counts nothing.
async fn asked_then_not_asked_counts(
    proxy: &Proxy,
    addr: SocketAddr,
    path: &Path,
) -> anyhow::Result<()> {
    assert_eq!(staple_counts(proxy).await?, [1, 1, 0, 0]);
    let dir = path.to_path_buf();
    let done = tokio::task::spawn_blocking(move || handshake_without_asking(addr, &dir)).await??;
    assert!(done);
    assert_eq!(staple_counts(proxy).await?, [1, 1, 0, 0]);
    Ok(())
}

#[tokio::test]
async fn behind_the_tls_inspector_staple_requests_count_the_same() -> anyhow::Result<()> {
    let (_dir, path) = fixtures()?;
    let mut listener = tls_listener(&path, "leaf", Some("leaf"), None);
    listener["listener_filters"] = json!([{
        "name": "envoy.filters.listener.tls_inspector",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" },
    }]);
    let (proxy, addr) = start(listener).await?;
    let dir = path.clone();
    let seen = tokio::task::spawn_blocking(move || staple_seen(addr, &dir)).await??;
    assert_eq!(seen, Some(true));
    asked_then_not_asked_counts(&proxy, addr, &path).await
}

#[tokio::test]
async fn without_a_staple_none_is_sent() -> anyhow::Result<()> {
    let (_dir, path) = fixtures()?;
    let (proxy, addr) = start(tls_listener(&path, "leaf", None, Some("STRICT_STAPLING"))).await?;
    let dir = path.clone();
    let seen = tokio::task::spawn_blocking(move || staple_seen(addr, &dir)).await??;
    assert_eq!(seen, Some(false));
    // Asked, nothing to staple: an omission.
    assert_eq!(staple_counts(&proxy).await?, [1, 0, 1, 0]);
    Ok(())
}

/// With an expired staple, a client asking for a staple under `policy`: whether the
/// handshake completed and `ssl.ocsp_staple_*` after it; then a client not asking
/// (always served, counting nothing).
async fn expired_staple_asked(policy: &str) -> anyhow::Result<(Option<bool>, [u64; 4])> {
    let (_dir, path) = fixtures()?;
    let listener = tls_listener(&path, "leaf", Some("leaf-expired"), Some(policy));
    let (proxy, addr) = start(listener).await?;
    let dir = path.clone();
    let seen = tokio::task::spawn_blocking(move || staple_seen(addr, &dir)).await??;
    let counts = staple_counts(&proxy).await?;
    let dir = path.clone();
    let done = tokio::task::spawn_blocking(move || handshake_without_asking(addr, &dir)).await??;
    assert!(done, "{policy}: a client not asking is served");
    assert_eq!(staple_counts(&proxy).await?, counts, "{policy}");
    let errors = proxy
        .stat("listener.127.0.0.1_0.ssl.connection_error")
        .await?;
    let failed = usize::from(seen.is_none());
    assert_eq!(
        errors,
        Some(failed as u64),
        "{policy}: ssl.connection_error"
    );
    Ok((seen, counts))
}

/// Measured on Envoy 1.40: `ocsp_staple_failed` counts a client asking for a staple when
/// the policy leaves no certificate, strict stapling or must-staple with an expired
/// staple; the handshake fails (`handshake_failure` alert) and counts
/// `ssl.connection_error`. Lenient stapling serves the certificate without the staple
/// (an omission). Must-staple accepts an expired staple at load.
#[tokio::test]
async fn an_expired_staple_fails_strict_and_must_staple_handshakes() -> anyhow::Result<()> {
    assert_eq!(
        expired_staple_asked("STRICT_STAPLING").await?,
        (None, [1, 0, 0, 1])
    );
    assert_eq!(
        expired_staple_asked("MUST_STAPLE").await?,
        (None, [1, 0, 0, 1])
    );
    assert_eq!(
        expired_staple_asked("LENIENT_STAPLING").await?,
        (Some(false), [1, 0, 1, 0])
    );
    Ok(())
}

/// The config error, or why the proxy did start.
async fn config_error(listener: Value) -> anyhow::Result<String> {
    match Proxy::start(&bootstrap(vec![listener], vec![])).await {
        Ok(_) => anyhow::bail!("the proxy started"),
        Err(e) => Ok(format!("{e:#}")),
    }
}

#[tokio::test]
async fn a_staple_for_another_certificate_is_a_config_error() -> anyhow::Result<()> {
    let (_dir, path) = fixtures()?;
    let e = config_error(tls_listener(&path, "leaf", Some("other"), None)).await?;
    assert!(
        e.contains("OCSP response does not match its TLS certificate"),
        "{e}"
    );
    Ok(())
}

#[tokio::test]
async fn must_staple_without_a_staple_is_a_config_error() -> anyhow::Result<()> {
    let (_dir, path) = fixtures()?;
    let e = config_error(tls_listener(&path, "leaf", None, Some("MUST_STAPLE"))).await?;
    assert!(
        e.contains("Required OCSP response is missing from TLS context"),
        "{e}"
    );
    Ok(())
}
