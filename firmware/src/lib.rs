//! # etch-firmware: the formats the chip, the simulator and the driver share
//!
//! The chip runs a per-model program — the *firmware* — on a small sequencer. This
//! `no_std` crate defines everything that more than one side of the host interface
//! must agree on, so that no two crates define it twice:
//!
//! * [`isa`]: the sequencer's instruction set and the vector operations it hands to the
//!   datapath; [`vparams`]: each vector operation's parameter row as a typed struct
//!   with its fields' bit positions (the scheduler writes them, the hardware reads
//!   them); [`asm`]: firmware images, the assembler and the disassembler.
//! * [`descriptor`]: the command and completion descriptors that travel through the
//!   submission and completion rings in host memory, their opcodes and status codes.
//! * [`regs`]: the BAR0 register map, which the sequencer also sees as CSRs.
//! * [`link`]: the frames of the serial link between a host and a board top.
//!
//! The firmware itself is generated per model by the compiler: a command loop (fetch
//! a descriptor by DMA, dispatch, post a completion, raise an interrupt) and the
//! per-token schedule (one vector operation per step of `forward()`).

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod asm;
pub mod descriptor;
pub mod isa;
pub mod link;
pub mod regs;
pub mod vparams;

pub use asm::{assemble, disassemble, AsmError, Program};
pub use descriptor::{Command, Completion, Opcode, Status};
pub use isa::{Instr, Op, Params, VKind};
pub use vparams::{Field, VParams};
