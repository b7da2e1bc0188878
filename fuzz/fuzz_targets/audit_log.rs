//! An audit log someone edited: the reader returns every line as an entry or as the
//! reason it is not one, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = etch_agent::audit::path(scratch::dir());
    std::fs::write(&path, data).expect("write the input");
    if let Ok(entries) = etch_agent::audit::read(scratch::dir()) {
        for e in entries.into_iter().flatten() {
            let _ = etch_agent::text::printable(&e.english);
        }
    }
    let _ = etch_agent::audit::tail(scratch::dir(), 3);
});
