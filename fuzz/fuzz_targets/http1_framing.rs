//! cargo-fuzz target `http1_framing`: arbitrary bytes into `baton_proxy::fuzzing::http1_framing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    baton_proxy::fuzzing::http1_framing(data);
});
