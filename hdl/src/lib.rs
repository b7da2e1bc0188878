//! # etch-hdl: the chip's hardware blocks
#![deny(missing_docs)]

pub mod emit;
pub mod head;
pub mod lane;
pub mod prim;
pub mod sfu;
pub mod vctrl;
