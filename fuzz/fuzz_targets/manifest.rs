//! A chip directory's `manifest.json` from anyone: `Manifest::load` refuses what is not
//! a manifest with an error; every hash a loaded one carries either decodes or errors.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(dir().path().join("manifest.json"), data).expect("write the input");
    if let Ok(m) = etch_contract::Manifest::load(dir().path()) {
        let _ = m.datapath();
        let _ = m.identity_words();
        let _ = m.firmware_words();
        let _ = m.rom_signature_value();
        let _ = m.quant.check_format();
        let _ = serde_json::to_string(&m);
    }
});
