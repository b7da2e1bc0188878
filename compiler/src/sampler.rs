//! `run.c`'s sampler: argmax, temperature, multinomial and top-p (nucleus) sampling,
//! driven by its xorshift64* generator.

use crate::reference::softmax;
pub use etch_contract::SamplingParams;

/// `run.c`'s random number generator (xorshift64*), seeded with the `-s` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XorShiftStar(pub u64);

impl XorShiftStar {
    /// `random_u32`.
    pub fn next_u32(&mut self) -> u32 {
        let s = &mut self.0;
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// `random_f32`: a float in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / 16_777_216.0f32
    }
}

/// `run.c`'s `Sampler`.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: XorShiftStar,
    probindex: Vec<(f32, u32)>,
}

impl Sampler {
    /// A sampler with its RNG seeded from `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        Sampler {
            params,
            rng: XorShiftStar(params.seed),
            probindex: Vec::new(),
        }
    }

    /// `run.c`'s `sample(sampler, logits)`; `logits` is overwritten with
    /// probabilities when the temperature is not zero.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        if self.params.temperature == 0.0 {
            return argmax(logits);
        }
        for l in logits.iter_mut() {
            *l /= self.params.temperature;
        }
        softmax(logits);
        let coin = self.rng.next_f32();
        let topp = self.params.topp;
        if topp <= 0.0 || topp >= 1.0 {
            sample_mult(logits, coin)
        } else {
            self.sample_topp(logits, topp, coin)
        }
    }

    /// `sample_topp`: sort the tokens above the cutoff by falling probability (glibc's
    /// `qsort` is a stable merge sort here), keep the shortest prefix whose mass
    /// exceeds `topp`, and sample within it.
    fn sample_topp(&mut self, probabilities: &[f32], topp: f32, coin: f32) -> u32 {
        let n = probabilities.len();
        let cutoff = (1.0f32 - topp) / (n - 1) as f32;
        self.probindex.clear();
        for (i, &p) in probabilities.iter().enumerate() {
            if p >= cutoff {
                self.probindex.push((p, i as u32));
            }
        }
        if self.probindex.is_empty() {
            // run.c reads probindex[-1] here (a near-uniform distribution with a tiny
            // top-p); the most likely token is the sane answer.
            return argmax(probabilities);
        }
        self.probindex
            .sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        let mut cumulative_prob = 0.0f32;
        let mut last_idx = self.probindex.len() - 1;
        for (i, &(p, _)) in self.probindex.iter().enumerate() {
            cumulative_prob += p;
            if cumulative_prob > topp {
                last_idx = i;
                break;
            }
        }
        let r = coin * cumulative_prob;
        let mut cdf = 0.0f32;
        for &(p, index) in &self.probindex[..=last_idx] {
            cdf += p;
            if r < cdf {
                return index;
            }
        }
        self.probindex[last_idx].1
    }
}

/// `sample_argmax`: the first index of the largest value.
pub fn argmax(values: &[f32]) -> u32 {
    let mut max_i = 0;
    let mut max_p = values[0];
    for (i, &p) in values.iter().enumerate().skip(1) {
        if p > max_p {
            max_i = i;
            max_p = p;
        }
    }
    max_i as u32
}

/// `sample_mult`: the first index where the running sum exceeds `coin`.
fn sample_mult(probabilities: &[f32], coin: f32) -> u32 {
    let mut cdf = 0.0f32;
    for (i, &p) in probabilities.iter().enumerate() {
        cdf += p;
        if coin < cdf {
            return i as u32;
        }
    }
    (probabilities.len() - 1) as u32
}
