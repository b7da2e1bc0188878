//! MCP tool descriptors from anyone: the registry imports well-formed tools and refuses
//! the rest with an error; what it imported exports, re-imports, and matches requests.
#![no_main]

use etch_agent::Registry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut registry = Registry::default();
    if registry.import_mcp(&value).is_ok() {
        let exported = registry.export_mcp();
        let mut again = Registry::default();
        let _ = again.import_mcp(&exported);
        for request in [
            "list files",
            "run `make test`",
            "read notes.txt",
            "do the thing",
        ] {
            if let Some(call) = registry.match_template(request) {
                let _ = registry.render(&call);
                let _ = registry.validate(&call);
            }
            let _ = registry.candidates(request);
        }
    }
});
