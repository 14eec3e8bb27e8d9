//! Optional extensions whose config Baton cannot even parse. An `http_filters[]` entry
//! with `is_optional: true`, or a `typed_per_filter_config` `FilterConfig` that is
//! `is_optional` or `disabled`, may name a config type Baton has no proto for (a filter
//! only Envoy implements, or an `xds.type.v3.TypedStruct`). The proto3 JSON mapping
//! would refuse the whole bootstrap over it, while Envoy skips such a filter; so this
//! pass removes those configs from the JSON first, and translation then skips the entry
//! as it skips any optional filter Baton does not implement.

use serde_json::Value;

use crate::json_tree::JsonView;
use crate::load::pool;

/// The per-route wrapper that carries `is_optional` and `disabled`.
pub(crate) const FILTER_CONFIG_TYPE: &str = "envoy.config.route.v3.FilterConfig";

/// Removes the unparseable configs of optional filters anywhere in `json`.
pub(crate) fn drop_unparseable_optional_configs(json: &mut Value) {
    match json {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "http_filters" | "httpFilters" => {
                        if let Value::Array(filters) = value {
                            filters.iter_mut().for_each(optional_http_filter);
                        }
                    }
                    "typed_per_filter_config" | "typedPerFilterConfig" => {
                        if let Value::Object(entries) = value {
                            entries.values_mut().for_each(optional_route_config);
                        }
                    }
                    _ => {}
                }
                drop_unparseable_optional_configs(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_unparseable_optional_configs),
        _ => {}
    }
}

/// Whether [`drop_unparseable_optional_configs`] might change `json`: an optional
/// `http_filters[]` entry or an optional or disabled `FilterConfig` anywhere (whether
/// its config is one Baton can parse is not looked at). A document without one needs
/// no pass. (Loading asks [`crate::v2_hints::passes_with_nothing_optional`], which
/// answers this in the v2-hint walk; tests compare the two.)
#[cfg(test)]
pub(crate) fn may_drop<J: JsonView>(json: &J) -> bool {
    if let Some(members) = json.members() {
        for (key, value) in members {
            if may_drop_member(key, value) || may_drop(value) {
                return true;
            }
        }
    } else if let Some(items) = json.as_array() {
        return items.iter().any(may_drop);
    }
    false
}

/// Whether the member `key` of an object, as it stands (not what is inside its value's
/// members), holds what [`may_drop`] looks for: an optional `http_filters[]` entry or an
/// optional or disabled `FilterConfig`.
pub(crate) fn may_drop_member<J: JsonView>(key: &str, value: &J) -> bool {
    match key {
        "http_filters" | "httpFilters" => value
            .as_array()
            .is_some_and(|filters| filters.iter().any(|f| flag(f, "is_optional", "isOptional"))),
        "typed_per_filter_config" | "typedPerFilterConfig" => {
            value.members().is_some_and(|mut entries| {
                entries.any(|(_, entry)| {
                    type_name(entry.get("@type")) == Some(FILTER_CONFIG_TYPE)
                        && (flag(entry, "is_optional", "isOptional")
                            || flag(entry, "disabled", "disabled"))
                })
            })
        }
        _ => false,
    }
}

/// `http_filters[]`: `is_optional` with an unknown `typed_config`.
fn optional_http_filter(filter: &mut Value) {
    if !flag(&*filter, "is_optional", "isOptional") {
        return;
    }
    let Value::Object(filter) = filter else {
        return;
    };
    for key in ["typed_config", "typedConfig"] {
        if filter.get(key).is_some_and(|config| !parseable(config)) {
            filter.remove(key);
        }
    }
}

/// `typed_per_filter_config` values: a `FilterConfig` that is optional or disabled, with
/// an unknown `config`.
fn optional_route_config(entry: &mut Value) {
    if type_name(entry.get("@type")) != Some(FILTER_CONFIG_TYPE) {
        return;
    }
    if !flag(&*entry, "is_optional", "isOptional") && !flag(&*entry, "disabled", "disabled") {
        return;
    }
    let Value::Object(entry) = entry else {
        return;
    };
    if entry.get("config").is_some_and(|config| !parseable(config)) {
        entry.remove("config");
    }
}

fn flag<J: JsonView>(object: &J, name: &str, json_name: &str) -> bool {
    [name, json_name]
        .iter()
        .any(|k| object.get(k).and_then(J::as_bool) == Some(true))
}

fn type_name<J: JsonView>(type_url: Option<&J>) -> Option<&str> {
    type_url
        .and_then(J::as_str)
        .map(|url| url.rsplit('/').next().unwrap_or_default())
}

/// An Any in JSON form whose `@type` Baton has a proto for (one without `@type` is left
/// for the JSON mapping to report).
fn parseable(any: &Value) -> bool {
    let Value::Object(any) = any else {
        return true;
    };
    match type_name(any.get("@type")) {
        Some(name) => pool().get_message_by_name(name).is_some(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_optional_unknown_configs_are_dropped() {
        let mut json = json!({ "hcm": { "http_filters": [
            { "name": "a", "is_optional": true, "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors" } },
            { "name": "b", "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors" } },
            { "name": "c", "isOptional": true, "typedConfig": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } },
        ] }, "route": { "typed_per_filter_config": {
            "x": { "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "is_optional": true, "config": { "@type": "type.googleapis.com/xds.type.v3.TypedStruct" } },
            "y": { "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": { "@type": "type.googleapis.com/xds.type.v3.TypedStruct" } },
            "z": { "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": true, "config": { "@type": "type.googleapis.com/my.Filter" } },
        } } });
        assert!(may_drop(&json));
        let text = json.to_string();
        let tree = crate::yaml_scan::parse_tree(&text).expect("scanned");
        assert!(may_drop(&tree));
        drop_unparseable_optional_configs(&mut json);
        let filters = &json["hcm"]["http_filters"];
        assert!(filters[0].get("typed_config").is_none());
        assert!(filters[1].get("typed_config").is_some());
        assert!(filters[2].get("typedConfig").is_some());
        let per_route = &json["route"]["typed_per_filter_config"];
        assert!(per_route["x"].get("config").is_none());
        assert!(per_route["y"].get("config").is_some());
        assert!(per_route["z"].get("config").is_none());
    }

    #[test]
    fn documents_without_optional_configs_need_no_pass() {
        for json in [
            json!({ "hcm": { "http_filters": [{ "name": "a", "is_optional": false, "typed_config": {} }] } }),
            json!({ "route": { "typed_per_filter_config": { "x": { "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {} } } } }),
            json!({ "is_optional": true, "disabled": true }),
        ] {
            assert!(!may_drop(&json), "{json}");
        }
        let nested = json!({ "a": [{ "b": { "httpFilters": [{ "isOptional": true }] } }] });
        assert!(may_drop(&nested));
    }
}
