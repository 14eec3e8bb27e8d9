//! Rejects fields Baton parses but does not implement, so a config never silently loses
//! behaviour. Walks the bootstrap or one xDS resource as a `DynamicMessage` (including
//! `typed_config` Any contents) against a per-message allowlist of the fields translation
//! honours.
//!
//! Messages absent from the table are leaves whose every field is honoured (durations,
//! wrappers, matchers, metadata, locality).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value};

use crate::error::{ConfigError, Result};
use crate::load::pool;

mod allowed;
use allowed::ALLOWED;

/// Messages whose contents translation checks itself: a `load_balancing_policy` lists
/// alternatives of which only the chosen one must be supported (Envoy skips types it does
/// not know), so translation walks that one with [`check_any`].
pub(crate) const CHECKED_BY_TRANSLATION: &[&str] = &["envoy.config.cluster.v3.LoadBalancingPolicy"];

pub(crate) fn allowed_fields(message: &str) -> Option<&'static [&'static str]> {
    // A map, not a scan of ALLOWED: the walk asks once per message of every resource.
    static BY_NAME: OnceLock<HashMap<&'static str, &'static [&'static str]>> = OnceLock::new();
    BY_NAME
        .get_or_init(|| ALLOWED.iter().copied().collect())
        .get(message)
        .copied()
}

/// Fails on the first set field that Baton does not implement, with its path relative
/// to `message` (a whole bootstrap, or one xDS resource).
pub(crate) fn check(message: &DynamicMessage) -> Result<()> {
    walk(message, &mut String::new())
}

/// [`check`] for the contents of one Any, reporting paths under `path`.
pub(crate) fn check_any(any: &prost_types::Any, path: &str) -> Result<()> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let Some(descriptor) = pool().get_message_by_name(name) else {
        return Err(ConfigError::at(
            join(path, "@type"),
            crate::typed_struct::unknown_type_message(&any.type_url, &any.value),
        ));
    };
    let inner = DynamicMessage::decode(descriptor, any.value.as_slice())
        .map_err(|e| ConfigError::at(path, format!("cannot decode '{}': {e}", any.type_url)))?;
    walk(&inner, &mut path.to_string())
}

pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Appends `.field` (or `field` at the root) to the path being walked.
fn push_field(path: &mut String, field: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(field);
}

/// Walks `message` at `path`. The path is one buffer extended and truncated on the way
/// (no string per field): a 10,000-route RDS update walks about a million fields.
fn walk(message: &DynamicMessage, path: &mut String) -> Result<()> {
    let descriptor = message.descriptor();
    if descriptor.full_name() == "google.protobuf.Any" {
        return walk_any(message, path);
    }
    if CHECKED_BY_TRANSLATION.contains(&descriptor.full_name()) {
        return Ok(());
    }
    let allowed = allowed_fields(descriptor.full_name());
    let optional = skips_unknown_config(message);
    for (field, value) in message.fields() {
        let parent = path.len();
        push_field(path, field.name());
        if let Some(allowed) = allowed {
            if !allowed.contains(&field.name()) {
                return Err(ConfigError::unsupported(path.clone()));
            }
        }
        if optional && is_unknown_any(value) {
            // Translation skips the optional entry whose config Baton cannot read.
            path.truncate(parent);
            continue;
        }
        walk_value(value, path)?;
        path.truncate(parent);
    }
    Ok(())
}

/// An optional `http_filters[]` entry, or a `FilterConfig` that is optional or disabled:
/// an Any inside it of a type Baton does not know is skipped, not refused (the YAML path
/// drops such configs before parsing; protos received whole still carry them).
fn skips_unknown_config(message: &DynamicMessage) -> bool {
    let flag = |name: &str| {
        message
            .get_field_by_name(name)
            .is_some_and(|v| v.as_bool() == Some(true))
    };
    match message.descriptor().full_name() {
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter" => {
            flag("is_optional")
        }
        "envoy.config.route.v3.FilterConfig" => flag("is_optional") || flag("disabled"),
        _ => false,
    }
}

fn is_unknown_any(value: &Value) -> bool {
    let Value::Message(any) = value else {
        return false;
    };
    if any.descriptor().full_name() != "google.protobuf.Any" {
        return false;
    }
    let type_url = any
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let name = type_url.rsplit('/').next().unwrap_or_default();
    pool().get_message_by_name(name).is_none()
}

fn walk_value(value: &Value, path: &mut String) -> Result<()> {
    match value {
        Value::Message(message) => walk(message, path),
        Value::List(items) => {
            let parent = path.len();
            for (i, item) in items.iter().enumerate() {
                let _ = write!(path, "[{i}]");
                walk_value(item, path)?;
                path.truncate(parent);
            }
            Ok(())
        }
        Value::Map(entries) => {
            let parent = path.len();
            for (key, item) in entries {
                let _ = match key {
                    MapKey::String(s) => write!(path, "[\"{s}\"]"),
                    other => write!(path, "[\"{other:?}\"]"),
                };
                walk_value(item, path)?;
                path.truncate(parent);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Any contents: decode through the pool and keep walking (the path stays the Any's own,
/// matching how the YAML nests the message under `typed_config`).
fn walk_any(any: &DynamicMessage, path: &mut String) -> Result<()> {
    let type_url = any
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let bytes = any
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let name = type_url.rsplit('/').next().unwrap_or_default();
    let Some(descriptor) = pool().get_message_by_name(name) else {
        return Err(ConfigError::at(
            join(path, "@type"),
            crate::typed_struct::unknown_type_message(&type_url, &bytes),
        ));
    };
    let inner = DynamicMessage::decode(descriptor, bytes.as_ref())
        .map_err(|e| ConfigError::at(path.as_str(), format!("cannot decode '{type_url}': {e}")))?;
    walk(&inner, path)
}
