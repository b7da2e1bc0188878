//! A tokenizer file from anyone: `Tokenizer::parse_any` must refuse it with an error or
//! load it, and a loaded one must encode and decode any text without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tok) = etch_contract::Tokenizer::parse_any(data, std::path::Path::new("fuzz.bin"))
    else {
        return;
    };
    // The input's tail as text too, so that merges of the loaded pieces are reached.
    let text = String::from_utf8_lossy(&data[data.len().saturating_sub(64)..]);
    let ids = tok.encode(&text);
    for &id in &ids {
        assert!((id as usize) < tok.vocab_size(), "encode gave id {id}");
    }
    let _ = tok.decode_all(1, &ids);
    // Ids from the input itself, in and out of range.
    let raw: Vec<u32> = data
        .chunks(2)
        .map(|c| c[0] as u32 | (c.get(1).copied().unwrap_or(0) as u32) << 8)
        .collect();
    let _ = tok.decode_all(1, &raw);
});
