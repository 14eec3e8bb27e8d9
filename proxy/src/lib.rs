//! Baton's data plane. Folders follow the request path:
//! `listener` (accept, filter-chain match) -> `http` (connection manager, router) or
//! `tcp` (tcp_proxy) -> `upstream` (cluster manager, load balancers, pools);
//! `access_log` formats and writes access logs; `base` holds the per-connection types
//! (connection info, drain signal) every layer may use; `server` owns process lifecycle
//! (workers, init, drain, signals, hot restart), `admin` the admin listener, and `stats`
//! the Envoy-named handles into the shared-memory stats region; `buffer_limit` maps
//! `per_connection_buffer_limit_bytes` onto read buffers.

pub mod access_log;
pub mod admin;
pub mod base;
pub mod buffer_limit;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod listener;
pub mod runtime;
pub mod server;
pub mod stats;
pub mod tcp;
pub mod tls;
pub mod upstream;
pub mod xds;
