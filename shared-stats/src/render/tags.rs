//! Envoy's default tag extraction: which part of a dotted stat name becomes a Prometheus
//! label (`cluster.<name>.` -> `envoy_cluster_name`, ...). Each pattern runs on the whole
//! name and the cut parts are removed together at the end, as Envoy does. Patterns are
//! rewritten without look-ahead (the `regex` crate has none) but match the same names.
//! [`TagProducer`] adds `stats_config.stats_tags` and `--stats-tag` to them.

use std::sync::OnceLock;

use regex::Regex;

pub use super::producer::{TagConfigError, TagProducer, TagSpecifier, TagValue};

/// One of Envoy's default tag extractors. When `pattern` matches, capture group 1 is cut
/// from the name and the value is group 2 (or group 1 when there is no group 2).
pub(super) struct TagSpec {
    /// Envoy's tag name.
    name: &'static str,
    /// The Prometheus label it becomes.
    label: &'static str,
    /// Cheap pre-checks so most names skip the regex: required prefix and substring.
    prefix: &'static str,
    needle: &'static str,
    pattern: &'static str,
}

const fn spec(
    name: &'static str,
    label: &'static str,
    prefix: &'static str,
    needle: &'static str,
    pattern: &'static str,
) -> TagSpec {
    TagSpec {
        name,
        label,
        prefix,
        needle,
        pattern,
    }
}

/// In the order Envoy applies them.
const DEFAULT_TAGS: &[TagSpec] = &[
    spec(
        "envoy.response_code",
        "envoy_response_code",
        "",
        "_rq_",
        r"_rq(_(\d{3}))$",
    ),
    spec(
        "envoy.response_code_class",
        "envoy_response_code_class",
        "",
        "_rq_",
        r"_rq_(\d)xx$",
    ),
    spec(
        "envoy.http_user_agent",
        "envoy_http_user_agent",
        "http.",
        ".user_agent.",
        r"^http\.(?:.*?\.)?user_agent\.((.*?)\.)\w+?$",
    ),
    spec(
        "envoy.virtual_cluster",
        "envoy_virtual_cluster",
        "vhost.",
        ".vcluster.",
        r"^vhost\.(?:.*?\.)?vcluster\.((.*?)\.)\w+?$",
    ),
    spec(
        "envoy.fault_downstream_cluster",
        "envoy_fault_downstream_cluster",
        "http.",
        ".fault.",
        r"^http\.(?:.*?\.)?fault\.((.*?)\.)\w+?$",
    ),
    spec(
        "envoy.ssl_cipher",
        "envoy_ssl_cipher",
        "listener.",
        ".ssl.cipher.",
        r"^listener\.(?:.*?\.)?ssl\.cipher(\.(.*?))$",
    ),
    spec(
        "envoy.ssl_cipher_suite",
        "envoy_ssl_cipher_suite",
        "cluster.",
        ".ssl.ciphers.",
        r"^cluster\.(?:.*?\.)?ssl\.ciphers(\.(.*?))$",
    ),
    spec(
        "envoy.tcp_prefix",
        "envoy_tcp_prefix",
        "tcp.",
        "",
        r"^tcp\.((.*?)\.)\w+?$",
    ),
    spec(
        "envoy.udp_prefix",
        "envoy_udp_prefix",
        "udp.",
        "",
        r"^udp\.((.*?)\.)\w+?$",
    ),
    spec(
        "envoy.ratelimit_prefix",
        "envoy_ratelimit_prefix",
        "ratelimit.",
        "",
        r"^ratelimit\.((.*?)\.)\w+?$",
    ),
    spec(
        "envoy.cluster_name",
        "envoy_cluster_name",
        "cluster.",
        "",
        r"^cluster\.((.*?)\.)",
    ),
    spec(
        "envoy.worker_id",
        "envoy_worker_id",
        "",
        ".worker_",
        r"^(?:listener_manager|server|thread_local_cluster_manager|listener\..*?)\.worker(_(\d+))\.",
    ),
    // `<listener or cluster>.ssl.certificate.<name>.expiration_unix_time_seconds`: on
    // every name (no first-token group), so its label comes first, as on Envoy 1.40.
    spec(
        "envoy.tls_certificate",
        "envoy_tls_certificate",
        "",
        ".ssl.certificate.",
        r"^(?:.*?\.)?ssl\.certificate\.(([^.]*)\.)",
    ),
    spec(
        "envoy.http_conn_manager_prefix",
        "envoy_http_conn_manager_prefix",
        "",
        "http.",
        r"^(?:listener(?:\..*?)?\.)?http\.((.*?)\.)",
    ),
    spec(
        "envoy.listener_address",
        "envoy_listener_address",
        "listener.",
        "",
        r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
    ),
    spec(
        "envoy.virtual_host",
        "envoy_virtual_host",
        "vhost.",
        "",
        r"^vhost\.((.*?)\.)",
    ),
    spec(
        "envoy.rds_route_config",
        "envoy_rds_route_config",
        "http.",
        ".rds.",
        r"^http\.(?:.*?\.)?rds\.((.*?)\.)\w+?$",
    ),
    // A secret name is cut up to its first dot (`sds.my.cert.update_success` tags `my`),
    // as measured on Envoy 1.40.
    spec(
        "envoy.xds_resource_name",
        "envoy_xds_resource_name",
        "sds.",
        "",
        r"^sds\.((.*?)\.)",
    ),
];

/// A compiled default extractor.
pub(super) struct TagExtractor {
    pub(super) spec: &'static TagSpec,
    pub(super) pattern: Regex,
}

impl TagExtractor {
    /// Envoy's tag name (`envoy.cluster_name`).
    pub(super) fn name(&self) -> &'static str {
        self.spec.name
    }

    /// The Prometheus label (`envoy_cluster_name`).
    pub(super) fn label(&self) -> &'static str {
        self.spec.label
    }

    /// The first-token groups Envoy files this extractor under (its regex's literal
    /// prefix up to the first dot); empty for the ones it runs on every name. The order
    /// of a stat's labels follows from this: every unprefixed extractor first, then the
    /// ones of the name's first token.
    pub(super) fn groups(&self) -> &'static [&'static str] {
        match self.spec.name {
            // Measured: Envoy 1.40 labels `http.ingress.rds.routes.version` with
            // `envoy_rds_route_config` before `envoy_http_conn_manager_prefix`, so its
            // extractor is not one of the `http` group.
            "envoy.response_code"
            | "envoy.response_code_class"
            | "envoy.worker_id"
            | "envoy.tls_certificate"
            | "envoy.rds_route_config" => &[],
            // Envoy has two extractors of this name, `listener.` and `http.`.
            "envoy.http_conn_manager_prefix" => &["listener", "http"],
            "envoy.http_user_agent" | "envoy.fault_downstream_cluster" => &["http"],
            "envoy.virtual_cluster" | "envoy.virtual_host" => &["vhost"],
            "envoy.ssl_cipher" | "envoy.listener_address" => &["listener"],
            "envoy.ssl_cipher_suite" | "envoy.cluster_name" => &["cluster"],
            "envoy.tcp_prefix" => &["tcp"],
            "envoy.udp_prefix" => &["udp"],
            "envoy.ratelimit_prefix" => &["ratelimit"],
            _ => &[],
        }
    }

    /// Where this extractor matches `name` (the whole stat name): the byte range cut from
    /// the name (capture group 1) and the value (group 2, or group 1 without one).
    pub(super) fn apply<'n>(&self, name: &'n str) -> Option<(std::ops::Range<usize>, &'n str)> {
        let spec = self.spec;
        if !name.starts_with(spec.prefix) || !name.contains(spec.needle) {
            return None;
        }
        let captures = self.pattern.captures(name)?;
        let removed = captures.get(1)?;
        let value = captures.get(2).unwrap_or(removed).as_str();
        Some((removed.range(), value))
    }
}

/// Every default extractor, compiled once, in table order.
pub(super) fn default_extractors() -> &'static [TagExtractor] {
    static EXTRACTORS: OnceLock<Vec<TagExtractor>> = OnceLock::new();
    EXTRACTORS.get_or_init(|| {
        DEFAULT_TAGS
            .iter()
            .filter_map(|spec| {
                // The table is constant and covered by tests; a bad entry is skipped
                // rather than taking the admin endpoint down.
                Regex::new(spec.pattern)
                    .ok()
                    .map(|pattern| TagExtractor { spec, pattern })
            })
            .collect()
    })
}

/// One extracted tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag<'a> {
    /// Envoy's tag name (`envoy.cluster_name`, or a `stats_tags` name).
    pub name: &'a str,
    /// Prometheus label (`envoy_cluster_name`).
    pub label: &'a str,
    /// The value cut out of the stat name (`backend`), or a fixed value.
    pub value: String,
}

/// A stat name split into its tag-extracted name and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedName<'a> {
    /// The name with every tag value cut out (`cluster.upstream_rq_total`).
    pub extracted: String,
    /// Tags in Envoy's order.
    pub tags: Vec<Tag<'a>>,
}

/// Applies Envoy's default tag extractors to `name`.
pub fn extract_tags(name: &str) -> TaggedName<'static> {
    TagProducer::envoy_default().extract(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags_of(name: &str) -> (String, Vec<(&'static str, String)>) {
        let t = extract_tags(name);
        let tags = t
            .tags
            .into_iter()
            .map(|tag| (tag.name, tag.value))
            .collect();
        (t.extracted, tags)
    }

    #[test]
    fn every_default_pattern_compiles_and_labels_follow_tag_names() {
        assert_eq!(default_extractors().len(), DEFAULT_TAGS.len());
        for spec in DEFAULT_TAGS {
            assert_eq!(spec.label, spec.name.replace('.', "_"));
        }
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
        let (name, tags) = tags_of("sds.server_cert.update_success");
        assert_eq!(name, "sds.update_success");
        assert_eq!(
            tags,
            vec![("envoy.xds_resource_name", "server_cert".to_string())]
        );
        let (name, _) = tags_of("sds.my.cert.update_success");
        assert_eq!(name, "sds.cert.update_success");
        let (name, tags) = tags_of(
            "listener.127.0.0.1_18444.ssl.certificate.server_cert.expiration_unix_time_seconds",
        );
        assert_eq!(
            name,
            "listener.ssl.certificate.expiration_unix_time_seconds"
        );
        assert_eq!(
            tags,
            vec![
                ("envoy.tls_certificate", "server_cert".to_string()),
                ("envoy.listener_address", "127.0.0.1_18444".to_string())
            ]
        );
        let (name, tags) = tags_of(
            "cluster.up.ssl.certificate.unnamed_cert_e3b0c442.expiration_unix_time_seconds",
        );
        assert_eq!(name, "cluster.ssl.certificate.expiration_unix_time_seconds");
        assert_eq!(
            tags,
            vec![
                ("envoy.tls_certificate", "unnamed_cert_e3b0c442".to_string()),
                ("envoy.cluster_name", "up".to_string())
            ]
        );
        let (name, tags) = tags_of("server.live");
        assert_eq!(name, "server.live");
        assert!(tags.is_empty());
    }
}
