//! The semi-supervised protocols of the DAVIS toolkits: DAVIS 2017 (objects `1..=max label of
//! ground-truth frame 0`, first and last frame not scored, void counted as background) and
//! DAVIS 2016 (one object: every non-zero pixel). Sequences are scored in parallel.

use std::path::Path;

use memvos_data::io::read_mask;
use memvos_data::layout::{Dataset, Video};
use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::metrics::{BOUND_TH, boundary_radius, frame_scores};
use crate::stats::{Statistics, mean};

/// Which toolkit's rules to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    /// DAVIS 2017: every object by its label, results as palette PNGs.
    Davis2017,
    /// DAVIS 2016: one binary object (every non-zero label).
    Davis2016,
}

impl Protocol {
    /// The protocol of a DAVIS year (2016 or 2017).
    pub fn from_year(year: u16) -> Result<Self> {
        match year {
            2017 => Ok(Protocol::Davis2017),
            2016 => Ok(Protocol::Davis2016),
            other => Err(EvalError::InvalidOption(format!("DAVIS year must be 2016 or 2017, got {other}"))),
        }
    }
}

/// Evaluation settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalOptions {
    /// Which toolkit's rules.
    pub protocol: Protocol,
    /// The F measure's boundary tolerance (the toolkit's `bound_th`, 0.008 of the diagonal).
    pub bound_th: f64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            protocol: Protocol::Davis2017,
            bound_th: BOUND_TH,
        }
    }
}

/// Per-frame scores and statistics of one object of one sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectScores {
    /// The sequence.
    pub sequence: String,
    /// The object's label.
    pub id: u8,
    /// Names of the scored frames.
    pub frames: Vec<String>,
    /// Region similarity J (IoU) per scored frame.
    pub j: Vec<f64>,
    /// Boundary accuracy F per scored frame.
    pub f: Vec<f64>,
    /// Mean, Recall and Decay of `j`.
    pub j_stats: Statistics,
    /// Mean, Recall and Decay of `f`.
    pub f_stats: Statistics,
}

impl ObjectScores {
    /// The row name of the toolkit's per-sequence CSV: `<sequence>_<id>`.
    pub fn csv_name(&self) -> String {
        format!("{}_{}", self.sequence, self.id)
    }
}

/// The global row of the toolkit: plain means over all objects of all sequences.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalScores {
    /// Mean of J-Mean and F-Mean.
    pub jf_mean: f64,
    /// Mean over objects of J's mean.
    pub j_mean: f64,
    /// Mean over objects of J's recall.
    pub j_recall: f64,
    /// Mean over objects of J's decay.
    pub j_decay: f64,
    /// Mean over objects of F's mean.
    pub f_mean: f64,
    /// Mean over objects of F's recall.
    pub f_recall: f64,
    /// Mean over objects of F's decay.
    pub f_decay: f64,
}

impl GlobalScores {
    /// The global scores of these objects (NaN statistics skipped, as NumPy's `nanmean`).
    pub fn of(objects: &[ObjectScores]) -> Self {
        let col = |f: &dyn Fn(&ObjectScores) -> f64| mean(&objects.iter().map(f).collect::<Vec<_>>());
        let j_mean = col(&|o| o.j_stats.mean);
        let f_mean = col(&|o| o.f_stats.mean);
        GlobalScores {
            jf_mean: (j_mean + f_mean) / 2.0,
            j_mean,
            j_recall: col(&|o| o.j_stats.recall),
            j_decay: col(&|o| o.j_stats.decay),
            f_mean,
            f_recall: col(&|o| o.f_stats.recall),
            f_decay: col(&|o| o.f_stats.decay),
        }
    }

    /// The values in the toolkit's column order.
    pub fn as_row(&self) -> [f64; 7] {
        [self.jf_mean, self.j_mean, self.j_recall, self.j_decay, self.f_mean, self.f_recall, self.f_decay]
    }
}

/// A whole evaluation.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Every object's scores, by sequence then label.
    pub objects: Vec<ObjectScores>,
    /// The scores over all objects.
    pub global: GlobalScores,
}

fn ground_truth(video: &Video, i: usize, size: Option<(usize, usize)>, protocol: Protocol) -> Result<Array2<u8>> {
    let mask = video
        .read_annotation(i, size)?
        .ok_or_else(|| EvalError::InvalidOption(format!("{}: frame {} has no annotation", video.name, i)))?;
    let mut labels = mask.labels;
    match protocol {
        Protocol::Davis2017 => labels.mapv_inplace(|v| if v == 255 { 0 } else { v }),
        Protocol::Davis2016 => labels.mapv_inplace(|v| (v != 0) as u8),
    }
    Ok(labels)
}

/// Reads the result `<dir>/<frame>.png` of a scored frame, checking that it exists and has the
/// ground truth's size `(h, w)`.
pub(crate) fn read_result(dir: &Path, sequence: &str, frame: &str, (h, w): (usize, usize)) -> Result<(std::path::PathBuf, Array2<u8>)> {
    let path = dir.join(format!("{frame}.png"));
    if !path.is_file() {
        return Err(EvalError::MissingFrame { sequence: sequence.to_string(), frame: frame.to_string(), path });
    }
    let pred = read_mask(&path)?.labels.labels;
    if pred.dim() != (h, w) {
        return Err(EvalError::SizeMismatch {
            sequence: sequence.to_string(),
            frame: frame.to_string(),
            path,
            got_w: pred.dim().1,
            got_h: pred.dim().0,
            want_w: w,
            want_h: h,
        });
    }
    Ok((path, pred))
}

/// Scores one sequence against `<results>/<sequence>/<frame>.png`.
pub fn evaluate_sequence(video: &Video, results: &Path, opts: &EvalOptions) -> Result<Vec<ObjectScores>> {
    let seq = &video.name;
    let gt_frames = video.annotated();
    if gt_frames.len() < 3 {
        return Err(EvalError::TooShort { sequence: seq.clone(), frames: gt_frames.len() });
    }
    let first = ground_truth(video, gt_frames[0], None, opts.protocol)?;
    let (h, w) = first.dim();
    let num_objects = first.iter().copied().max().unwrap_or(0);
    let radius = boundary_radius(h, w, opts.bound_th)?;
    let dir = results.join(seq);
    if !dir.is_dir() {
        return Err(EvalError::MissingResults { sequence: seq.clone(), path: dir });
    }
    let scored = &gt_frames[1..gt_frames.len() - 1];
    let per_frame: Vec<Vec<(f64, f64)>> = scored
        .par_iter()
        .map(|&i| {
            let name = &video.frames[i].name;
            let gt = ground_truth(video, i, Some((h, w)), opts.protocol)?;
            let (path, mut pred) = read_result(&dir, seq, name, (h, w))?;
            if opts.protocol == Protocol::Davis2016 {
                pred.mapv_inplace(|v| (v != 0) as u8);
            }
            if let Some(&label) = pred.iter().filter(|&&v| v > num_objects).max() {
                return Err(EvalError::UnknownLabel { sequence: seq.clone(), frame: name.clone(), path, label, num_objects });
            }
            Ok(frame_scores(gt.view(), pred.view(), num_objects, radius))
        })
        .collect::<Result<_>>()?;
    let frames: Vec<String> = scored.iter().map(|&i| video.frames[i].name.clone()).collect();
    Ok((0..num_objects as usize)
        .map(|k| {
            let j: Vec<f64> = per_frame.iter().map(|s| s[k].0).collect();
            let f: Vec<f64> = per_frame.iter().map(|s| s[k].1).collect();
            ObjectScores {
                sequence: seq.clone(),
                id: (k + 1) as u8,
                frames: frames.clone(),
                j_stats: Statistics::of(&j),
                f_stats: Statistics::of(&f),
                j,
                f,
            }
        })
        .collect())
}

/// Scores every sequence of `dataset` (in parallel; `on_sequence` is called as each one ends)
/// and aggregates as the toolkit does, objects in dataset order.
pub fn evaluate(dataset: &Dataset, results: &Path, opts: &EvalOptions, on_sequence: impl Fn(&str) + Sync) -> Result<Evaluation> {
    if !results.is_dir() {
        return Err(EvalError::Data(memvos_data::DataError::MissingFolder {
            path: results.to_path_buf(),
            what: "results folder",
        }));
    }
    let per_seq: Vec<Vec<ObjectScores>> = dataset
        .videos
        .par_iter()
        .map(|v| {
            let r = evaluate_sequence(v, results, opts);
            on_sequence(&v.name);
            r
        })
        .collect::<Result<_>>()?;
    let objects: Vec<ObjectScores> = per_seq.into_iter().flatten().collect();
    let global = GlobalScores::of(&objects);
    Ok(Evaluation { objects, global })
}
