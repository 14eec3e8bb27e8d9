//! Process guard for one `baton` (or, with `BATON_BIN=.../envoy`, real Envoy) under test:
//! writes the config into a private temp dir, starts the binary with a unique `--base-id`,
//! waits (bounded) for the admin address file and `GET /ready`, and kills the process by pid
//! when dropped. The process's stderr goes to a log file that is printed on drop, so libtest
//! shows it exactly for the tests that fail (it captures output of passing tests).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::client::{self, RawResponse};
use crate::eventually::{eventually, STARTUP_TIMEOUT};

/// Per-process counter so that every proxy started by this test binary gets its own base id
/// and temp dir (tests run in parallel threads).
static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(0);

/// Path of the binary under test: `BATON_BIN` when set, otherwise `target/<profile>/baton`
/// next to the directory holding the test executable (`target/<profile>/deps/<test>`).
pub fn proxy_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("BATON_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("."));
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    profile_dir.join("baton")
}

/// True when the binary under test is real Envoy (used to skip tests of behaviour where an
/// issue says Baton differs from Envoy by design, and to relax Baton-only output checks).
pub fn is_envoy() -> bool {
    proxy_binary()
        .file_name()
        .is_some_and(|name| name.to_string_lossy().contains("envoy"))
}

/// A private scratch directory removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/baton-test-<pid>-<n>`.
    pub fn new() -> anyhow::Result<Self> {
        let n = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("baton-test-{}-{n}", std::process::id()));
        // A stale dir can only come from an earlier process with the same pid; start clean.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs the binary to completion with `args` (for `--version`, `--mode validate`, bad flags).
/// Returns (exit status, stdout, stderr).
pub fn run_to_completion(args: &[&str]) -> anyhow::Result<(ExitStatus, String, String)> {
    run_to_completion_in(None, args)
}

/// [`run_to_completion`] in working directory `cwd` (for configs with relative paths, such
/// as `path_config_source` files, which resolve against the working directory).
pub fn run_to_completion_in(
    cwd: Option<&Path>,
    args: &[&str],
) -> anyhow::Result<(ExitStatus, String, String)> {
    let bin = proxy_binary();
    let mut command = Command::new(&bin);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "spawning {} (build it with `cargo build -p baton-proxy`)",
                bin.display()
            )
        })?;
    // Bounded: a binary that does not exit (e.g. serves instead of validating) is killed.
    let deadline = std::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} {:?} did not exit within {:?}",
                bin.display(),
                args,
                STARTUP_TIMEOUT
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    Ok((
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// A running proxy. Killed (SIGKILL, by pid) on drop unless it already exited.
#[derive(Debug)]
pub struct Proxy {
    child: Option<Child>,
    bin: PathBuf,
    pid: u32,
    admin: SocketAddr,
    log_path: PathBuf,
    dir: TempDir,
    exit_status: Option<ExitStatus>,
}

/// Options for [`Proxy::start_with`].
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Extra command-line arguments after the standard ones.
    pub extra_args: Vec<String>,
    /// Do not wait for `/ready` (for tests of startup failures).
    pub no_wait_ready: bool,
    /// The binary to run instead of [`proxy_binary`] (benchmarks comparing binaries).
    pub binary: Option<PathBuf>,
    /// `-l` (default `info`).
    pub log_level: Option<String>,
    /// Environment variables set for the proxy process on top of the inherited ones
    /// (switches such as `BATON_H2_CODEC=hyper`).
    pub env: Vec<(String, String)>,
}

impl Proxy {
    /// Starts the proxy with `config` (a JSON value, written as YAML-compatible JSON) and waits
    /// until it is LIVE.
    pub async fn start(config: &serde_json::Value) -> anyhow::Result<Self> {
        Self::start_with(config, StartOptions::default()).await
    }

    /// Starts the proxy with `config` and `opts`.
    pub async fn start_with(
        config: &serde_json::Value,
        opts: StartOptions,
    ) -> anyhow::Result<Self> {
        let text = serde_json::to_string_pretty(config)?;
        Self::start_text(&text, "yaml", opts).await
    }

    /// Starts the proxy with config text written to `config.<ext>`.
    pub async fn start_text(config: &str, ext: &str, opts: StartOptions) -> anyhow::Result<Self> {
        let dir = TempDir::new()?;
        let config_path = dir.join(&format!("config.{ext}"));
        std::fs::write(&config_path, config)?;
        let admin_path = dir.join("admin-address");
        let log_path = dir.join("proxy.log");
        let log = std::fs::File::create(&log_path)?;
        let n = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        // Unique across test binaries (the whole pid: a pid modulo something repeats over
        // a long run, and a stats region left by an exited process with the same base id
        // would continue its counters) and tests within one binary (n). pid_max (at most
        // 2^22) * 100 fits a u32.
        let base_id = std::process::id().wrapping_mul(100) + (n % 100);
        let bin = opts.binary.clone().unwrap_or_else(proxy_binary);
        let mut args: Vec<String> = vec![
            "-c".into(),
            config_path.display().to_string(),
            "--base-id".into(),
            base_id.to_string(),
            "--admin-address-path".into(),
            admin_path.display().to_string(),
            "--concurrency".into(),
            "2".into(),
            "-l".into(),
            opts.log_level.clone().unwrap_or_else(|| "info".into()),
        ];
        // Bounded drain so SIGTERM tests finish quickly on both Baton and Envoy, unless
        // the test sets its own (both reject a flag given twice).
        for (flag, value) in [("--drain-time-s", "1"), ("--parent-shutdown-time-s", "2")] {
            if !opts.extra_args.iter().any(|a| a == flag) {
                args.push(flag.into());
                args.push(value.into());
            }
        }
        args.extend(opts.extra_args.iter().cloned());
        let mut command = Command::new(&bin);
        // The stats region and hot-restart socket go in the test's private dir (removed
        // with it), not in the shared default runtime dir, which kept one region file per
        // proxy a test ever started. (Envoy ignores the variable.)
        if !opts.extra_args.iter().any(|a| a == "--runtime-dir") {
            command.env("RUNTIME_DIRECTORY", dir.join("run"));
        }
        command.envs(opts.env.iter().map(|(k, v)| (k, v)));
        let child = command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "spawning {} (build it with `cargo build -p baton-proxy`)",
                    bin.display()
                )
            })?;
        let pid = child.id();
        let mut proxy = Self {
            child: Some(child),
            bin,
            pid,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_path,
            dir,
            exit_status: None,
        };
        proxy.admin = proxy.wait_admin_address(&admin_path).await?;
        if !opts.no_wait_ready {
            proxy.wait_ready().await?;
        }
        Ok(proxy)
    }

    async fn wait_admin_address(&mut self, admin_path: &Path) -> anyhow::Result<SocketAddr> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.try_exit_status() {
                bail!(
                    "proxy exited during startup: {status}; log:\n{}",
                    self.log()
                );
            }
            if let Ok(text) = tokio::fs::read_to_string(admin_path).await {
                if let Ok(addr) = text.trim().parse::<SocketAddr>() {
                    return Ok(addr);
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "no admin address after {STARTUP_TIMEOUT:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) until `GET /ready` answers 200.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let admin = self.admin;
        let result = eventually(STARTUP_TIMEOUT, || async move {
            let resp = client::http1_request(admin, "GET", "/ready", &[], b"").await?;
            Ok((resp.status == 200).then_some(()))
        })
        .await;
        result.with_context(|| format!("waiting for /ready; log:\n{}", self.log()))
    }

    /// Waits (bounded) until the proxy logged that it is LIVE (Baton's "server LIVE",
    /// Envoy's "starting workers": both at `info`), then for `/ready`: one `/ready`
    /// request then, however slowly the proxy started, so that tests counting admin
    /// traffic see the same counts on every run.
    pub async fn wait_live_then_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            let log = self.log();
            if log.contains("server LIVE") || log.contains("starting workers") {
                break;
            }
            if let Some(status) = self.try_exit_status() {
                bail!("proxy exited during startup: {status}; log:\n{log}");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("not LIVE after {STARTUP_TIMEOUT:?}; log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.wait_ready().await
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.exit_status = child.try_wait().ok().flatten();
            }
        }
        self.exit_status
    }

    /// The admin listener's address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The test's private temp dir (for access log files etc.).
    pub fn dir(&self) -> &TempDir {
        &self.dir
    }

    /// The proxy's combined stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends an admin request.
    pub async fn admin_request(&self, method: &str, path: &str) -> anyhow::Result<RawResponse> {
        client::http1_request(self.admin, method, path, &[], b"").await
    }

    /// The value of the counter or gauge `name` (None: the proxy has no such stat), from
    /// `GET /stats?filter=^name$`.
    pub async fn stat(&self, name: &str) -> anyhow::Result<Option<u64>> {
        let filter = format!("/stats?filter=^{}$", name.replace('.', "\\."));
        let resp = self.admin_request("GET", &filter).await?;
        Ok(resp.body_text().lines().find_map(|l| {
            let (n, v) = l.split_once(": ")?;
            (n == name).then(|| v.trim().parse().ok()).flatten()
        }))
    }

    /// The bound address of listener `name`, from `GET /listeners?format=json`.
    pub async fn listener_addr(&self, name: &str) -> anyhow::Result<SocketAddr> {
        let resp = self.admin_request("GET", "/listeners?format=json").await?;
        let json: serde_json::Value = serde_json::from_slice(&resp.body)
            .with_context(|| format!("/listeners body: {}", resp.body_text()))?;
        let statuses = json["listener_statuses"]
            .as_array()
            .context("listener_statuses")?;
        for status in statuses {
            if status["name"] == name {
                let sock = &status["local_address"]["socket_address"];
                let ip: std::net::IpAddr = sock["address"].as_str().context("address")?.parse()?;
                let port = sock["port_value"].as_u64().context("port_value")?;
                return Ok(SocketAddr::new(ip, u16::try_from(port)?));
            }
        }
        bail!("no listener named {name} in {}", resp.body_text())
    }

    /// Sends SIGTERM (graceful drain).
    pub fn sigterm(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGTERM)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid)?);
        nix::sys::signal::kill(pid, signal)?;
        Ok(())
    }

    /// Waits (bounded) for the process to exit and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Ok(status);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "proxy did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            if let Some(child) = self.child.as_mut() {
                // Child::kill sends SIGKILL to this pid only.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Captured by libtest: only shown when the test fails.
        eprintln!(
            "----- proxy log ({}, pid {}) -----\n{}\n----- end proxy log -----",
            self.bin.display(),
            self.pid,
            self.log()
        );
    }
}
