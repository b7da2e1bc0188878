//! The contract crate's error type.

use std::path::PathBuf;

/// What can be wrong with a manifest, a tokenizer, a model header or a request that
/// uses them. Every variant is the caller's input (exit code 2 in the `etch` command),
/// except an operating-system failure to read a file that exists.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read", …
        action: &'static str,
        /// The file.
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
    /// The file ends before a record it announces is complete.
    #[error("{path} is truncated: {what}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read when the file ended.
        what: String,
    },
    /// A checkpoint header holds values no llama2.c model can have.
    #[error("{path} has an impossible header: {problem}")]
    BadHeader {
        /// The checkpoint.
        path: PathBuf,
        /// Which field is wrong and why.
        problem: String,
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
    /// A token id outside the vocabulary was given.
    #[error("token id {token} is outside the vocabulary of {vocab_size} tokens")]
    TokenOutOfRange {
        /// The id.
        token: u32,
        /// Vocabulary size.
        vocab_size: usize,
    },
    /// A parameter is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// True when the error is caused by the caller's input rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Error::Io { source, .. } if source.kind() != std::io::ErrorKind::NotFound)
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result alias for the contract crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
