//! Unit tests of the test control plane itself, through a tonic ADS client: SotW
//! filtering, ACK handling, re-requests, hold/release and resend; delta diffs, removals
//! and `initial_resource_versions`; stop and restart on the same port.

use std::net::SocketAddr;
use std::time::Duration;

use baton_proto::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use baton_proto::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use tokio::sync::mpsc;
use tonic::Streaming;

use super::resources::{self, CLUSTER_TYPE, ENDPOINT_TYPE};
use super::ControlPlane;
use crate::config::static_cluster;

const STEP: Duration = Duration::from_secs(5);

/// One client stream: requests go in through a channel, responses come out.
struct Client<Req, Resp> {
    requests: mpsc::UnboundedSender<Req>,
    responses: Streaming<Resp>,
}

impl<Req, Resp> Client<Req, Resp> {
    fn send(&self, request: Req) {
        assert!(self.requests.send(request).is_ok(), "client stream closed");
    }

    async fn next(&mut self) -> anyhow::Result<Resp> {
        match tokio::time::timeout(STEP, self.responses.message()).await {
            Ok(Ok(Some(response))) => Ok(response),
            Ok(Ok(None)) => anyhow::bail!("stream ended"),
            Ok(Err(status)) => Err(status.into()),
            Err(_) => anyhow::bail!("no response within {STEP:?}"),
        }
    }

    /// True when nothing arrives for a short while.
    async fn quiet(&mut self) -> bool {
        tokio::time::timeout(Duration::from_millis(200), self.responses.message())
            .await
            .is_err()
    }
}

fn request_stream<T: Send + 'static>() -> (
    mpsc::UnboundedSender<T>,
    impl futures_util::Stream<Item = T>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, stream)
}

async fn sotw_client(
    addr: SocketAddr,
) -> anyhow::Result<Client<DiscoveryRequest, DiscoveryResponse>> {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}")).await?;
    let (requests, stream) = request_stream();
    let responses = client
        .stream_aggregated_resources(stream)
        .await?
        .into_inner();
    Ok(Client {
        requests,
        responses,
    })
}

async fn delta_client(
    addr: SocketAddr,
) -> anyhow::Result<Client<DeltaDiscoveryRequest, DeltaDiscoveryResponse>> {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}")).await?;
    let (requests, stream) = request_stream();
    let responses = client
        .delta_aggregated_resources(stream)
        .await?
        .into_inner();
    Ok(Client {
        requests,
        responses,
    })
}

fn sotw_request(type_url: &str, version: &str, nonce: &str, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

fn names_of(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| resources::resource_name(any).unwrap_or_default())
        .collect()
}

fn set_assignments(cp: &ControlPlane, version: &str, clusters: &[(&str, u16)]) {
    let assignments: Vec<_> = clusters
        .iter()
        .map(|(name, port)| {
            resources::load_assignment(name, &[SocketAddr::from(([127, 0, 0, 1], *port))])
        })
        .collect();
    let anys = resources::load_assignments(&assignments).expect("valid assignments");
    cp.set(ENDPOINT_TYPE, version, anys)
        .expect("named resources");
}

#[tokio::test]
async fn sotw_filters_acks_rerequests_holds_and_resends() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    set_assignments(&cp, "1", &[("a", 1), ("b", 2)]);
    let mut client = sotw_client(cp.addr()).await?;
    client.send(sotw_request(ENDPOINT_TYPE, "", "", &["a"]));
    let first = client.next().await?;
    assert_eq!(
        (first.version_info.as_str(), names_of(&first)),
        ("1", vec!["a".into()])
    );
    // The ACK gets nothing; a re-request with the same nonce gets the set again.
    client.send(sotw_request(ENDPOINT_TYPE, "1", &first.nonce, &["a"]));
    assert!(client.quiet().await);
    client.send(sotw_request(ENDPOINT_TYPE, "1", &first.nonce, &["a"]));
    let again = client.next().await?;
    assert_ne!(again.nonce, first.nonce);
    client.send(sotw_request(ENDPOINT_TYPE, "1", &again.nonce, &["a"]));
    // Held: a new version waits for the release.
    cp.hold(ENDPOINT_TYPE);
    set_assignments(&cp, "2", &[("a", 3)]);
    assert!(client.quiet().await);
    cp.release(ENDPOINT_TYPE);
    let second = client.next().await?;
    assert_eq!(second.version_info, "2");
    client.send(sotw_request(ENDPOINT_TYPE, "2", &second.nonce, &["a"]));
    cp.resend(ENDPOINT_TYPE);
    let resent = client.next().await?;
    assert_eq!(
        (resent.version_info.as_str(), names_of(&resent)),
        ("2", vec!["a".into()])
    );
    // Wildcard CDS: an empty name list is everything.
    let clusters = [static_cluster("x", &[]), static_cluster("y", &[])];
    cp.set(CLUSTER_TYPE, "7", resources::clusters(&clusters)?)?;
    client.send(sotw_request(CLUSTER_TYPE, "", "", &[]));
    let cds = client.next().await?;
    assert_eq!(names_of(&cds), ["x", "y"]);
    let (response, ack) = cp.wait_for_answer(ENDPOINT_TYPE, "2", STEP).await?;
    assert_eq!(ack.response_nonce, response.nonce);
    Ok(())
}

#[tokio::test]
async fn delta_sends_changes_removals_and_honours_initial_versions() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    set_assignments(&cp, "1", &[("a", 1), ("b", 2), ("c", 3)]);
    let mut client = delta_client(cp.addr()).await?;
    client.send(DeltaDiscoveryRequest {
        type_url: ENDPOINT_TYPE.into(),
        resource_names_subscribe: vec!["a".into(), "b".into()],
        ..Default::default()
    });
    let first = client.next().await?;
    let sent: Vec<(&str, &str)> = first
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.version.as_str()))
        .collect();
    assert_eq!(sent, [("a", "1"), ("b", "1")]);
    // Version 2 changes only b and drops a: b is sent, a is removed.
    set_assignments(&cp, "2", &[("b", 20), ("c", 3)]);
    let second = client.next().await?;
    assert_eq!(second.system_version_info, "2");
    let sent: Vec<&str> = second.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(sent, ["b"]);
    assert_eq!(second.removed_resources, ["a"]);

    // A new stream that already has b at version 2 gets an empty first answer.
    let mut again = delta_client(cp.addr()).await?;
    again.send(DeltaDiscoveryRequest {
        type_url: ENDPOINT_TYPE.into(),
        resource_names_subscribe: vec!["b".into()],
        initial_resource_versions: [("b".to_string(), "2".to_string())].into(),
        ..Default::default()
    });
    let empty = again.next().await?;
    assert!(empty.resources.is_empty() && empty.removed_resources.is_empty());
    assert!(again.quiet().await);
    assert_eq!(cp.streams(), 2);
    Ok(())
}

#[tokio::test]
async fn stop_ends_streams_and_restart_serves_on_the_same_port() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start().await?;
    set_assignments(&cp, "1", &[("a", 1)]);
    let addr = cp.addr();
    let mut client = sotw_client(addr).await?;
    client.send(sotw_request(ENDPOINT_TYPE, "", "", &["a"]));
    client.next().await?;
    cp.stop().await;
    assert!(client.next().await.is_err());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    cp.restart().await?;
    assert_eq!(cp.addr(), addr);
    let mut client = sotw_client(addr).await?;
    client.send(sotw_request(ENDPOINT_TYPE, "1", "", &["a"]));
    assert_eq!(client.next().await?.version_info, "1");
    cp.wait_for_streams(1, STEP).await?;
    Ok(())
}
