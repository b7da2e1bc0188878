//! llama2.c's transformer as a differentiable candle graph, its parameters laid out as
//! the checkpoint stores them (`[out][in]` matrices), and its export to a checkpoint.

use candle_core::{DType, Device, Tensor, Var, D};
use etch_compiler::{Checkpoint, Config, QMatrix};

use crate::error::{Result, TrainError};

/// Every trainable tensor, in the checkpoint's order.
pub struct Params {
    /// `[vocab][dim]` (the classifier too: the models trained here share it).
    pub token_embedding: Var,
    /// Per layer `[dim]`.
    pub rms_att: Vec<Var>,
    /// Per layer `[dim][dim]`.
    pub wq: Vec<Var>,
    /// Per layer `[kv_dim][dim]`.
    pub wk: Vec<Var>,
    /// Per layer `[kv_dim][dim]`.
    pub wv: Vec<Var>,
    /// Per layer `[dim][dim]`.
    pub wo: Vec<Var>,
    /// Per layer `[dim]`.
    pub rms_ffn: Vec<Var>,
    /// Per layer `[hidden][dim]`.
    pub w1: Vec<Var>,
    /// Per layer `[dim][hidden]`.
    pub w2: Vec<Var>,
    /// Per layer `[hidden][dim]`.
    pub w3: Vec<Var>,
    /// `[dim]`.
    pub rms_final: Var,
}

/// Weights rounded in the forward pass to the chip's weight format, for
/// quantization-aware training: `bits`-bit codes times a 4-bit group scale per `group`
/// weights along the row (0: none) times a float unit per row, rounded by the
/// compiler's own quantizer (`QMatrix`, to the nearest code). The forward pass sees the
/// rounded weights; gradients pass straight through the rounding to the float weights,
/// which the optimizer updates and the checkpoint keeps, so that the compiler, given
/// that checkpoint and `--rounding nearest`, puts exactly these values into the ROM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FakeQuant {
    /// Bits per code (4..=8).
    pub bits: u32,
    /// Weights per group scale along a row, or 0 for a scale per row.
    pub group: usize,
}

impl FakeQuant {
    /// `w` (`[rows][cols]`) rounded to the format in the forward pass, the identity in
    /// the backward pass.
    pub fn apply(&self, w: &Tensor) -> Result<Tensor> {
        let (rows, cols) = w.dims2()?;
        let floats = w.flatten_all()?.to_vec1::<f32>()?;
        let q = QMatrix::quantize_with(&floats, rows, cols, self.bits, self.group, None);
        let rounded: Vec<f32> = q
            .weights
            .iter()
            .enumerate()
            .map(|(i, &c)| c as f32 * q.scales[i / cols])
            .collect();
        let rounded = Tensor::from_vec(rounded, (rows, cols), w.device())?;
        // Straight through: the value of `rounded`, the gradient of `w`.
        Ok((w + (rounded - w)?.detach())?)
    }
}

/// Every parameter's values, in [`Model::vars`]' order: a snapshot of a model.
pub type Weights = Vec<Tensor>;

/// The model: shapes, parameters and the RoPE tables of its context.
pub struct Model {
    /// Shapes (shared classifier).
    pub config: Config,
    /// Parameters.
    pub params: Params,
    /// Rounds the weight matrices in the forward pass (quantization-aware training).
    pub fake_quant: Option<FakeQuant>,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// A seeded normal generator (xorshift64* and Box–Muller): the same initial weights
/// for the same seed on every machine.
pub struct Normal(u64);

impl Normal {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Normal(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A uniform in `(0, 1]`.
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (v as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// A standard normal.
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

impl Model {
    /// A freshly initialized model: matrices normal with standard deviation 0.02 (the
    /// residual outputs `wo` and `w2` scaled by `1/sqrt(2·layers)`), norms 1.
    pub fn new(config: Config, seed: u64) -> Result<Self> {
        if !config.shared_classifier {
            return Err(TrainError::Invalid(
                "the trainer makes models with a shared classifier".into(),
            ));
        }
        if config.dim % config.n_heads != 0
            || config.n_heads % config.n_kv_heads.max(1) != 0
            || config.head_size() % 2 != 0
        {
            return Err(TrainError::Invalid(format!(
                "dim {} with {} heads and {} key/value heads has no even head size",
                config.dim, config.n_heads, config.n_kv_heads
            )));
        }
        let device = Device::Cpu;
        let mut rng = Normal::new(seed);
        let residual = 0.02 / (2.0 * config.n_layers as f64).sqrt();
        let mut matrix = |rows: usize, cols: usize, std: f64| -> Result<Var> {
            let data: Vec<f32> = (0..rows * cols)
                .map(|_| (rng.normal() * std) as f32)
                .collect();
            Ok(Var::from_vec(data, (rows, cols), &device)?)
        };
        let (d, h, kv, v) = (
            config.dim,
            config.hidden_dim,
            config.kv_dim(),
            config.vocab_size,
        );
        let token_embedding = matrix(v, d, 0.02)?;
        let mut p = Params {
            token_embedding,
            rms_att: Vec::new(),
            wq: Vec::new(),
            wk: Vec::new(),
            wv: Vec::new(),
            wo: Vec::new(),
            rms_ffn: Vec::new(),
            w1: Vec::new(),
            w2: Vec::new(),
            w3: Vec::new(),
            rms_final: Var::ones(d, DType::F32, &device)?,
        };
        for _ in 0..config.n_layers {
            p.rms_att.push(Var::ones(d, DType::F32, &device)?);
            p.wq.push(matrix(d, d, 0.02)?);
            p.wk.push(matrix(kv, d, 0.02)?);
            p.wv.push(matrix(kv, d, 0.02)?);
            p.wo.push(matrix(d, d, residual)?);
            p.rms_ffn.push(Var::ones(d, DType::F32, &device)?);
            p.w1.push(matrix(h, d, 0.02)?);
            p.w2.push(matrix(d, h, residual)?);
            p.w3.push(matrix(h, d, 0.02)?);
        }
        let (cos, sin) = rope_tables(&config);
        let half = config.head_size() / 2;
        let cos = Tensor::from_vec(cos, (config.seq_len, half), &device)?;
        let sin = Tensor::from_vec(sin, (config.seq_len, half), &device)?;
        Ok(Model {
            config,
            params: p,
            fake_quant: None,
            cos,
            sin,
            device,
        })
    }

    /// The model of a checkpoint, to train further (fine-tuning, quantization-aware
    /// training) or to serve as a teacher.
    pub fn from_checkpoint(checkpoint: &Checkpoint) -> Result<Self> {
        let config = *checkpoint.config();
        let model = Model::new(config, 1)?;
        let w = checkpoint.weights();
        let dev = model.device.clone();
        let (d, h, kv) = (config.dim, config.hidden_dim, config.kv_dim());
        let set = |var: &Var, data: &[f32], shape: &[usize]| -> Result<()> {
            Ok(var.set(&Tensor::from_slice(data, shape, &dev)?)?)
        };
        let p = &model.params;
        set(
            &p.token_embedding,
            w.token_embedding,
            &[config.vocab_size, d],
        )?;
        set(&p.rms_final, w.rms_final, &[d])?;
        fn at(all: &[f32], l: usize, n: usize) -> &[f32] {
            &all[l * n..(l + 1) * n]
        }
        for l in 0..config.n_layers {
            set(&p.rms_att[l], at(w.rms_att, l, d), &[d])?;
            set(&p.wq[l], at(w.wq, l, d * d), &[d, d])?;
            set(&p.wk[l], at(w.wk, l, kv * d), &[kv, d])?;
            set(&p.wv[l], at(w.wv, l, kv * d), &[kv, d])?;
            set(&p.wo[l], at(w.wo, l, d * d), &[d, d])?;
            set(&p.rms_ffn[l], at(w.rms_ffn, l, d), &[d])?;
            set(&p.w1[l], at(w.w1, l, h * d), &[h, d])?;
            set(&p.w2[l], at(w.w2, l, d * h), &[d, h])?;
            set(&p.w3[l], at(w.w3, l, h * d), &[h, d])?;
        }
        Ok(model)
    }

    /// A weight matrix as the forward pass uses it: rounded under `fake_quant`.
    fn matrix(&self, w: &Var) -> Result<Tensor> {
        match &self.fake_quant {
            Some(q) => q.apply(w.as_tensor()),
            None => Ok(w.as_tensor().clone()),
        }
    }

    /// Runs `f` on the model with its weight matrices replaced by their rounded values
    /// and no rounding in the forward pass (the same logits as under `fake_quant`,
    /// without rounding every matrix again at every forward pass), then puts the float
    /// weights and the rounding back.
    pub fn with_rounded_weights<R>(
        &mut self,
        f: impl FnOnce(&mut Model) -> Result<R>,
    ) -> Result<R> {
        let Some(q) = self.fake_quant.take() else {
            return f(self);
        };
        let matrices = self.matrices();
        let floats: Vec<Tensor> = matrices
            .iter()
            .map(|v| v.as_tensor().copy())
            .collect::<candle_core::Result<_>>()?;
        let restore = |model: &mut Model| -> Result<()> {
            for (v, t) in matrices.iter().zip(&floats) {
                v.set(t)?;
            }
            model.fake_quant = Some(q);
            Ok(())
        };
        for v in &matrices {
            if let Err(e) = q.apply(v.as_tensor()).and_then(|r| Ok(v.set(&r.detach())?)) {
                restore(self)?;
                return Err(e);
            }
        }
        let out = f(self);
        restore(self)?;
        out
    }

    /// The weight matrices `fake_quant` rounds.
    fn matrices(&self) -> Vec<Var> {
        let p = &self.params;
        let mut v = vec![p.token_embedding.clone()];
        for l in 0..self.config.n_layers {
            for t in [
                &p.wq[l], &p.wk[l], &p.wv[l], &p.wo[l], &p.w1[l], &p.w2[l], &p.w3[l],
            ] {
                v.push(t.clone());
            }
        }
        v
    }

    /// Every parameter, for the optimizer.
    pub fn vars(&self) -> Vec<Var> {
        let p = &self.params;
        let mut v = vec![p.token_embedding.clone(), p.rms_final.clone()];
        for l in 0..self.config.n_layers {
            for t in [
                &p.rms_att[l],
                &p.wq[l],
                &p.wk[l],
                &p.wv[l],
                &p.wo[l],
                &p.rms_ffn[l],
                &p.w1[l],
                &p.w2[l],
                &p.w3[l],
            ] {
                v.push(t.clone());
            }
        }
        v
    }

    /// A copy of every parameter's values, in [`Model::vars`]' order.
    pub fn weights(&self) -> Result<Weights> {
        Ok(self
            .vars()
            .iter()
            .map(|v| v.as_tensor().copy())
            .collect::<candle_core::Result<_>>()?)
    }

    /// Puts back values [`Model::weights`] copied (from this model or one of its
    /// shape).
    pub fn set_weights(&self, weights: &Weights) -> Result<()> {
        let vars = self.vars();
        if vars.len() != weights.len() {
            return Err(TrainError::Invalid(format!(
                "{} tensors of weights for a model of {}",
                weights.len(),
                vars.len()
            )));
        }
        for (var, w) in vars.iter().zip(weights) {
            var.set(w)?;
        }
        Ok(())
    }

    /// The device tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Logits `[batch][time][vocab]` for token ids `[batch][time]` (time at most the
    /// context), every position attending to itself and the positions before it.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let p = &self.params;
        let (b, t) = tokens.dims2()?;
        if t > c.seq_len {
            return Err(TrainError::Invalid(format!(
                "{t} positions exceed the context of {}",
                c.seq_len
            )));
        }
        let (d, hs, nh, nkv) = (c.dim, c.head_size(), c.n_heads, c.n_kv_heads);
        let embedding = self.matrix(&p.token_embedding)?;
        let mut x = embedding
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, d))?;
        let cos = self.cos.narrow(0, 0, t)?.reshape((1, t, 1, hs / 2, 1))?;
        let sin = self.sin.narrow(0, 0, t)?.reshape((1, t, 1, hs / 2, 1))?;
        let mask: Vec<f32> = (0..t * t)
            .map(|i| {
                if i % t > i / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), &self.device)?;
        let scale = 1.0 / (hs as f64).sqrt();
        for l in 0..c.n_layers {
            let xn = rmsnorm(&x, &p.rms_att[l])?;
            let q = rope(&linear(&xn, &self.matrix(&p.wq[l])?)?, nh, hs, &cos, &sin)?;
            let k = rope(&linear(&xn, &self.matrix(&p.wk[l])?)?, nkv, hs, &cos, &sin)?;
            let v = linear(&xn, &self.matrix(&p.wv[l])?)?;
            let heads = |x: Tensor, n: usize| -> Result<Tensor> {
                let x = x.reshape((b, t, n, hs))?.transpose(1, 2)?;
                if n == nh {
                    return Ok(x.contiguous()?);
                }
                // Key/value head `j` serves query heads `j·mul .. (j+1)·mul`.
                Ok(x.unsqueeze(2)?
                    .broadcast_as((b, n, nh / n, t, hs))?
                    .contiguous()?
                    .reshape((b, nh, t, hs))?)
            };
            let (q, k, v) = (heads(q, nh)?, heads(k, nkv)?, heads(v, nkv)?);
            let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let out = att
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, t, d))?;
            x = (x + linear(&out, &self.matrix(&p.wo[l])?)?)?;
            let xn = rmsnorm(&x, &p.rms_ffn[l])?;
            let gate = linear(&xn, &self.matrix(&p.w1[l])?)?.silu()?;
            let up = linear(&xn, &self.matrix(&p.w3[l])?)?;
            x = (x + linear(&(gate * up)?, &self.matrix(&p.w2[l])?)?)?;
        }
        let xn = rmsnorm(&x, &p.rms_final)?;
        linear(&xn, &embedding)
    }

    /// The model as a llama2.c checkpoint (RoPE tables included, as the format has
    /// them), checked by the compiler's loader. The float weights are written even under
    /// `fake_quant`: the compiler's quantizer (`--rounding nearest`) rounds them to
    /// exactly the values the forward pass used.
    pub fn checkpoint(&self, name: &str) -> Result<Checkpoint> {
        let c = &self.config;
        let p = &self.params;
        let mut floats: Vec<f32> = Vec::with_capacity(c.file_bytes().unwrap_or(0) as usize / 4);
        let mut put = |v: &Var| -> Result<()> {
            floats.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
            Ok(())
        };
        put(&p.token_embedding)?;
        for group in [
            &p.rms_att, &p.wq, &p.wk, &p.wv, &p.wo, &p.rms_ffn, &p.w1, &p.w2, &p.w3,
        ] {
            for v in group {
                put(v)?;
            }
        }
        put(&p.rms_final)?;
        let (cos, sin) = rope_tables(c);
        floats.extend(cos);
        floats.extend(sin);
        Ok(Checkpoint::from_floats(name, *c, floats)?)
    }
}

/// `x · wᵀ` over the last dimension.
fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_matmul(&w.t()?)?)
}

/// llama2.c's RMSNorm: `w · x / sqrt(mean(x²) + 1e-5)`.
fn rmsnorm(x: &Tensor, w: &Var) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = ms.affine(1.0, 1e-5)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv)?.broadcast_mul(w.as_tensor())?)
}

/// llama2.c's RoPE on `[b][t][heads · hs]`: each pair `(2i, 2i+1)` of a head rotated by
/// `pos / 10000^(2i/hs)`.
fn rope(x: &Tensor, heads: usize, hs: usize, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, t, _) = x.dims3()?;
    let x = x.reshape((b, t, heads, hs / 2, 2))?;
    let x0 = x.narrow(4, 0, 1)?;
    let x1 = x.narrow(4, 1, 1)?;
    let r0 = (x0.broadcast_mul(cos)? - x1.broadcast_mul(sin)?)?;
    let r1 = (x0.broadcast_mul(sin)? + x1.broadcast_mul(cos)?)?;
    Ok(Tensor::cat(&[&r0, &r1], 4)?.reshape((b, t, heads * hs))?)
}

/// `cos` and `sin` of every position's angle for every pair of a head, computed as
/// `run.c` does (f32 `powf`, `cosf`, `sinf`), `[seq_len][hs/2]` each.
fn rope_tables(c: &Config) -> (Vec<f32>, Vec<f32>) {
    let hs = c.head_size();
    let mut cos = Vec::with_capacity(c.seq_len * hs / 2);
    let mut sin = Vec::with_capacity(c.seq_len * hs / 2);
    for pos in 0..c.seq_len {
        for i in 0..hs / 2 {
            let freq = 1.0f32 / 10000.0f32.powf((2 * i) as f32 / hs as f32);
            let val = pos as f32 * freq;
            cos.push(val.cos());
            sin.push(val.sin());
        }
    }
    (cos, sin)
}
