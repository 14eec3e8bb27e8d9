//! The gRPC side of a subscription: a tonic channel to the control-plane cluster named
//! by `envoy_grpc.cluster_name` (one of its hosts, over TCP or a Unix socket for a
//! `pipe` host, HTTP/2 prior knowledge, the cluster's `connect_timeout`), and the
//! streaming methods of the discovery services.

use std::time::Duration;

use baton_proto::pb::envoy::service::discovery::v3 as discovery;
use futures_util::Stream;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

use super::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};
use crate::upstream::{ClusterManager, HostAddress, PipeAddress};

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GrpcError {
    /// The control-plane cluster does not exist or has no host.
    #[error("control-plane cluster '{0}': {1}")]
    Cluster(String, String),
    /// Connecting failed.
    #[error("connecting to control plane {0}: {1}")]
    Connect(String, String),
    /// The stream failed or was refused.
    #[error("control-plane stream: {0}")]
    Status(#[from] tonic::Status),
}

/// Which RPC a stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// `AggregatedDiscoveryService` (every type on one stream).
    Aggregated,
    /// The per-type service of this type URL.
    Single(&'static str),
}

/// The method path of a stream.
pub(crate) fn method_path(service: Service, delta: bool) -> &'static str {
    match (service, delta) {
        (Service::Aggregated, false) => {
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
        }
        (Service::Aggregated, true) => {
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
        }
        (Service::Single(t), false) => match t {
            CLUSTER_TYPE => "/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters",
            LISTENER_TYPE => "/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners",
            ROUTE_TYPE => "/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes",
            ENDPOINT_TYPE => "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints",
            SECRET_TYPE => "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets",
            _ => "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
        },
        (Service::Single(t), true) => match t {
            CLUSTER_TYPE => "/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters",
            LISTENER_TYPE => "/envoy.service.listener.v3.ListenerDiscoveryService/DeltaListeners",
            ROUTE_TYPE => "/envoy.service.route.v3.RouteDiscoveryService/DeltaRoutes",
            ENDPOINT_TYPE => "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints",
            SECRET_TYPE => "/envoy.service.secret.v3.SecretDiscoveryService/DeltaSecrets",
            _ => "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
        },
    }
}

/// A channel to one host of the control-plane cluster.
pub(crate) async fn connect(
    clusters: &ClusterManager,
    cluster_name: &str,
) -> Result<Channel, GrpcError> {
    let cluster = clusters
        .get(cluster_name)
        .ok_or_else(|| GrpcError::Cluster(cluster_name.to_string(), "no such cluster".into()))?;
    // The control-plane channel dials on its own (tonic), not through the cluster's TLS
    // connector: refuse rather than speak plain text to a TLS control plane.
    if cluster.tls().is_some() {
        return Err(GrpcError::Cluster(
            cluster_name.to_string(),
            "a transport_socket (TLS) on the control-plane cluster is not supported by Baton yet"
                .into(),
        ));
    }
    let host = cluster
        .pick_host()
        .map_err(|e| GrpcError::Cluster(cluster_name.to_string(), e.to_string()))?;
    let connect_timeout = cluster.model.connect_timeout;
    match &host.address {
        HostAddress::Ip(addr) => {
            let uri = format!("http://{addr}");
            let endpoint = Endpoint::from_shared(uri.clone())
                .map_err(|e| GrpcError::Connect(uri.clone(), e.to_string()))?
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL);
            endpoint
                .connect()
                .await
                .map_err(|e| GrpcError::Connect(uri, error_chain(&e)))
        }
        HostAddress::Pipe(pipe) => connect_pipe(pipe, connect_timeout).await,
    }
}

/// HTTP/2 keep-alive pings on the control-plane connection.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(300);

/// A channel over the Unix socket of a `pipe` host. The URI only fills in the request
/// authority: the connector ignores it and dials the socket.
async fn connect_pipe(pipe: &PipeAddress, connect_timeout: Duration) -> Result<Channel, GrpcError> {
    let endpoint = Endpoint::from_static("http://localhost")
        .connect_timeout(connect_timeout)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL);
    let socket = pipe.socket_addr().clone();
    let connector = tower::service_fn(move |_: http::Uri| {
        let socket = tokio::net::unix::SocketAddr::from(socket.clone());
        async move { UnixStream::connect_addr(&socket).await.map(TokioIo::new) }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| GrpcError::Connect(pipe.name().to_string(), error_chain(&e)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Opens a state-of-the-world stream.
pub(crate) async fn open_sotw(
    channel: Channel,
    service: Service,
    requests: impl Stream<Item = discovery::DiscoveryRequest> + Send + 'static,
    max_message: Option<usize>,
) -> Result<tonic::Streaming<discovery::DiscoveryResponse>, GrpcError> {
    open(channel, method_path(service, false), requests, max_message).await
}

/// Opens a delta stream.
pub(crate) async fn open_delta(
    channel: Channel,
    service: Service,
    requests: impl Stream<Item = discovery::DeltaDiscoveryRequest> + Send + 'static,
    max_message: Option<usize>,
) -> Result<tonic::Streaming<discovery::DeltaDiscoveryResponse>, GrpcError> {
    open(channel, method_path(service, true), requests, max_message).await
}

async fn open<Req, Resp>(
    channel: Channel,
    path: &'static str,
    requests: impl Stream<Item = Req> + Send + 'static,
    max_message: Option<usize>,
) -> Result<tonic::Streaming<Resp>, GrpcError>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Some(max) = max_message {
        grpc = grpc.max_decoding_message_size(max);
    }
    grpc.ready()
        .await
        .map_err(|e| GrpcError::Connect(path.to_string(), e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    let response = grpc
        .streaming(
            tonic::Request::new(requests),
            http::uri::PathAndQuery::from_static(path),
            codec,
        )
        .await?;
    Ok(response.into_inner())
}
