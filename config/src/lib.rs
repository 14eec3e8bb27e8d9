//! Bootstrap configuration: loads an Envoy v3 bootstrap (YAML or JSON) into the vendored
//! proto messages through the proto3 JSON mapping, validates what Baton relies on with
//! errors that name the field path and file line, and translates the protos into the
//! immutable runtime model in [`model`].
//!
//! Public surface (the contract the proxy builds on):
//! - [`load_file`] / [`load_yaml_str`] / [`load`]: text -> validated [`Loaded`] (proto + model).
//! - [`ConfigError`]: `file:line: field.path: message`.
//! - [`config_dump`]: the proto bootstrap rendered as Envoy-style JSON for `/config_dump`
//!   (secrets redacted as Envoy does).
//! - [`resource`]: one xDS resource (Cluster, Listener, RouteConfiguration,
//!   ClusterLoadAssignment) -> model, with the same checks as the bootstrap.

pub mod crypto;
pub mod disabled;
mod error;
mod json_tree;
mod json_wire;
mod load;
mod locate;
pub mod model;
mod optional;
mod redact;
pub mod resource;
mod static_descriptors;
mod supported;
#[cfg(test)]
mod test_files;
mod transcode;
mod translate;
mod typed_struct;
mod unknown_fields;
mod v2_hints;
mod wire_walk;
mod yaml_json;
mod yaml_scan;
mod yaml_wire;

use std::path::Path;

pub use baton_proto::pb::envoy::config::bootstrap::v3::Bootstrap;
pub use error::ConfigError;
pub use load::release_descriptor_pool;

/// SDS secrets: [`sds::read_certificate`] re-reads a certificate's file;
/// [`sds::decode_secret`] checks one a control plane sent.
pub mod sds {
    pub use crate::translate::sds::{
        certificate_from, decode_secret, merge_validation, merged_validation_context, parse_file,
        read_certificate, read_ticket_keys, read_validation_context, referenced_files,
        secret_certificate, secret_certificate_not_after, secret_ticket_keys,
        secret_validation_context, ticket_keys_from, validation_context_from, SECRET_TYPE,
    };
}

/// xDS-TP: [`xdstp::with_node_context`] adds the bootstrap's `node_context_params` to a
/// collection's name.
pub mod xdstp {
    pub use crate::translate::node_context::with_node_context;
}

/// A loaded bootstrap: the proto as parsed (for `/config_dump`) and the runtime model.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The bootstrap proto as configured (no defaults filled in; optional filters
    /// whose config type Baton has no proto for appear without their config).
    pub proto: Bootstrap,
    /// The validated, translated runtime model.
    pub model: model::Bootstrap,
    /// Paths of unknown fields dropped under [`LoadOptions::allow_unknown_static_fields`]
    /// (the caller warns about each, as Envoy does, and counts them).
    pub unknown_fields: Vec<String>,
    /// `proto`'s wire bytes when loading wrote them (a plain bootstrap, see
    /// `yaml_wire`): what prost would encode it to, map entries aside (in key order
    /// here), so a caller keeping the bootstrap encoded need not encode it again.
    pub encoded: Option<Vec<u8>>,
}

/// How the bootstrap is read (Envoy's command-line switches that change loading).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--allow-unknown-static-fields`: unknown fields are dropped and reported in
    /// [`Loaded::unknown_fields`] instead of failing the load.
    pub allow_unknown_static_fields: bool,
    /// `--disable-extensions` entries (`category/name`): a config using one fails.
    pub disabled_extensions: Vec<String>,
}

/// Loads a bootstrap file (`.yaml`, `.yml` or `.json`).
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    load(Some(path), None)
}

/// Loads inline bootstrap text (`--config-yaml`; JSON is accepted as YAML's subset).
pub fn load_yaml_str(text: &str) -> Result<Loaded, ConfigError> {
    load(None, Some(text))
}

/// Like Envoy when both `-c` and `--config-yaml` are given: the YAML is merged over the
/// file (messages merge field by field, repeated fields are appended, scalars replaced).
pub fn load(path: Option<&Path>, inline_yaml: Option<&str>) -> Result<Loaded, ConfigError> {
    load_with(path, inline_yaml, &LoadOptions::default())
}

/// [`load`] with Envoy's loading switches.
pub fn load_with(
    path: Option<&Path>,
    inline_yaml: Option<&str>,
    options: &LoadOptions,
) -> Result<Loaded, ConfigError> {
    let file = match path {
        Some(path) => {
            let name = path.display().to_string();
            if name.ends_with(".pb") || name.ends_with(".pb_text") {
                return Err(with_file(
                    ConfigError::at("", "binary/text proto bootstraps are not supported by Baton yet; use YAML or JSON"),
                    &name,
                ));
            }
            let text = std::fs::read_to_string(path).map_err(|e| {
                with_file(
                    ConfigError::at("", format!("cannot read configuration file: {e}")),
                    &name,
                )
            })?;
            Some((name, text))
        }
        None => None,
    };
    if file.is_none() && inline_yaml.is_none() {
        return Err(ConfigError::at(
            "",
            "no configuration given (need -c FILE or --config-yaml TEXT)",
        ));
    }

    let (disabled, _) = disabled::resolve(&options.disabled_extensions);
    // One text and no disabled extension: the fast way first (see `load::fast_load`),
    // which hands back the scanned document when it cannot finish.
    let single_text = match (&file, inline_yaml) {
        (Some((_, text)), None) => Some(text.as_str()),
        (None, Some(inline)) => Some(inline),
        _ => None,
    };
    let mut scanned = None;
    let mut scanner_refused = false;
    let mut fast = None;
    let mut encoded = None;
    if let Some(text) = single_text.filter(|_| disabled.is_empty()) {
        match load::fast_load(text) {
            Ok((proto, bytes)) => (fast, encoded) = (Some(proto), bytes),
            Err(Some(json)) => scanned = Some(json),
            Err(None) => scanner_refused = true,
        }
    }
    let result = match fast {
        Some(proto) => {
            translated(proto, None, Vec::new()).map(|loaded| Loaded { encoded, ..loaded })
        }
        None => {
            let mut json = match &file {
                Some((name, text)) => match scanned.take() {
                    Some(json) => json,
                    None if scanner_refused => {
                        load::parse_unscanned(text).map_err(|e| with_file(e, name))?
                    }
                    None => load::parse_text(text).map_err(|e| with_file(e, name))?,
                },
                None => serde_json::Value::Object(Default::default()),
            };
            if let Some(inline) = inline_yaml {
                let overlay = match scanned.take() {
                    Some(json) => json,
                    None if scanner_refused => load::parse_unscanned(inline)?,
                    None => load::parse_text(inline)?,
                };
                load::merge_json(&mut json, overlay);
            }

            optional::drop_unparseable_optional_configs(&mut json);
            typed_struct::unwrap_bootstrap_extensions(&mut json);
            let mut unknown_fields = Vec::new();
            disabled::check(&json, &disabled)
                .and_then(|()| load::to_bootstrap(&json))
                .or_else(|err| {
                    if options.allow_unknown_static_fields {
                        unknown_fields::drop_and_retry(&mut json, err, &mut unknown_fields)
                    } else {
                        Err(err)
                    }
                })
                .and_then(|(proto, dynamic)| translated(proto, dynamic, unknown_fields))
        }
    };
    result.map_err(|mut err| {
        // Prefer the file's line; a path only found in the inline text gets its line but
        // no file name, so the message never points at the wrong source.
        if let Some((name, text)) = &file {
            if err.line.is_none() {
                err.line = locate::line_of(text, &err.path);
            }
            if err.line.is_some() || inline_yaml.is_none() {
                return with_file(err, name);
            }
        }
        if let Some(inline) = inline_yaml {
            if err.line.is_none() {
                err.line = locate::line_of(inline, &err.path);
            }
        }
        err
    })
}

/// The supported-field check of a bootstrap mapped the prost-reflect way (`dynamic`),
/// then translation into the model.
fn translated(
    proto: Bootstrap,
    dynamic: Option<prost_reflect::DynamicMessage>,
    unknown_fields: Vec<String>,
) -> Result<Loaded, ConfigError> {
    if let Some(dynamic) = &dynamic {
        supported::check(dynamic)?;
    }
    let model = translate::bootstrap(&proto)?;
    Ok(Loaded {
        proto,
        model,
        unknown_fields,
        encoded: None,
    })
}

fn with_file(mut err: ConfigError, name: &str) -> ConfigError {
    err.file = Some(name.to_string());
    err
}

/// Envoy-style `/config_dump` JSON of the bootstrap: proto field names (snake_case) and
/// `@type` inlined into every Any.
pub fn config_dump(proto: &Bootstrap) -> serde_json::Value {
    use prost::Message;
    config_dump_encoded(&proto.encode_to_vec())
}

/// [`config_dump`] of a bootstrap in protobuf wire form.
pub fn config_dump_encoded(encoded: &[u8]) -> serde_json::Value {
    let Some(descriptor) = load::pool().get_message_by_name("envoy.config.bootstrap.v3.Bootstrap")
    else {
        return serde_json::Value::Null;
    };
    match prost_reflect::DynamicMessage::decode(descriptor, encoded) {
        Ok(dynamic) => load::to_json(&dynamic),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    }
}
