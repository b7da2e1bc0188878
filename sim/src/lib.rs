//! # etch-sim: the chip in Verilator, behind a PCIe endpoint model
//!
//! Builds the Verilated model of a generated design (cached by design hash) and drives
//! it as a PCIe endpoint would be driven: MMIO into BAR0, DMA into host memory,
//! interrupt lines, the clock. It never computes a model value; every number comes from
//! the RTL. It also serves the simulated chip as a vfio-user device.
//!
//! (The chip and driver issues fill this crate; until then it only states its job.)

#![deny(missing_docs)]
