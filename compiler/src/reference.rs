//! The float reference: llama2.c `run.c`'s forward pass, operation for operation.
//!
//! Every float operation happens in the order `run.c` performs it (built with
//! `gcc -O3`, no fast-math, so no reassociation and no fused multiply-add), and the
//! transcendental functions are the C library's (`expf`, `powf`, `cosf`, `sinf`,
//! `sqrtf` through Rust's `f32` methods, which call the same libm). The result is the
//! same logits, bit for bit, and so the same tokens.

use crate::checkpoint::{Checkpoint, Config, Weights};
use crate::gptq::Moments;

/// The float model and its run state (KV cache and scratch buffers).
#[derive(Debug)]
pub struct Reference<'a> {
    config: Config,
    w: Weights<'a>,
    x: Vec<f32>,
    xb: Vec<f32>,
    xb2: Vec<f32>,
    hb: Vec<f32>,
    hb2: Vec<f32>,
    q: Vec<f32>,
    att: Vec<f32>,
    logits: Vec<f32>,
    key_cache: Vec<f32>,
    value_cache: Vec<f32>,
    /// Largest magnitude seen per activation kind (for calibration), when enabled.
    ranges: Option<Ranges>,
    /// Second moments of every matrix input (for error-compensating rounding), when
    /// enabled.
    moments: Option<Moments>,
}

/// Largest absolute value of each activation, per layer, seen while running.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Ranges {
    /// Residual stream (embedding and after every residual add).
    pub x: f32,
    /// RMSNorm output before attention, per layer.
    pub xn_att: Vec<f32>,
    /// Queries after RoPE, per layer.
    pub q: Vec<f32>,
    /// Keys after RoPE, per layer.
    pub k: Vec<f32>,
    /// Values, per layer.
    pub v: Vec<f32>,
    /// Attention scores (after the 1/sqrt(head_size) scaling), per layer.
    pub score: Vec<f32>,
    /// Attention output (input of `wo`), per layer.
    pub att_out: Vec<f32>,
    /// RMSNorm output before the feed-forward block, per layer.
    pub xn_ffn: Vec<f32>,
    /// `w1 · xn`, per layer.
    pub h1: Vec<f32>,
    /// `w3 · xn`, per layer.
    pub h3: Vec<f32>,
    /// `silu(h1) * h3`, per layer.
    pub hb: Vec<f32>,
    /// Final RMSNorm output.
    pub xn_final: f32,
    /// Logits.
    pub logits: f32,
}

impl Ranges {
    fn new(layers: usize) -> Self {
        let v = vec![0.0; layers];
        Ranges {
            xn_att: v.clone(),
            q: v.clone(),
            k: v.clone(),
            v: v.clone(),
            score: v.clone(),
            att_out: v.clone(),
            xn_ffn: v.clone(),
            h1: v.clone(),
            h3: v.clone(),
            hb: v,
            ..Default::default()
        }
    }
}

fn track(slot: &mut f32, values: &[f32]) {
    for v in values {
        *slot = slot.max(v.abs());
    }
}

/// `run.c`'s `rmsnorm`.
pub fn rmsnorm(o: &mut [f32], x: &[f32], weight: &[f32]) {
    let size = x.len();
    let mut ss = 0.0f32;
    for &v in x {
        ss += v * v;
    }
    ss /= size as f32;
    ss += 1e-5f32;
    ss = 1.0f32 / ss.sqrt();
    for j in 0..size {
        o[j] = weight[j] * (ss * x[j]);
    }
}

/// `run.c`'s `softmax`, in place.
pub fn softmax(x: &mut [f32]) {
    let mut max_val = x[0];
    for &v in &x[1..] {
        if v > max_val {
            max_val = v;
        }
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max_val).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `run.c`'s `matmul`: `xout[d] = w[d][n] · x[n]`, accumulated left to right.
pub fn matmul(xout: &mut [f32], x: &[f32], w: &[f32]) {
    for (out, row) in xout.iter_mut().zip(w.chunks_exact(x.len())) {
        let mut val = 0.0f32;
        for (&wj, &xj) in row.iter().zip(x) {
            val += wj * xj;
        }
        *out = val;
    }
}

impl<'a> Reference<'a> {
    /// Prepares the model with an empty KV cache.
    pub fn new(checkpoint: &'a Checkpoint) -> Self {
        let c = *checkpoint.config();
        let cache = c.n_layers * c.seq_len * c.kv_dim();
        Reference {
            config: c,
            w: checkpoint.weights(),
            x: vec![0.0; c.dim],
            xb: vec![0.0; c.dim],
            xb2: vec![0.0; c.dim],
            hb: vec![0.0; c.hidden_dim],
            hb2: vec![0.0; c.hidden_dim],
            q: vec![0.0; c.dim],
            att: vec![0.0; c.n_heads * c.seq_len],
            logits: vec![0.0; c.vocab_size],
            key_cache: vec![0.0; cache],
            value_cache: vec![0.0; cache],
            ranges: None,
            moments: None,
        }
    }

    /// Starts recording activation ranges (for the quantizer's calibration).
    pub fn record_ranges(&mut self) {
        self.ranges = Some(Ranges::new(self.config.n_layers));
    }

    /// Starts recording the second moments of every matrix input.
    pub fn record_moments(&mut self) {
        let c = self.config;
        self.moments = Some(Moments::new(c.n_layers, c.dim, c.hidden_dim));
    }

    /// The moments recorded so far.
    pub fn moments(&self) -> Option<&Moments> {
        self.moments.as_ref()
    }

    /// The ranges recorded so far.
    pub fn ranges(&self) -> Option<&Ranges> {
        self.ranges.as_ref()
    }

    /// The model's shapes.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `run.c`'s `forward(token, pos)`: the logits for the next token. The caller
    /// keeps `token < vocab_size` and `pos < seq_len`.
    pub fn forward(&mut self, token: u32, pos: usize) -> &mut [f32] {
        let p = self.config;
        let w = self.w;
        let dim = p.dim;
        let kv_dim = p.kv_dim();
        let kv_mul = p.kv_mul();
        let hidden_dim = p.hidden_dim;
        let head_size = p.head_size();
        let token = token as usize;

        self.x
            .copy_from_slice(&w.token_embedding[token * dim..(token + 1) * dim]);
        if let Some(r) = &mut self.ranges {
            track(&mut r.x, &self.x);
        }

        for l in 0..p.n_layers {
            // Attention rmsnorm.
            rmsnorm(&mut self.xb, &self.x, &w.rms_att[l * dim..(l + 1) * dim]);
            if let Some(m) = &mut self.moments {
                m.xn_att[l].add(&self.xb);
            }

            // q, k, v for this position; k and v go straight into the cache.
            let loff = l * p.seq_len * kv_dim;
            let kv_at = loff + pos * kv_dim;
            matmul(
                &mut self.q,
                &self.xb,
                &w.wq[l * dim * dim..(l + 1) * dim * dim],
            );
            matmul(
                &mut self.key_cache[kv_at..kv_at + kv_dim],
                &self.xb,
                &w.wk[l * dim * kv_dim..(l + 1) * dim * kv_dim],
            );
            matmul(
                &mut self.value_cache[kv_at..kv_at + kv_dim],
                &self.xb,
                &w.wv[l * dim * kv_dim..(l + 1) * dim * kv_dim],
            );

            // RoPE: rotate each (even, odd) pair of q and k by pos * freq.
            for i in (0..dim).step_by(2) {
                let head_dim = i % head_size;
                let freq = 1.0f32 / 10000.0f32.powf(head_dim as f32 / head_size as f32);
                let val = pos as f32 * freq;
                let fcr = val.cos();
                let fci = val.sin();
                let rotn = if i < kv_dim { 2 } else { 1 };
                for v in 0..rotn {
                    let vec = if v == 0 {
                        &mut self.q[..]
                    } else {
                        &mut self.key_cache[kv_at..kv_at + kv_dim]
                    };
                    let v0 = vec[i];
                    let v1 = vec[i + 1];
                    vec[i] = v0 * fcr - v1 * fci;
                    vec[i + 1] = v0 * fci + v1 * fcr;
                }
            }
            if let Some(r) = &mut self.ranges {
                track(&mut r.xn_att[l], &self.xb);
                track(&mut r.q[l], &self.q);
                track(&mut r.k[l], &self.key_cache[kv_at..kv_at + kv_dim]);
                track(&mut r.v[l], &self.value_cache[kv_at..kv_at + kv_dim]);
            }

            // Multi-head attention over positions 0..=pos.
            let scale = (head_size as f32).sqrt();
            for h in 0..p.n_heads {
                let q = &self.q[h * head_size..(h + 1) * head_size];
                let att = &mut self.att[h * p.seq_len..h * p.seq_len + pos + 1];
                let kv_head = (h / kv_mul) * head_size;
                for (t, score_out) in att.iter_mut().enumerate() {
                    let k_at = loff + t * kv_dim + kv_head;
                    let k = &self.key_cache[k_at..k_at + head_size];
                    let mut score = 0.0f32;
                    for (&qi, &ki) in q.iter().zip(k) {
                        score += qi * ki;
                    }
                    score /= scale;
                    *score_out = score;
                }
                if let Some(r) = &mut self.ranges {
                    track(&mut r.score[l], att);
                }
                softmax(att);
                let xb = &mut self.xb[h * head_size..(h + 1) * head_size];
                xb.fill(0.0);
                for (t, &a) in att.iter().enumerate() {
                    let v_at = loff + t * kv_dim + kv_head;
                    let v = &self.value_cache[v_at..v_at + head_size];
                    for (o, &vi) in xb.iter_mut().zip(v) {
                        *o += a * vi;
                    }
                }
            }
            if let Some(r) = &mut self.ranges {
                track(&mut r.att_out[l], &self.xb);
            }
            if let Some(m) = &mut self.moments {
                m.att_out[l].add(&self.xb);
            }

            // Output projection and residual.
            matmul(
                &mut self.xb2,
                &self.xb,
                &w.wo[l * dim * dim..(l + 1) * dim * dim],
            );
            for i in 0..dim {
                self.x[i] += self.xb2[i];
            }
            if let Some(r) = &mut self.ranges {
                track(&mut r.x, &self.x);
            }

            // Feed-forward: rmsnorm, then w2(silu(w1 x) * w3 x).
            rmsnorm(&mut self.xb, &self.x, &w.rms_ffn[l * dim..(l + 1) * dim]);
            if let Some(m) = &mut self.moments {
                m.xn_ffn[l].add(&self.xb);
            }
            let ffn = l * dim * hidden_dim..(l + 1) * dim * hidden_dim;
            matmul(&mut self.hb, &self.xb, &w.w1[ffn.clone()]);
            matmul(&mut self.hb2, &self.xb, &w.w3[ffn.clone()]);
            if let Some(r) = &mut self.ranges {
                track(&mut r.xn_ffn[l], &self.xb);
                track(&mut r.h1[l], &self.hb);
                track(&mut r.h3[l], &self.hb2);
            }
            for i in 0..hidden_dim {
                let mut val = self.hb[i];
                val *= 1.0f32 / (1.0f32 + (-val).exp());
                val *= self.hb2[i];
                self.hb[i] = val;
            }
            if let Some(r) = &mut self.ranges {
                track(&mut r.hb[l], &self.hb);
            }
            if let Some(m) = &mut self.moments {
                m.hb[l].add(&self.hb);
            }
            matmul(&mut self.xb, &self.hb, &w.w2[ffn]);
            for i in 0..dim {
                self.x[i] += self.xb[i];
            }
            if let Some(r) = &mut self.ranges {
                track(&mut r.x, &self.x);
            }
        }

        // Final rmsnorm and classifier.
        rmsnorm(&mut self.xb, &self.x, w.rms_final);
        if let Some(m) = &mut self.moments {
            m.xn_final.add(&self.xb);
        }
        matmul(&mut self.logits, &self.xb, w.wcls);
        if let Some(r) = &mut self.ranges {
            track(&mut r.xn_final, &self.xb);
            track(&mut r.logits, &self.logits);
        }
        &mut self.logits
    }
}
