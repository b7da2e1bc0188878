//! A checkpoint file from anyone: `Checkpoint::open` refuses a bad header, a size that
//! does not match it, or a weight that is not finite, with an error; a file it accepts
//! splits into every tensor.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
}

fuzz_target!(|data: &[u8]| {
    let path = dir().path().join("model.bin");
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
