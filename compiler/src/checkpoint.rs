//! llama2.c checkpoints: the legacy float32 format written by `export.py --version 0`.
//!
//! Layout (all little-endian): a header of seven `i32` — `dim`, `hidden_dim`,
//! `n_layers`, `n_heads`, `n_kv_heads`, `vocab_size`, `seq_len` — then float32 tensors
//! in this order: token embedding `[vocab][dim]`, `rms_att [layer][dim]`,
//! `wq [layer][dim][dim]`, `wk [layer][kv_dim][dim]`, `wv [layer][kv_dim][dim]`,
//! `wo [layer][dim][dim]`, `rms_ffn [layer][dim]`, `w1 [layer][hidden][dim]`,
//! `w2 [layer][dim][hidden]`, `w3 [layer][hidden][dim]`, `rms_final [dim]`, two
//! obsolete RoPE tables of `seq_len * head_size / 2` floats each (skipped), and the
//! classifier `[vocab][dim]` only when `vocab_size` is negative in the header (an
//! unshared classifier; otherwise the embedding doubles as classifier).
//!
//! Matrices are row-major `[out][in]`: row `i` of `wq` produces `q[i]`.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{Error, Result};
pub use etch_contract::{Config, HEADER_BYTES};

/// Borrowed views of every tensor of a checkpoint.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    /// `[vocab][dim]`
    pub token_embedding: &'a [f32],
    /// `[layer][dim]`
    pub rms_att: &'a [f32],
    /// `[layer][dim][dim]`
    pub wq: &'a [f32],
    /// `[layer][kv_dim][dim]`
    pub wk: &'a [f32],
    /// `[layer][kv_dim][dim]`
    pub wv: &'a [f32],
    /// `[layer][dim][dim]`
    pub wo: &'a [f32],
    /// `[layer][dim]`
    pub rms_ffn: &'a [f32],
    /// `[layer][hidden][dim]`
    pub w1: &'a [f32],
    /// `[layer][dim][hidden]`
    pub w2: &'a [f32],
    /// `[layer][hidden][dim]`
    pub w3: &'a [f32],
    /// `[dim]`
    pub rms_final: &'a [f32],
    /// `[vocab][dim]`: the embedding itself when the classifier is shared.
    pub wcls: &'a [f32],
}

impl<'a> Weights<'a> {
    /// Splits a flat float slice laid out as in the file (after the header).
    pub fn split(config: &Config, floats: &'a [f32]) -> Option<Self> {
        let sizes = config.tensor_sizes();
        let mut parts: Vec<&'a [f32]> = Vec::with_capacity(sizes.len());
        let mut rest = floats;
        for (_, n) in sizes {
            if rest.len() < n {
                return None;
            }
            let (head, tail) = rest.split_at(n);
            parts.push(head);
            rest = tail;
        }
        let embedding = parts[0];
        Some(Weights {
            token_embedding: embedding,
            rms_att: parts[1],
            wq: parts[2],
            wk: parts[3],
            wv: parts[4],
            wo: parts[5],
            rms_ffn: parts[6],
            w1: parts[7],
            w2: parts[8],
            w3: parts[9],
            rms_final: parts[10],
            wcls: if config.shared_classifier {
                embedding
            } else {
                parts[12]
            },
        })
    }

    /// Every tensor with its name (the shared classifier is not listed twice).
    pub fn named(&self, shared_classifier: bool) -> Vec<(&'static str, &'a [f32])> {
        let mut v = vec![
            ("token_embedding", self.token_embedding),
            ("rms_att", self.rms_att),
            ("wq", self.wq),
            ("wk", self.wk),
            ("wv", self.wv),
            ("wo", self.wo),
            ("rms_ffn", self.rms_ffn),
            ("w1", self.w1),
            ("w2", self.w2),
            ("w3", self.w3),
            ("rms_final", self.rms_final),
        ];
        if !shared_classifier {
            v.push(("wcls", self.wcls));
        }
        v
    }
}

/// Where a checkpoint's floats live: a memory map of a file, or memory (tests).
#[derive(Debug)]
enum Storage {
    Mapped(Mmap),
    Owned(Vec<f32>),
}

/// A loaded, validated llama2.c checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    config: Config,
    storage: Storage,
}

impl Checkpoint {
    /// Memory-maps and validates a checkpoint file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
        let actual = file
            .metadata()
            .map_err(|e| Error::io("read", path, e))?
            .len();
        if actual < HEADER_BYTES as u64 {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                what: format!("the header needs {HEADER_BYTES} bytes, the file has {actual}"),
            });
        }
        // SAFETY: the map is read-only and private to this process; llama2.c checkpoints
        // are not modified while a model runs. Should another process truncate the
        // file, reads could fault, which is the documented limit of file mapping.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io("read", path, e))?;
        let header: [i32; 7] = bytemuck::pod_read_unaligned(&mmap[..HEADER_BYTES]);
        let config = Config::from_header(&header, path)?;
        let expected = config
            .file_bytes()
            .ok_or_else(|| etch_contract::Error::BadHeader {
                path: path.to_path_buf(),
                problem: "the shapes overflow 64-bit sizes".into(),
            })?;
        if expected != actual {
            let detail = format!(
                "dim {}, hidden {}, {} layers, {} heads, {} kv heads, vocab {}, seq_len {}, {} classifier",
                config.dim,
                config.hidden_dim,
                config.n_layers,
                config.n_heads,
                config.n_kv_heads,
                config.vocab_size,
                config.seq_len,
                if config.shared_classifier { "shared" } else { "unshared" }
            );
            if actual < expected {
                return Err(Error::Truncated {
                    path: path.to_path_buf(),
                    what: format!(
                        "the header implies {expected} bytes, the file has {actual} ({detail})"
                    ),
                });
            }
            return Err(Error::SizeMismatch {
                path: path.to_path_buf(),
                expected,
                actual,
                detail,
            });
        }
        let checkpoint = Checkpoint {
            path: path.to_path_buf(),
            config,
            storage: Storage::Mapped(mmap),
        };
        checkpoint.check_finite()?;
        Ok(checkpoint)
    }

    /// Builds a checkpoint from floats in memory laid out as in the file (tests,
    /// generated models). `name` stands in for the path in errors.
    pub fn from_floats(name: &str, config: Config, floats: Vec<f32>) -> Result<Self> {
        let path = PathBuf::from(name);
        config.validate(&path)?;
        let expected = config.file_bytes().unwrap_or(u64::MAX);
        let actual = (floats.len() * 4 + HEADER_BYTES) as u64;
        if expected != actual {
            return Err(Error::SizeMismatch {
                path,
                expected,
                actual,
                detail: "in-memory model".into(),
            });
        }
        let checkpoint = Checkpoint {
            path,
            config,
            storage: Storage::Owned(floats),
        };
        checkpoint.check_finite()?;
        Ok(checkpoint)
    }

    /// The file this checkpoint came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model's shapes.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The floats after the header.
    pub fn floats(&self) -> &[f32] {
        match &self.storage {
            Storage::Mapped(m) => {
                // The map starts page-aligned and the header is 28 bytes, so the floats
                // are 4-byte aligned; the length was checked against the header.
                bytemuck::cast_slice(&m[HEADER_BYTES..])
            }
            Storage::Owned(v) => v,
        }
    }

    /// The whole file's bytes (header included), for hashing the model identity.
    pub fn file_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_BYTES + self.floats().len() * 4);
        bytes.extend_from_slice(bytemuck::cast_slice(&self.config.to_header()));
        bytes.extend_from_slice(bytemuck::cast_slice(self.floats()));
        bytes
    }

    /// Views of every tensor.
    pub fn weights(&self) -> Weights<'_> {
        // The float count was checked against the header when the checkpoint was built.
        Weights::split(&self.config, self.floats()).expect("size checked at load")
    }

    fn check_finite(&self) -> Result<()> {
        for (tensor, data) in self.weights().named(self.config.shared_classifier) {
            if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::NonFiniteWeight {
                    path: self.path.clone(),
                    tensor,
                    index,
                    value,
                });
            }
        }
        Ok(())
    }
}

#[cfg(target_endian = "big")]
compile_error!(
    "etch reads little-endian llama2.c files by casting; big-endian hosts are not supported"
);
