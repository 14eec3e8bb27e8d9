//! Support for the `supervisor_*` tests: a guard for one `baton-supervisor` process (log
//! file, `ctl` calls, kills its generations and itself by pid on drop), a test
//! `NOTIFY_SOCKET` receiver, a bounded HTTP/1.1 load loop that counts refused connections
//! separately from other failures, and a tiny stand-in for `baton` ([`FAKE_BATON`]) that
//! speaks the supervisor contract (sd_notify, LISTEN_FDS, hand-over by signal) so the
//! supervisor's own logic is tested independently of the proxy.

#![allow(dead_code)] // Each test file uses a different subset.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use baton_tests::{eventually, proxy_binary, TempDir, STARTUP_TIMEOUT};

/// The `baton-supervisor` binary next to `baton` in the target profile directory.
pub fn supervisor_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("."));
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("baton-supervisor"))
        .unwrap_or_else(|| PathBuf::from("baton-supervisor"))
}

/// The real baton under test (`target/<profile>/baton`).
pub fn baton_binary() -> PathBuf {
    proxy_binary()
}

/// A fake `baton` in Python. Behaviour comes from the file named by
/// `$FAKE_BATON_BEHAVIOUR` (read at start, so a test changes it between reloads):
/// `ok` (default), `fail` (config error on stderr, exit 1), `hang` (never READY=1; exits
/// on SIGTERM), `stuck` (never READY=1 and ignores SIGTERM), `crash` (exit 3 shortly after READY=1). A script whose name contains `badvalidate` fails
/// `--mode validate`. Each generation serves `epoch=E pid=P` over HTTP/1.1 on every
/// passed socket, records `name=address` of them in `<runtime-dir>/fake-listeners-E`, and
/// takes over from the previous live one by SIGUSR1 (which then drains and exits).
pub const FAKE_BATON: &str = r#"#!/usr/bin/env python3
import os, signal, socket, sys, threading, time

args = sys.argv[1:]
def arg(name, default=None):
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else default

behaviour = "ok"
path = os.environ.get("FAKE_BATON_BEHAVIOUR")
if path and os.path.exists(path):
    behaviour = open(path).read().strip() or "ok"
config = arg("-c", "none")

if "--version" in args:
    print("fake-baton 1.0 (%s)" % os.path.basename(sys.argv[0]))
    sys.exit(0)
if arg("--mode") == "validate":
    if "badvalidate" in os.path.basename(sys.argv[0]) or behaviour == "fail":
        sys.stderr.write("error initializing configuration '%s': %s:1: fake validation failure\n" % (config, config))
        sys.exit(1)
    sys.exit(0)

epoch = int(arg("--restart-epoch", "0"))
rundir = arg("--runtime-dir", "/tmp")
pid = os.getpid()

def notify(msg):
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return
    if target.startswith("@"):
        target = "\0" + target[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(msg.encode(), target)
    finally:
        s.close()

print("fake baton epoch %d pid %d starting" % (epoch, pid), flush=True)
sys.stderr.write("info: fake baton epoch %d loading %s\n" % (epoch, config))
sys.stderr.flush()
if behaviour == "fail":
    sys.stderr.write("error initializing configuration '%s': %s:3: static_resources.listeners[0]: fake failure\n" % (config, config))
    sys.exit(1)

stop = threading.Event()
def on_term(signum, frame):
    notify("STOPPING=1\nSTATUS=draining")
    stop.set()
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGUSR1, on_term)

if behaviour == "hang":
    while not stop.wait(0.1):
        pass
    sys.exit(0)
if behaviour == "stuck":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.stderr.write("info: fake baton epoch %d stuck\n" % epoch)
    sys.stderr.flush()
    while True:
        time.sleep(0.1)

sockets = []
if os.environ.get("LISTEN_FDS"):
    if int(os.environ.get("LISTEN_PID", "0")) != pid:
        sys.stderr.write("error: LISTEN_PID %s is not my pid %d\n" % (os.environ.get("LISTEN_PID"), pid))
        sys.exit(2)
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for i in range(int(os.environ["LISTEN_FDS"])):
        s = socket.socket(fileno=3 + i)
        sockets.append((names[i] if i < len(names) else "", s))
with open(os.path.join(rundir, "fake-listeners-%d" % epoch), "w") as f:
    for name, s in sockets:
        host, port = s.getsockname()[:2]
        f.write("%s=%s:%d\n" % (name, host, port))

body = ("epoch=%d pid=%d" % (epoch, pid)).encode()
def handle(conn):
    try:
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
    except OSError:
        pass
    finally:
        conn.close()

def serve(s):
    s.settimeout(0.05)
    while not stop.is_set():
        try:
            conn, _ = s.accept()
        except (socket.timeout, BlockingIOError, InterruptedError):
            continue
        except OSError:
            return
        handle(conn)
threads = [threading.Thread(target=serve, args=(s,), daemon=True) for _, s in sockets]
for t in threads:
    t.start()

pidfile = os.path.join(rundir, "fake-live.pid")
try:
    old = int(open(pidfile).read().strip())
    if old != pid:
        os.kill(old, signal.SIGUSR1)
except (OSError, ValueError):
    pass
with open(pidfile, "w") as f:
    f.write(str(pid))
notify("READY=1\nMAINPID=%d\nSTATUS=fake live" % pid)
print("fake baton epoch %d live" % epoch, flush=True)

if behaviour == "crash":
    time.sleep(0.2)
    os._exit(3)
while not stop.wait(0.1):
    pass
for t in threads:
    t.join(2)
sys.exit(0)
"#;

/// Writes [`FAKE_BATON`] to `dir/name` (executable) and returns its path.
pub fn write_fake_baton(dir: &TempDir, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, FAKE_BATON)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Options for [`SupervisorProcess::start`].
#[derive(Debug, Default)]
pub struct SupervisorOptions {
    /// `--binary` (the proxy or the fake).
    pub binary: PathBuf,
    /// Supervisor flags before `--`.
    pub flags: Vec<String>,
    /// baton arguments after `--`.
    pub baton_args: Vec<String>,
    /// Extra environment (e.g. NOTIFY_SOCKET, FAKE_BATON_BEHAVIOUR).
    pub env: Vec<(String, String)>,
    /// Run through this launcher (e.g. `systemd-socket-activate -l ...`), which execs us.
    pub launcher: Vec<String>,
}

/// A running `baton-supervisor`; on drop its generations and then itself get SIGKILL by pid.
#[derive(Debug)]
pub struct SupervisorProcess {
    child: Option<Child>,
    /// The supervisor's pid.
    pub pid: u32,
    /// The runtime directory (inside the test's temp dir).
    pub runtime_dir: PathBuf,
    log_path: PathBuf,
    exit_status: Option<ExitStatus>,
    /// Every generation pid seen, killed on drop.
    seen_pids: Vec<u32>,
}

impl SupervisorProcess {
    /// Starts the supervisor with its runtime dir and log in `dir`.
    pub fn start(dir: &TempDir, opts: SupervisorOptions) -> anyhow::Result<Self> {
        let runtime_dir = dir.join("run");
        let log_path = dir.join("supervisor.log");
        let log = std::fs::File::create(&log_path)?;
        let mut argv: Vec<String> = opts.launcher.clone();
        argv.push(supervisor_binary().display().to_string());
        argv.extend([
            "--binary".into(),
            opts.binary.display().to_string(),
            "--runtime-dir".into(),
            runtime_dir.display().to_string(),
        ]);
        argv.extend(opts.flags.iter().cloned());
        argv.push("--".into());
        argv.extend(opts.baton_args.iter().cloned());
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env_remove("NOTIFY_SOCKET")
            .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().with_context(|| {
            format!(
                "spawning {:?} (build it with `cargo build -p baton-supervisor`)",
                argv
            )
        })?;
        Ok(Self {
            pid: child.id(),
            child: Some(child),
            runtime_dir,
            log_path,
            exit_status: None,
            seen_pids: Vec::new(),
        })
    }

    /// The supervisor's combined output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The control socket path.
    pub fn control_socket(&self) -> PathBuf {
        self.runtime_dir.join("control.sock")
    }

    /// Runs `baton-supervisor ctl --control-socket S <args>` (bounded); returns
    /// (exit code, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
        run_bounded(
            Command::new(supervisor_binary())
                .arg("ctl")
                .arg("--control-socket")
                .arg(self.control_socket())
                .args(args),
            Duration::from_secs(90),
        )
    }

    /// `ctl status --json`, parsed; records the generation pids for cleanup.
    pub fn status(&mut self) -> anyhow::Result<serde_json::Value> {
        let (_, stdout, stderr) = self.ctl(&["status", "--json"])?;
        let json: serde_json::Value = serde_json::from_str(&stdout)
            .with_context(|| format!("status --json: {stdout} {stderr}"))?;
        for generation in json["generations"].as_array().into_iter().flatten() {
            if let Some(pid) = generation["pid"]
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
            {
                if !self.seen_pids.contains(&pid) {
                    self.seen_pids.push(pid);
                }
            }
        }
        Ok(json)
    }

    /// Waits (bounded) for a LIVE generation and returns (epoch, pid).
    pub async fn wait_live(&mut self) -> anyhow::Result<(u64, u32)> {
        self.wait_live_epoch_at_least(0).await
    }

    /// Waits (bounded) until the LIVE generation has epoch >= `min_epoch`.
    pub async fn wait_live_epoch_at_least(&mut self, min_epoch: u64) -> anyhow::Result<(u64, u32)> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.try_exit() {
                bail!("supervisor exited ({status}); log:\n{}", self.log());
            }
            if self.control_socket().exists() {
                if let Ok(status) = self.status() {
                    let live = status["generations"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|g| g["state"] == "LIVE" && g["epoch"].as_u64() >= Some(min_epoch));
                    if let Some(live) = live {
                        let pid = u32::try_from(live["pid"].as_u64().unwrap_or(0))?;
                        return Ok((live["epoch"].as_u64().unwrap_or(0), pid));
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no LIVE generation >= {min_epoch}; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (bounded) until the log contains `needle`.
    pub async fn wait_log(&self, needle: &str) -> anyhow::Result<()> {
        let log_path = self.log_path.clone();
        let needle = needle.to_owned();
        eventually(STARTUP_TIMEOUT, || {
            let log_path = log_path.clone();
            let needle = needle.clone();
            async move {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                Ok(log.contains(&needle).then_some(()))
            }
        })
        .await
        .with_context(|| {
            format!(
                "waiting for {:?} in the log:\n{}",
                self.log_path.display(),
                self.log()
            )
        })
    }

    /// Sends `signal` to the supervisor.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(self.pid)?), signal)?;
        Ok(())
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.exit_status = child.try_wait().ok().flatten();
            }
        }
        self.exit_status
    }

    /// Waits (bounded) for the supervisor to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Ok(status);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "supervisor did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Remembers `pid` for the cleanup on drop.
    pub fn track(&mut self, pid: u32) {
        self.seen_pids.push(pid);
    }
}

impl Drop for SupervisorProcess {
    fn drop(&mut self) {
        for pid in &self.seen_pids {
            if let Ok(pid) = i32::try_from(*pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if self.try_exit().is_none() {
            if let Some(child) = self.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        eprintln!(
            "----- supervisor log (pid {}) -----\n{}\n----- end -----",
            self.pid,
            self.log()
        );
    }
}

/// Runs `command` to completion with a bound; returns (exit code, stdout, stderr).
pub fn run_bounded(
    command: &mut Command,
    timeout: Duration,
) -> anyhow::Result<(i32, String, String)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {command:?}"))?;
    let deadline = std::time::Instant::now() + timeout;
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{command:?} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// Whether process `pid` is gone (no such process, or only a zombie nobody will reap is
/// NOT gone: zombies count as present).
pub fn process_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Receives the sd_notify datagrams a supervisor sends to its `NOTIFY_SOCKET`.
#[derive(Debug)]
pub struct NotifyReceiver {
    socket: tokio::net::UnixDatagram,
    /// The path to pass as `NOTIFY_SOCKET`.
    pub path: PathBuf,
}

impl NotifyReceiver {
    /// Binds `dir/systemd-notify.sock`.
    pub fn bind(dir: &TempDir) -> anyhow::Result<Self> {
        let path = dir.join("systemd-notify.sock");
        let socket = tokio::net::UnixDatagram::bind(&path)?;
        Ok(Self { socket, path })
    }

    /// The next datagram (bounded wait).
    pub async fn next(&self) -> anyhow::Result<String> {
        let mut buf = vec![0u8; 8192];
        let n = tokio::time::timeout(STARTUP_TIMEOUT, self.socket.recv(&mut buf))
            .await
            .context("no sd_notify message")??;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// The next datagram that is more than a `STATUS=` line (READY, RELOADING, STOPPING,
    /// WATCHDOG, ...), skipping status-only updates whose timing varies.
    pub async fn next_state(&self) -> anyhow::Result<String> {
        loop {
            let message = self.next().await?;
            if message.lines().any(|l| !l.starts_with("STATUS=")) {
                return Ok(message);
            }
        }
    }
}

/// Counts of a load run.
#[derive(Debug, Default)]
pub struct LoadCounts {
    /// Requests answered 200.
    pub ok: AtomicU64,
    /// Connections refused (ECONNREFUSED).
    pub refused: AtomicU64,
    /// Any other failure (reset, EOF, timeout, non-200), with the first few reasons.
    pub failed: AtomicU64,
    /// A few failure reasons for the assertion message.
    pub reasons: std::sync::Mutex<Vec<String>>,
}

impl LoadCounts {
    fn fail(&self, reason: String, refused: bool) {
        if refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut reasons) = self.reasons.lock() {
            if reasons.len() < 10 {
                reasons.push(reason);
            }
        }
    }

    /// `ok=N refused=N failed=N [reasons]`.
    pub fn summary(&self) -> String {
        format!(
            "ok={} refused={} failed={} reasons={:?}",
            self.ok.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.reasons.lock().map(|r| r.clone()).unwrap_or_default()
        )
    }
}

/// A bounded load loop: `clients` tasks each send `GET /` on a new connection, again and
/// again, and `keepalive` tasks reuse one connection until the server says
/// `connection: close` (then they reconnect), until [`Load::stop`] (or `max_per_client`
/// requests each).
#[derive(Debug)]
pub struct Load {
    /// The counts.
    pub counts: Arc<LoadCounts>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn is_refused(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

impl Load {
    /// Starts `clients` new-connection-per-request clients against `addr`.
    pub fn start(addr: SocketAddr, clients: usize, max_per_client: usize) -> Self {
        Self::start_mixed(addr, clients, 0, max_per_client)
    }

    /// Starts `clients` new-connection clients and `keepalive` keep-alive clients.
    pub fn start_mixed(
        addr: SocketAddr,
        clients: usize,
        keepalive: usize,
        max_per_client: usize,
    ) -> Self {
        let counts = Arc::new(LoadCounts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks: Vec<tokio::task::JoinHandle<()>> = (0..clients)
            .map(|_| {
                let counts = counts.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    for _ in 0..max_per_client {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        match baton_tests::get(addr, "/").await {
                            Ok(resp) if resp.status == 200 => {
                                counts.ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(resp) => counts.fail(
                                format!("status {}: {}", resp.status, resp.body_text()),
                                false,
                            ),
                            Err(err) => counts.fail(format!("{err:#}"), is_refused(&err)),
                        }
                    }
                })
            })
            .collect();
        for _ in 0..keepalive {
            let counts = counts.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn: Option<baton_tests::RawHttp1> = None;
                for _ in 0..max_per_client {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let mut current = match conn.take() {
                        Some(current) => current,
                        None => match baton_tests::RawHttp1::connect(addr).await {
                            Ok(current) => current,
                            Err(err) => {
                                counts
                                    .fail(format!("keep-alive connect: {err:#}"), is_refused(&err));
                                continue;
                            }
                        },
                    };
                    let result = async {
                        current.send_request("GET", "/", &[], b"").await?;
                        current.read_response().await
                    }
                    .await;
                    match result {
                        Ok(resp) if resp.status == 200 => {
                            counts.ok.fetch_add(1, Ordering::Relaxed);
                            if !resp.connection_close() {
                                conn = Some(current);
                            }
                        }
                        Ok(resp) => {
                            counts.fail(format!("keep-alive status {}", resp.status), false)
                        }
                        Err(err) => counts.fail(format!("keep-alive: {err:#}"), false),
                    }
                }
            }));
        }
        Self {
            counts,
            stop,
            tasks,
        }
    }

    /// Waits (bounded) until at least `n` requests succeeded.
    pub async fn wait_ok(&self, n: u64) -> anyhow::Result<()> {
        let counts = self.counts.clone();
        eventually(STARTUP_TIMEOUT, || {
            let counts = counts.clone();
            async move { Ok((counts.ok.load(Ordering::Relaxed) >= n).then_some(())) }
        })
        .await
        .with_context(|| self.counts.summary())
    }

    /// Stops the clients and waits for them.
    pub async fn stop(self) -> Arc<LoadCounts> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        self.counts
    }
}

/// Reads `<runtime-dir>/fake-listeners-<epoch>` written by the fake: `name=address` lines.
pub fn fake_listeners(runtime_dir: &Path, epoch: u64) -> anyhow::Result<Vec<(String, SocketAddr)>> {
    let text = std::fs::read_to_string(runtime_dir.join(format!("fake-listeners-{epoch}")))?;
    text.lines()
        .map(|line| {
            let (name, addr) = line.split_once('=').context("name=addr")?;
            Ok((name.to_owned(), addr.parse()?))
        })
        .collect()
}

/// A minimal valid Envoy bootstrap with one listener `http` on 127.0.0.1:`port` answering
/// every request with a direct 200 (the supervisor reads listeners from it; the fake only
/// needs it to exist). Written to `dir/name`.
pub fn write_direct_bootstrap(dir: &TempDir, name: &str, port: u16) -> anyhow::Result<PathBuf> {
    use baton_tests::config::*;
    let config = bootstrap(
        vec![listener_on(
            "http",
            "127.0.0.1",
            port,
            vec![hcm_filter(hcm(route_config(vec![vhost(
                "all",
                &["*"],
                vec![direct_route("/", 200, "direct")],
            )])))],
        )],
        vec![],
    );
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&config)?)?;
    Ok(path)
}
