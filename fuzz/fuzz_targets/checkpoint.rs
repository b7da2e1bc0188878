//! The `checkpoint` fuzz target: libFuzzer's input to `etch_fuzz::checkpoint` (fuzz/src/lib.rs says
//! what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| etch_fuzz::checkpoint(data));
