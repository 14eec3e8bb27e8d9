//! HTTP/2 `connection_keepalive` on upstream connections, against a bare HTTP/2 peer
//! that sees every frame: PINGs arrive every `interval` while a stream waits, and a
//! connection whose PINGs go unanswered for `timeout` is closed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_config::model::{Http2Keepalive, UpstreamProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::test_support::*;
use super::{ClusterManager, SendOptions};

const FRAME_SETTINGS: u8 = 4;
const FRAME_PING: u8 = 6;
const FLAG_ACK: u8 = 1;

/// One HTTP/2 connection's server side that answers SETTINGS, counts PINGs (answering
/// them when `answer_pings`) and never answers a request.
struct BarePeer {
    addr: SocketAddr,
    pings: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BarePeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
    out.extend_from_slice(payload);
    out
}

async fn bare_peer(answer_pings: bool) -> BarePeer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let pings = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    let (seen, done) = (pings.clone(), closed.clone());
    let task = tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut preface = [0u8; 24];
        if stream.read_exact(&mut preface).await.is_err()
            || stream
                .write_all(&frame(FRAME_SETTINGS, 0, &[]))
                .await
                .is_err()
        {
            return;
        }
        loop {
            let mut header = [0u8; 9];
            if stream.read_exact(&mut header).await.is_err() {
                break;
            }
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let mut payload = vec![0u8; len];
            if stream.read_exact(&mut payload).await.is_err() {
                break;
            }
            let reply = match (header[3], header[4] & FLAG_ACK) {
                (FRAME_SETTINGS, 0) => Some(frame(FRAME_SETTINGS, FLAG_ACK, &[])),
                (FRAME_PING, 0) => {
                    seen.fetch_add(1, Ordering::SeqCst);
                    answer_pings.then(|| frame(FRAME_PING, FLAG_ACK, &payload))
                }
                _ => None,
            };
            if let Some(reply) = reply {
                if stream.write_all(&reply).await.is_err() {
                    break;
                }
            }
        }
        done.store(true, Ordering::SeqCst);
    });
    BarePeer {
        addr,
        pings,
        closed,
        task,
    }
}

async fn cluster_with_keepalive(addr: SocketAddr, timeout: Duration) -> Arc<ClusterManager> {
    let mut model = cluster("c", ips(&[addr]));
    model.protocol = UpstreamProtocol::Http2;
    model.http2.keepalive = Some(Http2Keepalive {
        interval: Duration::from_millis(100),
        timeout,
    });
    ClusterManager::initialize(&[Arc::new(model)])
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
async fn pings_are_sent_every_interval() {
    let peer = bare_peer(true).await;
    let cm = cluster_with_keepalive(peer.addr, Duration::from_secs(5)).await;
    let c = cm.get("c").expect("cluster");
    let request = tokio::spawn(async move { c.send_http(get("/"), &H1).await.is_ok() });
    eventually("three PINGs", || peer.pings.load(Ordering::SeqCst) >= 3).await;
    assert!(
        !peer.closed.load(Ordering::SeqCst),
        "answered PINGs keep the connection"
    );
    request.abort();
}

#[tokio::test]
async fn unanswered_ping_closes_the_connection() {
    let peer = bare_peer(false).await;
    let cm = cluster_with_keepalive(peer.addr, Duration::from_millis(200)).await;
    let c = cm.get("c").expect("cluster");
    let request = tokio::spawn(async move { c.send_http(get("/"), &H1).await.is_ok() });
    eventually("the connection closed", || {
        peer.closed.load(Ordering::SeqCst)
    })
    .await;
    assert!(peer.pings.load(Ordering::SeqCst) >= 1);
    assert!(!request.await.expect("task"), "the waiting request fails");
}
