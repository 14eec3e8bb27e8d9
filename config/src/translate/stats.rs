//! `stats_config`: default tags on or off and custom `stats_tags` (regexes and fixed
//! values), checked here as Envoy checks them at startup (each regex compiles, no tag
//! name twice); the proxy builds its tag producer from the result. And the
//! `stats_matcher` that decides which stats are exported.

use baton_proto::pb::envoy::config::metrics::v3 as metrics_pb;
use baton_proto::pb::envoy::r#type::matcher::v3 as matcher_pb;
use baton_shared_stats::render::tags::{TagConfigError, TagProducer, TagSpecifier, TagValue};

use crate::error::{ConfigError, Result};
use crate::model;

/// Translates `stats_config` (absent: Envoy's defaults).
pub(crate) fn config(
    proto: Option<&metrics_pb::StatsConfig>,
    path: &str,
) -> Result<model::StatsConfig> {
    let Some(proto) = proto else {
        return Ok(model::StatsConfig::default());
    };
    let use_all_default_tags = proto.use_all_default_tags.unwrap_or(true);
    let mut stats_tags = Vec::with_capacity(proto.stats_tags.len());
    for (i, tag) in proto.stats_tags.iter().enumerate() {
        let tag_path = format!("{path}.stats_tags[{i}]");
        if tag.tag_name.is_empty() {
            return Err(ConfigError::at(
                format!("{tag_path}.tag_name"),
                "value length must be at least 1 characters",
            ));
        }
        let value = match &tag.tag_value {
            Some(metrics_pb::tag_specifier::TagValue::FixedValue(v)) => TagValue::Fixed(v.clone()),
            Some(metrics_pb::tag_specifier::TagValue::Regex(r)) => {
                if r.len() > 1024 {
                    return Err(ConfigError::at(
                        format!("{tag_path}.regex"),
                        "value length must be at most 1024 bytes",
                    ));
                }
                TagValue::Regex(r.clone())
            }
            None => TagValue::Regex(String::new()),
        };
        stats_tags.push(TagSpecifier {
            name: tag.tag_name.clone(),
            value,
        });
    }
    // Built once here only to report what Envoy refuses at startup; the command line's
    // `--stats-tag` names are checked against these when the proxy builds its own.
    if let Err(e) = TagProducer::new(use_all_default_tags, &[], &stats_tags) {
        let index = match &e {
            TagConfigError::Duplicate(name)
            | TagConfigError::NoDefault(name)
            | TagConfigError::BadRegex { name, .. } => stats_tags
                .iter()
                .rposition(|t| &t.name == name)
                .unwrap_or(0),
        };
        return Err(ConfigError::at(format!("{path}.stats_tags[{index}]"), e));
    }
    let matcher = match &proto.stats_matcher {
        Some(m) => matcher(m, &format!("{path}.stats_matcher"))?,
        None => model::StatsMatcher::AcceptAll,
    };
    Ok(model::StatsConfig {
        use_all_default_tags,
        stats_tags,
        matcher,
    })
}

/// `stats_matcher`: `reject_all` or a list of StringMatchers (at least one, as Envoy's
/// validation requires).
fn matcher(proto: &metrics_pb::StatsMatcher, path: &str) -> Result<model::StatsMatcher> {
    use metrics_pb::stats_matcher::StatsMatcher as Kind;
    let list = |list: &matcher_pb::ListStringMatcher, path: String| {
        if list.patterns.is_empty() {
            return Err(ConfigError::at(
                format!("{path}.patterns"),
                "value must contain at least 1 item(s)",
            ));
        }
        list.patterns
            .iter()
            .enumerate()
            .map(|(i, p)| super::string_matcher(p, &format!("{path}.patterns[{i}]")))
            .collect::<Result<Vec<_>>>()
    };
    Ok(match &proto.stats_matcher {
        Some(Kind::RejectAll(true)) => model::StatsMatcher::RejectAll,
        Some(Kind::RejectAll(false)) => model::StatsMatcher::AcceptAll,
        Some(Kind::ExclusionList(l)) => {
            model::StatsMatcher::Exclusion(list(l, format!("{path}.exclusion_list"))?)
        }
        Some(Kind::InclusionList(l)) => {
            model::StatsMatcher::Inclusion(list(l, format!("{path}.inclusion_list"))?)
        }
        None => {
            return Err(ConfigError::at(
                path,
                "one of reject_all, exclusion_list, inclusion_list is required",
            ))
        }
    })
}
