//! The generation loop of `run.c`, shared by the float reference, the golden model and
//! (through the driver) the chip.
//!
//! `ids` semantics: every `next` token of the loop, in order — the prompt tokens after
//! BOS (forced), then sampled ones; a sampled BOS ends the list and is included.
//! `steps` counts forward passes: 0 or more than the context means the whole context.

use crate::error::{Error, Result};
use crate::tokenizer::{Tokenizer, BOS};

/// What a generation produced.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Generation {
    /// `encode(prompt, bos = 1, eos = 0)`.
    pub prompt_ids: Vec<u32>,
    /// Every `next` token of the loop (see the module documentation).
    pub ids: Vec<u32>,
    /// The bytes `run.c` prints (without its final newline).
    #[serde(skip)]
    pub text: Vec<u8>,
}

impl Generation {
    /// The printed text as a string (invalid UTF-8 replaced).
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// One forward pass per call; the thing that runs the model.
pub trait Decoder {
    /// Feeds `token` at position `pos`. When `sample` is true, returns the token the
    /// model's sampler picks for position `pos + 1`; otherwise returns `None` (the
    /// next token is forced by the prompt and sampling is skipped, as the chip's
    /// PREFILL skips it).
    fn step(&mut self, token: u32, pos: usize, sample: bool) -> Result<Option<u32>>;

    /// Positions in the model's context.
    fn seq_len(&self) -> usize;
}

/// `run.c`'s rule for `steps`: 0 or more than the context means the whole context.
pub fn effective_steps(steps: usize, seq_len: usize) -> usize {
    if steps == 0 || steps > seq_len {
        seq_len
    } else {
        steps
    }
}

/// Encodes `prompt` and checks that it fits the context.
pub fn encode_prompt(tokenizer: &Tokenizer, prompt: &str, seq_len: usize) -> Result<Vec<u32>> {
    let prompt_ids = tokenizer.encode(prompt);
    if prompt_ids.len() > seq_len {
        return Err(Error::PromptTooLong {
            tokens: prompt_ids.len(),
            seq_len,
        });
    }
    Ok(prompt_ids)
}

/// Runs `run.c`'s `generate` loop. `on_text` receives each printed piece as it is
/// produced (for streaming to a terminal).
pub fn generate(
    decoder: &mut dyn Decoder,
    tokenizer: &Tokenizer,
    prompt: &str,
    steps: usize,
    on_text: &mut dyn FnMut(&[u8]),
) -> Result<Generation> {
    let seq_len = decoder.seq_len();
    let prompt_ids = encode_prompt(tokenizer, prompt, seq_len)?;
    let steps = effective_steps(steps, seq_len);
    let mut ids = Vec::with_capacity(steps);
    let mut text = Vec::new();
    let mut token = prompt_ids[0];
    let mut pos = 0;
    while pos < steps {
        let forced = prompt_ids.get(pos + 1).copied();
        let sampled = decoder.step(token, pos, forced.is_none())?;
        let next = match (forced, sampled) {
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => {
                return Err(Error::InvalidArgument(
                    "the decoder returned no token where one was sampled".into(),
                ))
            }
        };
        pos += 1;
        ids.push(next);
        if next == BOS {
            break;
        }
        let piece = tokenizer.decode(token, next);
        on_text(piece);
        text.extend_from_slice(piece);
        token = next;
    }
    Ok(Generation {
        prompt_ids,
        ids,
        text,
    })
}
