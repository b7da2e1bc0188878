//! The syscall model's next-token logits from software — the float model (`run.c`'s
//! arithmetic) or the golden model (the chip's integers, bit-exact) — for `etch agent
//! understand` and `etch train syscall`'s evaluation. The chip's own logits come from
//! `etch_agent::SyscallModel`.

use etch_agent::understand::Logits;
use etch_agent::{AgentError, Result};
use etch_compiler::{Checkpoint, Golden, QuantizedModel, Reference};

/// A model run one position at a time by `forward(token, pos)`, positions counted here.
pub struct Stepped<F> {
    forward: F,
    seq_len: usize,
    pos: usize,
}

impl<F: FnMut(u32, usize) -> Vec<f32>> Stepped<F> {
    fn run(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for &t in tokens {
            if self.pos >= self.seq_len {
                return Err(AgentError::Invalid(format!(
                    "the request and its call do not fit the model's {} positions",
                    self.seq_len
                )));
            }
            out = (self.forward)(t, self.pos);
            self.pos += 1;
        }
        Ok(out)
    }
}

impl<F: FnMut(u32, usize) -> Vec<f32>> Logits for Stepped<F> {
    fn start(&mut self, prompt: &[u32]) -> Result<Vec<f32>> {
        // The KV cache is overwritten position by position: starting over is pos 0.
        self.pos = 0;
        self.run(prompt)
    }

    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.run(tokens)
    }
}

/// The float model.
pub fn float(checkpoint: &Checkpoint) -> impl Logits + '_ {
    let mut reference = Reference::new(checkpoint);
    Stepped {
        seq_len: checkpoint.config().seq_len,
        pos: 0,
        forward: move |t, pos| reference.forward(t, pos).to_vec(),
    }
}

/// The golden model of the quantized `model`.
pub fn golden(model: &QuantizedModel) -> impl Logits + '_ {
    let mut golden = Golden::new(model);
    Stepped {
        seq_len: model.config.seq_len,
        pos: 0,
        forward: move |t, pos| golden.forward(t, pos).iter().map(|&l| l as f32).collect(),
    }
}
