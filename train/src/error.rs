//! The trainer's errors.

/// What can go wrong while training or exporting.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The shape or the settings cannot be trained.
    #[error("{0}")]
    Invalid(String),
    /// The tensor library failed.
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The compiler refused the exported checkpoint, or the teacher failed.
    #[error(transparent)]
    Compiler(#[from] etch_compiler::Error),
    /// The tokenizer or generation failed.
    #[error(transparent)]
    Contract(#[from] etch_contract::Error),
    /// Reading or writing a file failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
