//! Errors of the evaluation crate; each names the sequence, frame or file at fault.

use std::path::PathBuf;

use memvos_data::DataError;

/// A result of this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// What can go wrong evaluating or packaging results.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading ground truth or results failed (missing folder, corrupt PNG, …).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The results folder of a sequence does not exist.
    #[error("sequence {sequence}: results folder {path} does not exist")]
    MissingResults {
        /// The sequence.
        sequence: String,
        /// The file or folder.
        path: PathBuf,
    },
    /// A scored frame has no result file (the toolkit exits silently here).
    #[error("sequence {sequence}, frame {frame}: result {path} is missing")]
    MissingFrame {
        /// The sequence.
        sequence: String,
        /// The frame.
        frame: String,
        /// The file or folder.
        path: PathBuf,
    },
    /// A result whose size differs from the ground truth.
    #[error("sequence {sequence}, frame {frame}: result {path} is {got_w}x{got_h} (WxH) but the ground truth is {want_w}x{want_h}")]
    SizeMismatch {
        /// The sequence.
        sequence: String,
        /// The frame.
        frame: String,
        /// The file or folder.
        path: PathBuf,
        /// Its width.
        got_w: usize,
        /// Its height.
        got_h: usize,
        /// The ground truth's width.
        want_w: usize,
        /// The ground truth's height.
        want_h: usize,
    },
    /// A result holds a label the ground truth does not have (the toolkit exits silently here).
    #[error("sequence {sequence}, frame {frame}: result {path} holds label {label}, but the ground truth has {num_objects} object(s)")]
    UnknownLabel {
        /// The sequence.
        sequence: String,
        /// The frame.
        frame: String,
        /// The file or folder.
        path: PathBuf,
        /// The label found.
        label: u8,
        /// Objects in the ground truth.
        num_objects: u8,
    },
    /// A sequence with fewer than 3 ground-truth frames has no frame to score.
    #[error("sequence {sequence} has {frames} ground-truth frame(s); the semi-supervised protocol needs at least 3")]
    TooShort {
        /// The sequence.
        sequence: String,
        /// Frames.
        frames: usize,
    },
    /// A submission misses a frame the benchmark requires.
    #[error("submission is missing {path} (video {video}, frame {frame})")]
    MissingSubmissionFrame {
        /// The video.
        video: String,
        /// The frame.
        frame: String,
        /// The file or folder.
        path: PathBuf,
    },
    /// Writing a zip archive failed.
    #[error("cannot write zip {path}: {reason}")]
    Zip {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Options that make no sense (a non-integer boundary radius, an empty video list, …).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// Local scoring needs every frame annotated (YouTube-VOS `train`); `valid`/`test` have only
    /// first-appearance masks.
    #[error("video {video} of split {split} has ground truth for {annotated} of its {frames} frames: scoring needs a split with full annotations (the training split; validation and test masks are not public)")]
    IncompleteGroundTruth {
        /// The split.
        split: String,
        /// The video.
        video: String,
        /// Frames with ground truth.
        annotated: usize,
        /// Frames.
        frames: usize,
    },
    /// A submission file that is not what the server reads.
    #[error("submission file {path}: {reason}")]
    BadSubmissionFile {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Files in a submission that the benchmark does not ask for.
    #[error("the submission holds {count} file(s) the benchmark does not ask for: {list}")]
    ExtraSubmissionFiles {
        /// How many.
        count: usize,
        /// Their names (the first few).
        list: String,
    },
}
