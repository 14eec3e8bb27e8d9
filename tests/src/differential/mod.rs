//! The differential corpus (issue 15 §1): the same requests sent to real Envoy 1.40 and to
//! Baton on the same bootstrap, answers normalised and compared. Data lives in
//! `tests/differential/` (`cases/<area>.yaml`, `fixtures/<area>.json` recorded from Envoy,
//! `known_differences.yaml`); `src/bin/baton-differential.rs` records and compares, and
//! `tests/differential.rs` checks Baton against the fixtures in CI (no Envoy needed).
//!
//! Pieces, in the order a case flows through them: [`spec`] (the YAML model), [`bootstrap`]
//! (config shorthands to a whole bootstrap), [`upstream`] (the recording upstream;
//! [`upstream_tls`] its TLS side),
//! [`exchange`] (sending a case by protocol; [`h2raw`] for hand-written HTTP/2 frames),
//! [`normalise`] (what varies by nature), [`run`] (one area against one binary), [`tls`]
//! (cases over TLS), [`compare`] (fixtures, SAME/DIFF, known differences).

pub mod bootstrap;
pub mod compare;
pub mod exchange;
pub mod h2raw;
pub mod normalise;
pub mod run;
pub mod spec;
pub mod tls;
pub mod upstream;
pub mod upstream_tls;
