//! Helpers for the end-to-end tests: models, chip builds, the in-process chip.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use etch_compiler::chip::{build, BuildOptions, Manifest};
use etch_compiler::{Checkpoint, Config, QuantSettings, Tokenizer};
use etch_driver::{Chip, Expected, InProcess};

pub fn models() -> PathBuf {
    match std::env::var_os("ETCH_MODELS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models"),
    }
}

pub fn stories() -> (Checkpoint, Tokenizer) {
    let ck = Checkpoint::open(models().join("stories260K.bin")).unwrap();
    let tok = Tokenizer::open(models().join("tok512.bin"), 512).unwrap();
    (ck, tok)
}

/// A random model written to `dir` (model.bin, tokenizer.bin).
pub fn random_model(dir: &Path, config: &Config, seed: u64) -> (Checkpoint, Tokenizer) {
    let (m, t) = etch_compiler::synthetic::write_random_model(dir, config, seed).unwrap();
    let ck = Checkpoint::open(m).unwrap();
    let tok = Tokenizer::open(t, config.vocab_size).unwrap();
    (ck, tok)
}

/// Quantization settings that calibrate quickly (small random models).
pub fn quick_quant() -> QuantSettings {
    QuantSettings {
        calibration_stories: 2,
        calibration_steps: 32,
        ..QuantSettings::default()
    }
}

/// Builds a chip into `out`.
pub fn build_chip(
    ck: &Checkpoint,
    tok: &Tokenizer,
    out: &Path,
    lanes: usize,
    contexts: usize,
    max_seq: usize,
    quant: QuantSettings,
) -> Manifest {
    let options = BuildOptions {
        lanes,
        contexts,
        max_seq,
        quant,
    };
    build(ck, tok, &options, out, &mut |_, _| {}).unwrap()
}

pub fn expected(m: &Manifest) -> Expected {
    let words = |h: &str| {
        let mut w = [0u32; 8];
        for (k, o) in w.iter_mut().enumerate() {
            *o = u32::from_str_radix(&h[8 * k..8 * k + 8], 16).unwrap();
        }
        w
    };
    Expected {
        model_identity: words(&m.model_identity),
        rom_signature: u64::from_str_radix(&m.rom_signature, 16).unwrap(),
        firmware_hash: words(&m.firmware_sha256),
    }
}

/// Opens the in-process chip of a build directory, checking it against its manifest.
pub fn open_chip(out: &Path, m: &Manifest) -> Chip<InProcess> {
    let dev = InProcess::open(out, &m.design_hash).unwrap();
    Chip::open(dev, Some(&expected(m))).unwrap()
}
