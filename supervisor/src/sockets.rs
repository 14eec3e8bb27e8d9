//! Listen sockets the supervisor holds for its generations: the ones systemd passed by socket
//! activation (`LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES`, fds from 3), matched to the
//! bootstrap's listeners by address, plus (with `--hold-sockets`) the bootstrap's other
//! listeners bound here. Every generation gets all of them the same way systemd would pass
//! them, so a crashed generation's successor accepts the connections queued meanwhile.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

/// First fd of the socket-activation protocol.
pub const LISTEN_FDS_START: RawFd = 3;

/// Why listen sockets could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SocketsError {
    /// The bootstrap could not be loaded to learn the listeners.
    #[error("cannot read listeners from {path}: {message}")]
    Bootstrap {
        /// The bootstrap file.
        path: String,
        /// The config error.
        message: String,
    },
    /// `--hold-sockets` without `-c` in the baton arguments.
    #[error("--hold-sockets needs the bootstrap path (-c FILE) in the baton arguments")]
    NoBootstrap,
    /// Binding a listener's address failed.
    #[error("cannot bind listener {name} on {address}: {source}")]
    Bind {
        /// Listener name.
        name: String,
        /// Its address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// An inherited fd is not a usable socket.
    #[error("inherited fd {fd} ({name}) is not a listening socket: {source}")]
    Inherited {
        /// The fd number.
        fd: RawFd,
        /// Its LISTEN_FDNAMES entry.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One listen socket and the name it is passed under (`LISTEN_FDNAMES`).
#[derive(Debug)]
pub struct ListenSocket {
    /// The listener's name in the bootstrap, or systemd's fd name when no listener matched.
    pub name: String,
    /// The bound address (from getsockname).
    pub address: SocketAddr,
    /// The socket (close-on-exec here; dup'ed into each child without it).
    pub fd: OwnedFd,
}

/// A bootstrap listener: name and configured address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// `name`
    pub name: String,
    /// `address.socket_address`
    pub address: SocketAddr,
    /// The `listen(2)` backlog baton would use ([`baton_config::model::Listener::listen_backlog`]).
    pub backlog: i32,
}

/// The listeners of the bootstrap loaded from `path` (named in the error).
pub fn bootstrap_listeners(
    path: &Path,
    loaded: Result<baton_config::Loaded, baton_config::ConfigError>,
) -> Result<Vec<ListenerSpec>, SocketsError> {
    let loaded = loaded.map_err(|err| SocketsError::Bootstrap {
        path: path.display().to_string(),
        message: err.to_string(),
    })?;
    Ok(loaded
        .model
        .listeners
        .iter()
        .map(|listener| ListenerSpec {
            name: listener.name.clone(),
            address: listener.address,
            backlog: listener.listen_backlog(),
        })
        .collect())
}

/// Takes the sockets systemd passed to this process, if `LISTEN_PID` is ours. Must be called
/// once, early (the fds are owned from here on).
pub fn take_activation_sockets() -> Result<Vec<ListenSocket>, SocketsError> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if !for_us || count <= 0 {
        return Ok(Vec::new());
    }
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .unwrap_or_default()
        .split(':')
        .map(str::to_owned)
        .collect();
    let mut sockets = Vec::new();
    for index in 0..count {
        let raw = LISTEN_FDS_START + index;
        let name = names
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("fd{raw}"));
        #[allow(unsafe_code)]
        // SAFETY: by the socket-activation protocol (LISTEN_PID is this process), fds
        // 3..3+LISTEN_FDS are open and passed to us to own; nothing else in this process
        // refers to them, and this function runs once.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let socket = Socket::from(fd);
        let inherited = |source| SocketsError::Inherited {
            fd: raw,
            name: name.clone(),
            source,
        };
        socket.set_cloexec(true).map_err(inherited)?;
        let address = socket
            .local_addr()
            .map_err(inherited)?
            .as_socket()
            .ok_or_else(|| inherited(std::io::Error::other("not an IP socket")))?;
        sockets.push(ListenSocket {
            name,
            address,
            fd: socket.into(),
        });
    }
    Ok(sockets)
}

/// True when a socket bound to `bound` serves a listener configured on `configured`.
fn same_address(bound: SocketAddr, configured: SocketAddr) -> bool {
    bound == configured
}

/// Renames activation sockets to the bootstrap listener with the same address (so baton
/// matches them by name) and, when `hold` is set, binds every listener left without one.
pub fn prepare(
    mut sockets: Vec<ListenSocket>,
    listeners: &[ListenerSpec],
    hold: bool,
) -> Result<Vec<ListenSocket>, SocketsError> {
    let mut covered = vec![false; listeners.len()];
    for socket in &mut sockets {
        if let Some(index) = listeners
            .iter()
            .position(|l| same_address(socket.address, l.address))
        {
            tracing::info!(fd_name = %socket.name, listener = %listeners[index].name, address = %socket.address, "socket-activated listener");
            socket.name = listeners[index].name.clone();
            covered[index] = true;
        } else {
            tracing::warn!(fd_name = %socket.name, address = %socket.address, "socket-activated fd matches no bootstrap listener; passed on under its own name");
        }
    }
    if hold {
        for (listener, _) in listeners.iter().zip(&covered).filter(|(_, c)| !**c) {
            let socket = bind_listener(listener)?;
            tracing::info!(listener = %listener.name, address = %socket.address, "holding listen socket");
            sockets.push(socket);
        }
    }
    Ok(sockets)
}

/// Binds and listens on `listener.address` the way baton would (SO_REUSEADDR, v6-only for
/// IPv6, close-on-exec), so baton can adopt it.
pub fn bind_listener(listener: &ListenerSpec) -> Result<ListenSocket, SocketsError> {
    let bind_err = |source| SocketsError::Bind {
        name: listener.name.clone(),
        address: listener.address,
        source,
    };
    let socket =
        Socket::new(Domain::for_address(listener.address), Type::STREAM, None).map_err(bind_err)?;
    socket.set_reuse_address(true).map_err(bind_err)?;
    if listener.address.is_ipv6() {
        socket.set_only_v6(true).map_err(bind_err)?;
    }
    socket
        .bind(&SockAddr::from(listener.address))
        .map_err(bind_err)?;
    socket.listen(listener.backlog).map_err(bind_err)?;
    let address = socket
        .local_addr()
        .map_err(bind_err)?
        .as_socket()
        .unwrap_or(listener.address);
    Ok(ListenSocket {
        name: listener.name.clone(),
        address,
        fd: socket.into(),
    })
}

/// The raw fds in passing order (they become 3, 4, ... in the child).
pub fn raw_fds(sockets: &[ListenSocket]) -> Vec<RawFd> {
    sockets.iter().map(|s| s.fd.as_raw_fd()).collect()
}

/// `LISTEN_FDNAMES` for `sockets`.
pub fn fd_names(sockets: &[ListenSocket]) -> String {
    sockets
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_unmatched_listeners_and_names_them() {
        let listeners = vec![
            ListenerSpec {
                name: "http".into(),
                address: "127.0.0.1:0".parse().expect("addr"),
                backlog: 1024,
            },
            ListenerSpec {
                name: "v6".into(),
                address: "[::1]:0".parse().expect("addr"),
                backlog: 1024,
            },
        ];
        let sockets = prepare(Vec::new(), &listeners, true).expect("binds");
        assert_eq!(fd_names(&sockets), "http:v6");
        assert_ne!(sockets[0].address.port(), 0);
        assert!(sockets[1].address.is_ipv6());
        // Listening: a connect succeeds (queued in the backlog).
        std::net::TcpStream::connect(sockets[0].address).expect("connect");
    }

    #[test]
    fn activation_socket_takes_the_listener_name_by_address() {
        let spec = ListenerSpec {
            name: "ingress".into(),
            address: "127.0.0.1:0".parse().expect("addr"),
            backlog: 1024,
        };
        let mut held = bind_listener(&spec).expect("bind");
        held.name = "baton.socket".into();
        let address = held.address;
        let listeners = vec![ListenerSpec {
            name: "ingress".into(),
            address,
            backlog: 1024,
        }];
        let sockets = prepare(vec![held], &listeners, true).expect("prepare");
        assert_eq!(sockets.len(), 1, "covered listener is not bound twice");
        assert_eq!(sockets[0].name, "ingress");
    }
}
