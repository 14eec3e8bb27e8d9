//! sd_notify without libsystemd, both ways: [`Notifier`] sends the supervisor's own state to
//! systemd's `NOTIFY_SOCKET` (a path or `@abstract` name), and [`ChildNotifySocket`] is the
//! datagram socket each generation gets as its `NOTIFY_SOCKET`, on which READY=1 means LIVE.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram as StdUnixDatagram};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UnixDatagram;

/// Sends datagrams to systemd (or a test) when `NOTIFY_SOCKET` is set; a no-op otherwise.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(StdUnixDatagram, UnixAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    /// A bad `NOTIFY_SOCKET` is logged and notifications are off.
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|value| {
            let value = value.to_string_lossy().into_owned();
            match notify_addr(&value).and_then(|addr| Ok((StdUnixDatagram::unbound()?, addr))) {
                Ok(target) => Some(target),
                Err(err) => {
                    tracing::warn!(socket = %value, error = %err, "NOTIFY_SOCKET unusable; no sd_notify");
                    None
                }
            }
        });
        let watchdog_for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && watchdog_for_us)
            .map(Duration::from_micros);
        Self { target, watchdog }
    }

    /// The watchdog interval systemd asked for, if any (ping at half of it).
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `lines` joined by newlines as one datagram. Failures are logged, never fatal:
    /// systemd going away must not take the proxy down.
    pub fn send(&self, lines: &[String]) {
        let Some((socket, addr)) = &self.target else {
            return;
        };
        let message = lines.join("\n");
        if let Err(err) = socket.send_to_addr(message.as_bytes(), addr) {
            tracing::warn!(error = %err, message = %message, "sd_notify failed");
        }
    }
}

/// Parses `NOTIFY_SOCKET`: an absolute path, or `@name` for the abstract namespace.
pub fn notify_addr(value: &str) -> std::io::Result<UnixAddr> {
    match value.strip_prefix('@') {
        Some(name) => UnixAddr::from_abstract_name(name.as_bytes()),
        None => UnixAddr::from_pathname(value),
    }
}

/// `CLOCK_MONOTONIC` in microseconds, for `MONOTONIC_USEC=` with `RELOADING=1`.
pub fn monotonic_usec() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => {
            let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
            secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
        }
        Err(_) => 0,
    }
}

/// One generation's notify socket, bound by the supervisor in the runtime directory.
#[derive(Debug)]
pub struct ChildNotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl ChildNotifySocket {
    /// Binds `path` (replacing a stale file), mode 0600.
    pub fn bind(path: &Path) -> std::io::Result<Self> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let socket = UnixDatagram::bind(path)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self {
            socket,
            path: path.to_path_buf(),
        })
    }

    /// The path to give the child as `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Receives the next datagram, split into its `KEY=value` lines.
    pub async fn recv(&self) -> std::io::Result<Vec<String>> {
        let mut buf = vec![0u8; 4096];
        let n = self.socket.recv(&mut buf).await?;
        Ok(String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_owned)
            .filter(|line| !line.is_empty())
            .collect())
    }
}

impl Drop for ChildNotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn child_socket_receives_lines() {
        let dir = std::env::temp_dir().join(format!("baton-sup-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("n.sock");
        let socket = ChildNotifySocket::bind(&path).expect("bind");
        let sender = StdUnixDatagram::unbound().expect("unbound");
        let addr = notify_addr(path.to_str().expect("utf8")).expect("addr");
        sender
            .send_to_addr(b"READY=1\nMAINPID=42\n", &addr)
            .expect("send");
        let lines = socket.recv().await.expect("recv");
        assert_eq!(lines, ["READY=1", "MAINPID=42"]);
        drop(socket);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn abstract_and_path_addresses() {
        let addr = notify_addr("@baton-test").expect("abstract");
        assert_eq!(addr.as_abstract_name(), Some(&b"baton-test"[..]));
        let addr = notify_addr("/run/systemd/notify").expect("path");
        assert_eq!(addr.as_pathname(), Some(Path::new("/run/systemd/notify")));
    }

    #[test]
    fn monotonic_is_nonzero() {
        assert!(monotonic_usec() > 0);
    }
}
