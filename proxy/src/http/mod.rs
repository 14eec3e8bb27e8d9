//! The HTTP connection manager: codec, router, header handling, local replies, upgrades.

pub mod router;
