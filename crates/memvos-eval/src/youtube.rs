//! YouTube-VOS: its validation and test ground truth is not public, so this module checks and
//! packages a submission for the benchmark server, and scores held-out *training* videos locally
//! with the same J and F code (no seen/unseen split: that needs the server's class lists).
//!
//! Local protocol: an object is scored on every annotated frame after the frame it first
//! appears in; labels keep their original (possibly non-contiguous) ids.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use memvos_data::layout::{Dataset, Video};
use rayon::prelude::*;

use crate::davis::{GlobalScores, ObjectScores, read_result};
use crate::error::{EvalError, Result};
use crate::metrics::{boundary_radius, frame_scores};
use crate::stats::Statistics;

/// What a checked submission holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmissionReport {
    /// Videos in it.
    pub videos: usize,
    /// Mask files in it.
    pub frames: usize,
}

fn required(video: &Video) -> Vec<String> {
    match &video.required_frames {
        Some(r) => r.clone(),
        None => {
            let first = video.annotated().first().copied().unwrap_or(0);
            video.frames[first..].iter().map(|f| f.name.clone()).collect()
        }
    }
}

/// The labels a video's submission may hold: its objects' ids from `meta.json`, or the ids of
/// its annotations where the index lists none.
fn allowed_labels(video: &Video) -> Result<[bool; 256]> {
    let mut ok = [false; 256];
    ok[0] = true;
    if !video.objects.is_empty() {
        for o in &video.objects {
            ok[o.id as usize] = true;
        }
        return Ok(ok);
    }
    for i in video.annotated() {
        if let Some(m) = video.read_annotation(i, None)? {
            m.object_ids().into_iter().for_each(|id| ok[id as usize] = true);
        }
    }
    Ok(ok)
}

/// Checks one submission PNG: 8-bit palette or greyscale, the frame's size, labels among the
/// video's objects.
fn check_png(path: &Path, size: Option<(u32, u32)>, allowed: &[bool; 256]) -> Result<()> {
    let bad = |reason: String| EvalError::BadSubmissionFile { path: path.to_path_buf(), reason };
    let bytes = fs::read(path).map_err(|e| memvos_data::DataError::Io { path: path.to_path_buf(), source: e })?;
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let reader = decoder.read_info().map_err(|e| bad(format!("not a PNG ({e})")))?;
    let info = reader.info();
    let ok_kind = matches!(info.color_type, png::ColorType::Indexed | png::ColorType::Grayscale) && info.bit_depth == png::BitDepth::Eight;
    if !ok_kind {
        return Err(bad(format!("{:?} {:?}-bit; the server reads 8-bit palette (or greyscale) PNGs", info.color_type, info.bit_depth as u8)));
    }
    let (w, h) = (info.width, info.height);
    if let Some((fw, fh)) = size.filter(|&s| s != (w, h)) {
        return Err(bad(format!("{w}x{h} (WxH), but the video's frames are {fw}x{fh}")));
    }
    let mask = memvos_data::io::decode_mask(&bytes, path, memvos_data::MaskEncoding::Labels)?;
    if let Some(&l) = mask.labels.labels.iter().find(|&&l| !allowed[l as usize]) {
        let ids: Vec<String> = (1..256).filter(|&i| allowed[i]).map(|i| i.to_string()).collect();
        return Err(bad(format!("holds label {l}, not one of the video's objects ({})", ids.join(", "))));
    }
    Ok(())
}

/// Checks a submission: `<submission>/Annotations/<video>/<frame>.png` exists for every frame the
/// benchmark requires (from `meta.json`), each decodes as an 8-bit palette (or greyscale) PNG of
/// its frame's size whose labels are the video's objects, and nothing else is there.
pub fn check_submission(dataset: &Dataset, submission: &Path) -> Result<SubmissionReport> {
    let ann = submission.join("Annotations");
    let mut frames = 0;
    let mut expected: BTreeSet<PathBuf> = BTreeSet::new();
    for v in &dataset.videos {
        let size = v.frames.iter().find_map(|f| f.image.as_ref()).and_then(|p| image_size(p));
        let allowed = allowed_labels(v)?;
        for name in required(v) {
            let path = ann.join(&v.name).join(format!("{name}.png"));
            if !path.is_file() {
                return Err(EvalError::MissingSubmissionFrame { video: v.name.clone(), frame: name, path });
            }
            check_png(&path, size, &allowed)?;
            expected.insert(path);
            frames += 1;
        }
    }
    // Anything else under Annotations/ (extra frames, videos not in the split).
    let mut extra = Vec::new();
    if let Ok(dirs) = fs::read_dir(&ann) {
        for d in dirs.flatten() {
            let p = d.path();
            match fs::read_dir(&p) {
                Ok(files) if p.is_dir() => {
                    for f in files.flatten() {
                        if !expected.contains(&f.path()) {
                            extra.push(f.path());
                        }
                    }
                }
                _ => extra.push(p),
            }
        }
    }
    if !extra.is_empty() {
        extra.sort();
        let shown: Vec<String> = extra.iter().take(10).map(|p| p.strip_prefix(submission).unwrap_or(p).display().to_string()).collect();
        let more = if extra.len() > 10 { format!(" … and {} more", extra.len() - 10) } else { String::new() };
        return Err(EvalError::ExtraSubmissionFiles { count: extra.len(), list: format!("{}{more}", shown.join(", ")) });
    }
    Ok(SubmissionReport { videos: dataset.videos.len(), frames })
}

/// A frame file's size `(W, H)` from its header, if readable.
fn image_size(path: &Path) -> Option<(u32, u32)> {
    image::image_dimensions(path).ok()
}

/// Checks a submission and zips its `Annotations/` folder (entries `Annotations/<video>/<frame>.png`,
/// the layout the server expects) into `zip_path`, atomically.
pub fn package_submission(dataset: &Dataset, submission: &Path, zip_path: &Path) -> Result<SubmissionReport> {
    let report = check_submission(dataset, submission)?;
    let zerr = |reason: String| EvalError::Zip { path: zip_path.to_path_buf(), reason };
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for v in &dataset.videos {
            for name in required(v) {
                let path = submission.join("Annotations").join(&v.name).join(format!("{name}.png"));
                let bytes = fs::read(&path).map_err(|e| memvos_data::DataError::Io { path: path.clone(), source: e })?;
                zip.start_file(format!("Annotations/{}/{name}.png", v.name), opts)
                    .map_err(|e| zerr(e.to_string()))?;
                zip.write_all(&bytes).map_err(|e| zerr(e.to_string()))?;
            }
        }
        zip.finish().map_err(|e| zerr(e.to_string()))?;
    }
    memvos_data::write_atomic(zip_path, buf.get_ref())?;
    Ok(report)
}

/// Picks `count` video names deterministically from `names` (a seeded shuffle), for a local
/// held-out split of the training set; asking for none, or for more than there are, is an error.
pub fn holdout(names: &[String], count: usize, seed: u64) -> Result<Vec<String>> {
    if count == 0 || count > names.len() {
        return Err(EvalError::InvalidOption(format!("--score {count}: the split has {} video(s); hold out 1 to {}", names.len(), names.len())));
    }
    let mut keyed: Vec<(u64, &String)> = names
        .iter()
        .map(|n| {
            let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
            for b in n.bytes() {
                h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
            }
            (h, n)
        })
        .collect();
    keyed.sort();
    let mut out: Vec<String> = keyed.into_iter().take(count).map(|(_, n)| n.clone()).collect();
    out.sort();
    Ok(out)
}

/// Local scores of held-out training videos.
#[derive(Clone, Debug)]
pub struct LocalScores {
    /// Every object's scores.
    pub objects: Vec<ObjectScores>,
    /// The scores over all objects.
    pub global: GlobalScores,
}

fn score_video(video: &Video, split: &str, results: &Path, bound_th: f64) -> Result<Vec<ObjectScores>> {
    let annotated = video.annotated();
    if annotated.len() < video.frames.len() {
        return Err(EvalError::IncompleteGroundTruth { split: split.to_string(), video: video.name.clone(), annotated: annotated.len(), frames: video.frames.len() });
    }
    let gts: Vec<(usize, ndarray::Array2<u8>)> = annotated
        .iter()
        .map(|&i| Ok((i, video.read_annotation(i, None)?.map(|m| m.labels).unwrap_or_default())))
        .collect::<Result<_>>()?;
    let (h, w) = gts[0].1.dim();
    let radius = boundary_radius(h, w, bound_th)?;
    // Object ids and the annotated frame each first appears in.
    let mut ids: BTreeSet<u8> = BTreeSet::new();
    for (_, g) in &gts {
        ids.extend(g.iter().copied().filter(|&v| v != 0 && v != 255));
    }
    let ids: Vec<u8> = ids.into_iter().collect();
    let mut table = [0u8; 256];
    for (k, &id) in ids.iter().enumerate() {
        table[id as usize] = (k + 1) as u8;
    }
    let dir = results.join("Annotations").join(&video.name);
    let first_seen: Vec<usize> = ids
        .iter()
        .map(|&id| gts.iter().position(|(_, g)| g.iter().any(|&v| v == id)).unwrap_or(0))
        .collect();
    let scored: Vec<(usize, Vec<(f64, f64)>)> = gts
        .par_iter()
        .enumerate()
        .skip(1)
        .map(|(pos, (i, g))| {
            let name = &video.frames[*i].name;
            if g.dim() != (h, w) {
                let path = video.frames[*i].annotation.clone().unwrap_or_default();
                return Err(EvalError::Data(memvos_data::DataError::SizeMismatch { path, got_w: g.dim().1, got_h: g.dim().0, want_w: w, want_h: h }));
            }
            let (path, pred) = read_result(&dir, &video.name, name, (h, w))?;
            if let Some(&label) = pred.iter().find(|&&v| v != 0 && table[v as usize] == 0) {
                return Err(EvalError::UnknownLabel { sequence: video.name.clone(), frame: name.clone(), path, label, num_objects: ids.len() as u8 });
            }
            let gm = g.mapv(|v| table[v as usize]);
            let pm = pred.mapv(|v| table[v as usize]);
            Ok((pos, frame_scores(gm.view(), pm.view(), ids.len() as u8, radius)))
        })
        .collect::<Result<_>>()?;
    Ok(ids
        .iter()
        .enumerate()
        .map(|(k, &id)| {
            let rows: Vec<&(usize, Vec<(f64, f64)>)> = scored.iter().filter(|(pos, _)| *pos > first_seen[k]).collect();
            let j: Vec<f64> = rows.iter().map(|(_, s)| s[k].0).collect();
            let f: Vec<f64> = rows.iter().map(|(_, s)| s[k].1).collect();
            ObjectScores {
                sequence: video.name.clone(),
                id,
                frames: rows.iter().map(|(pos, _)| video.frames[gts[*pos].0].name.clone()).collect(),
                j_stats: Statistics::of(&j),
                f_stats: Statistics::of(&f),
                j,
                f,
            }
        })
        .filter(|o| !o.j.is_empty())
        .collect())
}

/// Scores `<results>/Annotations/<video>/<frame>.png` for the named videos of a YouTube-VOS
/// training split (`split` names it in errors; every frame must be annotated) on every frame
/// after an object's first appearance.
pub fn score_videos(dataset: &Dataset, split: &str, names: &[String], results: &Path, bound_th: f64) -> Result<LocalScores> {
    if names.is_empty() {
        return Err(EvalError::InvalidOption("no videos to score".into()));
    }
    crate::metrics::check_bound_th(bound_th)?;
    let videos: Vec<&Video> = names
        .iter()
        .map(|n| dataset.video(n).ok_or_else(|| EvalError::InvalidOption(format!("video {n} is not in the dataset"))))
        .collect::<Result<_>>()?;
    let per: Vec<Vec<ObjectScores>> = videos.par_iter().map(|v| score_video(v, split, results, bound_th)).collect::<Result<_>>()?;
    let objects: Vec<ObjectScores> = per.into_iter().flatten().collect();
    let global = GlobalScores::of(&objects);
    Ok(LocalScores { objects, global })
}

/// Where a submission's annotation for a frame goes.
pub fn submission_path(submission: &Path, video: &str, frame: &str) -> PathBuf {
    submission.join("Annotations").join(video).join(format!("{frame}.png"))
}
