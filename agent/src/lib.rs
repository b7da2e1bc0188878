//! # etch-agent: natural-language system calls an agent OS can trust
//!
//! At tens of thousands of tokens per second the model is never the slow part — a
//! person is. This crate is the layer where that is safe: whatever the model writes,
//! nothing runs that the agent's capability does not allow, nothing irreversible runs
//! without a person's approval, and everything is written down in English.
//!
//! * [`Registry`]: the system-call table — tools with English descriptions, typed
//!   arguments, request templates ("move {src} to {dst}"), a reversibility class, a
//!   cost and an approval policy; MCP descriptors in and out.
//! * [`cap`]: capabilities as biscuit tokens (tools, paths, recipients, expiry, call
//!   and cost budgets), delegation only by attenuation, revocation.
//! * [`confine`]: tools that touch the OS run in a child process under a Landlock
//!   ruleset derived from the capability's paths.
//! * [`Syscalls::syscall`]: `syscall(agent, capability, "English request")` — template
//!   match, or the on-chip syscall model writing the call under constrained decoding
//!   ([`SyscallModel`], [`understand`]; another model ranks the registry's candidates
//!   with SCORE); the
//!   capability check; read-only and reversible calls execute (with an undo record),
//!   irreversible ones wait in the staging area (SQLite, WAL) for
//!   [`Syscalls::approve`] / [`Syscalls::deny`] and then execute exactly once, even
//!   across crashes; [`Syscalls::undo`].
//! * [`audit`]: one English line per event, hash-chained and anchored in the state
//!   database; [`audit::verify`] finds an edited, deleted or reordered entry.
//! * [`understand`]: the syscall model's side of a request — the canonical call line,
//!   the training corpus written from the registry, constrained decoding, evaluation.
//! * A C ABI ([`ffi`], `include/etch_agent.h`, `libetch_agent.so`).
//! * A trust monitor that only tightens: an agent with many denials, a burst of calls
//!   or an unusual irreversible tool is put in observe mode (its changes are staged).

#![deny(missing_docs)]

pub mod audit;
pub mod cap;
pub mod confine;
mod error;
pub mod ffi;
pub mod registry;
mod syscall;
pub mod text;
pub mod time;
pub mod tools;
pub mod understand;

pub use error::{AgentError, Result};
pub use registry::{Call, Registry, Reversibility, Tool};
pub use syscall::{
    confinement, syscall_template_is_unambiguous, Action, Answer, Model, Request, Status,
    SyscallModel, Syscalls, BURST_CALLS, BURST_SECONDS, STAGED_FOR, TRUST_DENIALS, TRUST_WINDOW,
    USUAL_AFTER,
};
