//! Baton's data plane. Folders follow the request path:
//! `listener` (accept, filter-chain match) -> `http` (connection manager, router) or
//! `tcp` (tcp_proxy) -> `upstream` (cluster manager, load balancers, pools);
//! `access_log` formats and writes access logs; `server` owns process lifecycle
//! (workers, init, drain, signals, hot restart) and `admin` the admin listener.

pub mod access_log;
pub mod admin;
pub mod http;
pub mod listener;
pub mod server;
pub mod tcp;
pub mod upstream;
