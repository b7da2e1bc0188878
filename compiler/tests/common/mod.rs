//! Helpers shared by the compiler's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use etch_compiler::Config;

/// `../shared/models` beside the repository (or `$ETCH_MODELS`).
pub fn models_dir() -> PathBuf {
    match std::env::var_os("ETCH_MODELS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/models"),
    }
}

pub fn stories_model() -> PathBuf {
    models_dir().join("stories260K.bin")
}

pub fn stories_tokenizer() -> PathBuf {
    models_dir().join("tok512.bin")
}

/// A small config; tests vary fields from it.
pub fn small_config() -> Config {
    Config {
        dim: 32,
        hidden_dim: 44,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        vocab_size: 300,
        seq_len: 32,
        shared_classifier: true,
    }
}
