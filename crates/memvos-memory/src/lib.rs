//! # memvos-memory
//!
//! What a memory network remembers and how it reads it: affinity kernels as plain functions
//! over tensors, in a direct and a bounded-memory chunked form ([`affinity`]); the
//! [`MemoryBank`] of keys and per-object values that a propagator writes memory frames into and
//! reads query frames against; and the [`MemoryPolicy`]s that decide which frames are written,
//! evicted and read ([`policy`]: every-N/STCN, MiVOS, QDMN, IMSFR, FIFO, reservoir).

#![warn(missing_docs)]

//!
//! The crate depends on burn's tensor API only (`burn-tensor`, re-exported as [`burn_tensor`]),
//! no backend: its kernels run on the device the caller's tensors live on. Enable a backend in
//! the crate that makes the tensors (memvos-model uses burn's flex CPU backend).

pub use burn_tensor;

pub mod affinity;
pub mod bank;
pub mod bench;
pub mod policy;
pub mod transfers;

pub use affinity::{
    KernelError, Selection, Similarity, dot_affinity, kernelized_scores, l2_affinity, read, read_chunked, readout, readout_sparse, softmax_memory, topk,
    topk_softmax,
};
pub use bank::{MemoryBank, MemoryError, ReadConfig, ReadSpec, ValueSlot};
pub use policy::{Candidate, EveryN, Fifo, FrameRule, Imsfr, ImsfrSampling, Fresh, MemoryPolicy, PolicyConfig, PolicyKind, Qdmn, Reservoir, StoredFrame, Usage, Write};
