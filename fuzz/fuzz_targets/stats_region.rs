//! cargo-fuzz target `stats_region`: arbitrary bytes into `baton_proxy::fuzzing::stats_region`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    baton_proxy::fuzzing::stats_region(data);
});
