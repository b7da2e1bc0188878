//! # etch-runtime: the library an agent OS links
//!
//! Generation and contexts as managed resources, and system calls in English: a tool
//! registry, capabilities, a staging area where irreversible actions wait for a
//! person's approval, undo, and a tamper-evident audit log — enforced whatever the
//! model says. A C ABI exposes it to non-Rust agent OSes.
//!
//! (The runtime issues fill this crate; until then it only states its job.)

#![deny(missing_docs)]
