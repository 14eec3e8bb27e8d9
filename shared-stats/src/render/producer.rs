//! Envoy's tag producer: the default extractors (`use_all_default_tags`), the universal
//! `--stats-tag` values and `stats_config.stats_tags` (custom regexes and fixed values),
//! built once per configuration and applied to every stat name `/stats/prometheus`
//! renders.
//!
//! Envoy runs first every extractor whose regex has no literal first token (`_rq(_...)`,
//! fixed values, most custom regexes), then those filed under the name's first token
//! (`cluster`, `http`, ...), each in the order configured: defaults, then command-line
//! tags, then `stats_tags`. Every regex sees the whole name; the cut parts are removed
//! together at the end. That order is the order of the labels.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use super::tags::{default_extractors, Tag, TagExtractor, TaggedName};

/// How one `stats_tags` entry gets its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValue {
    /// `regex`: capture group 1 is cut from the name, group 2 (or 1) is the value. An
    /// empty regex means Envoy's default extractor of the same name.
    Regex(String),
    /// `fixed_value`: the same value on every stat, nothing cut.
    Fixed(String),
}

/// One `stats_config.stats_tags` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSpecifier {
    /// `tag_name`.
    pub name: String,
    /// `regex` or `fixed_value`.
    pub value: TagValue,
}

/// A tag configuration Envoy refuses at startup (same wording).
#[derive(Debug, thiserror::Error)]
pub enum TagConfigError {
    /// Two tags (default, command line or `stats_tags`) with one name.
    #[error("Tag name '{0}' specified twice.")]
    Duplicate(String),
    /// An empty regex whose name is no default extractor.
    #[error("No regex specified for tag specifier and no default regex for name: '{0}'")]
    NoDefault(String),
    /// A regex that does not compile.
    #[error("invalid regex for tag '{name}': {error}")]
    BadRegex {
        /// The tag.
        name: String,
        /// Why.
        error: String,
    },
}

/// What one extractor does.
enum Extract {
    Default(&'static TagExtractor),
    /// A custom regex, compiled with look-around (Envoy compiles these as ECMAScript).
    Custom(fancy_regex::Regex),
    Fixed(String),
}

struct Extractor {
    name: Cow<'static, str>,
    label: Cow<'static, str>,
    extract: Extract,
}

impl Extractor {
    /// The tag's value and the range to cut, when it applies to `name`.
    fn apply<'n>(&self, name: &'n str) -> Option<(Option<Range<usize>>, &'n str)> {
        match &self.extract {
            Extract::Default(extractor) => extractor
                .apply(name)
                .map(|(range, value)| (Some(range), value)),
            Extract::Custom(regex) => {
                let captures = regex.captures(name).ok()??;
                // Envoy requires at least one group; a group that took no part cuts
                // nothing and gives an empty value.
                if captures.len() < 2 {
                    return None;
                }
                let removed = captures.get(1);
                let value = if captures.len() > 2 {
                    captures.get(2).map_or("", |m| m.as_str())
                } else {
                    removed.map_or("", |m| m.as_str())
                };
                Some((removed.map(|m| m.range()), value))
            }
            Extract::Fixed(_) => Some((None, "")),
        }
    }
}

/// The configured tag extractors. Cheap to share ([`Arc`]); built once per config.
pub struct TagProducer {
    /// Run on every name, in order.
    unprefixed: Vec<Extractor>,
    /// Run after those, on names whose first token is the key.
    by_first_token: HashMap<String, Vec<Extractor>>,
}

impl std::fmt::Debug for TagProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |list: &[Extractor]| -> Vec<String> {
            list.iter().map(|e| e.name.to_string()).collect()
        };
        f.debug_struct("TagProducer")
            .field("unprefixed", &names(&self.unprefixed))
            .field("by_first_token", &self.by_first_token.keys())
            .finish()
    }
}

/// Envoy's Prometheus label for a tag name: every character outside `[A-Za-z0-9_]`
/// becomes `_`.
fn label_of(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Envoy's literal prefix of a tag regex: `^word\.` or `^word(?=\.)` (or `^word` alone)
/// files the extractor under `word`; anything else under no prefix.
fn regex_prefix(regex: &str) -> Option<&str> {
    let rest = regex.strip_prefix('^')?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let after = &rest[end..];
    // A prefix is taken when the word is followed by an escaped dot or a look-ahead for
    // one, or when it is the last character of the regex but one (`^word$` has none).
    let last_char = after.len() == 1;
    if after.starts_with("\\.") || after.starts_with("(?=\\.)") || last_char {
        Some(&rest[..end])
    } else {
        None
    }
}

impl TagProducer {
    /// Envoy's default configuration: every default extractor, nothing else.
    pub fn envoy_default() -> &'static Arc<TagProducer> {
        static DEFAULT: OnceLock<Arc<TagProducer>> = OnceLock::new();
        DEFAULT.get_or_init(|| {
            let mut producer = TagProducer::empty();
            for extractor in default_extractors() {
                producer.add_default(extractor);
            }
            Arc::new(producer)
        })
    }

    fn empty() -> Self {
        TagProducer {
            unprefixed: Vec::new(),
            by_first_token: HashMap::new(),
        }
    }

    fn add_default(&mut self, extractor: &'static TagExtractor) {
        let make = || Extractor {
            name: Cow::Borrowed(extractor.name()),
            label: Cow::Borrowed(extractor.label()),
            extract: Extract::Default(extractor),
        };
        let groups = extractor.groups();
        if groups.is_empty() {
            self.unprefixed.push(make());
        }
        for group in groups {
            self.by_first_token
                .entry((*group).to_string())
                .or_default()
                .push(make());
        }
    }

    /// Builds the producer for `stats_config` (`use_all_default_tags`, `stats_tags`) and
    /// the command line's `--stats-tag name:value` pairs, with Envoy's checks.
    pub fn new(
        use_all_default_tags: bool,
        universal: &[(String, String)],
        specifiers: &[TagSpecifier],
    ) -> Result<Self, TagConfigError> {
        let mut producer = TagProducer::empty();
        let mut names: Vec<String> = Vec::new();
        if use_all_default_tags {
            for extractor in default_extractors() {
                producer.add_default(extractor);
                names.push(extractor.name().to_string());
            }
        }
        for (name, value) in universal {
            producer.unprefixed.push(Extractor {
                name: Cow::Owned(name.clone()),
                label: Cow::Owned(label_of(name)),
                extract: Extract::Fixed(value.clone()),
            });
            names.push(name.clone());
        }
        for specifier in specifiers {
            let name = &specifier.name;
            if names.contains(name) {
                return Err(TagConfigError::Duplicate(name.clone()));
            }
            names.push(name.clone());
            match &specifier.value {
                TagValue::Fixed(value) => producer.unprefixed.push(Extractor {
                    name: Cow::Owned(name.clone()),
                    label: Cow::Owned(label_of(name)),
                    extract: Extract::Fixed(value.clone()),
                }),
                TagValue::Regex(regex) if regex.is_empty() => {
                    let mut found = false;
                    for extractor in default_extractors().iter().filter(|e| e.name() == name) {
                        producer.add_default(extractor);
                        found = true;
                    }
                    if !found {
                        return Err(TagConfigError::NoDefault(name.clone()));
                    }
                }
                TagValue::Regex(regex) => {
                    let compiled =
                        fancy_regex::Regex::new(regex).map_err(|e| TagConfigError::BadRegex {
                            name: name.clone(),
                            error: e.to_string(),
                        })?;
                    let extractor = Extractor {
                        name: Cow::Owned(name.clone()),
                        label: Cow::Owned(label_of(name)),
                        extract: Extract::Custom(compiled),
                    };
                    match regex_prefix(regex) {
                        Some(prefix) => group_mut(&mut producer, prefix).push(extractor),
                        None => producer.unprefixed.push(extractor),
                    }
                }
            }
        }
        Ok(producer)
    }

    /// Splits `name` into its tag-extracted name and tags, as Envoy does when it creates
    /// the stat.
    pub fn extract<'a>(&'a self, name: &str) -> TaggedName<'a> {
        if created_before_stats_config(name) {
            return TaggedName {
                extracted: name.to_string(),
                tags: Vec::new(),
            };
        }
        let mut tags = Vec::new();
        let mut cut: Vec<Range<usize>> = Vec::new();
        let group = name
            .split_once('.')
            .and_then(|(token, _)| self.by_first_token.get(token));
        let extractors = self.unprefixed.iter().chain(group.into_iter().flatten());
        for extractor in extractors {
            let Some((range, value)) = extractor.apply(name) else {
                continue;
            };
            let value = match &extractor.extract {
                Extract::Fixed(fixed) => fixed.clone(),
                _ => without_empty_tokens(value).into_owned(),
            };
            tags.push(Tag {
                name: &extractor.name,
                label: &extractor.label,
                value,
            });
            cut.extend(range.filter(|r| !r.is_empty()));
        }
        let extracted = without(name, cut);
        TaggedName {
            extracted: match without_empty_tokens(&extracted) {
                Cow::Borrowed(_) => extracted,
                Cow::Owned(collapsed) => collapsed,
            },
            tags,
        }
    }
}

fn group_mut<'p>(producer: &'p mut TagProducer, prefix: &str) -> &'p mut Vec<Extractor> {
    producer
        .by_first_token
        .entry(prefix.to_string())
        .or_default()
}

/// Stats Envoy creates before it reads `stats_config`, which therefore carry no tag (not
/// even the fixed ones): the file flusher's and the hot-restart generation.
fn created_before_stats_config(name: &str) -> bool {
    name.starts_with("filesystem.") || name == "server.hot_restart_generation"
}

/// Envoy keeps names and tag values as dot-separated tokens and drops empty ones, so a
/// leading or trailing dot, or two in a row, do not survive (`backend.` -> `backend`).
fn without_empty_tokens(text: &str) -> Cow<'_, str> {
    if !text.starts_with('.') && !text.ends_with('.') && !text.contains("..") {
        return Cow::Borrowed(text);
    }
    let tokens: Vec<&str> = text.split('.').filter(|t| !t.is_empty()).collect();
    Cow::Owned(tokens.join("."))
}

/// `name` without the bytes in `cut` (ranges may overlap).
fn without(name: &str, mut cut: Vec<Range<usize>>) -> String {
    if cut.is_empty() {
        return name.to_string();
    }
    cut.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(name.len());
    let mut kept_from = 0;
    for range in cut {
        if range.start > kept_from {
            out.push_str(&name[kept_from..range.start]);
        }
        kept_from = kept_from.max(range.end);
    }
    out.push_str(&name[kept_from.min(name.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex(name: &str, regex: &str) -> TagSpecifier {
        TagSpecifier {
            name: name.to_string(),
            value: TagValue::Regex(regex.to_string()),
        }
    }

    fn render(producer: &TagProducer, name: &str) -> String {
        let tagged = producer.extract(name);
        let labels: Vec<String> = tagged
            .tags
            .iter()
            .map(|t| format!("{}={}", t.label, t.value))
            .collect();
        format!("{}{{{}}}", tagged.extracted, labels.join(","))
    }

    #[test]
    fn prefixes_follow_envoys_rule() {
        assert_eq!(regex_prefix(r"^cluster\.((.*?)\.)"), Some("cluster"));
        assert_eq!(
            regex_prefix(r"^listener(?=\.).*?\.http\."),
            Some("listener")
        );
        assert_eq!(regex_prefix(r"^cluster(\.(.+);)"), None);
        assert_eq!(regex_prefix(r"_rq(_(\d{3}))$"), None);
        assert_eq!(regex_prefix(r"^(?:a|b)\.x"), None);
    }

    #[test]
    fn envoy_gateway_tags_sit_between_unprefixed_and_prefixed_defaults() {
        let specs = [
            regex("from_zone", r"\.zone(\.(([^\.]+)\.))"),
            regex(
                "socket_match_name",
                r"^cluster(\..+\.(.+))\.total_match_count$",
            ),
            regex("priority", r"circuit_breakers\.((.+?)\.).+"),
            TagSpecifier {
                name: "fixed".into(),
                value: TagValue::Fixed("fv".into()),
            },
        ];
        let cli = [("cli".to_string(), "val".to_string())];
        let producer = TagProducer::new(true, &cli, &specs).unwrap();
        // Measured on Envoy 1.40.
        assert_eq!(
            render(&producer, "cluster.backend.upstream_rq_200"),
            "cluster.upstream_rq{envoy_response_code=200,cli=val,fixed=fv,envoy_cluster_name=backend}"
        );
        assert_eq!(
            render(&producer, "cluster.backend.default.total_match_count"),
            "cluster.total_match_count{cli=val,socket_match_name=default,fixed=fv,envoy_cluster_name=backend}"
        );
        assert_eq!(
            render(&producer, "cluster.backend.circuit_breakers.high.cx_open"),
            "cluster.circuit_breakers.cx_open{cli=val,priority=high,fixed=fv,envoy_cluster_name=backend}"
        );
        assert_eq!(
            render(&producer, "cluster.b.zone.z1.z2.upstream_rq_total"),
            "cluster.zonez2.upstream_rq_total{cli=val,from_zone=z1,fixed=fv,envoy_cluster_name=b}"
        );
    }

    #[test]
    fn duplicates_and_missing_defaults_are_refused() {
        let dup = [regex("envoy.cluster_name", "^x(y)")];
        assert!(matches!(
            TagProducer::new(true, &[], &dup),
            Err(TagConfigError::Duplicate(_))
        ));
        // Without the defaults, an empty regex takes the default of that name.
        let default = [regex("envoy.cluster_name", "")];
        let producer = TagProducer::new(false, &[], &default).unwrap();
        assert_eq!(
            render(&producer, "cluster.b.upstream_rq_200"),
            "cluster.upstream_rq_200{envoy_cluster_name=b}"
        );
        let unknown = [regex("nothing", "")];
        assert!(matches!(
            TagProducer::new(false, &[], &unknown),
            Err(TagConfigError::NoDefault(_))
        ));
        let bad = [regex("bad", "(")];
        assert!(matches!(
            TagProducer::new(false, &[], &bad),
            Err(TagConfigError::BadRegex { .. })
        ));
    }

    #[test]
    fn istio_look_ahead_regex_works() {
        let specs = [regex(
            "http_conn_manager_listener_prefix",
            r"^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)",
        )];
        let producer = TagProducer::new(false, &[], &specs).unwrap();
        assert_eq!(
            render(&producer, "listener.0.0.0.0_15006.http.10.0.0.5_8080.downstream_rq_total"),
            "listener.0.0.0.0_15006.http.downstream_rq_total{http_conn_manager_listener_prefix=10.0.0.5_8080}"
        );
        assert_eq!(without("abcdef", vec![3..5, 1..2, 4..6]), "ac");
    }
}
