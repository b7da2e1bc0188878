//! Constrained decoding: only well-formed calls come out of the model.
//!
//! The model writes a call line after the request, one token at a time. Before each
//! choice every token of the vocabulary is checked against a grammar built from the
//! registry and the request, and the model's best *allowed* token is taken:
//!
//! * the tool's name is one of the registry's (or `none`);
//! * argument names come from that tool, in its order (trailing defaulted ones may be
//!   left out);
//! * every value is copied from the request: it starts where a word starts and ends
//!   where a word ends (quotes and trailing punctuation are boundaries), and fits its
//!   type (a recipient is one name, a path has no control characters).
//!
//! Tokens that are the only allowed continuation (`path="` after `fs.read`) are not
//! chosen but fed together with the next choice, so the model runs once per real
//! decision. The result still goes through capabilities, staging and the audit log:
//! the model proposes, the checks decide.

use etch_contract::Tokenizer;

use crate::error::{AgentError, Result};
use crate::registry::{ArgType, Call, Registry};
use crate::understand::{corpus, line};

/// A language model, one token at a time: the logits of the next token.
pub trait Logits {
    /// Starts over with `prompt` (from BOS) and returns the logits after its last token.
    fn start(&mut self, prompt: &[u32]) -> Result<Vec<f32>>;
    /// Feeds `tokens` after what came before and returns the logits after the last.
    fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;
}

/// How a text stands against the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    /// No call line starts with it.
    Invalid,
    /// Some call line starts with it.
    Prefix,
    /// It is a whole call line and its newline.
    Complete,
}

struct ToolShape {
    name: Vec<u8>,
    /// Argument names (with `="` appended), types, and whether each has a default.
    args: Vec<(Vec<u8>, ArgType, bool)>,
    /// Whether the request holds a value for each argument without a default, each
    /// from its own place (`fs.move` needs two paths).
    feasible: bool,
}

/// Bytes `start..end` of the request that a value is copied from.
type Span = (usize, usize);

/// The call lines allowed for one request.
pub struct Grammar {
    tools: Vec<ToolShape>,
    request: Vec<u8>,
    /// Byte offsets where a copied value may start, each with the offset of its closing
    /// quote when it starts just inside a quotation.
    starts: Vec<(usize, Option<usize>)>,
    /// Whether an unquoted value may end at each offset.
    ends: Vec<bool>,
    /// Every byte a call line for this request can hold: the request's, the tools'
    /// and arguments' names', and the line's own marks.
    alphabet: Vec<u8>,
}

/// English function words (articles, pronouns, prepositions, conjunctions, auxiliaries,
/// question words): never an unquoted path or recipient. A file really named `the` is
/// written quoted.
const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but",
    "by", "can", "could", "did", "do", "does", "each", "every", "for", "from", "had", "has",
    "have", "he", "her", "here", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its",
    "just", "may", "me", "might", "must", "my", "no", "not", "now", "of", "off", "on", "onto",
    "or", "our", "out", "over", "please", "she", "should", "so", "some", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "those", "to", "too", "under", "up",
    "us", "was", "we", "were", "what", "when", "where", "which", "who", "whom", "whose", "why",
    "will", "with", "would", "you", "your", // particles
    "away", "back", "down", // and contractions
    "can't", "didn't", "doesn't", "don't", "here's", "i'd", "i'll", "i'm", "i've", "isn't", "it's",
    "let's", "that's", "there's", "what's", "won't", "you're",
];

/// A recipient's characters (`ArgType::Recipient`).
fn is_recipient(v: &[u8]) -> bool {
    v.iter()
        .all(|&c| c.is_ascii_alphanumeric() || b"._-+@".contains(&c))
}

/// Whether `word` is a word of the request language itself rather than a name: an
/// English function word, or a word the paraphrase grammar writes around values (its
/// verbs and descriptors: `view`, `folder`, `called`, `trash`). Never an unquoted path
/// or recipient; a file really named `view` is written quoted.
pub(crate) fn is_request_word(word: &[u8]) -> bool {
    FUNCTION_WORDS
        .iter()
        .any(|w| w.as_bytes().eq_ignore_ascii_case(word))
        || std::str::from_utf8(word)
            .is_ok_and(|w| corpus::request_words().contains(&w.to_ascii_lowercase()))
}

/// Whether an unquoted word can name a file or a person: no word of the request
/// language, at least one letter or digit (or only dots: `.`, `..`), and no sentence
/// punctuation at its end (`folder?` names `folder`).
fn is_name(word: &[u8]) -> bool {
    if !word.is_empty() && word.iter().all(|&b| b == b'.') {
        return true;
    }
    word.iter().any(u8::is_ascii_alphanumeric)
        && !word.last().is_some_and(|b| b".,;:!?".contains(b))
        && !is_request_word(word)
}

/// Whether a whole value `v` fits its type: a recipient is one name; a path of several
/// words has a dot or a slash (`"my notes.txt"`; a quotation like `"npm install"` or
/// `"call the plumber"` is text, not a file name).
fn fits_type(v: &[u8], ty: ArgType) -> bool {
    match ty {
        ArgType::Recipient => is_recipient(v),
        ArgType::Path => {
            !v.iter().any(u8::is_ascii_whitespace) || v.iter().any(|b| b"./".contains(b))
        }
        ArgType::Text | ArgType::Command => true,
    }
}

/// Whether two spans share no byte.
fn disjoint(a: Span, b: Span) -> bool {
    a.1 <= b.0 || b.1 <= a.0
}

/// Quotation marks and brackets that open a value.
fn opens(b: u8) -> bool {
    b"\"'`([{<".contains(&b)
}

fn closes(b: u8) -> bool {
    b.is_ascii_whitespace() || b"\"'`)]}>".contains(&b)
}

impl Grammar {
    /// The grammar of `registry`'s tools for `request`.
    pub fn new(registry: &Registry, request: &str) -> Self {
        let r = request.as_bytes().to_vec();
        let n = r.len();
        // A word starts after whitespace, or after an opening mark that itself starts a
        // word ("'" in "what's" does not). A quotation (" ' `) runs to the same mark.
        let word_start = |p: usize| p == 0 || r[p - 1].is_ascii_whitespace();
        let mut starts = Vec::new();
        for p in 0..n {
            if r[p].is_ascii_whitespace() {
                continue;
            }
            if word_start(p) {
                starts.push((p, None));
            } else if opens(r[p - 1]) && (word_start(p - 1) || b":([{".contains(&r[p - 2])) {
                let mark = r[p - 1];
                let close = b"\"'`"
                    .contains(&mark)
                    .then(|| r[p..].iter().position(|&b| b == mark).map(|i| p + i))
                    .flatten();
                starts.push((p, close));
            }
        }
        // A word inside a quotation starts no value of its own: the quotation is one
        // value, copied whole ("DM judy \"meeting moved to friday\"" has no recipient
        // "moved").
        let quoted: Vec<(usize, usize)> = starts
            .iter()
            .filter_map(|&(p, close)| close.map(|c| (p, c)))
            .collect();
        starts
            .retain(|&(p, close)| close.is_some() || !quoted.iter().any(|&(a, c)| a < p && p <= c));
        // A word ends before whitespace, a closing mark, or a run of punctuation that
        // ends the word ("notes.txt?!").
        let ends = (0..=n)
            .map(|e| {
                let rest = r[e..]
                    .iter()
                    .position(|&b| closes(b))
                    .map_or(&r[e..], |i| &r[e..e + i]);
                e > 0
                    && !r[e - 1].is_ascii_whitespace()
                    && rest.iter().all(|b| b".,;:!?".contains(b))
            })
            .collect();
        let mut grammar = Grammar {
            tools: Vec::new(),
            request: r,
            starts,
            ends,
            alphabet: Vec::new(),
        };
        let tools: Vec<ToolShape> = registry
            .tools()
            .iter()
            .filter(|t| t.approval != crate::registry::Approval::Never)
            .map(|t| {
                let required: Vec<ArgType> = t
                    .args
                    .iter()
                    .filter(|a| a.default.is_none())
                    .map(|a| a.ty)
                    .collect();
                ToolShape {
                    name: t.name.as_bytes().to_vec(),
                    args: t
                        .args
                        .iter()
                        .map(|a| {
                            (
                                format!("{}=\"", a.name).into_bytes(),
                                a.ty,
                                a.default.is_some(),
                            )
                        })
                        .collect(),
                    feasible: grammar.fillable(&required, &mut Vec::new()),
                }
            })
            .chain(std::iter::once(ToolShape {
                name: line::NONE.as_bytes().to_vec(),
                args: Vec::new(),
                feasible: true,
            }))
            .collect();
        let mut alphabet: Vec<u8> = grammar.request.clone();
        for t in &tools {
            alphabet.extend_from_slice(&t.name);
            alphabet.extend(t.args.iter().flat_map(|a| a.0.iter().copied()));
        }
        alphabet.extend_from_slice(b" =\"\n");
        alphabet.sort_unstable();
        alphabet.dedup();
        grammar.alphabet = alphabet;
        grammar.tools = tools;
        grammar
    }

    /// The rest of the line when `text` can end in one way only: the bytes that make
    /// it a whole call line, or `None` while the grammar still allows a choice (of a
    /// tool, a place to copy from, or where an optional argument begins). After the
    /// last value's first bytes have pinned its place, every call the model could
    /// still write is this one.
    fn only_completion(&self, text: &[u8]) -> Option<Vec<u8>> {
        let mut line = text.to_vec();
        let limit = text.len() + self.request.len() + 256;
        while line.len() < limit {
            let mut next = None;
            for &b in &self.alphabet {
                line.push(b);
                let fit = self.fit(&line);
                line.pop();
                if fit != Fit::Invalid {
                    if next.is_some() {
                        return None;
                    }
                    next = Some((b, fit));
                }
            }
            let (b, fit) = next?;
            line.push(b);
            if fit == Fit::Complete {
                return Some(line.split_off(text.len()));
            }
        }
        None
    }

    /// Whether values of the types `args` can all be copied from the request, each
    /// from a place none of the others (`taken`) uses.
    fn fillable(&self, args: &[ArgType], taken: &mut Vec<Span>) -> bool {
        let Some((&ty, rest)) = args.split_first() else {
            return true;
        };
        self.places(ty).into_iter().any(|span| {
            if !taken.iter().all(|&t| disjoint(t, span)) {
                return false;
            }
            taken.push(span);
            let ok = self.fillable(rest, taken);
            taken.pop();
            ok
        })
    }

    /// Whether the values written (each with the places it can have come from) can
    /// sit in places of their own with values of the types `needed` beside them.
    fn fillable_beside(
        &self,
        written: &[Vec<Span>],
        needed: &[ArgType],
        used: &mut Vec<Span>,
    ) -> bool {
        let Some((places, rest)) = written.split_first() else {
            return self.fillable(needed, used);
        };
        places.iter().any(|&span| {
            if !used.iter().all(|&t| disjoint(t, span)) {
                return false;
            }
            used.push(span);
            let ok = self.fillable_beside(rest, needed, used);
            used.pop();
            ok
        })
    }

    /// Every place a whole value of type `ty` can be copied from: each quotation whose
    /// text fits the type, and for a path or recipient each word that is no word of the
    /// request language (contents, bodies and commands are always quoted).
    fn places(&self, ty: ArgType) -> Vec<Span> {
        let r = &self.request;
        let mut out = Vec::new();
        for &(s, close) in &self.starts {
            if close.is_none() && opens(r[s]) {
                continue;
            }
            let word_end = r[s..]
                .iter()
                .position(u8::is_ascii_whitespace)
                .map_or(r.len(), |i| s + i);
            match close {
                Some(c) if c > s && fits_type(&r[s..c], ty) => out.push((s, c)),
                Some(_) => {}
                None if matches!(ty, ArgType::Path | ArgType::Recipient) => {
                    if let Some(e) = (s + 1..=word_end).find(|&e| {
                        self.ends[e]
                            && is_name(&r[s..e])
                            && fits_type(&r[s..e], ty)
                            && !r[s..e].iter().any(|b| b"\"\\\n".contains(b))
                    }) {
                        out.push((s, e));
                    }
                }
                None => {}
            }
        }
        out
    }

    /// The places `v` (a value's first bytes, or all of it when `whole`) can be copied
    /// from: a quoted value is the whole quotation; an unquoted path or recipient is one
    /// word. Contents, bodies and commands are always quoted (the corpus never writes
    /// them bare), so "thanks, that's all" has no command in it.
    fn copies(&self, v: &[u8], whole: bool, ty: ArgType) -> Vec<Span> {
        if v.is_empty() || v.contains(&b'"') || v.contains(&b'\\') || v.contains(&b'\n') {
            return Vec::new();
        }
        if ty == ArgType::Recipient && !is_recipient(v) {
            return Vec::new();
        }
        let one_word = matches!(ty, ArgType::Path | ArgType::Recipient);
        self.starts
            .iter()
            .filter_map(|&(s, close)| {
                let end = s + v.len();
                // A value starts inside a quotation, not at its mark.
                if !self.request[s..].starts_with(v) || close.is_none() && opens(self.request[s]) {
                    return None;
                }
                match close {
                    // The whole quotation must be a value of the type.
                    Some(c) => {
                        (end <= c && (!whole || end == c) && fits_type(&self.request[s..c], ty))
                            .then_some((s, c))
                    }
                    None if one_word => {
                        // One word, and not a word of the request language ("the",
                        // "for", "view"): some end of the word at or after `end` must
                        // give a name.
                        let word_end = self.request[s..]
                            .iter()
                            .position(u8::is_ascii_whitespace)
                            .map_or(self.request.len(), |i| s + i);
                        (end <= word_end
                            && (end..=word_end).any(|e| {
                                (e == end || !whole) && self.ends[e] && is_name(&self.request[s..e])
                            }))
                        .then_some((s, end))
                    }
                    None => None,
                }
            })
            .collect()
    }

    /// Whether `call_line` (without its leading space and newline) is a whole call line
    /// of this grammar.
    pub fn allows(&self, call_line: &str) -> bool {
        self.fit(format!(" {call_line}\n").as_bytes()) == Fit::Complete
    }

    /// How `text` (what the model wrote after the request) stands.
    fn fit(&self, text: &[u8]) -> Fit {
        let Some(rest) = text.strip_prefix(b" ") else {
            return if text.is_empty() {
                Fit::Prefix
            } else {
                Fit::Invalid
            };
        };
        let name_end = rest
            .iter()
            .position(|&b| b == b' ' || b == b'\n')
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name_end == rest.len() {
            return if self
                .tools
                .iter()
                .any(|t| t.feasible && t.name.starts_with(name))
            {
                Fit::Prefix
            } else {
                Fit::Invalid
            };
        }
        let Some(tool) = self.tools.iter().find(|t| t.feasible && t.name == name) else {
            return Fit::Invalid;
        };
        // The places of the values written so far: each value comes from a place of
        // its own (`fs.move src="a.txt" dst="a.txt"` copies one word twice).
        let mut taken: Vec<Vec<Span>> = Vec::new();
        // Whether the arguments from the `i`th on (the `i`th itself when `with_ith`,
        // and those after it without a default) can still be filled beside the values
        // written.
        let open = |i: usize, with_ith: bool, taken: &[Vec<Span>]| -> bool {
            let needed: Vec<ArgType> = tool.args[i..]
                .iter()
                .enumerate()
                .filter(|(k, a)| *k == 0 && with_ith || !a.2)
                .map(|(_, a)| a.1)
                .collect();
            self.fillable_beside(taken, &needed, &mut Vec::new())
        };
        let mut at = &rest[name_end..];
        for (i, (arg, ty, _)) in tool.args.iter().enumerate() {
            // After the name or a closing quote: a newline ends the line when every
            // argument left has a default.
            if at == b"\n" {
                return if tool.args[i..].iter().all(|a| a.2) {
                    Fit::Complete
                } else {
                    Fit::Invalid
                };
            }
            let Some(after_space) = at.strip_prefix(b" ") else {
                return if at.is_empty() {
                    Fit::Prefix
                } else {
                    Fit::Invalid
                };
            };
            if !open(i, true, &taken) {
                return Fit::Invalid;
            }
            if after_space.len() < arg.len() {
                return if arg.starts_with(after_space) {
                    Fit::Prefix
                } else {
                    Fit::Invalid
                };
            }
            let Some(value_on) = after_space.strip_prefix(arg.as_slice()) else {
                return Fit::Invalid;
            };
            match value_on.iter().position(|&b| b == b'"') {
                // A value being written, or closed: it must come from a place of its
                // own, leaving places for what must follow it.
                None if value_on.is_empty() => return Fit::Prefix,
                None => {
                    taken.push(self.copies(value_on, false, *ty));
                    return if open(i + 1, false, &taken) {
                        Fit::Prefix
                    } else {
                        Fit::Invalid
                    };
                }
                Some(q) => {
                    taken.push(self.copies(&value_on[..q], true, *ty));
                    if !open(i + 1, false, &taken) {
                        return Fit::Invalid;
                    }
                    at = &value_on[q + 1..];
                }
            }
        }
        match at {
            b"" => Fit::Prefix,
            b"\n" => Fit::Complete,
            _ => Fit::Invalid,
        }
    }
}

/// What the model understood a request as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Understood {
    /// The call line it wrote.
    pub line: String,
    /// The call, validated against the registry (`None`: refused).
    pub call: Option<Call>,
    /// Tokens of the request's prompt.
    pub prompt_tokens: usize,
    /// Tokens of the call line the model wrote (chose or was fed); once the line could
    /// end one way only, the grammar wrote the rest without running the model.
    pub call_tokens: usize,
    /// Times the model ran to choose (each after feeding one or more tokens).
    pub choices: usize,
}

/// The longest call line, in tokens, before decoding gives up.
const MAX_CALL_TOKENS: usize = 160;

/// A tokenizer's view for decoding: what each token writes.
pub struct Vocabulary {
    /// The bytes token `id` adds to a text (not at its start).
    pub pieces: Vec<Vec<u8>>,
}

/// The prompt a request is written as: BOS, the request, a newline.
pub fn prompt_text(request: &str) -> String {
    format!("{}\n", request.trim())
}

/// The request's prompt as tokens: BOS, the request, a newline.
pub fn prompt(tokenizer: &Tokenizer, request: &str) -> Vec<u32> {
    tokenizer.encode_with(&prompt_text(request), true, false)
}

/// The call line as the model is trained to write it after the prompt (the tokenizer
/// puts a space before it; a newline ends it).
pub fn completion(tokenizer: &Tokenizer, call_line: &str) -> Vec<u32> {
    tokenizer.encode_with(&format!("{call_line}\n"), false, false)
}

impl Vocabulary {
    /// What each token of `tokenizer` writes after another token (not at a text's
    /// start, where the tokenizer drops a leading space); BOS, EOS and unknown write
    /// nothing and are never chosen.
    pub fn of(tokenizer: &Tokenizer) -> Self {
        let prev = tokenizer
            .encode_with("a", false, false)
            .last()
            .copied()
            .unwrap_or(3);
        Vocabulary {
            pieces: (0..tokenizer.vocab_size() as u32)
                .map(|id| {
                    if id < 3 {
                        Vec::new()
                    } else {
                        tokenizer.decode(prev, id).to_vec()
                    }
                })
                .collect(),
        }
    }
}

/// Decodes the call line for `request` from `model` under the grammar: greedy over the
/// allowed tokens, forced tokens fed in runs. `prompt` is the request's prompt as
/// tokens (`prompt_text`, from BOS).
pub fn understand(
    registry: &Registry,
    vocabulary: &Vocabulary,
    model: &mut dyn Logits,
    request: &str,
    prompt: &[u32],
) -> Result<Understood> {
    let grammar = Grammar::new(registry, request.trim());
    let mut text: Vec<u8> = Vec::new();
    let mut logits = model.start(prompt)?;
    let mut pending: Vec<u32> = Vec::new();
    let mut call_tokens = 0;
    let mut choices = 1;
    loop {
        if call_tokens >= MAX_CALL_TOKENS {
            return Err(AgentError::Invalid(format!(
                "the model wrote {MAX_CALL_TOKENS} tokens without finishing a call line"
            )));
        }
        let mut allowed: Vec<(u32, Fit)> = Vec::new();
        for (id, piece) in vocabulary.pieces.iter().enumerate() {
            if piece.is_empty() {
                continue;
            }
            let mut t = text.clone();
            t.extend_from_slice(piece);
            match grammar.fit(&t) {
                Fit::Invalid => {}
                f => allowed.push((id as u32, f)),
            }
        }
        let (token, fit) = match allowed.as_slice() {
            [] => {
                return Err(AgentError::Invalid(format!(
                    "no token continues the call line {:?}",
                    String::from_utf8_lossy(&text)
                )))
            }
            [only] => *only,
            _ => {
                if !pending.is_empty() {
                    logits = model.feed(&pending)?;
                    pending.clear();
                    choices += 1;
                }
                *allowed
                    .iter()
                    .max_by(|a, b| {
                        let la = logits.get(a.0 as usize).copied().unwrap_or(f32::MIN);
                        let lb = logits.get(b.0 as usize).copied().unwrap_or(f32::MIN);
                        la.total_cmp(&lb).then(b.0.cmp(&a.0))
                    })
                    .expect("allowed is not empty")
            }
        };
        text.extend_from_slice(&vocabulary.pieces[token as usize]);
        call_tokens += 1;
        if fit == Fit::Complete {
            break;
        }
        // Once the line can end one way only, no choice is left for the model: the
        // grammar writes the rest, and the tokens it would have taken are not run.
        if let Some(rest) = grammar.only_completion(&text) {
            text.extend_from_slice(&rest);
            break;
        }
        pending.push(token);
    }
    let written = String::from_utf8_lossy(&text).trim().to_string();
    let call = line::parse(registry, &written)?;
    Ok(Understood {
        line: written,
        call,
        prompt_tokens: prompt.len(),
        call_tokens,
        choices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grammar(request: &str) -> Grammar {
        Grammar::new(&Registry::default(), request)
    }

    #[test]
    fn the_grammar_allows_tools_copied_values_and_nothing_else() {
        let g = grammar("please move \"a.txt\" to old/b.txt?");
        let fit = |t: &str| g.fit(t.as_bytes());
        assert_eq!(fit(""), Fit::Prefix);
        assert_eq!(fit(" fs.m"), Fit::Prefix);
        assert_eq!(fit(" fs.mv"), Fit::Invalid);
        assert_eq!(fit(" fs.move s"), Fit::Prefix);
        assert_eq!(fit(" fs.move src=\"a"), Fit::Prefix);
        assert_eq!(
            fit(" fs.move src=\"a.txt\" dst=\"old/b.txt\"\n"),
            Fit::Complete
        );
        assert_eq!(
            fit(" fs.move src=\"a.txt\"\n"),
            Fit::Invalid,
            "dst is required"
        );
        assert_eq!(
            fit(" fs.move src=\"a.tx\""),
            Fit::Invalid,
            "a value ends at a word end"
        );
        assert_eq!(
            fit(" fs.move src=\"xyz"),
            Fit::Invalid,
            "not in the request"
        );
        assert_eq!(
            fit(" fs.move src=\"ove"),
            Fit::Invalid,
            "starts where a word starts"
        );
        assert_eq!(fit(" fs.move dst=\""), Fit::Invalid, "arguments in order");
        assert_eq!(fit(" none\n"), Fit::Complete);
        assert_eq!(fit(" none x"), Fit::Invalid);
        assert_eq!(
            fit(" fs.list\n"),
            Fit::Complete,
            "a defaulted argument may go unsaid"
        );
        assert_eq!(fit("fs.list"), Fit::Invalid, "the line starts with a space");
        // A quoted value is the whole quotation; an unquoted path is one word.
        let g = grammar("tell bob \"the build is green\"");
        assert_eq!(
            g.fit(b" msg.send to=\"bob\" body=\"the build\"\n"),
            Fit::Invalid
        );
        assert_eq!(
            g.fit(b" msg.send to=\"bob\" body=\"the build is green\"\n"),
            Fit::Complete
        );
        let g = grammar("show me what's in notes.txt");
        assert_eq!(
            g.fit(b" fs.read path=\"show"),
            Fit::Invalid,
            "a word of the request language"
        );
        assert_eq!(
            g.fit(b" fs.read path=\"me"),
            Fit::Invalid,
            "a function word"
        );
        assert_eq!(
            g.fit(b" fs.read path=\"show me"),
            Fit::Invalid,
            "a path is one word"
        );
        assert_eq!(
            g.fit(b" fs.read path=\"s in"),
            Fit::Invalid,
            "no word starts at an apostrophe"
        );
        assert_eq!(g.fit(b" fs.read path=\"notes.txt\"\n"), Fit::Complete);
        let g = grammar("DM judy \"meeting moved to friday\"");
        assert_eq!(
            g.fit(b" msg.send to=\"moved"),
            Fit::Invalid,
            "no value starts inside a quotation"
        );
        assert_eq!(
            g.fit(b" msg.send to=\"judy\" body=\"meeting moved to friday\"\n"),
            Fit::Complete
        );
        assert_eq!(
            g.fit(b" msg.send to=\"meeting"),
            Fit::Invalid,
            "a quotation that is no recipient"
        );
        let g = grammar("message for peggy: \"keys\"");
        assert_eq!(
            g.fit(b" msg.send to=\"for"),
            Fit::Invalid,
            "a function word is no recipient"
        );
        assert_eq!(g.fit(b" msg.send to=\"f"), Fit::Invalid);
        assert_eq!(g.fit(b" msg.send to=\"peggy\""), Fit::Prefix);
        let g = grammar("read the theory.txt");
        assert_eq!(
            g.fit(b" fs.read path=\"the"),
            Fit::Prefix,
            "\"the\" may go on to theory.txt"
        );
        assert_eq!(g.fit(b" fs.read path=\"the\""), Fit::Invalid);
        assert_eq!(g.fit(b" fs.read path=\"theory.txt\"\n"), Fit::Complete);
        let g = grammar("tell bob smith \"hi\"");
        assert_eq!(
            g.fit(b" msg.send to=\"bob smith\""),
            Fit::Invalid,
            "one recipient"
        );
        assert_eq!(g.fit(b" msg.send to=\"bob\" body=\"hi\"\n"), Fit::Complete);
    }

    #[test]
    fn values_come_from_places_of_their_own_and_fit_their_types() {
        use Fit::{Complete, Invalid};
        let cases: &[(&str, &str, Fit, &str)] = &[
            // One quotation, no path: a command, not a move of it onto itself, and not
            // a file called "npm install".
            (
                "invoke \"npm install\"",
                " fs.m",
                Invalid,
                "no two paths to move",
            ),
            (
                "invoke \"npm install\"",
                " fs.delete path=\"npm",
                Invalid,
                "text, not a path",
            ),
            (
                "invoke \"npm install\"",
                " fs.delete path=\"invoke\"\n",
                Complete,
                "a word",
            ),
            (
                "invoke \"npm install\"",
                " proc.exec command=\"npm install\"\n",
                Complete,
                "",
            ),
            (
                "copy a.txt over b.txt",
                " fs.move src=\"a.txt\" dst=\"a.txt\"",
                Invalid,
                "copied twice",
            ),
            (
                "copy a.txt over b.txt",
                " fs.move src=\"a.txt\" dst=\"b.txt\"\n",
                Complete,
                "",
            ),
            (
                "open \"my notes.txt\"",
                " fs.read path=\"my notes.txt\"\n",
                Complete,
                "with a dot",
            ),
            (
                "I'd like to view setup.py in the folder called src",
                " fs.read path=\"view\"",
                Invalid,
                "a verb",
            ),
            (
                "I'd like to view setup.py in the folder called src",
                " fs.read path=\"folder\"",
                Invalid,
                "a descriptor",
            ),
            (
                "I'd like to view setup.py in the folder called src",
                " fs.read path=\"called\"",
                Invalid,
                "",
            ),
            (
                "I'd like to view setup.py in the folder called src",
                " fs.read path=\"setup.py\"\n",
                Complete,
                "",
            ),
            (
                "type \"df -h\" in a shell",
                " fs.list p",
                Invalid,
                "a default with nothing to fill it",
            ),
            ("type \"df -h\" in a shell", " fs.list\n", Complete, ""),
            (
                "what's in this folder? ls -- now",
                " fs.list path=\"folder?\"",
                Invalid,
                "punctuation",
            ),
            (
                "what's in this folder? ls -- now",
                " fs.list path=\"--\"",
                Invalid,
                "no letter",
            ),
            (
                "thanks, that's all",
                " proc.exec command=\"that",
                Invalid,
                "a command is quoted",
            ),
            ("thanks, that's all", " p", Invalid, "no quotation to run"),
            (
                "please write \"42\" to answer.txt",
                " fs.write path=\"answer.txt\" content=\"to",
                Invalid,
                "contents are quoted",
            ),
            (
                "please write \"42\" to answer.txt",
                " fs.write path=\"answer.txt\" content=\"42\"\n",
                Complete,
                "",
            ),
            (
                "can you save \"42\" as answer.txt",
                " fs.write path=\"42\"",
                Invalid,
                "no quotation left for the contents",
            ),
        ];
        for &(request, text, want, why) in cases {
            assert_eq!(
                grammar(request).fit(text.as_bytes()),
                want,
                "{request} → {text}: {why}"
            );
        }
        assert!(corpus::request_words().contains("view"));
        assert!(!corpus::request_words().contains("setup"));
    }

    /// A model that prefers, at every step, the token spelling the next bytes of a
    /// fixed line — and otherwise knows nothing.
    struct Spelling {
        want: Vec<u8>,
        written: Vec<u8>,
        vocabulary: Vec<Vec<u8>>,
        runs: usize,
    }

    impl Spelling {
        fn wanting(line: &[u8], vocabulary: &Vocabulary) -> Self {
            Spelling {
                want: line.to_vec(),
                written: Vec::new(),
                vocabulary: vocabulary.pieces.clone(),
                runs: 0,
            }
        }

        fn logits(&self) -> Vec<f32> {
            let rest = &self.want[self.written.len().min(self.want.len())..];
            self.vocabulary
                .iter()
                .map(|p| {
                    if !p.is_empty() && rest.starts_with(p) {
                        p.len() as f32
                    } else {
                        -1.0
                    }
                })
                .collect()
        }
    }

    impl Logits for Spelling {
        fn start(&mut self, _prompt: &[u32]) -> Result<Vec<f32>> {
            self.written.clear();
            self.runs = 1;
            Ok(self.logits())
        }
        fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
            for &t in tokens {
                self.written.extend_from_slice(&self.vocabulary[t as usize]);
            }
            self.runs += 1;
            Ok(self.logits())
        }
    }

    fn byte_vocabulary() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![Vec::new(); 3];
        v.extend((0u8..=255).map(|b| vec![b]));
        for w in [" fs.", "read", "move", " path=\"", "\"\n", ".txt", " none"] {
            v.push(w.as_bytes().to_vec());
        }
        v
    }

    #[test]
    fn decoding_writes_the_models_line_when_it_is_allowed() {
        let r = Registry::default();
        let vocabulary = Vocabulary {
            pieces: byte_vocabulary(),
        };
        let mut m = Spelling::wanting(b" fs.read path=\"notes.txt\"\n", &vocabulary);
        let u = understand(&r, &vocabulary, &mut m, "show me notes.txt", &[1]).unwrap();
        assert_eq!(u.line, r#"fs.read path="notes.txt""#);
        assert_eq!(u.call.unwrap().args["path"], "notes.txt");
        assert!(u.choices <= u.call_tokens, "forced tokens are fed in runs");
        assert_eq!(u.choices, m.runs);
        // The request holds one file name: once the tool is chosen, the grammar writes
        // the rest without running the model.
        assert_eq!((u.call_tokens, u.choices), (2, 2), "{:?}", u.line);
        assert_eq!(m.written, b" fs.");
    }

    #[test]
    fn the_grammar_finishes_a_line_that_can_end_one_way_only() {
        let g = grammar("please move \"a.txt\" to old/b.txt?");
        let rest = |t: &str| {
            g.only_completion(t.as_bytes())
                .map(|r| String::from_utf8(r).unwrap())
        };
        // Choices left: the tool, and which file is moved where.
        assert_eq!(rest(""), None);
        assert_eq!(rest(" fs.move src=\""), None);
        // Once src is a.txt, dst can only be old/b.txt.
        assert_eq!(
            rest(" fs.move src=\"a").as_deref(),
            Some(".txt\" dst=\"old/b.txt\"\n")
        );
        assert_eq!(
            rest(" fs.move src=\"old/b.txt\" dst=\"a").as_deref(),
            Some(".txt\"\n")
        );
        assert_eq!(rest(" no").as_deref(), Some("ne\n"));
        // fs.list's path has a default: ending the line is a choice of the model's.
        assert_eq!(rest(" fs.list"), None);
        assert_eq!(rest(" fs.mv"), None, "nothing continues an invalid line");
    }

    #[test]
    fn decoding_never_writes_a_value_the_request_does_not_hold() {
        let r = Registry::default();
        let vocabulary = Vocabulary {
            pieces: byte_vocabulary(),
        };
        // The model wants /etc/passwd; the request never says it.
        let mut m = Spelling::wanting(b" fs.read path=\"/etc/passwd\"\n", &vocabulary);
        let u = understand(&r, &vocabulary, &mut m, "show me notes.txt", &[1]).unwrap();
        if let Some(c) = &u.call {
            for v in c.args.values() {
                assert!(
                    "show me notes.txt".contains(v.as_str()) || v == ".",
                    "{u:?}"
                );
            }
        }
    }
}
