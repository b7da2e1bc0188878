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

/// The paragraphs of `text`, each encoded from BOS and cut at `seq_len` tokens, and how
/// many were cut.
pub fn text_sequences(text: &str, tokenizer: &Tokenizer, seq_len: usize) -> (Vec<Vec<u32>>, usize) {
    let mut truncated = 0;
    let sequences = paragraphs(text)
        .iter()
        .map(|p| {
            let mut ids = tokenizer.encode(p);
            if ids.len() > seq_len {
                ids.truncate(seq_len);
                truncated += 1;
            }
            ids
        })
        .collect();
    (sequences, truncated)
}

/// Teacher-forced scores of token sequences under the float reference and the golden
/// model.
#[derive(Clone, Debug, Default)]
pub struct Scores {
    /// Predicted positions.
    pub tokens: usize,
    /// Positions where the argmaxes agree.
    pub agree: usize,
    /// Summed negative log-likelihood under the float reference.
    pub nll_float: f64,
    /// Summed negative log-likelihood under the golden model.
    pub nll_quant: f64,
    /// Largest |golden logit − float logit|.
    pub max_err: f64,
    /// Summed |golden logit − float logit| and how many there were.
    pub sum_err: f64,
    /// Logits compared.
    pub n_err: usize,
}

impl Scores {
    /// `ppl_quant / ppl_float − 1`.
    pub fn ppl_rel_diff(&self) -> f64 {
        ((self.nll_quant - self.nll_float) / self.tokens.max(1) as f64).exp() - 1.0
    }

    /// Fraction of positions where the argmaxes agree.
    pub fn top1(&self) -> f64 {
        self.agree as f64 / self.tokens.max(1) as f64
    }
}

/// Scores `model` against the float reference of `checkpoint` on token sequences (each
/// from position 0, at most the context long), calling `progress(done, total)`.
pub fn score(
    checkpoint: &Checkpoint,
    model: &QuantizedModel,
    sequences: &[Vec<u32>],
    progress: &mut dyn FnMut(usize, usize),
) -> Scores {
    let scale = 2f64.powi(-(model.formats.logits as i32));
    let mut s = Scores::default();
    for (n, ids) in sequences.iter().enumerate() {
        progress(n, sequences.len());
        let mut reference = Reference::new(checkpoint);
        let mut golden = Golden::new(model);
        for pos in 0..ids.len().saturating_sub(1) {
            let lf = reference.forward(ids[pos], pos);
            let lq = golden.forward(ids[pos], pos);
            let next = ids[pos + 1] as usize;
            s.tokens += 1;
            if argmax(lf) == argmax_i16(lq) {
                s.agree += 1;
            }
            s.nll_float -= log_softmax_at(lf.iter().map(|&v| v as f64), next);
            s.nll_quant -= log_softmax_at(lq.iter().map(|&v| v as f64 * scale), next);
            for (&a, &b) in lf.iter().zip(lq) {
                let e = (a as f64 - b as f64 * scale).abs();
                s.max_err = s.max_err.max(e);
                s.sum_err += e;
                s.n_err += 1;
            }
        }
    }
    progress(sequences.len(), sequences.len());
    s
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
    let (sequences, truncated) = text_sequences(text, tokenizer, checkpoint.config().seq_len);
    let s = score(checkpoint, model, &sequences, progress);

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

    let denom = s.tokens.max(1) as f64;
    let ppl_float = (s.nll_float / denom).exp();
    let ppl_quant = (s.nll_quant / denom).exp();
    Ok(AccuracyReport {
        tokens: s.tokens,
        sequences: sequences.len(),
        truncated_sequences: truncated,
        top1_agreement: s.top1(),
        ppl_float,
        ppl_quant,
        ppl_rel_diff: ppl_quant / ppl_float - 1.0,
        max_abs_logit_err: s.max_err,
        mean_abs_logit_err: s.sum_err / s.n_err.max(1) as f64,
        greedy_steps: float_story.ids.len(),
        greedy_first_divergence,
    })
}
