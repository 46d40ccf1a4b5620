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
//! [`device`] picks the burn device from a `--device` flag; [`runner`] holds the loops the
//! example binaries run; [`cli`] turns their errors into one readable line.

pub mod cli;
pub mod device;
pub mod long_video;
pub mod output;
pub mod progress;
pub mod runner;
pub mod timing;

pub use burn;
pub use memvos_data as data;
pub use memvos_eval as eval;
pub use memvos_backbone as backbone;
pub use memvos_cpu as cpu;
pub use memvos_memory as memory;
pub use memvos_model as model;
pub use memvos_studio as studio;
pub use memvos_train as train;
