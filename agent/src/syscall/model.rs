//! The on-chip model as a chooser of tools: the log-likelihood of each candidate
//! after the request (SCORE on the chip, through the runtime's engine).

use super::*;

/// The on-chip model as a chooser of tools: the log-likelihood of each candidate
/// (an English rendering) after the request, higher is likelier.
pub trait Model {
    /// One score per candidate.
    fn rank(&self, request: &str, candidates: &[String]) -> Result<Vec<f64>>;
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
