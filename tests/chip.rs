//! The generated chip in Verilator against the golden model: the same logits at every
//! step, bit for bit, and the same tokens, greedy and sampled, on random models of
//! several shapes; and the chip's answers to bad input.

mod common;

use std::path::Path;

use common::{build_chip, build_chip_with, open_chip, quick_quant, random_model, FPGA_DATAPATH};
use etch_compiler::chip::{Datapath, Manifest, Pipeline};
use etch_compiler::{ChipSampling, Config, Golden, GoldenDecoder, QuantizedModel, SamplingParams};
use etch_driver::{Chip, Generated, InProcess, Sampling};
use etch_firmware::{Command, Opcode, Status};

/// One random model and the chip built for it.
struct Shape {
    name: &'static str,
    config: Config,
    lanes: usize,
    weight_bits: u32,
    /// Weights per group scale (0: one scale per row).
    group: u32,
    /// Matrices kept at 8 bits in a 4-bit chip.
    wide: &'static [&'static str],
    datapath: Datapath,
}

/// Random shapes, each with a datapath: a requantizer per lane without pipeline
/// registers, shared requantizers with all of them (the FPGA build), and shared ones
/// with some; and 4-bit weights at every group size.
fn shapes() -> Vec<Shape> {
    let base = Config {
        dim: 32,
        hidden_dim: 44,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        vocab_size: 300,
        seq_len: 48,
        shared_classifier: true,
    };
    // A width that 64 lanes cannot carry (dim 48, six heads of 8).
    let dim48 = Config {
        dim: 48,
        n_heads: 6,
        n_kv_heads: 3,
        hidden_dim: 88,
        ..base
    };
    let int4_pipeline = Datapath {
        requantizers: 8,
        pipeline: Pipeline {
            lane_inputs: true,
            product: true,
            requant_shift: true,
            ..Pipeline::ASIC
        },
        columns: 1,
        vop_queue: false,
        lut_columns: 0,
        head_pairs: false,
    };
    vec![
        // A weight ROM of 4,128 words, 32 past 4,096, built as banks of 4,096 and 32
        // words (`etch_hdl::prim::rom_banks`).
        Shape {
            name: "gqa2-l8-rom-banks",
            config: Config {
                hidden_dim: 88,
                vocab_size: 308,
                ..base
            },
            lanes: 8,
            weight_bits: 8,
            group: 0,
            wide: &[],
            datapath: Datapath::per_lane(8),
        },
        // GQA 2, hidden not a multiple of 8, four head groups of one head on 8 lanes.
        Shape {
            name: "gqa2-l8",
            config: base,
            lanes: 8,
            weight_bits: 8,
            group: 0,
            wide: &[],
            datapath: Datapath::per_lane(8),
        },
        // 4-bit weights, packed two to a byte in the ROM, one scale per row, two lanes
        // per requantizer, some pipeline registers; four input columns, three of them
        // multiplying their 4-bit codes in logic.
        Shape {
            name: "gqa2-l16-int4-r8-c4-lut3",
            config: base,
            lanes: 16,
            weight_bits: 4,
            group: 0,
            wide: &[],
            datapath: Datapath {
                columns: 4,
                lut_columns: 3,
                ..int4_pipeline
            },
        },
        // Group scales of 8 (the default with 4 bits): hidden 44 leaves w2's rows a
        // partial last group, padded in the ROM; an unshared classifier; the
        // embedding, wo and w2 kept at 8 bits in the wide ROM (a precision mix); two
        // input columns per lane and cycle (four weight words per group scale), the
        // second in logic.
        Shape {
            name: "gqa2-l8-int4-g8-unshared-mix-c2",
            config: Config {
                shared_classifier: false,
                ..base
            },
            lanes: 8,
            weight_bits: 4,
            group: 8,
            wide: &["token_embedding", "wo", "w2"],
            datapath: Datapath {
                columns: 2,
                // column 1 multiplies in logic, by 8 bits (a code times its scale, or
                // a wide ROM's weight), without a product register
                lut_columns: 1,
                ..Datapath::per_lane(8)
            },
        },
        // Groups of 16 with the lanes' inputs registered (the weight operand too).
        Shape {
            name: "gqa2-l16-int4-g16-r8",
            config: base,
            lanes: 16,
            weight_bits: 4,
            group: 16,
            wide: &[],
            datapath: int4_pipeline,
        },
        // Groups of 32 (rows of 48 and 88: partial last groups) and groups of 64,
        // wider than any row here: every row group padded to 64 words. Four columns
        // per lane and cycle (a group is eight words) and the vector-operation queue.
        Shape {
            name: "dim48-l16-int4-g32-c4",
            config: dim48,
            lanes: 16,
            weight_bits: 4,
            group: 32,
            wide: &[],
            datapath: Datapath {
                columns: 4,
                vop_queue: true,
                ..Datapath::per_lane(16)
            },
        },
        Shape {
            name: "mqa-l32-int4-g64",
            config: Config {
                n_heads: 4,
                n_kv_heads: 1,
                n_layers: 1,
                ..base
            },
            lanes: 32,
            weight_bits: 4,
            group: 64,
            wide: &[],
            datapath: FPGA_DATAPATH,
        },
        // dim 80 (ten heads of 8, GQA 2, hidden 88) on 16 lanes — the most `etch build`
        // picks by default for it — with two columns and the vector-operation queue.
        Shape {
            name: "dim80-l16-c2-queue",
            config: Config {
                dim: 80,
                n_heads: 10,
                n_kv_heads: 5,
                hidden_dim: 88,
                n_layers: 1,
                ..base
            },
            lanes: 16,
            weight_bits: 8,
            group: 0,
            wide: &[],
            datapath: Datapath {
                columns: 2,
                vop_queue: true,
                ..Datapath::per_lane(16)
            },
        },
        // Head pairs (two heads per key/value head, one per head group of 8 lanes):
        // two head groups of two heads, the second head of each in the lanes' second
        // multiplier; 4-bit codes, eight columns, every pipeline register, the queue —
        // the shape of the ULX3S chip.
        Shape {
            name: "gqa2-l8-int4-c8-pairs",
            config: base,
            lanes: 8,
            weight_bits: 4,
            group: 0,
            wide: &[],
            datapath: Datapath {
                columns: 8,
                vop_queue: true,
                head_pairs: true,
                ..FPGA_DATAPATH
            },
        },
        // Head pairs with four heads per key/value head: both head groups read the one
        // key/value head; no pipeline registers.
        Shape {
            name: "mqa-l8-pairs",
            config: Config {
                n_kv_heads: 1,
                n_layers: 1,
                ..base
            },
            lanes: 8,
            weight_bits: 8,
            group: 0,
            wide: &[],
            datapath: Datapath {
                head_pairs: true,
                ..Datapath::per_lane(8)
            },
        },
        // dim 48 on 16 lanes, the most `etch build` picks by default for it.
        Shape {
            name: "dim48-l16",
            config: dim48,
            lanes: 16,
            weight_bits: 8,
            group: 0,
            wide: &[],
            datapath: Datapath::per_lane(16),
        },
        // Multi-query attention, unshared classifier, vocab not a power of two, one
        // layer, two attention positions per cycle on 64 lanes; eight lanes per
        // requantizer, every pipeline register: the sampler's weights (six slots) are
        // read back while the last are still being written. Eight columns per lane
        // and cycle: hidden 37 pads w2's rows to five words; the vector-operation queue.
        Shape {
            name: "mqa-unshared-l64-c8",
            config: Config {
                n_heads: 4,
                n_kv_heads: 1,
                shared_classifier: false,
                vocab_size: 333,
                n_layers: 1,
                hidden_dim: 37,
                ..base
            },
            lanes: 64,
            weight_bits: 8,
            group: 0,
            wide: &[],
            datapath: Datapath {
                columns: 8,
                vop_queue: true,
                ..FPGA_DATAPATH
            },
        },
    ]
}

fn to_driver(p: &SamplingParams) -> Sampling {
    let c = ChipSampling::from_params(p);
    Sampling {
        inv_temp: c.inv_temp,
        topp: c.topp,
        seed: c.seed,
    }
}

#[test]
fn random_shapes_match_the_golden_model_bit_for_bit() {
    // ETCH_CHIP_SHAPES=name,name runs only those shapes (while changing the datapath).
    let only = std::env::var("ETCH_CHIP_SHAPES").ok();
    for shape in shapes() {
        if let Some(only) = &only {
            if !only.split(',').any(|n| n == shape.name) {
                continue;
            }
        }
        check_shape(&shape);
    }
}

/// Builds `shape`'s random model into a chip, checks its RTL's structure, then runs it
/// against the golden model: greedy steps and their saved context, SCORE, LAST_LOGITS
/// and sampled stories.
fn check_shape(shape: &Shape) {
    let name = shape.name;
    let dir = tempfile::tempdir().unwrap();
    let (ck, tok) = random_model(dir.path(), &shape.config, 7);
    let out = dir.path().join("chip");
    let quant = etch_compiler::QuantSettings {
        weight_bits: shape.weight_bits,
        group: shape.group,
        wide: shape.wide.iter().map(|u| u.to_string()).collect(),
        ..quick_quant()
    };
    let options = etch_compiler::chip::BuildOptions {
        lanes: shape.lanes,
        contexts: 2,
        max_seq: shape.config.seq_len,
        quant: quant.clone(),
        datapath: shape.datapath,
    };
    let m = build_chip_with(&ck, &tok, &out, &options);
    check_rtl(shape, &out, &m);
    let model = QuantizedModel::build(&ck, &tok, &quant).unwrap();
    let chip = open_chip(&out, &m);
    let prompt = tok.encode("the quick fox");
    let greedy = check_greedy_steps(shape, &chip, &model, &prompt);
    check_score(name, &chip, &model, &greedy);
    check_last_logits(
        name,
        &chip,
        &prompt[..prompt.len() - 1],
        &greedy.last_prefill,
    );
    check_sampled(name, &chip, &model, &prompt);
}

/// The generated RTL's structure for `shape`: the weight ROM's word and banks, the KV
/// planes, head pairs, the broadcast's weight byte, the columns in logic, the scale and
/// wide ROMs.
fn check_rtl(shape: &Shape, out: &Path, m: &Manifest) {
    let Shape {
        name,
        lanes,
        weight_bits,
        group,
        wide,
        datapath,
        ..
    } = *shape;
    let rtl = std::fs::read_to_string(out.join("rtl/etch_chip.v")).unwrap();
    assert!(
        rtl.contains(&format!(
            ".W({})",
            weight_bits as usize * lanes * datapath.columns
        )),
        "{name}: the weight ROM word is not {weight_bits} bits × lanes × columns"
    );
    // A weight ROM just past a power of two comes in two banks, each its own image.
    let bank_words: Vec<usize> = ["rom/weights.hex", "rom/weights.1.hex"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(out.join(f)).ok())
        .map(|text| text.lines().count())
        .collect();
    let depth = bank_words.iter().sum();
    assert_eq!(bank_words, etch_hdl::prim::rom_banks(depth), "{name}");
    if name == "gqa2-l8-rom-banks" {
        assert_eq!(bank_words, [4096, 32], "{name}");
    }
    // Eight lanes read one key/value head per position: its KV banks hold a row as
    // two planes of 128 bits (2 contexts × 2 layers × 48 positions each).
    if name == "gqa2-l8" {
        assert!(
            rtl.contains("etch_ram_1r1w #(.W(128), .A(20), .D(384)) u_kv_k_bank0"),
            "{name}: KV planes"
        );
    }
    // Head pairs: the second adder tree and head units, the second multiplier; the
    // two heads read one key/value head, so the KV words stay one head wide.
    assert_eq!(
        rtl.contains("tree1_l0_0") && rtl.contains("u_head_0_1"),
        datapath.head_pairs,
        "{name}: head pairs"
    );
    if name == "gqa2-l8-int4-c8-pairs" {
        assert!(
            rtl.contains("etch_ram_1r1w #(.W(128), .A(20), .D(384)) u_kv_k_bank0"),
            "{name}: KV planes"
        );
    }
    // An embedding of four or eight elements per cycle sends each lane group its
    // column on a bus of its own: the controller's broadcast never selects a
    // weight byte (that select was the routed 8 × 8 chip's critical path).
    let vctrl = std::fs::read_to_string(out.join("rtl/etch_vctrl.v")).unwrap();
    assert_eq!(
        vctrl.contains("bc = arsel;"),
        datapath.columns >= 4,
        "{name}: the broadcast bus's weight byte"
    );
    // The columns in logic have no `*` (synthesis would give it a DSP block).
    let lane = std::fs::read_to_string(out.join("rtl/etch_lane.v")).unwrap();
    for k in 1..datapath.columns {
        assert_eq!(
            lane.contains(&format!("xa{k} * xb{k}")),
            k < datapath.columns - datapath.lut_columns,
            "{name}: column {k}"
        );
    }
    assert!(
        m.macs >= lanes * datapath.columns,
        "{name}: macs {}",
        m.macs
    );
    if weight_bits == 4 {
        assert_eq!(
            rtl.contains("rom/scales.hex"),
            group != 0,
            "{name}: a scale ROM exactly when the weights have group scales"
        );
        assert_eq!(
            rtl.contains("rom/wide.hex"),
            !wide.is_empty(),
            "{name}: a wide ROM exactly when matrices are kept at 8 bits"
        );
    }
}

/// A greedy story checked step by step: the tokens fed (prompt, then generated), the
/// golden model's logits for each, and the logits of the prompt's last prefilled step.
struct GreedySteps {
    feed: Vec<u32>,
    golden_logits: Vec<Vec<i16>>,
    last_prefill: Vec<i16>,
}

/// Prefills `prompt` and generates greedily with logits at every step: the chip's
/// logits equal the golden model's, its tokens their argmax, and SAVE_CONTEXT holds
/// the golden model's key and value rows.
fn check_greedy_steps(
    shape: &Shape,
    chip: &Chip<InProcess>,
    model: &QuantizedModel,
    prompt: &[u32],
) -> GreedySteps {
    let name = shape.name;
    let greedy = SamplingParams::from_cli(0.0, 0.9, 1);
    chip.create_context(0).unwrap();
    let pre = chip.prefill(0, &prompt[..prompt.len() - 1], true).unwrap();
    let g = generate_after(chip, 0, prompt, 20, &greedy, true);
    let image = chip.save_context(0, 1 << 22).unwrap();
    chip.destroy_context(0).unwrap();

    let mut golden = Golden::new(model);
    let mut feed: Vec<u32> = prompt.to_vec();
    feed.extend(&g.tokens);
    let steps = pre.len() + g.logits.len();
    let mut golden_logits = Vec::with_capacity(steps);
    for (pos, chip_logits) in pre.iter().chain(&g.logits).enumerate() {
        let want = golden.forward(feed[pos], pos).to_vec();
        assert_eq!(
            chip_logits, &want,
            "{name}: logits differ at step {pos} of {steps}"
        );
        golden_logits.push(want);
    }
    check_saved_context(shape, &golden, &image, steps);
    // Greedy tokens: the argmax of each step's logits.
    for (k, &t) in g.tokens.iter().enumerate() {
        let step = prompt.len() - 1 + k;
        let logits = if step < pre.len() {
            &pre[step]
        } else {
            &g.logits[step - pre.len()]
        };
        assert_eq!(t, etch_compiler::argmax_i16(logits), "{name}: token {k}");
    }
    GreedySteps {
        feed,
        golden_logits,
        last_prefill: pre.last().cloned().unwrap_or_default(),
    }
}

/// SAVE_CONTEXT's image holds the golden model's key and value rows, whatever the KV
/// cache's planes: after the 64-byte header, per layer and position, the key row then
/// the value row, each padded to whole 8-byte beats.
fn check_saved_context(shape: &Shape, golden: &Golden, image: &[u8], positions: usize) {
    let (name, config) = (shape.name, shape.config);
    let kv_dim = config.n_kv_heads * (config.dim / config.n_heads);
    let row_bytes = kv_dim.div_ceil(4) * 8;
    assert_eq!(
        image.len(),
        64 + config.n_layers * positions * 2 * row_bytes,
        "{name}: saved image size"
    );
    let int16 = |at: usize| -> Vec<i16> {
        image[at..at + 2 * kv_dim]
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    };
    for layer in 0..config.n_layers {
        for pos in 0..positions {
            let at = 64 + ((layer * positions + pos) * 2) * row_bytes;
            let (k, v) = golden.kv_rows(layer, pos);
            assert_eq!(
                int16(at),
                k,
                "{name}: saved key row, layer {layer}, position {pos}"
            );
            assert_eq!(
                int16(at + row_bytes),
                v,
                "{name}: saved value row, layer {layer}, position {pos}"
            );
        }
    }
}

/// SCORE: the sampler's log-probability path (Q10 log2) against the golden model's,
/// token for token, over the greedy story.
fn check_score(name: &str, chip: &Chip<InProcess>, model: &QuantizedModel, g: &GreedySteps) {
    chip.create_context(1).unwrap();
    let scored = chip.score(1, &g.feed).unwrap();
    chip.destroy_context(1).unwrap();
    assert_eq!(scored.len(), g.feed.len() - 1, "{name}: SCORE");
    assert_eq!(g.golden_logits.len(), scored.len(), "{name}: SCORE");
    for (k, logits) in g.golden_logits.iter().enumerate() {
        let want = etch_compiler::logprob(logits, model, g.feed[k + 1]);
        assert_eq!(scored[k], want, "{name}: SCORE of token {}", k + 1);
    }
}

/// PREFILL with LAST_LOGITS: the last step's logits alone, the classifier run for that
/// token only; a plain PREFILL runs it for none.
fn check_last_logits(name: &str, chip: &Chip<InProcess>, head: &[u32], want: &[i16]) {
    chip.create_context(1).unwrap();
    let c0 = chip.cycles().unwrap();
    let last = chip.prefill_last(1, head).unwrap();
    let with_last = chip.cycles().unwrap() - c0;
    chip.destroy_context(1).unwrap();
    assert_eq!(last, want, "{name}: LAST_LOGITS");
    chip.create_context(1).unwrap();
    let c0 = chip.cycles().unwrap();
    chip.prefill(1, head, false).unwrap();
    let plain = chip.cycles().unwrap() - c0;
    chip.destroy_context(1).unwrap();
    assert!(
        plain < with_last,
        "{name}: a plain PREFILL ({plain} cycles) skips the classifier ({with_last} with it)"
    );
}

/// Up to `n` tokens generated in `context` from `prompt`'s last token (the rest already
/// prefilled), stopping at token 1, with each step's logits when `logits`.
fn generate_after(
    chip: &Chip<InProcess>,
    context: u8,
    prompt: &[u32],
    n: u32,
    params: &SamplingParams,
    logits: bool,
) -> Generated {
    chip.generate(
        context,
        prompt[prompt.len() - 1],
        n,
        to_driver(params),
        &[1],
        logits,
        &mut |_| {},
    )
    .unwrap()
}

/// Sampled stories: the chip's sampler and RNG against the golden sampler.
fn check_sampled(name: &str, chip: &Chip<InProcess>, model: &QuantizedModel, prompt: &[u32]) {
    for (t, p, s) in [(1.0, 0.9, 42u64), (0.7, 0.0, 5), (1.3, 0.5, 99)] {
        let params = SamplingParams::from_cli(t, p, s);
        chip.create_context(1).unwrap();
        chip.prefill(1, &prompt[..prompt.len() - 1], false).unwrap();
        let got = generate_after(chip, 1, prompt, 30, &params, false);
        chip.destroy_context(1).unwrap();
        let mut dec = GoldenDecoder::new(model, ChipSampling::from_params(&params));
        let mut want = Vec::new();
        let mut token = prompt[0];
        use etch_compiler::Decoder;
        for pos in 0..prompt.len() - 1 + 30 {
            let forced = prompt.get(pos + 1).copied();
            let next = dec.step(token, pos, forced.is_none()).unwrap();
            let next = forced.or(next).unwrap();
            if pos >= prompt.len() - 1 {
                want.push(next);
                if next == 1 {
                    break;
                }
            }
            token = next;
        }
        assert_eq!(got.tokens, want, "{name}: sampled t={t} p={p} s={s}");
    }
}

#[test]
fn the_chip_refuses_altered_rom_images() {
    let dir = tempfile::tempdir().unwrap();
    let (config, lanes) = (shapes()[0].config, shapes()[0].lanes);
    let (ck, tok) = random_model(dir.path(), &config, 7);
    let out = dir.path().join("chip");
    let m = build_chip(&ck, &tok, &out, lanes, 2, config.seq_len, quick_quant());
    // The untouched build opens, and its identity registers hold the manifest's identity.
    drop(open_chip(&out, &m));
    // One weight changed in the ROM image: same RTL, other contents.
    let path = out.join("rom/weights.hex");
    let mut text = std::fs::read_to_string(&path).unwrap().into_bytes();
    text[3] = if text[3] == b'7' { b'8' } else { b'7' };
    std::fs::write(&path, text).unwrap();
    let dev = etch_driver::InProcess::open(&out, &m.design_hash).unwrap();
    let err = etch_driver::Chip::open(dev, Some(&common::expected(&m)))
        .err()
        .unwrap();
    assert!(
        matches!(err, etch_driver::DriverError::RomSignature { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("ROM signature"));
}

#[test]
fn malformed_descriptors_complete_with_errors_and_the_chip_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (config, lanes) = (shapes()[0].config, shapes()[0].lanes);
    let (ck, tok) = random_model(dir.path(), &config, 7);
    let out = dir.path().join("chip");
    let m = build_chip(&ck, &tok, &out, lanes, 2, config.seq_len, quick_quant());
    let chip = open_chip(&out, &m);
    let status = |chip: &etch_driver::Chip<etch_driver::InProcess>, cmd: Command| {
        chip.submit_raw(cmd, &mut |_| Ok(false), &mut || {})
            .unwrap()
            .status
    };
    assert_eq!(
        status(
            &chip,
            Command {
                opcode: 0xEE,
                ..Command::default()
            }
        ),
        Status::InvalidOpcode as u16
    );
    let create = |ctx| Command {
        opcode: Opcode::CreateContext as u8,
        context: ctx,
        ..Command::default()
    };
    assert_eq!(status(&chip, create(9)), Status::InvalidContext as u16);
    assert_eq!(status(&chip, create(0)), Status::Ok as u16);
    assert_eq!(status(&chip, create(0)), Status::ContextExists as u16);
    let prefill = |addr, count| Command {
        opcode: Opcode::Prefill as u8,
        context: 0,
        addr_a: addr,
        count,
        ..Command::default()
    };
    // Tokens outside mapped memory, a token outside the vocabulary, too many tokens.
    assert_eq!(
        status(&chip, prefill(0xDEAD_0000, 2)),
        Status::DmaError as u16
    );
    let err = chip.prefill(0, &[1, 400], false).unwrap_err();
    assert_eq!(err.status(), Some(Status::InvalidToken));
    assert_eq!(status(&chip, prefill(0, 1000)), Status::ContextFull as u16);
    // Generating into unmapped memory fails; the context on another slot is untouched.
    let gen = Command {
        opcode: Opcode::Generate as u8,
        context: 1,
        token: 1,
        count: 3,
        addr_a: 0x10,
        ..Command::default()
    };
    assert_eq!(status(&chip, gen), Status::NoContext as u16);
    // After all that, a normal generation still works.
    let g = chip
        .generate(
            0,
            1,
            5,
            Sampling {
                inv_temp: 0,
                topp: 0,
                seed: 1,
            },
            &[],
            false,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(g.tokens.len(), 5);
    assert!(chip.cycles().unwrap() > 0);
}
