//! The agent layer's error type.

use std::path::PathBuf;

/// What can go wrong below a system call. A *denial* is not an error: it is an
/// outcome ([`crate::Status::Denied`]) recorded in the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file of the state directory or the workspace could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read", "write", …
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The state database failed.
    #[error("the state database failed: {0}")]
    Db(#[from] rusqlite::Error),
    /// A capability token could not be made, read or checked.
    #[error("capability: {0}")]
    Capability(String),
    /// A request, an argument, a tool descriptor or a command-line value was refused.
    #[error("{0}")]
    Invalid(String),
    /// No such action, tool or entry.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the recorded state (approving twice, undoing an
    /// irreversible action, …).
    #[error("{0}")]
    Conflict(String),
    /// The audit log does not verify.
    #[error("the audit log is damaged: {0}")]
    Tampered(String),
    /// A tool could not be confined or run.
    #[error("{0}")]
    Tool(String),
    /// The chip (model proposals) failed.
    #[error(transparent)]
    Runtime(#[from] etch_runtime::RuntimeError),
}

impl AgentError {
    /// True for errors caused by the caller's input (as opposed to the machine).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            AgentError::Capability(_)
                | AgentError::Invalid(_)
                | AgentError::NotFound(_)
                | AgentError::Conflict(_)
                | AgentError::Tampered(_)
        )
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        AgentError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<biscuit_auth::error::Token> for AgentError {
    fn from(e: biscuit_auth::error::Token) -> Self {
        AgentError::Capability(e.to_string())
    }
}

/// Result alias for the agent layer.
pub type Result<T> = std::result::Result<T, AgentError>;
