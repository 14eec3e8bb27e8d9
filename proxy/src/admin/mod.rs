//! The admin listener (bootstrap `admin`): Envoy's admin endpoints on their own listener
//! (HTTP/1.1 and h2c) on the main thread. Mutating endpoints require POST, as in Envoy.

mod access_log;
mod closing;
mod clusters;
mod conn;
mod endpoints;
mod info;
mod runtime;
mod runtime_memory;

pub use closing::AdminClosing;
pub(crate) use info::timestamp;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::{debug, info};

use crate::listener::bind::bind_socket;
use crate::listener::ConnectionTracker;
use crate::server::state::{ServerState, ShutdownReason};
use crate::upstream::ClusterManager;

/// A listener as /listeners shows it.
#[derive(Debug, Clone)]
pub struct ListenerStatus {
    /// Listener name.
    pub name: String,
    /// Bound address.
    pub local_address: SocketAddr,
}

/// What admin needs of the listener manager and the init manager (implemented in
/// `server/`, which owns both).
pub trait ListenerAdmin: Send + Sync {
    /// Active listeners, for /listeners.
    fn active_listeners(&self) -> Vec<ListenerStatus>;
    /// `POST /drain_listeners` (`graceful`, `inboundonly`).
    fn drain_listeners(&self, graceful: bool, inbound_only: bool);
    /// Init targets not ready yet, for /init_dump.
    fn unready_init_targets(&self) -> Vec<String>;
    /// Each warming listener's init manager and its unready targets, for /init_dump.
    fn warming_listener_targets(&self) -> Vec<(String, Vec<String>)>;
    /// `version_info` of the last accepted LDS response.
    fn lds_version(&self) -> String;
    /// `dynamic_listeners` of /config_dump.
    fn dynamic_listeners_dump(&self) -> Vec<serde_json::Value>;
    /// `dynamic_route_configs` of /config_dump.
    fn dynamic_route_configs_dump(&self) -> Vec<serde_json::Value>;
}

/// What the admin handlers read.
pub struct AdminContext {
    /// Server state.
    pub state: Arc<ServerState>,
    /// Clusters for /clusters.
    pub clusters: Arc<ClusterManager>,
    /// Listeners and init targets.
    pub listeners: Arc<dyn ListenerAdmin>,
    /// The bootstrap for /config_dump, turned into JSON on the first request.
    pub config_dump: BootstrapDump,
    /// Node identity for /server_info.
    pub node: baton_config::model::Node,
    /// `stats_config` tags and `--stats-tag`, for /stats/prometheus.
    pub stat_tags: Arc<baton_shared_stats::render::tags::TagProducer>,
    /// `stats_config.stats_matcher`: which stats any stats output shows (None: all).
    pub stat_export: Option<baton_shared_stats::ExportFilter>,
    /// Downstream connections, for drain decisions.
    pub tracker: Arc<ConnectionTracker>,
    /// Becomes true when admin may answer (connections wait until then, as Envoy's wait
    /// for its event loop): see `InitManager::admin_may_answer`.
    pub may_answer: tokio::sync::watch::Receiver<bool>,
    /// `http.admin.*`: Envoy's admin runs its own connection manager, stat prefix
    /// `admin`.
    pub http_stats: crate::stats::HttpConnManagerStats,
    /// `listener.admin.*`.
    pub listener_stats: crate::stats::AdminListenerStats,
    /// Closing admin gently when told to stop before LIVE.
    pub closing: AdminClosing,
    /// `admin.access_log` and `admin.access_log_path` (empty: no entries).
    pub loggers: crate::access_log::AccessLoggers,
}

/// A running admin listener; dropping it (or `stop`) closes the listen socket, as a
/// parent generation does when it hands admin over to an older-style child. `pause`
/// instead stops accepting and returns the socket, so the same kernel socket (port and
/// accept queue) can be handed to a child and served again if that child fails.
#[derive(Debug)]
pub struct AdminServer {
    /// Bound address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// A duplicate of the listen socket, kept for `pause` and `socket`.
    spare: Option<std::net::TcpListener>,
}

impl AdminServer {
    /// Stops accepting and closes the listen socket.
    pub fn stop(self) {
        self.task.abort();
    }

    /// Stops accepting but keeps the listen socket open (connections queue in the
    /// kernel until someone accepts them) and returns it.
    pub fn pause(mut self) -> Option<std::net::TcpListener> {
        self.task.abort();
        self.spare.take()
    }

    /// Another descriptor of the listen socket (to pass to a child generation).
    pub fn socket(&self) -> Option<std::net::TcpListener> {
        self.spare.as_ref().and_then(|s| s.try_clone().ok())
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds the admin listener and serves it on the current runtime. The bound address
/// differs from the config's when it says port 0.
pub fn start(addr: SocketAddr, ctx: Arc<AdminContext>) -> anyhow::Result<AdminServer> {
    let std_listener = bind_socket(addr, 128)
        .map_err(|e| anyhow::anyhow!("cannot bind admin listener to {addr}: {e}"))?;
    serve(std_listener, ctx)
}

/// Serves admin on an already bound listen socket (a parent generation's, handed over,
/// or our own paused one).
pub fn serve(
    std_listener: std::net::TcpListener,
    ctx: Arc<AdminContext>,
) -> anyhow::Result<AdminServer> {
    std_listener.set_nonblocking(true)?;
    let spare = std_listener.try_clone().ok();
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                biased;
                // Closing: connections queue for whoever serves the socket next.
                () = ctx.closing.begun() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, remote) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "admin accept failed");
                    // Out of descriptors and the like: don't spin.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Counted open before the task runs, so closing waits for it.
            let open = ctx.closing.opened();
            let ctx = Arc::clone(&ctx);
            tokio::spawn(async move {
                let mut may_answer = ctx.may_answer.clone();
                // A closed sender (initialisation gone) answers too.
                let _ = may_answer.wait_for(|may| *may).await;
                let opened = std::time::Instant::now();
                ctx.listener_stats.opened();
                let stats = &ctx.http_stats;
                stats.downstream_cx_total.inc();
                stats.downstream_cx_active.inc();
                // Envoy's admin codec is HTTP/1 for most clients: `http1.*` exists.
                crate::stats::http1();
                let svc_ctx = Arc::clone(&ctx);
                let logged_conn = (!ctx.loggers.is_empty()).then(|| {
                    let local = stream.local_addr().unwrap_or(remote);
                    Arc::new(crate::base::conn_info::ConnInfo::plain(remote, local))
                });
                // The client asked for `connection: close`: Envoy counts the close as local.
                let asked_close = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let svc_asked_close = Arc::clone(&asked_close);
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let ctx = Arc::clone(&svc_ctx);
                    if req.version() == http::Version::HTTP_11
                        && crate::http::headers::hop_by_hop::connection_has(req.headers(), "close")
                    {
                        svc_asked_close.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    let logged = logged_conn
                        .as_ref()
                        .map(|conn| access_log::LoggedRequest::new(conn, &req));
                    async move {
                        let stats = &ctx.http_stats;
                        stats.downstream_rq_total.inc();
                        if req.version() == http::Version::HTTP_2 {
                            stats.downstream_rq_http2_total.inc();
                        } else {
                            stats.downstream_rq_http1_total.inc();
                        }
                        let resp = handle(&ctx, req);
                        if resp.extensions().get::<CountedEarly>().is_none() {
                            count_answered(&ctx, resp.status());
                        }
                        if let Some(logged) = logged {
                            let body_len = resp.body().0.as_ref().map_or(0, Bytes::len);
                            logged.answered(&ctx.loggers, resp.status(), body_len);
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(conn::AdminIo::new(stream));
                // HTTP/1.1, or h2c with prior knowledge, as Envoy's admin.
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let mut conn = std::pin::pin!(builder.serve_connection(io, svc));
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = ctx.closing.begun() => {
                        // Let it finish what it carries, then close it (see `closing`).
                        let grace = closing::FIRST_REQUEST_GRACE;
                        if tokio::time::timeout(grace, conn.as_mut()).await.is_err() {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                }
                drop(open);
                stats.downstream_cx_active.dec();
                stats.downstream_cx_destroy.inc();
                let local = asked_close.load(std::sync::atomic::Ordering::Relaxed);
                stats.downstream_cx_destroy_by.record(local, false);
                ctx.listener_stats.closed(opened.elapsed());
            });
        }
    });
    Ok(AdminServer { addr, task, spare })
}

type AdminResponse = Response<AdminBody>;

/// Marks an answer already counted in `http.admin.*` (see [`count_answered`]).
#[derive(Debug, Clone, Copy)]
struct CountedEarly;

/// Counts one admin request answered with `status` and complete: `http.admin.*` and
/// `listener.admin.http.admin.*`.
fn count_answered(ctx: &AdminContext, status: StatusCode) {
    let status = status.as_u16();
    let stats = &ctx.http_stats;
    stats.downstream_rq_xx.record(status);
    stats.downstream_rq_completed.inc();
    let listener = &ctx.listener_stats.http;
    listener.downstream_rq_xx.record(status);
    listener.downstream_rq_completed.inc();
}

/// An admin answer's body. Envoy streams admin answers, so they go out chunked
/// (`transfer-encoding: chunked`, no `content-length`): the body's size is never known
/// to the codec.
pub struct AdminBody(Option<Bytes>);

impl hyper::body::Body for AdminBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> AdminResponse {
    respond(status, "text/plain; charset=UTF-8", body)
}

/// JSON as Envoy's admin prints it: one-space indentation and a final newline.
fn json(value: &impl serde::Serialize) -> AdminResponse {
    respond(StatusCode::OK, "application/json", pretty_json(value))
}

/// Envoy's pretty JSON form (one-space indentation, final newline).
pub(crate) fn pretty_json(value: &impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    if value.serialize(&mut ser).is_ok() {
        out.push(b'\n');
    }
    out
}

/// An admin answer with Envoy's headers, in Envoy's order.
fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> AdminResponse {
    let mut resp = Response::new(AdminBody(Some(body.into())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, max-age=0"),
    );
    h.insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    insert_date_and_server(h);
    resp
}

/// `date` then `server: envoy` (the admin listener's connection manager is Envoy's own,
/// whatever the proxy's listeners call themselves).
fn insert_date_and_server(h: &mut http::HeaderMap) {
    if let Ok(v) =
        http::HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
    {
        h.insert(http::header::DATE, v);
    }
    h.insert(
        http::header::SERVER,
        http::HeaderValue::from_static("envoy"),
    );
}

/// Envoy's admin listener does not speak HTTP/1.0: 426 with a fixed-length body, and the
/// connection closes.
fn upgrade_required() -> AdminResponse {
    const BODY: &str = "Upgrade Required";
    let mut resp = Response::new(AdminBody(Some(Bytes::from_static(BODY.as_bytes()))));
    *resp.status_mut() = StatusCode::UPGRADE_REQUIRED;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(BODY.len()),
    );
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    insert_date_and_server(h);
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    resp
}

/// Endpoints, with whether they change server state (and so need POST) and Envoy's
/// help line, in Envoy's (alphabetical) order.
const ENDPOINTS: &[(&str, bool, &str)] = &[
    ("/certs", false, "print certs on machine"),
    ("/clusters", false, "upstream cluster status"),
    ("/config_dump", false, "dump current Envoy configs"),
    (
        "/contention",
        false,
        "dump current Envoy mutex contention stats (if enabled)",
    ),
    ("/cpuprofiler", true, "enable/disable the CPU profiler"),
    ("/drain_listeners", true, "drain listeners"),
    (
        "/healthcheck/fail",
        true,
        "cause the server to fail health checks",
    ),
    (
        "/healthcheck/ok",
        true,
        "cause the server to pass health checks",
    ),
    ("/heapprofiler", true, "enable/disable the heap profiler"),
    ("/help", false, "print out list of admin commands"),
    (
        "/hot_restart_version",
        false,
        "print the hot restart compatibility version",
    ),
    (
        "/init_dump",
        false,
        "dump current Envoy init manager information (experimental)",
    ),
    ("/listeners", false, "print listener info"),
    ("/logging", true, "query/change logging levels"),
    ("/memory", false, "print current allocation/heap usage"),
    ("/quitquitquit", true, "exit the server"),
    (
        "/ready",
        false,
        "print server state, return 200 if LIVE, otherwise return 503",
    ),
    ("/reopen_logs", true, "reopen access logs"),
    ("/reset_counters", true, "reset all counters to zero"),
    ("/runtime", false, "print runtime values"),
    (
        "/runtime_modify",
        true,
        "Adds or modifies runtime values as passed in query parameters",
    ),
    (
        "/server_info",
        false,
        "print server version/status information",
    ),
    ("/stats", false, "print server stats"),
    (
        "/stats/prometheus",
        false,
        "print server stats in prometheus format",
    ),
];

fn handle(ctx: &AdminContext, req: Request<Incoming>) -> AdminResponse {
    if req.version() < http::Version::HTTP_11 {
        return upgrade_required();
    }
    let mut resp = answer(ctx, &req);
    if req.method() == Method::HEAD && req.version() == http::Version::HTTP_11 {
        // Envoy's admin streams its answers, so a HEAD answer says chunked and carries
        // no length (and no body). hyper drops `transfer-encoding` on HEAD answers:
        // `conn` renames this header to it on the way out.
        resp.headers_mut().insert(
            conn::HEAD_CHUNKED_MARKER,
            http::HeaderValue::from_static("chunked"),
        );
    }
    resp
}

fn answer(ctx: &AdminContext, req: &Request<Incoming>) -> AdminResponse {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let format_json = query.split('&').any(|kv| kv == "format=json");
    let Some(&(_, mutates, _)) = ENDPOINTS.iter().find(|(p, _, _)| *p == path) else {
        if path == "/" {
            return text(StatusCode::OK, help_text());
        }
        return text(
            StatusCode::NOT_FOUND,
            format!("invalid path. {}", help_text()),
        );
    };
    if mutates && req.method() != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Method {} not allowed, POST required.", req.method()),
        );
    }
    let state = &ctx.state;
    match path {
        "/ready" => {
            let s = reported_state(state);
            let status = if s == crate::server::state::ServerLifecycle::Live {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, format!("{}\n", s.as_str()))
        }
        "/help" => text(StatusCode::OK, help_text()),
        "/hot_restart_version" => text(StatusCode::OK, crate::server::hot_restart::version_text()),
        "/server_info" => json(&info::server_info(ctx)),
        "/listeners" => {
            let listeners = ctx.listeners.active_listeners();
            if format_json {
                json(&info::listeners_json(&listeners))
            } else {
                text(StatusCode::OK, info::listeners_text(&listeners))
            }
        }
        "/clusters" => {
            if format_json {
                json(&clusters::clusters_json(&ctx.clusters))
            } else {
                text(StatusCode::OK, clusters::clusters_text(&ctx.clusters))
            }
        }
        "/config_dump" => {
            let include_eds = query
                .split('&')
                .any(|kv| kv.split('=').next() == Some("include_eds"));
            json(&info::config_dump(ctx, include_eds))
        }
        "/runtime" => json(&runtime::runtime_json(
            &crate::runtime::snapshot().layers_as_set(),
        )),
        "/memory" => json(&runtime_memory::memory_json()),
        "/runtime_modify" => {
            let (status, body) = runtime_memory::runtime_modify(query);
            text(status, body)
        }
        // Baton has no mutex contention tracing (`--enable-mutex-tracing` is accepted and
        // inert) and no heap profiler; Envoy answers these for builds without them.
        "/contention" => text(
            StatusCode::OK,
            "Mutex contention tracing is not available in Baton.\n",
        ),
        "/heapprofiler" => text(
            StatusCode::NOT_IMPLEMENTED,
            "The current build does not support heap profiler",
        ),
        "/cpuprofiler" => {
            let (status, body) = runtime_memory::cpuprofiler(query);
            text(status, body)
        }
        "/logging" => text(
            StatusCode::NOT_IMPLEMENTED,
            "Baton does not list or change logging levels at run time; use --log-level\n",
        ),
        "/certs" => json(&crate::tls::certs::certs_json()),
        "/stats" | "/stats/prometheus" => stats_response(ctx, path, query),
        "/reopen_logs" => {
            crate::access_log::reopen_files();
            text(StatusCode::OK, "OK\n")
        }
        "/reset_counters" => match crate::stats::store().reset_counters() {
            Ok(()) => text(StatusCode::OK, "OK\n"),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        },
        "/healthcheck/fail" => {
            state.healthcheck_failed.store(true, Ordering::Relaxed);
            text(StatusCode::OK, "OK\n")
        }
        "/healthcheck/ok" => {
            state.healthcheck_failed.store(false, Ordering::Relaxed);
            text(StatusCode::OK, "OK\n")
        }
        "/drain_listeners" => {
            let has = |flag: &str| {
                query
                    .split('&')
                    .any(|kv| kv == flag || kv.starts_with(&format!("{flag}=")))
            };
            ctx.listeners
                .drain_listeners(has("graceful"), has("inboundonly"));
            text(StatusCode::OK, "OK\n")
        }
        "/init_dump" => json(&init_dump(ctx, query)),
        "/quitquitquit" => {
            info!("admin /quitquitquit: shutting down");
            state.request_shutdown(ShutdownReason::Quit);
            text(StatusCode::OK, "OK\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `/init_dump`: as Envoy 1.40, each warming listener's own init manager with the targets
/// it waits for (all Envoy shows, and all `?mask=listener` shows); then, Baton's
/// addition, the server's init manager with its pending targets (`CDS`, `LDS`,
/// `Listener-init-target <name>`), which Envoy leaves out.
fn init_dump(ctx: &AdminContext, query: &str) -> serde_json::Value {
    let mut dumps: Vec<serde_json::Value> = ctx
        .listeners
        .warming_listener_targets()
        .into_iter()
        .map(|(manager, targets)| {
            serde_json::json!({"name": format!("init manager {manager}"), "target_names": targets})
        })
        .collect();
    let listener_only = query.split('&').any(|kv| kv == "mask=listener");
    let pending = ctx.listeners.unready_init_targets();
    if !listener_only && !pending.is_empty() {
        dumps.push(serde_json::json!({"name": "init manager Server", "target_names": pending}));
    }
    if dumps.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({ "unready_targets_dumps": dumps })
    }
}

/// The state admin reports: Envoy shows DRAINING while `/healthcheck/fail` is in force,
/// so load balancers health-checking `/ready` take the instance out.
pub(crate) fn reported_state(state: &ServerState) -> crate::server::state::ServerLifecycle {
    if state.healthcheck_failed.load(Ordering::Relaxed) {
        crate::server::state::ServerLifecycle::Draining
    } else {
        state.lifecycle()
    }
}

/// `/stats` (text, `?format=json`, `?format=prometheus`) and `/stats/prometheus`, with
/// Envoy's `filter=<regex>` and `usedonly` parameters.
fn stats_response(ctx: &AdminContext, path: &str, query: &str) -> AdminResponse {
    let options = match baton_shared_stats::RenderOptions::from_query(query) {
        Ok(mut o) => {
            o.tags = Arc::clone(&ctx.stat_tags);
            o.exported.clone_from(&ctx.stat_export);
            o
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let format = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("format="))
        .unwrap_or("");
    let prometheus = path == "/stats/prometheus" || format == "prometheus";
    if !prometheus {
        // Envoy streams text and JSON /stats: its admin connection manager has counted
        // this request answered and complete before the body is rendered, so the body
        // counts it (Prometheus answers are rendered first).
        count_answered(ctx, StatusCode::OK);
    }
    let snapshot = match crate::stats::store().snapshot() {
        Ok(s) => s,
        Err(e) => {
            let mut resp = text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"));
            if !prometheus {
                resp.extensions_mut().insert(CountedEarly);
            }
            return resp;
        }
    };
    if !prometheus {
        let mut resp = if format == "json" {
            respond(
                StatusCode::OK,
                "application/json",
                snapshot.render_json(&options),
            )
        } else {
            text(StatusCode::OK, snapshot.render_text(&options))
        };
        resp.extensions_mut().insert(CountedEarly);
        return resp;
    }
    // Envoy 1.40 labels its Prometheus text as plain UTF-8 text, not with the
    // exposition format's `version=0.0.4`.
    text(StatusCode::OK, snapshot.render_prometheus(&options))
}

fn help_text() -> String {
    let mut out = String::from("admin commands are:\n");
    for (path, mutates, help) in ENDPOINTS {
        let post = if *mutates { " (POST)" } else { "" };
        out.push_str(&format!("  {path}{post}: {help}\n"));
    }
    out
}

/// The bootstrap as `/config_dump` shows it, converted on first use: converting a
/// 10,000-cluster bootstrap to JSON at startup cost a tenth of the time to LIVE, and
/// the JSON tree is several times the size of the proto it comes from.
pub struct BootstrapDump {
    /// The bootstrap in protobuf wire form: a few bytes per field set, where the decoded
    /// message holds every unset field of every cluster too (tens of MiB at 10,000
    /// clusters), and /config_dump decodes the wire form anyway.
    encoded: Vec<u8>,
    json: std::sync::OnceLock<serde_json::Value>,
}

impl BootstrapDump {
    /// Keeps `proto` encoded for /config_dump: `encoded` when loading gave its bytes
    /// ([`baton_config::Loaded::encoded`]: 40 M instructions not spent encoding a
    /// 10,000-cluster bootstrap again), else encoded here.
    pub fn new(
        proto: baton_proto::pb::envoy::config::bootstrap::v3::Bootstrap,
        encoded: Option<Vec<u8>>,
    ) -> Self {
        use prost::Message;
        Self {
            encoded: encoded.unwrap_or_else(|| proto.encode_to_vec()),
            json: std::sync::OnceLock::new(),
        }
    }

    /// The bootstrap's /config_dump JSON.
    pub fn json(&self) -> &serde_json::Value {
        self.json
            .get_or_init(|| baton_config::config_dump_encoded(&self.encoded))
    }
}
