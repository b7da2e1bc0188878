//! `etch build --fit`: the fastest configuration of a model that fits an FPGA.
//!
//! Speed comes from lanes first (the matrices take `rows · cols / lanes` cycles),
//! then from requantizers (fewer lanes per requantizer, fewer cycles requantizing
//! every lane); what is left of the part then buys positions (up to the model's
//! context, at least 64) and 8-bit weights over 4-bit ones. Every candidate is placed
//! and its resources estimated with `etch_fpga::fit` — no synthesis — and the first
//! that fits in that order wins; the answer says which bigger ones did not and why.
//! With 4-bit weights, what the part has left then keeps matrices at 8 bits, those
//! that measure the most gain per bit first (`etch_compiler::mix`); the chosen
//! weights' accuracy on the model's own stories is part of the answer.

use etch_compiler::chip::{design, BuildOptions, Datapath, Pipeline};
use etch_compiler::mix::{Trial, Trials};
use etch_compiler::{Calibration, Checkpoint, QuantSettings, QuantizedModel, Tokenizer};
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
    requantizers: usize,
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
            requantizers: o.datapath.requantizers,
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
            reasons: self.reasons.clone(),
        }
    }

    /// One paragraph for people.
    pub fn describe(&self) -> String {
        let o = &self.options;
        let have = self.target.resources();
        let mut s = format!(
            "fit for the {}: {} lanes, {} requantizers, {} pipeline, {} context × {} positions\n  weights      {}: perplexity {:+.2} % of float, top-1 {:.3} on the model's own stories\n  estimate     {} of {} LUTs, {} of {} flip-flops, {} of {} block RAMs, {} of {} multipliers",
            self.target,
            o.lanes,
            o.datapath.requantizers,
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
        );
        for r in &self.reasons {
            s.push_str(&format!("\n  not          {r}"));
        }
        s
    }
}

/// One candidate: lanes, requantizers, positions, and the index of its weight format
/// in [`FORMATS`].
type Candidate = (usize, usize, usize, usize);

/// Weight formats, best first: (bits, weights per group scale).
const FORMATS: [(u32, u32); 6] = [(8, 0), (4, 8), (4, 16), (4, 32), (4, 64), (4, 0)];

/// The fastest configuration of `ck` that the resource model fits on `target`.
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
    let evaluate = |cand: Candidate| -> Option<(BuildOptions, Resources)> {
        let (lanes, requantizers, max_seq, format) = cand;
        let (model, quant) = models.get(format)?;
        let options = BuildOptions {
            lanes,
            contexts: 1,
            max_seq,
            quant: quant.clone(),
            datapath: Datapath {
                requantizers,
                pipeline: Pipeline::FPGA,
                columns: 1,
                vop_queue: false,
            },
        };
        let est = resources(model, &options)?;
        Some((options, est))
    };
    progress("estimating resources");
    for lanes in [256usize, 128, 64, 32, 16, 8] {
        let mut rq = lanes;
        while rq >= lanes.min(8) {
            for &max_seq in &positions {
                for format in 0..FORMATS.len() {
                    let cand = (lanes, rq, max_seq, format);
                    let Some((options, est)) = evaluate(cand) else {
                        continue;
                    };
                    if within(target, &est).is_ok() {
                        let reasons = why_not_bigger(cand, &positions, &evaluate, target);
                        let (options, est, accuracy) =
                            widen(ck, tok, calibration.clone(), target, options, est, progress)?;
                        return Ok(Choice {
                            options,
                            target,
                            estimate: est,
                            reasons,
                            accuracy,
                        });
                    }
                }
            }
            rq /= 2;
        }
    }
    Err(CliError::Fpga(FpgaError::DoesNotFit(format!(
        "no configuration of {} fits the {target}: even 8 lanes with 4-bit weights and {} positions would need {}",
        ck.path().display(),
        positions.last().copied().unwrap_or(64),
        evaluate((8, 8, positions.last().copied().unwrap_or(64), FORMATS.len() - 1))
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
        requantizers: options.datapath.requantizers,
        head_units: params.head_units(),
        sigmoid_units: params.sigmoid_units(),
        pipeline: options.datapath.pipeline,
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
    let mut trials = Trials::with_calibration(ck, tok, &options.quant, calibration, options.lanes)?;
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

/// For each direction the chosen candidate could grow in, what growing would need.
fn why_not_bigger(
    chosen: Candidate,
    positions: &[usize],
    evaluate: &dyn Fn(Candidate) -> Option<(BuildOptions, Resources)>,
    target: Target,
) -> Vec<String> {
    let (lanes, rq, max_seq, format) = chosen;
    let mut out = Vec::new();
    let mut explain = |what: String, cand: Candidate| {
        if let Some((_, e)) = evaluate(cand) {
            if let Err(over) = within(target, &e) {
                out.push(format!("{what}: would need {over}"));
            }
        }
    };
    if lanes < 256 {
        explain(
            format!("{} lanes", 2 * lanes),
            (2 * lanes, (2 * lanes).min(8), max_seq, format),
        );
    }
    if rq < lanes {
        explain(
            format!("{} requantizers", 2 * rq),
            (lanes, 2 * rq, max_seq, format),
        );
    }
    if let Some(&more) = positions.iter().rev().find(|&&p| p > max_seq) {
        explain(format!("{more} positions"), (lanes, rq, more, format));
    }
    if format > 0 {
        let (bits, group) = FORMATS[format - 1];
        let what = match group {
            0 => format!("{bits}-bit weights"),
            g => format!("{bits}-bit weights with a scale per {g}"),
        };
        explain(what, (lanes, rq, max_seq, format - 1));
    }
    out
}
