//! Verilog emission of rust-hdl blocks under chosen module names.

use rust_hdl::prelude::*;

/// The Verilog of `block` and its sub-blocks, the top module named `name` (sub-modules
/// are named `name$path`).
pub fn block_verilog<B: Block>(block: &B, name: &str) -> String {
    let mut defines = ModuleDefines::default();
    block.accept(name, &mut defines);
    defines.defines()
}

/// Lint waivers at the head of every file of rust-hdl-generated modules.
///
/// rust-hdl writes literals as 32-bit constants and casts as masks, so Verilator's WIDTH
/// warnings fire on expressions whose results are nevertheless the widths the Rust
/// types fix; and it declares full-width intermediates of which the logic uses only
/// some bits (UNUSEDSIGNAL), and repeats state enumerations as parameters in every
/// sub-module (UNUSEDPARAM). These are waived for these modules only; the hand-written
/// primitives and the generated top level are clean under `-Wall`.
pub const RUST_HDL_WAIVERS: &str =
    "/* verilator lint_off WIDTH */\n/* verilator lint_off UNUSEDSIGNAL */\n/* verilator lint_off UNUSEDPARAM */\n";
