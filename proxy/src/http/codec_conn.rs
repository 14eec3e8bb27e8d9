//! hyper's side of one downstream connection, which lets an idle HTTP/1 keep-alive
//! connection hold no hyper state. Between exchanges, once every response went out
//! whole and the client has sent nothing more, `DownstreamIo` ends hyper's HTTP/1
//! connection with a pretend end of stream (hyper's read and write buffers, 8 KiB
//! each, and its dispatcher go with it); the connection then waits for the client's
//! next bytes on the bare socket (parked), and those start a new hyper connection over
//! the same `DownstreamIo`, so counters, timers and the framing check carry on. A
//! pipelined or already-sent request never parks (the read would not block), and a
//! connection parks only after [`PARK_AFTER`] without a new request, so that a
//! keep-alive connection in use does not pay for a new hyper connection per request
//! (its park timer wakes it at most once per `PARK_AFTER`). A connection whose first
//! bytes were the whole HTTP/2 preface is served by Baton's own HTTP/2 codec
//! (`lean_h2::driver`) for its whole life, or with `BATON_H2_CODEC=hyper` by hyper's
//! HTTP/2 connection, its streams polled in this future rather than spawned
//! (`h2_streams`); an
//! AUTO connection whose first read held only the start of the preface runs hyper-util's
//! protocol-detecting connection, as before.
//!
//! An HTTP/1 connection is served first by the lean loop (`codec::lean_conn`), which
//! answers the common exchange itself and hands anything else to hyper's HTTP/1
//! connection at that request's first byte; the loop parks the same way, ending when it
//! has waited [`PARK_AFTER`] for a next request. `BATON_HTTP1_SERVER=hyper` in the
//! environment leaves every HTTP/1 exchange to hyper (for comparisons).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use baton_config::model::HttpConnectionManager;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use super::codec::h2_streams::{LocalStreams, StreamExecutor};
use super::codec::lean_conn::{LeanBody, LeanConn, LeanEnd};
use super::codec::{self, DownstreamBody, DownstreamIo};
use super::lean_h2;
use super::lean_h2::driver::Driver;
use super::park_socket::ReadReadiness;
use super::stream::ConnShared;
use super::ResponseBody;

/// How long an HTTP/1 connection waits for a next request before it parks.
pub(super) const PARK_AFTER: Duration = Duration::from_millis(100);

/// A boxed error from either codec (the connection manager looks for hyper's).
pub(super) type CodecError = Box<dyn std::error::Error + Send + Sync>;

type Io<IO> = TokioIo<DownstreamIo<IO>>;
type Http1Conn<IO, S> = hyper::server::conn::http1::UpgradeableConnection<Io<IO>, HyperService<S>>;
type Http2Conn<IO, S> =
    hyper::server::conn::http2::Connection<Io<IO>, HyperService<S>, StreamExecutor>;
type AutoConn<IO, S> = auto::UpgradeableConnection<'static, Io<IO>, HyperService<S>, TokioExecutor>;
/// The lean HTTP/1.1 loop serving the connection (boxed once per active period).
type LeanServing<IO> = Pin<Box<dyn Future<Output = io::Result<LeanEnd<DownstreamIo<IO>>>> + Send>>;

/// The connection manager's service as hyper's servers call it: their request bodies
/// are hyper's.
#[derive(Clone)]
pub(super) struct HyperService<S>(S);

impl<S> Service<Request<Incoming>> for HyperService<S>
where
    S: Service<Request<DownstreamBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: Request<Incoming>) -> S::Future {
        let http2 = req.version() == http::Version::HTTP_2;
        self.0
            .call(req.map(|body| DownstreamBody::from_hyper(body, http2)))
    }
}

/// Where the connection's codec is.
enum State<IO, S>
where
    S: Service<Request<DownstreamBody>, Response = Response<ResponseBody>>,
    S::Error: Into<CodecError>,
{
    /// No hyper connection: waiting for the client's first or next bytes.
    Parked(DownstreamIo<IO>),
    /// The lean HTTP/1.1 loop.
    Lean(LeanServing<IO>),
    /// hyper's HTTP/1 connection, which parks when the connection goes idle.
    Http1(Box<Http1Conn<IO, S>>),
    /// hyper's HTTP/2 connection (the first bytes were the whole preface) and its
    /// streams.
    Http2(Box<Http2Serving<IO, S>>),
    /// hyper-util's connection (AUTO bytes that began like the preface but were too few
    /// to tell).
    Auto(Pin<Box<AutoConn<IO, S>>>),
    /// Baton's own HTTP/2 codec (the default, see `lean_h2::driver::enabled`; the first
    /// bytes began like the preface).
    LeanH2(Pin<Box<Driver<IO, S>>>),
    /// A parked connection told to close: its write side shuts, as hyper's would.
    Closing(DownstreamIo<IO>),
    /// Parked after an exchange and handed back to the caller (see
    /// [`CodecConnection::releasing_parked`]): the future has ended.
    Released(DownstreamIo<IO>),
    Done,
}

/// hyper's HTTP/2 connection and the streams it started, polled together (see
/// `h2_streams`). The connection is declared first so that it drops first, as when the
/// streams were tasks that outlived it: h2 fails the streams left, which then finish in
/// a task of their own.
pub(super) struct Http2Serving<IO, S>
where
    S: Service<Request<DownstreamBody>, Response = Response<ResponseBody>>,
    S::Error: Into<CodecError>,
{
    conn: Pin<Box<Http2Conn<IO, S>>>,
    streams: LocalStreams,
}

impl<IO, S> Http2Serving<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<DownstreamBody>, Response = Response<ResponseBody>> + Clone + Unpin + Send,
    S: 'static,
    S::Future: Send + 'static,
    S::Error: Into<CodecError>,
{
    /// Polls the streams that were woken, then the connection (which writes what they
    /// sent and accepts new streams), then the streams it accepted. When the connection
    /// ends, the streams left finish after it, on their own (see `LocalStreams`' drop).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        self.streams.poll_ready(cx);
        let conn = &mut self.conn;
        let (res, started) = self.streams.accepting(|| conn.as_mut().poll(cx));
        if res.is_pending() && started {
            self.streams.poll_ready(cx);
        }
        res
    }
}

/// The codec future of one downstream connection: ends when the connection does.
pub(super) struct CodecConnection<IO, S>
where
    S: Service<Request<DownstreamBody>, Response = Response<ResponseBody>>,
    S::Error: Into<CodecError>,
{
    state: State<IO, S>,
    service: S,
    hcm: Arc<HttpConnectionManager>,
    shared: Arc<ConnShared>,
    /// `graceful_shutdown` was asked for.
    shutdown: bool,
    /// How long an idle HTTP/1 connection waits before it parks ([`PARK_AFTER`]).
    park_after: Duration,
    /// Wakes an idle HTTP/1 connection to park (kept while hyper's connection runs).
    park_timer: Option<Pin<Box<Sleep>>>,
    /// The park timer is set, for a connection idle since `park_heads` requests.
    park_armed: bool,
    park_heads: u64,
    /// End the future when the connection parks after an exchange, handing the I/O
    /// back ([`Self::take_released`]) instead of waiting for readability here.
    release_parked: bool,
}

impl<IO, S> CodecConnection<IO, S>
where
    IO: AsyncRead + AsyncWrite + ReadReadiness + Unpin + Send + 'static,
    S: Service<Request<DownstreamBody>, Response = Response<ResponseBody>> + Clone + Unpin + Send,
    S: 'static,
    S::Future: Send + 'static,
    S::Error: Into<CodecError>,
{
    /// Serves `io` (whose first bytes, if already read, wait in its replay buffer) with
    /// `service`; hyper's connection starts once the client has sent something.
    pub(super) fn new(
        io: DownstreamIo<IO>,
        service: S,
        hcm: Arc<HttpConnectionManager>,
        shared: Arc<ConnShared>,
    ) -> Self {
        Self {
            state: State::Parked(io),
            service,
            hcm,
            shared,
            shutdown: false,
            park_after: PARK_AFTER,
            park_timer: None,
            park_armed: false,
            park_heads: 0,
            release_parked: false,
        }
    }

    /// Makes the future end (`Ok`) when the connection parks after an exchange, so
    /// that the caller can wait for the client's next bytes with less state than this
    /// future and its service hold; [`Self::take_released`] then has the I/O.
    pub(super) fn releasing_parked(mut self) -> Self {
        self.release_parked = true;
        self
    }

    /// The I/O of a connection that parked and ended the future (`releasing_parked`).
    pub(super) fn take_released(&mut self) -> Option<DownstreamIo<IO>> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Released(io) => Some(io),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// True when the HTTP/1 connection has been idle (its I/O saw hyper wait for a
    /// request that has not begun) for `park_after` with no request since: then
    /// `park_now` lets its next idle read end hyper's connection. Registers the timer's
    /// wake-up otherwise. The timer is not moved per request: when it fires after
    /// requests came, it is set again from then.
    fn poll_park_due(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.shared.idle_read.load(Ordering::Relaxed)
            || self.shared.park_now.load(Ordering::Relaxed)
        {
            return false;
        }
        if self.park_after.is_zero() {
            return true;
        }
        let heads = self.shared.request_heads.load(Ordering::Relaxed);
        loop {
            if !self.park_armed {
                let at = Instant::now() + self.park_after;
                match &mut self.park_timer {
                    Some(timer) => timer.as_mut().reset(at),
                    None => self.park_timer = Some(Box::pin(tokio::time::sleep_until(at))),
                }
                self.park_armed = true;
                self.park_heads = heads;
            }
            let Some(timer) = &mut self.park_timer else {
                return false;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            self.park_armed = false;
            if heads == self.park_heads {
                return true;
            }
        }
    }

    /// Closes the connection once the exchange in progress (if any) is over: hyper's
    /// graceful shutdown, or at once when parked.
    pub(super) fn graceful_shutdown(mut self: Pin<&mut Self>) {
        self.shutdown = true;
        // Read by the lean loop when next polled (the connection's task polls it next).
        self.shared.shutdown_asked.store(true, Ordering::Relaxed);
        match &mut self.state {
            State::Http1(conn) => Pin::new(&mut **conn).graceful_shutdown(),
            State::Http2(h2) => h2.conn.as_mut().graceful_shutdown(),
            State::Auto(conn) => conn.as_mut().graceful_shutdown(),
            State::LeanH2(driver) => driver.as_mut().get_mut().graceful_shutdown(),
            State::Parked(_)
            | State::Lean(_)
            | State::Closing(_)
            | State::Released(_)
            | State::Done => {}
        }
    }

    /// The lean loop or a hyper connection for `io`, which has bytes to read.
    fn serve(&self, io: DownstreamIo<IO>) -> State<IO, S> {
        if io.is_http1() && codec::lean_http1() {
            self.serve_lean(io)
        } else {
            self.serve_hyper(io)
        }
    }

    /// The lean HTTP/1.1 loop for `io`, starting with the bytes it has read.
    fn serve_lean(&self, mut io: DownstreamIo<IO>) -> State<IO, S> {
        let unread = io.take_unread();
        let limits = codec::framing_limits(&self.hcm);
        let mut conn =
            LeanConn::new(io, limits, unread).idling(self.park_after, self.shared.clone());
        if self.shutdown {
            conn.close_after_next();
        }
        let service = self.service.clone();
        State::Lean(Box::pin(conn.serve(move |req: Request<LeanBody>| {
            service.call(req.map(DownstreamBody::Lean))
        })))
    }

    /// A hyper connection for `io`, which has bytes to read.
    fn serve_hyper(&self, mut io: DownstreamIo<IO>) -> State<IO, S> {
        let service = HyperService(self.service.clone());
        if io.is_http1() {
            io.enable_park(true);
            let conn = codec::http1_builder(&self.hcm)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let mut conn = Box::new(conn);
            if self.shutdown {
                Pin::new(&mut *conn).graceful_shutdown();
            }
            State::Http1(conn)
        } else if lean_h2::driver::serves(&self.hcm) {
            // The first bytes began like the preface (the codec checks the rest, and
            // answers a bad one as Envoy does).
            let mut driver = Box::pin(Driver::new(io, self.service.clone(), self.shared.clone()));
            if self.shutdown {
                driver.as_mut().get_mut().graceful_shutdown();
            }
            State::LeanH2(driver)
        } else if io.has_h2_preface() {
            // hyper-util's connection would pick HTTP/2 too; hyper's alone is smaller
            // than the one that can hold either protocol (and the builder it copies).
            let (streams, exec) = LocalStreams::new();
            let conn =
                codec::http2_builder(&self.hcm, exec).serve_connection(TokioIo::new(io), service);
            let mut conn = Box::pin(conn);
            if self.shutdown {
                conn.as_mut().graceful_shutdown();
            }
            State::Http2(Box::new(Http2Serving { conn, streams }))
        } else {
            let conn = codec::builder(&self.hcm)
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            let mut conn = Box::pin(conn);
            if self.shutdown {
                conn.as_mut().graceful_shutdown();
            }
            State::Auto(conn)
        }
    }
}

impl<IO, S> Future for CodecConnection<IO, S>
where
    IO: AsyncRead + AsyncWrite + ReadReadiness + Unpin + Send + 'static,
    S: Service<Request<DownstreamBody>, Response = Response<ResponseBody>> + Clone + Unpin + Send,
    S: 'static,
    S::Future: Send + 'static,
    S::Error: Into<CodecError>,
{
    type Output = Result<(), CodecError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Parked(io) => {
                    if this.shutdown {
                        let State::Parked(io) = std::mem::replace(&mut this.state, State::Done)
                        else {
                            unreachable!("state checked above")
                        };
                        this.state = State::Closing(io);
                        continue;
                    }
                    let ready = std::task::ready!(io.poll_unpark(cx));
                    let State::Parked(io) = std::mem::replace(&mut this.state, State::Done) else {
                        unreachable!("state checked above")
                    };
                    match ready {
                        Ok(true) => this.state = this.serve(io),
                        // The client closed an idle connection, as hyper would see it.
                        Ok(false) => return Poll::Ready(Ok(())),
                        Err(e) => return Poll::Ready(Err(e.into())),
                    }
                }
                State::Lean(serving) => {
                    let end = std::task::ready!(serving.as_mut().poll(cx));
                    this.state = State::Done;
                    match end {
                        Err(e) => return Poll::Ready(Err(e.into())),
                        Ok(LeanEnd::Closed) => return Poll::Ready(Ok(())),
                        Ok(LeanEnd::Idle(mut io)) => {
                            io.park(&[]);
                            if this.release_parked && !this.shutdown {
                                this.state = State::Released(io);
                                return Poll::Ready(Ok(()));
                            }
                            this.state = State::Parked(io);
                        }
                        Ok(LeanEnd::Fallback { mut io, unread }) => {
                            io.resume_framing(&unread);
                            this.state = this.serve_hyper(io);
                        }
                    }
                }
                State::Http1(conn) => {
                    let res = match Pin::new(&mut **conn).poll(cx) {
                        Poll::Ready(res) => res,
                        Poll::Pending => {
                            if this.poll_park_due(cx) {
                                // hyper reads again when polled: that read ends it.
                                this.shared.park_now.store(true, Ordering::Relaxed);
                                continue;
                            }
                            return Poll::Pending;
                        }
                    };
                    let State::Http1(conn) = std::mem::replace(&mut this.state, State::Done) else {
                        unreachable!("state checked above")
                    };
                    if res.is_ok() {
                        // None: upgraded, the I/O is the tunnel's.
                        if let Some(parts) = conn.into_parts() {
                            let mut io = parts.io.into_inner();
                            if io.parked() {
                                io.park(&parts.read_buf);
                                if codec::lean_http1() {
                                    // The next exchange is the lean loop's again.
                                    io.defer_framing();
                                }
                                this.park_timer = None;
                                this.park_armed = false;
                                if this.release_parked && !this.shutdown {
                                    this.state = State::Released(io);
                                    return Poll::Ready(Ok(()));
                                }
                                this.state = State::Parked(io);
                                continue;
                            }
                        }
                    }
                    return Poll::Ready(res.map_err(Into::into));
                }
                State::Http2(h2) => {
                    let res = std::task::ready!(h2.poll(cx));
                    this.state = State::Done;
                    return Poll::Ready(res.map_err(Into::into));
                }
                State::Auto(conn) => {
                    let res = std::task::ready!(conn.as_mut().poll(cx));
                    this.state = State::Done;
                    return Poll::Ready(res);
                }
                State::LeanH2(driver) => {
                    let res = std::task::ready!(driver.as_mut().poll(cx));
                    this.state = State::Done;
                    return Poll::Ready(res);
                }
                State::Closing(io) => {
                    let res = std::task::ready!(Pin::new(io).poll_shutdown(cx));
                    this.state = State::Done;
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "shutting down an idle connection");
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Released(_) | State::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::base::conn_info::ConnInfo;
    use crate::base::drain::DrainSignal;
    use crate::http::context::{HcmRuntime, HttpContext};
    use crate::http::stream::{self, ConnShared};
    use crate::upstream::ClusterManager;

    const YAML: &str = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: park_tests
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "hello" } }
"#;

    /// A connection manager answering every request with `hello`, served over an
    /// in-memory connection; returns the client's end and the codec connection.
    async fn connection() -> (
        DuplexStream,
        CodecConnection<DuplexStream, impl HandleFn>,
        Arc<ConnShared>,
    ) {
        let loaded = baton_config::load_yaml_str(YAML).expect("test config loads");
        let baton_config::model::NetworkFilter::Http(hcm) =
            &loaded.model.listeners[0].filter_chains[0].network
        else {
            panic!("not an HCM");
        };
        let runtime = Arc::new(HcmRuntime::new(hcm.clone()).expect("runtime"));
        let clusters = ClusterManager::initialize(&[]).await.expect("no clusters");
        let addr = "127.0.0.1:1".parse().expect("addr");
        let shared = Arc::new(ConnShared::new(
            runtime.clone(),
            Arc::new(HttpContext::new(clusters)),
            ConnInfo::plain(addr, addr),
            DrainSignal::never(),
        ));
        let (client, server) = tokio::io::duplex(64 * 1024);
        let io = DownstreamIo::new(server)
            .with_stats(runtime.clone())
            .with_request_framing(codec::framing_limits(&runtime.hcm), shared.clone())
            .deferring_framing_to_lean();
        let svc_shared = shared.clone();
        let service = service_fn(move |req| {
            let shared = svc_shared.clone();
            shared
                .request_heads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { Ok::<_, Infallible>(stream::handle(shared, req).await) }
        });
        let hcm = runtime.hcm.clone();
        let mut conn = CodecConnection::new(io, service, hcm, shared.clone());
        conn.park_after = Duration::ZERO;
        (client, conn, shared)
    }

    /// The service type `connection` builds.
    trait HandleFn:
        Service<
            Request<DownstreamBody>,
            Response = Response<ResponseBody>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Unpin
        + Send
        + 'static
    {
    }
    impl<T> HandleFn for T where
        T: Service<
                Request<DownstreamBody>,
                Response = Response<ResponseBody>,
                Error = Infallible,
                Future: Send + 'static,
            > + Clone
            + Unpin
            + Send
            + 'static
    {
    }

    /// Reads `n` whole `hello` responses.
    async fn read_responses(client: &mut DuplexStream, n: usize) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while String::from_utf8_lossy(&got)
            .matches("\r\n\r\nhello")
            .count()
            < n
        {
            let read = client.read(&mut buf).await.expect("read");
            assert!(read > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..read]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Drives `conn` while `client` runs.
    async fn drive<C: Future>(
        conn: &mut CodecConnection<DuplexStream, impl HandleFn>,
        client: C,
    ) -> C::Output {
        tokio::select! {
            res = conn => panic!("connection ended: {:?}", res.err()),
            out = client => out,
        }
    }

    /// Polls `conn` until nothing is left to do now.
    async fn settle(conn: &mut CodecConnection<DuplexStream, impl HandleFn>) {
        for _ in 0..8 {
            let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *conn).poll(cx)));
            assert!(polled.await.is_pending(), "connection ended");
            tokio::task::yield_now().await;
        }
    }

    fn parked(conn: &CodecConnection<DuplexStream, impl HandleFn>) -> bool {
        matches!(conn.state, State::Parked(_))
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_parks_and_wakes_for_the_next_request() {
        let (mut client, mut conn, shared) = connection().await;
        settle(&mut conn).await;
        assert!(parked(&conn), "nothing sent yet: no hyper connection");
        for round in 1..=3 {
            let exchange = async {
                client
                    .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                    .await
                    .expect("write");
                read_responses(&mut client, 1).await
            };
            let got = drive(&mut conn, exchange).await;
            assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
            settle(&mut conn).await;
            assert!(parked(&conn), "round {round}: idle after the response");
        }
        let heads = shared
            .request_heads
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(heads, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_in_use_does_not_park_and_one_idle_for_the_delay_does() {
        let (mut client, mut conn, _) = connection().await;
        conn.park_after = PARK_AFTER;
        // Requests a third of the delay apart: the connection stays with hyper.
        for _ in 0..6 {
            let exchange = async {
                client
                    .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                    .await
                    .expect("write");
                let got = read_responses(&mut client, 1).await;
                tokio::time::sleep(PARK_AFTER / 3).await;
                got
            };
            let got = drive(&mut conn, exchange).await;
            assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
            assert!(!parked(&conn), "parked while in use");
        }
        // Idle for the delay: parked, and the next request is still served.
        drive(&mut conn, tokio::time::sleep(PARK_AFTER * 2)).await;
        assert!(parked(&conn), "idle for the delay");
        let exchange = async {
            client
                .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .expect("write");
            read_responses(&mut client, 1).await
        };
        let got = drive(&mut conn, exchange).await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    }

    #[tokio::test]
    async fn pipelined_and_split_requests_are_all_answered() {
        let (mut client, mut conn, _) = connection().await;
        let two = b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\n\r\n";
        let exchange = async {
            client.write_all(two).await.expect("write");
            read_responses(&mut client, 2).await
        };
        let got = drive(&mut conn, exchange).await;
        assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 2, "{got}");
        settle(&mut conn).await;
        assert!(parked(&conn));
        // A head in two parts: the first wakes the connection, which waits for the rest
        // without parking.
        let exchange = async {
            client
                .write_all(b"GET /3 HTTP/1.1\r\nho")
                .await
                .expect("write");
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(b"st: x\r\n\r\n").await.expect("write");
            read_responses(&mut client, 1).await
        };
        let got = drive(&mut conn, exchange).await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        settle(&mut conn).await;
        assert!(parked(&conn));
    }

    #[tokio::test]
    async fn a_parked_connection_closes_at_once_on_graceful_shutdown() {
        let (mut client, mut conn, _) = connection().await;
        let exchange = async {
            client
                .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .expect("write");
            read_responses(&mut client, 1).await
        };
        drive(&mut conn, exchange).await;
        settle(&mut conn).await;
        assert!(parked(&conn));
        Pin::new(&mut conn).graceful_shutdown();
        tokio::time::timeout(Duration::from_secs(5), &mut conn)
            .await
            .expect("closes at once")
            .expect("cleanly");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_body_arriving_after_its_head_goes_to_hyper_after_the_loop_answered() {
        let (mut client, mut conn, shared) = connection().await;
        let exchange = async {
            client
                .write_all(b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\nPOST /2 HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nab")
                .await
                .expect("write");
            read_responses(&mut client, 2).await
        };
        // The direct response answers before the body ends: hyper then closes, as it
        // does without the loop (`BATON_HTTP1_SERVER=hyper`).
        let (ended, got) = tokio::join!(&mut conn, exchange);
        ended.expect("ends cleanly");
        assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 2, "{got}");
        let heads = shared
            .request_heads
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(heads, 2, "the loop's request and hyper's");
    }

    #[tokio::test]
    async fn a_client_closing_a_parked_connection_ends_it() {
        let (mut client, mut conn, _) = connection().await;
        let exchange = async {
            client
                .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .expect("write");
            read_responses(&mut client, 1).await
        };
        drive(&mut conn, exchange).await;
        settle(&mut conn).await;
        assert!(parked(&conn));
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), &mut conn)
            .await
            .expect("ends")
            .expect("cleanly");
    }
}
