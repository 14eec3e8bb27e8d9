//! `--disable-extensions category/name,...`: a configuration that uses a disabled
//! extension fails to load, as in Envoy, where the extension's factory is then missing.
//! Extensions are found by the `@type` of their config (Envoy looks factories up by type
//! URL), so a filter with a custom name is caught too.

use crate::error::{ConfigError, Result};

/// Baton's extensions: (category, name, config type).
const EXTENSIONS: &[(&str, &str, &str)] = &[
    (
        "envoy.filters.network",
        "envoy.filters.network.http_connection_manager",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    ),
    (
        "envoy.filters.network",
        "envoy.filters.network.tcp_proxy",
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    ),
    (
        "envoy.filters.http",
        "envoy.filters.http.router",
        "envoy.extensions.filters.http.router.v3.Router",
    ),
    (
        "envoy.access_loggers",
        "envoy.access_loggers.file",
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
    ),
    (
        "envoy.access_loggers",
        "envoy.access_loggers.stdout",
        "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
    ),
    (
        "envoy.access_loggers",
        "envoy.access_loggers.stderr",
        "envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
    ),
    (
        "envoy.load_balancing_policies",
        "envoy.load_balancing_policies.round_robin",
        "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
    ),
    (
        "envoy.load_balancing_policies",
        "envoy.load_balancing_policies.least_request",
        "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
    ),
    (
        "envoy.load_balancing_policies",
        "envoy.load_balancing_policies.random",
        "envoy.extensions.load_balancing_policies.random.v3.Random",
    ),
    (
        "envoy.network.dns_resolver",
        "envoy.network.dns_resolver.cares",
        "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
    ),
];

/// Splits `--disable-extensions` entries into the config types to refuse and the entries
/// that name no Baton extension (the caller warns about those, as Envoy warns about
/// names it does not know).
pub fn resolve(entries: &[String]) -> (Vec<(&'static str, &'static str)>, Vec<String>) {
    let mut disabled = Vec::new();
    let mut unknown = Vec::new();
    for entry in entries {
        let found = entry.split_once('/').and_then(|(category, name)| {
            EXTENSIONS
                .iter()
                .find(|(c, n, _)| *c == category && *n == name)
        });
        match found {
            Some((_, name, type_name)) => disabled.push((*name, *type_name)),
            None => unknown.push(entry.clone()),
        }
    }
    (disabled, unknown)
}

/// Fails at the first config whose `@type` belongs to a disabled extension.
pub(crate) fn check(json: &serde_json::Value, disabled: &[(&str, &str)]) -> Result<()> {
    if disabled.is_empty() {
        return Ok(());
    }
    walk(json, "", disabled)
}

fn walk(json: &serde_json::Value, path: &str, disabled: &[(&str, &str)]) -> Result<()> {
    match json {
        serde_json::Value::Object(map) => {
            if let Some(type_url) = map.get("@type").and_then(|t| t.as_str()) {
                let type_name = type_url.rsplit('/').next().unwrap_or(type_url);
                if let Some((name, _)) = disabled.iter().find(|(_, t)| *t == type_name) {
                    return Err(ConfigError::at(
                        path,
                        format!(
                            "no implementation of '{type_name}' is available: extension '{name}' is disabled (--disable-extensions)"
                        ),
                    ));
                }
            }
            for (key, value) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(value, &child, disabled)?;
            }
            Ok(())
        }
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{index}]"), disabled)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
