//! # etch-hdl: the chip's hardware blocks
//!
//! The blocks of a hard-wired transformer, written with rust-hdl and emitted as
//! synthesizable Verilog: the PCIe-style host interface (BAR0 registers, rings reached
//! by DMA, doorbells, interrupt vectors), the sequencer that runs the firmware, the
//! MAC-lane vector unit fed by banked weight ROMs, activation and KV-cache SRAMs,
//! special-function units, reduction trees, and the sampler with its RNG.
//!
//! (The chip issue fills this crate; until then it only states its job.)

#![deny(missing_docs)]
