//! The command-line tool's error type and exit codes.

/// What can make an `etch` command fail.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An error from the compiler crate (loading, quantizing, running models).
    #[error(transparent)]
    Compiler(#[from] etch_compiler::Error),
    /// A manifest, tokenizer or prompt was refused.
    #[error(transparent)]
    Contract(#[from] etch_contract::Error),
    /// The FPGA flow refused the request or a tool failed.
    #[error(transparent)]
    Fpga(#[from] etch_fpga::FpgaError),
    /// The driver or the simulator failed.
    #[error(transparent)]
    Driver(#[from] etch_driver::DriverError),
    /// The runtime (engine, contexts) failed.
    #[error(transparent)]
    Runtime(#[from] etch_runtime::RuntimeError),
    /// The agent layer (capabilities, staging, audit) failed or refused.
    #[error(transparent)]
    Agent(#[from] etch_agent::AgentError),
    /// Training failed or was refused.
    #[error(transparent)]
    Train(#[from] etch_train::TrainError),
    /// The command has printed its answer; exit with this code.
    #[error("exit status {0}")]
    Exit(u8),
    /// Bad command-line input that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// A file the command needs could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Output could not be produced (e.g. JSON serialization).
    #[error("internal error: {0}")]
    Internal(String),
}

impl CliError {
    /// Exit code for scripts: 2 for bad input, 1 for internal failures — the same
    /// for a failure inside any command (a driver failure in `etch agent` is 1, as
    /// in `etch run`).
    pub fn exit_code(&self) -> i32 {
        let input = |bad: bool| if bad { 2 } else { 1 };
        match self {
            CliError::Compiler(e) => input(e.is_bad_input()),
            CliError::Contract(e) => input(e.is_bad_input()),
            CliError::Fpga(e) => e.exit_code(),
            CliError::Driver(e) => CliError::exit_code_of_driver(e),
            CliError::Runtime(e) | CliError::Agent(etch_agent::AgentError::Runtime(e)) => {
                CliError::exit_code_of_runtime(e)
            }
            CliError::Agent(e) => input(e.is_bad_input()),
            CliError::Train(
                etch_train::TrainError::Invalid(_) | etch_train::TrainError::Io { .. },
            ) => 2,
            CliError::Train(etch_train::TrainError::Compiler(e)) => input(e.is_bad_input()),
            CliError::Train(etch_train::TrainError::Contract(e)) => input(e.is_bad_input()),
            CliError::Train(_) => 1,
            CliError::Exit(c) => *c as i32,
            CliError::Usage(_) | CliError::Io { .. } => 2,
            CliError::Internal(_) => 1,
        }
    }
}

impl CliError {
    fn exit_code_of_runtime(e: &etch_runtime::RuntimeError) -> i32 {
        use etch_runtime::RuntimeError as R;
        match e {
            R::Driver(d) => CliError::exit_code_of_driver(d),
            R::Contract(c) if c.is_bad_input() => 2,
            R::Contract(_) => 1,
            R::BadName(_) | R::CorruptContext { .. } | R::Io { .. } | R::InvalidArgument(_) => 2,
        }
    }

    fn exit_code_of_driver(e: &etch_driver::DriverError) -> i32 {
        match e {
            etch_driver::DriverError::IdentityMismatch { .. }
            | etch_driver::DriverError::RomSignature { .. }
            | etch_driver::DriverError::FirmwareMismatch
            | etch_driver::DriverError::InvalidArgument(_)
            | etch_driver::DriverError::NotEtchDevice(_) => 2,
            _ => 1,
        }
    }
}

/// Result alias for commands.
pub type CliResult<T = ()> = Result<T, CliError>;
