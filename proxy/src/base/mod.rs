//! Per-connection types every layer may use: the downstream connection's facts
//! (`conn_info`) and the drain signal connections watch (`drain`). They live below
//! `server/` (process lifecycle, command line) and the data plane (`listener/`, `http/`,
//! `tcp/`, `upstream/`), so arrows only point down.

pub mod conn_info;
pub mod drain;
