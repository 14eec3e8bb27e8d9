//! The `route` action: pick the cluster, rewrite path and host, apply request header
//! mutations and Envoy's router headers, send upstream under the route timeout, and turn
//! the upstream response (or failure) into the downstream response.

use std::sync::Arc;
use std::time::Instant;

use baton_config::model::{ForwardAction, HeaderMutations, HostRewrite};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};

use crate::access_log::{FormatInput, ResponseFlag};
use crate::stats::ClusterStats;
use crate::upstream::{AutoHostRewrite, ConnFactsSlot, RequestBody, SendOptions, UpstreamError};

use super::filter::Selection;
use super::headers::{forwarding, hop_by_hop, mutation};
use super::local_reply::LocalReply;
use super::route_timeout::{RouteDeadline, TimedBody};
use super::router::action;
use super::stats::ActiveUpgrade;
use super::stream::Exchange;
use super::upgrade::UpgradeMode;
use super::{upgrade, ResponseBody};

fn set_path(parts: &mut Parts, new_path_and_query: &str) {
    let mut builder = http::uri::Builder::new();
    if let Some(s) = parts.uri.scheme() {
        builder = builder.scheme(s.clone());
    }
    if let Some(a) = parts.uri.authority() {
        builder = builder.authority(a.clone());
    }
    if let Ok(uri) = builder.path_and_query(new_path_and_query).build() {
        parts.uri = uri;
    }
}

/// The origin-form target of the upstream request: a path that starts with `/` is shared
/// as it is (its bytes are a parsed `PathAndQuery` already, so parsing a copy of them
/// again gives the same target); anything else is parsed as before.
fn origin_form(path_and_query: &PathAndQuery) -> Option<Uri> {
    if path_and_query.as_str().starts_with('/') {
        let mut target = http::uri::Parts::default();
        target.path_and_query = Some(path_and_query.clone());
        Uri::from_parts(target).ok()
    } else {
        Uri::try_from(path_and_query.as_str()).ok()
    }
}

/// Sends the request to the route's cluster and builds the downstream response.
pub(crate) async fn forward(
    ex: &mut Exchange,
    mut parts: Parts,
    body: RequestBody,
    selection: &Selection<'_>,
    f: &Arc<ForwardAction>,
    upgrade_mode: UpgradeMode,
) -> Response<ResponseBody> {
    let is_upgrade = upgrade_mode != UpgradeMode::None;
    let runtime = ex.shared.runtime.clone();
    let hcm = &runtime.hcm;
    let suppress = hcm.router.suppress_envoy_headers;

    // Cluster (picked when the route was selected).
    let routed = selection.routed;
    let weighted: Option<&HeaderMutations> = selection.weighted.map(|w| &w.headers);
    let cluster = selection
        .cluster_name
        .as_deref()
        .and_then(|n| ex.shared.ctx.clusters.get(n));
    let Some(cluster) = cluster else {
        runtime.stats.no_cluster.inc();
        let mut reply = LocalReply::cluster_not_found();
        if let Ok(status) = StatusCode::from_u16(f.cluster_not_found_status) {
            reply.status = status;
        }
        return ex.reply_to(reply, parts, Some(routed));
    };
    ex.info.upstream_cluster = Some(cluster.observability_name.clone());
    ex.info.upstream_cluster_raw = cluster.raw_name_if_renamed();
    ex.info.upstream_cluster_metadata = cluster.model.metadata.clone();

    // Path and host rewrites (most routes have none: no copy of the path then).
    let original = || {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default()
    };
    let rewritten = if let Some(prefix) = &f.prefix_rewrite {
        let original = original();
        let new_path = action::prefix_rewrite(&original, &routed.route.matcher.path, prefix);
        Some((original, new_path))
    } else {
        f.regex_rewrite.as_ref().map(|(re, sub)| {
            let original = original();
            let new_path = action::regex_rewrite(&original, re, sub);
            (original, new_path)
        })
    };
    if let Some((original, new_path)) = &rewritten {
        // An `x-envoy-*` header like any other: the router's suppress_envoy_headers
        // drops it (Envoy 1.40).
        if !suppress {
            if let Ok(v) = HeaderValue::from_str(original) {
                parts
                    .headers
                    .insert(forwarding::X_ENVOY_ORIGINAL_PATH.clone(), v);
            }
        }
        set_path(&mut parts, new_path);
    }
    match &f.host_rewrite {
        HostRewrite::None => {}
        HostRewrite::Literal(v) => {
            forwarding::rewrite_host(
                &mut parts.headers,
                v.clone(),
                !suppress,
                f.append_x_forwarded_host,
            );
        }
        HostRewrite::Header(h) => {
            if let Some(v) = parts.headers.get(h).cloned() {
                forwarding::rewrite_host(
                    &mut parts.headers,
                    v,
                    !suppress,
                    f.append_x_forwarded_host,
                );
            }
        }
        HostRewrite::PathRegex(re, sub) => {
            // The pattern runs on the path as the client sent it (before path rewrites).
            let original = match &rewritten {
                Some((original, _)) => original.clone(),
                None => parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default(),
            };
            let (path, _query) = action::split_query(&original);
            let host = action::regex_rewrite(path, re, sub);
            if let Ok(v) = HeaderValue::from_str(&host) {
                forwarding::rewrite_host(
                    &mut parts.headers,
                    v,
                    !suppress,
                    f.append_x_forwarded_host,
                );
            }
        }
        // The host is picked inside send_http, which applies the picked host's name.
        HostRewrite::Auto => {}
    }

    // Header mutations, most specific first unless configured otherwise.
    let mutates = {
        let rc = routed.config;
        let mut levels = mutation::levels(
            &rc.headers,
            &routed.vhost.headers,
            &routed.route.headers,
            weighted,
            rc.most_specific_header_mutations_wins,
        )
        .peekable();
        let mutates = levels.peek().is_some();
        // Values read the request as it arrived at this step, hence the copy; most
        // routes mutate nothing and skip it.
        if mutates {
            let snapshot = parts.headers.clone();
            let input = FormatInput {
                method: Some(&parts.method),
                uri: Some(&parts.uri),
                request_headers: Some(&snapshot),
                ..FormatInput::new(&ex.info)
            };
            for level in levels {
                mutation::apply_request(&mut parts.headers, level, &input);
            }
        }
        mutates
    };
    if let Some(t) = f.timeout {
        if !suppress {
            parts.headers.insert(
                forwarding::X_ENVOY_EXPECTED_RQ_TIMEOUT_MS.clone(),
                forwarding::millis_value(t.as_millis() as u64),
            );
        }
    }
    ex.snapshot(&parts);

    if upgrade_mode == UpgradeMode::TerminateConnect {
        // Boxed: other requests' futures need no room for a tunnel's.
        return Box::pin(upgrade::connect(ex, parts, routed, &cluster)).await;
    }
    let is_connect = parts.method == Method::CONNECT;

    // Build the upstream request.
    let downstream_http2 = parts.version == Version::HTTP_2;
    let downstream_upgrade = if is_upgrade {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    // Envoy splits the cluster's response stats by origin: `x-envoy-internal: true`
    // (set by the connection manager for internal clients) means internal.
    // What the connection manager left, when no filter and no header mutation of the
    // route could have changed it since (no lookup then).
    let facts = ex.request_facts.filter(|_| !mutates);
    let internal = match facts {
        Some(facts) => facts.internal,
        None => parts
            .headers
            .get(&forwarding::X_ENVOY_INTERNAL)
            .is_some_and(|v| v.as_bytes() == b"true"),
    };
    // The request headers go upstream. After the exchange only response header
    // mutations (`%REQ(...)%`), `local_reply_config`, a gRPC local reply,
    // `always_set_request_id_in_response` and the access log (its snapshot is taken
    // above) read them: without any of those the map moves instead of being copied.
    let keep_request_headers = mutates
        || hcm.local_reply.is_some()
        || hcm.always_set_request_id_in_response
        || facts.map_or_else(
            || super::local_reply::is_grpc_request(&parts.headers),
            |facts| facts.grpc,
        );
    let mut up_headers = if keep_request_headers {
        parts.headers.clone()
    } else {
        std::mem::take(&mut parts.headers)
    };
    // CONNECT is an upgrade without `upgrade` / `connection: upgrade` headers. `expect`
    // goes too: hyper answers `expect: 100-continue` itself when the body is first read.
    hop_by_hop::strip_request(&mut up_headers, is_upgrade && !is_connect);
    let uri: Uri = match parts.uri.authority() {
        // A forwarded CONNECT keeps its authority-form target.
        Some(target) if is_connect => Uri::try_from(target.as_str()).ok(),
        _ => parts.uri.path_and_query().and_then(origin_form),
    }
    .unwrap_or_else(|| Uri::from_static("/"));
    let mut up_req = Request::new(body);
    *up_req.method_mut() = parts.method.clone();
    *up_req.uri_mut() = uri;
    *up_req.version_mut() = Version::HTTP_11;
    *up_req.headers_mut() = up_headers;

    let opts = SendOptions {
        downstream_http2,
        upgrade: is_upgrade,
        auto_host_rewrite: matches!(f.host_rewrite, HostRewrite::Auto).then_some(AutoHostRewrite {
            keep_original: !suppress,
            append_x_forwarded_host: f.append_x_forwarded_host,
        }),
        scheme: super::scheme::upstream(hcm.scheme, &parts, &ex.info),
    };
    let cluster_stats: &ClusterStats = cluster.stats();
    let sent_at = Instant::now();
    ex.info.attempt_count = 1;
    let conn_facts = ConnFactsSlot::new();
    // Pinned in place, not copied into this future (see `stream::handle`).
    let mut send = std::pin::pin!(cluster.send_http_noting(up_req, &opts, &conn_facts));
    let mut deadline = f
        .timeout
        .map(|t| RouteDeadline::new(t, ex.progress.clone(), sent_at));
    let result = match deadline.as_mut() {
        Some(deadline) => tokio::select! {
            biased;
            r = send.as_mut() => r.map_err(Some),
            () = deadline => Err(None),
        },
        None => send.await.map_err(Some),
    };
    ex.info.upstream_conn = conn_facts.get().copied();
    let up = match result {
        Ok(up) => up,
        Err(None) => {
            cluster_stats.upstream_rq_timeout.inc();
            cluster_stats.record_routed_response(504, internal, None);
            return ex.reply_to(LocalReply::upstream_timeout(), parts, Some(routed));
        }
        Err(Some(_)) if ex.progress.downstream_malformed() => {
            // The client's body broke its framing (a malformed chunk hyper refused after
            // the head was forwarded): Envoy's codec error, 400 and close.
            let reply = LocalReply::new(
                400,
                "Bad Request",
                Some(ResponseFlag::DownstreamProtocolError),
                "http1.codec_error",
            )
            .closing();
            return ex.reply_to(reply, parts, Some(routed));
        }
        Err(Some(err)) => {
            // The router charges the cluster with the 503 it answers in place of the
            // upstream's response.
            match err {
                UpstreamError::Reset { .. } => cluster_stats.upstream_rq_rx_reset.inc(),
                UpstreamError::ProtocolError { .. } => {
                    cluster_stats.upstream_cx_protocol_error.inc();
                }
                _ => {}
            }
            if let Some(h) = err.host() {
                ex.info.upstream_host = Some(h.clone());
            }
            let (reply, tfr) = LocalReply::from_upstream(&err);
            cluster_stats.record_routed_response(reply.status.as_u16(), internal, None);
            ex.info.upstream_transport_failure_reason = tfr;
            if !matches!(err, UpstreamError::NoHealthyUpstream) {
                tracing::debug!(error = %err, "upstream request failed");
            }
            return ex.reply_to(reply, parts, Some(routed));
        }
    };
    ex.info.upstream_host = Some(up.host.clone());
    // One clock read for the first byte's time, the cluster's response time and the
    // service-time header.
    let received_at = Instant::now();
    ex.info.first_upstream_rx = Some(received_at.saturating_duration_since(ex.info.start));
    let service_time = received_at.saturating_duration_since(sent_at);
    cluster_stats.record_routed_response(
        up.response.status().as_u16(),
        internal,
        Some(service_time),
    );
    let mut response = up.response;
    let switching = is_upgrade
        && if is_connect {
            response.status().is_success()
        } else {
            response.status() == StatusCode::SWITCHING_PROTOCOLS
        };
    if switching {
        let upstream_upgrade = response
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>();
        if let (Some(d), Some(u)) = (downstream_upgrade, upstream_upgrade) {
            upgrade::spawn_tunnel(d, u, ActiveUpgrade::open(&runtime));
        }
    }
    let (mut rparts, rbody) = response.into_parts();
    hop_by_hop::strip(&mut rparts.headers, switching && !is_connect);
    // Envoy leaves x-envoy-upstream-service-time off every answer to an upgrade or
    // CONNECT request, whether the upstream switched protocols or refused.
    if !suppress && !is_upgrade {
        rparts.headers.insert(
            forwarding::X_ENVOY_UPSTREAM_SERVICE_TIME.clone(),
            forwarding::millis_value(service_time.as_millis() as u64),
        );
    }
    ex.info.response_code = Some(rparts.status.as_u16());
    ex.info.response_code_details = Some("via_upstream".into());
    ex.apply_response_mutations(&mut rparts.headers, &parts, routed, weighted, false);
    let body: ResponseBody = match deadline {
        // A tunnel's bytes do not travel in the response body, and the route timeout
        // does not cover them.
        Some(deadline) if !switching => {
            super::response_body(TimedBody::new(rbody, deadline, cluster.stats().clone()))
        }
        _ => super::response_body(rbody),
    };
    ex.answer(Response::from_parts(rparts, body), parts)
}
