//! # memvos-memory
//!
//! What a memory network remembers and how it reads it: affinity kernels as plain functions
//! over tensors ([`affinity`]), and the [`MemoryBank`] of keys and per-object values that a
//! propagator writes memory frames into and reads query frames against.

pub mod affinity;
pub mod bank;

pub use affinity::{l2_affinity, readout, softmax_memory, topk_softmax};
pub use bank::{MemoryBank, MemoryError};
