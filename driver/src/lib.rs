//! # etch-driver: one `Device` API over every way of reaching a chip
//!
//! An etch chip looks like an NVMe-style PCIe device. BAR0 holds its registers
//! (identity, configuration, status, the cycle counter, the queue registers); commands
//! travel through a **submission ring** of 64-byte descriptors in host memory, which the
//! chip fetches by DMA when the host writes the ring's tail (the doorbell); the chip
//! answers each with a 16-byte completion in the **completion ring**, whose phase bit
//! flips every time the ring wraps, and raises an interrupt. Tokens stream into host
//! memory by DMA as the chip produces them.
//!
//! Backends implement [`Device`] — registers, DMA memory, interrupts:
//!
//! * [`InProcess`]: the Verilated chip inside this process (tests, benches, `etch sim`).
//!
//! Above them, [`Chip`] is the queue driver: boot and identity checks (the model
//! identity and ROM signature must match the manifest), contexts, PREFILL, GENERATE
//! with streaming, SCORE, SAVE/RESTORE_CONTEXT, abort, and timeouts that reset the
//! device.

#![deny(missing_docs)]

mod device;
mod error;
mod inprocess;
mod queue;

pub use device::{Device, DmaBuffer, Event};
pub use error::{DriverError, Result};
pub use inprocess::InProcess;
pub use queue::{Chip, ChipInfo, Expected, Generated, Sampling};
