//! The hardware generator's error type.

/// Why a chip, a board top or a clock setting cannot be generated. Each variant is a
/// sentence about the caller's request (exit code 2 in the `etch` command).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HdlError {
    /// The chip's parameters break a structural rule of the wiring (lanes, widths,
    /// shapes).
    #[error("{0}")]
    Params(String),
    /// A clock, PLL or UART setting that the hardware cannot make.
    #[error("{0}")]
    Clock(String),
}

impl HdlError {
    /// Every hardware-generator error is about the request, not the machine.
    pub fn is_bad_input(&self) -> bool {
        true
    }
}

/// Result alias for the hardware generator.
pub type Result<T, E = HdlError> = std::result::Result<T, E>;
