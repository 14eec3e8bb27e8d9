//! The gRPC side of a subscription: a tonic channel to the control-plane cluster named
//! by `envoy_grpc.cluster_name` (one of its hosts, over TCP or a Unix socket for a
//! `pipe` host, with the cluster's TLS when it has a `transport_socket`, HTTP/2, the
//! cluster's `connect_timeout`), and the streaming methods of the discovery services.
//! As in Envoy, the connection counts in the cluster's `upstream_cx_*` stats, each
//! stream in its `upstream_rq_*`, and requests carry the cluster's name as `:authority`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use baton_proto::pb::envoy::service::discovery::v3 as discovery;
use futures_util::Stream;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use super::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};
use crate::stats::ClusterStats;
use crate::upstream::{ClusterManager, HostAddress, OpenConnection, Protocol, UpstreamStream};

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

/// A channel to the control plane and the stats of its cluster (each stream counts in
/// them).
#[derive(Clone)]
pub(crate) struct ControlPlaneChannel {
    channel: Channel,
    stats: Arc<ClusterStats>,
}

/// A channel to one host of the control-plane cluster, dialled as the data plane dials
/// it (`upstream::connect_counted`): TCP or a `pipe` host's Unix socket, then the
/// cluster's `UpstreamTlsContext` if it has one (SNI, verification, client certificate,
/// `h2` offered when no ALPN is configured, as Envoy's HTTP/2 cluster does), counting
/// `cluster.<name>.ssl.*` and, as Envoy, `upstream_cx_*` under the cluster's connection
/// breaker. tonic re-dials through the same connector, which reads the cluster's TLS
/// side at each dial, so a rotated certificate applies to the next connection.
pub(crate) async fn connect(
    clusters: &ClusterManager,
    cluster_name: &str,
) -> Result<ControlPlaneChannel, GrpcError> {
    let cluster = clusters
        .get(cluster_name)
        .ok_or_else(|| GrpcError::Cluster(cluster_name.to_string(), "no such cluster".into()))?;
    let host = cluster
        .pick_host()
        .map_err(|e| GrpcError::Cluster(cluster_name.to_string(), e.to_string()))?;
    let address = host.address.clone();
    let target = address.to_string();
    // The URI only fills in the request authority; the connector dials the host. It
    // stays `http`: tonic refuses an `https` URI unless it does TLS itself.
    let uri = match &address {
        HostAddress::Ip(addr) => format!("http://{addr}"),
        HostAddress::Pipe(_) => "http://localhost".to_string(),
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| GrpcError::Connect(target.clone(), e.to_string()))?
        .connect_timeout(cluster.model.connect_timeout);
    // Envoy's gRPC client sends the cluster's name as `:authority` (a name that is not
    // a valid authority keeps the host's address).
    if let Ok(origin) = http::Uri::try_from(format!("http://{cluster_name}")) {
        endpoint = endpoint.origin(origin);
    }
    endpoint = match &cluster.model.http2.keepalive {
        // The cluster's `connection_keepalive`, as for its data-plane connections.
        Some(keepalive) => endpoint
            .http2_keep_alive_interval(keepalive.interval)
            .keep_alive_timeout(keepalive.timeout)
            .keep_alive_while_idle(true),
        None => endpoint.http2_keep_alive_interval(KEEP_ALIVE_INTERVAL),
    };
    let stats = Arc::clone(cluster.stats());
    let connector = tower::service_fn(move |_: http::Uri| {
        let cluster = cluster.clone();
        let host = host.clone();
        async move {
            let (stream, open) = crate::upstream::connect_counted(
                &cluster,
                &host,
                &Default::default(),
                Protocol::Http2,
            )
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
            Ok::<_, io::Error>(TokioIo::new(CountedStream {
                stream,
                _open: open,
            }))
        }
    });
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| GrpcError::Connect(target, error_chain(&e)))?;
    Ok(ControlPlaneChannel { channel, stats })
}

/// The control-plane connection, counted in its cluster's `upstream_cx_active` until
/// dropped (then `upstream_cx_destroy`, `upstream_cx_length_ms`).
struct CountedStream {
    stream: UpstreamStream,
    _open: OpenConnection,
}

impl tokio::io::AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// One open discovery stream, counted in its cluster's `upstream_rq_active` until
/// dropped.
pub(crate) struct ActiveStream {
    stats: Arc<ClusterStats>,
}

impl ActiveStream {
    /// A stream whose response headers arrived: as Envoy, it counts in
    /// `upstream_rq_total`, `upstream_rq_pending_total`, `upstream_rq_200` (and `2xx`,
    /// `completed`) and stays in `upstream_rq_active` while open.
    fn opened(stats: Arc<ClusterStats>) -> Self {
        stats.upstream_rq_total.inc();
        stats.upstream_rq_pending_total.inc();
        stats.record_response(200);
        stats.upstream_rq_active.inc();
        Self { stats }
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.stats.upstream_rq_active.dec();
    }
}

/// HTTP/2 keep-alive pings on the control-plane connection when the cluster configures
/// none.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(300);

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
    channel: ControlPlaneChannel,
    service: Service,
    requests: impl Stream<Item = discovery::DiscoveryRequest> + Send + 'static,
    max_message: Option<usize>,
) -> Result<(tonic::Streaming<discovery::DiscoveryResponse>, ActiveStream), GrpcError> {
    open(channel, method_path(service, false), requests, max_message).await
}

/// Opens a delta stream.
pub(crate) async fn open_delta(
    channel: ControlPlaneChannel,
    service: Service,
    requests: impl Stream<Item = discovery::DeltaDiscoveryRequest> + Send + 'static,
    max_message: Option<usize>,
) -> Result<
    (
        tonic::Streaming<discovery::DeltaDiscoveryResponse>,
        ActiveStream,
    ),
    GrpcError,
> {
    open(channel, method_path(service, true), requests, max_message).await
}

async fn open<Req, Resp>(
    channel: ControlPlaneChannel,
    path: &'static str,
    requests: impl Stream<Item = Req> + Send + 'static,
    max_message: Option<usize>,
) -> Result<(tonic::Streaming<Resp>, ActiveStream), GrpcError>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let ControlPlaneChannel { channel, stats } = channel;
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
    Ok((response.into_inner(), ActiveStream::opened(stats)))
}
