//! The runtime's overhead over the raw driver, on the in-process simulated chip: the
//! same greedy reply (at most 16 tokens, ending at BOS/EOS) through `Chip` (create, prefill, generate, destroy) and through
//! `Engine::chat` (tokenizing, context bookkeeping, streaming text); and a context
//! switch — a chat in a context that was evicted, so SAVE of another context and
//! RESTORE of this one come first.
//!
//! `cargo bench --bench runtime` (figures in docs/PERFORMANCE.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etch_compiler::chip::{build, BuildOptions, Datapath};
use etch_compiler::{Checkpoint, Config, QuantSettings, Tokenizer};
use etch_driver::{Chip, InProcess, Sampling, Timeout};
use etch_runtime::{Engine, GenOptions};

fn bench_runtime(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config {
        dim: 32,
        hidden_dim: 44,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        vocab_size: 300,
        seq_len: 256,
        shared_classifier: true,
    };
    let (m, t) =
        etch_compiler::synthetic::write_random_model(dir.path(), &config, 1).expect("model");
    let ck = Checkpoint::open(m).expect("checkpoint");
    let tok = Tokenizer::open(t, 300).expect("tokenizer");
    let out = dir.path().join("chip");
    let options = BuildOptions {
        lanes: 16,
        contexts: 2,
        max_seq: 256,
        quant: QuantSettings {
            calibration_stories: 2,
            calibration_steps: 32,
            ..QuantSettings::default()
        },
        datapath: Datapath::per_lane(16),
    };
    let manifest = build(&ck, &tok, &options, &out, &mut |_, _| {}).expect("build");
    let open = || InProcess::open(&out, &manifest.design_hash).expect("simulator");
    let greedy = Sampling {
        inv_temp: 0,
        topp: 0,
        seed: 1,
    };
    let chip = Chip::open(
        open(),
        Some(&etch_runtime::expected(&manifest).expect("manifest")),
    )
    .expect("chip");
    let prompt = tok.encode("the cat");
    let engine = Engine::open(open(), &out, None, Timeout::Slices(2000)).expect("engine");
    let opts = GenOptions {
        max_tokens: 16,
        temperature: 0.0,
        ..GenOptions::default()
    };

    // The same work on both paths: greedy, stopping at BOS or EOS as chat does.
    let stops = [etch_compiler::BOS, etch_compiler::EOS];
    let reply_len = engine
        .chat("bench", "probe", "the cat", &opts, &mut |_| {})
        .expect("chat")
        .ids
        .len() as u64;
    let mut group = c.benchmark_group("runtime");
    group.throughput(Throughput::Elements(reply_len));
    group.sample_size(20);
    // Timed with iter_custom around exactly the calls of one reply, so that both paths
    // are measured the same way.
    group.bench_function("driver_reply", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let t = std::time::Instant::now();
                chip.create_context(0).expect("context");
                chip.prefill(0, &prompt[..prompt.len() - 1], false)
                    .expect("prefill");
                chip.generate(
                    0,
                    prompt[prompt.len() - 1],
                    16,
                    greedy,
                    &stops,
                    false,
                    &mut |_| {},
                )
                .expect("generate");
                chip.destroy_context(0).expect("destroy");
                total += t.elapsed();
            }
            total
        })
    });
    group.bench_function("runtime_chat", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                let t = std::time::Instant::now();
                engine.forget("bench", "a").expect("forget");
                engine
                    .chat("bench", "a", "the cat", &opts, &mut |_| {})
                    .expect("chat");
                total += t.elapsed();
            }
            total
        })
    });
    // Three contexts on two slots: every chat evicts one and restores another.
    for name in ["x", "y", "z"] {
        engine
            .chat("switch", name, "the cat", &opts, &mut |_| {})
            .expect("chat");
    }
    let mut k = 0;
    let names = ["x", "y", "z"];
    group.bench_function("runtime_chat_after_eviction", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                k = (k + 1) % 3;
                let n = names[k];
                // Keep the contexts short: start over when one nears its end.
                if engine
                    .context_tokens("switch", n)
                    .expect("tokens")
                    .is_some_and(|t| t.len() > 200)
                {
                    engine.forget("switch", n).expect("forget");
                }
                let t = std::time::Instant::now();
                engine
                    .chat("switch", n, "and", &opts, &mut |_| {})
                    .expect("chat");
                total += t.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench_runtime);
criterion_main!(benches);
