//! The driver's error type.

use etch_firmware::Status;

/// Everything that can go wrong between the host and a chip.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The simulator could not be built, loaded or run.
    #[error(transparent)]
    #[cfg(feature = "sim")]
    Sim(#[from] etch_sim::SimError),
    /// BAR0 does not hold an etch chip.
    #[error("the device is not an etch chip (ID register {0:#010x})")]
    NotEtch(u32),
    /// The chip holds another model than the manifest describes.
    #[error("the chip's model identity {chip} differs from the manifest's {manifest}: refusing a chip built from other weights")]
    IdentityMismatch {
        /// Identity read from the chip.
        chip: String,
        /// Identity in the manifest.
        manifest: String,
    },
    /// The chip's ROM self-test signature differs from the manifest's.
    #[error("the chip's ROM signature {chip:016x} differs from the manifest's {manifest:016x}: its weight ROMs do not hold the model (altered or corrupt ROM images)")]
    RomSignature {
        /// Signature read from the chip.
        chip: u64,
        /// Signature in the manifest.
        manifest: u64,
    },
    /// The chip runs other firmware than the manifest describes.
    #[error("the chip's firmware hash differs from the manifest's")]
    FirmwareMismatch,
    /// The chip did not finish booting.
    #[error("the chip did not become ready within {0} cycles")]
    NotReady(u64),
    /// A command did not complete in time; the device was reset.
    #[error("{what} made no progress for {budget}; {after}")]
    Timeout {
        /// The command.
        what: String,
        /// The budget that ran out.
        budget: String,
        /// What the driver did about it.
        after: String,
    },
    /// A command completed with an error status.
    #[error("{what} failed: {status_text} (status {status})")]
    Command {
        /// The command.
        what: String,
        /// The status code.
        status: u16,
        /// Its description.
        status_text: &'static str,
        /// Tokens processed before the failure.
        result: u32,
    },
    /// The sequencer stopped on a fault.
    #[error("the chip's sequencer faulted; reset it")]
    Fault,
    /// An argument does not fit the chip.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The connection to a vfio-user server failed or was lost.
    #[error("{0}")]
    Transport(String),
    /// The device is not an etch chip (or not one this driver can use).
    #[error("{0}")]
    NotEtchDevice(String),
    /// VFIO refused an operation.
    #[error("VFIO: {0}")]
    Vfio(String),
    /// The device was reset while this command was in flight (another command timed out).
    #[error("{0} was lost: the device was reset while it was queued or running")]
    Lost(String),
    /// A DMA buffer could not be allocated or accessed.
    #[error("DMA buffer: {0}")]
    Dma(String),
}

impl DriverError {
    /// The completion status of a failed command, if that is what failed.
    pub fn status(&self) -> Option<Status> {
        match self {
            DriverError::Command { status, .. } => Status::from_u16(*status),
            _ => None,
        }
    }
}

/// Result alias for the driver.
pub type Result<T> = std::result::Result<T, DriverError>;
