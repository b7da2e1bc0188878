//! `etch build --fit`: the fastest configuration of a model that fits an FPGA.
//!
//! Speed comes from the datapath: lanes and input columns (the matrices take about
//! `rows · cols / (lanes · columns)` cycles, everything else fewer with more lanes),
//! requantizers (fewer lanes per requantizer, fewer cycles requantizing every lane),
//! and where the DSP blocks run out, columns that multiply in LUTs. Datapath shapes
//! are ranked by an estimate of their cycles per token; for the fastest whose leanest
//! form fits, what is left of the part then buys positions (up to the model's
//! context, at least 64) and 8-bit weights over 4-bit ones. Every candidate is placed
//! and its resources estimated with `etch_fpga::fit` — no synthesis — and the answer
//! says which bigger ones did not fit and why.
//! With 4-bit weights, what the part has left then keeps matrices at 8 bits, those
//! that measure the most gain per bit first (`etch_compiler::mix`); the chosen
//! weights' accuracy on the model's own stories is part of the answer.

use etch_compiler::chip::{design, BuildOptions, Datapath, Pipeline};
use etch_compiler::mix::{Trial, Trials};
use etch_compiler::{Calibration, Checkpoint, Config, QuantSettings, QuantizedModel, Tokenizer};
use etch_fpga::fit::{estimate, within, DesignShape};
use etch_fpga::{Board, FpgaError, Resources, Target};
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// A `--fit` or `--board` argument: a board (its FPGA), or an FPGA.
pub fn part(name: &str) -> CliResult<(Target, Option<Board>)> {
    if let Ok(b) = name.parse::<Board>() {
        return Ok((b.target(), Some(b)));
    }
    name.parse::<Target>().map(|t| (t, None)).map_err(|_| {
        CliError::Usage(format!(
            "--fit {name}: not a board ({}) nor an FPGA ({})",
            Board::names(),
            Target::ALL
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// The configuration chosen for a part.
#[derive(Clone, Debug)]
pub struct Choice {
    /// What to build.
    pub options: BuildOptions,
    /// The part.
    pub target: Target,
    /// Its estimated resources.
    pub estimate: Resources,
    /// The cycles per token the search ranked it by (an estimate; `etch sim`
    /// measures).
    pub estimated_cycles_per_token: f64,
    /// Why nothing bigger: one line per direction that did not fit.
    pub reasons: Vec<String>,
    /// The chosen weights measured on the float model's own selection stories.
    pub accuracy: Trial,
}

/// `--json` form of a choice.
#[derive(Serialize)]
pub struct ChoiceJson {
    target: String,
    lanes: usize,
    columns: usize,
    lut_columns: usize,
    requantizers: usize,
    vop_queue: bool,
    head_pairs: bool,
    pipeline: &'static str,
    contexts: usize,
    max_seq: usize,
    weight_bits: u32,
    group: u32,
    wide: Vec<String>,
    /// The weights' accuracy, teacher-forced on the float model's own stories (seeds
    /// 3001–3004).
    accuracy: AccuracyJson,
    estimate: EstimateJson,
    estimated_cycles_per_token: f64,
    reasons: Vec<String>,
}

#[derive(Serialize)]
struct AccuracyJson {
    top1_agreement: f64,
    ppl_rel_diff: f64,
    weight_rom_bits: u64,
}

#[derive(Serialize)]
struct EstimateJson {
    luts: u64,
    ffs: u64,
    brams: u64,
    dsps: u64,
}

impl Choice {
    /// The choice as `--json` prints it.
    pub fn json(&self) -> ChoiceJson {
        let o = &self.options;
        ChoiceJson {
            target: self.target.to_string(),
            lanes: o.lanes,
            columns: o.datapath.columns,
            lut_columns: o.datapath.lut_columns,
            requantizers: o.datapath.requantizers,
            vop_queue: o.datapath.vop_queue,
            head_pairs: o.datapath.head_pairs,
            pipeline: o.datapath.pipeline.name(),
            contexts: o.contexts,
            max_seq: o.max_seq,
            weight_bits: o.quant.weight_bits,
            group: o.quant.group,
            wide: o.quant.wide.clone(),
            accuracy: AccuracyJson {
                top1_agreement: self.accuracy.top1_agreement,
                ppl_rel_diff: self.accuracy.ppl_rel_diff,
                weight_rom_bits: self.accuracy.rom_bits,
            },
            estimate: EstimateJson {
                luts: self.estimate.luts,
                ffs: self.estimate.ffs,
                brams: self.estimate.brams,
                dsps: self.estimate.dsps,
            },
            estimated_cycles_per_token: self.estimated_cycles_per_token.round(),
            reasons: self.reasons.clone(),
        }
    }

    /// One paragraph for people.
    pub fn describe(&self) -> String {
        let o = &self.options;
        let have = self.target.resources();
        let mut s = format!(
            "fit for the {}: {}, {} pipeline, {} context × {} positions\n  weights      {}: perplexity {:+.2} % of float, top-1 {:.3} on the model's own stories\n  estimate     {} of {} LUTs, {} of {} flip-flops, {} of {} block RAMs, {} of {} multipliers; about {:.0} cycles per token",
            self.target,
            crate::chip::describe_datapath(o.lanes, &o.datapath),
            o.datapath.pipeline.name(),
            o.contexts,
            o.max_seq,
            crate::chip::describe_weights(&o.quant),
            100.0 * self.accuracy.ppl_rel_diff,
            self.accuracy.top1_agreement,
            self.estimate.luts,
            have.luts,
            self.estimate.ffs,
            have.ffs,
            self.estimate.brams,
            have.brams,
            self.estimate.dsps,
            have.dsps,
            self.estimated_cycles_per_token,
        );
        for r in &self.reasons {
            s.push_str(&format!("\n  not          {r}"));
        }
        s
    }
}

/// A datapath shape the search considers: lanes, input columns per lane, how many of
/// those multiply in LUTs, requantizers, the vector-operation queue, head pairs.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Shape {
    lanes: usize,
    columns: usize,
    lut_columns: usize,
    requantizers: usize,
    vop_queue: bool,
    head_pairs: bool,
}

impl Shape {
    fn datapath(&self) -> Datapath {
        Datapath {
            requantizers: self.requantizers,
            pipeline: Pipeline::FPGA,
            columns: self.columns,
            vop_queue: self.vop_queue,
            lut_columns: self.lut_columns,
            head_pairs: self.head_pairs,
        }
    }

    fn describe(&self) -> String {
        crate::chip::describe_datapath(self.lanes, &self.datapath())
    }
}

/// One candidate: a datapath shape (an index into the ranked shapes), positions, and
/// the index of its weight format in [`FORMATS`].
type Candidate = (usize, usize, usize);

/// Weight formats, best first: (bits, weights per group scale).
const FORMATS: [(u32, u32); 6] = [(8, 0), (4, 8), (4, 16), (4, 32), (4, 64), (4, 0)];

/// Cycles per token outside the matrices (attention, softmax, norms, element-wise
/// operations, control) on an `fpga`-pipeline chip of one context × 128 positions:
/// `OTHER_BASE + OTHER_LANE_CYCLES / lanes`, fitted to stories260K's 128-token greedy
/// story measured with `etch sim --profile` on 8 lanes (7,106 outside the matrices)
/// and 32 lanes × 2 columns (2,810; `docs/FPGA.md`).
const OTHER_BASE: f64 = 1_378.0;
const OTHER_LANE_CYCLES: f64 = 45_818.0;
/// The vector-operation queue's saving on it (5,234 → 5,146 on 32 lanes × 4 columns).
const VOP_QUEUE_SAVING: f64 = 90.0;
/// Head pairs' saving, `HEAD_PAIRS_LANE_SAVING / lanes`: attention and softmax in half
/// the cycles (8 lanes × 8 columns with the queue: 11,161 → 8,184 per token).
const HEAD_PAIRS_LANE_SAVING: f64 = 23_816.0;

/// Estimated cycles per token of a model of shape `c` on a datapath shape: the
/// matrices from the ISA (`docs/isa.md`: `ceil(rows / L)` row groups of
/// `ceil(cols / C)` cycles, each but the last followed by `L/R − 1` repeats to
/// requantize the other blocks of lanes, the last only up to its last row's block),
/// the rest from a fit on measured chips. For ranking candidates only: `etch sim`
/// measures the chip that is built.
fn estimated_cycles_per_token(c: &Config, s: &Shape) -> f64 {
    let kv_dim = c.kv_dim();
    let per_layer = [
        (c.dim, c.dim),
        (kv_dim, c.dim),
        (kv_dim, c.dim),
        (c.dim, c.dim),
        (c.hidden_dim, c.dim),
        (c.hidden_dim, c.dim),
        (c.dim, c.hidden_dim),
    ];
    let matrix = |(rows, cols): (usize, usize)| -> usize {
        let words = cols.div_ceil(s.columns);
        let groups = rows.div_ceil(s.lanes);
        groups.saturating_sub(1) * (words + s.lanes / s.requantizers - 1)
            + words
            + (rows.max(1) - 1) % s.lanes / s.requantizers
    };
    let matrices = c.n_layers * per_layer.into_iter().map(matrix).sum::<usize>()
        + matrix((c.vocab_size, c.dim));
    let queue = if s.vop_queue { VOP_QUEUE_SAVING } else { 0.0 };
    let pairs = if s.head_pairs {
        HEAD_PAIRS_LANE_SAVING / s.lanes as f64
    } else {
        0.0
    };
    matrices as f64 + OTHER_BASE + OTHER_LANE_CYCLES / s.lanes as f64 - queue - pairs
}

/// Every datapath shape `--fit` considers, fastest first by
/// [`estimated_cycles_per_token`] (of two equally fast, the one with fewer
/// multipliers first, and of the same multipliers, the one with fewer in LUTs).
fn ranked_shapes(c: &Config) -> Vec<Shape> {
    let mut shapes = Vec::new();
    for lanes in [8usize, 16, 32, 64, 128, 256] {
        for columns in [1usize, 2, 4, 8] {
            for lut_columns in 0..columns {
                let mut requantizers = lanes.min(8);
                while requantizers <= lanes {
                    for vop_queue in [false, true] {
                        // (head pairs suit only some shapes: the others do not build)
                        for head_pairs in [false, true] {
                            shapes.push(Shape {
                                lanes,
                                columns,
                                lut_columns,
                                requantizers,
                                vop_queue,
                                head_pairs,
                            });
                        }
                    }
                    requantizers *= 2;
                }
            }
        }
    }
    let key = |s: &Shape| {
        (
            estimated_cycles_per_token(c, s).round() as u64,
            s.lanes * (s.columns + usize::from(s.head_pairs)) + 3 * s.requantizers,
            // DSP blocks before LUTs: the LUTs are what a full part runs out of
            s.lut_columns,
        )
    };
    shapes.sort_by_key(key);
    shapes
}

/// The fastest configuration of `ck` that the resource model fits on `target`:
/// datapath shapes in the order of [`ranked_shapes`]; for the first whose leanest
/// form (the fewest positions, the narrowest weights) fits, the most positions, then
/// the best weight format, that fit.
pub fn fit(
    ck: &Checkpoint,
    tok: &Tokenizer,
    target: Target,
    progress: &mut dyn FnMut(&str),
) -> CliResult<Choice> {
    let c = *ck.config();
    let mut models = Vec::new();
    progress("calibrating");
    let calibration = etch_compiler::calibrate(ck, tok, &QuantSettings::default())?;
    for (bits, group) in FORMATS {
        progress(&format!("quantizing ({bits}-bit weights, group {group})"));
        let quant = QuantSettings {
            group,
            ..QuantSettings::for_bits(bits)
        };
        models.push((
            QuantizedModel::from_calibration(ck, &quant, &calibration)?,
            quant,
        ));
    }
    let positions: Vec<usize> = std::iter::successors(Some(c.seq_len), |&p| Some(p / 2))
        .take_while(|&p| p >= 64.min(c.seq_len))
        .collect();
    let leanest = (*positions.last().unwrap_or(&c.seq_len), FORMATS.len() - 1);
    let shapes = ranked_shapes(&c);
    let evaluate = |cand: Candidate| -> Option<(BuildOptions, Resources)> {
        let (shape, max_seq, format) = cand;
        let (model, quant) = models.get(format)?;
        let options = BuildOptions {
            lanes: shapes.get(shape)?.lanes,
            contexts: 1,
            max_seq,
            quant: quant.clone(),
            datapath: shapes.get(shape)?.datapath(),
        };
        let est = resources(model, &options)?;
        Some((options, est))
    };
    progress("estimating resources");
    for shape in 0..shapes.len() {
        let fits = |cand| evaluate(cand).is_some_and(|(_, e)| within(target, &e).is_ok());
        if !fits((shape, leanest.0, leanest.1)) {
            continue;
        }
        for &max_seq in &positions {
            for format in 0..FORMATS.len() {
                let cand = (shape, max_seq, format);
                let Some((options, est)) = evaluate(cand) else {
                    continue;
                };
                if within(target, &est).is_ok() {
                    let reasons = why_not_bigger(cand, &shapes, &positions, &evaluate, target);
                    let (options, est, accuracy) =
                        widen(ck, tok, calibration.clone(), target, options, est, progress)?;
                    return Ok(Choice {
                        options,
                        target,
                        estimate: est,
                        estimated_cycles_per_token: estimated_cycles_per_token(&c, &shapes[shape]),
                        reasons,
                        accuracy,
                    });
                }
            }
        }
    }
    let smallest = shapes
        .iter()
        .position(|s| {
            *s == Shape {
                lanes: 8,
                columns: 1,
                lut_columns: 0,
                requantizers: 8,
                vop_queue: false,
                head_pairs: false,
            }
        })
        .unwrap_or(0);
    Err(CliError::Fpga(FpgaError::DoesNotFit(format!(
        "no configuration of {} fits the {target}: even 8 lanes with 4-bit weights and {} positions would need {}",
        ck.path().display(),
        leanest.0,
        evaluate((smallest, leanest.0, leanest.1))
            .map(|(_, e)| within(target, &e).err().unwrap_or_default())
            .unwrap_or_else(|| "a shape that suits 8 lanes".into())
    ))))
}

/// The estimated resources of `model` built with `options`, or `None` when the design
/// is impossible.
fn resources(model: &QuantizedModel, options: &BuildOptions) -> Option<Resources> {
    let params = design(model, options).ok()?;
    Some(estimate(&DesignShape {
        lanes: options.lanes,
        columns: options.datapath.columns,
        lut_columns: options.datapath.lut_columns,
        lut_weight_bits: params.matvec_weight_bits(),
        requantizers: options.datapath.requantizers,
        head_units: params.head_units(),
        sigmoid_units: params.sigmoid_units(),
        pipeline: options.datapath.pipeline,
        vop_queue: options.datapath.vop_queue,
        head_pairs: options.datapath.head_pairs,
        wide_rom: params.wide_depth != 0,
        memories: params.memories(),
    }))
}

/// With 4-bit weights, keeps at 8 bits the matrices that gain the most per ROM bit
/// while the part still fits; measures the weights chosen.
fn widen(
    ck: &Checkpoint,
    tok: &Tokenizer,
    calibration: Calibration,
    target: Target,
    mut options: BuildOptions,
    mut est: Resources,
    progress: &mut dyn FnMut(&str),
) -> CliResult<(BuildOptions, Resources, Trial)> {
    progress("measuring the weights");
    let mut trials = Trials::with_calibration(
        ck,
        tok,
        &options.quant,
        calibration,
        options.lanes,
        options.datapath,
    )?;
    if options.quant.weight_bits == 4 {
        progress("choosing matrices to keep at 8 bits");
        let ranked = trials.rank_units(options.quant.group)?;
        for (unit, _) in ranked {
            let mut wider = options.clone();
            wider.quant.wide.push(unit);
            let (model, _) = trials.model(&wider.quant)?;
            if let Some(e) = resources(&model, &wider) {
                if within(target, &e).is_ok() {
                    options = wider;
                    est = e;
                }
            }
        }
    }
    let accuracy = trials.measure(&options.quant)?;
    Ok((options, est, accuracy))
}

/// For each direction the chosen candidate could grow in — the next faster datapath
/// shape, more positions, a better weight format — what growing would need.
fn why_not_bigger(
    chosen: Candidate,
    shapes: &[Shape],
    positions: &[usize],
    evaluate: &dyn Fn(Candidate) -> Option<(BuildOptions, Resources)>,
    target: Target,
) -> Vec<String> {
    let (shape, max_seq, format) = chosen;
    let mut out = Vec::new();
    let mut explain = |what: String, cand: Candidate| {
        if let Some((_, e)) = evaluate(cand) {
            if let Err(over) = within(target, &e) {
                out.push(format!("{what}: would need {over}"));
            }
        }
    };
    if let Some(faster) = shape.checked_sub(1) {
        explain(
            format!("{} (next ahead in the ranking)", shapes[faster].describe()),
            (faster, max_seq, format),
        );
    }
    if let Some(&more) = positions.iter().rev().find(|&&p| p > max_seq) {
        explain(format!("{more} positions"), (shape, more, format));
    }
    if format > 0 {
        let (bits, group) = FORMATS[format - 1];
        let what = match group {
            0 => format!("{bits}-bit weights"),
            g => format!("{bits}-bit weights with a scale per {g}"),
        };
        explain(what, (shape, max_seq, format - 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stories260k() -> Config {
        etch_compiler::synthetic::STORIES260K
    }

    fn shape(lanes: usize, columns: usize, requantizers: usize) -> Shape {
        Shape {
            lanes,
            columns,
            lut_columns: 0,
            requantizers,
            vop_queue: false,
            head_pairs: false,
        }
    }

    #[test]
    fn the_cycle_estimate_is_near_the_measured_chips() {
        // `etch sim OUT -i "Once upon a time" -n 256 -t 0 --profile` on stories260K
        // chips of the `fpga` pipeline, one context of 128 positions (docs/FPGA.md).
        let c = stories260k();
        for (s, measured) in [
            (shape(8, 1, 8), 39_842.0),
            (shape(32, 2, 8), 7_390.0),
            (shape(32, 1, 16), 11_253.0),
            (shape(64, 1, 8), 6_746.0),
            (shape(32, 4, 8), 5_234.0),
            (
                Shape {
                    vop_queue: true,
                    ..shape(32, 4, 8)
                },
                5_146.0,
            ),
            (
                Shape {
                    vop_queue: true,
                    ..shape(8, 8, 8)
                },
                11_161.0,
            ),
            (
                Shape {
                    vop_queue: true,
                    head_pairs: true,
                    ..shape(8, 8, 8)
                },
                8_184.0,
            ),
        ] {
            let e = estimated_cycles_per_token(&c, &s);
            assert!(
                (e - measured).abs() < 0.07 * measured,
                "{s:?}: {e} vs {measured}"
            );
        }
    }

    #[test]
    fn shapes_rank_by_speed_then_by_fewer_multipliers() {
        let ranked = ranked_shapes(&stories260k());
        let at = |s: Shape| ranked.iter().position(|&r| r == s).unwrap();
        // More products per cycle first; of the same shape, DSP columns before LUT
        // ones, which are as fast but cost LUTs.
        assert!(at(shape(32, 4, 8)) < at(shape(32, 2, 8)));
        assert!(at(shape(32, 2, 8)) < at(shape(32, 1, 8)));
        assert!(at(shape(64, 1, 8)) < at(shape(32, 1, 8)));
        let lut = Shape {
            lut_columns: 2,
            ..shape(32, 4, 8)
        };
        assert!(at(shape(32, 4, 8)) < at(lut));
        assert_eq!(
            estimated_cycles_per_token(&stories260k(), &lut),
            estimated_cycles_per_token(&stories260k(), &shape(32, 4, 8))
        );
        assert_eq!(
            ranked.len(),
            ranked.iter().filter(|s| s.lut_columns < s.columns).count()
        );
    }
}
