//! The one error type of the compiler crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading, checking, quantizing or running a model.
///
/// Variants that describe bad input (a corrupt file, a mismatched tokenizer, a prompt
/// that does not fit) answer `true` from [`Error::is_bad_input`]; the command-line tool
/// maps them to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or mapped, or an output could not be written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read", "write", …
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A built chip's `manifest.json` cannot be understood.
    #[error("{path} is not an etch manifest: {problem}")]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The file ends before the header or a record it announces is complete.
    #[error("{path} is truncated: {what}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read when the file ended.
        what: String,
    },
    /// The checkpoint header holds values no llama2.c model can have.
    #[error("{path} has an impossible header: {problem}")]
    BadHeader {
        /// The checkpoint.
        path: PathBuf,
        /// Which field is wrong and why.
        problem: String,
    },
    /// The checkpoint's size differs from what its header implies.
    #[error("{path} is {actual} bytes but its header implies {expected} bytes ({detail})")]
    SizeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// Bytes implied by the header.
        expected: u64,
        /// Bytes on disk.
        actual: u64,
        /// The shapes that were assumed.
        detail: String,
    },
    /// A weight is NaN or infinite.
    #[error("{path}: weight {tensor}[{index}] is {value} (not a finite number)")]
    NonFiniteWeight {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor that holds it.
        tensor: &'static str,
        /// Its flat index within the tensor.
        index: usize,
        /// The value, printed.
        value: f32,
    },
    /// The tokenizer does not belong to the model.
    #[error("{path} holds {pieces} pieces but the model's vocabulary has {vocab_size} tokens: tokenizer and model do not match")]
    VocabMismatch {
        /// The tokenizer file.
        path: PathBuf,
        /// Pieces in the tokenizer file.
        pieces: usize,
        /// Tokens in the model.
        vocab_size: usize,
    },
    /// The tokenizer file is malformed.
    #[error("{path} is not a llama2.c tokenizer: {problem}")]
    BadTokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The prompt or text does not fit the model's context.
    #[error("the prompt is {tokens} tokens (with BOS) but the model's context holds {seq_len}")]
    PromptTooLong {
        /// Prompt tokens including BOS.
        tokens: usize,
        /// The model's maximum sequence length.
        seq_len: usize,
    },
    /// A sampling or run parameter is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A token id outside the vocabulary was given.
    #[error("token id {token} is outside the vocabulary of {vocab_size} tokens")]
    TokenOutOfRange {
        /// The id.
        token: u32,
        /// Vocabulary size.
        vocab_size: usize,
    },
    /// The model cannot be quantized with the requested settings.
    #[error("cannot quantize: {0}")]
    Quantization(String),
}

impl Error {
    /// True when the error is caused by the user's input rather than by etch itself.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Error::Quantization(_))
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result alias for the compiler crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
