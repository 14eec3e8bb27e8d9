//! Envoy v3 bootstrap builders for tests, as JSON values (written to disk as YAML-compatible
//! JSON). Everything binds 127.0.0.1 port 0; tests tweak the result with [`merge`] or
//! `serde_json::Value::pointer_mut`.

use std::net::SocketAddr;

use serde_json::{json, Value};

/// Type URL of the HTTP connection manager.
pub const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
/// Type URL of the router filter.
pub const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
/// Type URL of the tcp_proxy filter.
pub const TCP_PROXY_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
/// Type URL of the file access logger.
pub const FILE_ACCESS_LOG_TYPE: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";
/// Type URL of the cluster-level HTTP protocol options.
pub const HTTP_PROTOCOL_OPTIONS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// A bootstrap with an admin listener on 127.0.0.1:0 and the given static resources.
pub fn bootstrap(listeners: Vec<Value>, clusters: Vec<Value>) -> Value {
    json!({
        "admin": { "address": socket_address("127.0.0.1", 0) },
        "static_resources": { "listeners": listeners, "clusters": clusters },
    })
}

/// `{"socket_address": {...}}`.
pub fn socket_address(ip: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": ip, "port_value": port } })
}

/// A listener named `name` on 127.0.0.1:0 with one filter chain holding `filters`.
pub fn listener(name: &str, filters: Vec<Value>) -> Value {
    listener_on(name, "127.0.0.1", 0, filters)
}

/// A listener named `name` on `ip:port` with one filter chain holding `filters`.
pub fn listener_on(name: &str, ip: &str, port: u16, filters: Vec<Value>) -> Value {
    json!({
        "name": name,
        "address": socket_address(ip, port),
        "filter_chains": [ { "filters": filters } ],
    })
}

/// An HTTP listener named `name` on 127.0.0.1:0 whose HCM has `route_config`.
pub fn http_listener(name: &str, route_config: Value) -> Value {
    listener(name, vec![hcm_filter(hcm(route_config))])
}

/// The HCM typed_config: stat prefix `ingress`, inline `route_config`, router filter.
pub fn hcm(route_config: Value) -> Value {
    json!({
        "@type": HCM_TYPE,
        "stat_prefix": "ingress",
        "route_config": route_config,
        "http_filters": [ router_filter() ],
    })
}

/// The router HTTP filter entry.
pub fn router_filter() -> Value {
    json!({ "name": "envoy.filters.http.router", "typed_config": { "@type": ROUTER_TYPE } })
}

/// The network filter entry wrapping an HCM typed_config.
pub fn hcm_filter(hcm: Value) -> Value {
    json!({ "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm })
}

/// The tcp_proxy network filter entry to `cluster`.
pub fn tcp_proxy_filter(cluster: &str) -> Value {
    json!({
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": { "@type": TCP_PROXY_TYPE, "stat_prefix": "tcp", "cluster": cluster },
    })
}

/// A route configuration named `local_route` with `virtual_hosts`.
pub fn route_config(virtual_hosts: Vec<Value>) -> Value {
    json!({ "name": "local_route", "virtual_hosts": virtual_hosts })
}

/// A virtual host.
pub fn vhost(name: &str, domains: &[&str], routes: Vec<Value>) -> Value {
    json!({ "name": name, "domains": domains, "routes": routes })
}

/// A route matching `prefix` to `cluster`.
pub fn prefix_route(prefix: &str, cluster: &str) -> Value {
    json!({ "match": { "prefix": prefix }, "route": { "cluster": cluster } })
}

/// A route matching `prefix` answered with a direct response.
pub fn direct_route(prefix: &str, status: u16, body: &str) -> Value {
    json!({
        "match": { "prefix": prefix },
        "direct_response": { "status": status, "body": { "inline_string": body } },
    })
}

/// A STATIC cluster (round robin, 0.25 s connect timeout) over `addrs`.
pub fn static_cluster(name: &str, addrs: &[SocketAddr]) -> Value {
    let endpoints: Vec<Value> = addrs.iter().map(|a| endpoint(*a)).collect();
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": { "cluster_name": name, "endpoints": [ { "lb_endpoints": endpoints } ] },
    })
}

/// One `lb_endpoints` entry for `addr`.
pub fn endpoint(addr: SocketAddr) -> Value {
    json!({ "endpoint": { "address": socket_address(&addr.ip().to_string(), addr.port()) } })
}

/// Marks a cluster as HTTP/2 to its upstreams (prior knowledge), the v3 way.
pub fn with_http2_upstream(mut cluster: Value) -> Value {
    merge(
        &mut cluster,
        json!({
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": HTTP_PROTOCOL_OPTIONS_TYPE,
                    "explicit_http_config": { "http2_protocol_options": {} },
                }
            }
        }),
    );
    cluster
}

/// Listener `http` answering every request 200 `ok` itself; no clusters.
pub fn direct_ok_proxy() -> Value {
    bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                vec![direct_route("/", 200, "ok")],
            )]),
        )],
        vec![],
    )
}

/// The common case: listener `http` routing everything (any domain) to cluster `backend`
/// over `upstreams`.
pub fn simple_proxy(upstreams: &[SocketAddr]) -> Value {
    bootstrap(
        vec![http_listener(
            "http",
            route_config(vec![vhost(
                "all",
                &["*"],
                vec![prefix_route("/", "backend")],
            )]),
        )],
        vec![static_cluster("backend", upstreams)],
    )
}

/// Deep-merges `extra` into `base`: objects merge key by key, anything else replaces.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, extra) => *base = extra,
    }
}

/// The HCM typed_config of the first filter of the first chain of listener `index`.
pub fn hcm_of(config: &mut Value, index: usize) -> &mut Value {
    let pointer =
        format!("/static_resources/listeners/{index}/filter_chains/0/filters/0/typed_config");
    match config.pointer_mut(&pointer) {
        Some(value) => value,
        None => panic!("test config has no {pointer}"),
    }
}

/// The route list of virtual host `vhost` in listener 0's inline route config.
pub fn routes_of(config: &mut Value, vhost: usize) -> &mut Value {
    let pointer = format!("/route_config/virtual_hosts/{vhost}/routes");
    match hcm_of(config, 0).pointer_mut(&pointer) {
        Some(value) => value,
        None => panic!("test config has no {pointer}"),
    }
}

/// A currently free TCP port on 127.0.0.1 (for configs that must name the port up front,
/// e.g. `filter_chain_match.destination_port`). The port is released before returning, so
/// another process could take it; tests use this only where port 0 cannot work.
pub fn free_port() -> std::io::Result<u16> {
    let socket = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(socket.local_addr()?.port())
}

/// A `transport_socket` named `envoy.transport_sockets.tls` with an
/// `UpstreamTlsContext` holding the fields of `ctx`.
pub fn upstream_tls(ctx: Value) -> Value {
    let mut typed = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    });
    for (k, v) in ctx.as_object().into_iter().flatten() {
        typed[k] = v.clone();
    }
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": typed })
}

/// How a bootstrap reaches the test control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdsTransport {
    /// ADS state of the world (`api_type: GRPC`).
    Sotw,
    /// ADS incremental (`api_type: DELTA_GRPC`).
    Delta,
}

/// Builder of a bootstrap under a control plane: a static HTTP/2 cluster `xds_cluster` to
/// the control plane, ADS over gRPC (SotW or delta) with `cds_config` and `lds_config`
/// `ads: {}` (or, with `aggregated: false`, each with its own gRPC `api_config_source`),
/// optional `initial_fetch_timeout`s, and node id/cluster.
#[derive(Debug, Clone)]
pub struct XdsBootstrap {
    /// Control plane TCP address (ignored when `pipe` is set).
    pub control_plane: SocketAddr,
    /// Control plane Unix socket path (Envoy's `pipe` address), instead of TCP.
    pub pipe: Option<std::path::PathBuf>,
    /// SotW or delta.
    pub transport: XdsTransport,
    /// `node.id`.
    pub node_id: String,
    /// `node.cluster`.
    pub node_cluster: String,
    /// `cds_config.initial_fetch_timeout` (Envoy's default 15 s when None).
    pub cds_initial_fetch_timeout: Option<std::time::Duration>,
    /// `lds_config.initial_fetch_timeout` (Envoy's default 15 s when None).
    pub lds_initial_fetch_timeout: Option<std::time::Duration>,
    /// `ads_config.set_node_on_first_message_only`.
    pub node_on_first_message_only: bool,
    /// ADS (true) or one non-aggregated gRPC stream per type (false).
    pub aggregated: bool,
    /// `transport_socket` of `xds_cluster` (TLS to the control plane).
    pub xds_transport_socket: Option<Value>,
}

impl XdsBootstrap {
    /// SotW ADS to `control_plane`, node `test-node` in cluster `test-cluster`.
    pub fn new(control_plane: SocketAddr) -> Self {
        Self {
            control_plane,
            pipe: None,
            transport: XdsTransport::Sotw,
            node_id: "test-node".into(),
            node_cluster: "test-cluster".into(),
            cds_initial_fetch_timeout: None,
            lds_initial_fetch_timeout: None,
            node_on_first_message_only: false,
            aggregated: true,
            xds_transport_socket: None,
        }
    }

    /// Reaches the control plane through `transport_socket` (e.g. an
    /// `UpstreamTlsContext`, see [`upstream_tls`]).
    pub fn transport_socket(mut self, socket: Value) -> Self {
        self.xds_transport_socket = Some(socket);
        self
    }

    /// Selects SotW or delta.
    pub fn transport(mut self, transport: XdsTransport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets both CDS and LDS `initial_fetch_timeout`.
    pub fn initial_fetch_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.cds_initial_fetch_timeout = Some(timeout);
        self.lds_initial_fetch_timeout = Some(timeout);
        self
    }

    fn api_type(&self) -> &'static str {
        match self.transport {
            XdsTransport::Sotw => "GRPC",
            XdsTransport::Delta => "DELTA_GRPC",
        }
    }

    /// The config source that EDS clusters and RDS listeners served under this bootstrap
    /// use: `ads: {}`, or the same gRPC `api_config_source` as CDS/LDS when not aggregated.
    pub fn resource_source(&self) -> Value {
        self.source(None)
    }

    fn source(&self, timeout: Option<std::time::Duration>) -> Value {
        let mut source = if self.aggregated {
            json!({ "ads": {}, "resource_api_version": "V3" })
        } else {
            json!({
                "api_config_source": {
                    "api_type": self.api_type(),
                    "transport_api_version": "V3",
                    "grpc_services": [ { "envoy_grpc": { "cluster_name": "xds_cluster" } } ],
                    "set_node_on_first_message_only": self.node_on_first_message_only,
                },
                "resource_api_version": "V3",
            })
        };
        if let Some(timeout) = timeout {
            source["initial_fetch_timeout"] = json!(format!(
                "{}.{:03}s",
                timeout.as_secs(),
                timeout.subsec_millis()
            ));
        }
        source
    }

    /// The bootstrap as JSON.
    pub fn build(&self) -> Value {
        let address = match &self.pipe {
            Some(path) => json!({ "pipe": { "path": path.display().to_string() } }),
            None => socket_address(
                &self.control_plane.ip().to_string(),
                self.control_plane.port(),
            ),
        };
        let mut xds_cluster = with_http2_upstream(json!({
            "name": "xds_cluster",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": "xds_cluster",
                "endpoints": [ { "lb_endpoints": [ { "endpoint": { "address": address } } ] } ],
            },
        }));
        if let Some(socket) = &self.xds_transport_socket {
            xds_cluster["transport_socket"] = socket.clone();
        }
        let mut dynamic_resources = json!({
            "cds_config": self.source(self.cds_initial_fetch_timeout),
            "lds_config": self.source(self.lds_initial_fetch_timeout),
        });
        if self.aggregated {
            dynamic_resources["ads_config"] = json!({
                "api_type": self.api_type(),
                "transport_api_version": "V3",
                "grpc_services": [ { "envoy_grpc": { "cluster_name": "xds_cluster" } } ],
                "set_node_on_first_message_only": self.node_on_first_message_only,
            });
        }
        json!({
            "node": { "id": self.node_id, "cluster": self.node_cluster },
            "admin": { "address": socket_address("127.0.0.1", 0) },
            "static_resources": { "clusters": [ xds_cluster ] },
            "dynamic_resources": dynamic_resources,
        })
    }
}
