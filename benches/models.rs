//! Tokens per second of the float reference and the golden model on stories260K: the
//! 256-token greedy story from "Once upon a time", as run.c's baseline is measured.
//!
//! `cargo bench --bench models` (figures in docs/PERFORMANCE.md).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etch_compiler::{
    generate, Checkpoint, ChipSampling, GoldenDecoder, QuantSettings, QuantizedModel,
    ReferenceDecoder, SamplingParams, Tokenizer,
};

fn models() -> PathBuf {
    std::env::var_os("ETCH_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/models"))
}

fn bench_models(c: &mut Criterion) {
    let ck = Checkpoint::open(models().join("stories260K.bin")).expect("stories260K.bin");
    let tok = Tokenizer::open(models().join("tok512.bin"), 512).expect("tok512.bin");
    let model = QuantizedModel::build(&ck, &tok, &QuantSettings::default()).expect("quantize");
    let greedy = SamplingParams::from_cli(0.0, 0.9, 1);
    let prompt = "Once upon a time";

    let mut group = c.benchmark_group("stories260K_greedy_256");
    group.throughput(Throughput::Elements(256));
    group.sample_size(30);
    group.bench_function("reference", |b| {
        b.iter(|| {
            let mut d = ReferenceDecoder::new(&ck, greedy);
            generate(&mut d, &tok, prompt, 256, &mut |_| {}).expect("generate")
        })
    });
    group.bench_function("golden", |b| {
        b.iter(|| {
            let mut d = GoldenDecoder::new(&model, ChipSampling::from_params(&greedy));
            generate(&mut d, &tok, prompt, 256, &mut |_| {}).expect("generate")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_models);
criterion_main!(benches);
