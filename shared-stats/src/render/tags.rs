//! Envoy's default tag extraction: which part of a dotted stat name becomes a Prometheus
//! label (`cluster.<name>.` -> `envoy_cluster_name`, ...), applied in Envoy's order to the
//! progressively stripped name. Patterns are rewritten without look-ahead (the `regex`
//! crate has none) but match the same names.

use std::sync::OnceLock;

use regex::Regex;

/// One extractor: when `pattern` matches, capture group 1 is cut from the name and the
/// value is group 2 (or group 1 when there is no group 2).
struct TagExtractor {
    tag: &'static str,
    /// Cheap pre-check: the name must contain this for the regex to run.
    needle: &'static str,
    pattern: Regex,
}

/// (tag name, required substring, pattern), in the order Envoy applies them.
const DEFAULT_TAGS: &[(&str, &str, &str)] = &[
    ("envoy.response_code", "_rq_", r"_rq(_(\d{3}))$"),
    ("envoy.response_code_class", "_rq_", r"_rq_(\d)xx$"),
    (
        "envoy.http_user_agent",
        ".user_agent.",
        r"^http\.(?:.*?\.)?user_agent\.((.*?)\.)\w+?$",
    ),
    (
        "envoy.virtual_cluster",
        ".vcluster.",
        r"^vhost\.(?:.*?\.)?vcluster\.((.*?)\.)\w+?$",
    ),
    (
        "envoy.fault_downstream_cluster",
        ".fault.",
        r"^http\.(?:.*?\.)?fault\.((.*?)\.)\w+?$",
    ),
    (
        "envoy.ssl_cipher",
        ".ssl.cipher.",
        r"^listener\.(?:.*?\.)?ssl\.cipher(\.(.*?))$",
    ),
    (
        "envoy.ssl_cipher_suite",
        ".ssl.ciphers.",
        r"^cluster\.(?:.*?\.)?ssl\.ciphers(\.(.*?))$",
    ),
    ("envoy.tcp_prefix", "tcp.", r"^tcp\.((.*?)\.)\w+?$"),
    ("envoy.udp_prefix", "udp.", r"^udp\.((.*?)\.)\w+?$"),
    (
        "envoy.ratelimit_prefix",
        "ratelimit.",
        r"^ratelimit\.((.*?)\.)\w+?$",
    ),
    ("envoy.cluster_name", "cluster.", r"^cluster\.((.*?)\.)"),
    (
        "envoy.worker_id",
        "worker_",
        r"^(?:listener_manager|server|thread_local_cluster_manager|listener\..*?)\.worker(_(\d+))\.",
    ),
    (
        "envoy.http_conn_manager_prefix",
        "http.",
        r"^(?:listener(?:\..*?)?\.)?http\.((.*?)\.)",
    ),
    (
        "envoy.listener_address",
        "listener.",
        r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
    ),
    ("envoy.virtual_host", "vhost.", r"^vhost\.((.*?)\.)"),
    (
        "envoy.rds_route_config",
        ".rds.",
        r"^http\.(?:.*?\.)?rds\.((.*?)\.)\w+?$",
    ),
];

fn extractors() -> &'static [TagExtractor] {
    static EXTRACTORS: OnceLock<Vec<TagExtractor>> = OnceLock::new();
    EXTRACTORS.get_or_init(|| {
        DEFAULT_TAGS
            .iter()
            .filter_map(|&(tag, needle, pattern)| {
                // The table is constant and covered by tests; a bad entry is skipped
                // rather than taking the admin endpoint down.
                Regex::new(pattern).ok().map(|pattern| TagExtractor {
                    tag,
                    needle,
                    pattern,
                })
            })
            .collect()
    })
}

/// A stat name split into its tag-extracted name and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedName {
    /// The name with every tag value cut out (`cluster.upstream_rq_total`).
    pub extracted: String,
    /// (tag name, value) in extraction order (`envoy.cluster_name`, `backend`).
    pub tags: Vec<(&'static str, String)>,
}

/// Applies Envoy's default tag extractors to `name`.
pub fn extract_tags(name: &str) -> TaggedName {
    let mut current = name.to_string();
    let mut tags = Vec::new();
    for extractor in extractors() {
        if !current.contains(extractor.needle) {
            continue;
        }
        let Some(captures) = extractor.pattern.captures(&current) else {
            continue;
        };
        let Some(removed) = captures.get(1) else {
            continue;
        };
        let value = captures.get(2).unwrap_or(removed).as_str().to_string();
        let range = removed.range();
        tags.push((extractor.tag, value));
        current.replace_range(range, "");
    }
    TaggedName {
        extracted: current,
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags_of(name: &str) -> (String, Vec<(&'static str, String)>) {
        let t = extract_tags(name);
        (t.extracted, t.tags)
    }

    #[test]
    fn every_default_pattern_compiles() {
        assert_eq!(extractors().len(), DEFAULT_TAGS.len());
    }

    #[test]
    fn cluster_response_code_and_class() {
        let (name, tags) = tags_of("cluster.backend.upstream_rq_503");
        assert_eq!(name, "cluster.upstream_rq");
        assert_eq!(
            tags,
            vec![
                ("envoy.response_code", "503".to_string()),
                ("envoy.cluster_name", "backend".to_string())
            ]
        );
        let (name, tags) = tags_of("http.ingress_http.downstream_rq_2xx");
        assert_eq!(name, "http.downstream_rq_xx");
        assert_eq!(tags[0], ("envoy.response_code_class", "2".to_string()));
        assert_eq!(
            tags[1],
            ("envoy.http_conn_manager_prefix", "ingress_http".to_string())
        );
    }

    #[test]
    fn listener_address_worker_and_nested_http_prefix() {
        let (name, tags) = tags_of("listener.127.0.0.1_19080.worker_1.downstream_cx_total");
        assert_eq!(name, "listener.worker.downstream_cx_total");
        assert_eq!(tags[0], ("envoy.worker_id", "1".to_string()));
        assert_eq!(
            tags[1],
            ("envoy.listener_address", "127.0.0.1_19080".to_string())
        );
        let (name, tags) = tags_of("listener.[__1]_8080.http.ingress.downstream_rq_completed");
        assert_eq!(name, "listener.http.downstream_rq_completed");
        assert_eq!(tags.len(), 2);
        let (name, tags) = tags_of("tcp.tcp_in.downstream_cx_total");
        assert_eq!(name, "tcp.downstream_cx_total");
        assert_eq!(tags, vec![("envoy.tcp_prefix", "tcp_in".to_string())]);
        let (name, tags) = tags_of("server.live");
        assert_eq!(name, "server.live");
        assert!(tags.is_empty());
    }
}
