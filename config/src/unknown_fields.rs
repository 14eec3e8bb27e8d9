//! `--allow-unknown-static-fields`: a bootstrap with fields the v3 protos do not know is
//! loaded without them, each dropped field reported so the proxy can warn, as Envoy does.
//! The strict JSON mapping names one unknown field per attempt; it is removed from the
//! JSON by its path and the conversion retried, a bounded number of times.

use prost_reflect::DynamicMessage;

use crate::error::{ConfigError, Result};
use crate::load;
use baton_proto::pb::envoy::config::bootstrap::v3::Bootstrap;

/// More unknown fields than this in one bootstrap is treated as a broken document.
const MAX_DROPPED: usize = 10_000;

/// After `first` failed the conversion: while the failure is an unknown field that can be
/// found in `json`, removes it, records its path in `dropped` and converts again.
pub(crate) fn drop_and_retry(
    json: &mut serde_json::Value,
    first: ConfigError,
    dropped: &mut Vec<String>,
) -> Result<(Bootstrap, Option<DynamicMessage>)> {
    let mut err = first;
    while dropped.len() < MAX_DROPPED {
        if err.message != "unknown field" || !remove_path(json, &err.path) {
            return Err(err);
        }
        dropped.push(err.path.clone());
        match load::to_bootstrap(json) {
            Ok(done) => return Ok(done),
            Err(next) => err = next,
        }
    }
    Err(err)
}

/// Removes the field at a dotted path such as `static_resources.clusters[0].bogus`;
/// false when the path does not lead to an object holding that key.
fn remove_path(json: &mut serde_json::Value, path: &str) -> bool {
    let Some((parent_path, key)) = path.rsplit_once('.').or(Some(("", path))) else {
        return false;
    };
    let mut node = json;
    for part in parent_path.split('.').filter(|p| !p.is_empty()) {
        let (name, indices) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        node = match node.get_mut(name) {
            Some(next) => next,
            None => return false,
        };
        for index in indices
            .split(['[', ']'])
            .filter(|i| !i.is_empty())
            .map(str::parse::<usize>)
        {
            node = match index.ok().and_then(|i| node.get_mut(i)) {
                Some(next) => next,
                None => return false,
            };
        }
    }
    node.as_object_mut()
        .is_some_and(|object| object.remove(key).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_nested_fields_by_path() {
        let mut json = serde_json::json!({"a": {"b": [{"c": 1, "d": 2}]}, "top": 1});
        assert!(remove_path(&mut json, "a.b[0].c"));
        assert!(remove_path(&mut json, "top"));
        assert!(!remove_path(&mut json, "a.b[3].d"));
        assert!(!remove_path(&mut json, "a.x.d"));
        assert_eq!(json, serde_json::json!({"a": {"b": [{"d": 2}]}}));
    }
}
