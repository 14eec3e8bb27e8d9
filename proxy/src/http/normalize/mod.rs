//! Request-target normalisation, the connection manager's step between header
//! validation and routing. In Envoy's order: escaped slashes
//! (`path_with_escaped_slashes_action`), RFC 3986 normalisation (`normalize_path`),
//! `merge_slashes`, then the Host port (`strip_matching_host_port` /
//! `strip_any_host_port`). Routing, rewrites, `x-envoy-original-path`, redirects and the
//! upstream all see the result, on HTTP/1.1 and HTTP/2 alike; the query string is never
//! touched. With the options off, or a path already normal, nothing is allocated.

pub mod host;
pub mod path;

use std::borrow::Cow;

use baton_config::model::{EscapedSlashesAction, HttpConnectionManager};
use http::header::{CONTENT_TYPE, HOST};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Uri};

use super::local_reply::LocalReply;
use crate::stats::HttpConnManagerStats;

/// `%RESPONSE_CODE_DETAILS%` of both refusals (Envoy uses one for the redirect too).
const DETAILS: &str = "path_normalization_failed";

/// What the path step decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathVerdict {
    /// Route the request.
    Continue,
    /// Answer 400: the path cannot be normalised, or holds escaped slashes that
    /// `REJECT_REQUEST` refuses.
    Reject,
    /// Answer 307 to the rewritten path (`UNESCAPE_AND_REDIRECT` found escaped slashes).
    Redirect,
}

/// The path step's result.
#[derive(Debug, PartialEq, Eq)]
pub struct PathOutcome {
    /// The request's `path?query` from now on (`None`: as sent). Set even when the
    /// request is refused: access logs show it, as Envoy's do.
    pub rewritten: Option<String>,
    /// What to do with the request.
    pub verdict: PathVerdict,
}

/// The path options of `hcm` applied to `path_and_query` (which starts with `/`).
pub fn normalize_path(path_and_query: &str, hcm: &HttpConnectionManager) -> PathOutcome {
    let (path_only, query) = match path_and_query.find('?') {
        Some(q) => path_and_query.split_at(q),
        None => (path_and_query, ""),
    };
    let mut current = Cow::Borrowed(path_only);
    let mut verdict = PathVerdict::Continue;
    let outcome = |current: Cow<'_, str>, verdict| PathOutcome {
        rewritten: match current {
            Cow::Borrowed(_) => None,
            Cow::Owned(mut rewritten) => {
                rewritten.push_str(query);
                Some(rewritten)
            }
        },
        verdict,
    };
    if hcm.path_with_escaped_slashes_action != EscapedSlashesAction::KeepUnchanged {
        if let Some(unescaped) = path::unescape_slashes(&current) {
            current = Cow::Owned(unescaped);
            match hcm.path_with_escaped_slashes_action {
                EscapedSlashesAction::RejectRequest => {
                    return outcome(current, PathVerdict::Reject)
                }
                EscapedSlashesAction::UnescapeAndRedirect => verdict = PathVerdict::Redirect,
                EscapedSlashesAction::UnescapeAndForward | EscapedSlashesAction::KeepUnchanged => {}
            }
        }
    }
    if hcm.normalize_path {
        match path::canonical(&current) {
            Ok(Some(normal)) => current = Cow::Owned(normal),
            Ok(None) => {}
            Err(path::InvalidPath) => return outcome(current, PathVerdict::Reject),
        }
    }
    // After normalisation, so escapes it decoded are merged too.
    if hcm.merge_slashes {
        if let Some(merged) = path::merge_slashes(&current) {
            current = Cow::Owned(merged);
        }
    }
    outcome(current, verdict)
}

/// A request the normalisation step answers itself.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The 400 or 307.
    pub reply: LocalReply,
    /// `location` of the 307.
    pub location: Option<HeaderValue>,
}

impl Refusal {
    fn bad_path(stats: &HttpConnManagerStats) -> Self {
        stats.downstream_rq_failed_path_normalization.inc();
        Self {
            reply: LocalReply::new(400, "", None, DETAILS).closing(),
            location: None,
        }
    }
}

/// gRPC clients do not follow redirects, so Envoy refuses them instead.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.as_bytes().strip_prefix(b"application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
}

fn any_enabled(hcm: &HttpConnectionManager) -> bool {
    hcm.normalize_path
        || hcm.merge_slashes
        || hcm.path_with_escaped_slashes_action != EscapedSlashesAction::KeepUnchanged
        || hcm.strip_matching_host_port
        || hcm.strip_any_host_port
}

/// Normalises the request's path and Host in place. `Ok(Some(host))`: route on `host`
/// while the header keeps its port (a CONNECT's target is forwarded as sent, as Envoy).
pub(crate) fn request_target(
    parts: &mut Parts,
    hcm: &HttpConnectionManager,
    listener_port: u16,
    stats: &HttpConnManagerStats,
) -> Result<Option<String>, Refusal> {
    if !any_enabled(hcm) {
        return Ok(None);
    }
    let is_connect = parts.method == Method::CONNECT;
    // CONNECT has no path; a path not starting with `/` (`*`) is never routed.
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str());
    if let Some(pq) = path_and_query.filter(|pq| !is_connect && pq.starts_with('/')) {
        let outcome = normalize_path(pq, hcm);
        if let Some(rewritten) = &outcome.rewritten {
            if rebuild_uri(&mut parts.uri, None, Some(rewritten)).is_err() {
                return Err(Refusal::bad_path(stats));
            }
        }
        match outcome.verdict {
            PathVerdict::Continue => {}
            PathVerdict::Reject => return Err(Refusal::bad_path(stats)),
            PathVerdict::Redirect if is_grpc(&parts.headers) => {
                return Err(Refusal::bad_path(stats))
            }
            PathVerdict::Redirect => {
                stats.downstream_rq_redirected_with_normalized_path.inc();
                return Err(Refusal {
                    reply: LocalReply::new(307, "", None, DETAILS),
                    location: outcome
                        .rewritten
                        .and_then(|l| HeaderValue::from_str(&l).ok()),
                });
            }
        }
    }
    let only_port = if hcm.strip_any_host_port {
        None
    } else if hcm.strip_matching_host_port {
        Some(listener_port)
    } else {
        return Ok(None);
    };
    let Some(stripped) = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| host::strip_port(h, only_port))
    else {
        return Ok(None);
    };
    if is_connect {
        return Ok(Some(stripped.to_string()));
    }
    let stripped = stripped.to_string();
    // HTTP/2 (and absolute-form HTTP/1.1) carry it in the URI too: `:authority` in logs.
    if parts.uri.authority().is_some() {
        let _ = rebuild_uri(&mut parts.uri, Some(&stripped), None);
    }
    if let Ok(v) = HeaderValue::from_str(&stripped) {
        parts.headers.insert(HOST, v);
    }
    Ok(None)
}

/// Replaces the authority and/or the path of `uri`, keeping the rest.
fn rebuild_uri(
    uri: &mut Uri,
    authority: Option<&str>,
    path_and_query: Option<&str>,
) -> Result<(), http::Error> {
    let mut builder = Uri::builder();
    if let Some(s) = uri.scheme() {
        builder = builder.scheme(s.clone());
    }
    match (authority, uri.authority()) {
        (Some(a), _) => builder = builder.authority(a),
        (None, Some(a)) => builder = builder.authority(a.clone()),
        (None, None) => {}
    }
    match (path_and_query, uri.path_and_query()) {
        (Some(p), _) => builder = builder.path_and_query(p),
        (None, Some(p)) => builder = builder.path_and_query(p.clone()),
        (None, None) => {}
    }
    *uri = builder.build()?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
