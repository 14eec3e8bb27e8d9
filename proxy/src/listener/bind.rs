//! Binding listen sockets the way Envoy does (SO_REUSEADDR, IPV6_V6ONLY for `[::]`,
//! non-blocking, configured backlog) and keeping them as std sockets so every worker and
//! the hot-restart code can share the same kernel socket.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use baton_config::model;
use socket2::{Domain, Protocol, Socket, Type};

/// A listen socket with the listener config it serves.
#[derive(Debug)]
pub struct BoundListener {
    /// The listener's config.
    pub model: Arc<model::Listener>,
    /// The listen socket (shared by all workers via `try_clone`).
    pub socket: TcpListener,
    /// The address actually bound (differs from the config when it says port 0).
    pub local_addr: SocketAddr,
}

/// Errors while binding.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// bind/listen failed.
    #[error("cannot bind listener '{name}' to {addr}: {cause}")]
    Bind {
        /// listener name
        name: String,
        /// configured address
        addr: SocketAddr,
        /// cause (not a `source`: the message already includes it)
        cause: std::io::Error,
    },
}

/// Creates, binds and listens a socket for `addr`.
pub fn bind_socket(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = bind_unlistened(addr, false)?;
    listen(&socket, backlog)?;
    Ok(socket)
}

/// Creates and binds a socket for `addr` without listening yet: the address is taken,
/// but connections are refused until [`listen`] (a warming listener accepts nothing).
/// An IPv6 socket takes IPv4 connections too only with `ipv4_compat`.
pub fn bind_unlistened(addr: SocketAddr, ipv4_compat: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(!ipv4_compat)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Starts listening on a bound socket (harmless on one that already listens: only the
/// backlog is updated).
pub fn listen(socket: &TcpListener, backlog: i32) -> std::io::Result<()> {
    socket2::SockRef::from(socket).listen(backlog)
}

/// Binds a listener from its config.
pub fn bind_listener(model: Arc<model::Listener>) -> Result<BoundListener, BindError> {
    let socket = bind_unlistened(model.address, model.ipv4_compat)
        .and_then(|socket| listen(&socket, model.listen_backlog()).map(|()| socket))
        .map_err(|cause| BindError::Bind {
            name: model.name.clone(),
            addr: model.address,
            cause,
        })?;
    adopt_listener(model, socket).map_err(|(model, cause)| BindError::Bind {
        name: model.name.clone(),
        addr: model.address,
        cause,
    })
}

/// Wraps an already-listening socket (inherited from a parent generation or a supervisor).
pub fn adopt_listener(
    model: Arc<model::Listener>,
    socket: TcpListener,
) -> Result<BoundListener, (Arc<model::Listener>, std::io::Error)> {
    if let Err(e) = socket.set_nonblocking(true) {
        return Err((model, e));
    }
    match socket.local_addr() {
        Ok(local_addr) => Ok(BoundListener {
            model,
            socket,
            local_addr,
        }),
        Err(e) => Err((model, e)),
    }
}
