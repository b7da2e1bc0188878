//! # etch-driver: one `Device` API over every way of reaching a chip
//!
//! A user-space driver: VFIO for real PCIe boards, vfio-user for the simulator, a
//! serial bridge for bring-up boards and an in-process backend for tests. Above the
//! backends sits the queue driver: reset, IDENTIFY, model-identity check, contexts,
//! PREFILL, GENERATE with token streaming, SCORE, SAVE/RESTORE, ABORT.
//!
//! (The driver issue fills this crate; until then it only states its job.)

#![deny(missing_docs)]
