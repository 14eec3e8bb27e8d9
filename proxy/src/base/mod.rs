//! Per-connection types every layer may use: the downstream connection's facts
//! (`conn_info`), the drain signal connections watch (`drain`), upstream host
//! addresses (`address`), the hasher of config-keyed maps (`fast_hash`), and handing the allocator's free memory back (`heap`). They
//! live below `server/` (process lifecycle, command line) and the data plane
//! (`listener/`, `http/`, `tcp/`, `upstream/`), so arrows only point down.

pub mod address;
pub mod conn_info;
pub mod drain;
pub mod fast_hash;
pub mod heap;
