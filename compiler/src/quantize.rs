//! The quantizer: float checkpoint → the integer model the chip hard-wires.
//!
//! * Weights: symmetric per-output-row quantization to `weight_bits` (8 by default):
//!   `scale[i] = max_j |W[i][j]| / qmax`, `Wq[i][j] = round(W[i][j] / scale[i])`.
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
use crate::numerics::{self, Tables};
use crate::reference::Ranges;
use crate::sampler::SamplingParams;
use crate::ReferenceDecoder;
use etch_contract::generate;
use etch_contract::Tokenizer;
pub use etch_contract::{Formats, LayerFormats, QuantSettings};

/// A quantized weight matrix `[rows][cols]` with one scale per row.
#[derive(Clone, Debug, PartialEq)]
pub struct QMatrix {
    /// Output rows.
    pub rows: usize,
    /// Input columns.
    pub cols: usize,
    /// `rows × cols` quantized weights.
    pub weights: Vec<i8>,
    /// Float scale of each row (`W ≈ Wq · scale`).
    pub scales: Vec<f32>,
}

impl QMatrix {
    /// Quantizes a row-major float matrix to `bits` bits per weight.
    pub fn quantize(w: &[f32], rows: usize, cols: usize, bits: u32) -> Self {
        let qmax = ((1i32 << (bits - 1)) - 1) as f32;
        let mut weights = Vec::with_capacity(rows * cols);
        let mut scales = Vec::with_capacity(rows);
        for row in w.chunks_exact(cols).take(rows) {
            let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = amax / qmax;
            scales.push(scale);
            for &v in row {
                let q = if scale > 0.0 {
                    (v / scale).round()
                } else {
                    0.0
                };
                weights.push(q.clamp(-qmax, qmax) as i8);
            }
        }
        QMatrix {
            rows,
            cols,
            weights,
            scales,
        }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[i8] {
        &self.weights[i * self.cols..(i + 1) * self.cols]
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
    fn new(w: &[f32], rows: usize, cols: usize, bits: u32, f_in: u32, f_out: u32) -> Result<Self> {
        let matrix = QMatrix::quantize(w, rows, cols, bits);
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

/// Runs the float reference on its own stories and records activation ranges.
pub fn calibrate(
    checkpoint: &Checkpoint,
    tokenizer: &Tokenizer,
    settings: &QuantSettings,
) -> Result<Ranges> {
    let mut ranges: Option<Ranges> = None;
    let steps = settings.calibration_steps as usize;
    for story in 0..settings.calibration_stories.max(1) {
        let params = SamplingParams {
            temperature: 1.0,
            topp: 0.9,
            seed: 1001 + story as u64,
        };
        let mut decoder = ReferenceDecoder::new(checkpoint, params);
        decoder.model.record_ranges();
        generate(&mut decoder, tokenizer, "", steps, &mut |_| {})?;
        let r = decoder.model.ranges().cloned().unwrap_or_default();
        ranges = Some(match ranges {
            None => r,
            Some(acc) => merge_ranges(acc, &r),
        });
    }
    Ok(ranges.unwrap_or_default())
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
        if !matches!(settings.weight_bits, 4 | 8) {
            return Err(Error::InvalidArgument(format!(
                "weight_bits must be 4 or 8, not {}",
                settings.weight_bits
            )));
        }
        if !(settings.headroom >= 1.0 && settings.headroom.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "headroom must be at least 1, not {}",
                settings.headroom
            )));
        }
        let ranges = calibrate(checkpoint, tokenizer, settings)?;
        Self::from_ranges(checkpoint, settings, &ranges)
    }

    /// Quantizes with activation ranges measured elsewhere.
    pub fn from_ranges(
        checkpoint: &Checkpoint,
        settings: &QuantSettings,
        ranges: &Ranges,
    ) -> Result<Self> {
        let c = *checkpoint.config();
        let w = checkpoint.weights();
        let bits = settings.weight_bits;
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
            layers.push(QLayer {
                att_norm: QNorm::new(&sq(w.rms_att, d)),
                wq: QLinear::new(&sq(w.wq, d * d), d, d, bits, f.xn_att, f.q)?,
                wk: QLinear::new(&sq(w.wk, kv * d), kv, d, bits, f.xn_att, f.k)?,
                wv: QLinear::new(&sq(w.wv, kv * d), kv, d, bits, f.xn_att, f.v)?,
                wo: QLinear::new(&sq(w.wo, d * d), d, d, bits, f.att, formats.x)?,
                ffn_norm: QNorm::new(&sq(w.rms_ffn, d)),
                w1: QLinear::new(&sq(w.w1, h * d), h, d, bits, f.xn_ffn, f.h1)?,
                w2: QLinear::new(&sq(w.w2, d * h), d, h, bits, f.hb, formats.x)?,
                w3: QLinear::new(&sq(w.w3, h * d), h, d, bits, f.xn_ffn, f.h3)?,
                score_mult,
                score_shift,
            });
        }
        let token_embedding = QMatrix::quantize(w.token_embedding, c.vocab_size, d, bits);
        let embed_requant = Requant::for_factors(
            &row_factors(&token_embedding.scales, 0, formats.x),
            "embedding",
        )?;
        let classifier =
            (!c.shared_classifier).then(|| QMatrix::quantize(w.wcls, c.vocab_size, d, bits));
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
        // Accumulators: |w| ≤ 127, |a| ≤ 2^15, so a row of n products needs
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
