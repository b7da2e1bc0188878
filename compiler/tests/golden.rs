//! The golden model: accuracy against the float reference, invariants of the
//! quantizer, and the chip's sampler against its definition.

mod common;

use common::{small_config, stories_model, stories_tokenizer};
use etch_compiler::synthetic::{random_floats, random_tokenizer};
use etch_compiler::{
    accuracy, generate, Checkpoint, ChipSampler, ChipSampling, Config, Golden, GoldenDecoder,
    QMatrix, QuantSettings, QuantizedModel, SamplingParams, Tokenizer,
};

fn stories() -> (Checkpoint, Tokenizer) {
    let ck = Checkpoint::open(stories_model()).unwrap();
    let tok = Tokenizer::open(stories_tokenizer(), 512).unwrap();
    (ck, tok)
}

#[test]
fn stories260k_meets_the_accuracy_targets() {
    let (ck, tok) = stories();
    let model = QuantizedModel::build(&ck, &tok, &QuantSettings::default()).unwrap();
    let text =
        std::fs::read_to_string(common::models_dir().join("eval/stories260K-samples.txt")).unwrap();
    let r = accuracy(&ck, &tok, &model, &text, 256, &mut |_, _| {}).unwrap();
    assert_eq!(r.sequences, 16);
    assert!(r.tokens > 3000, "{r:?}");
    assert!(
        r.top1_agreement >= 0.98,
        "top-1 agreement {}",
        r.top1_agreement
    );
    assert!(
        r.ppl_rel_diff.abs() <= 0.02,
        "perplexity {} vs {}",
        r.ppl_quant,
        r.ppl_float
    );
    assert!(r.ppl_float > 1.5 && r.ppl_float < 5.0, "{r:?}");
    assert!(
        r.max_abs_logit_err < 2.0 && r.mean_abs_logit_err < 0.2,
        "{r:?}"
    );
    assert_eq!(r.greedy_steps, 256);
    if let Some(i) = r.greedy_first_divergence {
        assert!(i > 10, "greedy stories part early, at {i}");
    }
}

#[test]
fn greedy_golden_story_starts_like_the_float_one() {
    let (ck, tok) = stories();
    let model = QuantizedModel::build(&ck, &tok, &QuantSettings::default()).unwrap();
    let greedy = SamplingParams::from_cli(0.0, 0.9, 1);
    let mut d = GoldenDecoder::new(&model, ChipSampling::from_params(&greedy));
    let g = generate(&mut d, &tok, "Once upon a time", 40, &mut |_| {}).unwrap();
    let text = g.text_lossy();
    assert!(
        text.starts_with("Once upon a time, there was a little girl named Lily."),
        "{text}"
    );
}

#[test]
fn weight_quantization_error_is_at_most_half_a_step() {
    let w: Vec<f32> = random_floats(&small_config(), 4)[..32 * 40].to_vec();
    for bits in [8, 4] {
        let q = QMatrix::quantize(&w, 40, 32, bits);
        let qmax = ((1 << (bits - 1)) - 1) as i8;
        for r in 0..40 {
            for c in 0..32 {
                let wq = q.row(r)[c];
                assert!(wq.abs() <= qmax);
                let err = (wq as f32 * q.scales[r] - w[r * 32 + c]).abs();
                assert!(err <= q.scales[r] * 0.5001, "bits {bits} row {r}: {err}");
            }
            assert!(
                q.row(r).iter().any(|v| v.abs() == qmax),
                "the largest weight uses the range"
            );
        }
    }
}

fn build(config: Config, floats: Vec<f32>) -> Checkpoint {
    Checkpoint::from_floats("synthetic", config, floats).unwrap()
}

fn tokenizer_for(vocab: usize) -> Tokenizer {
    let (pieces, scores) = random_tokenizer(vocab, 1);
    Tokenizer::parse(&Tokenizer::to_bytes(&pieces, &scores), vocab, "t".as_ref()).unwrap()
}

fn golden_logits(model: &QuantizedModel, tokens: &[u32]) -> Vec<Vec<i16>> {
    let mut g = Golden::new(model);
    tokens
        .iter()
        .enumerate()
        .map(|(pos, &t)| g.forward(t, pos).to_vec())
        .collect()
}

#[test]
fn golden_gqa_equals_duplicated_heads_bit_for_bit() {
    let gqa = Config {
        n_heads: 4,
        n_kv_heads: 2,
        ..small_config()
    };
    let mha = Config {
        n_kv_heads: 4,
        ..gqa
    };
    let g = build(gqa, random_floats(&gqa, 21));
    let w = g.weights();
    let (d, hs) = (gqa.dim, gqa.head_size());
    let dup = |t: &[f32]| -> Vec<f32> {
        (0..gqa.n_layers)
            .flat_map(|l| (0..4).map(move |h| (l, h)))
            .flat_map(|(l, h)| t[(l * gqa.kv_dim() + (h / 2) * hs) * d..][..hs * d].to_vec())
            .collect()
    };
    let mut m: Vec<f32> = [w.token_embedding, w.rms_att, w.wq].concat();
    m.extend(dup(w.wk));
    m.extend(dup(w.wv));
    m.extend([w.wo, w.rms_ffn, w.w1, w.w2, w.w3, w.rms_final].concat());
    m.extend(std::iter::repeat(0.0).take(mha.seq_len * hs));
    let mh = build(mha, m);
    let tok = tokenizer_for(gqa.vocab_size);
    let settings = QuantSettings {
        calibration_stories: 2,
        calibration_steps: 16,
        ..Default::default()
    };
    let qg = QuantizedModel::build(&g, &tok, &settings).unwrap();
    let qm = QuantizedModel::build(&mh, &tok, &settings).unwrap();
    assert_eq!(qg.formats, qm.formats);
    let tokens: Vec<u32> = (0..24).map(|i| (i * 31 % 300) as u32).collect();
    assert_eq!(golden_logits(&qg, &tokens), golden_logits(&qm, &tokens));
}

#[test]
fn golden_runs_every_shape_deterministically() {
    let base = small_config();
    let shapes = [
        base,
        Config {
            n_heads: 8,
            n_kv_heads: 1,
            ..base
        },
        Config {
            hidden_dim: 37,
            ..base
        },
        Config {
            shared_classifier: false,
            ..base
        },
        Config {
            vocab_size: 1000,
            ..base
        },
        Config { seq_len: 9, ..base },
        Config {
            n_layers: 1,
            ..base
        },
    ];
    for config in shapes {
        let ck = build(config, random_floats(&config, 8));
        let tok = tokenizer_for(config.vocab_size);
        for bits in [8, 4] {
            let settings = QuantSettings {
                weight_bits: bits,
                calibration_stories: 2,
                calibration_steps: 16,
                ..Default::default()
            };
            let model = QuantizedModel::build(&ck, &tok, &settings).unwrap();
            let sampling = ChipSampling::from_params(&SamplingParams::from_cli(0.9, 0.8, 5));
            let run = || {
                let mut d = GoldenDecoder::new(&model, sampling);
                generate(&mut d, &tok, "the", 0, &mut |_| {}).unwrap()
            };
            let a = run();
            assert_eq!(a, run(), "{config:?}");
            assert!(!a.ids.is_empty() && a.ids.len() <= config.seq_len);
            assert!(a.ids.iter().all(|&t| (t as usize) < config.vocab_size));
        }
    }
}

/// The nucleus by its sorting definition: tokens by falling weight, the shortest
/// prefix of distinct weight levels whose mass exceeds `topp · total`.
fn nucleus_by_sorting(p: &[u32], topp: u16) -> Vec<usize> {
    let total: u64 = p.iter().map(|&v| v as u64).sum();
    let target = (total * topp as u64) >> 16;
    let mut levels: Vec<u32> = p.iter().copied().filter(|&v| v > 0).collect();
    levels.sort_unstable_by(|a, b| b.cmp(a));
    levels.dedup();
    for level in levels {
        let mass: u64 = p.iter().filter(|&&v| v >= level).map(|&v| v as u64).sum();
        if mass > target {
            return (0..p.len()).filter(|&i| p[i] >= level).collect();
        }
    }
    (0..p.len()).filter(|&i| p[i] > 0).collect()
}

#[test]
fn chip_sampler_draws_only_from_the_nucleus_in_proportion() {
    let (ck, tok) = stories();
    let model = QuantizedModel::build(&ck, &tok, &QuantSettings::default()).unwrap();
    let mut g = Golden::new(&model);
    let logits = g.forward(1, 0).to_vec();
    let sampling = ChipSampling::from_params(&SamplingParams::from_cli(1.0, 0.9, 1));
    // The weights the chip computes, re-derived from the public definition.
    let max = *logits.iter().max().unwrap() as i64;
    let k = sampling.inv_temp as i64 * model.temp_mult as i64;
    let p: Vec<u32> = logits
        .iter()
        .map(|&l| {
            let z = etch_compiler::numerics::round_shift((l as i64 - max) * k, model.temp_shift);
            model.tables.exp2(z)
        })
        .collect();
    let nucleus = nucleus_by_sorting(&p, sampling.topp);
    assert!(
        nucleus.len() > 1 && nucleus.len() < 512,
        "{}",
        nucleus.len()
    );
    let mut counts = vec![0usize; 512];
    let draws = 20_000;
    for seed in 0..draws {
        let mut s = ChipSampler::new(ChipSampling {
            seed: ChipSampling::seed_state(seed as u64 + 1),
            ..sampling
        });
        let t = s.sample(&logits, &model) as usize;
        assert!(nucleus.contains(&t), "token {t} outside the nucleus");
        counts[t] += 1;
    }
    let mass: u64 = nucleus.iter().map(|&i| p[i] as u64).sum();
    for &i in &nucleus {
        let want = p[i] as f64 / mass as f64;
        let got = counts[i] as f64 / draws as f64;
        assert!(
            (got - want).abs() < 0.02 + want * 0.15,
            "token {i}: {got} vs {want}"
        );
    }
    // Greedy ignores the seed and takes the first maximum.
    let mut greedy = ChipSampler::new(ChipSampling {
        inv_temp: 0,
        topp: 0,
        seed: 5,
    });
    assert_eq!(
        greedy.sample(&logits, &model),
        etch_compiler::argmax_i16(&logits)
    );
}

#[test]
fn chip_logprob_matches_the_log_softmax_of_its_logits() {
    let (ck, tok) = stories();
    let model = QuantizedModel::build(&ck, &tok, &QuantSettings::default()).unwrap();
    let mut g = Golden::new(&model);
    let ids = tok.encode("Once upon a time, there was a little girl");
    let scale = 2f64.powi(-(model.formats.logits as i32));
    for pos in 0..ids.len() - 1 {
        let logits = g.forward(ids[pos], pos).to_vec();
        let max = logits
            .iter()
            .map(|&l| l as f64 * scale)
            .fold(f64::MIN, f64::max);
        let lse = logits
            .iter()
            .map(|&l| (l as f64 * scale - max).exp())
            .sum::<f64>()
            .ln()
            + max;
        for target in [ids[pos + 1], 0, 300] {
            let want = logits[target as usize] as f64 * scale - lse;
            let got = etch_compiler::logprob(&logits, &model, target) as f64 / 1024.0
                * std::f64::consts::LN_2;
            assert!(
                (got - want).abs() < 0.01 + want.abs() * 2e-3,
                "pos {pos} tok {target}: {got} vs {want}"
            );
        }
    }
}
