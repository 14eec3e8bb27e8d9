//! The per-worker accept loop: accepts on a (shared) listen socket until its listener
//! stops accepting (removed, replaced, drained, shutdown), picks the filter chain from
//! the listener's current snapshot and runs the chain's network filter on this worker's
//! runtime. The connection keeps that chain (runtime and drain) to its end.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::filter_chain::MatchInput;
use super::limits::{ChainSlot, GlobalConnectionLimit, GlobalSlot};
use super::proxy_protocol;
use super::snapshot::{ChainNetwork, CompiledChain, ListenerHandle, ListenerSnapshot};
use super::tracker::ConnectionTracker;
use crate::base::conn_info::{ConnInfo, TlsInfo};
use crate::http::HttpContext;
use crate::stats::{record_ms, ListenerStats, WorkerListenerStats};
use crate::tls::inspector::PeerClose;
use crate::tls::stats::HandshakeFacts;
use crate::tls::{self, PeerCertificate, ServerTls, SslStats};
use crate::upstream::ClusterManager;

/// What network filters need from the server.
pub struct NetworkContext {
    /// HTTP connection manager context (clusters).
    pub http: Arc<HttpContext>,
    /// Cluster manager for tcp_proxy.
    pub clusters: Arc<ClusterManager>,
    /// Open downstream connections.
    pub tracker: Arc<ConnectionTracker>,
    /// The overload manager's global downstream connection limit (shared by workers).
    pub global_limit: Arc<GlobalConnectionLimit>,
}

/// A worker's `listener.<address>.worker_<n>.*` stats and the listener stats they
/// belong to.
pub type WorkerStatsOf = (Arc<ListenerStats>, Arc<WorkerListenerStats>);

/// Accepts connections for one listener on worker `worker.0` until it stops accepting;
/// `worker.1` holds the worker's stats under the listener's stats of the moment
/// (resolved again only when an update brings new listener stats).
pub async fn accept_loop(
    socket: TcpListener,
    listener: Arc<ListenerHandle>,
    ctx: Arc<NetworkContext>,
    worker: (usize, WorkerStatsOf),
) {
    let mut stop = listener.stopped();
    let (worker, worker_stats) = worker;
    let mut counts = Arc::new(AcceptCounts {
        listener: worker_stats.0,
        worker: worker_stats.1,
        tracker: Arc::clone(&ctx.tracker),
    });
    // Accepts since the loop last let the worker's other tasks run, and the limit of
    // `max_connections_to_accept_per_socket_event` (from the latest snapshot seen): the
    // rest are accepted after the worker's other ready work has had its turn.
    let mut accepted_in_row: u32 = 0;
    let mut max_in_row = u32::MAX;
    loop {
        if accepted_in_row >= max_in_row {
            accepted_in_row = 0;
            tokio::task::yield_now().await;
        }
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            r = socket.accept() => r,
        };
        let (stream, remote) = match accepted {
            Ok(x) => {
                accepted_in_row = accepted_in_row.saturating_add(1);
                x
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning.
                warn!(listener = %listener.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(_) => continue,
        };
        let snapshot = listener.snapshot();
        max_in_row = snapshot
            .model
            .max_accepts_per_event
            .map_or(u32::MAX, |n| n.get());
        if !Arc::ptr_eq(&counts.listener, &snapshot.stats) {
            counts = Arc::new(AcceptCounts {
                listener: Arc::clone(&snapshot.stats),
                worker: Arc::new(snapshot.stats.worker(worker)),
                tracker: Arc::clone(&ctx.tracker),
            });
        }
        let conn_counts = Arc::clone(&counts);
        let global_slot = if snapshot.model.ignore_global_conn_limit {
            None
        } else {
            match ctx.global_limit.try_open() {
                Ok(slot) => slot,
                Err(_) => {
                    // As Envoy: closed at once, counted by the listener only here.
                    debug!(listener = %listener.name, %remote, "global connection limit reached; closing");
                    snapshot.stats.downstream_global_cx_overflow.inc();
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo::plain(remote, local);
        if snapshot.model.tls_inspector || snapshot.model.proxy_protocol.is_some() {
            // The PROXY header or the ClientHello may still be in flight: read them off
            // the accept loop.
            tokio::spawn(inspect_then_start(
                stream,
                conn,
                snapshot,
                Arc::clone(&ctx),
                global_slot,
                conn_counts,
            ));
            continue;
        }
        let chain = snapshot.select(MatchInput {
            conn: &conn,
            transport_protocol: "raw_buffer",
            application_protocols: &[],
        });
        let Some(chain) = chain else {
            debug!(listener = %listener.name, %remote, "no filter chain matched; closing");
            snapshot.stats.no_filter_chain_match.inc();
            continue;
        };
        start(
            stream,
            conn,
            &snapshot,
            chain,
            &ctx,
            global_slot,
            conn_counts,
            None,
        );
    }
    debug!(listener = %listener.name, "stopped accepting");
}

/// The listener filters (`proxy_protocol`, then `tls_inspector`), then chain selection
/// with what they read. `listener_filters_timeout` bounds them together.
async fn inspect_then_start(
    stream: TcpStream,
    mut conn: ConnInfo,
    snapshot: Arc<ListenerSnapshot>,
    ctx: Arc<NetworkContext>,
    global_slot: Option<GlobalSlot>,
    counts: Arc<AcceptCounts>,
) {
    let stats = &snapshot.stats;
    let deadline = snapshot
        .model
        .listener_filters_timeout
        .map(|limit| tokio::time::Instant::now() + limit);
    stats.downstream_pre_cx_active.inc();
    let proceed = read_proxy_protocol(&stream, &mut conn, &snapshot, deadline).await;
    if !proceed {
        stats.downstream_pre_cx_active.dec();
        return;
    }
    let inspected = if !snapshot.model.tls_inspector {
        Ok(Ok(tls::ClientHelloInfo::default()))
    } else {
        match deadline {
            Some(at) => tokio::time::timeout_at(at, tls::inspect(&stream, PeerClose::Ends)).await,
            None => Ok(tls::inspect(&stream, PeerClose::Ends).await),
        }
    };
    stats.downstream_pre_cx_active.dec();
    let inspector = tls::inspector::InspectorStats::get();
    let hello = match inspected {
        Ok(Ok(hello)) => {
            inspector.record(&hello);
            hello
        }
        Ok(Err(e)) => {
            debug!(remote = %conn.remote, error = %e, "tls_inspector: closing");
            match e {
                tls::inspector::InspectError::Closed => {
                    stats.downstream_listener_filter_remote_close.inc()
                }
                tls::inspector::InspectError::TooLarge => inspector.client_hello_too_large.inc(),
                tls::inspector::InspectError::Io(_) => stats.downstream_listener_filter_error.inc(),
            }
            return;
        }
        Err(_) if snapshot.model.continue_on_listener_filters_timeout => {
            stats.downstream_pre_cx_timeout.inc();
            tls::ClientHelloInfo::default()
        }
        Err(_) => {
            debug!(remote = %conn.remote, "listener_filters_timeout: closing");
            stats.downstream_pre_cx_timeout.inc();
            return;
        }
    };
    conn.server_name = hello.server_name.map(String::into_boxed_str);
    let chain = snapshot.select(MatchInput {
        conn: &conn,
        transport_protocol: if hello.tls { "tls" } else { "raw_buffer" },
        application_protocols: &hello.alpn,
    });
    let Some(chain) = chain else {
        debug!(remote = %conn.remote, "no filter chain matched; closing");
        stats.no_filter_chain_match.inc();
        return;
    };
    // The handshake (`ssl.ocsp_staple_*`, ALPN) need not peek at the ClientHello again.
    let hello_facts = hello.tls.then_some(HelloFacts {
        status_request: hello.status_request,
        alpn: hello.alpn,
        suites: hello.suites,
        server_name_as_sent: hello.server_name_as_sent,
        ecdsa_p256_signatures: hello.ecdsa_p256_signatures,
    });
    start(
        stream,
        conn,
        &snapshot,
        chain,
        &ctx,
        global_slot,
        counts,
        hello_facts,
    );
}

/// The `proxy_protocol` listener filter, when the listener runs it: the connection takes
/// the header's addresses. False: the connection is to be closed (counted).
async fn read_proxy_protocol(
    stream: &TcpStream,
    conn: &mut ConnInfo,
    snapshot: &ListenerSnapshot,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    let (Some(config), Some(pp_stats)) = (&snapshot.model.proxy_protocol, &snapshot.proxy_protocol)
    else {
        return true;
    };
    let read = proxy_protocol::read(stream, config, pp_stats);
    let outcome = match deadline {
        Some(at) => tokio::time::timeout_at(at, read).await,
        None => Ok(read.await),
    };
    match outcome {
        Ok(Ok(proxy_protocol::Outcome::Proceed(addresses))) => {
            if let Some(addresses) = addresses {
                conn.proxied(addresses);
            }
            true
        }
        Ok(Ok(proxy_protocol::Outcome::Close)) => {
            debug!(remote = %conn.remote, "proxy_protocol: no valid PROXY header; closing");
            false
        }
        Ok(Err(e)) => {
            debug!(remote = %conn.remote, error = %e, "proxy_protocol: closing");
            snapshot.stats.downstream_listener_filter_remote_close.inc();
            false
        }
        Err(_) if snapshot.model.continue_on_listener_filters_timeout => {
            snapshot.stats.downstream_pre_cx_timeout.inc();
            true
        }
        Err(_) => {
            debug!(remote = %conn.remote, "listener_filters_timeout: closing");
            snapshot.stats.downstream_pre_cx_timeout.inc();
            false
        }
    }
}

/// Runs `chain` on an accepted connection: its `connection_limit` first, then plain
/// text straight away, TLS after the handshake. The connection holds its global-limit
/// slot (if counted) and its count in the listener's and its worker's stats until it
/// closes.
/// `hello_facts`: what the handshake needs of the ClientHello (an OCSP staple
/// asked, the ALPN offered), when the `tls_inspector` already read it.
#[allow(clippy::too_many_arguments)]
fn start(
    stream: TcpStream,
    conn: ConnInfo,
    snapshot: &Arc<ListenerSnapshot>,
    chain: &Arc<CompiledChain>,
    ctx: &Arc<NetworkContext>,
    global_slot: Option<GlobalSlot>,
    counts: Arc<AcceptCounts>,
    hello_facts: Option<HelloFacts>,
) {
    let listener_connection = ListenerConnection::open(counts);
    let chain_slot = match &chain.connection_limit {
        Some(limit) => match limit.try_open() {
            Ok(slot) => Some(slot),
            Err(_) => {
                // The filter runs after the connection is counted by the listener and
                // before the terminal filter: nothing is read, no upstream is opened,
                // and the socket is closed after `delay`.
                debug!(remote = %conn.remote, "connection_limit reached; closing");
                let delay = limit.delay;
                let guard = (listener_connection, global_slot);
                tokio::spawn(async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    drop(stream);
                    drop(guard);
                });
                return;
            }
        },
        None => None,
    };
    let guard: ConnGuard = (listener_connection, global_slot, chain_slot);
    let signal = chain.drain_signal();
    let chain = Arc::clone(chain);
    let ctx = Arc::clone(ctx);
    match &chain.tls {
        None => {
            tokio::spawn(serve(stream, conn, &chain, &ctx, signal, guard));
        }
        Some(tls) => {
            let tls = Arc::clone(tls);
            let ssl = snapshot.ssl_stats.clone();
            let stats = Arc::clone(&snapshot.stats);
            tokio::spawn(async move {
                let timeout = chain.model.transport_socket_connect_timeout;
                let limits = HandshakeLimits {
                    timeout,
                    hello_facts,
                };
                if let Some((stream, conn)) =
                    handshake(stream, conn, &tls, limits, ssl.as_deref(), &stats).await
                {
                    serve(stream, conn, &chain, &ctx, signal, guard).await;
                }
            });
        }
    }
}

/// The chain's network filter over `io` (a TCP or TLS stream); `guard` counts the
/// connection until it ends (an HTTP connection keeps it while parked, past its first
/// task). A sync function, so that the future holds only what the filter keeps (not
/// `io` and `conn` a second time); the TCP proxy's future is boxed, so that an HTTP
/// connection does not carry room for it.
fn serve<IO, G>(
    io: IO,
    conn: ConnInfo,
    chain: &CompiledChain,
    ctx: &NetworkContext,
    signal: crate::base::drain::DrainSignal,
    guard: G,
) -> impl std::future::Future<Output = ()> + Send
where
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + crate::http::Reregister
        + crate::http::ReadReadiness
        + Unpin
        + Send
        + 'static,
    G: Send + 'static,
{
    use futures_util::future::Either;
    match &chain.network {
        ChainNetwork::Http(rt) => Either::Left(crate::http::serve_connection(
            io,
            conn,
            Arc::clone(rt),
            Arc::clone(&ctx.http),
            signal,
            guard,
        )),
        ChainNetwork::Tcp(rt) => {
            let proxied = crate::tcp::proxy_connection(
                io,
                conn,
                Arc::clone(rt),
                Arc::clone(&ctx.clusters),
                signal,
            );
            Either::Right(Box::pin(async move {
                proxied.await;
                drop(guard);
            }))
        }
    }
}

/// What a handshake needs besides the socket: `transport_socket_connect_timeout`, and
/// the ClientHello's facts when already known.
struct HandshakeLimits {
    timeout: Option<Duration>,
    hello_facts: Option<HelloFacts>,
}

/// What the handshake uses of the ClientHello: whether it asks for an OCSP staple
/// (`ssl.ocsp_staple_*`; rustls does not tell), the ALPN protocols it offers (none
/// shared: no protocol, as Envoy) and its suites (the TLS 1.2 suite order), see
/// [`ServerTls::config_for`].
#[derive(Debug, Default)]
struct HelloFacts {
    status_request: bool,
    alpn: Vec<Vec<u8>>,
    suites: Option<tls::cipher_order::ClientSuites>,
    server_name_as_sent: Option<String>,
    ecdsa_p256_signatures: bool,
}

/// The server handshake, bounded by `transport_socket_connect_timeout`, counted in
/// `ssl.*`. `None`: it failed and the connection is closed.
async fn handshake(
    stream: TcpStream,
    mut conn: ConnInfo,
    tls: &ServerTls,
    HandshakeLimits {
        timeout,
        hello_facts,
    }: HandshakeLimits,
    ssl: Option<&SslStats>,
    stats: &ListenerStats,
) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, ConnInfo)> {
    if !tls.secrets_ready() {
        // As Envoy: read the ClientHello, then close without an alert.
        let read_hello = crate::tls::server::read_client_hello(stream);
        match timeout {
            Some(limit) => {
                let _ = tokio::time::timeout(limit, read_hello).await;
            }
            None => read_hello.await,
        }
        return None;
    }
    // rustls does not tell whether the client asked for an OCSP staple: a peek at the
    // ClientHello (left in the socket for rustls) does, for `ssl.ocsp_staple_*`.
    let accept = async {
        let facts = match hello_facts {
            Some(facts) => facts,
            None => match crate::tls::inspect(&stream, PeerClose::ReadFirst).await {
                Ok(hello) => HelloFacts {
                    status_request: hello.status_request,
                    alpn: hello.alpn,
                    suites: hello.suites,
                    server_name_as_sent: hello.server_name_as_sent,
                    ecdsa_p256_signatures: hello.ecdsa_p256_signatures,
                },
                // Not a ClientHello rustls can use either: it reports the error.
                Err(crate::tls::inspector::InspectError::TooLarge) => HelloFacts::default(),
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, e)),
            },
        };
        let config = tls.config_for(&facts.alpn, facts.suites.as_ref());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
        let scope = crate::tls::HelloScope {
            staple_requested: facts.status_request,
            server_name_as_sent: facts.server_name_as_sent,
            ecdsa_p256_signatures: facts.ecdsa_p256_signatures,
        };
        crate::tls::with_hello(scope, acceptor.accept(stream)).await
    };
    let result = match timeout {
        Some(limit) => match tokio::time::timeout(limit, accept).await {
            Ok(r) => r,
            Err(_) => {
                // No TLS error happened: Envoy counts only the timeout.
                stats.downstream_cx_transport_socket_connect_timeout.inc();
                return None;
            }
        },
        None => accept.await,
    };
    let stream = match result {
        Ok(s) => s,
        Err(e) => {
            if let Some(ssl) = ssl {
                count_handshake_error(ssl, &e);
            }
            debug!(remote = %conn.remote, error = %e, "TLS handshake failed");
            return None;
        }
    };
    let (_, session) = stream.get_ref();
    let facts = HandshakeFacts::of(session);
    let peer_chain: Vec<_> = session
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
        .unwrap_or_default();
    if let Some(ssl) = ssl {
        ssl.record_handshake(&facts);
        if peer_chain.is_empty() {
            ssl.no_certificate.inc();
        }
    }
    conn.tls = true;
    let peer_validated = !peer_chain.is_empty() && !facts.resumed && tls.validates_peer_chain();
    conn.tls_info = Some(Arc::new(TlsInfo {
        version: facts.version,
        cipher: facts.cipher,
        peer: peer_chain.first().and_then(PeerCertificate::parse),
        peer_chain,
        local_uri_san: tls.local_uri_san.clone(),
        local_subject: tls.local_subject.clone(),
        local_dns_san: tls.local_dns_san.clone(),
        peer_validated,
    }));
    Some((stream, conn))
}

/// Counts a failed handshake as Envoy does: a missing client certificate in
/// `fail_verify_no_cert`; a rejected one was counted by the verifier
/// (`fail_verify_error` / `fail_verify_san`); a peer closing mid-handshake is not an
/// error; anything else (plain text, bad records) is a `connection_error`.
fn count_handshake_error(ssl: &SslStats, error: &std::io::Error) {
    let cause = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match cause {
        Some(rustls::Error::NoCertificatesPresented) => ssl.fail_verify_no_cert.inc(),
        Some(rustls::Error::InvalidCertificate(_)) => {}
        Some(_) => ssl.connection_error.inc(),
        None if matches!(
            error.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
        ) => {}
        None => ssl.connection_error.inc(),
    }
}

/// What an accept loop counts each connection it accepts in: the listener's stats (of
/// the snapshot it was accepted under), its worker's, and the process's open
/// connections. One per accept loop and listener stats, so that a connection holds one
/// reference for all of them.
pub(crate) struct AcceptCounts {
    listener: Arc<ListenerStats>,
    worker: Arc<WorkerListenerStats>,
    tracker: Arc<ConnectionTracker>,
}

/// What counts an accepted connection until it ends (the network filter holds it): the
/// listener's count, its global-limit slot (if counted) and its chain's
/// `connection_limit` slot. Named so that the HTTP connection manager's parked set can
/// hold the common kind of parked connection unboxed (`http::parked`).
pub(crate) type ConnGuard = (ListenerConnection, Option<GlobalSlot>, Option<ChainSlot>);

/// Counts one connection in `listener.<address>.*`, its worker's
/// `listener.<address>.worker_<n>.*` and the connection tracker until dropped.
pub(crate) struct ListenerConnection {
    counts: Arc<AcceptCounts>,
    opened: std::time::Instant,
}

impl ListenerConnection {
    fn open(counts: Arc<AcceptCounts>) -> Self {
        counts.tracker.count_open();
        counts.listener.downstream_cx_total.inc();
        counts.listener.downstream_cx_active.inc();
        counts.worker.downstream_cx_total.inc();
        counts.worker.downstream_cx_active.inc();
        Self {
            counts,
            opened: std::time::Instant::now(),
        }
    }
}

impl Drop for ListenerConnection {
    fn drop(&mut self) {
        let counts = &self.counts;
        counts.listener.downstream_cx_active.dec();
        counts.worker.downstream_cx_active.dec();
        counts.listener.downstream_cx_destroy.inc();
        record_ms(
            &counts.listener.downstream_cx_length_ms,
            self.opened.elapsed(),
        );
        counts.tracker.count_closed();
    }
}
