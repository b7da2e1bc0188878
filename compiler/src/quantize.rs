//! The quantizer: float checkpoint → the integer model the chip hard-wires.
//!
//! * Weights: codes of `weight_bits` (8 by default) times a float unit per output row,
//!   and with 4-bit codes optionally a 4-bit integer scale per group of 8–64 weights
//!   along the row ([`QMatrix`]). Codes are chosen by error-compensating rounding
//!   ([`crate::gptq`]) against the second moments of each matrix's input on the
//!   calibration stories, or by rounding to nearest.
//! * Activations: int16 fixed point; each tensor kind has its own number of fractional
//!   bits `F` per layer, chosen by calibration — the float reference generates a few
//!   stories of its own (fixed seeds, nothing from any evaluation text), the largest
//!   magnitude of each tensor is recorded, and `F` is the largest value that keeps
//!   `headroom × max` inside int16.
//! * Every change of format is a requantization `sat16(round_shift(a · m, s))` with a
//!   16-bit multiplier `m` per output row (folding the weight scale and the two
//!   formats) and a shift `s` per matrix.
//!
//! The result, [`QuantizedModel`], is what the golden model runs and what the chip
//! generator turns into ROM images.

use crate::checkpoint::{Checkpoint, Config};
use crate::error::{Error, Result};
use crate::gptq::{self, Moments};
use crate::numerics::{self, Tables};
use crate::reference::Ranges;
use crate::sampler::SamplingParams;
use crate::ReferenceDecoder;
use etch_contract::generate;
use etch_contract::Tokenizer;
pub use etch_contract::{Formats, LayerFormats, QuantSettings, Rounding};

/// A weight format: bits per code and weights per group scale (0: one scale per row).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WeightFormat {
    /// Bits per code (4 or 8).
    pub bits: u32,
    /// Weights per group scale along a row, or 0.
    pub group: usize,
}

impl WeightFormat {
    /// The format `settings` name.
    pub fn of(settings: &QuantSettings) -> Self {
        WeightFormat {
            bits: settings.weight_bits,
            group: settings.group as usize,
        }
    }

    /// 8-bit codes, one scale per row: a matrix kept wide in a 4-bit model.
    pub const WIDE: WeightFormat = WeightFormat { bits: 8, group: 0 };

    /// The format `settings` give the unit of precision `unit` (one of
    /// [`etch_contract::WIDE_UNITS`]): 8 bits when it is kept wide, theirs otherwise.
    pub fn for_unit(settings: &QuantSettings, unit: &str) -> Self {
        if settings.wide.iter().any(|u| u == unit) {
            WeightFormat::WIDE
        } else {
            WeightFormat::of(settings)
        }
    }
}

/// Which weight matrix of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatrixKind {
    /// The token embedding (the classifier too when shared).
    Embedding,
    /// Query projection.
    Wq,
    /// Key projection.
    Wk,
    /// Value projection.
    Wv,
    /// Attention output projection.
    Wo,
    /// Feed-forward gate.
    W1,
    /// Feed-forward down projection.
    W2,
    /// Feed-forward up projection.
    W3,
    /// An unshared classifier.
    Classifier,
}

impl MatrixKind {
    /// Its unit of precision (one of [`etch_contract::WIDE_UNITS`]): `wq`, `wk` and
    /// `wv` are one matrix on the chip.
    pub fn unit(self) -> &'static str {
        match self {
            MatrixKind::Wq | MatrixKind::Wk | MatrixKind::Wv => "wqkv",
            other => other.name(),
        }
    }

    /// The checkpoint's name for it.
    pub fn name(self) -> &'static str {
        match self {
            MatrixKind::Embedding => "token_embedding",
            MatrixKind::Wq => "wq",
            MatrixKind::Wk => "wk",
            MatrixKind::Wv => "wv",
            MatrixKind::Wo => "wo",
            MatrixKind::W1 => "w1",
            MatrixKind::W2 => "w2",
            MatrixKind::W3 => "w3",
            MatrixKind::Classifier => "wcls",
        }
    }
}

/// One matrix: its kind and, for the layers' matrices, its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatrixId {
    /// Which matrix of a layer, or the embedding or classifier.
    pub kind: MatrixKind,
    /// The layer (`None` for the embedding and classifier).
    pub layer: Option<usize>,
}

/// Bits of a group scale in the scale ROM.
pub const GROUP_SCALE_BITS: u32 = 4;

/// A quantized weight matrix `[rows][cols]`: a float unit per row, and, with group
/// scales, a small integer scale per group of `group` weights along each row.
///
/// The lanes multiply the *effective* weight `code · group_scale` (always within int8:
/// `|code| ≤ 8`, `group_scale ≤ 15` for 4-bit codes), so `W ≈ weights · scale[row]`
/// and the golden model needs nothing but `weights`; `codes` and `group_scales` are
/// what the ROMs store.
#[derive(Clone, Debug, PartialEq)]
pub struct QMatrix {
    /// Output rows.
    pub rows: usize,
    /// Input columns.
    pub cols: usize,
    /// Bits per code.
    pub bits: u32,
    /// `rows × cols` effective weights, `code · group_scale`.
    pub weights: Vec<i8>,
    /// Float unit of each row (`W ≈ weights · scale`).
    pub scales: Vec<f32>,
    /// Weights per group scale along a row, or 0 without group scales.
    pub group: usize,
    /// `rows × cols` codes (`weights` itself without group scales).
    pub codes: Vec<i8>,
    /// `rows × ceil(cols / group)` group scales in `1..=15` (empty without groups).
    pub group_scales: Vec<u8>,
}

/// The largest group scale (4 bits).
pub const GROUP_SCALE_MAX: i32 = 15;

/// Codes and group scales of one weight format.
#[derive(Clone, Copy, Debug)]
struct Grid {
    /// Smallest and largest code.
    code_min: f64,
    code_max: f64,
    /// Largest group scale (1 without groups).
    scale_max: i32,
    /// Weights per group (`cols` without groups).
    group: usize,
}

impl Grid {
    fn new(bits: u32, group: usize, cols: usize) -> Self {
        let half = (1i32 << (bits - 1)) as f64;
        Grid {
            code_min: -half,
            code_max: half - 1.0,
            scale_max: if group == 0 { 1 } else { GROUP_SCALE_MAX },
            group: if group == 0 { cols.max(1) } else { group },
        }
    }

    /// The code of `w` in steps of `step`.
    fn code(&self, w: f64, step: f64) -> f64 {
        if step > 0.0 {
            (w / step).round().clamp(self.code_min, self.code_max)
        } else {
            0.0
        }
    }

    /// Squared error of `ws` rounded in steps of `step`.
    fn error(&self, ws: &[f64], step: f64) -> f64 {
        ws.iter()
            .map(|&w| (w - self.code(w, step) * step).powi(2))
            .sum()
    }

    /// The group scale for `ws` with row unit `unit`: of the four scales at and below
    /// the one that just covers the group's largest weight, the one with the least
    /// squared error (a smaller scale clips the largest weight but rounds the rest
    /// finer).
    fn group_scale(&self, ws: &[f64], unit: f64) -> i32 {
        let amax = ws.iter().fold(0.0f64, |m, w| m.max(w.abs()));
        let cover = ((amax / (self.code_max * unit)).ceil() as i32).clamp(1, self.scale_max);
        let mut best = (f64::INFINITY, cover);
        for gs in (cover - 3).max(1)..=cover {
            let e = self.error(ws, unit * gs as f64);
            if e < best.0 {
                best = (e, gs);
            }
        }
        best.1
    }

    /// The row unit: `amax / (code_max · scale_max)` shrunk by the factor (1 down to
    /// 0.5 in 40 steps) with the least squared error of the rounded row.
    fn unit(&self, row: &[f64]) -> f64 {
        let amax = row.iter().fold(0.0f64, |m, w| m.max(w.abs()));
        let full = amax / (self.code_max * self.scale_max as f64);
        let mut best = (f64::INFINITY, full);
        for k in 0..40 {
            let unit = full * (1.0 - k as f64 / 80.0);
            let e: f64 = row
                .chunks(self.group)
                .map(|g| self.error(g, unit * self.group_scale(g, unit) as f64))
                .sum();
            if e < best.0 {
                best = (e, unit);
            }
        }
        best.1
    }
}

impl QMatrix {
    /// Quantizes a row-major float matrix to `bits` bits per weight, one scale per row,
    /// each weight rounded to its nearest code.
    pub fn quantize(w: &[f32], rows: usize, cols: usize, bits: u32) -> Self {
        Self::quantize_with(w, rows, cols, bits, 0, None)
    }

    /// Quantizes to `bits`-bit codes with a scale per `group` weights (0: per row),
    /// rounding with error compensation through `hinv` (the factor of
    /// [`gptq::inverse_factor`] for this matrix's input) when given, to the nearest code
    /// otherwise.
    pub fn quantize_with(
        w: &[f32],
        rows: usize,
        cols: usize,
        bits: u32,
        group: usize,
        hinv: Option<&[f64]>,
    ) -> Self {
        let grid = Grid::new(bits, group, cols);
        let n_groups = cols.div_ceil(grid.group);
        let mut m = QMatrix {
            rows,
            cols,
            bits,
            weights: Vec::with_capacity(rows * cols),
            scales: Vec::with_capacity(rows),
            group,
            codes: Vec::with_capacity(rows * cols),
            group_scales: Vec::with_capacity(if group == 0 { 0 } else { rows * n_groups }),
        };
        for row in w.chunks_exact(cols).take(rows) {
            let row64: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            let unit = grid.unit(&row64);
            let mut codes = vec![0i8; cols];
            let mut scales = vec![1i32; n_groups];
            let mut round = |j: usize, current: &[f64]| {
                let g = j / grid.group;
                if j % grid.group == 0 {
                    let end = (j + grid.group).min(cols);
                    scales[g] = grid.group_scale(&current[j..end], unit);
                }
                let step = unit * scales[g] as f64;
                let code = grid.code(current[j], step);
                codes[j] = code as i8;
                code * step
            };
            match hinv {
                Some(u) => gptq::round_row(&row64, u, round),
                None => {
                    for j in 0..cols {
                        round(j, &row64);
                    }
                }
            }
            m.scales.push(unit as f32);
            m.weights.extend(
                codes
                    .iter()
                    .enumerate()
                    .map(|(j, &c)| (c as i32 * scales[j / grid.group]) as i8),
            );
            m.codes.extend_from_slice(&codes);
            if group != 0 {
                m.group_scales.extend(scales.iter().map(|&s| s as u8));
            }
        }
        m
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[i8] {
        &self.weights[i * self.cols..(i + 1) * self.cols]
    }

    /// Groups per row (0 without group scales).
    pub fn groups_per_row(&self) -> usize {
        if self.group == 0 {
            0
        } else {
            self.cols.div_ceil(self.group)
        }
    }
}

/// Per-row requantization of a matrix product:
/// `y[i] = requant(acc[i], mult[i], shift[i])`.
///
/// Each row has its own shift, the largest that keeps its multiplier below `2^16`, so
/// every multiplier keeps 16 significant bits and rows of different matrices can share
/// one pass of the hardware.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requant {
    /// One 16-bit multiplier per row.
    pub mult: Vec<u16>,
    /// One right shift (with rounding) per row, at most 62.
    pub shift: Vec<u8>,
}

impl Requant {
    /// Multipliers and shifts for real factors `f[i]`.
    pub fn for_factors(factors: &[f64], what: &str) -> Result<Self> {
        let mut mult = Vec::with_capacity(factors.len());
        let mut shift = Vec::with_capacity(factors.len());
        for &f in factors {
            let (m, s) = fixed_multiplier(f, what)?;
            mult.push(m);
            shift.push(s as u8);
        }
        Ok(Requant { mult, shift })
    }
}

/// A 16-bit multiplier `m = round(f · 2^s)` with the largest `s ≤ 62` that keeps
/// `m < 2^16` (a zero factor gives `m = 0`, `s = 1`).
pub fn fixed_multiplier(f: f64, what: &str) -> Result<(u16, u32)> {
    if !f.is_finite() || f < 0.0 {
        return Err(Error::Quantization(format!(
            "{what}: scale factor {f} is not finite and positive"
        )));
    }
    if f == 0.0 {
        return Ok((0, 1));
    }
    let s = (65535.0 / f).log2().floor();
    if s < 1.0 {
        return Err(Error::Quantization(format!(
            "{what}: scale factor {f} is too large for a 16-bit multiplier"
        )));
    }
    let mut shift = (s as u32).min(62);
    let mut m = (f * 2f64.powi(shift as i32)).round();
    if m > 65535.0 {
        // Rounding can reach 2^16 at the boundary: one less bit.
        shift -= 1;
        m = (f * 2f64.powi(shift as i32)).round();
    }
    Ok((m as u16, shift))
}

/// One quantized linear layer: weights and the requantization of its output.
#[derive(Clone, Debug, PartialEq)]
pub struct QLinear {
    /// The weights.
    pub matrix: QMatrix,
    /// Output requantization.
    pub requant: Requant,
}

impl QLinear {
    fn new(
        w: &[f32],
        (rows, cols): (usize, usize),
        format: WeightFormat,
        (f_in, f_out): (u32, u32),
        hinv: Option<&[f64]>,
    ) -> Result<Self> {
        let matrix = QMatrix::quantize_with(w, rows, cols, format.bits, format.group, hinv);
        let requant = Requant::for_factors(&row_factors(&matrix.scales, f_in, f_out), "matrix")?;
        Ok(QLinear { matrix, requant })
    }
}

/// Real factors that take `acc` (weights × input in format `f_in`) to format `f_out`.
fn row_factors(scales: &[f32], f_in: u32, f_out: u32) -> Vec<f64> {
    let k = 2f64.powi(f_out as i32 - f_in as i32);
    scales.iter().map(|&s| s as f64 * k).collect()
}

/// An RMSNorm's gains, pre-multiplied by `sqrt(dim)`, as int16 with `frac` fractional
/// bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QNorm {
    /// `round(g[j] · sqrt(dim) · 2^frac)`.
    pub gain: Vec<i16>,
    /// Fractional bits of `gain`.
    pub frac: u32,
}

impl QNorm {
    fn new(g: &[f32]) -> Self {
        let root = (g.len() as f64).sqrt();
        let gmax = g
            .iter()
            .fold(0.0f64, |m, v| m.max((*v as f64 * root).abs()));
        let frac = frac_bits(gmax, 1.0);
        let k = 2f64.powi(frac as i32) * root;
        let gain = g
            .iter()
            .map(|&v| numerics::sat16((v as f64 * k).round() as i64))
            .collect();
        QNorm { gain, frac }
    }
}

/// One transformer block, quantized.
#[derive(Clone, Debug, PartialEq)]
pub struct QLayer {
    /// RMSNorm before attention.
    pub att_norm: QNorm,
    /// Query projection `[dim][dim]`.
    pub wq: QLinear,
    /// Key projection `[kv_dim][dim]`.
    pub wk: QLinear,
    /// Value projection `[kv_dim][dim]`.
    pub wv: QLinear,
    /// Output projection `[dim][dim]`.
    pub wo: QLinear,
    /// RMSNorm before the feed-forward block.
    pub ffn_norm: QNorm,
    /// Gate projection `[hidden][dim]`.
    pub w1: QLinear,
    /// Down projection `[dim][hidden]`.
    pub w2: QLinear,
    /// Up projection `[hidden][dim]`.
    pub w3: QLinear,
    /// Takes `q·k − max` (formats `q + k`) to log2 units in Q.10, with the
    /// `1/sqrt(head_size)` scaling folded in.
    pub score_mult: u16,
    /// Shift of `score_mult`.
    pub score_shift: u32,
}

/// The integer model: everything the chip hard-wires.
#[derive(Clone, Debug)]
pub struct QuantizedModel {
    /// Shapes.
    pub config: Config,
    /// The settings it was made with.
    pub settings: QuantSettings,
    /// Activation formats.
    pub formats: Formats,
    /// `[vocab][dim]`; doubles as the classifier when `classifier` is `None`.
    pub token_embedding: QMatrix,
    /// Embedding row → residual format.
    pub embed_requant: Requant,
    /// Transformer blocks.
    pub layers: Vec<QLayer>,
    /// Final RMSNorm.
    pub final_norm: QNorm,
    /// An unshared classifier.
    pub classifier: Option<QMatrix>,
    /// Classifier rows → logits format.
    pub classifier_requant: Requant,
    /// `round(1e-5 · dim · 2^(2·F_x))`: RMSNorm's epsilon in sum-of-squares units.
    pub rms_eps: u64,
    /// RoPE phase step per pair of a head (u32 turn fractions).
    pub rope_steps: Vec<u32>,
    /// Sampling: `log2(e) · 2^(2 − F_logits)` as a multiplier of
    /// `(logit − max) · inv_temp` (inv_temp in Q8.8), into Q.10 log2 units.
    pub temp_mult: u16,
    /// Shift of `temp_mult`.
    pub temp_shift: u32,
    /// Special-function tables.
    pub tables: Tables,
}

/// The largest number of fractional bits (0..=24) that keeps `headroom × max` inside
/// int16.
fn frac_bits(max: f64, headroom: f64) -> u32 {
    if max <= 0.0 || !max.is_finite() {
        return 15;
    }
    let f = (32767.0 / (headroom * max)).log2().floor();
    f.clamp(0.0, 24.0) as u32
}

/// What calibration measures on the float reference's own stories.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// Largest magnitude of every activation.
    pub ranges: Ranges,
    /// Second moments of every matrix input.
    pub moments: Moments,
}

/// Runs the float reference on its own stories and records activation ranges and the
/// moments of every matrix input.
pub fn calibrate(
    checkpoint: &Checkpoint,
    tokenizer: &Tokenizer,
    settings: &QuantSettings,
) -> Result<Calibration> {
    let c = checkpoint.config();
    let mut ranges: Option<Ranges> = None;
    let mut moments = Moments::new(c.n_layers, c.dim, c.hidden_dim);
    let steps = settings.calibration_steps as usize;
    for story in 0..settings.calibration_stories.max(1) {
        let params = SamplingParams {
            temperature: 1.0,
            topp: 0.9,
            seed: 1001 + story as u64,
        };
        let mut decoder = ReferenceDecoder::new(checkpoint, params);
        decoder.model.record_ranges();
        decoder.model.record_moments();
        generate(&mut decoder, tokenizer, "", steps, &mut |_| {})?;
        let r = decoder.model.ranges().cloned().unwrap_or_default();
        if let Some(m) = decoder.model.moments() {
            moments.merge(m);
        }
        ranges = Some(match ranges {
            None => r,
            Some(acc) => merge_ranges(acc, &r),
        });
    }
    Ok(Calibration {
        ranges: ranges.unwrap_or_default(),
        moments,
    })
}

fn merge_ranges(mut a: Ranges, b: &Ranges) -> Ranges {
    let m = |x: &mut Vec<f32>, y: &Vec<f32>| {
        for (p, q) in x.iter_mut().zip(y) {
            *p = p.max(*q);
        }
    };
    a.x = a.x.max(b.x);
    a.xn_final = a.xn_final.max(b.xn_final);
    a.logits = a.logits.max(b.logits);
    m(&mut a.xn_att, &b.xn_att);
    m(&mut a.q, &b.q);
    m(&mut a.k, &b.k);
    m(&mut a.v, &b.v);
    m(&mut a.score, &b.score);
    m(&mut a.att_out, &b.att_out);
    m(&mut a.xn_ffn, &b.xn_ffn);
    m(&mut a.h1, &b.h1);
    m(&mut a.h3, &b.h3);
    m(&mut a.hb, &b.hb);
    a
}

impl QuantizedModel {
    /// Calibrates and quantizes a checkpoint.
    pub fn build(
        checkpoint: &Checkpoint,
        tokenizer: &Tokenizer,
        settings: &QuantSettings,
    ) -> Result<Self> {
        settings.check_format().map_err(Error::InvalidArgument)?;
        if !(settings.headroom >= 1.0 && settings.headroom.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "headroom must be at least 1, not {}",
                settings.headroom
            )));
        }
        let calibration = calibrate(checkpoint, tokenizer, settings)?;
        Self::from_calibration(checkpoint, settings, &calibration)
    }

    /// Quantizes with a calibration measured elsewhere.
    pub fn from_calibration(
        checkpoint: &Checkpoint,
        settings: &QuantSettings,
        calibration: &Calibration,
    ) -> Result<Self> {
        Self::with_formats(checkpoint, settings, calibration, &|id| {
            WeightFormat::for_unit(settings, id.kind.unit())
        })
    }

    /// Quantizes each matrix in the format `format_of` chooses for it (the settings'
    /// own format is recorded, and is what a chip built from the model stores): how
    /// `etch accuracy --per-matrix` measures what each matrix loses.
    pub fn with_formats(
        checkpoint: &Checkpoint,
        settings: &QuantSettings,
        calibration: &Calibration,
        format_of: &dyn Fn(MatrixId) -> WeightFormat,
    ) -> Result<Self> {
        settings.check_format().map_err(Error::InvalidArgument)?;
        let ranges = &calibration.ranges;
        let moments = &calibration.moments;
        let compensate = settings.rounding == Rounding::ErrorCompensating;
        let factor = |g: &gptq::Gram| {
            if compensate {
                gptq::inverse_factor(g)
            } else {
                None
            }
        };
        let c = *checkpoint.config();
        let w = checkpoint.weights();
        let fb = |m: f32| frac_bits(m as f64, settings.headroom);
        let formats = Formats {
            x: fb(ranges.x),
            xn_final: fb(ranges.xn_final),
            logits: fb(ranges.logits),
            layers: (0..c.n_layers)
                .map(|l| LayerFormats {
                    xn_att: fb(ranges.xn_att[l]),
                    q: fb(ranges.q[l]),
                    k: fb(ranges.k[l]),
                    v: fb(ranges.v[l]),
                    att: fb(ranges.att_out[l]),
                    xn_ffn: fb(ranges.xn_ffn[l]),
                    h1: fb(ranges.h1[l]),
                    h3: fb(ranges.h3[l]),
                    hb: fb(ranges.hb[l]),
                })
                .collect(),
        };
        let (d, h, kv) = (c.dim, c.hidden_dim, c.kv_dim());
        let hs = c.head_size() as f64;
        let mut layers = Vec::with_capacity(c.n_layers);
        for (l, f) in formats.layers.iter().enumerate() {
            let sq = |t: &[f32], n: usize| -> Vec<f32> { t[l * n..(l + 1) * n].to_vec() };
            let score_factor =
                std::f64::consts::LOG2_E / hs.sqrt() * 2f64.powi(10 - (f.q + f.k) as i32);
            let (score_mult, score_shift) = fixed_multiplier(score_factor, "attention scores")?;
            let f_att = factor(&moments.xn_att[l]);
            let f_ao = factor(&moments.att_out[l]);
            let f_ffn = factor(&moments.xn_ffn[l]);
            let f_hb = factor(&moments.hb[l]);
            let fmt = |kind| {
                format_of(MatrixId {
                    kind,
                    layer: Some(l),
                })
            };
            layers.push(QLayer {
                att_norm: QNorm::new(&sq(w.rms_att, d)),
                wq: QLinear::new(
                    &sq(w.wq, d * d),
                    (d, d),
                    fmt(MatrixKind::Wq),
                    (f.xn_att, f.q),
                    f_att.as_deref(),
                )?,
                wk: QLinear::new(
                    &sq(w.wk, kv * d),
                    (kv, d),
                    fmt(MatrixKind::Wk),
                    (f.xn_att, f.k),
                    f_att.as_deref(),
                )?,
                wv: QLinear::new(
                    &sq(w.wv, kv * d),
                    (kv, d),
                    fmt(MatrixKind::Wv),
                    (f.xn_att, f.v),
                    f_att.as_deref(),
                )?,
                wo: QLinear::new(
                    &sq(w.wo, d * d),
                    (d, d),
                    fmt(MatrixKind::Wo),
                    (f.att, formats.x),
                    f_ao.as_deref(),
                )?,
                ffn_norm: QNorm::new(&sq(w.rms_ffn, d)),
                w1: QLinear::new(
                    &sq(w.w1, h * d),
                    (h, d),
                    fmt(MatrixKind::W1),
                    (f.xn_ffn, f.h1),
                    f_ffn.as_deref(),
                )?,
                w2: QLinear::new(
                    &sq(w.w2, d * h),
                    (d, h),
                    fmt(MatrixKind::W2),
                    (f.hb, formats.x),
                    f_hb.as_deref(),
                )?,
                w3: QLinear::new(
                    &sq(w.w3, h * d),
                    (h, d),
                    fmt(MatrixKind::W3),
                    (f.xn_ffn, f.h3),
                    f_ffn.as_deref(),
                )?,
                score_mult,
                score_shift,
            });
        }
        // The classifier's rounding error matters through its input, the final norm's
        // output; a lookup-only embedding's straight into the residual stream.
        let f_cls = factor(&moments.xn_final);
        let vocab = c.vocab_size;
        let emb_format = format_of(MatrixId {
            kind: MatrixKind::Embedding,
            layer: None,
        });
        let emb_hinv = if c.shared_classifier {
            f_cls.as_deref()
        } else {
            None
        };
        let token_embedding = QMatrix::quantize_with(
            w.token_embedding,
            vocab,
            d,
            emb_format.bits,
            emb_format.group,
            emb_hinv,
        );
        let embed_requant = Requant::for_factors(
            &row_factors(&token_embedding.scales, 0, formats.x),
            "embedding",
        )?;
        let classifier = (!c.shared_classifier).then(|| {
            let f = format_of(MatrixId {
                kind: MatrixKind::Classifier,
                layer: None,
            });
            QMatrix::quantize_with(w.wcls, vocab, d, f.bits, f.group, f_cls.as_deref())
        });
        let cls_scales = &classifier.as_ref().unwrap_or(&token_embedding).scales;
        let classifier_requant = Requant::for_factors(
            &row_factors(cls_scales, formats.xn_final, formats.logits),
            "classifier",
        )?;
        let temp_factor = std::f64::consts::LOG2_E * 2f64.powi(2 - formats.logits as i32);
        let (temp_mult, temp_shift) = fixed_multiplier(temp_factor, "temperature")?;
        let rms_eps = (1e-5 * d as f64 * 2f64.powi(2 * formats.x as i32)).round() as u64;
        let model = QuantizedModel {
            config: c,
            settings: settings.clone(),
            formats,
            token_embedding,
            embed_requant,
            layers,
            final_norm: QNorm::new(w.rms_final),
            classifier,
            classifier_requant,
            rms_eps,
            rope_steps: numerics::rope_phase_steps(c.head_size()),
            temp_mult,
            temp_shift,
            tables: Tables::generate(),
        };
        model.verify()?;
        Ok(model)
    }

    /// The classifier matrix (the embedding when shared).
    pub fn classifier(&self) -> &QMatrix {
        self.classifier.as_ref().unwrap_or(&self.token_embedding)
    }

    /// Checks the invariants the golden model and the hardware rely on: every
    /// requantization shift is at least 1 and the accumulators cannot overflow.
    fn verify(&self) -> Result<()> {
        let f = &self.formats;
        let norm_shift_ok = |norm: &QNorm, out: u32| {
            // The smallest rsqrt shift is 16 (a sum of squares below 4).
            (numerics::MANTISSA_FRAC + norm.frac) as i64 - out as i64 >= 1
        };
        for (l, (layer, lf)) in self.layers.iter().zip(&f.layers).enumerate() {
            if !norm_shift_ok(&layer.att_norm, lf.xn_att)
                || !norm_shift_ok(&layer.ffn_norm, lf.xn_ffn)
            {
                return Err(Error::Quantization(format!(
                    "layer {l}: RMSNorm output format leaves no rounding shift"
                )));
            }
            if 15 + lf.h1 + lf.h3 <= lf.hb || 16 + 15 + lf.v <= lf.att {
                return Err(Error::Quantization(format!(
                    "layer {l}: activation formats leave no rounding shift"
                )));
            }
        }
        if !norm_shift_ok(&self.final_norm, f.xn_final) {
            return Err(Error::Quantization(
                "final RMSNorm output format leaves no rounding shift".into(),
            ));
        }
        // Accumulators: |w| ≤ 128, |a| ≤ 2^15, so a row of n products needs
        // 7 + 15 + log2(n) + 1 bits; the chip's accumulators are 48 bits wide.
        let widest = self.config.dim.max(self.config.hidden_dim) as f64;
        if 23.0 + widest.log2().ceil() > 48.0 {
            return Err(Error::Quantization(format!(
                "rows of {widest} products can overflow the 48-bit accumulators"
            )));
        }
        Ok(())
    }
}
