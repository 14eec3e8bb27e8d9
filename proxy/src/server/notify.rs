//! sd_notify: readiness and state messages to `$NOTIFY_SOCKET` (systemd, or
//! baton-supervisor which gives each generation its own socket). No libsystemd needed:
//! one datagram per message on a unix datagram socket (path or `@abstract`).

use std::os::unix::net::UnixDatagram;

use tracing::debug;

/// Sends `msg` (e.g. "READY=1\nMAINPID=123") if `$NOTIFY_SOCKET` is set. Failures are
/// logged, never fatal: a missing listener must not take the proxy down.
pub fn notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().to_string();
    let result = UnixDatagram::unbound().and_then(|sock| {
        if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(msg.as_bytes(), &addr)
        } else {
            sock.send_to(msg.as_bytes(), &path)
        }
    });
    if let Err(e) = result {
        debug!(socket = %path, error = %e, "sd_notify failed");
    }
}

/// READY=1 with our pid.
pub fn ready(status: &str) {
    notify(&format!(
        "READY=1\nMAINPID={}\nSTATUS={status}",
        std::process::id()
    ));
}

/// `STATUS=<text>` (e.g. what initialisation waits for; `baton-supervisor ctl status`
/// shows it for a generation that is still starting).
pub fn status(text: &str) {
    notify(&format!("STATUS={text}"));
}

/// STOPPING=1.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=draining");
}
