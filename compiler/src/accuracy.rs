//! How far the chip's arithmetic is from the float model: teacher-forced top-1
//! agreement, perplexity under both, logit error, and where greedy stories part.

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::golden::{argmax_i16, ChipSampling, Golden, GoldenDecoder};
use crate::quantize::QuantizedModel;
use crate::reference::Reference;
use crate::sampler::{argmax, SamplingParams};
use crate::ReferenceDecoder;
use etch_contract::generate;
use etch_contract::Tokenizer;

/// The accuracy report of `etch accuracy`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AccuracyReport {
    /// Predicted positions (tokens after the first of each sequence).
    pub tokens: usize,
    /// Sequences (paragraphs) evaluated.
    pub sequences: usize,
    /// Sequences cut at the context length.
    pub truncated_sequences: usize,
    /// Fraction of positions where the golden model's argmax equals the float one's.
    pub top1_agreement: f64,
    /// Perplexity of the text under the float reference.
    pub ppl_float: f64,
    /// Perplexity under the golden model (its int16 logits, dequantized).
    pub ppl_quant: f64,
    /// `ppl_quant / ppl_float - 1`.
    pub ppl_rel_diff: f64,
    /// Largest |golden logit − float logit| over all positions and tokens.
    pub max_abs_logit_err: f64,
    /// Mean |golden logit − float logit|.
    pub mean_abs_logit_err: f64,
    /// Steps of the greedy story (empty prompt) compared below.
    pub greedy_steps: usize,
    /// First index into `ids` where the golden greedy story leaves the float one, or
    /// `None` when they agree throughout.
    pub greedy_first_divergence: Option<usize>,
}

/// Splits an evaluation text into sequences: paragraphs separated by blank lines.
pub fn paragraphs(text: &str) -> Vec<&str> {
    text.split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.trim().is_empty())
        .collect()
}

fn log_softmax_at(logits: impl Iterator<Item = f64> + Clone, index: usize) -> f64 {
    let max = logits.clone().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logits.clone().map(|l| (l - max).exp()).sum();
    let target = logits.clone().nth(index).unwrap_or(max);
    target - max - sum.ln()
}

/// Evaluates `model` against the float reference of `checkpoint` on `text`.
pub fn accuracy(
    checkpoint: &Checkpoint,
    tokenizer: &Tokenizer,
    model: &QuantizedModel,
    text: &str,
    greedy_steps: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<AccuracyReport> {
    let c = *checkpoint.config();
    let scale = 2f64.powi(-(model.formats.logits as i32));
    let seqs = paragraphs(text);
    let (mut tokens, mut agree, mut truncated) = (0usize, 0usize, 0usize);
    let (mut nll_f, mut nll_q) = (0.0f64, 0.0f64);
    let (mut max_err, mut sum_err, mut n_err) = (0.0f64, 0.0f64, 0usize);
    for (n, seq) in seqs.iter().enumerate() {
        progress(n, seqs.len());
        let mut ids = tokenizer.encode(seq);
        if ids.len() > c.seq_len {
            ids.truncate(c.seq_len);
            truncated += 1;
        }
        let mut reference = Reference::new(checkpoint);
        let mut golden = Golden::new(model);
        for pos in 0..ids.len() - 1 {
            let lf = reference.forward(ids[pos], pos);
            let lq = golden.forward(ids[pos], pos);
            let next = ids[pos + 1] as usize;
            tokens += 1;
            if argmax(lf) == argmax_i16(lq) {
                agree += 1;
            }
            nll_f -= log_softmax_at(lf.iter().map(|&v| v as f64), next);
            nll_q -= log_softmax_at(lq.iter().map(|&v| v as f64 * scale), next);
            for (&a, &b) in lf.iter().zip(lq) {
                let e = (a as f64 - b as f64 * scale).abs();
                max_err = max_err.max(e);
                sum_err += e;
                n_err += 1;
            }
        }
    }
    progress(seqs.len(), seqs.len());

    let greedy = SamplingParams {
        temperature: 0.0,
        topp: 0.9,
        seed: 1,
    };
    let mut fd = ReferenceDecoder::new(checkpoint, greedy);
    let float_story = generate(&mut fd, tokenizer, "", greedy_steps, &mut |_| {})?;
    let mut gd = GoldenDecoder::new(model, ChipSampling::from_params(&greedy));
    let golden_story = generate(&mut gd, tokenizer, "", greedy_steps, &mut |_| {})?;
    let greedy_first_divergence = float_story
        .ids
        .iter()
        .zip(&golden_story.ids)
        .position(|(a, b)| a != b)
        .or_else(|| {
            (float_story.ids.len() != golden_story.ids.len())
                .then(|| float_story.ids.len().min(golden_story.ids.len()))
        });

    let denom = tokens.max(1) as f64;
    let ppl_float = (nll_f / denom).exp();
    let ppl_quant = (nll_q / denom).exp();
    Ok(AccuracyReport {
        tokens,
        sequences: seqs.len(),
        truncated_sequences: truncated,
        top1_agreement: agree as f64 / denom,
        ppl_float,
        ppl_quant,
        ppl_rel_diff: ppl_quant / ppl_float - 1.0,
        max_abs_logit_err: max_err,
        mean_abs_logit_err: sum_err / n_err.max(1) as f64,
        greedy_steps: float_story.ids.len(),
        greedy_first_divergence,
    })
}
