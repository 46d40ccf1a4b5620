//! Errors of the evaluation crate; each names the sequence, frame or file at fault.

use std::path::PathBuf;

use memvos_data::DataError;

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading ground truth or results failed (missing folder, corrupt PNG, …).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The results folder of a sequence does not exist.
    #[error("sequence {sequence}: results folder {path} does not exist")]
    MissingResults { sequence: String, path: PathBuf },
    /// A scored frame has no result file (the toolkit exits silently here).
    #[error("sequence {sequence}, frame {frame}: result {path} is missing")]
    MissingFrame {
        sequence: String,
        frame: String,
        path: PathBuf,
    },
    /// A result whose size differs from the ground truth.
    #[error("sequence {sequence}, frame {frame}: result {path} is {got_w}x{got_h} (WxH) but the ground truth is {want_w}x{want_h}")]
    SizeMismatch {
        sequence: String,
        frame: String,
        path: PathBuf,
        got_w: usize,
        got_h: usize,
        want_w: usize,
        want_h: usize,
    },
    /// A result holds a label the ground truth does not have (the toolkit exits silently here).
    #[error("sequence {sequence}, frame {frame}: result {path} holds label {label}, but the ground truth has {num_objects} object(s)")]
    UnknownLabel {
        sequence: String,
        frame: String,
        path: PathBuf,
        label: u8,
        num_objects: u8,
    },
    /// A sequence with fewer than 3 ground-truth frames has no frame to score.
    #[error("sequence {sequence} has {frames} ground-truth frame(s); the semi-supervised protocol needs at least 3")]
    TooShort { sequence: String, frames: usize },
    /// A submission misses a frame the benchmark requires.
    #[error("submission is missing {path} (video {video}, frame {frame})")]
    MissingSubmissionFrame {
        video: String,
        frame: String,
        path: PathBuf,
    },
    /// Writing a zip archive failed.
    #[error("cannot write zip {path}: {reason}")]
    Zip { path: PathBuf, reason: String },
    /// Options that make no sense (a non-integer boundary radius, an empty video list, …).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// Local scoring needs every frame annotated (YouTube-VOS `train`); `valid`/`test` have only
    /// first-appearance masks.
    #[error("video {video} of split {split} has ground truth for {annotated} of its {frames} frames: scoring needs a split with full annotations (the training split; validation and test masks are not public)")]
    IncompleteGroundTruth { split: String, video: String, annotated: usize, frames: usize },
    /// A submission file that is not what the server reads.
    #[error("submission file {path}: {reason}")]
    BadSubmissionFile { path: PathBuf, reason: String },
    /// Files in a submission that the benchmark does not ask for.
    #[error("the submission holds {count} file(s) the benchmark does not ask for: {list}")]
    ExtraSubmissionFiles { count: usize, list: String },
}
