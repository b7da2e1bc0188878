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
    /// The file ends before the header or a record it announces is complete.
    #[error("{path} is truncated: {what}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read when the file ended.
        what: String,
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
    /// A sampling or run parameter is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The model cannot be quantized with the requested settings.
    #[error("cannot quantize: {0}")]
    Quantization(String),
    /// A manifest, tokenizer or header was refused (`etch_contract`).
    #[error(transparent)]
    Contract(#[from] etch_contract::Error),
    /// The hardware generator refused the chip's parameters.
    #[error(transparent)]
    Hardware(#[from] etch_hdl::HdlError),
    /// The firmware did not assemble (a bug of the scheduler: report it).
    #[error("the firmware does not assemble: {0}")]
    Firmware(String),
}

impl Error {
    /// True when the error is caused by the user's input rather than by etch itself.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Contract(e) => e.is_bad_input(),
            Error::Hardware(e) => e.is_bad_input(),
            Error::Quantization(_) | Error::Firmware(_) => false,
            _ => true,
        }
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
