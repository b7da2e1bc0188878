//! Accuracy of a syscall model on (request, call line) pairs: exactly the right tool
//! and arguments (after defaults), per tool.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};
use crate::registry::{Call, Registry};
use crate::understand::line;

/// The hand-written held-out requests (`agent/eval/syscall-heldout.jsonl`): natural
/// phrasings written without looking at the corpus grammar, kept out of training.
pub const HELDOUT: &str = include_str!("../../eval/syscall-heldout.jsonl");

/// One pair of an evaluation set (a line of a JSON Lines file).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Case {
    /// The request.
    pub request: String,
    /// The call line it should become (`none` to refuse).
    pub call: String,
}

/// Reads a JSON Lines evaluation set; every expected call line must parse.
pub fn read_cases(text: &str, registry: &Registry) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let case: Case = serde_json::from_str(l)
            .map_err(|e| AgentError::Invalid(format!("line {}: {e}", n + 1)))?;
        line::parse(registry, &case.call)
            .map_err(|e| AgentError::Invalid(format!("line {}: {e}", n + 1)))?;
        cases.push(case);
    }
    if cases.is_empty() {
        return Err(AgentError::Invalid("the evaluation set is empty".into()));
    }
    Ok(cases)
}

/// The outcome of one case.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The request.
    pub request: String,
    /// The expected call line.
    pub expected: String,
    /// What the model wrote (or why it failed).
    pub got: String,
    /// Tool and arguments exactly right.
    pub correct: bool,
}

/// Accuracy of one tool (or of refusals, `none`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ToolScore {
    /// Cases that expect this tool.
    pub cases: usize,
    /// Of them, understood exactly.
    pub correct: usize,
    /// Of them, the right tool with some argument wrong.
    pub right_tool: usize,
}

/// Accuracy over a set.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Cases.
    pub cases: usize,
    /// Exactly right.
    pub correct: usize,
    /// `correct / cases`.
    pub accuracy: f64,
    /// Per expected tool.
    pub per_tool: BTreeMap<String, ToolScore>,
    /// Every case.
    pub outcomes: Vec<Outcome>,
}

/// What a request became: the call line written, and the call (`None`: refused).
pub type Reading = (String, Option<Call>);

/// Scores `cases` with `understand` (a request to what it became, or an error).
pub fn evaluate(
    registry: &Registry,
    cases: &[Case],
    understand: &mut dyn FnMut(&str) -> Result<Reading>,
) -> Result<Report> {
    let mut report = Report::default();
    for case in cases {
        let expected = line::parse(registry, &case.call)?;
        let (got, call) = match understand(&case.request) {
            Ok(x) => x,
            Err(e) => (format!("error: {e}"), None),
        };
        let failed = got.starts_with("error: ");
        let correct = !failed && call == expected;
        let name = expected.as_ref().map_or(line::NONE, |c| c.tool.as_str());
        let score = report.per_tool.entry(name.to_string()).or_default();
        score.cases += 1;
        if correct {
            score.correct += 1;
        }
        if !failed && call.as_ref().map(|c| &c.tool) == expected.as_ref().map(|c| &c.tool) {
            score.right_tool += 1;
        }
        report.cases += 1;
        report.correct += correct as usize;
        report.outcomes.push(Outcome {
            request: case.request.clone(),
            expected: case.call.clone(),
            got,
            correct,
        });
    }
    report.accuracy = report.correct as f64 / report.cases.max(1) as f64;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_out_set_parses_and_covers_every_shipped_tool() {
        let r = Registry::default();
        let cases = read_cases(HELDOUT, &r).unwrap();
        assert!(cases.len() >= 100);
        let report = evaluate(&r, &cases, &mut |_| Ok(("none".into(), None))).unwrap();
        assert_eq!(report.per_tool.len(), 8, "{:?}", report.per_tool.keys());
        assert!(report.per_tool.values().all(|s| s.cases >= 10));
        // Refusing everything is right only for the refusals.
        assert_eq!(report.correct, report.per_tool["none"].cases);
    }

    /// With the defaults of `etch train syscall` (50,000 pairs, seed 1): the corpus the
    /// shipped model was trained on holds none of the held-out requests.
    #[test]
    fn the_generator_never_writes_a_held_out_request() {
        let r = Registry::default();
        let held: std::collections::BTreeSet<String> = read_cases(HELDOUT, &r)
            .unwrap()
            .into_iter()
            .map(|c| c.request.to_lowercase())
            .collect();
        for e in crate::understand::corpus::generate(&r, 50_000, 1) {
            assert!(!held.contains(&e.request.to_lowercase()), "{}", e.request);
        }
    }
}
