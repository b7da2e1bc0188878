//! # etch-fpga: a built chip on an FPGA, with the open tools
//!
//! `etch build` writes a design; this crate makes it a bitstream for a real part:
//!
//! ```text
//!   OUT/rtl/*.v, OUT/rom/*.hex ─┐
//!   OUT/manifest.json ──────────┤   etch_top (board top: PLL, clock gate, etch_board)
//!                               ▼
//!   yosys synth_ecp5 / synth_ice40 ──► netlist.json, stat.txt ──► fit check
//!                               ▼
//!   nextpnr (static placer, router1 by default) ──► etch.config / etch.asc, pnr.json (Fmax)
//!                               ▼
//!   ecppack / icepack ──► etch.bit / etch.bin, report.json
//! ```
//!
//! Everything lands in `OUT/fpga/<target>/`. The tools come from the YoWASP
//! virtualenv that `scripts/setup` installs ([`tools::tool`]).
//!
//! * [`Target`]: the parts (ECP5-85F, ECP5-25F, iCE40UP5K) and what each has.
//! * [`Board`]: bring-up boards (ULX3S, OrangeCrab, iCEBreaker): FPGA, package,
//!   oscillator, pins; [`board::top_verilog`] puts `etch_board` (the chip behind its
//!   UART bridge) on one, with an ECP5 PLL ([`board::ecp5_pll`]) when the chip's clock
//!   is not the oscillator's, and the UART divisor for the link's baud rate.
//! * [`fit`]: a resource model that says, before synthesis, whether a chip fits.
//! * [`asic::estimate`]: what the chip would cost in silicon (transistors of its
//!   logic from a generic yosys synthesis, ROM and SRAM bits), per model parameter.
//! * [`synthesize`]: the flow for one [`Request`], giving a [`Report`] —
//!   utilization, Fmax, timing met, time per tool. An unchanged design reuses its
//!   netlist.
//!
//! The chip is read only through its typed manifest (`etch_contract::Manifest`); this
//! crate does not depend on the hardware generator.

#![deny(missing_docs)]

pub mod asic;
pub mod board;
mod error;
pub mod fit;
mod flow;
pub mod report;
mod target;
pub mod tools;

pub use board::Board;
pub use error::{FpgaError, Result};
pub use flow::{synthesize, Placer, Plan, Request, Router};
pub use report::Report;
pub use target::{Family, Resources, Target};
