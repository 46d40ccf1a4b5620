//! Output folders of the runners: checked before any heavy work (creatable, writable, not a
//! file), cleared of the temporary files a killed run leaves (every output is written to a
//! hidden `.NAME.tmp-PID` file and renamed into place, so only those can be incomplete), and, for
//! `--resume`, the test of whether a video's outputs are complete: every expected mask exists and
//! decodes at the frame's size.

use std::path::{Path, PathBuf};

use crate::runner::RunError;

/// Checks `out` (named by `flag` in errors), creates it, and removes stale temporary files
/// below it; returns how many were removed.
pub fn prepare(out: &Path, flag: &'static str) -> Result<usize, RunError> {
    let err = |reason: String| RunError::Output { flag, path: out.to_path_buf(), reason };
    if out.exists() && !out.is_dir() {
        return Err(err("is a file, not a folder".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| err(format!("cannot be created: {e}")))?;
    let probe = out.join(format!(".memvos-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| err(format!("is not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(remove_stale(out))
}

/// Whether a file name is one of memvos's temporary files (`.NAME.tmp-PID`).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

fn remove_stale(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            n += remove_stale(&p);
        } else if is_temporary(&e.file_name().to_string_lossy()) && std::fs::remove_file(&p).is_ok() {
            n += 1;
        }
    }
    n
}

/// Whether every file of `paths` decodes as a mask of `height × width` (a video whose outputs
/// are complete, for `--resume`).
pub fn complete(paths: &[PathBuf], height: usize, width: usize) -> bool {
    !paths.is_empty()
        && paths.iter().all(|p| match memvos_data::read_mask(p) {
            Ok(m) => (m.labels.height(), m.labels.width()) == (height, width),
            Err(_) => false,
        })
}

/// A video's frame size `(height, width)` from its first frame file's header.
pub fn frame_size(video: &memvos_data::layout::Video) -> Option<(usize, usize)> {
    let p = video.frames.iter().find_map(|f| f.image.as_ref())?;
    image::image_dimensions(p).ok().map(|(w, h)| (h as usize, w as usize))
}

/// The names in a `--videos` file (one per line), each checked against the dataset.
pub fn video_list(path: &Path, known: &[String]) -> Result<Vec<String>, RunError> {
    let err = |reason: String| RunError::Output { flag: "--videos", path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.is_empty() {
        return Err(err("lists no video".into()));
    }
    if let Some(bad) = names.iter().find(|n| !known.contains(n)) {
        return Err(err(format!("lists {bad}, which is not in the dataset")));
    }
    Ok(names)
}
