//! A checkpoint file from anyone: `Checkpoint::open` refuses a bad header, a size that
//! does not match it, or a weight that is not finite, with an error; a file it accepts
//! splits into every tensor.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::dir().join("model.bin");
    std::fs::write(&path, data).expect("write the input");
    if let Ok(ck) = etch_compiler::Checkpoint::open(&path) {
        let c = *ck.config();
        let w = ck.weights();
        let total: usize = w
            .named(c.shared_classifier)
            .iter()
            .map(|(_, t)| t.len())
            .sum();
        assert!(total <= ck.floats().len() + w.wcls.len());
        assert_eq!(ck.file_bytes().len(), data.len());
    }
});
