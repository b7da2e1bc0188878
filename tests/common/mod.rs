//! Helpers for the end-to-end tests: models, chip builds, the in-process chip.
#![allow(dead_code)]

pub mod agent;
pub mod serve;

use std::path::{Path, PathBuf};

use etch_compiler::chip::{build, BuildOptions, Datapath, Manifest};
use etch_compiler::{Checkpoint, Config, QuantSettings, Tokenizer};
use etch_driver::{Chip, Device, Expected, InProcess, Sampling};
use etch_firmware::{Command, Opcode};

pub fn models() -> PathBuf {
    match std::env::var_os("ETCH_MODELS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/models"),
    }
}

pub fn stories() -> (Checkpoint, Tokenizer) {
    let ck = Checkpoint::open(models().join("stories260K.bin")).unwrap();
    let tok = Tokenizer::open(models().join("tok512.bin"), 512).unwrap();
    (ck, tok)
}

/// A random model written to `dir` (model.bin, tokenizer.bin).
pub fn random_model(dir: &Path, config: &Config, seed: u64) -> (Checkpoint, Tokenizer) {
    let (m, t) = etch_compiler::synthetic::write_random_model(dir, config, seed).unwrap();
    let ck = Checkpoint::open(m).unwrap();
    let tok = Tokenizer::open(t, config.vocab_size).unwrap();
    (ck, tok)
}

/// Quantization settings that calibrate quickly (small random models).
pub fn quick_quant() -> QuantSettings {
    QuantSettings {
        calibration_stories: 2,
        calibration_steps: 32,
        ..QuantSettings::default()
    }
}

/// Builds a chip into `out`, a requantizer per lane and no pipeline registers.
pub fn build_chip(
    ck: &Checkpoint,
    tok: &Tokenizer,
    out: &Path,
    lanes: usize,
    contexts: usize,
    max_seq: usize,
    quant: QuantSettings,
) -> Manifest {
    let options = BuildOptions {
        lanes,
        contexts,
        max_seq,
        quant,
        datapath: Datapath::per_lane(lanes),
    };
    build_chip_with(ck, tok, out, &options)
}

/// Builds a chip into `out` with the given options (any datapath).
pub fn build_chip_with(
    ck: &Checkpoint,
    tok: &Tokenizer,
    out: &Path,
    options: &BuildOptions,
) -> Manifest {
    build(ck, tok, options, out, &mut |_, _| {}).unwrap()
}

pub fn expected(m: &Manifest) -> Expected {
    etch_runtime::expected(m).unwrap()
}

/// Opens the in-process chip of a build directory, checking it against its manifest.
pub fn open_chip(out: &Path, m: &Manifest) -> Chip<InProcess> {
    let dev = InProcess::open(out, &m.design_hash).unwrap();
    Chip::open(dev, Some(&expected(m))).unwrap()
}

/// The shape of the driver, board, runtime and C ABI tests' chip: two layers, GQA 2,
/// 64 positions.
pub const SMALL: Config = Config {
    dim: 32,
    hidden_dim: 44,
    n_layers: 2,
    n_heads: 4,
    n_kv_heads: 2,
    vocab_size: 300,
    seq_len: 64,
    shared_classifier: true,
};

/// The datapath of an FPGA build: requantizers shared by blocks of 8 lanes, every
/// pipeline register.
pub const FPGA_DATAPATH: Datapath = Datapath {
    requantizers: 8,
    pipeline: etch_compiler::chip::Pipeline::FPGA,
    columns: 1,
    vop_queue: false,
    lut_columns: 0,
    head_pairs: false,
};

/// The chip those tests share (16 lanes, two contexts; one design, so one Verilator
/// build), with its in-process simulator built.
pub fn small_chip(dir: &Path) -> (PathBuf, Manifest) {
    let (ck, tok) = random_model(dir, &SMALL, 11);
    let out = dir.join("chip");
    let options = BuildOptions {
        lanes: 16,
        contexts: 2,
        max_seq: SMALL.seq_len,
        quant: quick_quant(),
        datapath: FPGA_DATAPATH,
    };
    let m = build_chip_with(&ck, &tok, &out, &options);
    etch_sim::build(&out, &m.design_hash).unwrap();
    (out, m)
}

/// Greedy sampling.
pub const GREEDY: Sampling = Sampling {
    inv_temp: 0,
    topp: 0,
    seed: 1,
};

/// Temperature 1, top-p 0.9, `seed`.
pub fn sampled(seed: u64) -> Sampling {
    Sampling {
        inv_temp: 256,
        topp: 58982,
        seed,
    }
}

/// What a client sees of the chip in one session: greedy tokens, the logits of every
/// prefill and greedy step, sampled tokens, the IDENTIFY block.
pub type Session = (Vec<u32>, Vec<Vec<i16>>, Vec<u32>, [u32; 32]);

/// Prefill, greedy and sampled generation with logits, IDENTIFY.
pub fn session<D: Device>(chip: &Chip<D>) -> Session {
    let id = chip.identify().unwrap();
    chip.create_context(0).unwrap();
    let pre = chip.prefill(0, &[1, 40, 41, 42], true).unwrap();
    let g = chip
        .generate(0, 43, 12, GREEDY, &[], true, &mut |_| {})
        .unwrap();
    chip.destroy_context(0).unwrap();
    chip.create_context(1).unwrap();
    chip.prefill(1, &[1, 7], false).unwrap();
    let s = chip
        .generate(1, 8, 16, sampled(42), &[], false, &mut |_| {})
        .unwrap();
    chip.destroy_context(1).unwrap();
    let mut logits = pre;
    logits.extend(g.logits);
    (g.tokens, logits, s.tokens, id)
}

/// The completion status of a PREFILL whose tokens lie outside the host's memory.
pub fn prefill_outside_host_memory<D: Device>(chip: &Chip<D>) -> u16 {
    chip.create_context(0).unwrap();
    let c = chip
        .submit_raw(
            Command {
                opcode: Opcode::Prefill as u8,
                context: 0,
                addr_a: 0xDEAD_0000,
                count: 2,
                ..Command::default()
            },
            &mut |_| Ok(false),
            &mut || {},
        )
        .unwrap();
    chip.destroy_context(0).unwrap();
    c.status
}
