//! # memvos
//!
//! Semi-supervised video object segmentation with memory networks (STM as improved in MiVOS,
//! STCN, QDMN, GSFM, IMSFR) on burn. This crate re-exports the workspace's libraries and owns
//! the example binaries and benchmarks:
//!
//! | crate | job |
//! |---|---|
//! | [`data`] (`memvos-data`) | frames, masks, dataset layouts, writers, synthetic videos, augmentation |
//! | [`eval`] (`memvos-eval`) | DAVIS J/F/J&F with toolkit parity, results CSVs, YouTube-VOS packaging, FPS |
//! | [`backbone`] (`memvos-backbone`) | ResNet trunks |
//! | [`memory`] (`memvos-memory`) | affinity kernels, memory bank |
//! | [`model`] (`memvos-model`) | the networks behind one trait, weight import, the streaming `Propagator` and `InferenceCore` |
//! | [`train`] (`memvos-train`) | recipes, training data, losses, the training loop |
//!
//! [`device`] picks the burn device from a `--device` flag. With the default `cli` feature,
//! `runner` holds the loops the example binaries run and `cli` turns their errors into one
//! readable line; a crate embedding memvos turns default features off and keeps the libraries
//! (the `train` and `studio` features add the trainer and the studio).

#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod device;
#[cfg(feature = "cli")]
pub mod long_video;
#[cfg(feature = "cli")]
pub mod output;
#[cfg(feature = "cli")]
pub mod progress;
#[cfg(feature = "cli")]
pub mod runner;
#[cfg(feature = "cli")]
pub mod timing;

pub use burn;

/// The README's Rust snippets, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use memvos_data as data;
pub use memvos_eval as eval;
pub use memvos_backbone as backbone;
pub use memvos_cpu as cpu;
pub use memvos_memory as memory;
pub use memvos_model as model;
#[cfg(feature = "studio")]
pub use memvos_studio as studio;
#[cfg(feature = "train")]
pub use memvos_train as train;
