//! `run`: config load, then Envoy's initialisation order with hot restart woven in:
//! find the parent generation, initialise clusters, take or bind listen sockets, start
//! workers, take over admin, tell the parent to drain, publish our hot-restart socket,
//! report LIVE; then serve until a signal, `/quitquitquit` or a newer generation, and
//! drain. See `hot_restart/LIFECYCLE.md`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use baton_config::Loaded;
use tokio::sync::{mpsc, Notify};
use tracing::{error, info, warn};

use super::cli::{Mode, Options, VersionMismatchPolicy};
use super::dynamic::Dynamic;
use super::hot_restart::child::ParentLink;
use super::hot_restart::parent::{self, ParentContext, ParentEvent};
use super::hot_restart::{self as hr};
use super::init::{InitManager, InitPhase};
use super::listener_manager::{AdminView, ListenerManager, ListenerMeta, SocketSource};
use super::signals::{EarlyStop, Signals};
use super::state::{ServerLifecycle, ServerState, ShutdownReason};
pub use super::stats_region::STATS_OWNER_ENV;
use super::stats_region::{
    install_stats, launched_by_region_owner, ServerStatsFlush, StatsOrigin, STATS_FLUSH_INTERVAL,
};
use super::{notify, runtime_dir, version_line, workers, VERSION};
use crate::admin::{self, AdminContext, AdminServer, ListenerAdmin};
use crate::base::drain::{self, DrainPhase};
use crate::http::rds::RouteConfigProviders;
use crate::listener::inherit;
use crate::listener::{CompileSettings, ConnectionTracker, ListenerHashes, NetworkContext};
use crate::stats::ServerStats;
use crate::upstream::ClusterManager;

/// How long a generation told to terminate lets in-flight requests finish.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// How long a child retries binding the admin port the parent is releasing.
const ADMIN_REBIND_ATTEMPTS: u32 = 100;

/// Runs `baton` with parsed options; returns the process exit code.
pub fn run(opts: Options) -> anyhow::Result<u8> {
    if opts.version {
        println!("{}", version_line());
        return Ok(0);
    }
    if opts.hot_restart_version {
        println!("{}", hr::version_text());
        return Ok(0);
    }
    super::logging::init(&opts)?;
    super::signals::ignore_sigusr1_until_served();
    crate::http::headers::forwarding::init_local_address(
        opts.local_address_ip_version == super::cli::IpVersion::V6,
    );
    super::cli_checks::warn_inert_flags(&opts);
    if opts.enable_core_dump {
        super::core_dump::enable();
    }
    let loaded = match load_config(&opts) {
        Ok(l) => l,
        Err(e) => {
            if opts.mode == Mode::Validate {
                eprintln!("{e}");
                return Ok(1);
            }
            error!("error initializing configuration: {e}");
            eprintln!(
                "error initializing configuration '{}': {e}",
                config_name(&opts)
            );
            return Ok(1);
        }
    };
    if opts.mode == Mode::Validate {
        println!("configuration '{}' OK", config_name(&opts));
        return Ok(0);
    }
    // `text_format` is an spdlog pattern, which Baton does not follow (as for
    // `--log-format`); `json_format` switches to JSON lines.
    if let Some(baton_config::model::ApplicationLogFormat::Json(_)) =
        &loaded.model.application_log_format
    {
        super::logging::use_json_lines();
    }
    let mut opts = opts;
    resolve_base_id(&mut opts)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("baton-main")
        .build()
        .context("cannot start the main runtime")?;
    let state = ServerState::new(opts);
    runtime.block_on(async {
        let mut admin = None;
        let served = serve(state, loaded, &mut admin).await;
        if let (Err(_), Some(ctx)) = (&served, admin) {
            super::signals::close_admin(&ctx).await;
        }
        served
    })
}

/// `--use-dynamic-base-id`: picks a base id no service in the runtime directory uses
/// (no hot-restart socket, no stats region). Then writes the effective base id to
/// `--base-id-path` (digits, no newline, as Envoy).
fn resolve_base_id(opts: &mut Options) -> anyhow::Result<()> {
    opts.base_id_given = Some(opts.base_id);
    if opts.use_dynamic_base_id {
        let dir = runtime_dir::resolve(opts.runtime_dir.as_deref());
        runtime_dir::prepare(&dir)?;
        let socket_dir = opts.socket_path.clone().unwrap_or_else(|| dir.clone());
        let free = |id: u32| {
            !hr::socket_path(&socket_dir, id).exists()
                && !baton_shared_stats::region_path(&dir, id).exists()
        };
        opts.base_id = (0..1000)
            .map(|_| rand::random_range(1..=i32::MAX as u32))
            .find(|id| free(*id))
            .ok_or_else(|| anyhow::anyhow!("--use-dynamic-base-id: no unused base id found"))?;
        info!(base_id = opts.base_id, "chose a dynamic base id");
    }
    if let Some(path) = &opts.base_id_path {
        std::fs::write(path, opts.base_id.to_string())
            .with_context(|| format!("cannot write --base-id-path {}", path.display()))?;
    }
    Ok(())
}

fn config_name(opts: &Options) -> String {
    match &opts.config_path {
        Some(p) => p.display().to_string(),
        None => String::new(),
    }
}

fn load_config(opts: &Options) -> Result<Loaded, baton_config::ConfigError> {
    let load_options = baton_config::LoadOptions {
        allow_unknown_static_fields: opts.allows_unknown_static_fields(),
        disabled_extensions: opts.disabled_extensions(),
    };
    let mut loaded = baton_config::load_with(
        opts.config_path.as_deref(),
        opts.config_yaml.as_deref(),
        &load_options,
    )?;
    for field in &loaded.unknown_fields {
        warn!(field = %field, "unknown field in the static configuration ignored (--allow-unknown-static-fields)");
    }
    if let Some(node) = &opts.service_node {
        loaded.model.node.id.clone_from(node);
    }
    if let Some(cluster) = &opts.service_cluster {
        loaded.model.node.cluster.clone_from(cluster);
    }
    if let Some(zone) = &opts.service_zone {
        loaded.model.node.locality.zone.clone_from(zone);
    }
    loaded.model.check_node_for_xds()?;
    if loaded.model.application_log_format.is_some() && opts.log_format.is_some() {
        return Err(baton_config::ConfigError::at(
            "application_log_config.log_format",
            "Only one of ApplicationLogConfig.log_format or CLI option --log-format can be specified.",
        ));
    }
    loaded
        .model
        .stats
        .tag_producer(&super::cli_checks::stats_tags(opts))
        .map_err(|e| baton_config::ConfigError::at("stats_config.stats_tags", e))?;
    Ok(loaded)
}

/// Paths of this generation's hot-restart socket.
struct HotRestartPaths {
    public: PathBuf,
    private: PathBuf,
}

fn hot_restart_paths(opts: &Options) -> anyhow::Result<Option<HotRestartPaths>> {
    if opts.disable_hot_restart {
        return Ok(None);
    }
    let dir = match &opts.socket_path {
        Some(p) => p.clone(),
        None => runtime_dir::resolve(opts.runtime_dir.as_deref()),
    };
    runtime_dir::prepare(&dir)?;
    runtime_dir::remove_stale_sockets(&dir, &hr::socket_path(&dir, opts.base_id));
    Ok(Some(HotRestartPaths {
        public: hr::socket_path(&dir, opts.base_id),
        private: hr::private_socket_path(&dir, opts.base_id),
    }))
}

/// Envoy's init order with the hot-restart hand-over, then serve, then drain.
///
/// `admin_on_failure` receives our admin's context as soon as there is one: should we
/// fail, the caller closes admin gently (see `signals`).
async fn serve(
    state: Arc<ServerState>,
    mut loaded: Loaded,
    admin_on_failure: &mut Option<Arc<AdminContext>>,
) -> anyhow::Result<u8> {
    let opts = &state.options;
    let epoch = opts.restart_epoch;
    super::signals::reopen_logs_on_sigusr1();
    info!(
        epoch,
        pid = std::process::id(),
        version = VERSION,
        "starting baton"
    );
    let model = loaded.model.clone();

    // Find the live generation, if any (before binding anything), then join the
    // service's stats region: continued only from a live parent or the supervisor.
    let paths = hot_restart_paths(opts)?;
    let mut cold_restarted = false;
    let parent_link: Option<ParentLink> = match &paths {
        Some(p) => match hr::child::connect(&p.public, epoch).await {
            Ok(link) => link,
            Err(hr::HotRestartError::ParentMismatch { detail, parent_pid })
                if opts.hot_restart_version_mismatch == VersionMismatchPolicy::ColdRestart =>
            {
                cold_restart(&detail, parent_pid).await?;
                cold_restarted = true;
                None
            }
            Err(e) => return Err(anyhow::anyhow!("hot restart (epoch {epoch}): {e}")),
        },
        None => None,
    };
    let stats_origin = if parent_link.is_some() || cold_restarted {
        StatsOrigin::Parent
    } else if launched_by_region_owner() {
        StatsOrigin::Supervisor
    } else {
        StatsOrigin::Fresh
    };
    install_stats(opts, stats_origin, &model)?;
    info!(?stats_origin, "stats region joined");
    match &parent_link {
        Some(link) => info!(
            epoch,
            parent_epoch = link.parent_epoch,
            parent_pid = link.parent_pid,
            "hot restart: connected to parent generation"
        ),
        None if epoch > 0 => info!(
            epoch,
            "no parent generation found for this restart epoch; starting without hot restart"
        ),
        None => {}
    }

    // Workers start idle: nothing accepts before initialisation is over.
    let init = InitManager::new();
    // The parent's accepted xDS resources, in case the control plane is unreachable
    // while we initialise (only when config sources and node are unchanged).
    let mut parent_link = parent_link;
    let inherited_xds = match parent_link.as_mut() {
        Some(link) if loaded.model.uses_xds() => {
            match link.xds_state(&super::dynamic::fingerprint(&loaded)).await {
                Ok(state) => state,
                Err(e) => return Err(anyhow::anyhow!("hot restart: {e}")),
            }
        }
        _ => None,
    };
    // The parent's generated session ticket keys, before any TLS context is built, so
    // clients resume across this reload.
    if let Some(link) = parent_link.as_mut() {
        super::hot_restart::ticket_keys::take_over(link).await?;
    }
    let local_zone = loaded
        .model
        .cluster_manager
        .local_cluster_name
        .as_deref()
        .map(|local| crate::upstream::LocalZone::new(&loaded.model.node.locality.name(), local));
    let clusters = ClusterManager::with_local_zone(local_zone);
    let tracker = Arc::new(ConnectionTracker::default());
    let network = Arc::new(NetworkContext {
        http: Arc::new(crate::http::HttpContext::new(Arc::clone(&clusters))),
        clusters: Arc::clone(&clusters),
        tracker: Arc::clone(&tracker),
        global_limit: crate::listener::GlobalConnectionLimit::new(
            loaded.model.global_downstream_max_connections,
        ),
    });
    let (server_drain, server_drain_signal) = drain::channel_with(
        opts.drain_strategy.into(),
        Duration::from_secs(opts.drain_time_s),
    );
    let workers = workers::start(opts.workers(), &network, &server_drain_signal)?;
    let rds = Arc::new(RouteConfigProviders::default());
    let listeners = ListenerManager::new(
        CompileSettings {
            drain_strategy: opts.drain_strategy.into(),
            drain_time: Duration::from_secs(opts.drain_time_s),
            rds: Arc::clone(&rds),
        },
        SocketSource::new(inherit::take_inherited(), parent_link),
        workers,
    );

    let dynamic = Dynamic::new(
        &loaded,
        Arc::clone(&clusters),
        Arc::clone(&listeners),
        Arc::clone(&rds),
        opts.unknown_dynamic_fields(),
    )?;
    if let Some(state) = &inherited_xds {
        dynamic.inherit(state);
    }
    // From here on only /config_dump needs the bootstrap proto; it keeps it encoded.
    let bootstrap_proto = std::mem::take(&mut loaded.proto);
    let bootstrap_encoded = loaded.encoded.take();
    dynamic.attach_sds();

    // Envoy's feature flags switch Envoy's own code paths; Baton reads only the
    // federation flag among them (other keys: route `runtime_fraction`, access-log
    // filters and the load balancers read them by name).
    let feature_flags: Vec<&str> = model
        .runtime_keys()
        .into_iter()
        .filter(|k| k.starts_with("envoy.") && *k != baton_config::model::XDSTP_SINGLETONS_FLAG)
        .collect();
    if !feature_flags.is_empty() {
        warn!(keys = ?feature_flags, "layered_runtime: Envoy feature flags are shown by /runtime, but Baton acts on none of these");
    }
    crate::runtime::install(&model.runtime_layers);
    let admin_loggers = match &model.admin {
        Some(admin) => crate::access_log::AccessLoggers::new(
            &admin.access_logs,
            baton_config::model::AccessLogType::DownstreamEnd,
        )
        .map_err(|e| anyhow::anyhow!("admin access log: {e}"))?,
        None => Default::default(),
    };
    let admin_ctx = model.admin.as_ref().map(|_| {
        Arc::new(AdminContext {
            state: Arc::clone(&state),
            clusters: Arc::clone(&clusters),
            listeners: Arc::new(AdminView {
                listeners: Arc::clone(&listeners),
                rds: Arc::clone(&rds),
                init: init.clone(),
            }) as Arc<dyn ListenerAdmin>,
            config_dump: crate::admin::BootstrapDump::new(bootstrap_proto, bootstrap_encoded),
            node: model.node.clone(),
            // Checked by `load_config`; Envoy's defaults should it fail anyway.
            stat_tags: model
                .stats
                .tag_producer(&super::cli_checks::stats_tags(&state.options))
                .map(Arc::new)
                .unwrap_or_else(|_| {
                    Arc::clone(baton_shared_stats::render::tags::TagProducer::envoy_default())
                }),
            stat_export: (!model.stats.matcher.accepts_all()).then(|| {
                let matcher = model.stats.matcher.clone();
                baton_shared_stats::ExportFilter::new(move |name| matcher.accepts(name))
            }),
            tracker: Arc::clone(&tracker),
            may_answer: init.admin_may_answer(),
            http_stats: crate::stats::HttpConnManagerStats::admin(crate::stats::store()),
            listener_stats: crate::stats::AdminListenerStats::new(crate::stats::store()),
            closing: admin::AdminClosing::default(),
            loggers: admin_loggers,
        })
    });
    // From here a signal no longer kills us outright: admin may soon answer on our
    // parent's socket, and its connections are closed gently first (see `signals`).
    let early_stop = EarlyStop::watch(Signals::install(), admin_ctx.clone());
    admin_on_failure.clone_from(&admin_ctx);
    // Admin answers during initialisation (/ready 503, /init_dump), as Envoy's does. With
    // a parent generation that passes its admin socket, we take that socket now (Envoy's
    // child also takes the admin address at start): the same port keeps answering, for
    // us, and if we fail the parent serves it again. With an older parent, or an admin
    // address the parent's differs from and that is busy, admin comes at the end.
    let mut admin_server: Option<AdminServer> = None;
    let mut admin_taken_early = false;
    {
        let mut sockets = listeners.sockets().lock().await;
        match sockets.parent_mut() {
            None => {
                if let (Some(cfg), Some(ctx)) = (&model.admin, &admin_ctx) {
                    admin_server = Some(admin::start(cfg.address, Arc::clone(ctx))?);
                }
            }
            Some(link) if link.passes_admin_socket() => {
                if let (Some(cfg), Some(ctx)) = (&model.admin, &admin_ctx) {
                    let (first_start, generation, socket) = link
                        .take_admin_socket(cfg.address)
                        .await
                        .map_err(|e| anyhow::anyhow!("hot restart: {e}"))?;
                    state.continue_from_parent(first_start, generation);
                    admin_server = match socket {
                        Some(socket) => Some(admin::serve(socket, Arc::clone(ctx))?),
                        // The parent's admin is configured otherwise; ours may be free.
                        None => admin::start(cfg.address, Arc::clone(ctx))
                            .inspect_err(|e| info!(error = %e, "admin address busy; trying again once initialised"))
                            .ok(),
                    };
                    admin_taken_early = admin_server.is_some();
                    if admin_taken_early {
                        init.let_admin_answer();
                    }
                }
            }
            Some(_) => {}
        }
    }
    if let Some(server) = &admin_server {
        info!(addr = %server.addr, "admin listening");
        if let Some(path) = &opts.admin_address_path {
            std::fs::write(path, server.addr.to_string())
                .with_context(|| format!("cannot write admin address to {}", path.display()))?;
        }
    }
    let admin_early = admin_server.is_some();

    // Clusters: static and DNS ones first (primary), then the rest of Envoy's order.
    init.run_phase(
        InitPhase::PrimaryClusters,
        clusters.add_static(&model.clusters),
    )
    .await;
    dynamic.subscribe_eds(&init);
    init.run_phase(InitPhase::SecondaryClusters, async {}).await;
    dynamic.subscribe_cds(&init);
    init.run_phase(InitPhase::Cds, async {}).await;
    init.run_phase(InitPhase::CdsClusters, clusters.wait_warm())
        .await;
    // Slot for the first active health-check round (health checking comes later).
    init.run_phase(InitPhase::HealthChecks, async {}).await;
    // Envoy reports PRE_INITIALIZING until the cluster manager is initialised.
    state.set_lifecycle(ServerLifecycle::Initializing);

    // Listeners: take or bind their sockets; they warm until their routes are there.
    for l in &model.listeners {
        listeners
            .add_or_update(
                Arc::clone(l),
                ListenerHashes::default(),
                ListenerMeta::static_listener(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    dynamic.subscribe_lds_and_rds(&init);
    init.run_phase(InitPhase::Lds, async {}).await;
    init.run_phase(InitPhase::ListenerWarming, listeners.wait_warm())
        .await;
    init.finish();
    let mut parent_link = listeners.sockets().lock().await.take_parent();

    // Admin. The parent's admin listener is stopped only when we need its address
    //    (our bind fails), i.e. as late as possible: a child that failed earlier never
    //    cost the parent its admin. The parent returns the first start time either way.
    if let (None, Some(cfg), Some(ctx)) = (&admin_server, &model.admin, &admin_ctx) {
        match admin::start(cfg.address, Arc::clone(ctx)) {
            Ok(s) => {
                info!(addr = %s.addr, "admin listening");
                admin_server = Some(s);
            }
            Err(e) if parent_link.is_some() => {
                info!(error = %e, "admin address busy; asking the parent generation to release it");
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(link) = parent_link.as_mut().filter(|_| !admin_taken_early) {
        let (first_start, generation) = link
            .shutdown_admin()
            .await
            .map_err(|e| anyhow::anyhow!("hot restart: {e}"))?;
        state.continue_from_parent(first_start, generation);
    }
    if let (None, Some(cfg), Some(ctx)) = (&admin_server, &model.admin, &admin_ctx) {
        admin_server = Some(start_admin(cfg.address, ctx, parent_link.is_some()).await?);
    }
    if let (Some(server), Some(path), false) =
        (&admin_server, &opts.admin_address_path, admin_early)
    {
        std::fs::write(path, server.addr.to_string())
            .with_context(|| format!("cannot write admin address to {}", path.display()))?;
    }

    // Workers start accepting (the parent still accepts too: same sockets). Everything
    // fallible (clusters, sockets, admin) came first: a child that failed after its
    // workers accepted connections would drop them.
    let mut signals = early_stop.end().await;
    listeners.start();

    // Fully initialised: only now does the parent drain.
    if let Some(link) = parent_link.as_mut() {
        link.drain()
            .await
            .map_err(|e| anyhow::anyhow!("hot restart: {e}"))?;
    }

    // Become the generation new children talk to.
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let child_took_over = Arc::new(Notify::new());
    if let Some(paths) = &paths {
        let mode = u32::from_str_radix(&opts.socket_mode, 8).unwrap_or(0o600);
        let listener = parent::bind(&paths.private, mode)?;
        let source = Arc::downgrade(&listeners);
        let xds = dynamic.client();
        let ours = super::dynamic::fingerprint(&loaded);
        let ctx = ParentContext::new(
            Arc::clone(&state),
            Box::new(move || {
                source
                    .upgrade()
                    .map(|l| l.passable_sockets())
                    .unwrap_or_default()
            }),
            Box::new(move |theirs: &str| {
                if theirs == ours {
                    xds.accepted_state()
                } else {
                    None
                }
            }),
            events_tx.clone(),
            state.hot_restart_generation.load(Ordering::Relaxed),
            Arc::clone(&child_took_over),
            Arc::clone(&tracker),
        );
        if let (Some(cfg), Some(server)) = (&model.admin, &admin_server) {
            ctx.set_admin_socket(server.socket().map(|socket| parent::PassableSocket {
                configured: cfg.address,
                socket,
            }));
        }
        parent::publish(&paths.private, &paths.public)?;
        tokio::spawn(parent::serve(listener, ctx));
    }
    let parent_connections = Arc::new(AtomicU64::new(0));
    if let Some(link) = parent_link.take() {
        tokio::spawn(watch_parent(
            link,
            Arc::clone(&child_took_over),
            Arc::clone(&parent_connections),
        ));
    }

    state.set_lifecycle(ServerLifecycle::Live);
    let server_stats = ServerStatsFlush {
        stats: ServerStats::new(crate::stats::store()),
        state: Arc::clone(&state),
        tracker: Arc::clone(&tracker),
        parent_connections,
    };
    server_stats.update_server_stats();
    crate::access_log::register_filesystem_stats();
    let init_ms = u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    server_stats.stats.initialization_time_ms.record(init_ms);
    if !loaded.unknown_fields.is_empty() {
        server_stats.stats.static_unknown_fields.inc();
    }
    tokio::spawn(server_stats.clone().run());
    info!(
        epoch,
        workers = opts.workers(),
        "all clusters initialized; server LIVE"
    );
    notify::ready(&format!("epoch {epoch} live"));
    // Start-up's temporary allocations are gone; their pages need not stay resident.
    // A configuration with no xDS or SDS source reads no more resources: the decoded
    // descriptor pool (about 4 MB of heap) goes too (`/config_dump` decodes it again).
    if !model.uses_xds() && !model.uses_sds() {
        baton_config::release_descriptor_pool();
    }
    crate::base::heap::release_free_memory();
    crate::base::heap::release_startup_code();

    let reason = if opts.mode == Mode::InitOnly {
        ShutdownReason::Quit
    } else {
        // Our admin socket while a child holds it (served again if the child fails).
        let mut paused_admin: Option<std::net::TcpListener> = None;
        loop {
            tokio::select! {
                r = signals.recv(&state) => break r,
                Some(ev) = events.recv() => match ev {
                    ParentEvent::ShutdownAdmin => {
                        if let Some(s) = admin_server.take() { s.stop(); }
                        paused_admin = None;
                    }
                    ParentEvent::PauseAdmin => {
                        if let Some(s) = admin_server.take() { paused_admin = s.pause(); }
                    }
                    ParentEvent::RestoreAdmin => {
                        if let (Some(cfg), Some(ctx), None) = (&model.admin, &admin_ctx, &admin_server) {
                            let restored = match paused_admin.take() {
                                Some(socket) => admin::serve(socket, Arc::clone(ctx)),
                                None => admin::start(cfg.address, Arc::clone(ctx)),
                            };
                            match restored {
                                Ok(s) => admin_server = Some(s),
                                Err(e) => error!(error = %e, "cannot restore admin listener after failed hot restart"),
                            }
                        }
                    }
                },
            }
        }
    };

    // Drain: stop accepting, let in-flight work finish, then close what is left.
    info!(epoch, ?reason, "draining listeners");
    notify::stopping();
    state.set_lifecycle(ServerLifecycle::Draining);
    server_stats.flush();
    // As Envoy: connections are asked to close over --drain-time-s (gradual or at
    // once); a parent replaced by a hot restart closes what is left only at
    // --parent-shutdown-time-s, by which time every active client has been told to go.
    let drain_time = Duration::from_secs(opts.drain_time_s);
    let hot_restart = reason == ShutdownReason::HotRestart;
    let limit = if hot_restart {
        Duration::from_secs(opts.parent_shutdown_time_s).max(drain_time)
    } else {
        drain_time
    };
    // Nobody takes over unless this is a hot restart: idle keep-alive connections can
    // go now.
    listeners.begin_shutdown(drain_time, !hot_restart);
    server_drain.begin_drain(drain_time);
    let deadline = tokio::time::Instant::now() + limit;
    let mut terminating = reason == ShutdownReason::Terminate;
    if !terminating {
        tokio::select! {
            _ = tracker.wait_idle() => {}
            _ = tokio::time::sleep_until(deadline) => warn!(
                open = tracker.active(),
                "drain time over; closing remaining connections"
            ),
            _ = state.terminate_requested() => terminating = true,
        }
    }
    if terminating {
        // A newer generation wants us gone: close every connection after its current
        // response (and idle ones now), give in-flight requests a short grace, then go.
        info!(open = tracker.active(), "terminate requested during drain");
        listeners.hurry();
        let grace = deadline.min(tokio::time::Instant::now() + TERMINATE_GRACE);
        let _ = tokio::time::timeout_at(grace, tracker.wait_idle()).await;
    }
    listeners.close_all();
    server_drain.set(DrainPhase::Closed);
    drop(admin_server);
    if let Some(workers) = listeners.take_workers() {
        workers.join().await;
    }
    info!(epoch, "exiting");
    Ok(0)
}

/// How long `--hot-restart-version-mismatch cold-restart` waits for the old generation.
const COLD_RESTART_WAIT: Duration = Duration::from_secs(60);

/// The opt-in fallback for an incompatible live generation: ask it to exit (SIGTERM: it
/// drains) and wait until it is gone, so this generation can bind the ports fresh.
async fn cold_restart(detail: &str, parent_pid: u32) -> anyhow::Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    warn!(
        parent_pid,
        "hot restart version mismatch ({detail}); --hot-restart-version-mismatch cold-restart: stopping the running generation and starting without socket inheritance (connections are refused until this generation listens)"
    );
    let pid = Pid::from_raw(
        i32::try_from(parent_pid)
            .map_err(|_| anyhow::anyhow!("invalid parent pid {parent_pid}"))?,
    );
    if pid.as_raw() <= 1 || pid.as_raw() == std::process::id() as i32 {
        anyhow::bail!("refusing to signal pid {parent_pid} for a cold restart");
    }
    if let Err(e) = kill(pid, Signal::SIGTERM) {
        if e != nix::errno::Errno::ESRCH {
            anyhow::bail!("cannot stop the running generation (pid {parent_pid}): {e}");
        }
    }
    let deadline = tokio::time::Instant::now() + COLD_RESTART_WAIT;
    while kill(pid, None).is_ok() {
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the running generation (pid {parent_pid}) did not exit within {}s",
                COLD_RESTART_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    info!(parent_pid, "old generation exited; starting fresh");
    Ok(())
}

/// Binds admin; a child retries while the parent releases the port.
async fn start_admin(
    addr: std::net::SocketAddr,
    ctx: &Arc<AdminContext>,
    from_parent: bool,
) -> anyhow::Result<AdminServer> {
    let mut attempt = 0;
    loop {
        match admin::start(addr, Arc::clone(ctx)) {
            Ok(s) => {
                info!(addr = %s.addr, "admin listening");
                return Ok(s);
            }
            Err(e) if from_parent && attempt < ADMIN_REBIND_ATTEMPTS => {
                attempt += 1;
                if attempt == 1 {
                    info!(error = %e, "waiting for the parent to release the admin port");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Holds the link to our (draining) parent: polls its open connections for
/// `server.parent_connections`, tells it to terminate when a newer generation took over
/// from us, and logs when it exits.
async fn watch_parent(
    mut link: ParentLink,
    child_took_over: Arc<Notify>,
    parent_connections: Arc<AtomicU64>,
) {
    let parent_pid = link.parent_pid;
    let mut poll = tokio::time::interval(STATS_FLUSH_INTERVAL);
    loop {
        tokio::select! {
            _ = link.closed() => break,
            _ = child_took_over.notified() => {
                info!(parent_pid, "a newer generation took over from us; telling our draining parent to terminate");
                if let Err(e) = link.terminate().await {
                    warn!(error = %e, "could not tell the draining parent to terminate");
                }
                link.closed().await;
                break;
            }
            _ = poll.tick() => match link.parent_connections().await {
                Ok(n) => parent_connections.store(n, Ordering::Relaxed),
                Err(_) => break,
            },
        }
    }
    parent_connections.store(0, Ordering::Relaxed);
    // The parent's listeners, clusters and connection managers that this generation
    // does not have leave /stats now, as Envoy's child drops the parent's stats.
    crate::stats::store().hide_unleased(&["listener.", "cluster.", "http."]);
    info!(parent_pid, "parent generation exited");
}
