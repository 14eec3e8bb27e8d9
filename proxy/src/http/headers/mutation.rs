//! `request_headers_to_add/remove` and `response_headers_to_add/remove`: removals first,
//! then additions with `append_action`, values rendered by the shared formatter.

use baton_config::model::{AppendAction, HeaderMutations, HeaderValueOption};
use http::{HeaderMap, HeaderValue};

use crate::access_log::format::{render_header_value, FormatInput};

fn add(headers: &mut HeaderMap, opts: &[HeaderValueOption], input: &FormatInput<'_>) {
    for o in opts {
        let rendered;
        let text = match o.value.as_literal() {
            Some(lit) => lit,
            None => {
                rendered = render_header_value(&o.value, input);
                rendered.as_str()
            }
        };
        if text.is_empty() && !o.keep_empty_value {
            continue;
        }
        let Ok(value) = HeaderValue::from_str(text) else {
            tracing::debug!(header = %o.name, "header value not valid, skipped");
            continue;
        };
        match o.append_action {
            AppendAction::AppendIfExistsOrAdd => {
                headers.append(o.name.clone(), value);
            }
            AppendAction::AddIfAbsent => {
                if !headers.contains_key(&o.name) {
                    headers.insert(o.name.clone(), value);
                }
            }
            AppendAction::OverwriteIfExistsOrAdd => {
                headers.insert(o.name.clone(), value);
            }
            AppendAction::OverwriteIfExists => {
                if headers.contains_key(&o.name) {
                    headers.insert(o.name.clone(), value);
                }
            }
        }
    }
}

/// Applies the request side of one level's mutations.
pub fn apply_request(headers: &mut HeaderMap, m: &HeaderMutations, input: &FormatInput<'_>) {
    for name in &m.request_remove {
        headers.remove(name);
    }
    add(headers, &m.request_add, input);
}

/// Adds response headers (a local reply mapper's `headers_to_add`).
pub fn add_response(headers: &mut HeaderMap, opts: &[HeaderValueOption], input: &FormatInput<'_>) {
    add(headers, opts, input);
}

/// Applies the response side of one level's mutations.
pub fn apply_response(headers: &mut HeaderMap, m: &HeaderMutations, input: &FormatInput<'_>) {
    for name in &m.response_remove {
        headers.remove(name);
    }
    add(headers, &m.response_add, input);
}

/// The levels that apply to a routed request, in Envoy's evaluation order: most specific
/// first (weighted cluster, route, virtual host, route config) unless
/// `most_specific_header_mutations_wins`, which reverses it.
pub fn levels<'a>(
    route_config: &'a HeaderMutations,
    vhost: &'a HeaderMutations,
    route: &'a HeaderMutations,
    weighted: Option<&'a HeaderMutations>,
    most_specific_wins: bool,
) -> impl Iterator<Item = &'a HeaderMutations> {
    let mut order: [Option<&'a HeaderMutations>; 4] =
        [weighted, Some(route), Some(vhost), Some(route_config)];
    if most_specific_wins {
        order.reverse();
    }
    order.into_iter().flatten().filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::StreamInfo;
    use crate::base::conn_info::ConnInfo;
    use baton_config::model::{FormatCommand, FormatOperator, FormatPart, FormatTemplate};
    use http::HeaderName;
    use std::sync::Arc;

    fn opt(name: &'static str, value: FormatTemplate, action: AppendAction) -> HeaderValueOption {
        HeaderValueOption {
            name: HeaderName::from_static(name),
            value,
            append_action: action,
            keep_empty_value: false,
        }
    }

    fn lit(s: &str) -> FormatTemplate {
        FormatTemplate {
            parts: vec![FormatPart::Literal(s.into())],
        }
    }

    #[test]
    fn append_actions_and_substitutions() {
        let conn = ConnInfo::plain(
            "10.1.2.3:4000".parse().expect("addr"),
            "127.0.0.1:80".parse().expect("addr"),
        );
        let info = StreamInfo::new(Arc::new(conn), None);
        let input = FormatInput::new(&info);
        let mut h = HeaderMap::new();
        h.insert("a", "1".parse().expect("v"));
        h.insert("b", "1".parse().expect("v"));
        h.insert("gone", "1".parse().expect("v"));
        let m = HeaderMutations {
            request_add: vec![
                opt("a", lit("2"), AppendAction::AppendIfExistsOrAdd),
                opt("b", lit("2"), AppendAction::AddIfAbsent),
                opt("c", lit("3"), AppendAction::OverwriteIfExists),
                opt("b", lit("3"), AppendAction::OverwriteIfExistsOrAdd),
                opt("e", lit(""), AppendAction::OverwriteIfExistsOrAdd),
                opt(
                    "ip",
                    FormatTemplate {
                        parts: vec![FormatPart::Command(FormatCommand {
                            op: FormatOperator::DownstreamRemoteAddressWithoutPort,
                            max_len: None,
                        })],
                    },
                    AppendAction::AppendIfExistsOrAdd,
                ),
            ],
            request_remove: vec![HeaderName::from_static("gone")],
            ..HeaderMutations::default()
        };
        apply_request(&mut h, &m, &input);
        let a: Vec<_> = h.get_all("a").iter().collect();
        assert_eq!(a, vec!["1", "2"]);
        assert_eq!(h["b"], "3");
        assert!(!h.contains_key("c"));
        assert!(!h.contains_key("e"));
        assert!(!h.contains_key("gone"));
        assert_eq!(h["ip"], "10.1.2.3");
    }

    #[test]
    fn level_order() {
        let rc = HeaderMutations {
            request_remove: vec![HeaderName::from_static("rc")],
            ..Default::default()
        };
        let vh = HeaderMutations {
            request_remove: vec![HeaderName::from_static("vh")],
            ..Default::default()
        };
        let rt = HeaderMutations {
            request_remove: vec![HeaderName::from_static("rt")],
            ..Default::default()
        };
        let names = |wins| {
            levels(&rc, &vh, &rt, None, wins)
                .map(|m| m.request_remove[0].as_str().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(false), vec!["rt", "vh", "rc"]);
        assert_eq!(names(true), vec!["rc", "vh", "rt"]);
    }
}
