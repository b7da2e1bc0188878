//! The on-chip model, in either of its roles: a **syscall model** that writes the call
//! for a request under constrained decoding ([`SyscallModel`], the chip of
//! `models/syscall.bin`), or a language model that ranks the registry's candidates by
//! their log-likelihood after the request (SCORE, any model: `Engine` itself).

use super::*;
use crate::understand::{self, Logits, Understood, Vocabulary};

/// The on-chip model as the understander of requests.
pub trait Model {
    /// One score per candidate (an English rendering of a call), higher is likelier.
    fn rank(&self, request: &str, candidates: &[String]) -> Result<Vec<f64>>;
    /// Whether this is a syscall model, which writes calls ([`Model::understand`]).
    fn writes_calls(&self) -> bool {
        false
    }
    /// Writes the call for `request` under the registry's grammar, if this is a syscall
    /// model (`None`: it only ranks).
    fn understand(&self, _registry: &Registry, _request: &str) -> Option<Result<Understood>> {
        None
    }
    /// Context events since the last call, in English (for the audit log).
    fn events(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<D: etch_driver::Device> Model for etch_runtime::Engine<D> {
    fn rank(&self, request: &str, candidates: &[String]) -> Result<Vec<f64>> {
        // Each candidate's mean log-likelihood after the request. A request too long
        // for the chip's positions (with a candidate) is cut from the front; the
        // request's own score is taken once per cut.
        let mut req: &str = request;
        let mut prefix: Option<(f64, usize)> = None;
        let mut out = Vec::with_capacity(candidates.len());
        for c in candidates {
            let score = loop {
                match self.score(&format!("{req}\n{c}")) {
                    Ok(s) => {
                        let (p_total, p_len) = match prefix {
                            Some(p) => p,
                            None => {
                                let p = self.score(&format!("{req}\n"))?;
                                *prefix.insert((p.total, p.tokens.len()))
                            }
                        };
                        let n = s.tokens.len().saturating_sub(p_len).max(1);
                        break (s.total - p_total) / n as f64;
                    }
                    Err(e) if req.is_empty() => return Err(e.into()),
                    Err(_) => {
                        let cut = req
                            .char_indices()
                            .nth(req.chars().count() / 2)
                            .map_or(req.len(), |(i, _)| i);
                        req = &req[cut..];
                        prefix = None;
                    }
                }
            };
            out.push(score);
        }
        Ok(out)
    }

    fn events(&self) -> Vec<String> {
        self.take_events().iter().map(|e| e.describe()).collect()
    }
}

/// The chip of a syscall model (`models/syscall.bin`), which writes calls.
pub struct SyscallModel<'e, D: etch_driver::Device> {
    engine: &'e etch_runtime::Engine<D>,
    vocabulary: Vocabulary,
    /// Chip cycles of the last request (prefill and decoding).
    last_cycles: Mutex<Option<u64>>,
}

impl<'e, D: etch_driver::Device> SyscallModel<'e, D> {
    /// Over an open engine whose chip holds a syscall model.
    pub fn new(engine: &'e etch_runtime::Engine<D>) -> Self {
        SyscallModel {
            vocabulary: Vocabulary::of(engine.tokenizer()),
            engine,
            last_cycles: Mutex::new(None),
        }
    }

    /// Chip cycles the last request took (its prompt's prefill and every decoding
    /// step), when the chip counts them.
    pub fn last_cycles(&self) -> Option<u64> {
        *self.last_cycles.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Next-token logits from the chip: PREFILL with LAST_LOGITS (the classifier runs for
/// the last token only) on a scratch slot.
struct ChipLogits<'c, D: etch_driver::Device> {
    chip: &'c etch_driver::Chip<D>,
    slot: u8,
    fresh: bool,
}

impl<D: etch_driver::Device> ChipLogits<'_, D> {
    fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let last = self
            .chip
            .prefill_last(self.slot, tokens)
            .map_err(etch_runtime::RuntimeError::from)?;
        Ok(last.iter().map(|&l| l as f32).collect())
    }
}

impl<D: etch_driver::Device> Logits for ChipLogits<'_, D> {
    fn start(&mut self, prompt: &[u32]) -> Result<Vec<f32>> {
        if !self.fresh {
            self.chip
                .destroy_context(self.slot)
                .and_then(|()| self.chip.create_context(self.slot))
                .map_err(etch_runtime::RuntimeError::from)?;
        }
        self.fresh = false;
        self.prefill(prompt)
    }

    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.prefill(tokens)
    }
}

impl<D: etch_driver::Device> Model for SyscallModel<'_, D> {
    fn writes_calls(&self) -> bool {
        true
    }

    fn rank(&self, request: &str, candidates: &[String]) -> Result<Vec<f64>> {
        self.engine.rank(request, candidates)
    }

    fn understand(&self, registry: &Registry, request: &str) -> Option<Result<Understood>> {
        let prompt = understand::prompt(self.engine.tokenizer(), request);
        let max = self.engine.manifest().max_seq;
        if prompt.len() >= max {
            return Some(Err(AgentError::Invalid(format!(
                "the request is {} tokens; the syscall model reads at most {}",
                prompt.len(),
                max - 1
            ))));
        }
        let before = self.engine.chip().cycles().ok();
        let r = self.engine.with_scratch_context(|chip, slot| {
            let mut logits = ChipLogits {
                chip,
                slot,
                fresh: true,
            };
            understand::understand(registry, &self.vocabulary, &mut logits, request, &prompt)
        });
        let after = self.engine.chip().cycles().ok();
        *self.last_cycles.lock().unwrap_or_else(|e| e.into_inner()) =
            before.zip(after).map(|(b, a)| a.saturating_sub(b));
        Some(r)
    }

    fn events(&self) -> Vec<String> {
        Model::events(self.engine)
    }
}
