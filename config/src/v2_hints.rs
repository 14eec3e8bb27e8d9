//! Recognises Envoy v2-era configuration (from old tutorials) before the proto mapping
//! runs, so the error names the v3 replacement instead of a bare "unknown field".

use serde_json::Value;

use crate::error::{ConfigError, Result};
use crate::json_tree::JsonView;

/// Known v2 (or deprecated) filter names -> (v3 name, v3 `@type`).
const FILTER_NAMES: &[(&str, &str, &str)] = &[
    (
        "envoy.router",
        "envoy.filters.http.router",
        "envoy.extensions.filters.http.router.v3.Router",
    ),
    (
        "envoy.http_connection_manager",
        "envoy.filters.network.http_connection_manager",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    ),
    (
        "envoy.tcp_proxy",
        "envoy.filters.network.tcp_proxy",
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    ),
    (
        "envoy.file_access_log",
        "envoy.access_loggers.file",
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
    ),
    (
        "envoy.filters.http.router",
        "envoy.filters.http.router",
        "envoy.extensions.filters.http.router.v3.Router",
    ),
    (
        "envoy.filters.network.http_connection_manager",
        "envoy.filters.network.http_connection_manager",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    ),
    (
        "envoy.filters.network.tcp_proxy",
        "envoy.filters.network.tcp_proxy",
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    ),
    (
        "envoy.access_loggers.file",
        "envoy.access_loggers.file",
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
    ),
];

/// v2 `@type` names -> v3.
const TYPE_NAMES: &[(&str, &str)] = &[
    (
        "envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    ),
    (
        "envoy.config.filter.network.tcp_proxy.v2.TcpProxy",
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    ),
    (
        "envoy.config.filter.http.router.v2.Router",
        "envoy.extensions.filters.http.router.v3.Router",
    ),
    (
        "envoy.config.accesslog.v2.FileAccessLog",
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
    ),
    (
        "envoy.api.v2.auth.UpstreamTlsContext",
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    ),
    (
        "envoy.api.v2.auth.DownstreamTlsContext",
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    ),
    ("envoy.api.v2.Cluster", "envoy.config.cluster.v3.Cluster"),
    ("envoy.api.v2.Listener", "envoy.config.listener.v3.Listener"),
    (
        "envoy.api.v2.RouteConfiguration",
        "envoy.config.route.v3.RouteConfiguration",
    ),
    (
        "envoy.api.v2.ClusterLoadAssignment",
        "envoy.config.endpoint.v3.ClusterLoadAssignment",
    ),
];

/// Fails on the first v2-era construct found in the document.
pub(crate) fn check(root: &Value) -> Result<()> {
    // Without paths first: keeping the path of each of a 10,000-cluster bootstrap's million
    // nodes cost more than the checks. A document with a finding, or with a key holding
    // '.' or '[' (where the path's list name is not simply the key), is walked again with
    // paths, which finds the same first problem in the same order and names its field.
    if passes(root) {
        return Ok(());
    }
    walk(root, &mut String::new())
}

/// Whether [`check`] passes `root` (a `serde_json::Value` or the compact tree) without
/// looking further: false for a document with a v2-era finding or a key holding `.` or
/// `[` (which [`check`] then names with its path).
pub(crate) fn passes<J: JsonView>(root: &J) -> bool {
    quick_walk(root, None, None, false).is_ok()
}

/// [`passes`] and, in the same walk, no optional config that
/// [`crate::optional::may_drop`] finds: what the fast way of loading needs of a document
/// (two walks of a 10,000-cluster bootstrap's tree were one more than needed).
pub(crate) fn passes_with_nothing_optional<J: JsonView>(root: &J) -> bool {
    quick_walk(root, None, None, true).is_ok()
}

/// [`walk`] without the path: `key` is the key `value` is under (None for the root and
/// list items), `list` the key of the innermost list it is in (what [`list_of`] reads
/// from the path; `Some("")` for a list that has no key of its own). Fails on a finding
/// or on a key the path would not reflect plainly; `optional`: also on what
/// [`crate::optional::may_drop_member`] finds.
fn quick_walk<J: JsonView>(
    value: &J,
    key: Option<&str>,
    list: Option<&str>,
    optional: bool,
) -> std::result::Result<(), ()> {
    if let Some(members) = value.members() {
        let socket =
            key.is_some_and(|k| k.ends_with("transport_socket") || k.ends_with("transportSocket"));
        // A route's `match` has a v3 `tls_context` of its own.
        let route_match = key == Some("match");
        quick_check_object(members.clone(), list, socket, route_match, optional)?;
        for (key, child) in members {
            quick_walk(child, Some(key), list, optional)?;
        }
    } else if let Some(items) = value.as_array() {
        let list = Some(key.unwrap_or(""));
        for child in items {
            quick_walk(child, None, list, optional)?;
        }
    }
    Ok(())
}

/// [`check_object`]'s findings in one pass over the object's keys (each check of its own
/// was a map lookup per object: most of the walk at 10,000 clusters), and a key holding
/// `.` or `[`; fails on any of them, without saying which.
fn quick_check_object<'j, J: JsonView + 'j>(
    members: impl Iterator<Item = (&'j str, &'j J)>,
    list: Option<&str>,
    socket: bool,
    route_match: bool,
    optional: bool,
) -> std::result::Result<(), ()> {
    let in_cluster = list == Some("clusters");
    let is_extension = extension_list(list) || socket;
    let mut typed_config = false;
    let mut name = None;
    for (key, value) in members {
        match key {
            "hosts" if in_cluster => return Err(()),
            "tls_context" | "tlsContext" if !route_match => return Err(()),
            "config" if is_extension => return Err(()),
            "typed_config" | "typedConfig" => typed_config = true,
            "http_filters" | "httpFilters" | "typed_per_filter_config" | "typedPerFilterConfig"
                if optional && crate::optional::may_drop_member(key, value) =>
            {
                return Err(())
            }
            "name" => name = Some(value),
            "@type" if value.as_str().is_some_and(v2_type_url) => return Err(()),
            // Bytes, not chars: a char pattern decodes the key's UTF-8 (a fifth of the walk).
            key if key.bytes().any(|b| b == b'.' || b == b'[') => return Err(()),
            _ => {}
        }
    }
    if is_extension && !typed_config {
        if let Some(name) = name.and_then(J::as_str) {
            if FILTER_NAMES.iter().any(|(n, _, _)| *n == name) {
                return Err(());
            }
        }
    }
    Ok(())
}

/// Whether `name` is an extension name the v2 check looks at when no `typed_config`
/// is given.
pub(crate) fn is_checked_filter_name(name: &str) -> bool {
    FILTER_NAMES.iter().any(|(n, _, _)| *n == name)
}

/// Whether the objects of list `list` are extensions (`name` + `typed_config`).
pub(crate) fn extension_list(list: Option<&str>) -> bool {
    matches!(
        list,
        Some(
            "filters"
                | "http_filters"
                | "httpFilters"
                | "listener_filters"
                | "listenerFilters"
                | "access_log"
                | "accessLog"
        )
    )
}

/// Whether an `@type` names a v2-era type.
pub(crate) fn v2_type_url(type_url: &str) -> bool {
    type_url.contains("/envoy.api.v2.")
        || type_url.contains("envoy.config.filter.")
        || type_url.contains(".v2.")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The name of the list whose element `path` is in, by its last index (`filters` for
/// `...filters[3]` and for `...filters[3].x`).
fn list_of(path: &str) -> Option<&str> {
    path.rsplit_once('[')
        .map(|(head, _)| head.rsplit_once('.').map_or(head, |(_, last)| last))
}

/// Appends `[i]` without the formatting machinery (a million nodes at 10,000 clusters).
fn push_index(path: &mut String, i: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = i;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    path.push('[');
    for &d in &digits[at..] {
        path.push(char::from(d));
    }
    path.push(']');
}

/// Walks `value` at `path`, one buffer extended and truncated on the way (no string per
/// node: a 10,000-cluster bootstrap has about a million).
fn walk(value: &Value, path: &mut String) -> Result<()> {
    match value {
        Value::Object(map) => {
            let socket = path.ends_with("transport_socket") || path.ends_with("transportSocket");
            check_object(map, list_of(path), socket, path)?;
            let parent = path.len();
            for (key, child) in map {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(child, path)?;
                path.truncate(parent);
            }
        }
        Value::Array(items) => {
            let parent = path.len();
            for (i, child) in items.iter().enumerate() {
                push_index(path, i);
                walk(child, path)?;
                path.truncate(parent);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The checks of one object: `list` is the key of the list it is in, `socket` whether its
/// key ends with `transport_socket`, `path` its path (for the error).
fn check_object(
    map: &serde_json::Map<String, Value>,
    list: Option<&str>,
    socket: bool,
    path: &str,
) -> Result<()> {
    let in_cluster = list == Some("clusters");
    if in_cluster && map.contains_key("hosts") {
        return Err(ConfigError::at(
            join(path, "hosts"),
            "unknown field (v2 API; in v3 use load_assignment)",
        ));
    }
    // A route's `match` has a v3 `tls_context` of its own (TlsContextMatchOptions).
    let route_match = path == "match" || path.ends_with(".match");
    for key in ["tls_context", "tlsContext"] {
        if map.contains_key(key) && !route_match {
            return Err(ConfigError::at(
                join(path, key),
                "unknown field (v2 API; in v3 use transport_socket with name envoy.transport_sockets.tls and a typed_config UpstreamTlsContext/DownstreamTlsContext)",
            ));
        }
    }
    let is_extension = extension_list(list) || socket;
    if is_extension && map.contains_key("config") {
        return Err(ConfigError::at(
            join(path, "config"),
            "unknown field (v2 API; in v3 use typed_config with an \"@type\")",
        ));
    }
    if is_extension && !(map.contains_key("typed_config") || map.contains_key("typedConfig")) {
        if let Some(Value::String(name)) = map.get("name") {
            if let Some((_, v3_name, v3_type)) = FILTER_NAMES.iter().find(|(n, _, _)| n == name) {
                let what = if name == v3_name {
                    format!("'{name}' requires typed_config")
                } else {
                    format!("'{name}' is a v2 name; in v3 use name: {v3_name}")
                };
                return Err(ConfigError::at(
                    join(path, "name"),
                    format!(
                        "{what} with typed_config: {{\"@type\": type.googleapis.com/{v3_type}}}"
                    ),
                ));
            }
        }
    }
    if let Some(Value::String(type_url)) = map.get("@type") {
        if v2_type_url(type_url) {
            let name = type_url.rsplit('/').next().unwrap_or(type_url);
            let message = match TYPE_NAMES.iter().find(|(v2, _)| *v2 == name) {
                Some((_, v3)) => {
                    format!("v2 API type '{type_url}'; in v3 use type.googleapis.com/{v3}")
                }
                None => format!("v2 API type '{type_url}'; use its v3 equivalent"),
            };
            return Err(ConfigError::at(join(path, "@type"), message));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check, list_of, passes, passes_with_nothing_optional, push_index, walk};

    /// The one walk for both answers what the two walks answer, on every repository file
    /// and on documents with optional configs (alone, beside a v2 finding, nested).
    #[test]
    fn one_walk_answers_the_v2_and_the_optional_walks() {
        let mut documents: Vec<String> = [
            r#"{"hcm": {"http_filters": [{"name": "a", "is_optional": true}]}}"#,
            r#"{"hcm": {"httpFilters": [{"name": "a", "isOptional": false}]}}"#,
            r#"{"a": [{"typed_per_filter_config": {"x": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": true}}}]}"#,
            r#"{"a": [{"typedPerFilterConfig": {"x": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig"}}}]}"#,
            r#"{"clusters": [{"hosts": 1, "http_filters": [{"is_optional": true}]}]}"#,
            r#"{"clusters": [{"hosts": 1}], "x": {"http_filters": []}}"#,
        ]
        .map(String::from)
        .to_vec();
        documents.extend(
            crate::test_files::repository_configs()
                .into_iter()
                .map(|(_, text)| text),
        );
        let (mut plain, mut not) = (0, 0);
        for text in &documents {
            let Some(tree) = crate::yaml_scan::parse_tree(text) else {
                continue;
            };
            let two_walks = passes(&tree) && !crate::optional::may_drop(&tree);
            assert_eq!(passes_with_nothing_optional(&tree), two_walks, "{text}");
            if two_walks {
                plain += 1;
            } else {
                not += 1;
            }
        }
        assert!(plain >= 5 && not >= 4, "plain {plain}, not {not}");
    }

    /// The walk without paths passes exactly the documents the walk with paths passes.
    #[test]
    fn quick_walk_agrees_with_the_path_walk() {
        let documents = [
            r#"{"static_resources": {"clusters": [{"name": "a", "hosts": []}]}}"#,
            r#"{"clusters": [{"x": {"y": [{"hosts": 1}]}}]}"#,
            r#"{"clusters": [[{"hosts": 1}]]}"#,
            r#"{"a": {"b.clusters": [{"hosts": 1}]}}"#,
            r#"{"a.b": {"clusters": [{"hosts": 1}]}}"#,
            r#"{"a": {"x[0].clusters": [{"hosts": 1}]}}"#,
            r#"{"filters": [{"name": "envoy.router"}]}"#,
            r#"{"filters": [{"name": "envoy.router", "typed_config": {}}]}"#,
            r#"{"a": [{"my_transport_socket": {"config": {}}}]}"#,
            r#"{"a": [{"transportSocket": {"name": "envoy.tcp_proxy"}}]}"#,
            r#"{"listeners": [{"filters": [{"typed_config": {"@type": "x/envoy.api.v2.Cluster"}}]}]}"#,
            r#"{"x": {"tlsContext": {}}}"#,
            r#"{"routes": [{"match": {"prefix": "/", "tls_context": {"presented": true}}}]}"#,
            r#"{"match": {"tls_context": {}}, "y": [{"match": {"tlsContext": {}}}]}"#,
            r#"{"routes": [{"route": {"tls_context": {}}}]}"#,
            r#"[{"hosts": 1}]"#,
            r#"{"": [{"config": 1}], "filters": [{"config": 1}]}"#,
            r#"{"metadata": {"filter_metadata": {"envoy.lb": {"canary": true}}}}"#,
            r#"{"http_filters": [{"name": "envoy.filters.http.router"}]}"#,
            r#"{"http_filters": [{"name": "envoy.filters.http.router", "typedConfig": {}}]}"#,
            r#"{"clusters": [{"name": "c", "hosts": [], "tls_context": {}}]}"#,
            r#"{"filters": [{"name": "x", "config": {}}], "x": {"config": 1}}"#,
            r#"{"x": {"@type": "type.googleapis.com/envoy.config.filter.http.router.v2.Router"}}"#,
            r#"{"x": {"@type": 7, "y[1]": 2}}"#,
        ];
        for text in documents {
            let doc: serde_json::Value = serde_json::from_str(text).expect("test JSON");
            let quick = check(&doc).map_err(|e| e.to_string());
            let with_paths = walk(&doc, &mut String::new()).map_err(|e| e.to_string());
            assert_eq!(quick, with_paths, "{text}");
            // The same walk over the compact tree (JSON is in the scanner's subset).
            let tree = crate::yaml_scan::parse_tree(text).expect("scanned");
            assert_eq!(passes(&tree), passes(&doc), "{text}");
        }
    }

    #[test]
    fn list_of_names_the_innermost_indexed_list() {
        assert_eq!(list_of("static_resources.clusters[3]"), Some("clusters"));
        assert_eq!(list_of("clusters[0].load_assignment"), Some("clusters"));
        assert_eq!(list_of("a.xclusters[1]"), Some("xclusters"));
        assert_eq!(list_of("a[1].filters[2]"), Some("filters"));
        assert_eq!(list_of("a.b"), None);
    }

    #[test]
    fn push_index_writes_decimal() {
        let mut path = String::from("x");
        for i in [0, 7, 10, 12345, usize::MAX] {
            path.truncate(1);
            push_index(&mut path, i);
            assert_eq!(path, format!("x[{i}]"));
        }
    }
}
