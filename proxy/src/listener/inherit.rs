//! Listen sockets inherited at exec through the systemd socket-activation protocol
//! (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`, fds from 3), from systemd itself or
//! from baton-supervisor. A listener adopts the socket whose name equals the listener's
//! name, or else whose bound address equals the listener's configured address.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use tracing::{debug, warn};

/// One inherited listen socket.
#[derive(Debug)]
pub struct InheritedSocket {
    /// `LISTEN_FDNAMES` entry (may be empty).
    pub name: String,
    /// Bound address.
    pub addr: SocketAddr,
    /// The socket.
    pub socket: TcpListener,
}

/// First fd of the protocol.
const SD_LISTEN_FDS_START: RawFd = 3;

/// Takes the inherited sockets (once per process) and clears the environment so child
/// processes do not see them.
pub fn take_inherited() -> Vec<InheritedSocket> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if !pid_ok || count <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for i in 0..count {
        let fd = SD_LISTEN_FDS_START + i;
        let socket = adopt_fd(fd);
        match socket.and_then(|s| s.local_addr().map(|a| (s, a))) {
            Ok((socket, addr)) => {
                let name = names.get(i as usize).cloned().unwrap_or_default();
                debug!(fd, %addr, name = %name, "inherited listen socket");
                out.push(InheritedSocket { name, addr, socket });
            }
            Err(e) => {
                warn!(fd, error = %e, "ignoring inherited fd that is not a TCP listen socket")
            }
        }
    }
    out
}

fn adopt_fd(fd: RawFd) -> std::io::Result<TcpListener> {
    // Refuse fds that are not sockets before taking ownership of them.
    let stat = nix::sys::stat::fstat(unsafe_borrow(fd)).map_err(std::io::Error::from)?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(std::io::Error::other("not a socket"));
    }
    let owned = owned_fd(fd);
    let _ = nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    Ok(TcpListener::from(owned))
}

#[allow(unsafe_code)]
fn unsafe_borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: fds from LISTEN_FDS are open for the life of the process until adopted;
    // the borrow is only used for the fstat call right after.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

#[allow(unsafe_code)]
fn owned_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the socket-activation protocol hands these fds to this process, and
    // `take_inherited` runs once, so nothing else owns them.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Removes and returns the socket for a listener (by name, else by address).
pub fn claim(
    inherited: &mut Vec<InheritedSocket>,
    name: &str,
    addr: SocketAddr,
) -> Option<TcpListener> {
    let pos = inherited
        .iter()
        .position(|s| !s.name.is_empty() && s.name == name)
        .or_else(|| inherited.iter().position(|s| s.addr == addr))?;
    Some(inherited.remove(pos).socket)
}
