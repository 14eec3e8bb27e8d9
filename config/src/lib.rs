//! Bootstrap configuration: loads an Envoy v3 bootstrap (YAML or JSON) into the vendored
//! proto messages through the proto3 JSON mapping, validates what Baton relies on with
//! errors that name the field path and file line, and translates the protos into the
//! immutable runtime model in [`model`].
//!
//! Public surface (the contract the proxy builds on):
//! - [`load_file`] / [`load_yaml_str`]: text -> validated [`Loaded`] (proto + model).
//! - [`ConfigError`]: `file:line: field.path: message`.
//! - [`config_dump`]: the proto bootstrap rendered as Envoy-style JSON for `/config_dump`.

pub mod model;
