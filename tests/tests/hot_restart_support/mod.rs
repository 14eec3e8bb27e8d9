//! Support for the hot-restart tests (`tests/tests/hot_restart_*.rs`): a [`Service`] that
//! starts numbered generations of baton sharing one `--base-id` and `--runtime-dir`, a
//! [`Generation`] guard (killed by pid on drop, log printed), and bounded load clients
//! ([`Load`]) that count served, failed and refused requests while generations hand over.
//!
//! The load clients are strict: a request counts as served only when its full response
//! arrived with status 200. The only thing not counted as a failure is an HTTP/2 request
//! the server provably did not process: never put on the wire because the connection was
//! going away (GOAWAY) or closing, or above the GOAWAY's last stream id (RFC 9113 6.8).
//! Those are sent again on a new connection, as HTTP/2 clients do, and counted apart; the
//! load test checks against the upstream's request count that none of them was processed.

#![allow(dead_code, unused_imports)] // each test file uses a different part of this module

pub mod load;
pub mod protocol;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use baton_tests::{client, eventually, proxy_binary, TempDir, STARTUP_TIMEOUT};

pub use load::{ClientKind, Load, LoadReport};

/// Drain time given to every generation: short, so parents exit quickly in tests.
pub const DRAIN_TIME_S: u64 = 2;
/// Parent shutdown time given to every generation.
pub const PARENT_SHUTDOWN_TIME_S: u64 = 3;
/// Bound for a draining generation to exit (drain time plus start-up slack).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

static NEXT_SERVICE: AtomicU32 = AtomicU32::new(0);

/// One service: generations of baton that hand over to each other.
#[derive(Debug)]
pub struct Service {
    dir: TempDir,
    base_id: u32,
    run_dir: PathBuf,
}

impl Service {
    /// A service with a private temp dir and runtime dir and a unique base id.
    pub fn new() -> anyhow::Result<Self> {
        let dir = TempDir::new()?;
        let n = NEXT_SERVICE.fetch_add(1, Ordering::Relaxed);
        let base_id = 1_000_000 + (std::process::id() % 20_000) * 100 + n % 100;
        let run_dir = dir.join("run");
        Ok(Self {
            dir,
            base_id,
            run_dir,
        })
    }

    /// The `--base-id` of every generation.
    pub fn base_id(&self) -> u32 {
        self.base_id
    }

    /// The runtime directory (hot-restart sockets).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The live generation's hot-restart socket.
    pub fn socket_path(&self) -> PathBuf {
        self.run_dir.join(format!("baton-{}.sock", self.base_id))
    }

    /// The service's scratch directory.
    pub fn dir(&self) -> &TempDir {
        &self.dir
    }

    /// Writes `config` (JSON, which is YAML) as `<name>.yaml`.
    pub fn write_config(&self, name: &str, config: &serde_json::Value) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(&format!("{name}.yaml"));
        std::fs::write(&path, serde_json::to_string_pretty(config)?)?;
        Ok(path)
    }

    /// Starts generation `epoch` with `config` and `extra` arguments, without waiting.
    pub fn spawn(&self, epoch: u32, config: &Path, extra: &[&str]) -> anyhow::Result<Generation> {
        let tag = format!(
            "epoch{epoch}-{}",
            NEXT_SERVICE.fetch_add(1, Ordering::Relaxed)
        );
        let admin_path = self.dir.join(&format!("admin-{tag}"));
        let log_path = self.dir.join(&format!("log-{tag}"));
        let log = std::fs::File::create(&log_path)?;
        let mut args: Vec<String> = vec![
            "-c".into(),
            config.display().to_string(),
            "--base-id".into(),
            self.base_id.to_string(),
            "--restart-epoch".into(),
            epoch.to_string(),
            "--admin-address-path".into(),
            admin_path.display().to_string(),
            "-l".into(),
            "info".into(),
        ];
        // Baton's hot-restart socket directory; Envoy has no such flag (its sockets are
        // abstract, named by base id), so tests that also run on Envoy work without it.
        if !baton_tests::is_envoy() {
            args.extend(["--runtime-dir".into(), self.run_dir.display().to_string()]);
        }
        // Immediate drains (every response during the drain closes its connection, so
        // tests can assert it) unless the test sets its own strategy.
        if !extra.contains(&"--drain-strategy") {
            args.extend(["--drain-strategy".to_string(), "immediate".to_string()]);
        }
        // Two workers and short drains unless the test sets its own.
        for (flag, value) in [
            ("--concurrency", 2),
            ("--drain-time-s", DRAIN_TIME_S),
            ("--parent-shutdown-time-s", PARENT_SHUTDOWN_TIME_S),
        ] {
            if !extra.contains(&flag) {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        args.extend(extra.iter().map(|s| (*s).to_string()));
        let bin = proxy_binary();
        let child = Command::new(&bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {} (cargo build -p baton-proxy)", bin.display()))?;
        Ok(Generation {
            pid: child.id(),
            child,
            epoch,
            admin_path,
            log_path,
            admin: None,
            exit_status: None,
        })
    }

    /// Starts generation `epoch` and waits (bounded) until it is LIVE.
    pub async fn start(
        &self,
        epoch: u32,
        config: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Generation> {
        let mut generation = self.spawn(epoch, config, extra)?;
        generation.wait_live().await?;
        Ok(generation)
    }
}

/// One running baton generation; SIGKILLed by pid on drop if still running.
#[derive(Debug)]
pub struct Generation {
    child: Child,
    pid: u32,
    /// Its `--restart-epoch`.
    pub epoch: u32,
    admin_path: PathBuf,
    log_path: PathBuf,
    admin: Option<SocketAddr>,
    exit_status: Option<ExitStatus>,
}

impl Generation {
    /// Waits (bounded) for the admin address file, then for `GET /ready` = 200 (LIVE).
    pub async fn wait_live(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        let admin = loop {
            if let Some(status) = self.try_exit_status() {
                bail!(
                    "epoch {} exited during startup: {status}; log:\n{}",
                    self.epoch,
                    self.log()
                );
            }
            if let Ok(text) = std::fs::read_to_string(&self.admin_path) {
                if let Ok(addr) = text.trim().parse::<SocketAddr>() {
                    break addr;
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "epoch {}: no admin address in {STARTUP_TIMEOUT:?}; log:\n{}",
                    self.epoch,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.admin = Some(admin);
        let ready = eventually(STARTUP_TIMEOUT, || async move {
            let resp = client::http1_request(admin, "GET", "/ready", &[], b"").await?;
            Ok((resp.status == 200).then_some(()))
        })
        .await;
        ready.with_context(|| format!("epoch {} never LIVE; log:\n{}", self.epoch, self.log()))
    }

    /// The admin address (after [`Generation::wait_live`]).
    pub fn admin(&self) -> SocketAddr {
        self.admin
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// An admin request on a fresh connection.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<client::RawResponse> {
        client::http1_request(self.admin(), "GET", path, &[], b"").await
    }

    /// `/server_info` as JSON.
    pub async fn server_info(&self) -> anyhow::Result<serde_json::Value> {
        self.admin_get("/server_info").await?.json()
    }

    /// The `server.hot_restart_generation` gauge (`/server_info` has Envoy's key set,
    /// without it).
    pub async fn hot_restart_generation(&self) -> anyhow::Result<u64> {
        let resp = self
            .admin_get("/stats?filter=server.hot_restart_generation")
            .await?;
        let text = resp.body_text();
        text.lines()
            .find_map(|l| l.strip_prefix("server.hot_restart_generation: "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no server.hot_restart_generation in {text}"))
    }

    /// The bound address of listener `name` (from `/listeners?format=json`).
    pub async fn listener_addr(&self, name: &str) -> anyhow::Result<SocketAddr> {
        let resp = self.admin_get("/listeners?format=json").await?;
        let json = resp.json()?;
        for status in json["listener_statuses"]
            .as_array()
            .context("listener_statuses")?
        {
            if status["name"] == name {
                let sock = &status["local_address"]["socket_address"];
                let ip: std::net::IpAddr = sock["address"].as_str().context("address")?.parse()?;
                let port = u16::try_from(sock["port_value"].as_u64().context("port")?)?;
                return Ok(SocketAddr::new(ip, port));
            }
        }
        bail!("no listener {name} in {}", resp.body_text())
    }

    /// The exit status, if it has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            self.exit_status = self.child.try_wait().ok().flatten();
        }
        self.exit_status
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Ok(status);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "epoch {} did not exit within {timeout:?}; log:\n{}",
                    self.epoch,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` to this process (by pid).
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid)?);
        nix::sys::signal::kill(pid, signal)?;
        Ok(())
    }

    /// Its combined stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (bounded) until its log contains `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.log().contains(needle) {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "epoch {}: {needle:?} not logged within {timeout:?}; log:\n{}",
                    self.epoch,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The kernel identity (`socket:[inode]`) of every TCP listen socket this process holds.
    pub fn listen_socket_inodes(&self) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(format!("/proc/{}/fd", self.pid))? {
            if let Ok(target) = std::fs::read_link(entry?.path()) {
                let target = target.display().to_string();
                if target.starts_with("socket:[") {
                    found.push(target);
                }
            }
        }
        Ok(found)
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            // SIGKILL to this pid only (also ends a SIGSTOPped process).
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        eprintln!(
            "----- baton epoch {} (pid {}) log -----\n{}\n----- end -----",
            self.epoch,
            self.pid,
            self.log()
        );
    }
}

/// True when `status` is a normal exit with code 0.
pub fn exited_cleanly(status: ExitStatus) -> bool {
    status.code() == Some(0)
}

/// The `server.*`-style facts of `/server_info` the tests look at.
pub fn epoch_of(info: &serde_json::Value) -> u64 {
    info["command_line_options"]["restart_epoch"]
        .as_u64()
        .or_else(|| info["restart_epoch"].as_u64())
        .unwrap_or(u64::MAX)
}

/// Polls a generation's admin `GET /ready` in a loop (bounded) and counts answers other
/// than 200, to show that admin stays untouched while a child fails.
#[derive(Debug)]
pub struct AdminProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Held by the probe loop for the length of each request; `hold` takes it so that no
    /// probe is in flight.
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl AdminProbe {
    /// Starts polling `admin` every 5 ms. Counts 200 as ok, and 503 (a child generation
    /// answering while it initialises) too when `initialising_ok`.
    pub fn start(admin: SocketAddr, initialising_ok: bool) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let turn = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let probe_turn = std::sync::Arc::clone(&turn);
        let task = tokio::spawn(async move {
            let mut ok = 0;
            let mut bad = Vec::new();
            // Bounded: at most this many probes even if never stopped.
            for _ in 0..200_000 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let outcome = {
                    let _turn = probe_turn.lock().await;
                    client::http1_request(admin, "GET", "/ready", &[], b"").await
                };
                match outcome {
                    Ok(r) if r.status == 200 => ok += 1,
                    // A child holds the admin port while it initialises (as Envoy's
                    // child does); the port still answered.
                    Ok(r) if r.status == 503 && initialising_ok => ok += 1,
                    Ok(r) => bad.push(format!("status {}", r.status)),
                    Err(e) => bad.push(format!("{e:#}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, bad)
        });
        Self { stop, turn, task }
    }

    /// Waits for the probe in flight (if any) to finish and keeps the next one from
    /// starting until the guard is dropped. A test that SIGKILLs a child holding the
    /// admin port holds the probe meanwhile: a request that child had already accepted is
    /// lost with it, which no server can prevent; what the probe checks is that the port
    /// never refuses and the parent answers again afterwards.
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    /// Stops and returns (answers 200, every other outcome).
    pub async fn finish(self) -> anyhow::Result<(u64, Vec<String>)> {
        self.stop.store(true, Ordering::Relaxed);
        Ok(tokio::time::timeout(baton_tests::IO_TIMEOUT * 2, self.task).await??)
    }
}

/// Creates a named pipe at `path`: a file access log pointing at it blocks baton's
/// start-up (opening a FIFO for writing waits for a reader), which freezes a child right
/// after it has taken its listen sockets, before it becomes ready.
pub fn make_fifo(path: &Path) -> anyhow::Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    Ok(())
}
