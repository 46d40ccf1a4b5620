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
//!
//! [`device`] picks the burn device from a `--device` flag.

pub mod device;

pub use burn;
pub use memvos_data as data;
pub use memvos_eval as eval;
