//! The trainer: its graph is run.c's forward pass (the exported checkpoint's float
//! reference gives the trained model's logits), training learns, distillation follows
//! a teacher, and quantization-aware training rounds to the chip's weight grid.

use candle_core::{Device, Tensor, Var};
use etch_compiler::{Config, QMatrix, Reference};
use etch_train::{
    evaluate, train, train_keeping_last_step, Corpus, FakeQuant, Model, Normal, Settings,
};

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
    Corpus {
        sequences,
        loss_from: Vec::new(),
    }
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
    let settings = settings(150, 3e-3);
    let mut model = Model::new(tiny(), settings.seed).unwrap();
    let before = evaluate(&model, &held_out, 20).unwrap();
    let curve = train(&mut model, &corpus, &settings, None, &mut |_| {}).unwrap();
    let after = evaluate(&model, &held_out, 20).unwrap();
    assert_eq!(curve.len(), 150);
    assert!(after < 0.3 * before, "held-out loss {before} → {after}");
    assert!(curve[149].loss < curve[0].loss);
    // The same seed, the same model.
    let mut again = Model::new(tiny(), settings.seed).unwrap();
    train(&mut again, &corpus, &settings, None, &mut |_| {}).unwrap();
    assert_eq!(
        model.checkpoint("a").unwrap().floats(),
        again.checkpoint("b").unwrap().floats()
    );
    // A window longer than the context is refused.
    let long = Settings {
        window: 25,
        ..settings
    };
    assert!(train(&mut model, &corpus, &long, None, &mut |_| {}).is_err());
}

fn settings(steps: usize, lr: f64) -> Settings {
    Settings {
        steps,
        batch: 8,
        window: 20,
        lr,
        warmup: 20,
        weight_decay: 0.0,
        seed: 5,
        from_start: false,
        distill_temperature: 1.0,
        shards: 1,
        average_last: 0,
    }
}

/// Trains `model` (towards `teacher`'s distributions, if given) and returns its
/// held-out loss after.
fn train_then_evaluate(
    model: &mut Model,
    corpus: &Corpus,
    held_out: &Corpus,
    settings: &Settings,
    teacher: Option<&Model>,
) -> f64 {
    train(model, corpus, settings, teacher, &mut |_| {}).unwrap();
    evaluate(model, held_out, settings.window).unwrap()
}

#[test]
fn a_checkpoint_loads_back_into_the_same_model() {
    let model = Model::new(tiny(), 4).unwrap();
    let checkpoint = model.checkpoint("tiny").unwrap();
    let again = Model::from_checkpoint(&checkpoint).unwrap();
    assert_eq!(
        again.checkpoint("again").unwrap().floats(),
        checkpoint.floats()
    );
}

#[test]
fn fake_quantization_rounds_as_the_compiler_does_and_passes_gradients_through() {
    // 20 columns in groups of 8: the last group is padded, as the chip pads it.
    let (rows, cols, group) = (6, 20, 8);
    let mut rng = Normal::new(9);
    let data: Vec<f32> = (0..rows * cols).map(|_| rng.normal() as f32).collect();
    let w = Var::from_vec(data.clone(), (rows, cols), &Device::Cpu).unwrap();
    let out = FakeQuant { bits: 4, group }.apply(w.as_tensor()).unwrap();
    let rounded = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // Exactly the values the compiler's quantizer puts into the ROM for these floats
    // (`--rounding nearest`): codes times group scales times the row unit.
    let q = QMatrix::quantize_with(&data, rows, cols, 4, group, None);
    for (i, &v) in rounded.iter().enumerate() {
        let (r, j) = (i / cols, i % cols);
        let code = q.codes[i] as f32;
        let gs = q.group_scales[r * cols.div_ceil(group) + j / group] as f32;
        assert_eq!(v, code * gs * q.scales[r], "weight {r},{j}");
        assert!((-8.0..=7.0).contains(&code) && (1.0..=15.0).contains(&gs));
    }
    assert_ne!(rounded, data);
    // The backward pass is the identity: d/dw Σ c·q(w) = c.
    let c = Tensor::arange(0f32, (rows * cols) as f32, &Device::Cpu)
        .unwrap()
        .reshape((rows, cols))
        .unwrap();
    let grads = (out * &c).unwrap().sum_all().unwrap().backward().unwrap();
    let g = grads.get(w.as_tensor()).unwrap();
    assert_eq!(
        g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        c.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}

#[test]
fn distillation_follows_the_teacher_also_through_fake_quantization() {
    let mut corpus = patterned();
    let held_out = corpus.split_validation(8);
    let mut teacher = Model::new(tiny(), 5).unwrap();
    let taught = train_then_evaluate(&mut teacher, &corpus, &held_out, &settings(150, 3e-3), None);

    // A fresh student learns the pattern from the teacher's distributions alone.
    let mut student = Model::new(tiny(), 6).unwrap();
    let before = evaluate(&student, &held_out, 20).unwrap();
    let after = train_then_evaluate(
        &mut student,
        &corpus,
        &held_out,
        &settings(150, 3e-3),
        Some(&teacher),
    );
    assert!(
        after < 0.5 * before && after - taught < 0.5,
        "distilled student {before} → {after} (teacher {taught})"
    );

    // The teacher rounded to 4 bits per row loses some of it; training through the
    // rounding wins it back.
    let mut quantized = Model::from_checkpoint(&teacher.checkpoint("t").unwrap()).unwrap();
    quantized.fake_quant = Some(FakeQuant { bits: 4, group: 0 });
    let rounded = evaluate(&quantized, &held_out, 20).unwrap();
    let recovered = train_then_evaluate(
        &mut quantized,
        &corpus,
        &held_out,
        &settings(100, 1e-3),
        Some(&teacher),
    );
    // A teacher's temperature must be a positive number.
    let frozen = Settings {
        distill_temperature: 0.0,
        ..settings(1, 1e-3)
    };
    assert!(train(
        &mut quantized,
        &corpus,
        &frozen,
        Some(&teacher),
        &mut |_| {}
    )
    .is_err());
    assert!(
        recovered < rounded,
        "float {taught}, rounded {rounded}, after quantization-aware training {recovered}"
    );
}

#[test]
fn prompt_and_completion_pairs_train_only_the_completion() {
    // Prompts of random tokens (unlearnable), completions a function of the prompt's
    // last token (learnable): the completion's loss falls, and the prompt's tokens do
    // not count towards it.
    let mut rng = Normal::new(11);
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..300)
        .map(|_| {
            let n = 2 + (rng.uniform() * 6.0) as usize;
            let prompt: Vec<u32> = std::iter::once(1)
                .chain((0..n).map(|_| 3 + (rng.uniform() * 29.0) as u32 % 29))
                .collect();
            let last = *prompt.last().unwrap();
            let completion = vec![3 + (last * 7 + 1) % 29, 3 + (last * 3 + 2) % 29, 2];
            (prompt, completion)
        })
        .collect();
    let mut corpus = Corpus::from_pairs(pairs.clone());
    assert_eq!(corpus.loss_from[0], pairs[0].0.len());
    let held_out = corpus.split_validation(10);
    assert_eq!(held_out.loss_from.len(), held_out.sequences.len());
    let settings = Settings {
        from_start: true,
        ..settings(200, 1e-2)
    };
    let mut model = Model::new(tiny(), settings.seed).unwrap();
    let before = evaluate(&model, &held_out, 20).unwrap();
    train(&mut model, &corpus, &settings, None, &mut |_| {}).unwrap();
    let after = evaluate(&model, &held_out, 20).unwrap();
    assert!(after < 0.5 * before, "completion loss {before} → {after}");
    // The export loads like any llama2.c checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.bin");
    std::fs::write(&path, model.checkpoint("pairs").unwrap().file_bytes()).unwrap();
    assert_eq!(
        *etch_compiler::Checkpoint::open(&path).unwrap().config(),
        tiny()
    );
}

#[test]
fn logit_calibration_keeps_the_ranking_and_restores_a_sharpened_students_confidence() {
    let mut corpus = patterned();
    let held_out = corpus.split_validation(8);
    let mut teacher = Model::new(tiny(), 5).unwrap();
    train(
        &mut teacher,
        &corpus,
        &settings(150, 3e-3),
        None,
        &mut |_| {},
    )
    .unwrap();
    // A student distilled from the teacher sharpened to 0.3, through 4-bit rounding
    // (on this deterministic corpus both are still underconfident after so few steps).
    let mut student = Model::from_checkpoint(&teacher.checkpoint("t").unwrap()).unwrap();
    student.fake_quant = Some(FakeQuant { bits: 4, group: 8 });
    let sharp = Settings {
        distill_temperature: 0.3,
        ..settings(80, 1e-3)
    };
    train(&mut student, &corpus, &sharp, Some(&teacher), &mut |_| {}).unwrap();
    let ids = Tensor::from_vec(held_out.sequences[0].clone(), (1, 24), &Device::Cpu).unwrap();
    let argmax = |m: &Model| -> Vec<u32> {
        m.forward(&ids)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .argmax(1)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap()
    };
    let ranked = argmax(&student);
    let before = evaluate(&student, &held_out, 20).unwrap();
    let c = etch_train::calibrate_logit_scale(&mut student, &held_out, 20).unwrap();
    let after = evaluate(&student, &held_out, 20).unwrap();
    assert_eq!(c.loss_before, before);
    assert!((c.loss_after - after).abs() < 1e-6, "{c:?} vs {after}");
    assert!(c.scale != 1.0, "{c:?}");
    assert!(after < before, "{c:?}");
    assert_eq!(argmax(&student), ranked, "the ranking of the logits stays");
    // The rounding is back on, and the factor is in the exported final norm.
    assert!(student.fake_quant.is_some());
    let floats = student.checkpoint("s").unwrap();
    let teacher_norm = teacher
        .params
        .rms_final
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    let student_norm = Model::from_checkpoint(&floats)
        .unwrap()
        .params
        .rms_final
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert_ne!(teacher_norm, student_norm);
}

/// The first step's loss and the weights after a few steps, for `shards` shards of a
/// batch of 8 (with `teacher`, distilled; with a prompt/completion corpus, masked).
fn sharded_run(
    corpus: &Corpus,
    teacher: Option<&Model>,
    shards: usize,
    from_start: bool,
) -> (f32, Vec<f32>) {
    let settings = Settings {
        shards,
        from_start,
        ..settings(6, 3e-3)
    };
    let mut model = Model::new(tiny(), 11).unwrap();
    let curve = train(&mut model, corpus, &settings, teacher, &mut |_| {}).unwrap();
    (
        curve[0].loss,
        model.checkpoint("m").unwrap().floats().to_vec(),
    )
}

#[test]
fn a_batch_split_into_shards_trains_like_the_whole_batch() {
    let windows = patterned();
    let mut rng = Normal::new(3);
    let pairs = Corpus::from_pairs((0..64).map(|_| {
        let n = 2 + (rng.uniform() * 9.0) as usize;
        let prompt: Vec<u32> = std::iter::once(1)
            .chain((0..n).map(|_| 3 + (rng.uniform() * 29.0) as u32 % 29))
            .collect();
        (prompt, vec![4, 9, 2])
    }));
    let teacher = Model::new(tiny(), 12).unwrap();
    for (what, corpus, teacher, from_start) in [
        ("windows", &windows, None, false),
        ("prompts and completions", &pairs, None, true),
        ("distillation", &windows, Some(&teacher), false),
    ] {
        let (loss1, weights1) = sharded_run(corpus, teacher, 1, from_start);
        // Three shards of 3, 3 and 2 windows; shorter shards run fewer positions.
        let (loss3, weights3) = sharded_run(corpus, teacher, 3, from_start);
        assert!(
            (loss1 - loss3).abs() < 1e-5 * loss1.abs(),
            "{what}: first-step loss {loss1} whole, {loss3} in shards"
        );
        let worst = weights1
            .iter()
            .zip(&weights3)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-4,
            "{what}: weights differ by {worst} after 6 steps"
        );
        // Sharded training is deterministic too: its threads add in shard order.
        assert_eq!(
            sharded_run(corpus, teacher, 3, from_start).1,
            weights3,
            "{what}"
        );
    }
    // More shards than windows, or none, is refused.
    let mut model = Model::new(tiny(), 11).unwrap();
    for shards in [0, 9] {
        let s = Settings {
            shards,
            ..settings(1, 1e-3)
        };
        let err = train(&mut model, &windows, &s, None, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("shards"), "{err}");
    }
}

#[test]
fn the_model_ends_as_the_mean_of_its_last_steps() {
    let mut corpus = patterned();
    let held_out = corpus.split_validation(8);
    let plain = settings(60, 3e-3);
    let flat = |m: &Model| m.checkpoint("m").unwrap().floats().to_vec();
    let mut last_only = Model::new(tiny(), plain.seed).unwrap();
    let (_, none) =
        train_keeping_last_step(&mut last_only, &corpus, &plain, None, &mut |_| {}).unwrap();
    assert!(none.is_none());

    // Averaging watches the steps and changes none of them: the last step's own
    // weights are those of the run without it.
    let averaged = Settings {
        average_last: 20,
        ..plain.clone()
    };
    let mut model = Model::new(tiny(), plain.seed).unwrap();
    let (curve, last) =
        train_keeping_last_step(&mut model, &corpus, &averaged, None, &mut |_| {}).unwrap();
    assert_eq!(curve.len(), 60);
    let last = last.expect("the last step's weights");
    let average = model.weights().unwrap();
    model.set_weights(&last).unwrap();
    assert_eq!(flat(&model), flat(&last_only));

    // The average is not the last step, and is a model as good on held-out windows
    // (within a tenth).
    model.set_weights(&average).unwrap();
    assert_ne!(flat(&model), flat(&last_only));
    let (avg_loss, last_loss) = (
        evaluate(&model, &held_out, 20).unwrap(),
        evaluate(&last_only, &held_out, 20).unwrap(),
    );
    assert!(
        avg_loss.is_finite() && avg_loss < 1.1 * last_loss,
        "{avg_loss} vs {last_loss}"
    );

    // Over one step the average is that step.
    let one = Settings {
        average_last: 1,
        ..plain.clone()
    };
    let mut model = Model::new(tiny(), plain.seed).unwrap();
    train(&mut model, &corpus, &one, None, &mut |_| {}).unwrap();
    assert_eq!(flat(&model), flat(&last_only));

    // More steps averaged than trained is refused; so are weights of another shape.
    let too_many = Settings {
        average_last: 61,
        ..plain
    };
    let err = train(&mut model, &corpus, &too_many, None, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("average"), "{err}");
    assert!(model.set_weights(&Vec::new()).is_err());
}
