//! Baton's own HTTP/2 server codec (issue 17), built to replace hyper's HTTP/2 server and
//! the h2 crate downstream: the h2 crate costs about 22,000 instructions per request, keeps
//! 24 KiB of buffers on an idle connection, and answers malformed requests its own way
//! where Envoy's differ (the `malformed_http2` differential area).
//!
//! Sans-IO layers, each tested on its own:
//! - [`frame`]: the typed frames shared by the layers.
//! - [`body`]: a stream's request body between the driver and the connection manager,
//!   flow-control window returned as the body is consumed.
//! - [`wire`] / [`wire_write`] / [`hpack`]: bytes to frames and back (RFC 9113 §4-6,
//!   RFC 7541).
//! - [`conn`]: the connection and stream state machine (RFC 9113 §5-6), with Envoy's
//!   answers to protocol errors; [`conn_send`] its response side and graceful drain;
//!   [`streams`] the stream table, [`flow`] the flow-control windows, [`request`] request
//!   and trailer validation (RFC 9113 §8).
//!
//! - [`driver`] (with `driver_events` and `driver_send`): runs these over a socket and
//!   hands requests to the connection manager (the default; `BATON_H2_CODEC=hyper` gives
//!   hyper's server instead).

pub mod body;
pub mod conn;
pub mod conn_send;
#[cfg(test)]
mod conn_tests;
#[cfg(test)]
mod conn_tests_frames;
#[cfg(test)]
mod conn_tests_requests;
pub(crate) mod driver;
mod driver_events;
mod driver_send;
pub mod flow;
pub mod frame;
pub mod hpack;
pub mod request;
pub mod streams;
pub mod wire;
pub mod wire_write;
