//! # etch-compiler: from a transformer checkpoint to the arithmetic of a chip
//!
//! etch turns a fixed transformer into hardware. This crate is the front half of that
//! journey, a pipeline of named stages, each with one input and one output type:
//!
//! ```text
//!   llama2.c files ──► Checkpoint + Tokenizer      (checkpoint, tokenizer: load, validate)
//!        │
//!        ├──► Reference        float32, run.c operation for operation  (reference, sampler)
//!        │
//!        └──► QuantizedModel   int8 weights, fixed-point formats, tables (quantize, numerics)
//!                  │
//!                  └──► Golden  the chip's integer arithmetic, bit for bit (golden)
//! ```
//!
//! Two executable specifications come out of it. The **float reference** computes
//! what the model means: it reproduces llama2.c `run.c` token for token (greedy and
//! sampled). The **golden model** computes what the chip computes: int8 weights with
//! per-row scales, int16 fixed-point activations, integer-only non-linearities from
//! tables, integer top-p sampling with a shift-register RNG. The generated RTL must
//! agree with the golden model bit for bit; `docs/numerics.md` is its prose
//! specification.
//!
//! [`generate`] runs `run.c`'s generation loop over any [`Decoder`], so the reference,
//! the golden model and the chip share one definition of `steps`, prompts and `ids`.
//! [`accuracy`] measures the golden model against the reference.

#![deny(missing_docs)]

mod accuracy;
pub mod chain;
mod checkpoint;
pub mod chip;
pub mod core_file;
mod error;
mod golden;
pub mod gptq;
pub mod layout;
pub mod mix;
pub mod numerics;
mod quantize;
mod reference;
mod sampler;
pub mod schedule;
pub mod synthetic;

pub use accuracy::{accuracy, paragraphs, score, text_sequences, AccuracyReport, Scores};
pub use checkpoint::{Checkpoint, Config, Weights, HEADER_BYTES};
pub use error::{Error, Result};
pub use etch_contract::{
    effective_steps, encode_prompt, generate, Decoder, Generation, Tokenizer, BOS,
    DEFAULT_GROUP_4BIT, EOS, WIDE_UNITS,
};
pub use golden::{argmax_i16, logprob, ChipSampler, ChipSampling, Golden, GoldenDecoder};
pub use quantize::{
    calibrate, Calibration, Formats, LayerFormats, MatrixId, MatrixKind, QLayer, QLinear, QMatrix,
    QNorm, QuantSettings, QuantizedModel, Requant, Rounding, WeightFormat, GROUP_SCALE_BITS,
    GROUP_SCALE_MAX,
};
pub use reference::{Ranges, Reference};
pub use sampler::{argmax, Sampler, SamplingParams, XorShiftStar};

/// The float reference with `run.c`'s sampler, as a [`Decoder`].
pub struct ReferenceDecoder<'a> {
    model: Reference<'a>,
    sampler: Sampler,
}

impl<'a> ReferenceDecoder<'a> {
    /// The reference model of `checkpoint` sampled with `params`.
    pub fn new(checkpoint: &'a Checkpoint, params: SamplingParams) -> Self {
        ReferenceDecoder {
            model: Reference::new(checkpoint),
            sampler: Sampler::new(params),
        }
    }
}

impl Decoder for ReferenceDecoder<'_> {
    fn step(&mut self, token: u32, pos: usize, sample: bool) -> etch_contract::Result<Option<u32>> {
        let config = *self.model.config();
        if token as usize >= config.vocab_size {
            return Err(etch_contract::Error::TokenOutOfRange {
                token,
                vocab_size: config.vocab_size,
            });
        }
        if pos >= config.seq_len {
            return Err(etch_contract::Error::PromptTooLong {
                tokens: pos + 1,
                seq_len: config.seq_len,
            });
        }
        let logits = self.model.forward(token, pos);
        Ok(sample.then(|| self.sampler.sample(logits)))
    }

    fn seq_len(&self) -> usize {
        self.model.config().seq_len
    }
}
