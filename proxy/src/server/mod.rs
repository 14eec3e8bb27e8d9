//! Process lifecycle: command line, workers, initialisation order, drain and signals.

pub mod conn_info;
pub mod drain;
