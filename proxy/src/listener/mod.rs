//! Listeners: binding listen sockets (or adopting inherited ones), compiling listener
//! configs into snapshots (`snapshot`), choosing a filter chain for each accepted
//! connection, and the per-worker accept loop that hands connections to the network
//! filter (HTTP connection manager or tcp_proxy); connection limits (`limits`).

pub mod accept;
pub mod bind;
pub mod filter_chain;
pub mod inherit;
pub mod limits;
pub mod peek;
pub mod proxy_protocol;
pub mod snapshot;
pub mod tracker;

pub use accept::{accept_loop, NetworkContext, WorkerStatsOf};
pub use bind::{bind_listener, BoundListener};
pub use filter_chain::select_filter_chain;
pub use limits::{ChainConnectionLimit, GlobalConnectionLimit};
pub use snapshot::{
    ChainNetwork, CompileSettings, CompiledChain, ListenerHandle, ListenerHashes, ListenerSnapshot,
};
pub use tracker::ConnectionTracker;
