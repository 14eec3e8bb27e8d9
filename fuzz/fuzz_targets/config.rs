//! cargo-fuzz target `config`: arbitrary bytes into `baton_proxy::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    baton_proxy::fuzzing::config(data);
});
