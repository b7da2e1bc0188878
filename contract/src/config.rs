//! A model's shapes: the seven numbers of a llama2.c checkpoint header, and what
//! follows from them (head size, key/value width, tensor sizes).

use std::path::Path;

use crate::error::{Error, Result};

/// Bytes in the header: seven little-endian `i32`.
pub const HEADER_BYTES: usize = 7 * 4;

/// A model's shapes, as the checkpoint header gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// Width of the residual stream.
    pub dim: usize,
    /// Width of the feed-forward hidden layer.
    pub hidden_dim: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Maximum sequence length (positions in the KV cache).
    pub seq_len: usize,
    /// True when the token embedding doubles as the classifier.
    pub shared_classifier: bool,
}

impl Config {
    /// Width of one attention head.
    pub fn head_size(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Width of the key and value vectors of one position.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_size()
    }

    /// Query heads that share one key/value head.
    pub fn kv_mul(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Floats in each tensor, in file order, with their names.
    pub fn tensor_sizes(&self) -> [(&'static str, usize); 13] {
        let (d, h, l, kv) = (self.dim, self.hidden_dim, self.n_layers, self.kv_dim());
        let rope = self.seq_len * self.head_size() / 2;
        [
            ("token_embedding", self.vocab_size * d),
            ("rms_att", l * d),
            ("wq", l * d * d),
            ("wk", l * kv * d),
            ("wv", l * kv * d),
            ("wo", l * d * d),
            ("rms_ffn", l * d),
            ("w1", l * h * d),
            ("w2", l * d * h),
            ("w3", l * h * d),
            ("rms_final", d),
            ("freq_cis", 2 * rope),
            (
                "wcls",
                if self.shared_classifier {
                    0
                } else {
                    self.vocab_size * d
                },
            ),
        ]
    }

    /// Parameters that carry model weights (RoPE tables excluded, a shared classifier
    /// counted once).
    pub fn parameter_count(&self) -> usize {
        self.tensor_sizes()
            .iter()
            .filter(|(name, _)| *name != "freq_cis")
            .map(|(_, n)| n)
            .sum()
    }

    /// Checks the shapes for consistency; `path` names the file in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |problem: String| Error::BadHeader {
            path: path.to_path_buf(),
            problem,
        };
        for (name, v) in [
            ("dim", self.dim),
            ("hidden_dim", self.hidden_dim),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("vocab_size", self.vocab_size),
            ("seq_len", self.seq_len),
        ] {
            if v == 0 {
                return Err(bad(format!("{name} is 0")));
            }
        }
        if self.dim % self.n_heads != 0 {
            return Err(bad(format!(
                "dim {} is not divisible by n_heads {}",
                self.dim, self.n_heads
            )));
        }
        if self.n_heads % self.n_kv_heads != 0 {
            return Err(bad(format!(
                "n_heads {} is not divisible by n_kv_heads {}",
                self.n_heads, self.n_kv_heads
            )));
        }
        if self.head_size() % 2 != 0 {
            return Err(bad(format!(
                "head size {} is odd; RoPE rotates pairs",
                self.head_size()
            )));
        }
        if self.vocab_size < 3 {
            return Err(bad(format!(
                "vocab_size {} leaves no room for <unk>, BOS and EOS",
                self.vocab_size
            )));
        }
        Ok(())
    }

    /// Parses and checks a header. `path` names the file in errors.
    pub fn from_header(header: &[i32; 7], path: &Path) -> Result<Self> {
        let field = |i: usize, name: &str| -> Result<usize> {
            let v = header[i];
            let v = if i == 5 {
                v.unsigned_abs() as i64
            } else {
                v as i64
            };
            if v <= 0 {
                return Err(Error::BadHeader {
                    path: path.to_path_buf(),
                    problem: format!("{name} is {}", header[i]),
                });
            }
            Ok(v as usize)
        };
        let config = Config {
            dim: field(0, "dim")?,
            hidden_dim: field(1, "hidden_dim")?,
            n_layers: field(2, "n_layers")?,
            n_heads: field(3, "n_heads")?,
            n_kv_heads: field(4, "n_kv_heads")?,
            vocab_size: field(5, "vocab_size")?,
            seq_len: field(6, "seq_len")?,
            shared_classifier: header[5] > 0,
        };
        config.validate(path)?;
        Ok(config)
    }

    /// The header as written to a file.
    pub fn to_header(&self) -> [i32; 7] {
        let vocab = self.vocab_size as i32;
        [
            self.dim as i32,
            self.hidden_dim as i32,
            self.n_layers as i32,
            self.n_heads as i32,
            self.n_kv_heads as i32,
            if self.shared_classifier {
                vocab
            } else {
                -vocab
            },
            self.seq_len as i32,
        ]
    }

    /// Bytes the whole file must have, or `None` when that overflows.
    pub fn file_bytes(&self) -> Option<u64> {
        let mut floats: u64 = 0;
        for (_, n) in self.tensor_sizes_checked()? {
            floats = floats.checked_add(n)?;
        }
        floats.checked_mul(4)?.checked_add(HEADER_BYTES as u64)
    }

    fn tensor_sizes_checked(&self) -> Option<Vec<(&'static str, u64)>> {
        // The same products as `tensor_sizes`, but overflow-checked in u64 so that an
        // absurd header is an error rather than a wrap-around.
        let m = |a: usize, b: usize, c: usize| -> Option<u64> {
            (a as u64).checked_mul(b as u64)?.checked_mul(c as u64)
        };
        let (d, h, l) = (self.dim, self.hidden_dim, self.n_layers);
        let kv = (self.n_kv_heads as u64).checked_mul(self.head_size() as u64)? as usize;
        Some(vec![
            ("token_embedding", m(self.vocab_size, d, 1)?),
            ("rms_att", m(l, d, 1)?),
            ("wq", m(l, d, d)?),
            ("wk", m(l, kv, d)?),
            ("wv", m(l, kv, d)?),
            ("wo", m(l, d, d)?),
            ("rms_ffn", m(l, d, 1)?),
            ("w1", m(l, h, d)?),
            ("w2", m(l, d, h)?),
            ("w3", m(l, h, d)?),
            ("rms_final", d as u64),
            ("freq_cis", m(self.seq_len, self.head_size(), 1)?),
            (
                "wcls",
                if self.shared_classifier {
                    0
                } else {
                    m(self.vocab_size, d, 1)?
                },
            ),
        ])
    }
}
