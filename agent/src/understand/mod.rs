//! Understanding requests with a model made for it: the syscall model.
//!
//! A story model cannot read "I want a.txt to be called b.txt" as a rename; a small
//! model trained by etch on the registry's own requests can. This module holds what
//! that takes, apart from the trainer and the chip:
//!
//! * [`line`]: the one canonical text of a call (`fs.move src="a.txt" dst="b.txt"`,
//!   `none` to refuse), which the model writes after the request;
//! * [`corpus`]: the (request → call line) pairs the model is trained on, written from
//!   the registry with a paraphrase grammar;
//! * [`decode`]: constrained decoding — registry tools, the tool's arguments, values
//!   copied from the request — over any source of next-token logits (the float model,
//!   the golden model, the chip);
//! * [`eval`]: accuracy on a set of (request, call line) pairs, per tool.

pub mod corpus;
pub mod decode;
pub mod eval;
pub mod line;

pub use decode::{completion, prompt, prompt_text, understand, Logits, Understood, Vocabulary};
