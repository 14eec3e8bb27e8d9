//! Baton's data plane. Folders follow the request path:
//! `listener` (accept, filter-chain match) -> `http` (connection manager, router) or
//! `tcp` (tcp_proxy) -> `upstream` (cluster manager, load balancers, pools);
//! `access_log` formats and writes access logs; `server` owns process lifecycle
//! (workers, init, drain, signals, hot restart), `admin` the admin listener, and `stats`
//! the Envoy-named handles into the shared-memory stats region.

pub mod access_log;
pub mod admin;
pub mod http;
pub mod listener;
pub mod server;
pub mod stats;
pub mod tcp;
pub mod upstream;
