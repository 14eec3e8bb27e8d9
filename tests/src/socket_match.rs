//! Shared pieces of the transport-socket selection tests (`transport_socket_matches` and
//! `transport_socket_matcher`): a cluster `c` behind one listener `l`, a TLS upstream
//! (`m.test`) and a plain one side by side, and who answered a few requests.

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::config::{bootstrap, hcm, hcm_filter, prefix_route, route_config, vhost};
use crate::tls::{KeyKind, TestCa};
use crate::tls_upstream::SniUpstream;
use crate::{EchoUpstream, Proxy, TempDir};

/// An `UpstreamTlsContext` transport socket sending `sni`, with no verification.
pub fn tls_socket(sni: &str) -> Value {
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": sni,
    }})
}

/// The plain-text transport socket, named explicitly.
pub fn raw_socket() -> Value {
    json!({ "name": "envoy.transport_sockets.raw_buffer", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
    }})
}

/// Listener `l` on 127.0.0.1 routing everything to cluster `c`.
pub fn listener() -> Value {
    json!({
        "name": "l",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [hcm_filter(hcm(route_config(vec![vhost(
            "all", &["*"], vec![prefix_route("/", "c")],
        )])))]}],
    })
}

/// A proxy with `listener()` in front of `cluster` (named `c`), and the listener's address.
pub async fn start(cluster: Value) -> anyhow::Result<(Proxy, SocketAddr)> {
    let proxy = Proxy::start(&bootstrap(vec![listener()], vec![cluster])).await?;
    let addr = proxy.listener_addr("l").await?;
    Ok((proxy, addr))
}

/// A TLS upstream serving `m.test` and a plain echo upstream named `plain`.
pub struct MixedUpstreams {
    /// Answers with the SNI it saw (`x-upstream-name`).
    pub tls: SniUpstream,
    /// Answers `plain`.
    pub plain: EchoUpstream,
    _dir: TempDir,
}

impl MixedUpstreams {
    /// Starts both upstreams (the TLS one with a certificate from a fresh CA).
    pub async fn start() -> anyhow::Result<Self> {
        let dir = TempDir::new()?;
        let ca = TestCa::new("upstream ca")?;
        let cert = ca.issue(&dir, "up", "up", &["m.test"], &[], KeyKind::Ecdsa)?;
        let tls = SniUpstream::start(&cert).await?;
        let plain = EchoUpstream::start("plain").await?;
        Ok(Self {
            tls,
            plain,
            _dir: dir,
        })
    }
}

/// Who answered six requests, each on its own connection, deduplicated. Round robin is
/// per worker and there are two: one of them takes three requests, so sees both endpoints.
pub async fn answered_by(addr: SocketAddr) -> anyhow::Result<Vec<String>> {
    let mut bodies = Vec::new();
    for _ in 0..6 {
        let resp = crate::get(addr, "/").await?;
        assert_eq!(resp.status, 200, "{}", resp.body_text());
        bodies.push(
            resp.header("x-upstream-name")
                .map_or_else(|| resp.body_text(), str::to_string),
        );
    }
    bodies.sort();
    bodies.dedup();
    Ok(bodies)
}
