//! # etch-firmware: the formats the chip, the simulator and the driver share
//!
//! The chip runs a per-model schedule — the *firmware* — on a small sequencer. This
//! `no_std` crate defines everything that more than one side of the host interface
//! must agree on, so that no two crates define it twice: the sequencer's instruction
//! set with its assembler and disassembler, the command and completion descriptors
//! that travel through the submission and completion rings, and the BAR0 register map.
//!
//! (The chip issue fills this crate; until then it only states its job.)

#![no_std]
#![deny(missing_docs)]
