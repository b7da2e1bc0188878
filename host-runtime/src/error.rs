//! The runtime's error type.

use std::path::PathBuf;

/// What can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The driver or the chip failed.
    #[error(transparent)]
    Driver(#[from] etch_driver::DriverError),
    /// The model files (manifest, tokenizer) or a prompt were refused.
    #[error(transparent)]
    Contract(#[from] etch_contract::Error),
    /// A context name that cannot name a file.
    #[error(
        "invalid context name {0:?}: use letters, digits, '-', '_' and '.', not starting with '.'"
    )]
    BadName(String),
    /// A persisted context failed its checks; it is left on disk untouched.
    #[error("the persisted context {path} is unusable: {why}")]
    CorruptContext {
        /// The file.
        path: PathBuf,
        /// What failed.
        why: String,
    },
    /// A file of the state directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read", "write", …
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A request that does not fit the model or the chip.
    #[error("{0}")]
    InvalidArgument(String),
}

/// Result alias for the runtime.
pub type Result<T> = std::result::Result<T, RuntimeError>;
