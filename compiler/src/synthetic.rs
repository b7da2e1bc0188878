//! Random llama2.c models for tests and benchmarks of other shapes.
//!
//! The project commits no model files: tests that need a shape other than the bundled
//! stories260K build one here, deterministically from a seed, as the exact bytes a
//! llama2.c export would write.

use crate::checkpoint::{Config, HEADER_BYTES};
use etch_contract::Tokenizer;

/// The shape of the bundled stories260K, for tests and benchmarks that need it without
/// the file (a benchmark's smaller variants start from it).
pub const STORIES260K: Config = Config {
    dim: 64,
    hidden_dim: 172,
    n_layers: 5,
    n_heads: 8,
    n_kv_heads: 4,
    vocab_size: 512,
    seq_len: 512,
    shared_classifier: true,
};

/// splitmix64: a small deterministic generator for weights.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniform in [-1, 1).
    pub fn symmetric(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// The floats of a random checkpoint (everything after the header), laid out as in the
/// file. Matrices are scaled by `1/sqrt(fan_in)` so that activations stay near unit
/// size through the layers; RMSNorm gains sit near 1; the embedding is larger so that
/// logits spread.
pub fn random_floats(config: &Config, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix(seed);
    let mut out = Vec::new();
    for (name, n) in config.tensor_sizes() {
        let fan_in = match name {
            "w2" => config.hidden_dim,
            _ => config.dim,
        } as f32;
        for _ in 0..n {
            let u = rng.symmetric();
            out.push(match name {
                "rms_att" | "rms_ffn" | "rms_final" => 1.0 + 0.25 * u,
                "token_embedding" | "wcls" => u,
                "freq_cis" => 0.0,
                _ => 1.7 * u / fan_in.sqrt(),
            });
        }
    }
    out
}

/// The bytes of a random checkpoint file.
pub fn random_checkpoint_bytes(config: &Config, seed: u64) -> Vec<u8> {
    let floats = random_floats(config, seed);
    let mut bytes = Vec::with_capacity(HEADER_BYTES + 4 * floats.len());
    for v in config.to_header() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    for v in floats {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// Pieces and scores of a tokenizer for `vocab_size` tokens (at least 259): the three
/// specials, the 256 byte pieces `<0xXX>`, printable ASCII characters, then merged
/// pieces (pairs of earlier pieces) with falling scores.
pub fn random_tokenizer(vocab_size: usize, seed: u64) -> (Vec<Vec<u8>>, Vec<f32>) {
    let mut rng = SplitMix(seed ^ 0x746F_6B65_6E73);
    let mut pieces: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
    pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>").into_bytes()));
    let mut known: std::collections::HashSet<Vec<u8>> = pieces.iter().cloned().collect();
    let mut add = |p: Vec<u8>, pieces: &mut Vec<Vec<u8>>| {
        if pieces.len() < vocab_size && known.insert(p.clone()) {
            pieces.push(p);
        }
    };
    for b in b" etaoinshrdlucmfwypvbgkjqxz.,!?'\"ETAOINSHRDLUCMFWYPVBGKJQXZ0123456789\n" {
        add(vec![*b], &mut pieces);
    }
    let base = pieces.len();
    let mut attempts = 0;
    while pieces.len() < vocab_size && attempts < 100 * vocab_size {
        attempts += 1;
        let a = 259 + (rng.next_u64() as usize) % (pieces.len() - 259).max(1);
        let b = 259 + (rng.next_u64() as usize) % (base - 259).max(1);
        let mut merged = pieces[a].clone();
        merged.extend_from_slice(&pieces[b]);
        if merged.len() <= 12 {
            add(merged, &mut pieces);
        }
    }
    // Filler pieces if merging ran dry (tiny alphabets).
    let mut n = 0;
    while pieces.len() < vocab_size {
        add(format!("#{n}").into_bytes(), &mut pieces);
        n += 1;
    }
    let scores = (0..pieces.len())
        .map(|i| if i < 259 { 0.0 } else { -(i as f32) })
        .collect();
    (pieces, scores)
}

/// The bytes of a random tokenizer file.
pub fn random_tokenizer_bytes(vocab_size: usize, seed: u64) -> Vec<u8> {
    let (pieces, scores) = random_tokenizer(vocab_size, seed);
    Tokenizer::to_bytes(&pieces, &scores)
}

/// Writes a random model and tokenizer into `dir` as `model.bin` and
/// `tokenizer.bin`, returning their paths.
pub fn write_random_model(
    dir: &std::path::Path,
    config: &Config,
    seed: u64,
) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let model = dir.join("model.bin");
    let tok = dir.join("tokenizer.bin");
    std::fs::write(&model, random_checkpoint_bytes(config, seed))?;
    std::fs::write(&tok, random_tokenizer_bytes(config.vocab_size, seed))?;
    Ok((model, tok))
}
