//! Fuzzing entry points, one per target of `fuzz/` (cargo-fuzz) and of the corpus tests
//! that replay `fuzz/corpus/<target>/*` on the stable toolchain (`proxy/tests/
//! fuzz_corpora.rs`), so a crash once found stays fixed. Each takes arbitrary bytes and
//! must never panic: errors are the expected outcome for most inputs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use baton_proto::pb::baton::hot_restart::v1 as pb;

/// A fuzzing entry point: arbitrary bytes in, never a panic.
pub type Entry = fn(&[u8]);

/// The targets, by corpus directory name.
pub const TARGETS: &[(&str, Entry)] = &[
    ("config", config),
    ("http1_framing", http1_framing),
    ("hot_restart_message", hot_restart_message),
    ("stats_region", stats_region),
];

/// The config loader on YAML or JSON bytes (JSON is YAML's subset), both as the only
/// source and as `--config-yaml` merged over an empty file's worth of config.
pub fn config(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let _ = baton_config::load_yaml_str(text);
    let options = baton_config::LoadOptions {
        allow_unknown_static_fields: true,
        disabled_extensions: vec!["envoy.filters.http/envoy.filters.http.router".into()],
    };
    let _ = baton_config::load_with(None, Some(text), &options);
}

/// The HTTP/1 request framing tracker.
pub fn http1_framing(input: &[u8]) {
    crate::http::codec::fuzz_request_framing(input);
}

/// Hot-restart message decoding, as both ends see it: requests (parent side) and replies
/// (child side), frame after frame.
pub fn hot_restart_message(input: &[u8]) {
    use crate::server::hot_restart::codec::decode_frame;
    let mut rest = input;
    while let Ok(Some((_, used))) = decode_frame::<pb::Request>(rest) {
        rest = &rest[used..];
    }
    let mut rest = input;
    while let Ok(Some((_, used))) = decode_frame::<pb::Reply>(rest) {
        rest = &rest[used..];
    }
}

/// Attaching to, reading and writing a stats region made of these bytes.
pub fn stats_region(input: &[u8]) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = scratch_dir().join(format!(
        "region-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = baton_shared_stats::testing::exercise_region_bytes(&dir, input);
    let _ = std::fs::remove_dir_all(&dir);
}

fn scratch_dir() -> PathBuf {
    std::env::var_os("BATON_FUZZ_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}
