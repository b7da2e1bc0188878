//! An audit log someone edited: the reader returns every line as an entry or as the
//! reason it is not one, and never panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn state() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
}

fuzz_target!(|data: &[u8]| {
    let path = etch_agent::audit::path(state().path());
    std::fs::write(&path, data).expect("write the input");
    if let Ok(entries) = etch_agent::audit::read(state().path()) {
        for e in entries.into_iter().flatten() {
            let _ = etch_agent::text::printable(&e.english);
        }
    }
    let _ = etch_agent::audit::tail(state().path(), 3);
});
