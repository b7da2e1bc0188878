//! etch's trainer: small llama2.c-format transformers trained on the CPU.
//!
//! A hard-wired chip's model is fixed at manufacture, so etch trains the models it
//! mints: the same architecture `run.c` runs (RMSNorm, RoPE on interleaved pairs,
//! grouped-query attention, SwiGLU, a classifier shared with the embedding), written
//! as a differentiable [candle](https://github.com/huggingface/candle) graph
//! ([`model`]), trained with AdamW on token windows of a corpus ([`train`]), and
//! exported in llama2.c's checkpoint format, which the compiler's own loader checks
//! and whose float reference reproduces the trained model's logits.
//!
//! Everything is deterministic for a seed: initial weights, the windows drawn, and the
//! order of the CPU's arithmetic.

pub mod bpe;
mod error;
pub mod model;

pub use error::{Result, TrainError};
pub use model::{FakeQuant, Model, Normal, Weights};

use candle_core::Tensor;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use etch_compiler::{generate, Checkpoint, ReferenceDecoder, SamplingParams, Tokenizer};

/// Tells the C allocator to keep the memory a training step frees for the next step
/// instead of returning it to the kernel. Every step allocates and frees the same
/// tensors, hundreds of kilobytes each; by default glibc maps the large ones afresh
/// and unmaps them after, and the page faults of touching them again took a third of
/// a training run's time. Changes no result. Process-wide: call it from a program that
/// trains, not from a library.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // The largest threshold glibc accepts on 64-bit targets is 32 MiB; above it a
        // block is mapped on its own. Trimming waits for 1 GiB free at the heap's top.
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 1 << 30;
        const TOP_PAD: libc::c_int = 64 << 20;
        for (param, value) in [
            (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (libc::M_TOP_PAD, TOP_PAD),
        ] {
            // SAFETY: mallopt only sets the allocator's tuning parameters; it takes no
            // pointers, and glibc serializes it with allocation. A value it refuses
            // leaves the parameter as it was (the return value, 0, is not an error
            // worth stopping a training for).
            unsafe {
                libc::mallopt(param, value);
            }
        }
    }
}

/// Training token streams: sequences of ids, each starting with BOS.
#[derive(Clone, Debug, Default)]
pub struct Corpus {
    /// The sequences.
    pub sequences: Vec<Vec<u32>>,
    /// Per sequence, the index of the first token whose prediction is trained on (a
    /// prompt's tokens before it are context only); empty: every token.
    pub loss_from: Vec<usize>,
}

impl Corpus {
    /// Paragraphs of `text` (separated by blank lines), each encoded from BOS.
    pub fn from_text(text: &str, tokenizer: &Tokenizer) -> Self {
        Corpus {
            sequences: etch_compiler::paragraphs(text)
                .iter()
                .map(|p| tokenizer.encode(p))
                .filter(|ids| ids.len() > 1)
                .collect(),
            loss_from: Vec::new(),
        }
    }

    /// (prompt, completion) pairs: each sequence is the prompt (from BOS) followed by
    /// the completion, and only the completion's tokens are trained on.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Vec<u32>, Vec<u32>)>) -> Self {
        let mut c = Corpus::default();
        for (prompt, completion) in pairs {
            if prompt.is_empty() || completion.is_empty() {
                continue;
            }
            c.loss_from.push(prompt.len());
            c.sequences.push([prompt, completion].concat());
        }
        c
    }

    /// The index of the first trained-on token of sequence `k`.
    fn first_target(&self, k: usize) -> usize {
        self.loss_from.get(k).copied().unwrap_or(1)
    }

    /// `stories` stories a teacher model writes itself (float reference, temperature 1,
    /// top-p 0.9, seeds `seed`, `seed + 1`, …, `steps` tokens each): a corpus that
    /// distills the teacher into another shape.
    pub fn from_teacher(
        teacher: &Checkpoint,
        tokenizer: &Tokenizer,
        stories: usize,
        steps: usize,
        seed: u64,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let mut sequences = Vec::with_capacity(stories);
        for k in 0..stories {
            progress(k, stories);
            let params = SamplingParams {
                temperature: 1.0,
                topp: 0.9,
                seed: seed + k as u64,
            };
            let mut decoder = ReferenceDecoder::new(teacher, params);
            let story = generate(&mut decoder, tokenizer, "", steps, &mut |_| {})?;
            if story.ids.len() > 1 {
                sequences.push(story.ids);
            }
        }
        progress(stories, stories);
        Ok(Corpus {
            sequences,
            loss_from: Vec::new(),
        })
    }

    /// Tokens in all.
    pub fn tokens(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }

    /// The last `1/parts` of the sequences (at least one) split off for validation.
    pub fn split_validation(&mut self, parts: usize) -> Corpus {
        let n = (self.sequences.len() / parts.max(1)).max(1);
        let keep = self.sequences.len().saturating_sub(n);
        Corpus {
            sequences: self.sequences.split_off(keep),
            loss_from: if self.loss_from.is_empty() {
                Vec::new()
            } else {
                self.loss_from.split_off(keep)
            },
        }
    }
}

/// How to train.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Settings {
    /// Optimizer steps.
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    /// Positions per window (at most the model's context).
    pub window: usize,
    /// Peak learning rate (linear warm-up, then cosine decay to a tenth).
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Seed of the initial weights and of the windows drawn.
    pub seed: u64,
    /// Every window starts at its sequence's first token (BOS at position 0), as
    /// generation sees it; otherwise anywhere in the sequence.
    pub from_start: bool,
    /// Temperature of the teacher's distribution when distilling: below 1 sharpens it
    /// towards the teacher's first choice.
    pub distill_temperature: f64,
    /// Shards a step's batch is split into, each shard's forward and backward pass run
    /// on a thread of its own and the gradients summed in shard order. The result
    /// depends on this number, not on the cores the machine has: the same settings
    /// train the same weights everywhere.
    pub shards: usize,
    /// The weights the training ends with are the mean of the weights after each of
    /// the last this many steps (0: the last step's own): an average over the steps of
    /// a decayed learning rate may sit nearer the middle of the valley the steps
    /// wander in than any one step. Measured on the syscall model it lowered the
    /// validation loss and not the held-out errors (`docs/training.md`).
    pub average_last: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            steps: 2000,
            batch: 16,
            window: 128,
            lr: 3e-3,
            warmup: 100,
            weight_decay: 0.01,
            seed: 1,
            from_start: false,
            distill_temperature: 1.0,
            shards: 1,
            average_last: 0,
        }
    }
}

/// One training step's record.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct StepLoss {
    /// Step (from 1).
    pub step: usize,
    /// Mean cross-entropy of the step's batch (nats per token).
    pub loss: f32,
    /// Learning rate used.
    pub lr: f64,
}

/// The learning rate at `step` (0-based).
fn learning_rate(s: &Settings, step: usize) -> f64 {
    if step < s.warmup {
        return s.lr * (step + 1) as f64 / s.warmup as f64;
    }
    let span = (s.steps - s.warmup).max(1) as f64;
    let t = (step - s.warmup) as f64 / span;
    s.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// A batch: inputs, next-token targets, and (for a corpus of prompts and completions)
/// the weight of each target (1 for a completion's token, 0 for a prompt's or padding).
struct Batch {
    /// Positions per window.
    window: usize,
    /// Per window, the positions up to its last trained-on target (the rest is padding,
    /// which no earlier position attends to).
    used: Vec<usize>,
    inputs: Tensor,
    targets: Tensor,
    weights: Option<Tensor>,
}

/// Draws `batch` windows of `window + 1` tokens: inputs and next-token targets.
fn draw(
    corpus: &Corpus,
    batch: usize,
    window: usize,
    from_start: bool,
    rng: &mut Normal,
    model: &Model,
) -> Result<Batch> {
    let usable: Vec<usize> = (0..corpus.sequences.len())
        .filter(|&k| corpus.sequences[k].len() >= 2)
        .collect();
    if usable.is_empty() {
        return Err(TrainError::Invalid(
            "the corpus has no sequence of two tokens".into(),
        ));
    }
    let masked = !corpus.loss_from.is_empty();
    let pick =
        |rng: &mut Normal| usable[(rng.uniform() * usable.len() as f64) as usize % usable.len()];
    // Prompts and completions are whole sequences from BOS, drawn first: a batch needs
    // no more positions than its longest.
    let picks: Option<Vec<usize>> = masked.then(|| (0..batch).map(|_| pick(rng)).collect());
    let window = match &picks {
        Some(p) => p
            .iter()
            .map(|&k| corpus.sequences[k].len() - 1)
            .max()
            .unwrap_or(1)
            .min(window),
        None => window,
    };
    let (mut inputs, mut targets, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    let mut used = Vec::with_capacity(batch);
    for i in 0..batch {
        let k = match &picks {
            Some(p) => p[i],
            None => pick(rng),
        };
        let seq = &corpus.sequences[k];
        // Windows start at the sequence's start or anywhere within it; short ones are
        // padded by repeating their last token (a target it already predicts).
        let max_start = seq.len().saturating_sub(window + 1);
        let start = (rng.uniform() * (max_start + 1) as f64) as usize % (max_start + 1);
        let start = if from_start || masked { 0 } else { start };
        used.push(if masked {
            (seq.len() - 1).min(window)
        } else {
            window
        });
        for j in 0..window {
            let at = (start + j).min(seq.len() - 2);
            inputs.push(seq[at]);
            targets.push(seq[at + 1]);
            let padding = start + j > seq.len() - 2;
            weights.push(if !padding && at + 1 >= corpus.first_target(k) {
                1f32
            } else {
                0f32
            });
        }
    }
    let dev = model.device();
    Ok(Batch {
        window,
        used,
        inputs: Tensor::from_vec(inputs, (batch, window), dev)?,
        targets: Tensor::from_vec(targets, batch * window, dev)?,
        weights: if masked {
            Some(Tensor::from_vec(weights, batch * window, dev)?)
        } else {
            None
        },
    })
}

/// Cross-entropy of `logits` (`[n][vocab]`) against `targets`, each position weighted
/// by `weights`, divided by `n` (the weighted positions of the whole batch, of which
/// these rows may be a shard).
fn weighted_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
    n: f64,
) -> Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?;
    let picked = log_p.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    Ok((picked * weights)?.sum_all()?.affine(-1.0 / n, 0.0)?)
}

/// Mean cross-entropy of `model` on every window of `corpus` (nats per token; for
/// prompts and completions, per completion token).
pub fn evaluate(model: &Model, corpus: &Corpus, window: usize) -> Result<f64> {
    let (mut sum, mut n) = (0.0f64, 0usize);
    let dev = model.device();
    // Each sequence's first window only, from BOS, as generation sees it.
    for (k, seq) in corpus.sequences.iter().enumerate() {
        let t = (seq.len().saturating_sub(1)).min(window);
        let first = corpus.first_target(k).max(1);
        if t == 0 || first > t {
            continue;
        }
        let inputs = seq[..t].to_vec();
        let targets = seq[1..=t].to_vec();
        let logits = model
            .forward(&Tensor::from_vec(inputs, (1, t), dev)?)?
            .reshape((t, model.config.vocab_size))?;
        // Targets `first..=t` of the sequence are rows `first - 1..t`.
        let counted = t + 1 - first;
        let loss = candle_nn::loss::cross_entropy(
            &logits.narrow(0, first - 1, counted)?,
            &Tensor::from_vec(targets[first - 1..].to_vec(), counted, dev)?,
        )?;
        sum += loss.to_scalar::<f32>()? as f64 * counted as f64;
        n += counted;
    }
    Ok(sum / n.max(1) as f64)
}

/// Mean cross-entropy of `logits` (`[n][vocab]`) against a teacher's distribution at
/// the same positions (`teacher_logits / temperature`, no gradient): distillation,
/// whose gradient is that of the KL divergence from the teacher.
fn soft_cross_entropy(
    logits: &Tensor,
    teacher_logits: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    let target =
        candle_nn::ops::softmax_last_dim(&teacher_logits.detach().affine(1.0 / temperature, 0.0)?)?;
    let log_p = candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?;
    let n = logits.dims2()?.0 as f64;
    Ok((target * log_p)?.sum_all()?.affine(-1.0 / n, 0.0)?)
}

/// Trains `model` on `corpus`, calling `progress` after every step: each position's
/// target is the corpus's next token, or, with a `teacher`, the teacher's whole
/// next-token distribution (distillation).
pub fn train(
    model: &mut Model,
    corpus: &Corpus,
    settings: &Settings,
    teacher: Option<&Model>,
    progress: &mut dyn FnMut(&StepLoss),
) -> Result<Vec<StepLoss>> {
    Ok(train_keeping_last_step(model, corpus, settings, teacher, progress)?.0)
}

/// [`train`], also returning the last step's own weights (in [`Model::vars`]'
/// order) when the model ends with an average of several steps'
/// ([`Settings::average_last`]), to measure what the average changed.
pub fn train_keeping_last_step(
    model: &mut Model,
    corpus: &Corpus,
    settings: &Settings,
    teacher: Option<&Model>,
    progress: &mut dyn FnMut(&StepLoss),
) -> Result<(Vec<StepLoss>, Option<Weights>)> {
    if let Some(t) = teacher {
        if t.config.vocab_size != model.config.vocab_size || t.config.seq_len < settings.window {
            return Err(TrainError::Invalid(
                "the teacher's vocabulary or context does not fit the student's".into(),
            ));
        }
    }
    if settings.window == 0 || settings.window > model.config.seq_len {
        return Err(TrainError::Invalid(format!(
            "a window of {} positions does not fit a context of {}",
            settings.window, model.config.seq_len
        )));
    }
    if !(settings.distill_temperature > 0.0 && settings.distill_temperature.is_finite()) {
        return Err(TrainError::Invalid(format!(
            "a distillation temperature of {} is not a positive number",
            settings.distill_temperature
        )));
    }
    if settings.shards == 0 || settings.shards > settings.batch {
        return Err(TrainError::Invalid(format!(
            "{} shards of a batch of {} windows: use 1 to {}",
            settings.shards,
            settings.batch,
            settings.batch.max(1)
        )));
    }
    if settings.steps == 0 || settings.batch == 0 {
        return Err(TrainError::Invalid(
            "train at least one step of one window".into(),
        ));
    }
    if settings.average_last > settings.steps {
        return Err(TrainError::Invalid(format!(
            "an average over the last {} steps of {}",
            settings.average_last, settings.steps
        )));
    }
    let vars = model.vars();
    let averaged_from = settings.steps - settings.average_last;
    let mut sums: Weights = Vec::new();
    let mut opt = AdamW::new(
        model.vars(),
        ParamsAdamW {
            lr: settings.lr,
            weight_decay: settings.weight_decay,
            ..Default::default()
        },
    )?;
    let mut rng = Normal::new(settings.seed ^ 0x005e_ed0f_da7a);
    let mut curve = Vec::with_capacity(settings.steps);
    for step in 0..settings.steps {
        let lr = learning_rate(settings, step);
        opt.set_learning_rate(lr);
        let b = draw(
            corpus,
            settings.batch,
            settings.window,
            settings.from_start,
            &mut rng,
            model,
        )?;
        let (loss, grads) = step_gradients(model, teacher, settings, &b)?;
        opt.step(&grads)?;
        let record = StepLoss {
            step: step + 1,
            loss,
            lr,
        };
        if !record.loss.is_finite() {
            return Err(TrainError::Invalid(format!(
                "the loss diverged at step {} (learning rate {lr})",
                record.step
            )));
        }
        if settings.average_last > 0 && step >= averaged_from {
            if sums.is_empty() {
                sums = model.weights()?;
            } else {
                for (sum, var) in sums.iter_mut().zip(&vars) {
                    *sum = (&*sum + var.as_tensor())?;
                }
            }
        }
        progress(&record);
        curve.push(record);
    }
    if settings.average_last == 0 {
        return Ok((curve, None));
    }
    let last = model.weights()?;
    let mean = sums
        .iter()
        .map(|sum| sum.affine(1.0 / settings.average_last as f64, 0.0))
        .collect::<candle_core::Result<Weights>>()?;
    model.set_weights(&mean)?;
    Ok((curve, Some(last)))
}

/// The rows of a batch of `batch` windows that shard `k` of `shards` takes: the
/// batch split into contiguous runs, the first `batch % shards` one row longer.
fn shard_rows(batch: usize, shards: usize, k: usize) -> std::ops::Range<usize> {
    let (base, extra) = (batch / shards, batch % shards);
    let start = k * base + k.min(extra);
    start..start + base + usize::from(k < extra)
}

/// One shard's part of a step's loss: the loss of `rows` of batch `b`, scaled so that
/// the shards' parts add up to the whole batch's loss. A shard runs only the positions
/// its windows use: padding after them changes nothing before them.
fn shard_loss(
    model: &Model,
    teacher: Option<&Model>,
    settings: &Settings,
    b: &Batch,
    rows: std::ops::Range<usize>,
    weighted: f64,
) -> Result<Tensor> {
    let v = model.config.vocab_size;
    let n = rows.len();
    let t = b.used[rows.clone()]
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let part = |flat: &Tensor| -> Result<Tensor> {
        Ok(flat
            .reshape((settings.batch, b.window))?
            .narrow(0, rows.start, n)?
            .narrow(1, 0, t)?
            .contiguous()?
            .flatten_all()?)
    };
    let inputs = b
        .inputs
        .narrow(0, rows.start, n)?
        .narrow(1, 0, t)?
        .contiguous()?;
    let logits = model.forward(&inputs)?.reshape((n * t, v))?;
    // The share of the batch's positions (or windows) these rows are, for losses that
    // are means over positions.
    let share = (n * t) as f64 / (settings.batch * b.window) as f64;
    Ok(match (teacher, &b.weights) {
        (Some(teacher), _) => soft_cross_entropy(
            &logits,
            &teacher.forward(&inputs)?.reshape((n * t, v))?,
            settings.distill_temperature,
        )?
        .affine(share, 0.0)?,
        (None, Some(w)) => {
            weighted_cross_entropy(&logits, &part(&b.targets)?, &part(w)?, weighted)?
        }
        (None, None) => {
            candle_nn::loss::cross_entropy(&logits, &part(&b.targets)?)?.affine(share, 0.0)?
        }
    })
}

/// The loss of batch `b` and its gradient with respect to every parameter: the batch's
/// shards run on threads of their own, their gradients summed in shard order.
fn step_gradients(
    model: &Model,
    teacher: Option<&Model>,
    settings: &Settings,
    b: &Batch,
) -> Result<(f32, candle_core::backprop::GradStore)> {
    let weighted = match &b.weights {
        Some(w) => w.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64,
        None => 1.0,
    };
    let shards = settings.shards;
    let run = |k: usize| -> Result<(f32, candle_core::backprop::GradStore)> {
        let loss = shard_loss(
            model,
            teacher,
            settings,
            b,
            shard_rows(settings.batch, shards, k),
            weighted,
        )?;
        let grads = loss.backward()?;
        Ok((loss.to_scalar::<f32>()?, grads))
    };
    let mut parts: Vec<Result<(f32, candle_core::backprop::GradStore)>> =
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..shards).map(|k| scope.spawn(move || run(k))).collect();
            let mut parts = vec![run(0)];
            for h in others {
                parts.push(h.join().unwrap_or_else(|_| {
                    Err(TrainError::Invalid("a training thread panicked".into()))
                }));
            }
            parts
        });
    let (mut loss, mut grads) = parts.remove(0)?;
    let vars = model.vars();
    for part in parts {
        let (l, g) = part?;
        loss += l;
        for var in &vars {
            let t = var.as_tensor();
            if let Some(add) = g.get(t) {
                let sum = match grads.get(t) {
                    Some(have) => (have + add)?,
                    None => add.clone(),
                };
                grads.insert(t, sum);
            }
        }
    }
    Ok((loss, grads))
}

/// What [`calibrate_logit_scale`] found.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct LogitCalibration {
    /// The factor the final norm's weights (hence every logit) were multiplied by.
    pub scale: f64,
    /// Validation cross-entropy before and after, nats per token.
    pub loss_before: f64,
    pub loss_after: f64,
}

/// Temperature scaling folded into the model: the factor `s` on every logit that
/// minimizes the cross-entropy of `validation`'s next tokens, written into the final
/// RMSNorm's weights (`logits = E · (rms_final ⊙ norm(x))`, so scaling `rms_final`
/// scales every logit by exactly `s`). The order of the logits, hence every greedy
/// choice and the top-1 agreement, does not change; the model's probabilities stop
/// being over- or under-confident. A model distilled from a sharpened teacher
/// (`distill_temperature` below 1) learns the teacher's first choices but is
/// overconfident on text; this gives back the perplexity the sharpening cost.
///
/// The search is a golden-section search over `s` in `[1/4, 4]` on a log scale
/// (the loss is unimodal in `log s` for a fixed ranking), 24 evaluations.
pub fn calibrate_logit_scale(
    model: &mut Model,
    validation: &Corpus,
    window: usize,
) -> Result<LogitCalibration> {
    model.with_rounded_weights(|model| search_logit_scale(model, validation, window))
}

fn search_logit_scale(
    model: &Model,
    validation: &Corpus,
    window: usize,
) -> Result<LogitCalibration> {
    let original = model.params.rms_final.as_tensor().copy()?;
    let loss_at = |log_s: f64| -> Result<f64> {
        model
            .params
            .rms_final
            .set(&original.affine(log_s.exp(), 0.0)?)?;
        evaluate(model, validation, window)
    };
    let loss_before = loss_at(0.0)?;
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (-(4f64.ln()), 4f64.ln());
    let mut c = b - phi * (b - a);
    let mut d = a + phi * (b - a);
    let (mut fc, mut fd) = (loss_at(c)?, loss_at(d)?);
    for _ in 0..22 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = loss_at(c)?;
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = loss_at(d)?;
        }
    }
    let (mut log_s, mut loss_after) = if fc < fd { (c, fc) } else { (d, fd) };
    if loss_after >= loss_before {
        (log_s, loss_after) = (0.0, loss_before);
    }
    // Round the factor to four significant digits, then set and measure exactly that.
    let scale = format!("{:.4e}", log_s.exp()).parse::<f64>().unwrap_or(1.0);
    if scale != 1.0 {
        loss_after = loss_at(scale.ln())?;
    } else {
        loss_at(0.0)?;
    }
    Ok(LogitCalibration {
        scale,
        loss_before,
        loss_after,
    })
}
