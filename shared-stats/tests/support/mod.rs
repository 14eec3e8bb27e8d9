//! Helpers for the cross-process tests: unique private directories, a child-process guard
//! that kills by pid on drop, and bounded waits for a child's output or exit.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use baton_shared_stats::RegionConfig;

/// Environment variable naming the role a re-executed test binary plays.
pub const ROLE_ENV: &str = "BATON_STATS_CHILD_ROLE";
/// Environment variable with the region directory for a child.
pub const DIR_ENV: &str = "BATON_STATS_CHILD_DIR";

/// A fresh 0700 directory under the cargo temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "stats-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    pub fn config(&self) -> RegionConfig {
        let mut config = RegionConfig::new(&self.0, 7);
        config.max_stats = 1024;
        config.max_cells = 8192;
        config.name_arena_bytes = 64 * 1024;
        config
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process that is SIGKILLed (by pid) and reaped when dropped.
pub struct ChildGuard {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
}

impl ChildGuard {
    /// Re-executes this test binary running only `entry_test`, in `role`.
    pub fn spawn(entry_test: &str, role: &str, dir: &Path, extra_env: &[(&str, &str)]) -> Self {
        let exe = std::env::current_exe().expect("test binary path");
        let mut command = Command::new(exe);
        command
            .args(["--exact", entry_test, "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .env(DIR_ENV, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildGuard {
            child: Some(child),
            lines: rx,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Waits (bounded) until the child prints `@@marker@@` (see `announce`).
    pub fn wait_for_line(&self, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // The harness may print "test name ... " on the same line first.
                Ok(line) if line.contains(&format!("@@{marker}@@")) => return,
                Ok(_) => continue,
                Err(e) => panic!("child never printed {marker:?}: {e}"),
            }
        }
    }

    /// SIGKILLs the child without reaping it (it stays a zombie until `wait`).
    pub fn sigkill(&self) {
        if let Some(child) = &self.child {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Waits (bounded) for the child to exit and returns its status.
    pub fn wait(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("child already reaped");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "child did not exit in time");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
        }
    }
}

/// The role this process was started in, if it is a child.
pub fn child_role() -> Option<(String, RegionConfig)> {
    let role = std::env::var(ROLE_ENV).ok()?;
    let dir = std::env::var(DIR_ENV).ok()?;
    let mut config = RegionConfig::new(dir, 7);
    config.max_stats = 1024;
    config.max_cells = 8192;
    config.name_arena_bytes = 64 * 1024;
    Some((role, config))
}

/// Prints `@@marker@@` for the parent's `wait_for_line`.
pub fn announce(marker: &str) {
    use std::io::Write;
    println!("@@{marker}@@");
    let _ = std::io::stdout().flush();
}

/// Asserts Baton's Prometheus lines equal Envoy's recorded ones, line by line. Envoy's
/// fixtures were scraped a moment apart and the scrapes themselves moved the admin
/// listener's counters, so admin series compare by name and labels only.
pub fn assert_same_prometheus_lines<A: AsRef<str>, B: AsRef<str>>(ours: &[A], envoy: &[B]) {
    let comparable = |line: &str| -> String {
        if line.contains("admin") {
            line.rsplit_once(' ')
                .map_or(line, |(series, _)| series)
                .to_string()
        } else {
            line.to_string()
        }
    };
    let differences: Vec<String> = ours
        .iter()
        .zip(envoy.iter())
        .enumerate()
        .filter(|(_, (a, b))| comparable(a.as_ref()) != comparable(b.as_ref()))
        .map(|(i, (a, b))| {
            format!(
                "line {}: baton {:?} envoy {:?}",
                i + 1,
                a.as_ref(),
                b.as_ref()
            )
        })
        .take(10)
        .collect();
    assert!(differences.is_empty(), "{differences:#?}");
    assert_eq!(ours.len(), envoy.len());
}
