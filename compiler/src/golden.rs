//! The golden model: the chip's arithmetic, bit for bit.
//!
//! It reads like `run.c`'s `forward`, but every value is an integer and every step is
//! one of the operations of [`crate::numerics`]. The chip's RTL must produce the same
//! logits (int16) at every step and the same sampled tokens; `docs/numerics.md`
//! specifies the same computation in prose.

use crate::numerics::{
    requant, rope_phase, round_shift, sat16, shift_signed, SIGMOID_IN_FRAC, SIGMOID_OUT_FRAC,
    TRIG_FRAC,
};
use crate::quantize::{QLinear, QNorm, QuantizedModel};
pub use etch_contract::ChipSampling;
use etch_contract::Decoder;

/// The integer model with its KV cache.
#[derive(Debug)]
pub struct Golden<'m> {
    model: &'m QuantizedModel,
    x: Vec<i16>,
    xn: Vec<i16>,
    q: Vec<i16>,
    att: Vec<i16>,
    h1: Vec<i16>,
    h3: Vec<i16>,
    hb: Vec<i16>,
    y: Vec<i16>,
    logits: Vec<i16>,
    /// `[layer][pos][kv_dim]`
    key_cache: Vec<i16>,
    /// `[layer][pos][kv_dim]`
    value_cache: Vec<i16>,
    scores: Vec<i64>,
    acc: Vec<i64>,
    sin: Vec<i16>,
    cos: Vec<i16>,
}

/// `y = W · a`, each row requantized with its own multiplier.
fn matvec(out: &mut [i16], a: &[i16], lin: &QLinear) {
    let m = &lin.matrix;
    for (i, o) in out.iter_mut().enumerate() {
        let acc: i64 = m
            .row(i)
            .iter()
            .zip(a)
            .map(|(&w, &x)| w as i64 * x as i64)
            .sum();
        *o = requant(acc, lin.requant.mult[i] as i64, lin.requant.shift[i] as u32);
    }
}

/// RMSNorm: `out[j] = requant(x[j] · G[j], R, shift)` where `R · 2^-shift` is the
/// rsqrt unit's `1/sqrt(Σx² + ε)` (with the gain's and formats' shifts added).
fn rmsnorm(out: &mut [i16], x: &[i16], norm: &QNorm, model: &QuantizedModel, f_out: u32) {
    let ss: u64 = x.iter().map(|&v| (v as i64 * v as i64) as u64).sum();
    let (r, sh) = model.tables.rsqrt(ss + model.rms_eps);
    let shift = sh + norm.frac - f_out;
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(&norm.gain) {
        *o = requant(v as i64 * g as i64, r as i64, shift);
    }
}

/// Rotates the pair `(v[0], v[1])` by the angle whose sine and cosine are given (Q14).
fn rotate(v0: i16, v1: i16, sin: i16, cos: i16) -> (i16, i16) {
    let (v0, v1, s, c) = (v0 as i64, v1 as i64, sin as i64, cos as i64);
    (
        requant(v0 * c - v1 * s, 1, TRIG_FRAC),
        requant(v0 * s + v1 * c, 1, TRIG_FRAC),
    )
}

impl<'m> Golden<'m> {
    /// The model with an empty KV cache.
    pub fn new(model: &'m QuantizedModel) -> Self {
        let c = model.config;
        let cache = c.n_layers * c.seq_len * c.kv_dim();
        Golden {
            model,
            x: vec![0; c.dim],
            xn: vec![0; c.dim],
            q: vec![0; c.dim],
            att: vec![0; c.dim],
            h1: vec![0; c.hidden_dim],
            h3: vec![0; c.hidden_dim],
            hb: vec![0; c.hidden_dim],
            y: vec![0; c.dim],
            logits: vec![0; c.vocab_size],
            key_cache: vec![0; cache],
            value_cache: vec![0; cache],
            scores: vec![0; c.seq_len],
            acc: vec![0; c.head_size()],
            sin: vec![0; c.head_size() / 2],
            cos: vec![0; c.head_size() / 2],
        }
    }

    /// The quantized model it runs.
    pub fn model(&self) -> &'m QuantizedModel {
        self.model
    }

    /// The key row and the value row stored at `(layer, pos)` (int16, `kv_dim` each),
    /// as a saved context image holds them. The caller keeps `layer < n_layers`,
    /// `pos < seq_len`.
    pub fn kv_rows(&self, layer: usize, pos: usize) -> (&[i16], &[i16]) {
        let c = self.model.config;
        let at = (layer * c.seq_len + pos) * c.kv_dim();
        (
            &self.key_cache[at..at + c.kv_dim()],
            &self.value_cache[at..at + c.kv_dim()],
        )
    }

    /// One forward pass: the int16 logits (format `formats.logits`) for the token
    /// after `token` at `pos`. The caller keeps `token < vocab_size`, `pos < seq_len`.
    pub fn forward(&mut self, token: u32, pos: usize) -> &[i16] {
        let m = self.model;
        let c = m.config;
        let f = &m.formats;
        let (dim, hs, kv_dim, kv_mul) = (c.dim, c.head_size(), c.kv_dim(), c.kv_mul());
        let token = token as usize;

        // Embedding: the token's int8 row, requantized into the residual format.
        let emb = m.token_embedding.row(token);
        let (mult, shift) = (
            m.embed_requant.mult[token] as i64,
            m.embed_requant.shift[token] as u32,
        );
        for (x, &e) in self.x.iter_mut().zip(emb) {
            *x = requant(e as i64, mult, shift);
        }

        // RoPE angles of this position, one per pair of a head.
        for (k, &step) in m.rope_steps.iter().enumerate() {
            let (s, co) = m.tables.sincos(rope_phase(step, pos));
            self.sin[k] = s;
            self.cos[k] = co;
        }

        for (l, layer) in m.layers.iter().enumerate() {
            let lf = &f.layers[l];
            rmsnorm(&mut self.xn, &self.x, &layer.att_norm, m, lf.xn_att);

            // q, k, v; k and v go into the cache at this position.
            let loff = l * c.seq_len * kv_dim;
            let at = loff + pos * kv_dim;
            matvec(&mut self.q, &self.xn, &layer.wq);
            matvec(&mut self.key_cache[at..at + kv_dim], &self.xn, &layer.wk);
            matvec(&mut self.value_cache[at..at + kv_dim], &self.xn, &layer.wv);

            // RoPE on q and k.
            for i in (0..dim).step_by(2) {
                let k = (i % hs) / 2;
                let (s, co) = (self.sin[k], self.cos[k]);
                (self.q[i], self.q[i + 1]) = rotate(self.q[i], self.q[i + 1], s, co);
                if i < kv_dim {
                    let key = &mut self.key_cache[at..at + kv_dim];
                    (key[i], key[i + 1]) = rotate(key[i], key[i + 1], s, co);
                }
            }

            // Attention: raw scores, their maximum, exp2 weights relative to it,
            // weighted sum of values, one reciprocal of the weight sum per head.
            for h in 0..c.n_heads {
                let q = &self.q[h * hs..(h + 1) * hs];
                let kvh = (h / kv_mul) * hs;
                let scores = &mut self.scores[..=pos];
                for (t, score) in scores.iter_mut().enumerate() {
                    let k = &self.key_cache[loff + t * kv_dim + kvh..][..hs];
                    *score = q.iter().zip(k).map(|(&a, &b)| a as i64 * b as i64).sum();
                }
                let max = scores.iter().copied().max().unwrap_or(0);
                let mut sum: u64 = 0;
                let acc = &mut self.acc;
                acc.fill(0);
                for (t, &score) in scores.iter().enumerate() {
                    let z = round_shift((score - max) * layer.score_mult as i64, layer.score_shift);
                    let p = m.tables.exp2(z);
                    sum += p as u64;
                    let v = &self.value_cache[loff + t * kv_dim + kvh..][..hs];
                    for (a, &vi) in acc.iter_mut().zip(v) {
                        *a += p as i64 * vi as i64;
                    }
                }
                let (r, sh) = m.tables.recip(sum);
                let shift = sh + lf.v - lf.att;
                for (o, &a) in self.att[h * hs..(h + 1) * hs].iter_mut().zip(acc.iter()) {
                    *o = requant(a, r as i64, shift);
                }
            }

            // Output projection and residual.
            matvec(&mut self.y, &self.att, &layer.wo);
            for (x, &y) in self.x.iter_mut().zip(&self.y) {
                *x = sat16(*x as i64 + y as i64);
            }

            // Feed-forward: w2(silu(w1 xn) * w3 xn).
            rmsnorm(&mut self.xn, &self.x, &layer.ffn_norm, m, lf.xn_ffn);
            matvec(&mut self.h1, &self.xn, &layer.w1);
            matvec(&mut self.h3, &self.xn, &layer.w3);
            let sig_shift = lf.h1 as i32 - SIGMOID_IN_FRAC as i32;
            let hb_shift = SIGMOID_OUT_FRAC + lf.h1 + lf.h3 - lf.hb;
            for ((o, &a), &b) in self.hb.iter_mut().zip(&self.h1).zip(&self.h3) {
                let sigma = m.tables.sigmoid(shift_signed(a as i64, sig_shift));
                *o = requant(a as i64 * sigma as i64 * b as i64, 1, hb_shift);
            }
            matvec(&mut self.y, &self.hb, &layer.w2);
            for (x, &y) in self.x.iter_mut().zip(&self.y) {
                *x = sat16(*x as i64 + y as i64);
            }
        }

        // Final RMSNorm and classifier.
        rmsnorm(&mut self.xn, &self.x, &m.final_norm, m, f.xn_final);
        let cls = m.classifier();
        for (i, o) in self.logits.iter_mut().enumerate() {
            let acc: i64 = cls
                .row(i)
                .iter()
                .zip(&self.xn)
                .map(|(&w, &x)| w as i64 * x as i64)
                .sum();
            *o = requant(
                acc,
                m.classifier_requant.mult[i] as i64,
                m.classifier_requant.shift[i] as u32,
            );
        }
        &self.logits
    }
}

/// The chip's sampler: argmax, or exp2 weights at a temperature, an integer nucleus
/// found by binary search on a probability threshold, and an index-order draw with a
/// xorshift64 generator.
#[derive(Clone, Debug)]
pub struct ChipSampler {
    settings: ChipSampling,
    state: u64,
    p: Vec<u32>,
}

impl ChipSampler {
    /// A sampler seeded from `settings.seed`.
    pub fn new(settings: ChipSampling) -> Self {
        let state = if settings.seed == 0 {
            ChipSampling::ZERO_SEED
        } else {
            settings.seed
        };
        ChipSampler {
            settings,
            state,
            p: Vec::new(),
        }
    }

    /// xorshift64 (shifts 13, 7, 17); the chip's RNG.
    pub fn next_random(&mut self) -> u64 {
        let mut s = self.state;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.state = s;
        s
    }

    /// Picks the next token from int16 logits.
    pub fn sample(&mut self, logits: &[i16], model: &QuantizedModel) -> u32 {
        if self.settings.inv_temp == 0 {
            return argmax_i16(logits);
        }
        let max = logits.iter().copied().max().unwrap_or(0) as i64;
        let k = self.settings.inv_temp as i64 * model.temp_mult as i64;
        self.p.clear();
        self.p.extend(logits.iter().map(|&l| {
            model
                .tables
                .exp2(round_shift((l as i64 - max) * k, model.temp_shift))
        }));
        let total: u64 = self.p.iter().map(|&p| p as u64).sum();
        let mass_at = |tau: u32| -> u64 {
            self.p
                .iter()
                .filter(|&&p| p >= tau)
                .map(|&p| p as u64)
                .sum()
        };
        // The nucleus: the largest threshold whose mass still exceeds top-p.
        let mut tau = 0u32;
        if self.settings.topp != 0 {
            let target = (total * self.settings.topp as u64) >> 16;
            for bit in (0..16).rev() {
                let candidate = tau | (1 << bit);
                if mass_at(candidate) > target {
                    tau = candidate;
                }
            }
        }
        let mass = mass_at(tau);
        let coin = self.next_random() >> 40;
        let target = (coin * mass) >> 24;
        let mut cdf = 0u64;
        let mut last = 0;
        for (i, &p) in self.p.iter().enumerate() {
            if p >= tau && p > 0 {
                cdf += p as u64;
                last = i;
                if target < cdf {
                    return i as u32;
                }
            }
        }
        last as u32
    }
}

/// The chip's log-probability of `target` under the logits at temperature 1, in Q10
/// log2 units (`ln p = lp / 1024 · ln 2`): `z_target − (log2(Σ exp2(z)) − 15)` with
/// `z = (logit − max) · 256 · temp_mult >> temp_shift` as in sampling, saturated to
/// 16 bits as the chip's requantizer gives it: a token less likely than about 2⁻³²
/// gets `z = −32768` (its weight in the sum is 0 either way).
pub fn logprob(logits: &[i16], model: &QuantizedModel, target: u32) -> i32 {
    let max = logits.iter().copied().max().unwrap_or(0) as i64;
    let k = 256 * model.temp_mult as i64;
    let z = |l: i16| sat16(round_shift((l as i64 - max) * k, model.temp_shift)) as i64;
    let total: u64 = logits.iter().map(|&l| model.tables.exp2(z(l)) as u64).sum();
    let zt = logits.get(target as usize).map_or(i64::MIN / 4, |&l| z(l));
    (zt - (model.tables.log2(total) - (15 << 10))) as i32
}

/// The first index of the largest logit.
pub fn argmax_i16(logits: &[i16]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The golden model with the chip's sampler, as a [`Decoder`].
pub struct GoldenDecoder<'m> {
    golden: Golden<'m>,
    sampler: ChipSampler,
}

impl<'m> GoldenDecoder<'m> {
    /// The golden model of `model` sampling with `sampling`.
    pub fn new(model: &'m QuantizedModel, sampling: ChipSampling) -> Self {
        GoldenDecoder {
            golden: Golden::new(model),
            sampler: ChipSampler::new(sampling),
        }
    }

    /// The logits of the last step.
    pub fn logits(&self) -> &[i16] {
        &self.golden.logits
    }
}

impl Decoder for GoldenDecoder<'_> {
    fn step(&mut self, token: u32, pos: usize, sample: bool) -> etch_contract::Result<Option<u32>> {
        let c = self.golden.model.config;
        if token as usize >= c.vocab_size {
            return Err(etch_contract::Error::TokenOutOfRange {
                token,
                vocab_size: c.vocab_size,
            });
        }
        if pos >= c.seq_len {
            return Err(etch_contract::Error::PromptTooLong {
                tokens: pos + 1,
                seq_len: c.seq_len,
            });
        }
        let model = self.golden.model;
        let logits = self.golden.forward(token, pos);
        Ok(sample.then(|| self.sampler.sample(logits, model)))
    }

    fn seq_len(&self) -> usize {
        self.golden.model.config.seq_len
    }
}
