//! # memvos-eval
//!
//! Scores video object segmentation results: per-frame region similarity J and boundary
//! F-measure identical to the DAVIS toolkit's ([`metrics`], on bit-packed masks from
//! [`bitmask`]), its per-object statistics ([`stats`]), the DAVIS 2016/2017 semi-supervised
//! protocols ([`davis`]), its results CSVs ([`csv`]), YouTube-VOS submission packaging and local
//! scoring ([`youtube`]), and the papers' FPS accounting ([`fps`]).
//!
//! Where the toolkit exits silently (a predicted label above the object count, a missing scored
//! frame) this crate returns an [`EvalError`] naming the sequence and frame instead, and the
//! Decay of sequences longer than 255 scored frames is computed without the toolkit's `uint8`
//! overflow.

#![warn(missing_docs)]

pub mod bitmask;
pub mod csv;
pub mod davis;
pub mod error;
pub mod fps;
pub mod metrics;
pub mod stats;
pub mod youtube;

pub use davis::{EvalOptions, Evaluation, GlobalScores, ObjectScores, Protocol, evaluate, evaluate_sequence};
pub use error::{EvalError, Result};
pub use fps::FpsMeter;
pub use stats::Statistics;
