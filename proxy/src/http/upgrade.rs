//! Upgrades: websocket (and other `upgrade_configs` protocols) and forwarded CONNECT
//! tunnel bytes between the downstream and upstream connections after the upstream's
//! 101 / 2xx; CONNECT routes whose upgrade config has `connect_config` terminate CONNECT
//! here: open a TCP connection to the cluster, answer 200 and tunnel the bytes.

use std::sync::Arc;

use http::request::Parts;
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::upstream::{UpstreamCluster, UpstreamConnFacts};

use super::local_reply::LocalReply;
use super::router::Routed;
use super::stats::ActiveUpgrade;
use super::stream::Exchange;
use super::ResponseBody;

/// What the router does with a request's upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpgradeMode {
    /// Not an upgrade.
    None,
    /// Websocket-style upgrade or CONNECT sent to the upstream; once it switches
    /// protocols (101, or 2xx to CONNECT) the connections are joined.
    Forward,
    /// CONNECT terminated by the proxy (`connect_config`): TCP to the cluster, 200.
    TerminateConnect,
}

/// Copies bytes both ways once both sides have switched protocols; `counted` keeps the
/// tunnel in `downstream_cx_upgrades_active` until it ends.
pub(crate) fn spawn_tunnel(downstream: OnUpgrade, upstream: OnUpgrade, counted: ActiveUpgrade) {
    tokio::spawn(async move {
        let _counted = counted;
        let (d, u) = tokio::join!(downstream, upstream);
        match (d, u) {
            (Ok(d), Ok(u)) => {
                let mut d = TokioIo::new(d);
                let mut u = TokioIo::new(u);
                if let Err(e) = tokio::io::copy_bidirectional(&mut d, &mut u).await {
                    tracing::debug!(error = %e, "upgrade tunnel ended");
                }
            }
            (d, u) => tracing::debug!(
                downstream_ok = d.is_ok(),
                upstream_ok = u.is_ok(),
                "upgrade failed"
            ),
        }
    });
}

/// CONNECT: connect to the cluster, answer 200, then tunnel.
pub(crate) async fn connect(
    ex: &mut Exchange,
    mut parts: Parts,
    routed: Routed<'_>,
    cluster: &Arc<UpstreamCluster>,
) -> Response<ResponseBody> {
    let downstream = parts.extensions.remove::<OnUpgrade>();
    match cluster.connect_tcp().await {
        Ok((mut stream, host)) => {
            ex.info.upstream_host = Some(host.clone());
            ex.info.upstream_conn = Some(UpstreamConnFacts {
                local: stream.local_ip_addr(),
                protocol: None,
            });
            ex.info.response_code_details = Some("via_upstream".into());
            if let Some(d) = downstream {
                let counted = ActiveUpgrade::open(&ex.shared.runtime);
                tokio::spawn(async move {
                    let _counted = counted;
                    match d.await {
                        Ok(up) => {
                            let mut io = TokioIo::new(up);
                            if let Err(e) =
                                tokio::io::copy_bidirectional(&mut io, &mut stream).await
                            {
                                tracing::debug!(error = %e, "CONNECT tunnel ended");
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
                    }
                });
            }
            let mut resp = Response::new(super::stream_empty_body());
            *resp.status_mut() = StatusCode::OK;
            ex.apply_response_mutations(resp.headers_mut(), &parts, routed, None, false);
            ex.answer(resp, parts)
        }
        Err(err) => {
            if let Some(h) = err.host() {
                ex.info.upstream_host = Some(h.clone());
            }
            let (reply, tfr) = LocalReply::from_upstream(&err);
            ex.info.upstream_transport_failure_reason = tfr;
            ex.reply_to(reply, parts, Some(routed))
        }
    }
}
