//! Cluster manager, load balancing and connection pool tests against real upstream
//! servers on 127.0.0.1.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use baton_config::model::{DiscoveryType, DnsLookupFamily, EndpointAddress, UpstreamProtocol};

use super::pool::{idle_connections, open_connections};
use super::test_support::*;
use super::{ClusterManager, SendOptions, UpstreamError};

async fn manager(clusters: Vec<baton_config::model::Cluster>) -> Arc<ClusterManager> {
    let clusters: Vec<_> = clusters.into_iter().map(Arc::new).collect();
    ClusterManager::initialize(&clusters)
        .await
        .expect("initialize")
}

const H1: SendOptions = SendOptions {
    downstream_http2: false,
    upgrade: false,
    auto_host_rewrite: None,
    scheme: super::UpstreamScheme::Http,
};

#[tokio::test]
async fn http1_keep_alive_reuses_one_connection() {
    let up = upstream(false).await;
    let cm = manager(vec![cluster("c", ips(&[up.addr]))]).await;
    let c = cm.get("c").expect("cluster");
    for i in 0..5 {
        let resp = c
            .send_http(get(&format!("/r{i}")), &H1)
            .await
            .expect("response");
        assert_eq!(resp.host.address.ip(), Some(up.addr));
        assert_eq!(
            text(resp.response.into_body()).await,
            format!("{} /r{i}", up.addr.port())
        );
    }
    assert_eq!(up.accepts.load(Ordering::SeqCst), 1);
    let host = &c.hosts()[0];
    assert_eq!(host.rq_total.load(Ordering::Relaxed), 5);
    eventually("request accounting", || {
        host.rq_active.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(host.cx_active.load(Ordering::Relaxed), 1);
    assert_eq!(idle_connections(host), 1);
}

#[tokio::test]
async fn http1_concurrent_requests_use_separate_connections_then_reuse_them() {
    let up = upstream(false).await;
    let cm = manager(vec![cluster("c", ips(&[up.addr]))]).await;
    let c = cm.get("c").expect("cluster").clone();
    up.gate.close();
    let sends: Vec<_> = (0..3)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                let resp = c.send_http(get("/"), &H1).await.expect("response");
                text(resp.response.into_body()).await
            })
        })
        .collect();
    eventually("3 requests at the upstream", || {
        up.gate.arrived.load(Ordering::SeqCst) == 3
    })
    .await;
    up.gate.open();
    for send in sends {
        send.await.expect("task");
    }
    assert_eq!(up.accepts.load(Ordering::SeqCst), 3);
    eventually("connections back in the pool", || {
        idle_connections(&c.hosts()[0]) == 3
    })
    .await;
    for _ in 0..3 {
        let resp = c.send_http(get("/"), &H1).await.expect("response");
        text(resp.response.into_body()).await;
    }
    assert_eq!(up.accepts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn http1_max_requests_per_connection_rotates_connections() {
    let up = upstream(false).await;
    let mut model = cluster("c", ips(&[up.addr]));
    model.max_requests_per_connection = Some(2);
    let cm = manager(vec![model]).await;
    let c = cm.get("c").expect("cluster");
    for _ in 0..4 {
        let resp = c.send_http(get("/"), &H1).await.expect("response");
        text(resp.response.into_body()).await;
    }
    assert_eq!(up.accepts.load(Ordering::SeqCst), 2);
    eventually("first connection closed", || {
        up.closed.load(Ordering::SeqCst) >= 1
    })
    .await;
}

#[tokio::test]
async fn http1_idle_connections_close_after_idle_timeout() {
    let up = upstream(false).await;
    let mut model = cluster("c", ips(&[up.addr]));
    model.idle_timeout = Some(Duration::from_millis(50));
    let cm = manager(vec![model]).await;
    let c = cm.get("c").expect("cluster");
    let resp = c.send_http(get("/"), &H1).await.expect("response");
    text(resp.response.into_body()).await;
    eventually("idle connection closed by the pool", || {
        up.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    let host = &c.hosts()[0];
    eventually("cx_active back to 0", || {
        host.cx_active.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(idle_connections(host), 0);
}

#[tokio::test]
async fn http2_multiplexes_concurrent_requests_on_one_connection() {
    let up = upstream(true).await;
    let mut model = cluster("c", ips(&[up.addr]));
    model.protocol = UpstreamProtocol::Http2;
    let cm = manager(vec![model]).await;
    let c = cm.get("c").expect("cluster").clone();
    up.gate.close();
    let sends: Vec<_> = (0..8)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                let resp = c
                    .send_http(get(&format!("/s{i}")), &H1)
                    .await
                    .expect("response");
                assert_eq!(resp.response.version(), http::Version::HTTP_2);
                text(resp.response.into_body()).await
            })
        })
        .collect();
    eventually("8 streams at the upstream", || {
        up.gate.arrived.load(Ordering::SeqCst) == 8
    })
    .await;
    up.gate.open();
    for (i, send) in sends.into_iter().enumerate() {
        assert_eq!(
            send.await.expect("task"),
            format!("{} /s{i}", up.addr.port())
        );
    }
    assert_eq!(up.accepts.load(Ordering::SeqCst), 1);
    assert_eq!(open_connections(&c.hosts()[0]), 1);
}

#[tokio::test]
async fn http2_stream_limit_opens_another_connection() {
    let up = upstream(true).await;
    let mut model = cluster("c", ips(&[up.addr]));
    model.protocol = UpstreamProtocol::Http2;
    model.http2.max_concurrent_streams = 2;
    let cm = manager(vec![model]).await;
    let c = cm.get("c").expect("cluster").clone();
    up.gate.close();
    let sends: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                let resp = c.send_http(get("/"), &H1).await.expect("response");
                text(resp.response.into_body()).await
            })
        })
        .collect();
    eventually("4 streams at the upstream", || {
        up.gate.arrived.load(Ordering::SeqCst) == 4
    })
    .await;
    up.gate.open();
    for send in sends {
        send.await.expect("task");
    }
    assert_eq!(up.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn use_downstream_protocol_follows_the_downstream() {
    let up = upstream(true).await;
    let mut model = cluster("c", ips(&[up.addr]));
    model.protocol = UpstreamProtocol::UseDownstream;
    let cm = manager(vec![model]).await;
    let c = cm.get("c").expect("cluster");
    let opts = SendOptions {
        downstream_http2: true,
        upgrade: false,
        auto_host_rewrite: None,
        scheme: super::UpstreamScheme::Http,
    };
    let resp = c.send_http(get("/h2"), &opts).await.expect("response");
    assert_eq!(resp.response.version(), http::Version::HTTP_2);
}

#[tokio::test]
async fn connect_refused_is_a_connect_failure() {
    let addr = closed_port().await;
    let cm = manager(vec![cluster("c", ips(&[addr]))]).await;
    let c = cm.get("c").expect("cluster");
    match c.send_http(get("/"), &H1).await {
        Err(UpstreamError::ConnectFailure { host, reason }) => {
            assert_eq!(host.address.ip(), Some(addr));
            assert_eq!(reason, "delayed connect error: Connection refused");
            assert_eq!(host.cx_connect_fail.load(Ordering::Relaxed), 1);
            assert_eq!(host.rq_error.load(Ordering::Relaxed), 1);
            assert_eq!(host.rq_active.load(Ordering::Relaxed), 0);
        }
        other => panic!("expected a connect failure, got {other:?}"),
    }
    assert!(matches!(
        c.connect_tcp().await,
        Err(UpstreamError::ConnectFailure { .. })
    ));
}

#[tokio::test]
async fn cluster_without_hosts_has_no_healthy_upstream() {
    let cm = manager(vec![cluster("empty", Vec::new())]).await;
    let c = cm.get("empty").expect("cluster");
    assert!(matches!(
        c.send_http(get("/"), &H1).await,
        Err(UpstreamError::NoHealthyUpstream)
    ));
    assert!(cm.get("missing").is_none());
}

#[tokio::test]
async fn max_requests_circuit_breaker_overflows() {
    let up = upstream(false).await;
    let mut model = cluster("c", ips(&[up.addr]));
    model.circuit_breakers.max_requests = 1;
    let cm = manager(vec![model]).await;
    let c = cm.get("c").expect("cluster").clone();
    up.gate.close();
    let first = {
        let c = c.clone();
        tokio::spawn(async move {
            let resp = c.send_http(get("/"), &H1).await.expect("response");
            text(resp.response.into_body()).await
        })
    };
    eventually("first request in flight", || {
        up.gate.arrived.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(matches!(
        c.send_http(get("/"), &H1).await,
        Err(UpstreamError::Overflow)
    ));
    up.gate.open();
    first.await.expect("task");
}

#[tokio::test]
async fn round_robin_spreads_requests_over_hosts() {
    let a = upstream(false).await;
    let b = upstream(false).await;
    let cm = manager(vec![cluster("c", ips(&[a.addr, b.addr]))]).await;
    let c = cm.get("c").expect("cluster");
    let mut seen = BTreeMap::new();
    for _ in 0..10 {
        let resp = c.send_http(get("/"), &H1).await.expect("response");
        *seen
            .entry(resp.host.address.ip().expect("IP host").port())
            .or_insert(0) += 1;
        text(resp.response.into_body()).await;
    }
    assert_eq!(
        seen,
        BTreeMap::from([(a.addr.port(), 5), (b.addr.port(), 5)])
    );
    assert_eq!(a.accepts.load(Ordering::SeqCst), 1);
    assert_eq!(b.accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn strict_dns_cluster_resolves_localhost() {
    let up = upstream(false).await;
    let mut model = cluster(
        "dns",
        vec![EndpointAddress::Dns {
            host: "localhost".to_owned(),
            port: up.addr.port(),
        }],
    );
    model.discovery = DiscoveryType::StrictDns;
    model.dns_lookup_family = DnsLookupFamily::V4Only;
    model.dns_refresh_rate = Duration::from_millis(20);
    let cm = manager(vec![model]).await;
    let c = cm.get("dns").expect("cluster");
    let hosts = c.hosts();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].address.ip(), Some(up.addr));
    assert_eq!(hosts[0].hostname.as_deref(), Some("localhost"));
    let resp = c.send_http(get("/dns"), &H1).await.expect("response");
    assert_eq!(
        text(resp.response.into_body()).await,
        format!("{} /dns", up.addr.port())
    );
    // Refreshes that find the same address keep the same host (and its pool).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(Arc::ptr_eq(&c.hosts()[0], &hosts[0]));
}

#[tokio::test]
async fn logical_dns_cluster_has_one_host() {
    let up = upstream(false).await;
    let mut model = cluster(
        "logical",
        vec![EndpointAddress::Dns {
            host: "localhost".to_owned(),
            port: up.addr.port(),
        }],
    );
    model.discovery = DiscoveryType::LogicalDns;
    model.dns_lookup_family = DnsLookupFamily::All;
    let cm = manager(vec![model]).await;
    let c = cm.get("logical").expect("cluster");
    assert_eq!(c.hosts().len(), 1);
}

#[tokio::test]
async fn clusters_iterate_in_config_order() {
    let cm = manager(vec![cluster("b", Vec::new()), cluster("a", Vec::new())]).await;
    let all = cm.clusters();
    let names: Vec<&str> = all.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["b", "a"]);
}

fn h2_cluster(addr: std::net::SocketAddr) -> baton_config::model::Cluster {
    let mut model = cluster("c", ips(&[addr]));
    model.protocol = UpstreamProtocol::Http2;
    model
}

#[tokio::test]
async fn http2_goaway_moves_to_a_new_connection() {
    let up = upstream(true).await;
    let cm = manager(vec![h2_cluster(up.addr)]).await;
    let c = cm.get("c").expect("cluster");
    let resp = c.send_http(get("/a"), &H1).await.expect("response");
    text(resp.response.into_body()).await;
    up.goaway.notify_waiters();
    eventually("upstream closed the connection", || {
        up.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    let resp = c
        .send_http(get("/b"), &H1)
        .await
        .expect("response after GOAWAY");
    assert_eq!(
        text(resp.response.into_body()).await,
        format!("{} /b", up.addr.port())
    );
    assert_eq!(up.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn http2_idle_connection_closes_after_idle_timeout() {
    let up = upstream(true).await;
    let mut model = h2_cluster(up.addr);
    model.idle_timeout = Some(Duration::from_millis(40));
    let cm = manager(vec![model]).await;
    let c = cm.get("c").expect("cluster");
    let resp = c.send_http(get("/"), &H1).await.expect("response");
    text(resp.response.into_body()).await;
    eventually("idle HTTP/2 connection closed", || {
        up.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    let host = &c.hosts()[0];
    eventually("cx_active back to 0", || {
        host.cx_active.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(open_connections(host), 0);
}

#[tokio::test]
async fn http1_upstream_closing_keep_alive_connection_is_not_reused() {
    let up = upstream(false).await;
    let cm = manager(vec![cluster("c", ips(&[up.addr]))]).await;
    let c = cm.get("c").expect("cluster");
    let resp = c.send_http(get("/a"), &H1).await.expect("response");
    text(resp.response.into_body()).await;
    up.goaway.notify_waiters();
    eventually("upstream closed the idle connection", || {
        up.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    let resp = c
        .send_http(get("/b"), &H1)
        .await
        .expect("response on a new connection");
    text(resp.response.into_body()).await;
    assert_eq!(up.accepts.load(Ordering::SeqCst), 2);
}

/// An idle connection the upstream closes leaves the pool at once, with no request to
/// find out, also after it was taken and parked again (its parked waker's second turn).
#[tokio::test]
async fn http1_upstream_close_of_a_reused_idle_connection_is_noticed_without_a_request() {
    let up = upstream(false).await;
    let cm = manager(vec![cluster("c", ips(&[up.addr]))]).await;
    let c = cm.get("c").expect("cluster");
    for path in ["/a", "/b", "/c"] {
        let resp = c.send_http(get(path), &H1).await.expect("response");
        text(resp.response.into_body()).await;
    }
    assert_eq!(up.accepts.load(Ordering::SeqCst), 1);
    let host = &c.hosts()[0];
    assert_eq!(idle_connections(host), 1);
    up.goaway.notify_waiters();
    eventually("the pool dropped the closed connection", || {
        idle_connections(host) == 0 && host.cx_active.load(Ordering::Relaxed) == 0
    })
    .await;
}

/// The HTTP connection manager may spawn request futures: they must be `Send`.
#[tokio::test]
async fn request_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let cm = manager(vec![cluster("empty", Vec::new())]).await;
    let c = cm.get("empty").expect("cluster");
    let send = c.send_http(get("/"), &H1);
    assert_send(&send);
    let connect = c.connect_tcp();
    assert_send(&connect);
    let (_, server) = tokio::io::duplex(8);
    let local = "127.0.0.1:1".parse().expect("addr");
    let tcp = crate::tcp::proxy_connection(
        server,
        crate::base::conn_info::ConnInfo::plain(local, local),
        Arc::new(
            crate::tcp::TcpProxyRuntime::new(Arc::new(baton_config::model::TcpProxy {
                stat_prefix: "t".into(),
                cluster: baton_config::model::TcpClusterSpecifier::Name("empty".into()),
                idle_timeout: None,
                max_connect_attempts: 1,
                max_downstream_connection_duration: None,
                access_logs: Vec::new(),
            }))
            .expect("runtime"),
        ),
        cm.clone(),
        crate::base::drain::DrainSignal::never(),
    );
    assert_send(&tcp);
    assert!(send.await.is_err());
    assert!(connect.await.is_err());
    tcp.await;
}

#[tokio::test]
async fn refresh_health_moves_traffic_off_unhealthy_hosts() {
    let a = closed_port().await;
    let b = closed_port().await;
    let cm = manager(vec![cluster("c", ips(&[a, b]))]).await;
    let c = cm.get("c").expect("cluster");
    let hosts = c.hosts();
    hosts[0].healthy.store(false, Ordering::Relaxed);
    hosts[1].healthy.store(true, Ordering::Relaxed);
    c.refresh_health();
    for _ in 0..4 {
        assert_eq!(c.pick_host().expect("host").address.ip(), Some(b));
    }
}
