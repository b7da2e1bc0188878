//! Precision per matrix: the weight format of a model under a budget of weight ROM
//! bits — 8 bits everywhere if it fits, otherwise 4-bit codes with the finest group
//! scales that fit, and the matrices that gain the most per bit kept at 8 bits.
//!
//! Quality is measured, not assumed: on selection stories the float reference writes
//! itself (seeds 3001, 3002, …, apart from the calibration stories and from any
//! evaluation text), teacher-forced, as the golden model's perplexity relative to the
//! float model's. The ROM bits are those of the chip's layout for the given lanes
//! (weight ROM, group scale ROM and wide ROM).

use etch_contract::{generate, Tokenizer, WIDE_UNITS};

use crate::accuracy::{score, Scores};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::layout::Placement;
use crate::quantize::{calibrate, Calibration, QuantSettings, QuantizedModel};
use crate::sampler::SamplingParams;
use crate::ReferenceDecoder;

/// Selection stories and their length.
const SELECTION_STORIES: u64 = 4;
const SELECTION_STEPS: usize = 256;

/// One measured format.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Trial {
    /// Bits per code.
    pub weight_bits: u32,
    /// Weights per group scale (0: per row).
    pub group: u32,
    /// Matrices kept at 8 bits.
    pub wide: Vec<String>,
    /// Weight ROM bits (weights, group scales, wide ROM).
    pub rom_bits: u64,
    /// Perplexity on the selection stories relative to the float model's, minus 1.
    pub ppl_rel_diff: f64,
    /// Top-1 agreement with the float model on the selection stories.
    pub top1_agreement: f64,
}

/// What `--rom-budget` chose, and everything it measured to choose it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MixChoice {
    /// The budget.
    pub budget_bits: u64,
    /// The chosen settings.
    pub settings: QuantSettings,
    /// The chosen format's measurement.
    pub chosen: Trial,
    /// Every format measured, in order.
    pub trials: Vec<Trial>,
}

/// The float reference's own selection stories, as token ids.
pub fn selection_stories(checkpoint: &Checkpoint, tokenizer: &Tokenizer) -> Result<Vec<Vec<u32>>> {
    let mut out = Vec::new();
    for k in 0..SELECTION_STORIES {
        let params = SamplingParams {
            temperature: 1.0,
            topp: 0.9,
            seed: 3001 + k,
        };
        let mut decoder = ReferenceDecoder::new(checkpoint, params);
        let story = generate(&mut decoder, tokenizer, "", SELECTION_STEPS, &mut |_| {})?;
        out.push(story.ids);
    }
    Ok(out)
}

/// Weight ROM bits of `model` laid out on `lanes` lanes of `datapath` (its columns
/// widen the ROM's words and pad its rows).
pub fn weight_rom_bits(
    model: &QuantizedModel,
    lanes: usize,
    datapath: &etch_contract::Datapath,
) -> u64 {
    let p = Placement::new(model, lanes, datapath, 1, model.config.seq_len);
    let bits = |r: &crate::layout::RomImage| (r.words.len() * r.width) as u64;
    bits(&p.weights) + bits(&p.scales) + bits(&p.wide)
}

/// The units of precision (of [`WIDE_UNITS`]) a model has: `wcls` only when its
/// classifier is not shared.
pub fn units(checkpoint: &Checkpoint) -> Vec<&'static str> {
    let shared = checkpoint.config().shared_classifier;
    WIDE_UNITS
        .iter()
        .copied()
        .filter(|u| *u != "wcls" || !shared)
        .collect()
}

/// Measures formats against one calibration and one set of selection stories.
pub struct Trials<'a> {
    checkpoint: &'a Checkpoint,
    calibration: Calibration,
    selection: Vec<Vec<u32>>,
    lanes: usize,
    datapath: etch_contract::Datapath,
    base: QuantSettings,
    /// Everything measured so far.
    pub done: Vec<Trial>,
}

impl<'a> Trials<'a> {
    /// Calibrates with `base` (its rounding and calibration settings apply to every
    /// trial) and writes the selection stories; ROM bits are counted on `lanes` lanes
    /// of `datapath`.
    pub fn new(
        checkpoint: &'a Checkpoint,
        tokenizer: &Tokenizer,
        base: &QuantSettings,
        lanes: usize,
        datapath: etch_contract::Datapath,
    ) -> Result<Self> {
        let calibration = calibrate(checkpoint, tokenizer, base)?;
        Self::with_calibration(checkpoint, tokenizer, base, calibration, lanes, datapath)
    }

    /// With a calibration already made (with `base`'s calibration settings).
    pub fn with_calibration(
        checkpoint: &'a Checkpoint,
        tokenizer: &Tokenizer,
        base: &QuantSettings,
        calibration: Calibration,
        lanes: usize,
        datapath: etch_contract::Datapath,
    ) -> Result<Self> {
        Ok(Trials {
            checkpoint,
            calibration,
            selection: selection_stories(checkpoint, tokenizer)?,
            lanes,
            datapath,
            base: base.clone(),
            done: Vec::new(),
        })
    }

    /// The settings of a format.
    pub fn settings(&self, bits: u32, group: u32, wide: &[String]) -> QuantSettings {
        QuantSettings {
            weight_bits: bits,
            group,
            wide: wide.to_vec(),
            ..self.base.clone()
        }
    }

    /// The model of a format and its weight ROM bits, without measuring it.
    pub fn model(&self, settings: &QuantSettings) -> Result<(QuantizedModel, u64)> {
        let model = QuantizedModel::from_calibration(self.checkpoint, settings, &self.calibration)?;
        let bits = weight_rom_bits(&model, self.lanes, &self.datapath);
        Ok((model, bits))
    }

    /// Measures a format.
    pub fn measure(&mut self, settings: &QuantSettings) -> Result<Trial> {
        let (model, rom_bits) = self.model(settings)?;
        let s: Scores = score(self.checkpoint, &model, &self.selection, &mut |_, _| {});
        let trial = Trial {
            weight_bits: settings.weight_bits,
            group: settings.group,
            wide: settings.wide.clone(),
            rom_bits,
            ppl_rel_diff: s.ppl_rel_diff(),
            top1_agreement: s.top1(),
        };
        self.done.push(trial.clone());
        Ok(trial)
    }

    /// The units of a 4-bit format with group `group` ranked by measured gain per
    /// added ROM bit when kept at 8 bits alone (units that gain nothing left out).
    pub fn rank_units(&mut self, group: u32) -> Result<Vec<(String, Trial)>> {
        let base = self.measure(&self.settings(4, group, &[]))?;
        let mut ranked = Vec::new();
        for unit in units(self.checkpoint) {
            let t = self.measure(&self.settings(4, group, &[unit.to_string()]))?;
            let gain = base.ppl_rel_diff - t.ppl_rel_diff;
            let cost = t.rom_bits.saturating_sub(base.rom_bits).max(1) as f64;
            if gain > 0.0 {
                ranked.push((gain / cost, unit.to_string(), t));
            }
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(ranked.into_iter().map(|(_, u, t)| (u, t)).collect())
    }
}

/// Group sizes of 4-bit formats, finest first.
const GROUPS: [u32; 5] = [8, 16, 32, 64, 0];

/// The best measured format whose weight ROM fits `budget_bits` on `lanes` lanes of
/// `datapath`.
pub fn choose_mix(
    checkpoint: &Checkpoint,
    tokenizer: &Tokenizer,
    base: &QuantSettings,
    budget_bits: u64,
    lanes: usize,
    datapath: etch_contract::Datapath,
    progress: &mut dyn FnMut(&str),
) -> Result<MixChoice> {
    progress("calibrating");
    let mut trials = Trials::new(checkpoint, tokenizer, base, lanes, datapath)?;
    let wide8 = trials.settings(8, 0, &[]);
    let (_, bits8) = trials.model(&wide8)?;
    if bits8 <= budget_bits {
        progress("measuring 8-bit weights");
        let chosen = trials.measure(&wide8)?;
        return Ok(MixChoice {
            budget_bits,
            settings: wide8,
            chosen,
            trials: trials.done,
        });
    }
    let mut best: Option<(QuantSettings, Trial)> = None;
    let mut smallest = u64::MAX;
    for group in GROUPS {
        let plain = trials.settings(4, group, &[]);
        let (_, bits) = trials.model(&plain)?;
        smallest = smallest.min(bits);
        if bits > budget_bits {
            continue;
        }
        progress(&format!("measuring 4-bit weights, group {group}"));
        let ranked = trials.rank_units(group)?;
        // Keep units at 8 bits, best gain per bit first, while the budget allows.
        let mut wide: Vec<String> = Vec::new();
        for (unit, _) in &ranked {
            let mut more = wide.clone();
            more.push(unit.clone());
            if trials.model(&trials.settings(4, group, &more))?.1 <= budget_bits {
                wide = more;
            }
        }
        let settings = trials.settings(4, group, &wide);
        let trial = if wide.is_empty() {
            trials
                .done
                .iter()
                .find(|t| t.group == group && t.weight_bits == 4 && t.wide.is_empty())
                .cloned()
                .ok_or_else(|| Error::Quantization("a measured trial went missing".into()))?
        } else {
            trials.measure(&settings)?
        };
        if !matches!(&best, Some((_, b)) if b.ppl_rel_diff <= trial.ppl_rel_diff) {
            best = Some((settings, trial));
        }
    }
    match best {
        Some((settings, chosen)) => Ok(MixChoice {
            budget_bits,
            settings,
            chosen,
            trials: trials.done,
        }),
        None => Err(Error::InvalidArgument(format!(
            "a weight ROM budget of {budget_bits} bits is too small: the smallest format \
             (4-bit weights, one scale per row) needs {smallest} bits on {lanes} lanes"
        ))),
    }
}
