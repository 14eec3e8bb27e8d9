//! The router filter (`envoy.filters.http.router`), the chain's terminal filter: selects
//! the route again if a filter cleared the cache, answers 404 when none matches, checks
//! the route's upgrade configs, and runs the route's action: a direct response, a
//! redirect, or the upstream call (`http::forward`).

use baton_config::model::{HttpConnectionManager, RequireTls, RouteAction, UpgradeConfig};
use http::header::LOCATION;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};

use crate::http::forward;
use crate::http::local_reply::LocalReply;
use crate::http::router::{action, Routed};
use crate::http::stream::Exchange;
use crate::http::upgrade::UpgradeMode;
use crate::http::ResponseBody;
use crate::stats::HttpConnManagerStats;

use super::{refresh_route, RequestBodySlot, StreamFilters};

/// The router. Its settings (`suppress_envoy_headers`) are read from the connection
/// manager config where they are used.
#[derive(Debug, Default)]
pub struct Router;

impl Router {
    /// Answers the request. `upgrade` is the upgrade the request asks for (`websocket`,
    /// `connect`, ...). The request head goes into `ex` ([`Exchange::answer`]).
    pub(crate) async fn route(
        &self,
        ex: &mut Exchange,
        stream: &mut StreamFilters<'_>,
        parts: Parts,
        body: RequestBodySlot,
        upgrade: Option<&str>,
    ) -> Response<ResponseBody> {
        refresh_route(stream, ex, &parts);
        let runtime = ex.shared.runtime.clone();
        let is_connect = parts.method == Method::CONNECT;
        // `require_tls` is checked before any route is matched (Envoy's SSL redirect
        // route), so it also answers paths no route matches. As Envoy, on the
        // `x-forwarded-proto` the connection manager left (a client's kept value counts).
        // Most tables have no such virtual host: their requests skip the lookups.
        if stream.route.table().any_require_tls() && !forwarded_https(&parts) {
            let host = stream.route.host(&parts);
            if let Some(vhost) = stream.route.table().virtual_host(host) {
                if tls_required(vhost.require_tls, &parts) {
                    let reply = LocalReply::new(301, "", None, "direct_response");
                    let location = format!(
                        "https://{host}{}",
                        parts.uri.path_and_query().map_or("/", |p| p.as_str())
                    );
                    let mut resp = ex.local_reply(reply, &parts, None);
                    if let Ok(v) = HeaderValue::from_str(&location) {
                        resp.headers_mut().insert(LOCATION, v);
                    }
                    return ex.answer(resp, parts);
                }
            }
        }
        let Some(selection) = stream.route.current() else {
            runtime.stats.rq_total.inc();
            runtime.stats.no_route.inc();
            let mut reply = LocalReply::no_route();
            if is_connect {
                reply = reply.closing();
            }
            return ex.reply_to(reply, parts, None);
        };
        let routed = selection.routed;
        let upgrade_mode = match upgrade {
            None => UpgradeMode::None,
            Some(kind) => {
                match upgrade_mode(kind, is_connect, routed, &runtime.hcm, &runtime.stats) {
                    Ok(mode) => mode,
                    Err(reply) => return ex.reply_to(reply, parts, None),
                }
            }
        };

        runtime.stats.rq_total.inc();
        match &routed.route.action {
            RouteAction::DirectResponse(d) => {
                runtime.stats.rq_direct_response.inc();
                let mut reply = LocalReply::new(d.status, "", None, "direct_response");
                reply.body = d.body.clone().unwrap_or_default();
                let mut resp = ex.local_reply(reply, &parts, Some(routed));
                if d.status == 201 || (300..400).contains(&d.status) {
                    // Envoy points a `201 Created` or a redirect status at the request's
                    // own URL.
                    if let Some(location) = request_url(&parts) {
                        resp.headers_mut().insert(LOCATION, location);
                    }
                }
                ex.answer(resp, parts)
            }
            RouteAction::Redirect(r) => {
                // Envoy's router answers redirects as direct responses (`rq_redirect` is
                // for internal redirects, which Baton does not follow).
                runtime.stats.rq_direct_response.inc();
                let scheme = if ex.shared.conn.tls { "https" } else { "http" };
                let location = action::redirect_location(
                    r,
                    &routed.route.matcher.path,
                    scheme,
                    stream.route.host(&parts),
                    parts.uri.path_and_query().map_or("", |p| p.as_str()),
                );
                let mut reply = LocalReply::new(r.response_code, "", None, "direct_response");
                reply.status =
                    StatusCode::from_u16(r.response_code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
                let mut resp = ex.local_reply(reply, &parts, Some(routed));
                if let Ok(v) = HeaderValue::from_str(&location) {
                    resp.headers_mut().insert(LOCATION, v);
                }
                ex.answer(resp, parts)
            }
            RouteAction::Forward(f) => {
                // Pinned in place, not copied into this future (see `stream::handle`).
                let forwarded = std::pin::pin!(forward::forward(
                    ex,
                    parts,
                    body.into_upstream(),
                    selection,
                    f,
                    upgrade_mode
                ));
                forwarded.await
            }
        }
    }
}

/// The request's URL as Envoy rebuilds it for a `201` direct response's `location`:
/// the `x-forwarded-proto` scheme (set by the connection manager), the `host` header and
/// the path with its query.
fn request_url(parts: &Parts) -> Option<HeaderValue> {
    let headers = &parts.headers;
    let scheme = headers
        .get(&crate::http::headers::forwarding::X_FORWARDED_PROTO)
        .map_or(&b"http"[..], HeaderValue::as_bytes);
    let host = headers.get(http::header::HOST)?.as_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut url = Vec::with_capacity(scheme.len() + 3 + host.len() + path.len());
    url.extend_from_slice(scheme);
    url.extend_from_slice(b"://");
    url.extend_from_slice(host);
    url.extend_from_slice(path.as_bytes());
    HeaderValue::from_bytes(&url).ok()
}

/// Whether the request's `x-forwarded-proto` (set by the connection manager from the
/// connection, or the client's when kept) is `https`.
fn forwarded_https(parts: &Parts) -> bool {
    parts
        .headers
        .get(&crate::http::headers::forwarding::X_FORWARDED_PROTO)
        .is_some_and(|v| v.as_bytes() == b"https")
}

/// Whether a request that is not `https` must be redirected under `require_tls`.
fn tls_required(require: RequireTls, parts: &Parts) -> bool {
    match require {
        RequireTls::None => false,
        RequireTls::All => true,
        RequireTls::ExternalOnly => parts
            .headers
            .get(&crate::http::headers::forwarding::X_ENVOY_INTERNAL)
            .is_none_or(|v| v != "true"),
    }
}

/// How the route handles an upgrade of `kind`, or the 403 when neither the route's nor
/// the connection manager's `upgrade_configs` enable it.
pub(crate) fn upgrade_mode(
    kind: &str,
    is_connect: bool,
    routed: Routed<'_>,
    hcm: &HttpConnectionManager,
    stats: &HttpConnManagerStats,
) -> Result<UpgradeMode, LocalReply> {
    let route_level: &[UpgradeConfig] = match &routed.route.action {
        RouteAction::Forward(f) => &f.upgrade_configs,
        _ => &[],
    };
    match enabled_upgrade(kind, route_level, &hcm.upgrade_configs) {
        Some(u) if is_connect && u.terminate_connect => Ok(UpgradeMode::TerminateConnect),
        Some(_) => Ok(UpgradeMode::Forward),
        None => {
            if kind.eq_ignore_ascii_case("websocket") {
                stats.downstream_rq_ws_on_non_ws_route.inc();
            }
            Err(LocalReply::new(403, "", None, "upgrade_failed").closing())
        }
    }
}

/// The upgrade config that enables an upgrade of `kind` (route-level config first, then
/// the HCM's), or None when the upgrade is not enabled.
fn enabled_upgrade<'a>(
    kind: &str,
    route_level: &'a [UpgradeConfig],
    hcm_level: &'a [UpgradeConfig],
) -> Option<&'a UpgradeConfig> {
    let find = |list: &'a [UpgradeConfig]| list.iter().find(|u| u.upgrade_type == kind);
    find(route_level)
        .or_else(|| find(hcm_level))
        .filter(|u| u.enabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(kind: &str, enabled: bool) -> UpgradeConfig {
        UpgradeConfig {
            upgrade_type: kind.into(),
            enabled,
            terminate_connect: false,
        }
    }

    fn upgrade_enabled(kind: &str, route: &[UpgradeConfig], hcm: &[UpgradeConfig]) -> bool {
        enabled_upgrade(kind, route, hcm).is_some()
    }

    #[test]
    fn upgrade_config_precedence() {
        assert!(!upgrade_enabled("websocket", &[], &[]));
        assert!(upgrade_enabled("websocket", &[], &[up("websocket", true)]));
        assert!(!upgrade_enabled(
            "websocket",
            &[up("websocket", false)],
            &[up("websocket", true)]
        ));
        assert!(upgrade_enabled("websocket", &[up("websocket", true)], &[]));
        assert!(!upgrade_enabled("connect", &[], &[up("websocket", true)]));
        // CONNECT termination comes from the route's config (connect_config).
        let terminating = UpgradeConfig {
            terminate_connect: true,
            ..up("connect", true)
        };
        let route = [terminating];
        let hcm = [up("connect", true)];
        assert!(enabled_upgrade("connect", &route, &hcm).is_some_and(|u| u.terminate_connect));
        assert!(enabled_upgrade("connect", &[], &hcm).is_some_and(|u| !u.terminate_connect));
    }
}
