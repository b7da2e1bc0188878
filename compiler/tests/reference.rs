//! The float reference against llama2.c: the recorded outputs of run.c for the bundled
//! model, and for other shapes an independent float64 forward pass plus metamorphic
//! checks (grouped-query attention, unshared classifier) that must hold bit for bit.

mod common;

use common::{small_config, stories_model, stories_tokenizer};
use etch_compiler::synthetic::{random_floats, random_tokenizer};
use etch_compiler::{
    generate, Checkpoint, Config, Reference, ReferenceDecoder, SamplingParams, Tokenizer,
};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    prompt: String,
    steps: usize,
    temperature: f64,
    topp: f64,
    seed: u64,
    prompt_ids: Vec<u32>,
    ids: Vec<u32>,
    text: String,
}

#[test]
fn reproduces_every_recorded_run_c_output() {
    let ck = Checkpoint::open(stories_model()).unwrap();
    let tok = Tokenizer::open(stories_tokenizer(), ck.config().vocab_size).unwrap();
    let path = common::models_dir().join("expected/stories260K.json");
    let cases: Vec<Case> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let params = SamplingParams::from_cli(case.temperature, case.topp, case.seed);
        let mut decoder = ReferenceDecoder::new(&ck, params);
        let g = generate(&mut decoder, &tok, &case.prompt, case.steps, &mut |_| {}).unwrap();
        assert_eq!(g.prompt_ids, case.prompt_ids, "{}", case.name);
        assert_eq!(g.ids, case.ids, "{}", case.name);
        assert_eq!(g.text_lossy(), case.text, "{}", case.name);
    }
}

fn build(config: Config, floats: Vec<f32>) -> Checkpoint {
    Checkpoint::from_floats("synthetic", config, floats).unwrap()
}

/// Every logit of `steps` greedy positions.
fn logits_trace(ck: &Checkpoint, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut m = Reference::new(ck);
    tokens
        .iter()
        .enumerate()
        .map(|(pos, &t)| m.forward(t, pos).to_vec())
        .collect()
}

fn some_tokens(vocab: usize, n: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 37 + 1) % vocab) as u32).collect()
}

/// An independent forward pass in float64, written from the Llama paper rather than
/// from run.c: whole-matrix products, softmax by definition.
fn forward_f64(ck: &Checkpoint, tokens: &[u32]) -> Vec<Vec<f64>> {
    let c = *ck.config();
    let w = ck.weights();
    let (d, hs, kvd) = (c.dim, c.head_size(), c.kv_dim());
    let mv = |m: &[f32], x: &[f64], rows: usize| -> Vec<f64> {
        (0..rows)
            .map(|r| (0..x.len()).map(|j| m[r * x.len() + j] as f64 * x[j]).sum())
            .collect()
    };
    let norm = |x: &[f64], g: &[f32]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let r = 1.0 / (ms + 1e-5).sqrt();
        x.iter().zip(g).map(|(v, &g)| v * r * g as f64).collect()
    };
    let rope = |v: &mut [f64], pos: usize| {
        for i in (0..v.len()).step_by(2) {
            let theta = pos as f64 / 10000f64.powf((i % hs) as f64 / hs as f64);
            let (s, co) = theta.sin_cos();
            let (a, b) = (v[i], v[i + 1]);
            v[i] = a * co - b * s;
            v[i + 1] = a * s + b * co;
        }
    };
    let mut keys: Vec<Vec<Vec<f64>>> = vec![Vec::new(); c.n_layers];
    let mut values: Vec<Vec<Vec<f64>>> = vec![Vec::new(); c.n_layers];
    let mut out = Vec::new();
    for (pos, &t) in tokens.iter().enumerate() {
        let mut x: Vec<f64> = w.token_embedding[t as usize * d..][..d]
            .iter()
            .map(|&v| v as f64)
            .collect();
        for l in 0..c.n_layers {
            let xn = norm(&x, &w.rms_att[l * d..][..d]);
            let mut q = mv(&w.wq[l * d * d..], &xn, d);
            let mut k = mv(&w.wk[l * kvd * d..], &xn, kvd);
            let v = mv(&w.wv[l * kvd * d..], &xn, kvd);
            rope(&mut q, pos);
            rope(&mut k, pos);
            keys[l].push(k);
            values[l].push(v);
            let mut att = vec![0.0; d];
            for h in 0..c.n_heads {
                let g = h / c.kv_mul();
                let scores: Vec<f64> = keys[l]
                    .iter()
                    .map(|k| {
                        (0..hs).map(|i| q[h * hs + i] * k[g * hs + i]).sum::<f64>()
                            / (hs as f64).sqrt()
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for (tt, v) in values[l].iter().enumerate() {
                    for i in 0..hs {
                        att[h * hs + i] += e[tt] / z * v[g * hs + i];
                    }
                }
            }
            let o = mv(&w.wo[l * d * d..], &att, d);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let xn = norm(&x, &w.rms_ffn[l * d..][..d]);
            let h = c.hidden_dim;
            let a = mv(&w.w1[l * h * d..], &xn, h);
            let b = mv(&w.w3[l * h * d..], &xn, h);
            let hb: Vec<f64> = a
                .iter()
                .zip(&b)
                .map(|(a, b)| a / (1.0 + (-a).exp()) * b)
                .collect();
            let o = mv(&w.w2[l * d * h..], &hb, d);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        }
        let xn = norm(&x, w.rms_final);
        out.push(mv(w.wcls, &xn, c.vocab_size));
    }
    out
}

fn shapes() -> Vec<(&'static str, Config)> {
    let base = small_config();
    vec![
        (
            "mha",
            Config {
                n_kv_heads: 4,
                ..base
            },
        ),
        ("gqa2", base),
        (
            "gqa4",
            Config {
                n_heads: 8,
                n_kv_heads: 2,
                ..base
            },
        ),
        (
            "gqa8-mqa",
            Config {
                n_heads: 8,
                n_kv_heads: 1,
                ..base
            },
        ),
        (
            "hidden-not-multiple-of-8",
            Config {
                hidden_dim: 37,
                ..base
            },
        ),
        (
            "unshared-classifier",
            Config {
                shared_classifier: false,
                ..base
            },
        ),
        (
            "vocab-1000",
            Config {
                vocab_size: 1000,
                ..base
            },
        ),
        ("short-context", Config { seq_len: 9, ..base }),
        (
            "one-layer",
            Config {
                n_layers: 1,
                ..base
            },
        ),
        (
            "wide-head",
            Config {
                dim: 48,
                n_heads: 2,
                n_kv_heads: 1,
                hidden_dim: 100,
                ..base
            },
        ),
    ]
}

#[test]
fn matches_an_independent_float64_model_on_many_shapes() {
    for (name, config) in shapes() {
        let ck = build(config, random_floats(&config, 11));
        let tokens = some_tokens(config.vocab_size, config.seq_len.min(20));
        let ours = logits_trace(&ck, &tokens);
        let theirs = forward_f64(&ck, &tokens);
        let mut worst = 0.0f64;
        for (a, b) in ours.iter().zip(&theirs) {
            for (&x, &y) in a.iter().zip(b) {
                worst = worst.max((x as f64 - y).abs() / (1.0 + y.abs()));
            }
        }
        assert!(worst < 1e-4, "{name}: float32 vs float64 error {worst}");
    }
}

#[test]
fn grouped_query_attention_equals_duplicated_heads_bit_for_bit() {
    // A GQA model and the MHA model whose K/V heads are copies per group compute the
    // same floats in the same order, so every logit must be identical.
    for kv_heads in [2usize, 1] {
        let gqa = Config {
            n_heads: 4,
            n_kv_heads: kv_heads,
            ..small_config()
        };
        let mha = Config {
            n_kv_heads: 4,
            ..gqa
        };
        let floats = random_floats(&gqa, 5);
        let g = build(gqa, floats.clone());
        let wg = g.weights();
        let (d, hs) = (gqa.dim, gqa.head_size());
        let dup = |t: &[f32]| -> Vec<f32> {
            let mut out = Vec::new();
            for l in 0..gqa.n_layers {
                for h in 0..mha.n_heads {
                    let src = h / gqa.kv_mul();
                    let rows = &t[(l * gqa.kv_dim() + src * hs) * d..][..hs * d];
                    out.extend_from_slice(rows);
                }
            }
            out
        };
        let mut m = Vec::new();
        m.extend_from_slice(wg.token_embedding);
        m.extend_from_slice(wg.rms_att);
        m.extend_from_slice(wg.wq);
        m.extend(dup(wg.wk));
        m.extend(dup(wg.wv));
        for t in [wg.wo, wg.rms_ffn, wg.w1, wg.w2, wg.w3, wg.rms_final] {
            m.extend_from_slice(t);
        }
        m.extend(std::iter::repeat(0.0).take(mha.seq_len * hs));
        let mh = build(mha, m);
        let tokens = some_tokens(gqa.vocab_size, 24);
        assert_eq!(
            logits_trace(&g, &tokens),
            logits_trace(&mh, &tokens),
            "kv_heads {kv_heads}"
        );
    }
}

#[test]
fn unshared_classifier_equal_to_embedding_changes_nothing() {
    let shared = small_config();
    let unshared = Config {
        shared_classifier: false,
        ..shared
    };
    let floats = random_floats(&shared, 9);
    let s = build(shared, floats.clone());
    let mut f2 = floats;
    f2.extend_from_slice(s.weights().token_embedding);
    let u = build(unshared, f2);
    let tokens = some_tokens(shared.vocab_size, 16);
    assert_eq!(logits_trace(&s, &tokens), logits_trace(&u, &tokens));
    // And a different classifier does change the logits: the unshared one is used.
    let mut f3 = random_floats(&unshared, 9);
    let n = f3.len();
    f3[n - 1] += 1.0;
    let u3 = build(unshared, f3);
    assert_ne!(logits_trace(&s, &tokens), logits_trace(&u3, &tokens));
}

fn tokenizer_for(vocab: usize) -> Tokenizer {
    let (pieces, scores) = random_tokenizer(vocab, 1);
    let bytes = Tokenizer::to_bytes(&pieces, &scores);
    Tokenizer::parse(&bytes, vocab, std::path::Path::new("tok")).unwrap()
}

#[test]
fn steps_follow_run_c_and_sampling_is_deterministic() {
    for (name, config) in shapes() {
        let ck = build(config, random_floats(&config, 3));
        let tok = tokenizer_for(config.vocab_size);
        let run = |steps: usize, t: f64, p: f64, seed: u64| {
            let mut d = ReferenceDecoder::new(&ck, SamplingParams::from_cli(t, p, seed));
            generate(&mut d, &tok, "the", steps, &mut |_| {}).unwrap()
        };
        // steps = 0 and steps > context both mean the whole context.
        let whole = run(0, 1.0, 0.9, 7);
        assert_eq!(whole, run(config.seq_len + 50, 1.0, 0.9, 7), "{name}");
        assert!(whole.ids.len() <= config.seq_len, "{name}");
        if whole.ids.last() != Some(&1) {
            assert_eq!(whole.ids.len(), config.seq_len, "{name}");
        }
        // Same seed, same story; the prompt is forced.
        let a = run(8, 0.8, 0.5, 3);
        assert_eq!(a, run(8, 0.8, 0.5, 3), "{name}");
        assert_eq!(a.ids[..a.prompt_ids.len() - 1], a.prompt_ids[1..], "{name}");
        let greedy = run(8, 0.0, 0.9, 1);
        assert_eq!(
            greedy,
            run(8, 0.0, 0.9, 99),
            "{name}: greedy ignores the seed"
        );
    }
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let config = Config {
        seq_len: 4,
        ..small_config()
    };
    let ck = build(config, random_floats(&config, 3));
    let tok = tokenizer_for(config.vocab_size);
    let mut d = ReferenceDecoder::new(&ck, SamplingParams::from_cli(0.0, 0.9, 1));
    let err = generate(&mut d, &tok, "a b c d e f g", 0, &mut |_| {}).unwrap_err();
    match err {
        etch_contract::Error::PromptTooLong { tokens, seq_len } => {
            assert_eq!(seq_len, 4);
            assert!(tokens > 4);
        }
        e => panic!("{e:?}"),
    }
}
