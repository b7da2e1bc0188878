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
//! * `InProcess`: the Verilated chip inside this process (tests, benches, `etch sim`) —
//!   behind the `sim` feature, so that a host driving a real board links no simulator;
//! * [`VfioUser`]: a chip served by another process over a vfio-user socket
//!   (`etch serve`);
//! * [`VfioPci`]: a board on PCIe bound to vfio-pci, found with [`sysfs`], over the
//!   generic VFIO layer [`VfioFunction`] (which runs against QEMU's `edu` device in a
//!   guest kernel: `driver/tests/kvm_vfio.rs`);
//! * [`Serial`]: a bring-up board behind the UART bridge of its board top.
//!
//! Above them, [`Chip`] is the queue driver: boot and identity checks (the model
//! identity and ROM signature must match the manifest), contexts, PREFILL, GENERATE
//! with streaming, SCORE, SAVE/RESTORE_CONTEXT, abort, and timeouts that reset the
//! device.

#![deny(missing_docs)]

mod device;
mod dma;
mod error;
#[cfg(feature = "sim")]
mod inprocess;
mod queue;
pub mod serial;
pub mod sysfs;
mod vfio;
mod vfio_pci;
mod vfio_user;

pub use device::{Device, DmaBuffer, Event};
pub use error::{DriverError, Result};
#[cfg(feature = "sim")]
pub use inprocess::InProcess;
pub use queue::{Chip, ChipInfo, Completions, Expected, Generated, Sampling, Timeout};
pub use serial::Serial;
pub use vfio::{Interrupts, MappedRegion, VfioFunction};
pub use vfio_pci::VfioPci;
pub use vfio_user::VfioUser;
