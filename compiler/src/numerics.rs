//! The chip's integer arithmetic: rounding, saturation and the special-function tables.
//!
//! Everything the golden model computes goes through these functions, and the hardware
//! implements exactly them (`docs/numerics.md` is the same specification in prose).
//! Tables are generated here once, in `f64`, rounded to integers, and become ROM
//! contents; a test pins their SHA-256 so that a different libm cannot change them
//! silently.
//!
//! | unit    | input                         | output                        | table            |
//! |---------|-------------------------------|-------------------------------|------------------|
//! | rsqrt   | `S` (u64, > 0)                | `R` (u16), shift `16 + e/2`   | 1536 × u16       |
//! | recip   | `P` (u64, > 0)                | `R` (u16), shift `16 + b`     | 1024 × u16       |
//! | exp2    | `z ≤ 0`, Q.10 log2 units      | `p` in Q15, `0..=32768`       | 1024 × u16       |
//! | sigmoid | `t`, Q.7 (step 1/128)         | `σ` in Q15                    | 2048 × u16       |
//! | sincos  | phase, u32 turn fraction      | `sin`, `cos` in Q14           | 2049 × i16       |
//! | log2    | `P` (u64, > 0)                | `log2 P` in Q10               | 1024 × u16       |

/// Fractional bits of exp2's input (log2 units).
pub const EXP2_IN_FRAC: u32 = 10;
/// Fractional bits of exp2's output: `exp2(0) = 1 << EXP2_OUT_FRAC`.
pub const EXP2_OUT_FRAC: u32 = 15;
/// Fractional bits of the sigmoid unit's input (its step is 1/128).
pub const SIGMOID_IN_FRAC: u32 = 7;
/// Fractional bits of sigmoid values.
pub const SIGMOID_OUT_FRAC: u32 = 15;
/// Fractional bits of sine and cosine values.
pub const TRIG_FRAC: u32 = 14;
/// Scale of rsqrt and recip mantissas (`2^16`).
pub const MANTISSA_FRAC: u32 = 16;

const RSQRT_INDEX_FRAC: u32 = 9; // M in [1, 4) in steps of 1/512
const RSQRT_ENTRIES: usize = 3 << RSQRT_INDEX_FRAC;
const RECIP_INDEX_FRAC: u32 = 10; // M in [1, 2) in steps of 1/1024
const RECIP_ENTRIES: usize = 1 << RECIP_INDEX_FRAC;
const EXP2_ENTRIES: usize = 1 << EXP2_IN_FRAC;
const SIGMOID_ENTRIES: usize = 2048; // [-8, 8) in steps of 1/128
const LOG2_ENTRIES: usize = 1024; // mantissa in [1, 2) in steps of 1/1024
const QUARTER_WAVE: usize = 2048; // a quarter turn in 2048 steps: 8192 per turn
const PHASE_BITS: u32 = 13; // log2(4 * QUARTER_WAVE)

/// `(a + 2^(s-1)) >> s` with an arithmetic shift: division by `2^s` rounding half up
/// (toward +∞). `s = 0` leaves `a` unchanged.
#[inline]
pub fn round_shift(a: i64, s: u32) -> i64 {
    if s == 0 {
        a
    } else {
        (a + (1i64 << (s - 1))) >> s
    }
}

/// [`round_shift`] for a signed shift: a negative `s` shifts left.
#[inline]
pub fn shift_signed(a: i64, s: i32) -> i64 {
    if s >= 0 {
        round_shift(a, s as u32)
    } else {
        a << (-s) as u32
    }
}

/// Clamps to the int16 range.
#[inline]
pub fn sat16(v: i64) -> i16 {
    v.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// The requantizer: `sat16(round_shift(a * m, s))`. Every change of fixed-point
/// format on the chip is one of these.
#[inline]
pub fn requant(a: i64, m: i64, s: u32) -> i16 {
    sat16(round_shift(a * m, s))
}

/// Position of the leading one (`floor(log2 v)`), `v > 0`.
#[inline]
pub fn leading_one(v: u64) -> u32 {
    63 - v.leading_zeros()
}

/// The special-function tables (ROM contents of the chip's SFUs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    /// `rsqrt[i] = round(2^16 / sqrt(1 + (i + 0.5) / 512))`, `i < 1536`.
    pub rsqrt: Vec<u16>,
    /// `recip[i] = round(2^16 / (1 + (i + 0.5) / 1024))`, `i < 1024`.
    pub recip: Vec<u16>,
    /// `exp2[f] = round(2^15 * 2^(-f / 1024))`, `f < 1024`.
    pub exp2: Vec<u16>,
    /// `sigmoid[i] = round(2^15 * σ((i - 1024) / 128))`, `i < 2048`.
    pub sigmoid: Vec<u16>,
    /// `sine[j] = round(2^14 * sin(2π j / 8192))`, `j ≤ 2048` (a quarter wave).
    pub sine: Vec<i16>,
    /// `log2[i] = round(1024 * log2(1 + (i + 0.5) / 1024))`, `i < 1024`.
    pub log2: Vec<u16>,
}

fn round_u16(v: f64) -> u16 {
    v.round().clamp(0.0, u16::MAX as f64) as u16
}

impl Tables {
    /// Generates every table.
    pub fn generate() -> Self {
        let rsqrt = (0..RSQRT_ENTRIES)
            .map(|i| {
                let m = 1.0 + (i as f64 + 0.5) / (1u32 << RSQRT_INDEX_FRAC) as f64;
                round_u16(65536.0 / m.sqrt())
            })
            .collect();
        let recip = (0..RECIP_ENTRIES)
            .map(|i| {
                let m = 1.0 + (i as f64 + 0.5) / (1u32 << RECIP_INDEX_FRAC) as f64;
                round_u16(65536.0 / m)
            })
            .collect();
        let exp2 = (0..EXP2_ENTRIES)
            .map(|f| round_u16(32768.0 * (-(f as f64) / EXP2_ENTRIES as f64).exp2()))
            .collect();
        let sigmoid = (0..SIGMOID_ENTRIES)
            .map(|i| {
                let x = (i as f64 - (SIGMOID_ENTRIES / 2) as f64) / 128.0;
                round_u16(32768.0 / (1.0 + (-x).exp()))
            })
            .collect();
        let sine = (0..=QUARTER_WAVE)
            .map(|j| {
                let angle = std::f64::consts::TAU * j as f64 / (4 * QUARTER_WAVE) as f64;
                (16384.0 * angle.sin()).round() as i16
            })
            .collect();
        let log2 = (0..LOG2_ENTRIES)
            .map(|i| round_u16(1024.0 * (1.0 + (i as f64 + 0.5) / LOG2_ENTRIES as f64).log2()))
            .collect();
        Tables {
            rsqrt,
            recip,
            exp2,
            sigmoid,
            sine,
            log2,
        }
    }

    /// Reciprocal square root: `1/sqrt(s) ≈ R · 2^-shift`, returned as `(R, shift)`.
    ///
    /// `s = M · 2^e` with `e` even and `M ∈ [1, 4)`; `R = rsqrt[(M - 1) · 512]` and
    /// `shift = 16 + e/2`.
    pub fn rsqrt(&self, s: u64) -> (u16, u32) {
        let s = s.max(1);
        let e = leading_one(s) & !1;
        let scaled = if e > RSQRT_INDEX_FRAC {
            s >> (e - RSQRT_INDEX_FRAC)
        } else {
            s << (RSQRT_INDEX_FRAC - e)
        };
        let index = (scaled - (1 << RSQRT_INDEX_FRAC)) as usize;
        (self.rsqrt[index], MANTISSA_FRAC + e / 2)
    }

    /// Reciprocal: `1/p ≈ R · 2^-shift`, returned as `(R, shift)`.
    ///
    /// `p = M · 2^b` with `M ∈ [1, 2)`; `R = recip[(M - 1) · 1024]`, `shift = 16 + b`.
    pub fn recip(&self, p: u64) -> (u16, u32) {
        let p = p.max(1);
        let b = leading_one(p);
        let scaled = if b > RECIP_INDEX_FRAC {
            p >> (b - RECIP_INDEX_FRAC)
        } else {
            p << (RECIP_INDEX_FRAC - b)
        };
        let index = (scaled - (1 << RECIP_INDEX_FRAC)) as usize;
        (self.recip[index], MANTISSA_FRAC + b)
    }

    /// `2^z` for `z ≤ 0` in Q.10, as Q15 (`exp2(0) = 32768`); positive inputs are
    /// treated as 0.
    pub fn exp2(&self, z: i64) -> u32 {
        let u = (-z).max(0) as u64;
        let n = u >> EXP2_IN_FRAC;
        if n > EXP2_OUT_FRAC as u64 {
            return 0;
        }
        let f = (u & (EXP2_ENTRIES as u64 - 1)) as usize;
        round_shift(self.exp2[f] as i64, n as u32) as u32
    }

    /// `log2(p)` in Q10: `p = M · 2^b`, `(b << 10) + log2[(M − 1) · 1024]`.
    pub fn log2(&self, p: u64) -> i64 {
        let p = p.max(1);
        let b = leading_one(p);
        let scaled = if b > 10 { p >> (b - 10) } else { p << (10 - b) };
        ((b as i64) << 10) + self.log2[(scaled - 1024) as usize] as i64
    }

    /// The logistic function of `t / 128` (saturating outside [-8, 8)), as Q15.
    pub fn sigmoid(&self, t: i64) -> u16 {
        let half = (SIGMOID_ENTRIES / 2) as i64;
        let index = (t + half).clamp(0, SIGMOID_ENTRIES as i64 - 1) as usize;
        self.sigmoid[index]
    }

    /// Sine and cosine of a phase (a fraction of a turn, `2^32` = one turn), as Q14:
    /// the phase is rounded to one of 8192 points and the quarter-wave table is read
    /// forward or backward by quadrant.
    pub fn sincos(&self, phase: u32) -> (i16, i16) {
        let k = (phase.wrapping_add(1 << (31 - PHASE_BITS)) >> (32 - PHASE_BITS)) as usize;
        let quadrant = k / QUARTER_WAVE;
        let j = k % QUARTER_WAVE;
        let up = self.sine[j];
        let down = self.sine[QUARTER_WAVE - j];
        match quadrant {
            0 => (up, down),
            1 => (down, -up),
            2 => (-up, -down),
            _ => (-down, up),
        }
    }
}

/// RoPE phase increments: for each pair `k` of a head, the rotation per position as a
/// u32 turn fraction, `round(2^32 / (2π · 10000^(2k / head_size)))`.
pub fn rope_phase_steps(head_size: usize) -> Vec<u32> {
    (0..head_size / 2)
        .map(|k| {
            let freq = 1.0 / 10000f64.powf((2 * k) as f64 / head_size as f64);
            let turns = freq / std::f64::consts::TAU;
            (turns * 4294967296.0).round() as u32
        })
        .collect()
}

/// The rotation phase of pair `k` at position `pos`: `pos · step[k] mod 2^32`.
#[inline]
pub fn rope_phase(step: u32, pos: usize) -> u32 {
    step.wrapping_mul(pos as u32)
}
