//! The `mcp_import` fuzz target: libFuzzer's input to `etch_fuzz::mcp_import` (fuzz/src/lib.rs says
//! what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| etch_fuzz::mcp_import(data));
