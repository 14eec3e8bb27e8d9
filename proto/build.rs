//! Compiles the vendored Envoy v3 protos (and Baton's own messages) with protox, so no
//! system `protoc` is needed, and embeds the FileDescriptorSet for prost-reflect.
use std::path::PathBuf;

#[path = "build_wire_tables.rs"]
mod wire_tables;

const ROOTS: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/filters/network/connection_limit/v3/connection_limit.proto",
    "envoy/extensions/resource_monitors/downstream_connections/v3/downstream_connections.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto",
    "envoy/service/discovery/v3/ads.proto",
    "envoy/service/cluster/v3/cds.proto",
    "envoy/service/listener/v3/lds.proto",
    "envoy/service/route/v3/rds.proto",
    "envoy/service/endpoint/v3/eds.proto",
    "envoy/service/secret/v3/sds.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto",
    "envoy/extensions/matching/common_inputs/transport_socket/v3/transport_socket_inputs.proto",
    "envoy/extensions/access_loggers/file/v3/file.proto",
    "envoy/extensions/access_loggers/stream/v3/stream.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/clusters/dns/v3/dns_cluster.proto",
    "envoy/extensions/network/dns_resolver/cares/v3/cares_dns_resolver.proto",
    "envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto",
    "envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto",
    "envoy/extensions/load_balancing_policies/random/v3/random.proto",
    "envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto",
    "envoy/extensions/load_balancing_policies/maglev/v3/maglev.proto",
    "envoy/extensions/request_id/uuid/v3/uuid.proto",
    "envoy/admin/v3/config_dump.proto",
    "envoy/extensions/bootstrap/internal_listener/v3/internal_listener.proto",
    "baton/hot_restart/v1/hot_restart.proto",
    "baton/supervisor/v1/control.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build_wire_tables.rs");
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(ROOTS)?;
    let fds = compiler.file_descriptor_set();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Encoded by protox itself: custom field options such as
    // `udpa.annotations.sensitive` (which /config_dump redaction reads) survive, where
    // prost_types' encoding would drop them. Without source info: nothing reads the
    // protos' comments at run time, and with them the decoded pool kept about 4 MiB of
    // every process's heap (the generated code above still gets its doc comments).
    let mut runtime_set = protox::Compiler::new(["proto"])?;
    runtime_set
        .include_source_info(false)
        .include_imports(true)
        .open_files(ROOTS)?;
    let encoded_set = runtime_set.encode_file_descriptor_set();
    // The loader's field tables, from the very bytes it would otherwise decode.
    std::fs::write(
        out.join("wire_tables.rs"),
        wire_tables::generate(&encoded_set)?,
    )?;
    std::fs::write(out.join("envoy_fds.bin"), encoded_set)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .include_file("envoy_include.rs")
        .compile_fds(fds)?;
    Ok(())
}
