//! The FPGA flow's error type.

use std::path::PathBuf;

/// Why a bitstream was not made. [`FpgaError::exit_code`] gives the `etch` command's
/// exit code: 2 for a request that cannot be met, 3 for a design that does not fit,
/// 1 for a tool that failed.
#[derive(Debug, thiserror::Error)]
pub enum FpgaError {
    /// A target, board, clock or baud rate that the flow cannot make.
    #[error("{0}")]
    Request(String),
    /// The build directory is not one this flow can use.
    #[error(transparent)]
    Build(#[from] etch_contract::Error),
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read", "write", …
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A tool is missing or failed (the message quotes its log).
    #[error("{0}")]
    Tool(String),
    /// The design needs more of a resource than the FPGA has.
    #[error("{0}")]
    DoesNotFit(String),
}

impl FpgaError {
    /// The `etch` command's exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            FpgaError::Request(_) | FpgaError::Io { .. } => 2,
            FpgaError::Build(e) => {
                if e.is_bad_input() {
                    2
                } else {
                    1
                }
            }
            FpgaError::Tool(_) => 1,
            FpgaError::DoesNotFit(_) => 3,
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        FpgaError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result alias for the FPGA flow.
pub type Result<T, E = FpgaError> = std::result::Result<T, E>;
