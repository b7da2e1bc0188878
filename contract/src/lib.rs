//! # etch-contract: what a built chip promises its host
//!
//! A chip made by etch is a model frozen into silicon. Whoever drives it — the `etch`
//! command, the host runtime an agent OS links, a test — needs to know what it is
//! without the compiler or the hardware generator that made it:
//!
//! ```text
//!   compiler ──writes──► OUT/manifest.json, OUT/tokenizer.bin ──read by──► driver, runtime,
//!                                                                         agent, FPGA flow
//! ```
//!
//! * [`Manifest`]: the build directory's description — the model's identity (the
//!   SHA-256 the chip's MODEL_ID register must report), its shapes ([`Config`]), the
//!   quantization settings and activation formats, the chip's lanes, contexts and
//!   positions, storage, firmware and design hashes, and the [`Layout`] of activations
//!   and matrices.
//! * [`Tokenizer`]: llama2.c's tokenizer with `run.c`'s exact encode and decode rules.
//! * [`SamplingParams`] (temperature, top-p, seed as `run.c` normalizes them) and
//!   [`ChipSampling`], the integers the chip's sampler receives for them.
//! * [`generate`]: `run.c`'s generation loop over any [`Decoder`], so the reference,
//!   the golden model and the chip share one meaning of prompt, `steps` and `ids`.
//!
//! This crate depends on nothing of the hardware: a host links it, the driver and the
//! runtime, and never the hardware generator or the simulator.

#![deny(missing_docs)]

mod config;
mod datapath;
mod error;
mod generate;
pub mod manifest;
mod sampling;
mod tokenizer;

pub use config::{Config, HEADER_BYTES};
pub use datapath::{Datapath, Pipeline};
pub use error::{Error, Result};
pub use generate::{effective_steps, encode_prompt, generate, Decoder, Generation};
pub use manifest::{
    Formats, LayerFormats, LayerPlaces, Layout, Manifest, MatrixPlace, QuantSettings, Rounding,
    Storage, DEFAULT_GROUP_4BIT, WIDE_UNITS,
};
pub use sampling::{ChipSampling, SamplingParams};
pub use tokenizer::{Tokenizer, BOS, EOS};
