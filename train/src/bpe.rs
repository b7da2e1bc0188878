//! A tokenizer learned from a corpus: byte-pair merges in llama2.c's format.
//!
//! A model's tokenizer decides how many forward passes a text costs: on a chip every
//! token is one pass. A story tokenizer of 512 pieces spends a token on every two or
//! three letters of a file name and a dozen on `fs.move src="`; one learned from the
//! syscall corpus writes `" path=\""` or `".md"` as one token.
//!
//! The vocabulary is `<unk>`, `<s>`, `</s>`, the 256 byte-fallback pieces `<0xXX>`
//! (`run.c`'s ids 3–258), the printable ASCII characters and the newline, then merges:
//! repeatedly, the most frequent adjacent pair of pieces inside a word (a word runs
//! from a space to the next, a newline ending it) becomes a new piece, scored below
//! every earlier merge. `run.c`'s encoder (merge the highest-scoring adjacent pair
//! first) then replays the merges in the order they were learned. Ties go to the pair
//! whose merged bytes sort first, so the result is deterministic.

use std::collections::HashMap;

use etch_compiler::Tokenizer;

use crate::error::{Result, TrainError};

/// Pieces before the merges: specials, byte fallback, printable ASCII and the newline.
fn base_pieces() -> Vec<Vec<u8>> {
    let mut pieces: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
    pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>").into_bytes()));
    pieces.extend((0x20..=0x7Eu8).map(|b| vec![b]));
    pieces.push(b"\n".to_vec());
    pieces
}

/// The words of `text` as the encoder sees it (with `run.c`'s leading space): each
/// starts at a space or after a newline, and a newline ends the word it follows.
fn words(text: &str) -> impl Iterator<Item = &[u8]> {
    let b = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() {
            let split_before = b[i] == b' ' && i > start;
            if split_before {
                let w = &b[start..i];
                start = i;
                return Some(w);
            }
            i += 1;
            if b[i - 1] == b'\n' {
                let w = &b[start..i];
                start = i;
                return Some(w);
            }
        }
        (start < b.len()).then(|| {
            let w = &b[start..];
            start = b.len();
            w
        })
    })
}

/// Learns a tokenizer of `vocab_size` pieces from `texts` (each as the model sees it,
/// without the leading space `run.c` adds). Returns the tokenizer file's bytes.
pub fn learn(texts: &[String], vocab_size: usize) -> Result<Vec<u8>> {
    let mut pieces = base_pieces();
    if vocab_size < pieces.len() {
        return Err(TrainError::Invalid(format!(
            "a learned tokenizer needs at least {} pieces (specials, bytes, ASCII), not {vocab_size}",
            pieces.len()
        )));
    }
    let mut id_of: HashMap<Vec<u8>, u32> = pieces
        .iter()
        .enumerate()
        .skip(259)
        .map(|(i, p)| (p.clone(), i as u32))
        .collect();
    // Distinct words and how often each occurs; a word with a byte outside the base
    // alphabet is left out (the encoder falls back to bytes for it).
    let mut counts: HashMap<&[u8], u64> = HashMap::new();
    let spaced: Vec<String> = texts.iter().map(|t| format!(" {t}")).collect();
    for t in &spaced {
        for w in words(t) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let mut corpus: Vec<(Vec<u32>, u64)> = counts
        .into_iter()
        .filter_map(|(w, n)| {
            let ids: Option<Vec<u32>> = w.iter().map(|b| id_of.get(&vec![*b]).copied()).collect();
            ids.map(|ids| (ids, n))
        })
        .collect();
    corpus.sort();
    let mut scores = vec![0.0f32; pieces.len()];
    while pieces.len() < vocab_size {
        let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
        for (ids, n) in &corpus {
            for p in ids.windows(2) {
                *pairs.entry((p[0], p[1])).or_default() += n;
            }
        }
        // The most frequent pair, ties to the smallest merged bytes.
        let merged = |&(a, b): &(u32, u32)| -> Vec<u8> {
            [pieces[a as usize].as_slice(), pieces[b as usize].as_slice()].concat()
        };
        let Some((&best, _)) = pairs
            .iter()
            .filter(|(pair, _)| !id_of.contains_key(&merged(pair)))
            .max_by(|x, y| x.1.cmp(y.1).then_with(|| merged(y.0).cmp(&merged(x.0))))
        else {
            break; // every word is one piece
        };
        let new = pieces.len() as u32;
        let bytes = merged(&best);
        id_of.insert(bytes.clone(), new);
        pieces.push(bytes);
        scores.push(-((pieces.len() - 259) as f32));
        for (ids, _) in &mut corpus {
            let mut out = Vec::with_capacity(ids.len());
            let mut i = 0;
            while i < ids.len() {
                if i + 1 < ids.len() && (ids[i], ids[i + 1]) == best {
                    out.push(new);
                    i += 2;
                } else {
                    out.push(ids[i]);
                    i += 1;
                }
            }
            *ids = out;
        }
    }
    if pieces.len() < vocab_size {
        return Err(TrainError::Invalid(format!(
            "the corpus holds only {} distinct pieces; ask for fewer than {vocab_size}",
            pieces.len()
        )));
    }
    Ok(Tokenizer::to_bytes(&pieces, &scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_start_at_spaces_and_end_after_newlines() {
        let w: Vec<&[u8]> = words(" move a.txt\n fs.move src=\"a\"\n").collect();
        assert_eq!(
            w,
            [
                b" move".as_slice(),
                b" a.txt\n",
                b" fs.move",
                b" src=\"a\"\n"
            ]
        );
    }

    #[test]
    fn a_learned_tokenizer_writes_frequent_words_in_one_piece_and_any_text_back() {
        let texts: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "delete notes{}.txt\n fs.delete path=\"notes{}.txt\"\n",
                    i % 7,
                    i % 7
                )
            })
            .collect();
        let bytes = learn(&texts, 400).unwrap();
        let tok = Tokenizer::parse(&bytes, 400, std::path::Path::new("learned")).unwrap();
        let ids = tok.encode_with(" fs.delete path=\"notes3.txt\"\n", false, false);
        assert!(ids.len() <= 4, "{ids:?}");
        // Text it never saw, with a byte outside its alphabet: still round-trips.
        let text = "zebra ünïcode\ttab";
        let ids = tok.encode(text);
        assert_eq!(tok.decode_raw(ids[0], &ids[1..]), text.as_bytes());
        assert_eq!(learn(&texts, 400).unwrap(), bytes, "deterministic");
        assert!(learn(&texts, 100).is_err());
    }
}
