//! # etch-hdl: the chip's hardware blocks
#![deny(missing_docs)]

pub mod emit;
pub mod lane;
pub mod prim;
pub mod sfu;
