//! `transport_socket_matcher` on a cluster: the xDS matcher tree over endpoint and
//! locality metadata whose actions name `transport_socket_matches` entries. Inputs over
//! the downstream connection (filter state, server name, ALPN, addresses) and custom
//! matchers are refused by name.

use std::collections::HashMap;

use baton_proto::pb::envoy::extensions::matching::common_inputs::transport_socket::v3 as inputs_pb;
use baton_proto::pb::envoy::r#type::matcher::v3 as envoy_matcher_pb;
use baton_proto::pb::xds::core::v3::TypedExtensionConfig;
use baton_proto::pb::xds::r#type::matcher::v3 as matcher_pb;

use super::{decode_any, string_matcher};
use crate::error::{ConfigError, Result};
use crate::model;

const ENDPOINT_INPUT: &str =
    "envoy.extensions.matching.common_inputs.transport_socket.v3.EndpointMetadataInput";
const LOCALITY_INPUT: &str =
    "envoy.extensions.matching.common_inputs.transport_socket.v3.LocalityMetadataInput";
const NAME_ACTION: &str =
    "envoy.extensions.matching.common_inputs.transport_socket.v3.TransportSocketNameAction";

/// The metadata filter an input reads when `filter` is empty.
const DEFAULT_FILTER: &str = "envoy.lb";

/// `transport_socket_matcher` at `path`; `names` are the `transport_socket_matches`
/// names in order (Envoy requires them unique once a matcher is set).
pub(crate) fn translate(
    m: &matcher_pb::Matcher,
    names: &[String],
    matches_path: &str,
    path: &str,
) -> Result<model::SocketMatcher> {
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(ConfigError::at(
                format!("{matches_path}[{i}].name"),
                format!(
                    "Duplicate transport socket name '{name}' found in transport_socket_matches"
                ),
            ));
        }
    }
    matcher(m, names, path)
}

fn matcher(m: &matcher_pb::Matcher, names: &[String], path: &str) -> Result<model::SocketMatcher> {
    use matcher_pb::matcher::matcher_tree::TreeType;
    use matcher_pb::matcher::MatcherType;
    let on_no_match = m
        .on_no_match
        .as_ref()
        .map(|o| on_match(o, names, &format!("{path}.on_no_match")).map(Box::new))
        .transpose()?;
    Ok(match &m.matcher_type {
        None => model::SocketMatcher::OnNoMatch(on_no_match),
        Some(MatcherType::MatcherList(list)) => {
            let list_path = format!("{path}.matcher_list.matchers");
            if list.matchers.is_empty() {
                return Err(ConfigError::at(
                    list_path,
                    "value must contain at least 1 item(s)",
                ));
            }
            let matchers = list
                .matchers
                .iter()
                .enumerate()
                .map(|(i, fm)| {
                    let fm_path = format!("{list_path}[{i}]");
                    let p = fm.predicate.as_ref().ok_or_else(|| {
                        ConfigError::at(format!("{fm_path}.predicate"), "is required")
                    })?;
                    let o = fm.on_match.as_ref().ok_or_else(|| {
                        ConfigError::at(format!("{fm_path}.on_match"), "is required")
                    })?;
                    Ok((
                        predicate(p, &format!("{fm_path}.predicate"))?,
                        on_match(o, names, &format!("{fm_path}.on_match"))?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            model::SocketMatcher::List {
                matchers,
                on_no_match,
            }
        }
        Some(MatcherType::MatcherTree(tree)) => {
            let tree_path = format!("{path}.matcher_tree");
            let input = input(tree.input.as_ref(), &format!("{tree_path}.input"))?;
            let (map, map_path) = match &tree.tree_type {
                Some(TreeType::ExactMatchMap(map)) => (map, format!("{tree_path}.exact_match_map")),
                Some(TreeType::PrefixMatchMap(map)) => {
                    (map, format!("{tree_path}.prefix_match_map"))
                }
                Some(TreeType::CustomMatch(_)) => {
                    return Err(ConfigError::unsupported(format!(
                        "{tree_path}.custom_match"
                    )))
                }
                None => {
                    return Err(ConfigError::at(
                        tree_path,
                        "one of exact_match_map, prefix_match_map is required",
                    ))
                }
            };
            if map.map.is_empty() {
                return Err(ConfigError::at(
                    format!("{map_path}.map"),
                    "value must contain at least 1 pair(s)",
                ));
            }
            let mut entries = map
                .map
                .iter()
                .map(|(key, o)| {
                    Ok((
                        key.clone(),
                        on_match(o, names, &format!("{map_path}.map[\"{key}\"]"))?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let map = match &tree.tree_type {
                Some(TreeType::PrefixMatchMap(_)) => {
                    entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
                    model::SocketTreeMap::Prefix(entries)
                }
                _ => model::SocketTreeMap::Exact(entries.into_iter().collect::<HashMap<_, _>>()),
            };
            model::SocketMatcher::Tree {
                input,
                map,
                on_no_match,
            }
        }
    })
}

fn on_match(
    o: &matcher_pb::matcher::OnMatch,
    names: &[String],
    path: &str,
) -> Result<model::SocketOnMatch> {
    use matcher_pb::matcher::on_match::OnMatch;
    if o.keep_matching {
        return Err(ConfigError::unsupported(format!("{path}.keep_matching")));
    }
    match &o.on_match {
        Some(OnMatch::Matcher(m)) => Ok(model::SocketOnMatch::Matcher(Box::new(matcher(
            m,
            names,
            &format!("{path}.matcher"),
        )?))),
        Some(OnMatch::Action(action)) => {
            let action_path = format!("{path}.action");
            let config = typed_config(action, &action_path)?;
            if type_name(config) != NAME_ACTION {
                return Err(ConfigError::at(
                    format!("{action_path}.typed_config"),
                    format!(
                        "action '{}' ('{}') is not a transport socket action (supported: {NAME_ACTION})",
                        action.name,
                        type_name(config)
                    ),
                ));
            }
            let named: inputs_pb::TransportSocketNameAction =
                decode_any(config, NAME_ACTION, &format!("{action_path}.typed_config"))?;
            // An unknown name is no config error in Envoy: the endpoint gets the cluster's
            // transport_socket.
            let index = names.iter().position(|n| *n == named.name);
            if index.is_none() {
                tracing::warn!(
                    name = %named.name,
                    path = %action_path,
                    "transport socket matcher names no transport_socket_matches entry; the cluster's transport_socket is used"
                );
            }
            Ok(model::SocketOnMatch::Socket(index))
        }
        None => Err(ConfigError::at(path, "one of matcher, action is required")),
    }
}

fn predicate(
    p: &matcher_pb::matcher::matcher_list::Predicate,
    path: &str,
) -> Result<model::SocketPredicate> {
    use matcher_pb::matcher::matcher_list::predicate::single_predicate::Matcher;
    use matcher_pb::matcher::matcher_list::predicate::MatchType;
    let list = |l: &matcher_pb::matcher::matcher_list::predicate::PredicateList, field: &str| {
        let list_path = format!("{path}.{field}.predicate");
        if l.predicate.len() < 2 {
            return Err(ConfigError::at(
                list_path,
                "value must contain at least 2 item(s)",
            ));
        }
        l.predicate
            .iter()
            .enumerate()
            .map(|(i, p)| predicate(p, &format!("{list_path}[{i}]")))
            .collect::<Result<Vec<_>>>()
    };
    match &p.match_type {
        Some(MatchType::SinglePredicate(single)) => {
            let single_path = format!("{path}.single_predicate");
            let input = input(single.input.as_ref(), &format!("{single_path}.input"))?;
            let value = match &single.matcher {
                Some(Matcher::ValueMatch(m)) => string_matcher(
                    &envoy_string_matcher(m),
                    &format!("{single_path}.value_match"),
                )?,
                Some(Matcher::CustomMatch(_)) => {
                    return Err(ConfigError::unsupported(format!(
                        "{single_path}.custom_match"
                    )))
                }
                None => {
                    return Err(ConfigError::at(
                        single_path,
                        "one of value_match, custom_match is required",
                    ))
                }
            };
            Ok(model::SocketPredicate::Single(input, value))
        }
        Some(MatchType::AndMatcher(l)) => Ok(model::SocketPredicate::And(list(l, "and_matcher")?)),
        Some(MatchType::OrMatcher(l)) => Ok(model::SocketPredicate::Or(list(l, "or_matcher")?)),
        Some(MatchType::NotMatcher(p)) => Ok(model::SocketPredicate::Not(Box::new(predicate(
            p,
            &format!("{path}.not_matcher"),
        )?))),
        None => Err(ConfigError::at(
            path,
            "one of single_predicate, or_matcher, and_matcher, not_matcher is required",
        )),
    }
}

/// The xDS string matcher in the shape of Envoy's own, which translation already reads
/// (the regex engine field aside, they are the same).
fn envoy_string_matcher(m: &matcher_pb::StringMatcher) -> envoy_matcher_pb::StringMatcher {
    use envoy_matcher_pb::string_matcher::MatchPattern as Envoy;
    use matcher_pb::string_matcher::MatchPattern as Xds;
    let match_pattern = m.match_pattern.as_ref().map(|p| match p {
        Xds::Exact(s) => Envoy::Exact(s.clone()),
        Xds::Prefix(s) => Envoy::Prefix(s.clone()),
        Xds::Suffix(s) => Envoy::Suffix(s.clone()),
        Xds::Contains(s) => Envoy::Contains(s.clone()),
        Xds::SafeRegex(r) => Envoy::SafeRegex(envoy_matcher_pb::RegexMatcher {
            regex: r.regex.clone(),
            ..Default::default()
        }),
        Xds::Custom(c) => Envoy::Custom(c.clone()),
    });
    envoy_matcher_pb::StringMatcher {
        match_pattern,
        ignore_case: m.ignore_case,
    }
}

fn input(i: Option<&TypedExtensionConfig>, path: &str) -> Result<model::MetadataInput> {
    let i = i.ok_or_else(|| ConfigError::at(path, "is required"))?;
    let config = typed_config(i, path)?;
    let config_path = format!("{path}.typed_config");
    let (source, filter, path_keys) = match type_name(config) {
        ENDPOINT_INPUT => {
            let m: inputs_pb::EndpointMetadataInput =
                decode_any(config, ENDPOINT_INPUT, &config_path)?;
            let keys = m.path.into_iter().map(|s| {
                s.segment.map(|s| match s {
                    inputs_pb::endpoint_metadata_input::path_segment::Segment::Key(k) => k,
                })
            });
            (
                model::MetadataSource::Endpoint,
                m.filter,
                keys.collect::<Vec<_>>(),
            )
        }
        LOCALITY_INPUT => {
            let m: inputs_pb::LocalityMetadataInput =
                decode_any(config, LOCALITY_INPUT, &config_path)?;
            let keys = m.path.into_iter().map(|s| {
                s.segment.map(|s| match s {
                    inputs_pb::locality_metadata_input::path_segment::Segment::Key(k) => k,
                })
            });
            (
                model::MetadataSource::Locality,
                m.filter,
                keys.collect::<Vec<_>>(),
            )
        }
        other => {
            return Err(ConfigError::at(
                config_path,
                format!(
                    "transport socket matcher input '{}' ('{other}') is not supported by Baton yet \
                     (supported: envoy.matching.inputs.endpoint_metadata, \
                     envoy.matching.inputs.locality_metadata)",
                    i.name
                ),
            ))
        }
    };
    let path_keys = path_keys
        .into_iter()
        .enumerate()
        .map(|(j, k)| {
            k.ok_or_else(|| ConfigError::at(format!("{config_path}.path[{j}]"), "key is required"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(model::MetadataInput {
        source,
        filter: if filter.is_empty() {
            DEFAULT_FILTER.to_string()
        } else {
            filter
        },
        path: path_keys,
    })
}

fn typed_config<'a>(e: &'a TypedExtensionConfig, path: &str) -> Result<&'a prost_types::Any> {
    e.typed_config
        .as_ref()
        .ok_or_else(|| ConfigError::at(format!("{path}.typed_config"), "is required"))
}

fn type_name(any: &prost_types::Any) -> &str {
    any.type_url.rsplit('/').next().unwrap_or_default()
}
