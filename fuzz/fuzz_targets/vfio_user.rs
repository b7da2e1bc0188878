//! The `vfio_user` fuzz target: libFuzzer's input to `etch_fuzz::vfio_user` (fuzz/src/lib.rs says
//! what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| etch_fuzz::vfio_user(data));
