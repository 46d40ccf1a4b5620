//! # memvos-train
//!
//! Staged training of the memvos networks on burn (methods.md §2.6–2.7, §4): [`recipe`]s
//! (per method and stage, serde files, overridable), [`data`] (static images as pseudo-videos,
//! BL30K, DAVIS, YouTube-VOS and synthetic videos, clip sampling with the max-skip curriculum,
//! augmentation in background workers, a deterministic order), the [`loss`]es, the 3-frame
//! training [`step`] on the eval networks' own modules, and the iteration loop ([`trainer`]):
//! Adam with weight decay and the step schedule, burn-train's metrics and dashboard, atomic
//! checkpoints and a resume that loses nothing.

#![warn(missing_docs)]

pub mod dashboard;
pub mod data;
pub mod fuzzing;
pub mod init;
pub mod loss;
pub mod plot;
pub mod recipe;
pub mod step;
pub mod trainer;

pub use recipe::{Recipe, RecipeError, Source};
pub use trainer::{IterationStats, Observer, TrainError, TrainOptions, TrainReport, train};
