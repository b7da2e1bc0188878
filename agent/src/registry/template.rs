//! The template matcher: a request is normalized (case, spaces, politeness), then
//! matched against templates like "move {src} to {dst}" — literal words in order,
//! placeholders taking the words between, quoted values kept whole — and the words of
//! a request sorted by what they could be (paths, a recipient, quoted text or a
//! command) for the model's candidates.

use std::collections::BTreeMap;

use super::tool::ArgType;

/// Lower case, single spaces, no "please", no closing punctuation — but the text of
/// quoted values is kept as written.
pub(super) fn normalize(request: &str) -> String {
    let mut s: String = request.split_whitespace().collect::<Vec<_>>().join(" ");
    for p in ["please ", "Please ", "could you ", "Could you "] {
        if let Some(rest) = s.strip_prefix(p) {
            s = rest.to_string();
        }
    }
    while s.ends_with(['.', '!', '?']) || s.ends_with(" please") {
        if let Some(r) = s.strip_suffix(" please") {
            s = r.to_string();
        } else {
            s.pop();
        }
    }
    s
}

pub(super) fn literal_len(template: &str) -> usize {
    pieces(template)
        .iter()
        .map(|p| match p {
            Piece::Lit(l) => l.chars().count(),
            Piece::Hole(_) => 0,
        })
        .sum()
}

pub(super) fn placeholders(template: &str) -> Vec<String> {
    pieces(template)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Hole(h) => Some(h),
            Piece::Lit(_) => None,
        })
        .collect()
}

enum Piece {
    Lit(String),
    Hole(String),
}

fn pieces(template: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        if i > 0 {
            out.push(Piece::Lit(rest[..i].to_lowercase()));
        }
        out.push(Piece::Hole(rest[i + 1..i + j].to_string()));
        rest = &rest[i + j + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest.to_lowercase()));
    }
    out
}

/// Matches a request against one template: literals case-insensitively, each hole a
/// non-empty stretch (the shortest that lets the rest match); values are trimmed and
/// lose one pair of surrounding quotes.
pub(super) fn match_one(template: &str, request: &str) -> Option<BTreeMap<String, String>> {
    let ps = pieces(template);
    // Lower-casing keeps byte offsets only for ASCII; match on chars instead.
    let req: Vec<char> = request.chars().collect();
    let low: Vec<char> = request.chars().flat_map(char::to_lowercase).collect();
    if low.len() != req.len() {
        return None;
    }
    let mut out = BTreeMap::new();
    if go(&ps, 0, &req, &low, 0, &mut out) {
        Some(out)
    } else {
        None
    }
}

fn go(
    ps: &[Piece],
    k: usize,
    req: &[char],
    low: &[char],
    at: usize,
    out: &mut BTreeMap<String, String>,
) -> bool {
    match ps.get(k) {
        None => at == req.len(),
        Some(Piece::Lit(l)) => {
            let l: Vec<char> = l.chars().collect();
            if low.len() >= at + l.len() && low[at..at + l.len()] == l[..] {
                go(ps, k + 1, req, low, at + l.len(), out)
            } else {
                false
            }
        }
        Some(Piece::Hole(name)) => {
            let ends: Vec<usize> = if k + 1 == ps.len() {
                vec![req.len()]
            } else {
                (at + 1..=req.len()).collect()
            };
            for end in ends {
                if end <= at {
                    continue;
                }
                let raw: String = req[at..end].iter().collect();
                let v = unquote(raw.trim());
                if v.is_empty() || (k + 1 < ps.len() && quoted_open(&raw)) {
                    continue;
                }
                out.insert(name.clone(), v);
                if go(ps, k + 1, req, low, end, out) {
                    return true;
                }
                out.remove(name);
            }
            false
        }
    }
}

/// True when a stretch opens a quote it does not close (the hole must go on).
fn quoted_open(s: &str) -> bool {
    let t = s.trim_start();
    for q in ['"', '\'', '`'] {
        if t.starts_with(q) && !(t.len() > 1 && t.trim_end().ends_with(q)) {
            return true;
        }
    }
    false
}

fn unquote(s: &str) -> String {
    for q in ['"', '\'', '`'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

/// The values a request offers, by type (for the model's candidates).
pub(super) struct Words {
    pub(super) paths: Vec<String>,
    pub(super) recipient: Option<String>,
    pub(super) text: Option<String>,
    pub(super) command: Option<String>,
}

impl Words {
    pub(super) fn of(request: &str) -> Words {
        let quoted: Vec<String> = request
            .split(['"', '`'])
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let bare: Vec<&str> = request
            .split(['"', '`'])
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .flat_map(|(_, s)| s.split_whitespace())
            .collect();
        let paths: Vec<String> = bare
            .iter()
            .map(|w| w.trim_end_matches([',', ';', ':']))
            .filter(|w| {
                w.contains('/') || (w.contains('.') && !w.ends_with('.') && !w.starts_with('.'))
            })
            .map(str::to_string)
            .collect();
        let recipient = bare
            .windows(2)
            .find(|w| {
                w[0].eq_ignore_ascii_case("to")
                    && ArgType::Recipient.check(w[1]).is_ok()
                    && !w[1].contains('/')
            })
            .map(|w| w[1].to_string());
        let after = |keys: &[&str]| {
            let low = request.to_lowercase();
            keys.iter()
                .filter_map(|k| {
                    low.find(k)
                        .map(|i| request[i + k.len()..].trim().to_string())
                })
                .find(|s| !s.is_empty())
        };
        let text = quoted
            .first()
            .cloned()
            .or_else(|| after(&[" saying ", " that ", ": ", " with "]));
        // A command is never made up from prose: only a quoted one is offered.
        let command = quoted.first().cloned();
        Words {
            paths,
            recipient,
            text,
            command,
        }
    }
}
