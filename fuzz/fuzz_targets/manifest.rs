//! A chip directory's `manifest.json` from anyone: `Manifest::load` refuses what is not
//! a manifest with an error; every hash a loaded one carries either decodes or errors.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod scratch;

fuzz_target!(|data: &[u8]| {
    std::fs::write(scratch::dir().join("manifest.json"), data).expect("write the input");
    if let Ok(m) = etch_contract::Manifest::load(scratch::dir()) {
        let _ = m.datapath();
        let _ = m.identity_words();
        let _ = m.firmware_words();
        let _ = m.rom_signature_value();
        let _ = m.quant.check_format();
        let _ = serde_json::to_string(&m);
    }
});
