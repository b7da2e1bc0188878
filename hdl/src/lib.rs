//! # etch-hdl: the chip's hardware blocks
//!
//! A hard-wired transformer chip: the weights are ROM contents next to the multipliers,
//! a small sequencer runs the per-model firmware, and a vector unit of `L` MAC lanes
//! executes one step of the model at a time.
//!
//! ```text
//!            BAR0 (MMIO)                     DMA (8-byte beats)        irq
//!                │                                  ▲                   ▲
//!        ┌───────▼────────┐   CSRs   ┌──────────────┴───────┐          │
//!        │ host interface │◄────────►│      sequencer       │──────────┘
//!        │ regs, counters │          │  IMEM · params · SPAD│
//!        └────────────────┘          └──────────┬───────────┘
//!                                               │ vop (kind, row, ra, rb, rc)
//!                                    ┌──────────▼───────────┐
//!            weight ROM ────────────►│  vector controller   │◄── rsqrt · sigmoid · sincos
//!            requant ROM ───────────►│  micro-ops, addresses│     exp2 · log2 (sampler)
//!            gain ROM ──────────────►└──┬────────────────┬──┘
//!                                       │ broadcast      │
//!         ┌──────────┬──────────┬───────▼──┐             │
//!         │ lane 0   │ lane 1   │ … lane L-1│ AR (activation RAM) per lane
//!         │ ×, acc,  │          │           │ KV rows ──► lanes (keys, values)
//!         │ requant  │          │           │
//!         └────┬─────┴────┬─────┴─────┬─────┘
//!              └── adder tree ──┬─────┴── argmax tree
//!                               ▼
//!                 head units (scores, max, exp2 weights, Σ, 1/Σ)
//! ```
//!
//! The datapath blocks are rust-hdl `LogicBlock`s with fixed widths taken from the
//! numerics (int16 activations, 48-bit accumulators, 16-bit multipliers):
//! [`lane::Lane`], [`head::HeadUnit`], [`hostif::HostIf`] and the special-function
//! units of [`sfu`]. The two state machines are generated as Verilog in named parts,
//! because a controller of that size reads best that way: [`vctrl::verilog`] (the
//! vector controller, its parameter fields named from `etch_firmware::vparams`) and
//! [`seq::verilog`] (the sequencer, its opcodes from `etch_firmware::isa::Op`).
//! Everything a model changes — the number of lanes, memory depths, which lane reads
//! which key element, which head a lane serves — is assembled by [`top::chip_verilog`]
//! as structural Verilog around them; [`emit::design_files`] writes the whole design.
//! Signed multiplication, arithmetic shifts and memories initialized from hex files
//! are primitives ([`prim`]): a few lines of Verilog each, with a rust-hdl simulation
//! model.
//!
//! Generated Verilog is clean under `verilator --lint-only -Wall`; the waivers
//! ([`emit::RUST_HDL_WAIVERS`]) cover only the rust-hdl-generated modules, whose
//! 32-bit literals, full-width intermediates and repeated state enumerations trip
//! WIDTH, UNUSEDSIGNAL and UNUSEDPARAM.
//!
//! For bring-up boards, [`board`] wraps the chip in `etch_board`: a power-on reset and
//! the [`bridge::Bridge`], which carries MMIO, DMA and interrupts over a UART.

#![deny(missing_docs)]

pub mod board;
pub mod bridge;
pub mod emit;
mod error;
pub mod head;
pub mod hostif;
pub mod lane;
pub mod prim;
pub mod seq;
pub mod sfu;
pub mod top;
pub mod vctrl;

pub use error::{HdlError, Result};
