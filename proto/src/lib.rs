//! Generated Rust types for the vendored Envoy v3 API subset (wire-compatible with Envoy,
//! so static config and xDS share them) and for Baton's own hot-restart and supervisor
//! control messages. `FDS` is the encoded FileDescriptorSet used by `config/` to read
//! YAML/JSON through the proto3 JSON mapping.

#[allow(clippy::all, missing_docs, rust_2018_idioms, unreachable_pub)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/envoy_include.rs"));
}

/// Encoded `google.protobuf.FileDescriptorSet` of every compiled proto.
pub static FDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_fds.bin"));

pub use prost;
pub use prost_types;
