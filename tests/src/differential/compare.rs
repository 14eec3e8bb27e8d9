//! Fixtures (Envoy's recorded outcomes, `fixtures/<area>.json`), the comparison of a live
//! run against them (SAME / DIFF with the first differing field), and the list of known
//! differences (`known_differences.yaml`: case name -> reason) that the CI test holds true
//! in both directions.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::run::Outcomes;
use super::spec::corpus_dir;

/// Errors reading or writing fixtures and the known list.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// I/O on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Bad JSON or YAML.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Path of an area's fixture file.
pub fn fixture_path(area: &str) -> PathBuf {
    corpus_dir().join("fixtures").join(format!("{area}.json"))
}

/// Writes an area's fixture (pretty JSON, keys sorted, so diffs in review are readable).
pub fn write_fixture(
    area: &str,
    recorded_with: &str,
    outcomes: &Outcomes,
) -> Result<(), FixtureError> {
    let path = fixture_path(area);
    let value = json!({ "area": area, "recorded_with": recorded_with, "cases": outcomes });
    let mut text = serde_json::to_string_pretty(&value).map_err(|e| FixtureError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    text.push('\n');
    std::fs::write(&path, text).map_err(|source| FixtureError::Io { path, source })
}

/// Reads an area's fixture; an absent file is an empty set of outcomes.
pub fn read_fixture(area: &str) -> Result<Outcomes, FixtureError> {
    let path = fixture_path(area);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcomes::new()),
        Err(source) => return Err(FixtureError::Io { path, source }),
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| FixtureError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(value["cases"]
        .as_object()
        .map(|cases| cases.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

/// The known differences: case name -> reason.
pub fn read_known_differences() -> Result<BTreeMap<String, String>, FixtureError> {
    let path = corpus_dir().join("known_differences.yaml");
    let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Io {
        path: path.clone(),
        source,
    })?;
    let known: Option<BTreeMap<String, String>> =
        serde_yaml_ng::from_str(&text).map_err(|e| FixtureError::Parse {
            path,
            message: e.to_string(),
        })?;
    Ok(known.unwrap_or_default())
}

fn short(value: Option<&Value>) -> String {
    match value {
        None => "(absent)".into(),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > 120 {
                format!("{}...", text.chars().take(120).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// Order in which an outcome's fields are compared, so the first difference reported is
/// the most telling one (a proxy that did not start before a missing field, a status
/// before a header); other keys (header names) come after, alphabetically.
fn field_rank(key: &str) -> usize {
    const ORDER: [&str; 14] = [
        "error",
        "responses",
        "status",
        "version",
        "read_error",
        "framing",
        "headers",
        "body",
        "closed",
        "echoed",
        "eof_after_half_close",
        "upstream",
        "method",
        "path",
    ];
    ORDER.iter().position(|k| *k == key).unwrap_or(ORDER.len())
}

/// Every field where `actual` differs from `expected`, most telling first, each as
/// `path: envoy X, got Y`.
pub fn differences(expected: &Value, actual: &Value) -> Vec<String> {
    fn walk(path: &str, expected: Option<&Value>, actual: Option<&Value>, out: &mut Vec<String>) {
        match (expected, actual) {
            (Some(Value::Object(e)), Some(Value::Object(a))) => {
                let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
                keys.sort_by_key(|k| (field_rank(k), k.as_str()));
                keys.dedup();
                for k in keys {
                    let sub = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&sub, e.get(k), a.get(k), out);
                }
            }
            (Some(Value::Array(e)), Some(Value::Array(a)))
                if !(e.iter().chain(a.iter())).all(|v| v.is_string()) || e.len() == a.len() =>
            {
                for i in 0..e.len().max(a.len()) {
                    walk(&format!("{path}[{i}]"), e.get(i), a.get(i), out);
                }
            }
            (e, a) if e == a => {}
            (e, a) => out.push(format!("{path}: envoy {}, got {}", short(e), short(a))),
        }
    }
    let mut out = Vec::new();
    walk("", Some(expected), Some(actual), &mut out);
    out
}

/// The first field where `actual` differs from `expected`, and how many more differ
/// (`path: envoy X, got Y (+2 more: a, b)`).
pub fn first_difference(expected: &Value, actual: &Value) -> Option<String> {
    let all = differences(expected, actual);
    let first = all.first()?.clone();
    if all.len() == 1 {
        return Some(first);
    }
    let more: Vec<&str> = all[1..]
        .iter()
        .map(|d| d.split(": envoy").next().unwrap_or(d))
        .collect();
    Some(format!(
        "{first} (+{} more: {})",
        more.len(),
        more.join(", ")
    ))
}

/// One case's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `<area>/<case>`.
    pub name: String,
    /// None when SAME; the first difference otherwise.
    pub difference: Option<String>,
    /// The reason when the case is listed as a known difference.
    pub known: Option<String>,
}

/// Compares `actual` against `expected` case by case (cases missing from the fixture are
/// DIFF "no fixture").
pub fn compare(
    expected: &Outcomes,
    actual: &Outcomes,
    known: &BTreeMap<String, String>,
) -> Vec<Verdict> {
    actual
        .iter()
        .map(|(name, outcome)| {
            let difference = match expected.get(name) {
                None => Some("no fixture (run `baton-differential record`)".to_string()),
                Some(fixture) => first_difference(fixture, outcome),
            };
            Verdict {
                name: name.clone(),
                difference,
                known: known.get(name).cloned(),
            }
        })
        .collect()
}

/// Problems that fail the CI check: unexpected DIFFs and known differences that now match.
pub fn problems(verdicts: &[Verdict]) -> Vec<String> {
    verdicts
        .iter()
        .filter_map(|v| match (&v.difference, &v.known) {
            (Some(diff), None) => Some(format!(
                "{}: DIFF not in known_differences.yaml: {diff}",
                v.name
            )),
            (None, Some(_)) => Some(format!(
                "{}: SAME but listed in known_differences.yaml (remove it)",
                v.name
            )),
            _ => None,
        })
        .collect()
}

/// One line per case and the score line.
pub fn report(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    for v in verdicts {
        match (&v.difference, &v.known) {
            (None, _) => out.push_str(&format!("SAME {}\n", v.name)),
            (Some(diff), Some(reason)) => {
                out.push_str(&format!("DIFF {} (known: {reason})\n     {diff}\n", v.name))
            }
            (Some(diff), None) => out.push_str(&format!("DIFF {}\n     {diff}\n", v.name)),
        }
    }
    let same = verdicts.iter().filter(|v| v.difference.is_none()).count();
    out.push_str(&format!("score: {same}/{} SAME\n", verdicts.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_reports_the_most_telling_field_and_counts_the_rest() {
        let envoy = json!({ "responses": [ { "status": 200, "headers": { "server": "envoy" } } ], "closed": false });
        let got = json!({ "responses": [ { "status": 404, "headers": {} } ], "closed": true });
        let diff = first_difference(&envoy, &got).expect("differs");
        assert!(
            diff.starts_with("responses[0].status: envoy 200, got 404 (+2 more: "),
            "{diff}"
        );
        assert_eq!(first_difference(&envoy, &envoy), None);
        let error = json!({ "error": "proxy did not start: x" });
        let diff = first_difference(&envoy, &error).expect("differs");
        assert!(diff.starts_with("error: envoy (absent)"), "{diff}");
    }

    #[test]
    fn problems_hold_the_known_list_true_both_ways() {
        let mut expected = Outcomes::new();
        let mut actual = Outcomes::new();
        for (name, e, a) in [
            ("a/same", 1, 1),
            ("a/known_diff", 1, 2),
            ("a/new_diff", 1, 2),
            ("a/stale", 1, 1),
        ] {
            expected.insert(name.into(), json!(e));
            actual.insert(name.into(), json!(a));
        }
        let known: BTreeMap<String, String> = [("a/known_diff", "why"), ("a/stale", "was")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let verdicts = compare(&expected, &actual, &known);
        let problems = problems(&verdicts);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("a/new_diff: DIFF not in"));
        assert!(problems[1].starts_with("a/stale: SAME but listed"));
        assert!(report(&verdicts).ends_with("score: 2/4 SAME\n"));
    }
}
