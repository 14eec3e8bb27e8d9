//! The gRPC side of the test control plane: the aggregated service (ADS) and the four
//! per-type services (CDS, EDS, LDS, RDS, SDS; `fetch_*` is unimplemented, as Envoy only
//! streams) over one [`StreamContext`], served by HTTP/2 connections accepted from a TCP
//! (plain or TLS) or Unix listener. Connections are tasks in one `JoinSet` owned by the accept loop, so
//! stopping the server (aborting the loop) closes every connection the way a crashed
//! control plane would.

use std::path::PathBuf;
use std::sync::Arc;

use baton_proto::pb::envoy::service::cluster::v3::cluster_discovery_service_server::{
    ClusterDiscoveryService, ClusterDiscoveryServiceServer,
};
use baton_proto::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use baton_proto::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use baton_proto::pb::envoy::service::endpoint::v3::endpoint_discovery_service_server::{
    EndpointDiscoveryService, EndpointDiscoveryServiceServer,
};
use baton_proto::pb::envoy::service::listener::v3::listener_discovery_service_server::{
    ListenerDiscoveryService, ListenerDiscoveryServiceServer,
};
use baton_proto::pb::envoy::service::route::v3::route_discovery_service_server::{
    RouteDiscoveryService, RouteDiscoveryServiceServer,
};
use baton_proto::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinSet;
use tonic::service::Routes;
use tonic::{Request, Response, Status, Streaming};

use super::state::{Service, Shared};
use super::stream::{self, ResponseStream, StreamContext};
use super::tls::ServingTls;

/// Every discovery service of the control plane, sharing one context.
#[derive(Debug, Clone)]
struct Discovery {
    ctx: StreamContext,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Discovery {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(stream::sotw(
            self.ctx.clone(),
            Service::Ads,
            request.into_inner(),
        )))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(stream::delta(
            self.ctx.clone(),
            Service::Ads,
            request.into_inner(),
        )))
    }
}

/// Implements one per-type discovery service trait: the SotW and delta streams go through
/// the same code as ADS, tagged with the service; fetch (unary) is not offered.
macro_rules! per_type_service {
    ($trait:ident, $service:expr, $sotw_ty:ident, $sotw_fn:ident, $delta_ty:ident, $delta_fn:ident, $fetch_fn:ident) => {
        #[tonic::async_trait]
        impl $trait for Discovery {
            type $sotw_ty = ResponseStream<DiscoveryResponse>;
            type $delta_ty = ResponseStream<DeltaDiscoveryResponse>;

            async fn $sotw_fn(
                &self,
                request: Request<Streaming<DiscoveryRequest>>,
            ) -> Result<Response<Self::$sotw_ty>, Status> {
                Ok(Response::new(stream::sotw(
                    self.ctx.clone(),
                    $service,
                    request.into_inner(),
                )))
            }

            async fn $delta_fn(
                &self,
                request: Request<Streaming<DeltaDiscoveryRequest>>,
            ) -> Result<Response<Self::$delta_ty>, Status> {
                Ok(Response::new(stream::delta(
                    self.ctx.clone(),
                    $service,
                    request.into_inner(),
                )))
            }

            async fn $fetch_fn(
                &self,
                _request: Request<DiscoveryRequest>,
            ) -> Result<Response<DiscoveryResponse>, Status> {
                Err(Status::unimplemented("the test control plane only streams"))
            }
        }
    };
}

per_type_service!(
    ClusterDiscoveryService,
    Service::Cds,
    StreamClustersStream,
    stream_clusters,
    DeltaClustersStream,
    delta_clusters,
    fetch_clusters
);
per_type_service!(
    EndpointDiscoveryService,
    Service::Eds,
    StreamEndpointsStream,
    stream_endpoints,
    DeltaEndpointsStream,
    delta_endpoints,
    fetch_endpoints
);
per_type_service!(
    ListenerDiscoveryService,
    Service::Lds,
    StreamListenersStream,
    stream_listeners,
    DeltaListenersStream,
    delta_listeners,
    fetch_listeners
);
per_type_service!(
    RouteDiscoveryService,
    Service::Rds,
    StreamRoutesStream,
    stream_routes,
    DeltaRoutesStream,
    delta_routes,
    fetch_routes
);
per_type_service!(
    SecretDiscoveryService,
    Service::Sds,
    StreamSecretsStream,
    stream_secrets,
    DeltaSecretsStream,
    delta_secrets,
    fetch_secrets
);

/// The listening socket of one server run.
#[derive(Debug)]
pub enum Listener {
    /// TCP on 127.0.0.1.
    Tcp(TcpListener),
    /// TLS over TCP on 127.0.0.1.
    Tls(TcpListener, Arc<ServingTls>),
    /// A Unix socket (Envoy's `pipe` address); the path is removed when the run ends.
    Unix(UnixListener, PathBuf),
}

/// Serves every discovery service on `listener` until the returned task is aborted.
pub fn serve(listener: Listener, ctx: StreamContext) -> tokio::task::JoinHandle<()> {
    let routes = Routes::new(AggregatedDiscoveryServiceServer::new(Discovery {
        ctx: ctx.clone(),
    }))
    .add_service(ClusterDiscoveryServiceServer::new(Discovery {
        ctx: ctx.clone(),
    }))
    .add_service(EndpointDiscoveryServiceServer::new(Discovery {
        ctx: ctx.clone(),
    }))
    .add_service(ListenerDiscoveryServiceServer::new(Discovery {
        ctx: ctx.clone(),
    }))
    .add_service(RouteDiscoveryServiceServer::new(Discovery {
        ctx: ctx.clone(),
    }))
    .add_service(SecretDiscoveryServiceServer::new(Discovery {
        ctx: ctx.clone(),
    }))
    .prepare();
    let shared = ctx.shared;
    tokio::spawn(async move {
        // Dropped with this task: aborts every connection.
        let mut connections = JoinSet::new();
        loop {
            let accepted = match &listener {
                Listener::Tcp(tcp) => tcp.accept().await.map(|(stream, _)| {
                    connections.spawn(serve_connection(stream, routes.clone(), shared.clone()));
                }),
                Listener::Tls(tcp, tls) => tcp.accept().await.map(|(stream, _)| {
                    let tls = tls.clone();
                    let routes = routes.clone();
                    let shared = shared.clone();
                    connections.spawn(async move {
                        if let Some(stream) = tls.accept(stream).await {
                            serve_connection(stream, routes, shared).await;
                        }
                    });
                }),
                Listener::Unix(unix, _) => unix.accept().await.map(|(stream, _)| {
                    connections.spawn(serve_connection(stream, routes.clone(), shared.clone()));
                }),
            };
            if accepted.is_err() {
                // Transient accept errors (e.g. out of fds): keep serving.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            // Reap finished connections so the set does not grow for the run's lifetime.
            while connections.try_join_next().is_some() {}
        }
    })
}

/// One HTTP/2 (gRPC) connection; each request's `:authority` is logged first.
async fn serve_connection<S>(stream: S, routes: Routes, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let routes = TowerToHyperService::new(routes);
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        shared.lock().authorities.push(authority);
        hyper::service::Service::call(&routes, request)
    });
    let _: Result<(), _> = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}
