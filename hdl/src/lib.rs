//! # etch-hdl: the chip's hardware blocks
#![deny(missing_docs)]

pub mod emit;
pub mod head;
pub mod hostif;
pub mod lane;
pub mod prim;
pub mod seq;
pub mod sfu;
pub mod top;
pub mod vctrl;
