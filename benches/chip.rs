//! The simulated chip: simulated cycles per wall-clock second; the driver's IDENTIFY
//! round trip and a 16-token streamed generation, through the in-process backend and
//! through vfio-user (`etch serve`'s server in a thread of this process, over a UNIX
//! socket) — the difference is the cost of the transport.
//!
//! `cargo bench --bench chip` (figures in docs/PERFORMANCE.md).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etch_compiler::chip::{build, BuildOptions, Datapath};
use etch_compiler::{Checkpoint, Config, QuantSettings, Tokenizer};
use etch_driver::{Chip, Expected, InProcess, Sampling, Timeout, VfioUser};

struct Built {
    dir: tempfile::TempDir,
    out: std::path::PathBuf,
    design_hash: String,
    expected: Expected,
}

fn built() -> Built {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config {
        n_layers: 2,
        seq_len: 64,
        ..etch_compiler::synthetic::STORIES260K
    };
    let (m, t) =
        etch_compiler::synthetic::write_random_model(dir.path(), &config, 1).expect("model");
    let ck = Checkpoint::open(m).expect("checkpoint");
    let tok = Tokenizer::open(t, 512).expect("tokenizer");
    let out = dir.path().join("chip");
    let options = BuildOptions {
        lanes: 64,
        contexts: 1,
        max_seq: 64,
        quant: QuantSettings::default(),
        datapath: Datapath::per_lane(64),
    };
    let manifest = build(&ck, &tok, &options, &out, &mut |_, _| {}).expect("build");
    let expected = etch_runtime::expected(&manifest).expect("manifest");
    Built {
        dir,
        out,
        design_hash: manifest.design_hash,
        expected,
    }
}

fn bench_chip(c: &mut Criterion) {
    let b = built();
    let dev = InProcess::open(&b.out, &b.design_hash).expect("simulator");
    let chip = Chip::open(dev, Some(&b.expected)).expect("chip");
    chip.create_context(0).expect("context");
    // Cycles of one 16-token generation, measured once, as the throughput unit.
    let before = chip.cycles().expect("cycles");
    let greedy = Sampling {
        inv_temp: 0,
        topp: 0,
        seed: 1,
    };
    chip.generate(0, 1, 16, greedy, &[], false, &mut |_| {})
        .expect("generate");
    let cycles = chip.cycles().expect("cycles") - before;
    chip.reset_contexts().expect("reset");

    let mut group = c.benchmark_group("simulator");
    group.throughput(Throughput::Elements(cycles));
    group.sample_size(10);
    group.bench_function("generate_16_tokens_64_lanes", |b| {
        b.iter(|| {
            chip.create_context(0).expect("context");
            chip.generate(0, 1, 16, greedy, &[], false, &mut |_| {})
                .expect("generate");
            chip.destroy_context(0).expect("destroy");
        })
    });
    group.finish();

    // The same chip behind a vfio-user socket.
    let socket = b.dir.path().join("chip.sock");
    let lib = etch_sim::build(&b.out, &b.design_hash).expect("simulator");
    let (out, sock) = (b.out.clone(), socket.clone());
    let server = std::thread::spawn(move || etch_sim::server::serve(&lib, &out, &sock, true));
    while !socket.exists() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let timeout = std::time::Duration::from_secs(30);
    let dev = VfioUser::connect(&socket, timeout).expect("connect");
    let remote = Chip::open_with(dev, Some(&b.expected), Timeout::Wall(timeout)).expect("chip");

    let mut group = c.benchmark_group("driver");
    group.sample_size(30);
    group.bench_function("identify_round_trip_in_process", |b| {
        b.iter(|| chip.identify().expect("identify"))
    });
    group.bench_function("identify_round_trip_vfio_user", |b| {
        b.iter(|| remote.identify().expect("identify"))
    });
    group.finish();

    let mut group = c.benchmark_group("streaming");
    group.throughput(Throughput::Elements(16));
    group.sample_size(10);
    for (name, chip) in [
        ("in_process", &chip as &dyn Generate),
        ("vfio_user", &remote),
    ] {
        group.bench_function(format!("generate_16_tokens_{name}"), |b| {
            b.iter(|| chip.sixteen(greedy))
        });
    }
    group.finish();
    drop(remote);
    server.join().expect("server thread").expect("server");
}

/// A 16-token streamed generation, whatever the backend.
trait Generate {
    fn sixteen(&self, sampling: Sampling);
}

impl<D: etch_driver::Device> Generate for Chip<D> {
    fn sixteen(&self, sampling: Sampling) {
        self.create_context(0).expect("context");
        let mut n = 0;
        self.generate(0, 1, 16, sampling, &[], false, &mut |_| n += 1)
            .expect("generate");
        assert_eq!(n, 16);
        self.destroy_context(0).expect("destroy");
    }
}

criterion_group!(benches, bench_chip);
criterion_main!(benches);
