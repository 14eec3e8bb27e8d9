//! Where a listener's socket comes from, in order: a socket inherited at exec (systemd
//! socket activation or baton-supervisor, by name then address), the parent
//! generation's socket for the same configured address (hot restart: the same kernel
//! socket, so nothing in its accept queue is lost), else a fresh bind. A fresh socket is
//! bound but does not listen until the listener becomes active, so a warming listener
//! refuses connections instead of queueing them.

use std::net::{SocketAddr, TcpListener};

use baton_config::model::Listener;

use crate::listener::bind::bind_unlistened;
use crate::listener::inherit::{self, InheritedSocket};
use crate::server::hot_restart::child::ParentLink;

/// The sockets a new listener may take.
#[derive(Debug, Default)]
pub struct SocketSource {
    inherited: Vec<InheritedSocket>,
    /// The parent generation, during initialisation only.
    parent: Option<ParentLink>,
}

impl SocketSource {
    /// Sockets inherited at exec, and the parent generation when there is one.
    pub fn new(inherited: Vec<InheritedSocket>, parent: Option<ParentLink>) -> Self {
        Self { inherited, parent }
    }

    /// Whether a parent generation is there.
    pub fn has_parent(&self) -> bool {
        self.parent.is_some()
    }

    /// The parent link, during initialisation.
    pub fn parent_mut(&mut self) -> Option<&mut ParentLink> {
        self.parent.as_mut()
    }

    /// Takes the parent link (at the end of initialisation).
    pub fn take_parent(&mut self) -> Option<ParentLink> {
        self.parent.take()
    }

    /// A socket for `listener` and the address it is bound to.
    pub async fn acquire(
        &mut self,
        listener: &Listener,
    ) -> std::io::Result<(TcpListener, SocketAddr)> {
        let mut socket = inherit::claim(&mut self.inherited, &listener.name, listener.address);
        if socket.is_none() {
            if let Some(parent) = self.parent.as_mut() {
                socket = parent
                    .take_listen_socket(listener.address)
                    .await
                    .map_err(|e| std::io::Error::other(format!("hot restart: {e}")))?;
            }
        }
        let socket = match socket {
            Some(s) => s,
            None => bind_unlistened(listener.address, listener.ipv4_compat)?,
        };
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        Ok((socket, local))
    }
}
