//! Bad input to the loaders: each problem gives its own error, naming the file.

mod common;

use std::path::Path;

use common::{small_config, stories_model, stories_tokenizer};
use etch_compiler::synthetic::{random_checkpoint_bytes, random_tokenizer_bytes};
use etch_compiler::{Checkpoint, Error, Tokenizer, HEADER_BYTES};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn header_bytes(h: [i32; 7]) -> Vec<u8> {
    h.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn stories260k_loads_with_its_shapes() {
    let ck = Checkpoint::open(stories_model()).unwrap();
    let c = ck.config();
    assert_eq!(
        (
            c.dim,
            c.hidden_dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.vocab_size,
            c.seq_len
        ),
        (64, 172, 5, 8, 4, 512, 512)
    );
    assert!(c.shared_classifier);
    assert_eq!(c.parameter_count(), 260_032);
    let tok = Tokenizer::open(stories_tokenizer(), c.vocab_size).unwrap();
    assert_eq!(tok.vocab_size(), 512);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = Checkpoint::open("/nonexistent/model.bin").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/model.bin"));
    assert!(err.is_bad_input());
}

#[test]
fn file_shorter_than_header_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "short.bin", &[1, 2, 3]);
    let err = Checkpoint::open(&p).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err:?}");
    assert!(err.to_string().contains("short.bin"));
}

#[test]
fn truncated_weights_are_reported_with_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let full = random_checkpoint_bytes(&small_config(), 1);
    let p = write(dir.path(), "cut.bin", &full[..full.len() - 100]);
    let err = Checkpoint::open(&p).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("{}", full.len())),
        "{err}"
    );
}

#[test]
fn extra_bytes_are_a_size_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let mut full = random_checkpoint_bytes(&small_config(), 1);
    full.extend_from_slice(&[0; 8]);
    let p = write(dir.path(), "long.bin", &full);
    match Checkpoint::open(&p).unwrap_err() {
        Error::SizeMismatch {
            expected, actual, ..
        } => assert_eq!(actual, expected + 8),
        e => panic!("{e:?}"),
    }
}

#[test]
fn impossible_headers_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [([i32; 7], &str); 6] = [
        ([64, 172, 5, 7, 7, 512, 512], "not divisible by n_heads"),
        ([64, 172, 5, 8, 3, 512, 512], "not divisible by n_kv_heads"),
        ([0, 172, 5, 8, 4, 512, 512], "dim is 0"),
        ([64, -1, 5, 8, 4, 512, 512], "hidden_dim is -1"),
        ([48, 172, 5, 16, 4, 512, 512], "odd"),
        ([1 << 30, 1 << 30, 1 << 30, 1, 1, 512, 512], "overflow"),
    ];
    for (header, needle) in cases {
        let mut bytes = header_bytes(header);
        bytes.extend_from_slice(&[0; 64]);
        let p = write(dir.path(), "bad.bin", &bytes);
        let err = Checkpoint::open(&p).unwrap_err();
        assert!(
            matches!(err, Error::Contract(etch_contract::Error::BadHeader { .. })),
            "{header:?}: {err:?}"
        );
        assert!(err.to_string().contains(needle), "{header:?}: {err}");
    }
}

#[test]
fn nan_and_inf_weights_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    for (value, offset_floats) in [(f32::NAN, 5usize), (f32::INFINITY, 16_000)] {
        let mut bytes = random_checkpoint_bytes(&config, 2);
        let at = HEADER_BYTES + 4 * offset_floats;
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        let p = write(dir.path(), "nan.bin", &bytes);
        let err = Checkpoint::open(&p).unwrap_err();
        match &err {
            Error::NonFiniteWeight { tensor, .. } => {
                let expected = if offset_floats == 5 {
                    "token_embedding"
                } else {
                    "w1"
                };
                assert_eq!(*tensor, expected, "{err}");
            }
            e => panic!("{e:?}"),
        }
    }
}

#[test]
fn negative_vocab_means_unshared_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config();
    config.shared_classifier = false;
    let bytes = random_checkpoint_bytes(&config, 3);
    assert_eq!(i32::from_le_bytes(bytes[20..24].try_into().unwrap()), -300);
    let p = write(dir.path(), "unshared.bin", &bytes);
    let ck = Checkpoint::open(&p).unwrap();
    assert!(!ck.config().shared_classifier);
    let w = ck.weights();
    assert_ne!(w.wcls.as_ptr(), w.token_embedding.as_ptr());
    assert_eq!(w.wcls.len(), 300 * 32);
}

#[test]
fn tokenizer_vocab_mismatch_names_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "tok.bin", &random_tokenizer_bytes(300, 1));
    match Tokenizer::open(&p, 301).unwrap_err() {
        etch_contract::Error::VocabMismatch {
            pieces, vocab_size, ..
        } => assert_eq!((pieces, vocab_size), (300, 301)),
        e => panic!("{e:?}"),
    }
    // The bundled tokenizer against a model of another vocabulary.
    let err = Tokenizer::open(stories_tokenizer(), 300).unwrap_err();
    assert!(
        matches!(err, etch_contract::Error::VocabMismatch { pieces: 512, .. }),
        "{err:?}"
    );
}

#[test]
fn tokenizer_corruption_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let good = random_tokenizer_bytes(300, 1);
    let p = write(dir.path(), "cut.bin", &good[..good.len() - 2]);
    assert!(matches!(
        Tokenizer::open(&p, 300).unwrap_err(),
        etch_contract::Error::Truncated { .. }
    ));
    let mut neg = good.clone();
    // The first piece's length field sits after max_token_length and its score.
    neg[8..12].copy_from_slice(&(-5i32).to_le_bytes());
    let p = write(dir.path(), "neg.bin", &neg);
    assert!(matches!(
        Tokenizer::open(&p, 300).unwrap_err(),
        etch_contract::Error::BadTokenizer { .. }
    ));
    let p = write(dir.path(), "empty.bin", &[]);
    assert!(matches!(
        Tokenizer::open(&p, 300).unwrap_err(),
        etch_contract::Error::Truncated { .. }
    ));
}
