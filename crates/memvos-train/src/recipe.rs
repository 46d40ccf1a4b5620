//! Training recipes: every setting of a stage as one serde struct, loadable from TOML or JSON,
//! with the published per-method, per-stage recipes of methods.md §2.7 bundled (`s0`, `s01`,
//! `s012`, `s03` for each method) and any field overridable as `key=value` (dotted paths:
//! `bootstrap.start=100`, `sources.0.repeat=2`). Unknown fields are errors, in files and
//! overrides alike.

use std::path::{Path, PathBuf};

use memvos_model::{KeyKind, Method};
use serde::{Deserialize, Serialize};

/// What can be wrong with a recipe.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The file could not be read.
    #[error("cannot read recipe {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A field is invalid or missing.
    #[error("recipe {origin}: {reason}")]
    Invalid {
        /// Where the recipe came from (file or bundled name).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A `--set key=value` that does not apply.
    #[error("override {text:?}: {reason}")]
    Override {
        /// The `--set` text.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// No bundled recipe of that name.
    #[error("no bundled recipe {name:?} (bundled: {})", .known.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The bundled names.
        known: Vec<String>,
    },
}

/// The bootstrapped cross-entropy schedule (methods.md §2.6): plain mean before `start`, then the
/// mean of the worst `p` fraction of pixels with `p` going linearly from 1 to `p` at `end`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// Iteration at which bootstrapping starts.
    pub start: usize,
    /// Iteration at which the kept fraction reaches `p`.
    pub end: usize,
    #[serde(default = "default_p")]
    /// The fraction of pixels kept at the end.
    pub p: f64,
}

fn default_p() -> f64 {
    0.15
}

/// The max-skip curriculum of a video source (methods.md §2.6): `start` until the first
/// fraction of the epochs, then `values[i]` from `after[i]` on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Curriculum {
    #[serde(default = "default_skip")]
    /// The max-skip before the first step.
    pub start: usize,
    /// The max-skip from each step on.
    pub values: Vec<usize>,
    /// Where each step starts, as a fraction of the iterations.
    pub after: Vec<f64>,
}

fn default_skip() -> usize {
    5
}

impl Curriculum {
    /// A constant max-skip.
    pub fn constant(skip: usize) -> Self {
        Curriculum { start: skip, values: Vec::new(), after: Vec::new() }
    }

    /// The max-skip during `epoch` of `epochs`.
    pub fn at(&self, epoch: usize, epochs: usize) -> usize {
        let f = epoch as f64 / epochs.max(1) as f64;
        self.after.iter().zip(&self.values).filter(|(a, _)| f >= **a).map(|(_, &v)| v).last().unwrap_or(self.start)
    }
}

fn one() -> usize {
    1
}

fn five() -> usize {
    5
}

fn train_set() -> String {
    "train".into()
}

/// Where a stage's samples come from. Roots are relative to the `--data` folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// Static images with masks (`<root>/<name>.jpg` + `.png`, or FSS-1000's class folders),
    /// each turned into a 3-frame pseudo-video (methods.md §4.1).
    Static {
        /// The folder of images and masks.
        root: PathBuf,
        #[serde(default = "one")]
        /// Times each image is listed per pass.
        repeat: usize,
    },
    /// BL30K (`<root>/JPEGImages`, `<root>/Annotations`).
    Bl30k {
        /// Its root folder.
        root: PathBuf,
        /// The max-skip curriculum.
        max_skip: Curriculum,
    },
    /// A DAVIS 2017 root's image set (default `train`), repeated.
    Davis {
        /// The DAVIS root.
        root: PathBuf,
        #[serde(default = "train_set")]
        /// The image set (`ImageSets/2017/<set>.txt`).
        set: String,
        #[serde(default = "one")]
        /// Times each video is listed per pass.
        repeat: usize,
        /// A file listing the videos to use (one per line), e.g. STCN's `davis_subset.txt`.
        #[serde(default)]
        subset: Option<PathBuf>,
        /// The max-skip curriculum.
        max_skip: Curriculum,
    },
    /// A YouTube-VOS split (default `train`; `train_480p` layouts too) whose stored frames are
    /// every `frame_step`-th of the video: the max-skip is divided by it.
    Youtube {
        /// The YouTube-VOS root.
        root: PathBuf,
        #[serde(default = "train_set")]
        /// The split folder.
        split: String,
        #[serde(default)]
        /// A file listing the videos to use.
        subset: Option<PathBuf>,
        #[serde(default = "five")]
        /// Every how many video frames a stored frame is.
        frame_step: usize,
        /// The max-skip curriculum (in video frames).
        max_skip: Curriculum,
    },
    /// Synthetic videos generated on the fly (memvos-data's generator), deterministic in `seed`.
    Synthetic {
        /// Videos generated.
        videos: usize,
        /// Frames per video.
        frames: usize,
        /// Frame height.
        height: usize,
        /// Frame width.
        width: usize,
        #[serde(default = "one")]
        /// Fewest objects per video.
        min_objects: usize,
        #[serde(default = "five")]
        /// Most objects per video.
        max_objects: usize,
        /// Seed of the generator.
        seed: u64,
        /// A folder of photographs to texture backgrounds and objects with (memvos-data's
        /// photo mode; relative to the `--data` folder); absent: procedural textures.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        photos: Option<PathBuf>,
        /// The max-skip curriculum.
        max_skip: Curriculum,
    },
}

/// The optimiser of a recipe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Adam with L2 weight decay (every published recipe).
    #[default]
    Adam,
    /// Plain stochastic gradient descent (`w ← w − lr·(g + weight_decay·w)`): its step is linear
    /// in the gradient, which makes gradient errors visible in the weights.
    Sgd,
}

/// Everything one training stage needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The method trained.
    pub method: Method,
    /// 0 static images, 1 BL30K, 2 DAVIS + YouTube-VOS after BL30K, 3 the same without it.
    pub stage: u8,
    /// The network's shape, as the method's config struct (absent: the published network).
    #[serde(default)]
    pub network: Option<serde_json::Value>,
    /// Iterations of the stage.
    pub iterations: usize,
    /// Samples per iteration (over all devices).
    pub batch_size: usize,
    /// The initial learning rate.
    pub lr: f64,
    /// The optimiser: Adam (the published recipes) or plain SGD.
    #[serde(default)]
    pub optimizer: Optimizer,
    /// Iterations after which the learning rate is multiplied by `lr_gamma`.
    pub lr_steps: Vec<usize>,
    #[serde(default = "default_gamma")]
    /// The factor applied at each of `lr_steps`.
    pub lr_gamma: f64,
    /// Weight decay of the optimiser (0: none).
    pub weight_decay: f64,
    /// The bootstrapped cross-entropy schedule.
    pub bootstrap: Bootstrap,
    /// Square crop side.
    pub crop: usize,
    /// Objects per sample: 1 (stage 0) or 2 (a target and, where present, a second object).
    pub objects: usize,
    /// BatchNorm in inference mode throughout (running statistics frozen, γ/β trained).
    #[serde(default = "yes")]
    pub freeze_bn: bool,
    /// Seed of the initialisation and of the data order.
    pub seed: u64,
    /// Iterations between checkpoints.
    pub checkpoint_every: usize,
    /// QDMN's quality loss weight.
    #[serde(default = "one_f")]
    pub quality_weight: f64,
    /// GSFM's boundary loss weight.
    #[serde(default = "boundary_w")]
    pub boundary_weight: f64,
    /// Threads preparing samples (at most [`MAX_WORKERS`]).
    #[serde(default = "two")]
    pub workers: usize,
    /// Checkpoints kept in the output folder (the newest N; older ones are removed once a newer
    /// one is complete). The final weights are always kept.
    #[serde(default = "two")]
    pub keep_checkpoints: usize,
    /// The area range of the random resized crop of video sources (default: methods.md §4.3,
    /// 0.36–1, BL30K 0.25–1). A smaller range keeps the crop's scale near the frame's.
    #[serde(default)]
    pub crop_scale: Option<(f32, f32)>,
    /// The data sources samples are drawn from.
    pub sources: Vec<Source>,
}

/// The most sample-preparing threads a recipe may ask for.
pub const MAX_WORKERS: usize = 64;
/// The most times a source may be repeated per epoch.
pub const MAX_REPEAT: usize = 10_000;
/// The most pixels one iteration may train on (`batch_size × crop²`): 64 crops of 512².
pub const MAX_BATCH_PIXELS: u64 = 64 * 512 * 512;
/// The most memory the prepared batches may hold (each worker keeps up to two ready, plus the
/// one in use; 15 floats a pixel: 3 RGB frames and 6 masks).
pub const MAX_LOADER_BYTES: u64 = 8 << 30;

fn default_gamma() -> f64 {
    0.1
}

fn yes() -> bool {
    true
}

fn one_f() -> f64 {
    1.0
}

fn boundary_w() -> f64 {
    0.05
}

fn two() -> usize {
    2
}

/// The bundled recipes, by name (`<method>/<s0|s01|s012|s03|cpu-synthetic>`).
pub const BUNDLED: &[(&str, &str)] = &[
    ("mivos/s0", include_str!("../recipes/mivos/s0.toml")),
    ("mivos/s01", include_str!("../recipes/mivos/s01.toml")),
    ("mivos/s012", include_str!("../recipes/mivos/s012.toml")),
    ("mivos/s03", include_str!("../recipes/mivos/s03.toml")),
    ("stcn/s0", include_str!("../recipes/stcn/s0.toml")),
    ("stcn/s01", include_str!("../recipes/stcn/s01.toml")),
    ("stcn/s012", include_str!("../recipes/stcn/s012.toml")),
    ("stcn/s03", include_str!("../recipes/stcn/s03.toml")),
    ("stcn/cpu-synthetic", include_str!("../recipes/stcn/cpu-synthetic.toml")),
    ("stcn/cpu-photos", include_str!("../recipes/stcn/cpu-photos.toml")),
    ("qdmn/s0", include_str!("../recipes/qdmn/s0.toml")),
    ("qdmn/s01", include_str!("../recipes/qdmn/s01.toml")),
    ("qdmn/s012", include_str!("../recipes/qdmn/s012.toml")),
    ("qdmn/s03", include_str!("../recipes/qdmn/s03.toml")),
    ("gsfm/s0", include_str!("../recipes/gsfm/s0.toml")),
    ("gsfm/s01", include_str!("../recipes/gsfm/s01.toml")),
    ("gsfm/s012", include_str!("../recipes/gsfm/s012.toml")),
    ("gsfm/s03", include_str!("../recipes/gsfm/s03.toml")),
    ("imsfr/s0", include_str!("../recipes/imsfr/s0.toml")),
    ("imsfr/s01", include_str!("../recipes/imsfr/s01.toml")),
    ("imsfr/s012", include_str!("../recipes/imsfr/s012.toml")),
    ("imsfr/s03", include_str!("../recipes/imsfr/s03.toml")),
];

/// The bundled recipe name of a method's stage: 0 → `s0`, 1 → `s01`, 2 → `s012`, 3 → `s03`.
pub fn stage_name(method: Method, stage: u8) -> Option<String> {
    let s = match stage {
        0 => "s0",
        1 => "s01",
        2 => "s012",
        3 => "s03",
        _ => return None,
    };
    Some(format!("{}/{s}", method.id()))
}

/// Parses `text` (TOML, or JSON when `json`), applies `overrides`, checks the result.
pub fn parse(text: &str, json: bool, origin: &str, overrides: &[String]) -> Result<Recipe, RecipeError> {
    let invalid = |reason: String| RecipeError::Invalid { origin: origin.to_string(), reason };
    let mut table: toml::Value = if json {
        let mut v: serde_json::Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        drop_nulls(&mut v);
        toml::Value::try_from(v).map_err(|e| invalid(e.to_string()))?
    } else {
        toml::Value::Table(toml::from_str::<toml::Table>(text).map_err(|e| invalid(toml_error(text, &e)))?)
    };
    for o in overrides {
        apply_override(&mut table, o)?;
    }
    let recipe: Recipe = table.try_into().map_err(|e: toml::de::Error| invalid(e.message().to_string()))?;
    recipe.validate().map_err(invalid)?;
    Ok(recipe)
}

/// A bundled recipe by name, or a recipe file (`.toml` or `.json`), with overrides.
pub fn load(name_or_path: &str, overrides: &[String]) -> Result<Recipe, RecipeError> {
    if let Some((_, text)) = BUNDLED.iter().find(|(n, _)| *n == name_or_path) {
        return parse(text, false, name_or_path, overrides);
    }
    let path = Path::new(name_or_path);
    if !path.is_file() {
        if !name_or_path.contains('.') {
            return Err(RecipeError::Unknown { name: name_or_path.to_string(), known: BUNDLED.iter().map(|(n, _)| n.to_string()).collect() });
        }
        return Err(RecipeError::Read { path: path.to_path_buf(), reason: "no such file".into() });
    }
    let text = std::fs::read_to_string(path).map_err(|e| RecipeError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse(&text, json, &path.display().to_string(), overrides)
}

/// A TOML error on one line: "line L, column C: message" (toml's own text spans several lines
/// with a snippet of the file).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {msg}")
        }
        None => msg,
    }
}

/// Removes JSON `null`s (TOML has none; an absent field means the same).
fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Sets `path.to.key = value` (the value in TOML syntax; a bare word is a string).
fn apply_override(root: &mut toml::Value, text: &str) -> Result<(), RecipeError> {
    let err = |reason: &str| RecipeError::Override { text: text.to_string(), reason: reason.to_string() };
    let (key, value) = text.split_once('=').ok_or_else(|| err("expected key=value"))?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() {
        return Err(err("empty key"));
    }
    let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t.remove("v").ok_or_else(|| err("no value"))?,
        Err(_) => toml::Value::String(value.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        node = match node {
            toml::Value::Table(t) => {
                if last {
                    t.insert(part.to_string(), parsed);
                    return Ok(());
                }
                t.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(a) => {
                let idx: usize = part.parse().map_err(|_| err(&format!("{part:?} is not an index into a list")))?;
                let len = a.len();
                let slot = a.get_mut(idx).ok_or_else(|| err(&format!("index {idx} past a list of {len}")))?;
                if last {
                    *slot = parsed;
                    return Ok(());
                }
                slot
            }
            _ => return Err(err(&format!("{:?} is not a table", parts[..i].join(".")))),
        };
    }
    Ok(())
}

impl Recipe {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [("iterations", self.iterations), ("batch_size", self.batch_size), ("crop", self.crop), ("checkpoint_every", self.checkpoint_every), ("workers", self.workers)];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.stage > 3 {
            return Err(format!("stage {} is not 0, 1, 2 or 3", self.stage));
        }
        if !(1..=2).contains(&self.objects) {
            return Err(format!("objects = {} (1 or 2)", self.objects));
        }
        if self.crop < 32 || self.crop > 4096 || self.crop % 16 != 0 {
            return Err(format!("crop = {} must be a multiple of 16 in 32..=4096", self.crop));
        }
        if self.batch_size > 4096 {
            return Err(format!("batch_size = {} is above 4096", self.batch_size));
        }
        if self.workers > MAX_WORKERS {
            return Err(format!("workers = {} is above {MAX_WORKERS}", self.workers));
        }
        if !(1..=1000).contains(&self.keep_checkpoints) {
            return Err(format!("keep_checkpoints = {} must be in 1..=1000", self.keep_checkpoints));
        }
        // Sizes together, before anything is allocated: each field may be in range while their
        // product is not.
        let pixels = self.batch_size as u64 * self.crop as u64 * self.crop as u64;
        if pixels > MAX_BATCH_PIXELS {
            return Err(format!(
                "batch_size × crop² = {} × {}² = {pixels} pixels per iteration, above the budget of {MAX_BATCH_PIXELS} (64 crops of 512²): lower batch_size or crop",
                self.batch_size, self.crop
            ));
        }
        let loader = (2 * self.workers as u64 + 1) * pixels * 15 * 4;
        if loader > MAX_LOADER_BYTES {
            return Err(format!(
                "workers = {} keep up to {} batches of {pixels} pixels ready: {} MiB, above the {} MiB budget: lower workers, batch_size or crop",
                self.workers,
                2 * self.workers + 1,
                loader >> 20,
                MAX_LOADER_BYTES >> 20
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) || !(self.lr_gamma.is_finite() && self.lr_gamma > 0.0) || !(self.weight_decay >= 0.0) {
            return Err("lr and lr_gamma must be positive, weight_decay non-negative".into());
        }
        if self.bootstrap.start > self.bootstrap.end || !(self.bootstrap.p > 0.0 && self.bootstrap.p <= 1.0) {
            return Err("bootstrap: start must not exceed end, p must be in (0, 1]".into());
        }
        if let Some((a, b)) = self.crop_scale {
            if !(a > 0.0 && a <= b && b <= 1.0) {
                return Err(format!("crop_scale = ({a}, {b}) must satisfy 0 < min <= max <= 1"));
            }
        }
        if self.sources.is_empty() {
            return Err("sources: at least one data source".into());
        }
        for (i, s) in self.sources.iter().enumerate() {
            let c = match s {
                Source::Static { repeat, .. } => {
                    if !(1..=MAX_REPEAT).contains(repeat) {
                        return Err(format!("sources.{i}.repeat = {repeat} must be in 1..={MAX_REPEAT}"));
                    }
                    continue;
                }
                Source::Davis { repeat, .. } if !(1..=MAX_REPEAT).contains(repeat) => {
                    return Err(format!("sources.{i}.repeat = {repeat} must be in 1..={MAX_REPEAT}"));
                }
                Source::Bl30k { max_skip, .. } | Source::Davis { max_skip, .. } | Source::Youtube { max_skip, .. } | Source::Synthetic { max_skip, .. } => max_skip,
            };
            if c.values.len() != c.after.len() || c.after.iter().any(|a| !(0.0..=1.0).contains(a)) || c.after.windows(2).any(|w| w[0] > w[1]) {
                return Err(format!("sources.{i}.max_skip: values and after must pair up, after rising in [0, 1]"));
            }
            if let Source::Synthetic { videos, frames, height, width, min_objects, max_objects, .. } = s {
                if *videos == 0 || *frames < 3 || *height < self.crop.min(16) || *width < 16 || *height > 4096 || *width > 4096 || min_objects > max_objects || *min_objects == 0 {
                    return Err(format!("sources.{i}: synthetic videos need videos >= 1, frames >= 3, sides in 16..=4096 and 1 <= min_objects <= max_objects"));
                }
            }
        }
        Ok(())
    }

    /// Points the recipe's photo-textured synthetic sources at a folder of photographs (the
    /// train example's `--photos`): those that name a folder, or every synthetic source where
    /// none does. An error when the recipe has no synthetic source.
    pub fn set_photos(&mut self, dir: &Path) -> Result<(), RecipeError> {
        let named = self.sources.iter().any(|s| matches!(s, Source::Synthetic { photos: Some(_), .. }));
        let mut found = false;
        for s in &mut self.sources {
            if let Source::Synthetic { photos, .. } = s
                && (photos.is_some() || !named)
            {
                *photos = Some(dir.to_path_buf());
                found = true;
            }
        }
        if found {
            Ok(())
        } else {
            Err(RecipeError::Override { text: format!("--photos {}", dir.display()), reason: "the recipe has no synthetic source to texture with photos".into() })
        }
    }

    /// The learning rate at `iteration` (the step schedule).
    pub fn lr_at(&self, iteration: usize) -> f64 {
        self.lr * self.lr_gamma.powi(self.lr_steps.iter().filter(|&&s| iteration >= s).count() as i32)
    }

    /// The bootstrapped CE's kept fraction at `iteration` (1 = plain mean).
    pub fn bootstrap_p(&self, iteration: usize) -> f64 {
        let Bootstrap { start, end, p } = self.bootstrap;
        if iteration < start {
            1.0
        } else if iteration > end || end == start {
            p
        } else {
            p + (1.0 - p) * (end - iteration) as f64 / (end - start) as f64
        }
    }

    /// The network configuration as JSON (for [`memvos_model::AnyNetwork::new`]): the recipe's
    /// or the published one, with a 4-channel memory/value encoder in stage 0 (single object,
    /// no "others" mask; methods.md §1.4).
    pub fn network_json(&self) -> Option<String> {
        let mut cfg = self.network.clone().unwrap_or_else(|| memvos_model::published_config_json(self.method));
        if self.stage == 0 && self.objects == 1 {
            let encoder = match self.method.key_kind() {
                KeyKind::PerObject => "memory_encoder",
                KeyKind::Shared => "value_encoder",
            };
            if let Some(e) = cfg.get_mut(encoder).and_then(|e| e.as_object_mut()) {
                e.insert("in_channels".into(), serde_json::json!(4));
            }
        }
        Some(cfg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_recipe_parses() {
        for (name, text) in BUNDLED {
            let r = parse(text, false, name, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(name.split('/').next().unwrap(), r.method.id(), "{name}");
        }
        for m in Method::ALL {
            for s in 0..4 {
                assert!(load(&stage_name(m, s).unwrap(), &[]).is_ok());
            }
        }
    }

    #[test]
    fn schedules_follow_the_recipe() {
        let r = load("stcn/s0", &[]).unwrap();
        assert_eq!((r.iterations, r.batch_size, r.lr_steps.clone()), (300_000, 8, vec![150_000]));
        assert_eq!(r.lr_at(0), 1e-5);
        assert!((r.lr_at(150_000) - 1e-6).abs() < 1e-18);
        assert_eq!(r.bootstrap_p(19_999), 1.0);
        assert!((r.bootstrap_p(45_000) - (0.15 + 0.85 * 0.5)).abs() < 1e-12);
        assert_eq!(r.bootstrap_p(80_000), 0.15);
        let c = Curriculum { start: 5, values: vec![10, 15, 20, 25, 5], after: vec![0.1, 0.2, 0.3, 0.4, 0.8] };
        assert_eq!([0, 10, 25, 39, 40, 79, 80, 99].map(|e| c.at(e, 100)), [5, 10, 15, 20, 25, 25, 5, 5]);
    }

    #[test]
    fn overrides_and_unknown_fields() {
        let r = load("stcn/s0", &["lr=2e-5".into(), "bootstrap.start=10".into(), "sources.0.repeat=3".into()]).unwrap();
        assert_eq!((r.lr, r.bootstrap.start), (2e-5, 10));
        assert!(matches!(&r.sources[0], Source::Static { repeat: 3, .. }));
        let e = load("stcn/s0", &["learning_rate=1".into()]).unwrap_err().to_string();
        assert!(e.contains("learning_rate"), "{e}");
        let e = load("stcn/s0", &["sources.0.colour=red".into()]).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        assert!(load("stcn/s0", &["lr".into()]).unwrap_err().to_string().contains("key=value"));
        assert!(load("stcn/s0", &["sources.99.repeat=1".into()]).unwrap_err().to_string().contains("index 99"));
        assert!(load("stcn/s0", &["crop=100".into()]).unwrap_err().to_string().contains("multiple of 16"));
        assert!(load("stcn/s9", &[]).unwrap_err().to_string().contains("stcn/s0"));
        // A syntax error is one line with its place in the file.
        let e = parse("method = \"stcn\"\nstage = 0\nlr = = 3\n", false, "r.toml", &[]).unwrap_err().to_string();
        assert!(!e.contains('\n') && e.contains("line 3, column"), "{e}");
        let text = BUNDLED[0].1.replace("iterations", "iterationz");
        assert!(parse(&text, false, "x", &[]).unwrap_err().to_string().contains("iterationz"));
        // JSON recipes too.
        let r = load("stcn/s0", &[]).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(parse(&json, true, "x.json", &[]).unwrap(), r);
    }

    fn photos_of(r: &Recipe) -> Vec<Option<PathBuf>> {
        r.sources.iter().map(|s| if let Source::Synthetic { photos, .. } = s { photos.clone() } else { None }).collect()
    }

    #[test]
    fn photos_go_to_the_sources_that_use_them() {
        // The photo recipe names a folder for its first source only; --photos replaces it there.
        let mut r = load("stcn/cpu-photos", &[]).unwrap();
        assert_eq!(photos_of(&r), [Some(PathBuf::from("photos")), None]);
        r.set_photos(Path::new("/p")).unwrap();
        assert_eq!(photos_of(&r), [Some(PathBuf::from("/p")), None]);
        // A recipe that names none: every synthetic source.
        let mut r = load("stcn/cpu-synthetic", &[]).unwrap();
        r.set_photos(Path::new("/p")).unwrap();
        assert_eq!(photos_of(&r), [Some(PathBuf::from("/p"))]);
        let e = load("stcn/s0", &[]).unwrap().set_photos(Path::new("/p")).unwrap_err().to_string();
        assert!(e.contains("--photos /p") && e.contains("no synthetic source"), "{e}");
        // Through --set too, and the field survives a JSON round trip (checkpoints record it).
        let r = load("stcn/cpu-synthetic", &["sources.0.photos=pics".into()]).unwrap();
        assert_eq!(photos_of(&r), [Some(PathBuf::from("pics"))]);
        assert_eq!(parse(&serde_json::to_string(&r).unwrap(), true, "x.json", &[]).unwrap(), r);
    }
}
