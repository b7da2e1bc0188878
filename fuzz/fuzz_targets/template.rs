//! English requests from an agent: the template matcher and the candidate builder take
//! any text; every call they produce names a registry tool and passes its schema.
#![no_main]

use etch_agent::Registry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let request = String::from_utf8_lossy(data);
    let registry = Registry::default();
    if let Some(call) = registry.match_template(&request) {
        assert!(registry.get(&call.tool).is_some(), "{call:?}");
        let _ = registry.render(&call);
    }
    for call in registry.candidates(&request) {
        assert!(registry.validate(&call).is_ok(), "{call:?}");
        let _ = registry.render(&call);
    }
});
