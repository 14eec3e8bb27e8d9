//! Bootstrap-wide settings that belong to no resource: `cluster_manager`,
//! `application_log_config`, `deferred_stat_options`, `bootstrap_extensions` and
//! `stats_config` (tags and the stats matcher).

use super::{StringMatchKind, StringMatcher};

/// `stats_config` (checked: regexes compile, no tag name twice).
#[derive(Debug, Clone)]
pub struct StatsConfig {
    /// `use_all_default_tags` (default true): Envoy's default tag extractors.
    pub use_all_default_tags: bool,
    /// `stats_tags`, in order.
    pub stats_tags: Vec<baton_shared_stats::render::tags::TagSpecifier>,
    /// `stats_matcher`: which stats the admin endpoints export.
    pub matcher: StatsMatcher,
}

impl StatsConfig {
    /// The tag producer for this config and the command line's `--stats-tag` pairs
    /// (fixed tags after the defaults, before `stats_tags`, as in Envoy); fails when a
    /// `stats_tags` name repeats a command-line one.
    pub fn tag_producer(
        &self,
        universal: &[(String, String)],
    ) -> std::result::Result<
        baton_shared_stats::render::tags::TagProducer,
        baton_shared_stats::render::tags::TagConfigError,
    > {
        baton_shared_stats::render::tags::TagProducer::new(
            self.use_all_default_tags,
            universal,
            &self.stats_tags,
        )
    }
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            use_all_default_tags: true,
            stats_tags: Vec::new(),
            matcher: StatsMatcher::AcceptAll,
        }
    }
}

/// `cluster_manager`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterManagerConfig {
    /// `local_cluster_name`: the cluster holding this proxy's own fleet (zone-aware
    /// routing reads its localities). Checked: it names a static cluster, as Envoy
    /// requires.
    pub local_cluster_name: Option<String>,
    /// `outlier_detection.event_log_path`. Accepted; nothing is written to it, as Baton
    /// has no outlier detection yet.
    pub outlier_event_log_path: Option<String>,
    /// `enable_deferred_cluster_creation`: Envoy builds a CDS cluster's objects on first
    /// use to save memory. Baton builds them when they arrive; what is observable is the
    /// same.
    pub enable_deferred_cluster_creation: bool,
}

/// `application_log_config.log_format`: how the process log is written.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplicationLogFormat {
    /// `text_format`: an spdlog pattern, as `--log-format` takes. Baton writes its own
    /// plain-text lines whatever the pattern (as it does for `--log-format`).
    Text(String),
    /// `json_format`: each log line is one JSON object.
    Json(serde_json::Value),
}

/// One of `bootstrap_extensions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapExtension {
    /// `envoy.bootstrap.internal_listener` (typed, or as a `TypedStruct` as Istio gives
    /// it): enables listeners with `internal_listener`, which Baton does not support yet
    /// (such a listener is refused by name), so it changes nothing by itself.
    InternalListener {
        /// `buffer_size_kb` (1 to 8192; default 1024).
        buffer_size_kb: u32,
    },
}

/// `stats_config.stats_matcher`: which stats are exported (`/stats`,
/// `/stats/prometheus`, `?format=json`), matched against each stat's full name, the same
/// for counters, gauges and histograms. Envoy does not create the stats it rejects;
/// Baton creates them and leaves them out of every output.
#[derive(Debug, Clone, Default)]
pub enum StatsMatcher {
    /// No matcher: every stat.
    #[default]
    AcceptAll,
    /// `reject_all: true`: none at all (not even `server.*`, as in Envoy).
    RejectAll,
    /// `exclusion_list`: every stat no pattern matches.
    Exclusion(Vec<StringMatcher>),
    /// `inclusion_list`: only stats a pattern matches.
    Inclusion(Vec<StringMatcher>),
}

impl StatsMatcher {
    /// Whether the stat named `name` is exported.
    pub fn accepts(&self, name: &str) -> bool {
        match self {
            StatsMatcher::AcceptAll => true,
            StatsMatcher::RejectAll => false,
            StatsMatcher::Exclusion(patterns) => !patterns.iter().any(|p| p.matches(name)),
            StatsMatcher::Inclusion(patterns) => patterns.iter().any(|p| p.matches(name)),
        }
    }

    /// Whether every stat is exported (no filtering needed).
    pub fn accepts_all(&self) -> bool {
        matches!(self, StatsMatcher::AcceptAll)
    }
}

impl StringMatcher {
    /// Whether `value` matches (`ignore_case` folds ASCII only, as Envoy; translation
    /// already folded the pattern).
    pub fn matches(&self, value: &str) -> bool {
        let folded;
        let value = if self.ignore_case && !matches!(self.kind, StringMatchKind::Regex(_)) {
            folded = value.to_ascii_lowercase();
            folded.as_str()
        } else {
            value
        };
        match &self.kind {
            StringMatchKind::Exact(s) => value == s,
            StringMatchKind::Prefix(s) => value.starts_with(s.as_str()),
            StringMatchKind::Suffix(s) => value.ends_with(s.as_str()),
            StringMatchKind::Contains(s) => value.contains(s.as_str()),
            StringMatchKind::Regex(r) => r.is_match(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(kind: StringMatchKind, ignore_case: bool) -> StringMatcher {
        StringMatcher { kind, ignore_case }
    }

    #[test]
    fn lists_match_full_names() {
        let patterns = vec![
            matcher(StringMatchKind::Prefix("server.".into()), false),
            matcher(StringMatchKind::Suffix("rbac.allowed".into()), false),
            matcher(StringMatchKind::Contains("membership".into()), false),
            matcher(
                StringMatchKind::Exact("cluster.a.upstream_rq_total".into()),
                true,
            ),
            matcher(
                StringMatchKind::Regex(regex::Regex::new(r"^(?:vhost\..*\.route\..*)$").unwrap()),
                false,
            ),
        ];
        let inclusion = StatsMatcher::Inclusion(patterns.clone());
        let exclusion = StatsMatcher::Exclusion(patterns);
        for name in [
            "server.live",
            "http.in.rbac.allowed",
            "cluster.a.membership_total",
            "CLUSTER.A.upstream_rq_total",
            "vhost.v.route.r.upstream_rq_200",
        ] {
            assert!(inclusion.accepts(name), "{name}");
            assert!(!exclusion.accepts(name), "{name}");
        }
        for name in [
            "cluster.a.upstream_rq_total2",
            "x.vhost.v.route",
            "listener.server.",
        ] {
            assert!(!inclusion.accepts(name), "{name}");
            assert!(exclusion.accepts(name), "{name}");
        }
        assert!(!StatsMatcher::RejectAll.accepts("server.live"));
        assert!(StatsMatcher::AcceptAll.accepts("anything"));
    }
}
