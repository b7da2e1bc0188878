//! # etch-runtime: the library an agent OS links
//!
//! Generation and contexts as managed resources on a hard-wired transformer chip
//! reached through any driver backend (the in-process simulator, vfio-user, VFIO, a
//! serial board). [`Engine`] opens a chip with its manifest and tokenizer and offers:
//!
//! * [`Engine::chat`]: append text to an agent's named context and stream a reply,
//!   with sampling parameters and stop strings;
//! * [`Engine::story`]: llama2.c's generation loop, token for token what `etch sim`
//!   produces;
//! * [`Engine::score`]: the log-likelihood of a text through the chip's SCORE command.
//!
//! Contexts are an agent's working memory: resident in the chip's KV slots while in
//! use, saved to host memory and to disk when slots run out (least recently used
//! first), restored transparently — also after a process restart — and compacted when
//! they reach the model's sequence length. Every such step is a [`ContextEvent`].
//!
//! The natural-language system calls, tools, capabilities, staging, undo and the audit
//! log live in the `etch-agent` crate, which uses [`Engine::score`] to let the chip
//! choose among the tool registry's candidates.
//!
//! What the runtime knows of a chip comes from `etch-contract` (the manifest, the
//! tokenizer, sampling settings); it links neither the compiler nor the hardware
//! generator. `sim:OUT` devices (the chip simulated in this process) need the `sim`
//! feature; without it they are refused with a clear error.

#![deny(missing_docs)]

mod device;
mod engine;
mod error;
pub mod ffi;
pub mod store;

pub use device::DeviceSpec;
pub use engine::{
    expected, run_story, ChatStream, ContextEvent, ContextId, Engine, GenOptions, Reply, Score,
    Source, StopReason, Story,
};
pub use error::{Result, RuntimeError};
