//! Access-log command operators of a downstream TLS session, on an mTLS listener: the
//! version and cipher, SNI, the client certificate's subject, issuer, serial, SANs,
//! fingerprints, validity and PEM, and Baton's own certificate's subject and URI SAN.
//! Values were measured on Envoy 1.40 (the test passes on both).

use std::time::Duration;

use baton_tests::config::{
    bootstrap, direct_route, hcm, route_config, vhost, FILE_ACCESS_LOG_TYPE,
};
use baton_tests::tls::{self, ClientOptions, KeyKind, TestCa};
use baton_tests::{eventually, Proxy, RawHttp1, StartOptions, TempDir};
use serde_json::json;

/// Bound for the line to reach the file (the proxy is asked to flush every 100 ms).
const LOG_WAIT: Duration = Duration::from_secs(15);

const FORMAT: &str = "version=%DOWNSTREAM_TLS_VERSION%|sni=%REQUESTED_SERVER_NAME%|subject=%DOWNSTREAM_PEER_SUBJECT%|issuer=%DOWNSTREAM_PEER_ISSUER%|serial=%DOWNSTREAM_PEER_SERIAL%|uri=%DOWNSTREAM_PEER_URI_SAN%|dns=%DOWNSTREAM_PEER_DNS_SAN%|sha256=%DOWNSTREAM_PEER_FINGERPRINT_256%|sha1=%DOWNSTREAM_PEER_FINGERPRINT_1%|start=%DOWNSTREAM_PEER_CERT_V_START%|end=%DOWNSTREAM_PEER_CERT_V_END%|local_subject=%DOWNSTREAM_LOCAL_SUBJECT%|local_uri=%DOWNSTREAM_LOCAL_URI_SAN%|cipher=%DOWNSTREAM_TLS_CIPHER%\n";

#[tokio::test]
async fn tls_operators_show_the_session_and_both_certificates() -> anyhow::Result<()> {
    let dir = TempDir::new()?;
    let ca = TestCa::new("client ca")?;
    let server = ca.issue(
        &dir,
        "server",
        "cn-server",
        &["log.example.com"],
        &["spiffe://test/server"],
        KeyKind::Ecdsa,
    )?;
    let mut params = rcgen::CertificateParams::new(vec!["client.example.com".to_string()])?;
    params.serial_number = Some(rcgen::SerialNumber::from(vec![0x0a, 0x1b, 0x2c]));
    params.not_before = rcgen::date_time_ymd(2025, 1, 2);
    params.not_after = rcgen::date_time_ymd(2035, 3, 4);
    let client = ca.issue_with(
        params,
        &dir,
        "client",
        "cn-client",
        &["spiffe://test/client"],
        KeyKind::Ecdsa,
    )?;
    let ca_path = ca.write(&dir, "ca")?;
    // One listener without the TLS inspector, one with it: Envoy shows the SNI only when
    // the inspector read it.
    let listener = |name: &str, log: &std::path::Path, inspector: bool| {
        let mut manager = hcm(route_config(vec![vhost(
            "all",
            &["*"],
            vec![direct_route("/", 200, "ok")],
        )]));
        manager["access_log"] = json!([{
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": FILE_ACCESS_LOG_TYPE,
                "path": log.display().to_string(),
                "log_format": { "text_format_source": { "inline_string": FORMAT } },
            },
        }]);
        let mut listener = json!({
            "name": name,
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
            "filter_chains": [{
                "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "require_client_certificate": true,
                    "common_tls_context": {
                        "tls_params": {
                            "tls_minimum_protocol_version": "TLSv1_3",
                            "tls_maximum_protocol_version": "TLSv1_3",
                        },
                        "tls_certificates": [{
                            "certificate_chain": { "filename": server.cert_path.display().to_string() },
                            "private_key": { "filename": server.key_path.display().to_string() },
                        }],
                        "validation_context": { "trusted_ca": { "filename": ca_path.display().to_string() } },
                    },
                } },
                "filters": [{ "name": "envoy.filters.network.http_connection_manager", "typed_config": manager }],
            }],
        });
        if inspector {
            listener["listener_filters"] = json!([{
                "name": "envoy.filters.listener.tls_inspector",
                "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" },
            }]);
        }
        listener
    };
    let (plain_log, inspected_log) = (dir.join("plain.log"), dir.join("inspected.log"));
    let opts = StartOptions {
        extra_args: vec!["--file-flush-interval-msec".into(), "100".into()],
        ..StartOptions::default()
    };
    let config = bootstrap(
        vec![
            listener("plain", &plain_log, false),
            listener("inspected", &inspected_log, true),
        ],
        vec![],
    );
    let proxy = Proxy::start_with(&config, opts).await?;
    let client_opts = ClientOptions {
        client_cert: Some((client.cert_pem.clone(), client.key_pem.clone())),
        ..ClientOptions::sni("log.example.com")
    };
    let mut lines = Vec::new();
    for (name, log) in [("plain", &plain_log), ("inspected", &inspected_log)] {
        let stream = tls::connect(proxy.listener_addr(name).await?, &client_opts).await?;
        let mut http = RawHttp1::over(stream);
        http.send_request("GET", "/", &[], b"").await?;
        assert_eq!(http.read_response().await?.body_text(), "ok");
        lines.push(
            eventually(LOG_WAIT, || async {
                let text = tokio::fs::read_to_string(log).await.unwrap_or_default();
                Ok(text.lines().next().map(str::to_string))
            })
            .await?,
        );
    }
    let (_, parsed) = x509_parser::pem::parse_x509_pem(client.cert_pem.as_bytes())?;
    let der = parsed.contents;
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let sha256 = hex(ring::digest::digest(&ring::digest::SHA256, &der).as_ref());
    let sha1 = hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref());
    let expected = |sni: &str| {
        format!(
            "version=TLSv1.3|sni={sni}|subject=O=Baton Test,CN=cn-client|issuer=CN=client ca|serial=0a1b2c|uri=spiffe://test/client|dns=client.example.com|sha256={sha256}|sha1={sha1}|start=2025-01-02T00:00:00.000Z|end=2035-03-04T00:00:00.000Z|local_subject=O=Baton Test,CN=cn-server|local_uri=spiffe://test/server|cipher=TLS_AES_256_GCM_SHA384"
        )
    };
    assert_eq!(lines, vec![expected("-"), expected("log.example.com")]);
    Ok(())
}
