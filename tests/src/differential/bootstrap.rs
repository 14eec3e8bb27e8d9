//! Expands a [`ConfigSpec`] into a whole Envoy v3 bootstrap: admin on 127.0.0.1:0, one
//! listener `main` on 127.0.0.1:0 running the HTTP connection manager or tcp_proxy, one
//! STATIC cluster per upstream (named like the upstream), and the placeholders
//! `{{PORT_<upstream>}}`, `{{CLOSED_PORT}}` (a port nothing listens on) and `{{CERTS}}` (the
//! test certificates' directory) filled in. A string
//! that is exactly one placeholder becomes a number (for `port_value`).

use serde_json::{json, Map, Value};

use super::spec::ConfigSpec;
use crate::config::{HCM_TYPE, ROUTER_TYPE, TCP_PROXY_TYPE};

/// Placeholder for the directory of the corpus' test certificates (`tests/differential/certs`).
const CERTS: &str = "{{CERTS}}";

/// Placeholder values for one area run.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    /// `(name, port)` of each upstream.
    pub upstreams: Vec<(String, u16)>,
    /// A port with no listener behind it.
    pub closed_port: u16,
    /// The file a config's `access_log` writes to.
    pub access_log: Option<String>,
}

impl Placeholders {
    fn lookup(&self, key: &str) -> Option<u16> {
        if key == "CLOSED_PORT" {
            return Some(self.closed_port);
        }
        let name = key.strip_prefix("PORT_")?;
        self.upstreams
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
    }

    /// Replaces placeholders in every string of `value`.
    pub fn fill(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if text.contains(CERTS) {
                    *text = text.replace(CERTS, &super::tls::certs_dir().display().to_string());
                }
                if let Some(key) = text.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) {
                    if let Some(port) = self.lookup(key) {
                        *value = json!(port);
                        return;
                    }
                }
                let mut out = text.clone();
                while let Some(start) = out.find("{{") {
                    let Some(len) = out[start..].find("}}") else {
                        break;
                    };
                    let key = &out[start + 2..start + len];
                    let Some(port) = self.lookup(key) else {
                        break;
                    };
                    out.replace_range(start..start + len + 2, &port.to_string());
                }
                *text = out;
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.fill(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.fill(v)),
            _ => {}
        }
    }
}

/// Deep merge: objects merge key by key, anything else in `overlay` replaces.
pub fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (k, v) in overlay {
                merge(base.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

fn socket_address(port: u16) -> Value {
    json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } })
}

/// The bootstrap for `spec` with placeholders filled.
pub fn build(spec: &ConfigSpec, placeholders: &Placeholders) -> Value {
    let mut bootstrap = match &spec.raw {
        Some(raw) => raw.clone(),
        None => shorthand(spec, placeholders),
    };
    if let Some(extra) = &spec.bootstrap {
        merge(&mut bootstrap, extra);
    }
    placeholders.fill(&mut bootstrap);
    bootstrap
}

fn shorthand(spec: &ConfigSpec, placeholders: &Placeholders) -> Value {
    let filter = if let Some(tcp) = &spec.tcp_proxy {
        let mut config = json!({ "@type": TCP_PROXY_TYPE, "stat_prefix": "tcp" });
        merge(&mut config, tcp);
        add_access_log(&mut config, spec, placeholders);
        json!({ "name": "envoy.filters.network.tcp_proxy", "typed_config": config })
    } else {
        let mut config = json!({
            "@type": HCM_TYPE,
            "stat_prefix": "ingress_http",
            "codec_type": "AUTO",
            "http_filters": [
                { "name": "envoy.filters.http.router", "typed_config": { "@type": ROUTER_TYPE } }
            ],
        });
        if let Some(hcm) = &spec.hcm {
            merge(&mut config, hcm);
        }
        add_access_log(&mut config, spec, placeholders);
        json!({ "name": "envoy.filters.network.http_connection_manager", "typed_config": config })
    };
    let mut listener = json!({
        "name": "main",
        "address": socket_address(0),
        "filter_chains": [ { "filters": [ filter ] } ],
    });
    if let Some(socket) = &spec.transport_socket {
        listener["filter_chains"][0]["transport_socket"] = socket.clone();
    }
    if let Some(extra) = &spec.listener {
        merge(&mut listener, extra);
    }
    let mut clusters: Vec<Value> = placeholders
        .upstreams
        .iter()
        .map(|(name, port)| {
            let mut cluster = json!({
                "name": name,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [ { "lb_endpoints": [ { "endpoint": { "address": socket_address(*port) } } ] } ],
                },
            });
            if let Some(extra) = &spec.cluster {
                merge(&mut cluster, extra);
            }
            cluster
        })
        .collect();
    clusters.extend(spec.extra_clusters.iter().cloned());
    let mut root = Map::new();
    root.insert("admin".into(), json!({ "address": socket_address(0) }));
    root.insert(
        "static_resources".into(),
        json!({ "listeners": [ listener ], "clusters": clusters }),
    );
    Value::Object(root)
}

/// The spec's `access_log` as a file access logger on `filter_config`.
fn add_access_log(filter_config: &mut Value, spec: &ConfigSpec, placeholders: &Placeholders) {
    let (Some(format), Some(path)) = (&spec.access_log, &placeholders.access_log) else {
        return;
    };
    let log_format = match format {
        Value::String(text) => json!({ "text_format_source": { "inline_string": text } }),
        Value::Object(fields) if fields.contains_key("log_format") => fields["log_format"].clone(),
        other => json!({ "json_format": other }),
    };
    let mut logger = json!({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path,
            "log_format": log_format,
        },
    });
    if let Some(filter) = format.get("filter") {
        logger["filter"] = filter.clone();
    }
    filter_config["access_log"] = json!([logger]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_fill_numbers_and_text() {
        let placeholders = Placeholders {
            upstreams: vec![("backend".into(), 40001)],
            closed_port: 40002,
            access_log: None,
        };
        let mut value = json!({
            "port_value": "{{PORT_backend}}",
            "text": "a {{CLOSED_PORT}} b {{PORT_backend}}",
            "unknown": "{{PORT_nope}}",
        });
        placeholders.fill(&mut value);
        assert_eq!(
            value,
            json!({ "port_value": 40001, "text": "a 40002 b 40001", "unknown": "{{PORT_nope}}" })
        );
    }
}
