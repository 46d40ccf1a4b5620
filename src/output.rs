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

/// The file in an output folder that records what produced it.
pub const MANIFEST: &str = "memvos-run.json";

/// What produced an output folder: the tool, its inputs (resolved paths), the weights' SHA-256,
/// and the flags that change the outputs. `--resume` continues only the run it describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    entries: std::collections::BTreeMap<String, String>,
}

impl Manifest {
    /// A manifest of `tool` (the example's name).
    pub fn new(tool: &str) -> Self {
        let mut entries = std::collections::BTreeMap::new();
        entries.insert("tool".to_string(), tool.to_string());
        Manifest { entries }
    }

    /// Records an input path under its flag, resolved (symlinks and `..`).
    pub fn input(mut self, flag: &str, path: &Path) -> Result<Self, RunError> {
        let resolved = memvos_data::paths::resolve(path)?;
        self.entries.insert(flag.to_string(), resolved.display().to_string());
        Ok(self)
    }

    /// Records a flag's value.
    pub fn flag(mut self, flag: &str, value: impl std::fmt::Display) -> Self {
        self.entries.insert(flag.to_string(), value.to_string());
        self
    }

    /// Records the model options: the weights by content (SHA-256; the shipped default by its
    /// name and hash) and every flag that changes the outputs.
    pub fn model(self, m: &crate::runner::ModelArgs) -> Result<Self, RunError> {
        use sha2::Digest;
        let weights = match &m.weights {
            Some(p) => {
                let bytes = std::fs::read(p).map_err(|e| RunError::Output { flag: "--weights", path: p.clone(), reason: e.to_string() })?;
                format!("sha256:{:x}", sha2::Sha256::digest(&bytes))
            }
            None => format!("{} sha256:{:x}", memvos_model::DEFAULT_MODEL_NAME, sha2::Sha256::digest(memvos_model::DEFAULT_MODEL)),
        };
        let opt = |v: Option<String>| v.unwrap_or_else(|| "default".into());
        let manifest = self
            .flag("--weights", weights)
            .flag("--method", format!("{:?}", m.method).to_lowercase())
            .flag("--top-k", opt(m.top_k.map(|v| v.to_string())))
            .flag("--mem-every", opt(m.mem_every.map(|v| v.to_string())))
            .flag("--include-last", m.include_last)
            .flag("--kernel", m.kernel)
            .flag("--policy", opt(m.policy.map(|v| v.to_string())))
            .flag("--capacity", opt(m.capacity.map(|v| v.to_string())))
            .flag("--quality-threshold", opt(m.quality_threshold.map(|v| v.to_string())))
            .flag("--seed", m.seed)
            .flag("--cpu-kernels", format!("{:?}", m.cpu_kernels).to_lowercase());
        // Recorded when it is not the default, so folders written before the flag existed resume.
        Ok(if m.precision == memvos_model::Precision::Fp32 { manifest } else { manifest.flag("--precision", m.precision) })
    }

    /// The differences from `other` (`was` this, `now` that), one phrase each.
    fn differences(&self, now: &Manifest) -> Vec<String> {
        let keys: std::collections::BTreeSet<&String> = self.entries.keys().chain(now.entries.keys()).collect();
        keys.into_iter()
            .filter_map(|k| {
                let (a, b) = (self.entries.get(k), now.entries.get(k));
                (a != b).then(|| format!("{k} was {}, now {}", a.map_or("absent", |s| s.as_str()), b.map_or("absent", |s| s.as_str())))
            })
            .collect()
    }

    /// Checks `out` against this run before anything is read: with `resume`, the folder's
    /// manifest must describe this run (else the difference is named), and a folder holding
    /// masks without a manifest is refused (nothing tells what produced them). Then records this
    /// run's manifest in `out` (atomically). `out` must exist ([`prepare`]).
    pub fn claim(&self, out: &Path, resume: bool) -> Result<(), RunError> {
        let path = out.join(MANIFEST);
        let err = |reason: String| RunError::Output { flag: "--resume", path: out.to_path_buf(), reason };
        if resume {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let entries: std::collections::BTreeMap<String, String> =
                        serde_json::from_str(&text).map_err(|e| err(format!("{MANIFEST} is not a memvos manifest: {e}")))?;
                    let diff = Manifest { entries }.differences(self);
                    if !diff.is_empty() {
                        return Err(err(format!("was written by another run ({}); resume it with the same inputs and flags, or choose another --out", diff.join("; "))));
                    }
                }
                Err(_) if holds_masks(out) => {
                    return Err(err(format!("holds masks but no {MANIFEST}, so nothing tells which run wrote them; choose another --out (or run without --resume to overwrite them)")));
                }
                Err(_) => {}
            }
        }
        let json = serde_json::to_vec_pretty(&self.entries).map_err(|e| err(e.to_string()))?;
        memvos_data::write_atomic(&path, &json)?;
        Ok(())
    }
}

/// Whether a folder holds a PNG anywhere below it.
fn holds_masks(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() { holds_masks(&p) } else { p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")) }
    })
}
