//! llama2.c tokenizer files and the exact encode/decode rules of `run.c`.
//!
//! File layout (little-endian): `i32 max_token_length`, then for every token of the
//! model's vocabulary `f32 score`, `i32 len`, `len` bytes of the piece. The file does
//! not store the vocabulary size; it must hold exactly as many pieces as the model has
//! tokens.
//!
//! Encoding follows SentencePiece as `run.c` reimplements it: BOS (id 1), a dummy
//! prefix `" "` when the text is not empty, one piece per UTF-8 code point (or its
//! bytes as `<0xXX>` byte-fallback tokens, id = byte + 3), then greedy merges of the
//! adjacent pair whose merged piece has the highest score (the leftmost on ties).
//! Decoding strips the leading space of a piece that follows BOS, turns `<0xXX>`
//! pieces into raw bytes, and — as `run.c`'s `safe_printf` does — drops single-byte
//! pieces that are neither printable ASCII nor white space.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Beginning of sequence; also what ends a story in llama2.c's generation loop.
pub const BOS: u32 = 1;
/// End of sequence.
pub const EOS: u32 = 2;

/// A llama2.c tokenizer.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    pieces: Vec<Vec<u8>>,
    scores: Vec<f32>,
    max_token_length: usize,
    lookup: HashMap<Vec<u8>, u32>,
    path: PathBuf,
}

impl Tokenizer {
    /// Reads a tokenizer file and checks that it holds exactly `vocab_size` pieces.
    pub fn open(path: impl AsRef<Path>, vocab_size: usize) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
        // SAFETY: read-only private map of a small file that nothing modifies while it
        // is parsed; every piece is copied out before the map is dropped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("read", path, e))?;
        Self::parse(&map, vocab_size, path)
    }

    /// Parses tokenizer bytes; `path` names the source in errors.
    pub fn parse(bytes: &[u8], vocab_size: usize, path: &Path) -> Result<Self> {
        Self::parse_counted(bytes, Some(vocab_size), path)
    }

    /// Parses tokenizer bytes whose vocabulary is as many pieces as the file holds (a
    /// tokenizer for a model yet to be trained).
    pub fn parse_any(bytes: &[u8], path: &Path) -> Result<Self> {
        Self::parse_counted(bytes, None, path)
    }

    fn parse_counted(bytes: &[u8], vocab_size: Option<usize>, path: &Path) -> Result<Self> {
        let mut cursor = Cursor { bytes, at: 0, path };
        let max_len =
            i32::from_le_bytes(cursor.take4(&|| "the max_token_length field is missing".into())?);
        if max_len <= 0 {
            return Err(Error::BadTokenizer {
                path: path.to_path_buf(),
                problem: format!("max_token_length is {max_len}"),
            });
        }
        let mut pieces = Vec::new();
        let mut scores = Vec::new();
        loop {
            // The file holds no count: read records until it ends exactly between two.
            if cursor.at == bytes.len() {
                break;
            }
            let i = pieces.len();
            let score = f32::from_le_bytes(cursor.take4(&|| format!("piece {i} has no score"))?);
            let len = i32::from_le_bytes(cursor.take4(&|| format!("piece {i} has no length"))?);
            if len < 0 {
                return Err(Error::BadTokenizer {
                    path: path.to_path_buf(),
                    problem: format!("piece {i} has negative length {len}"),
                });
            }
            if !score.is_finite() {
                return Err(Error::BadTokenizer {
                    path: path.to_path_buf(),
                    problem: format!("piece {i} has score {score}"),
                });
            }
            let raw = cursor.take(len as usize, &|| {
                format!("piece {i} announces {len} bytes past the end of the file")
            })?;
            // run.c keeps pieces as C strings: a NUL ends them.
            let piece = match raw.iter().position(|&b| b == 0) {
                Some(nul) => raw[..nul].to_vec(),
                None => raw.to_vec(),
            };
            pieces.push(piece);
            scores.push(score);
        }
        let vocab_size = vocab_size.unwrap_or(pieces.len());
        if pieces.len() != vocab_size {
            return Err(Error::VocabMismatch {
                path: path.to_path_buf(),
                pieces: pieces.len(),
                vocab_size,
            });
        }
        let mut lookup = HashMap::with_capacity(pieces.len());
        for (id, piece) in pieces.iter().enumerate() {
            // Duplicate pieces resolve to the lowest id.
            lookup.entry(piece.clone()).or_insert(id as u32);
        }
        if !lookup.contains_key(b" ".as_slice()) {
            return Err(Error::BadTokenizer {
                path: path.to_path_buf(),
                problem: "it has no \" \" piece for the dummy prefix".into(),
            });
        }
        if vocab_size < 259 {
            return Err(Error::BadTokenizer {
                path: path.to_path_buf(),
                problem: format!(
                    "{vocab_size} pieces leave no room for the 256 byte-fallback tokens at ids 3..=258"
                ),
            });
        }
        Ok(Tokenizer {
            pieces,
            scores,
            max_token_length: max_len as usize,
            lookup,
            path: path.to_path_buf(),
        })
    }

    /// Serializes pieces and scores in the llama2.c format (tests and tools).
    pub fn to_bytes(pieces: &[Vec<u8>], scores: &[f32]) -> Vec<u8> {
        let max_len = pieces.iter().map(Vec::len).max().unwrap_or(1).max(1) as i32;
        let mut out = max_len.to_le_bytes().to_vec();
        for (p, s) in pieces.iter().zip(scores) {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&(p.len() as i32).to_le_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    /// Tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The longest piece the file announces.
    pub fn max_token_length(&self) -> usize {
        self.max_token_length
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes of a token's piece.
    pub fn piece(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(Vec::as_slice)
    }

    /// `run.c`'s `encode(text, bos = 1, eos = 0)`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.encode_with(text, true, false)
    }

    /// Encodes with explicit BOS/EOS choices.
    pub fn encode_with(&self, text: &str, bos: bool, eos: bool) -> Vec<u32> {
        let bytes = text.as_bytes();
        let mut tokens: Vec<u32> = Vec::with_capacity(bytes.len() + 3);
        if bos {
            tokens.push(BOS);
        }
        if !bytes.is_empty() {
            tokens.push(self.lookup[b" ".as_slice()]);
        }
        // One piece per code point; continuation bytes (10xxxxxx) join the code point
        // before them, at most four bytes in all.
        let mut start = 0;
        while start < bytes.len() {
            let mut end = start + 1;
            while end < bytes.len() && bytes[end] & 0xC0 == 0x80 && end - start < 4 {
                end += 1;
            }
            let chunk = &bytes[start..end];
            match self.lookup.get(chunk) {
                Some(&id) => tokens.push(id),
                None => tokens.extend(chunk.iter().map(|&b| b as u32 + 3)),
            }
            start = end;
        }
        // Greedy merges: the best-scoring pair, leftmost on ties.
        let mut merged = Vec::with_capacity(2 * self.max_token_length);
        loop {
            let mut best: Option<(f32, u32, usize)> = None;
            for i in 0..tokens.len().saturating_sub(1) {
                merged.clear();
                merged.extend_from_slice(&self.pieces[tokens[i] as usize]);
                merged.extend_from_slice(&self.pieces[tokens[i + 1] as usize]);
                if let Some(&id) = self.lookup.get(merged.as_slice()) {
                    let score = self.scores[id as usize];
                    let threshold = best.map_or(-1e10, |(s, _, _)| s);
                    if score > threshold {
                        best = Some((score, id, i));
                    }
                }
            }
            let Some((_, id, i)) = best else { break };
            tokens[i] = id;
            tokens.remove(i + 1);
        }
        if eos {
            tokens.push(EOS);
        }
        tokens
    }

    /// `run.c`'s `decode(prev, token)`: the token's bytes, without the leading space
    /// after BOS, with `<0xXX>` pieces turned into their byte.
    pub fn piece_bytes(&self, prev: u32, token: u32) -> &[u8] {
        let Some(mut piece) = self.piece(token) else {
            return &[];
        };
        if prev == BOS && piece.first() == Some(&b' ') {
            piece = &piece[1..];
        }
        match byte_piece(piece) {
            Some(byte) => &BYTE_PIECES[byte as usize..byte as usize + 1],
            None => piece,
        }
    }

    /// The bytes `run.c` prints for `token` after `prev`: [`Tokenizer::piece_bytes`]
    /// through `safe_printf`, which prints nothing for a NUL-led piece or a single byte
    /// that is neither printable ASCII nor white space.
    pub fn decode(&self, prev: u32, token: u32) -> &[u8] {
        let piece = self.piece_bytes(prev, token);
        match piece {
            [] | [0, ..] => &[],
            [b] if !(b.is_ascii_graphic() || *b == b' ' || is_c_space(*b)) => &[],
            _ => match piece.iter().position(|&b| b == 0) {
                Some(nul) => &piece[..nul],
                None => piece,
            },
        }
    }

    /// Decodes a whole sequence as `run.c` prints it: every token of `ids` after the
    /// one before it (the first after `first`).
    pub fn decode_all(&self, first: u32, ids: &[u32]) -> Vec<u8> {
        self.concat(first, ids, Self::decode)
    }

    /// The raw bytes of a sequence ([`Tokenizer::piece_bytes`] of each token, nothing
    /// dropped): `encode` followed by this gives back the text.
    pub fn decode_raw(&self, first: u32, ids: &[u32]) -> Vec<u8> {
        self.concat(first, ids, Self::piece_bytes)
    }

    fn concat(&self, first: u32, ids: &[u32], f: fn(&Self, u32, u32) -> &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = first;
        for &id in ids {
            out.extend_from_slice(f(self, prev, id));
            prev = id;
        }
        out
    }
}

/// Reads a byte slice front to back, naming the file when it ends too soon.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        match self.at.checked_add(n).filter(|&e| e <= self.bytes.len()) {
            Some(end) => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(Error::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
            }),
        }
    }

    fn take4(&mut self, what: &dyn Fn() -> String) -> Result<[u8; 4]> {
        let s = self.take(4, what)?;
        Ok([s[0], s[1], s[2], s[3]])
    }
}

/// All 256 byte values, so that a byte piece can be returned as a one-byte slice.
static BYTE_PIECES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The byte of a `<0xXX>` piece, read as `sscanf(piece, "<0x%02hhX>")` reads it: one
/// or two hex digits after `<0x`.
fn byte_piece(piece: &[u8]) -> Option<u8> {
    let rest = piece.strip_prefix(b"<0x")?;
    let digits = rest
        .iter()
        .take(2)
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    if digits == 0 {
        return None;
    }
    let text = std::str::from_utf8(&rest[..digits]).ok()?;
    u8::from_str_radix(text, 16).ok()
}
