//! Verilog emission of rust-hdl blocks under chosen module names.

use rust_hdl::prelude::*;

/// The Verilog of `block` and its sub-blocks, the top module named `name` (sub-modules
/// are named `name$path`).
pub fn block_verilog<B: Block>(block: &B, name: &str) -> String {
    let mut defines = ModuleDefines::default();
    block.accept(name, &mut defines);
    defines.defines()
}
