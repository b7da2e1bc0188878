//! The syscall model's next-token logits from each place it runs — the float model,
//! the golden (bit-exact integer) model, the chip — for `etch agent understand`,
//! `etch agent syscall --device` and `etch train syscall`'s evaluation.

use etch_agent::understand::Logits;
use etch_agent::{AgentError, Result};
use etch_compiler::{Checkpoint, Golden, QuantizedModel, Reference};

fn too_long(seq_len: usize) -> AgentError {
    AgentError::Invalid(format!(
        "the request and its call do not fit the model's {seq_len} positions"
    ))
}

/// The float model (`run.c`'s arithmetic).
pub struct FloatLogits<'a> {
    reference: Reference<'a>,
    pos: usize,
}

impl<'a> FloatLogits<'a> {
    /// Over `checkpoint`.
    pub fn new(checkpoint: &'a Checkpoint) -> Self {
        FloatLogits {
            reference: Reference::new(checkpoint),
            pos: 0,
        }
    }

    fn run(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let seq_len = self.reference.config().seq_len;
        let mut out = Vec::new();
        for &t in tokens {
            if self.pos >= seq_len {
                return Err(too_long(seq_len));
            }
            out = self.reference.forward(t, self.pos).to_vec();
            self.pos += 1;
        }
        Ok(out)
    }
}

impl Logits for FloatLogits<'_> {
    fn start(&mut self, prompt: &[u32]) -> Result<Vec<f32>> {
        // The KV cache is overwritten position by position: starting over is pos 0.
        self.pos = 0;
        self.run(prompt)
    }

    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.run(tokens)
    }
}

/// The golden model: the chip's integer arithmetic, bit-exact, in software.
pub struct GoldenLogits<'a> {
    golden: Golden<'a>,
    seq_len: usize,
    pos: usize,
}

impl<'a> GoldenLogits<'a> {
    /// Over the quantized `model`.
    pub fn new(model: &'a QuantizedModel) -> Self {
        GoldenLogits {
            golden: Golden::new(model),
            seq_len: model.config.seq_len,
            pos: 0,
        }
    }

    fn run(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for &t in tokens {
            if self.pos >= self.seq_len {
                return Err(too_long(self.seq_len));
            }
            out = self
                .golden
                .forward(t, self.pos)
                .iter()
                .map(|&l| l as f32)
                .collect();
            self.pos += 1;
        }
        Ok(out)
    }
}

impl Logits for GoldenLogits<'_> {
    fn start(&mut self, prompt: &[u32]) -> Result<Vec<f32>> {
        self.pos = 0;
        self.run(prompt)
    }

    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.run(tokens)
    }
}
