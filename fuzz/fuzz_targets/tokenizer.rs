//! The `tokenizer` fuzz target: libFuzzer's input to `etch_fuzz::tokenizer` (fuzz/src/lib.rs says
//! what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| etch_fuzz::tokenizer(data));
