//! The trainer: its graph is run.c's forward pass (the exported checkpoint's float
//! reference gives the trained model's logits), and training learns.

use etch_compiler::{Config, Reference};
use etch_train::{evaluate, train, Corpus, Model, Settings};

fn tiny() -> Config {
    Config {
        dim: 16,
        hidden_dim: 24,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        vocab_size: 32,
        seq_len: 24,
        shared_classifier: true,
    }
}

/// Sequences from BOS, a random first token, then each token a fixed function of the
/// one before: learnable, and impossible to predict without the weights learning it.
fn patterned() -> Corpus {
    let mut rng = etch_train::Normal::new(7);
    let sequences = (0..256)
        .map(|_| {
            let mut t = 3 + (rng.uniform() * 29.0) as u32 % 29;
            let mut s = vec![1u32, t];
            for _ in 0..22 {
                t = 3 + (t * 5 + 3) % 29;
                s.push(t);
            }
            s
        })
        .collect();
    Corpus { sequences }
}

#[test]
fn exported_checkpoint_reproduces_the_models_logits() {
    let model = Model::new(tiny(), 3).unwrap();
    let ids: Vec<u32> = vec![1, 5, 9, 30, 2, 2, 17, 4, 11, 31, 0, 8];
    let t = ids.len();
    let logits = model
        .forward(&candle_core::Tensor::from_vec(ids.clone(), (1, t), model.device()).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let checkpoint = model.checkpoint("tiny").unwrap();
    let mut reference = Reference::new(&checkpoint);
    for (pos, &id) in ids.iter().enumerate() {
        let want = &logits[pos * 32..(pos + 1) * 32];
        let got = reference.forward(id, pos);
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "position {pos}: {a} vs {b}");
        }
    }
    // The bytes load through the compiler like any llama2.c file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.bin");
    std::fs::write(&path, checkpoint.file_bytes()).unwrap();
    let loaded = etch_compiler::Checkpoint::open(&path).unwrap();
    assert_eq!(*loaded.config(), tiny());
}

#[test]
fn training_lowers_the_loss_and_is_deterministic() {
    let mut corpus = patterned();
    let held_out = corpus.split_validation(8);
    let settings = Settings {
        steps: 150,
        batch: 8,
        window: 20,
        lr: 3e-3,
        warmup: 20,
        weight_decay: 0.0,
        seed: 5,
    };
    let mut model = Model::new(tiny(), settings.seed).unwrap();
    let before = evaluate(&model, &held_out, 20).unwrap();
    let curve = train(&mut model, &corpus, &settings, &mut |_| {}).unwrap();
    let after = evaluate(&model, &held_out, 20).unwrap();
    assert_eq!(curve.len(), 150);
    assert!(after < 0.3 * before, "held-out loss {before} → {after}");
    assert!(curve[149].loss < curve[0].loss);
    // The same seed, the same model.
    let mut again = Model::new(tiny(), settings.seed).unwrap();
    train(&mut again, &corpus, &settings, &mut |_| {}).unwrap();
    assert_eq!(
        model.checkpoint("a").unwrap().floats(),
        again.checkpoint("b").unwrap().floats()
    );
    // A window longer than the context is refused.
    let long = Settings {
        window: 25,
        ..settings
    };
    assert!(train(&mut model, &corpus, &long, &mut |_| {}).is_err());
}
