//! `run`: config load, Envoy's initialisation order (clusters, then listeners), workers,
//! the admin listener, signals and drain, in that order.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use baton_config::Loaded;
use tracing::{error, info, warn};

use super::cli::{Mode, Options};
use super::drain::DrainPhase;
use super::state::{ServerLifecycle, ServerState, ShutdownReason};
use crate::admin::{self, AdminContext};
use crate::listener::{bind_listener, ConnectionTracker, NetworkContext};
use super::{drain, state, workers, version_line, VERSION};
use crate::upstream::ClusterManager;

/// Runs `baton` with parsed options; returns the process exit code.
pub fn run(opts: Options) -> anyhow::Result<u8> {
    if opts.version {
        println!("{}", version_line());
        return Ok(0);
    }
    if opts.hot_restart_version {
        println!("baton.hot_restart.v1");
        return Ok(0);
    }
    super::logging::init(&opts)?;
    let loaded = match load_config(&opts) {
        Ok(l) => l,
        Err(e) => {
            if opts.mode == Mode::Validate {
                eprintln!("{e}");
                return Ok(1);
            }
            error!("error initializing configuration: {e}");
            eprintln!("error initializing configuration '{}': {e}", config_name(&opts));
            return Ok(1);
        }
    };
    if opts.mode == Mode::Validate {
        println!("configuration '{}' OK", config_name(&opts));
        return Ok(0);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("baton-main")
        .build()
        .context("cannot start the main runtime")?;
    let state = ServerState::new(opts);
    runtime.block_on(serve(state, loaded))
}

fn config_name(opts: &Options) -> String {
    match &opts.config_path {
        Some(p) => p.display().to_string(),
        None => String::new(),
    }
}

fn load_config(opts: &Options) -> Result<Loaded, baton_config::ConfigError> {
    let mut loaded = baton_config::load(opts.config_path.as_deref(), opts.config_yaml.as_deref())?;
    if let Some(node) = &opts.service_node {
        loaded.model.node.id.clone_from(node);
    }
    if let Some(cluster) = &opts.service_cluster {
        loaded.model.node.cluster.clone_from(cluster);
    }
    Ok(loaded)
}

/// Envoy's init order, then serve until a shutdown is requested, then drain and exit.
async fn serve(state: Arc<ServerState>, loaded: Loaded) -> anyhow::Result<u8> {
    let opts = &state.options;
    info!(
        epoch = opts.restart_epoch,
        pid = std::process::id(),
        version = VERSION,
        "starting baton"
    );
    state.set_lifecycle(ServerLifecycle::Initializing);
    let model = loaded.model.clone();

    // 1. Clusters (static, then DNS) initialise before anything listens.
    let clusters = ClusterManager::initialize(&model.clusters)
        .await
        .map_err(|e| anyhow::anyhow!("cluster initialization failed: {e}"))?;

    // 2. Listen sockets (bound now, accepting only once LIVE).
    let mut bound = Vec::with_capacity(model.listeners.len());
    for l in &model.listeners {
        bound.push(bind_listener(Arc::clone(l))?);
    }
    {
        let mut statuses = state.listeners.lock().unwrap_or_else(|e| e.into_inner());
        *statuses = bound
            .iter()
            .map(|b| state::ListenerStatus {
                name: b.model.name.clone(),
                local_address: b.local_addr,
            })
            .collect();
    }

    let tracker = Arc::new(ConnectionTracker::default());
    let network = Arc::new(NetworkContext {
        http: crate::http::HttpContext::build(Arc::clone(&clusters), &model)
            .context("cannot open access logs")?,
        clusters: Arc::clone(&clusters),
        tracker: Arc::clone(&tracker),
    });

    // 3. Admin listener.
    if let Some(admin_cfg) = &model.admin {
        let admin_ctx = Arc::new(AdminContext {
            state: Arc::clone(&state),
            clusters: Arc::clone(&clusters),
            config_dump: baton_config::config_dump(&loaded.proto),
            node: model.node.clone(),
            tracker: Arc::clone(&tracker),
        });
        let addr = admin::start(admin_cfg, admin_ctx).await?;
        if let Some(path) = &opts.admin_address_path {
            std::fs::write(path, addr.to_string())
                .with_context(|| format!("cannot write admin address to {}", path.display()))?;
        }
        info!(%addr, "admin listening");
    }

    // 4. Workers start accepting: LIVE.
    let (drain_trigger, drain_signal) = drain::channel();
    let workers = workers::start(opts.workers(), &bound, &network, &drain_signal)?;
    state.set_lifecycle(ServerLifecycle::Live);
    for b in &bound {
        info!(listener = %b.model.name, address = %b.local_addr, "listener accepting");
    }
    info!(workers = opts.workers(), "all clusters initialized; server LIVE");

    let reason = if opts.mode == Mode::InitOnly {
        ShutdownReason::Quit
    } else {
        wait_for_shutdown(&state).await
    };

    // 5. Drain: stop accepting, let in-flight work finish, then close what is left.
    info!(?reason, "shutting down: draining listeners");
    state.set_lifecycle(ServerLifecycle::Draining);
    drain_trigger.set(DrainPhase::Draining);
    drop(bound);
    let drain_time = Duration::from_secs(opts.drain_time_s);
    if tokio::time::timeout(drain_time, tracker.wait_idle())
        .await
        .is_err()
    {
        warn!(
            open = tracker.active(),
            "drain time over; closing remaining connections"
        );
    }
    drain_trigger.set(DrainPhase::Closed);
    workers.join().await;
    info!("exiting");
    Ok(0)
}

/// Waits for SIGTERM, SIGINT or an admin /quitquitquit.
async fn wait_for_shutdown(state: &ServerState) -> ShutdownReason {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => ShutdownReason::Signal,
            _ = int.recv() => ShutdownReason::Signal,
            r = state.shutdown_requested() => r,
        },
        _ => {
            warn!("cannot install signal handlers; only /quitquitquit stops baton");
            state.shutdown_requested().await
        }
    }
}
