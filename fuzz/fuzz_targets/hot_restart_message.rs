//! cargo-fuzz target `hot_restart_message`: arbitrary bytes into `baton_proxy::fuzzing::hot_restart_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    baton_proxy::fuzzing::hot_restart_message(data);
});
