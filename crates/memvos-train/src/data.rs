//! Training samples: 3-frame clips from the recipe's sources (static images as pseudo-videos,
//! BL30K, DAVIS, YouTube-VOS, synthetic videos), sampled as methods.md §4.3 says (max-skip
//! curriculum, object selection, retries), augmented (§4.1, §4.3), and batched by background
//! workers in iteration order.
//!
//! The order is deterministic: sample `j` of iteration `i` is position `i·B + j` of an endless
//! sequence of epochs, each a seeded shuffle of every source entry (with repeats); all its random
//! draws come from a generator seeded by the recipe's seed and that position. A run resumed at
//! iteration `i` therefore sees exactly the batches an uninterrupted run sees.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use memvos_data::augment::{StaticToVideo, VideoAugment};
use memvos_data::layout::static_images::StaticImages;
use memvos_data::layout::{Davis, Dataset, YouTube, bl30k};
use memvos_data::photos::PhotoSet;
use memvos_data::synth::{SynthConfig, SynthPlan};
use memvos_data::{DataError, Frame, LabelMap};
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::recipe::{Curriculum, Recipe, Source};

/// What can go wrong preparing data.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// A data source could not be read.
    #[error("data source {index} ({kind}) at {root}: {source}")]
    Source {
        /// The source's position in the recipe (0-based).
        index: usize,
        /// Its kind (static, bl30k, davis, youtube, synthetic).
        kind: &'static str,
        /// Its root folder.
        root: PathBuf,
        /// The underlying error.
        source: DataError,
    },
    /// A data source holds nothing to train on.
    #[error("data source {index} ({kind}) at {root} holds no usable {what}")]
    Empty {
        /// The source's position in the recipe (0-based).
        index: usize,
        /// Its kind (static, bl30k, davis, youtube, synthetic).
        kind: &'static str,
        /// Its root folder.
        root: PathBuf,
        /// What it lacks (images, videos).
        what: &'static str,
    },
    /// A video with no annotated frame.
    #[error("data source {index} ({kind}) at {root}: video {video} has no annotated frame (training samples need masks)")]
    Unannotated {
        /// The source's position in the recipe (0-based).
        index: usize,
        /// Its kind (static, bl30k, davis, youtube, synthetic).
        kind: &'static str,
        /// Its root folder.
        root: PathBuf,
        /// The video.
        video: String,
    },
    /// A sample could not be read.
    #[error("reading a sample of {what}: {source}")]
    Sample {
        /// The sample (video and frames, or image).
        what: String,
        /// The underlying error.
        source: DataError,
    },
    /// The workers ended before the iteration loop did.
    #[error("the data workers stopped")]
    Stopped,
}

/// One sample: three frames and the masks of up to two objects.
#[derive(Clone, Debug)]
pub struct Sample {
    /// ImageNet-normalised frames, each `[3, S, S]` row-major.
    pub frames: Vec<Vec<f32>>,
    /// The target's mask per frame (`S × S`, in `[0, 1]`; soft for static images).
    pub target: Vec<Vec<f32>>,
    /// The second object's mask per frame (zeros when there is none).
    pub second: Vec<Vec<f32>>,
    /// Whether a second object is present.
    pub has_second: bool,
}

/// `B` samples of side `S`, laid out for tensors.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The iteration the batch is for.
    pub iteration: usize,
    /// Samples `B`.
    pub size: usize,
    /// Crop side `S`.
    pub side: usize,
    /// `[B, 3 frames, 3, S, S]`.
    pub frames: Vec<f32>,
    /// `[B, 3 frames, S, S]` each.
    pub target: Vec<f32>,
    /// The second object's masks, laid out as `target`.
    pub second: Vec<f32>,
    /// `[B]`: 1 where a second object exists.
    pub selector: Vec<f32>,
}

impl Batch {
    fn from_samples(iteration: usize, side: usize, samples: Vec<Sample>) -> Self {
        let n = samples.len();
        let mut b = Batch { iteration, size: n, side, frames: Vec::new(), target: Vec::new(), second: Vec::new(), selector: Vec::new() };
        for s in samples {
            s.frames.iter().for_each(|f| b.frames.extend_from_slice(f));
            s.target.iter().for_each(|m| b.target.extend_from_slice(m));
            s.second.iter().for_each(|m| b.second.extend_from_slice(m));
            b.selector.push(if s.has_second { 1.0 } else { 0.0 });
        }
        b
    }

    /// Samples `range` of this batch (for splitting over devices).
    pub fn slice(&self, start: usize, len: usize) -> Batch {
        let (f, m) = (3 * 3 * self.side * self.side, 3 * self.side * self.side);
        Batch {
            iteration: self.iteration,
            size: len,
            side: self.side,
            frames: self.frames[start * f..(start + len) * f].to_vec(),
            target: self.target[start * m..(start + len) * m].to_vec(),
            second: self.second[start * m..(start + len) * m].to_vec(),
            selector: self.selector[start..start + len].to_vec(),
        }
    }
}

/// One item a source can be asked for.
enum Item {
    Image(Arc<StaticImages>, usize),
    Video(Arc<Dataset>, usize, Arc<Curriculum>, usize, bool),
    Synthetic(Arc<SynthConfig>, usize, Arc<Curriculum>, Option<Arc<PhotoSet>>),
}

/// Every entry of every source (with repeats), in a fixed order.
pub struct Entries {
    items: Vec<Item>,
    crop: usize,
    crop_scale: Option<(f32, f32)>,
    objects: usize,
    seed: u64,
    iterations: usize,
    batch: usize,
}

fn resolve(data: &Path, root: &Path) -> PathBuf {
    if root.is_absolute() { root.to_path_buf() } else { data.join(root) }
}

/// The data roots a recipe reads (by source index), resolved against `data`.
pub fn source_roots(recipe: &Recipe, data: &Path) -> Vec<(usize, PathBuf)> {
    recipe
        .sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Source::Static { root, .. } | Source::Bl30k { root, .. } | Source::Davis { root, .. } | Source::Youtube { root, .. } => Some((i, resolve(data, root))),
            Source::Synthetic { photos, .. } => photos.as_ref().map(|p| (i, resolve(data, p))),
        })
        .collect()
}

/// A video source's first video without an annotated frame (a sample needs one).
fn unannotated(ds: &memvos_data::Dataset) -> Option<&str> {
    ds.videos.iter().find(|v| v.annotated().is_empty()).map(|v| v.name.as_str())
}

fn read_subset(path: &Path) -> Result<Vec<String>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

impl Entries {
    /// Opens every source of `recipe` under `data` (layouts checked, nothing decoded).
    pub fn open(recipe: &Recipe, data: &Path) -> Result<Self, LoaderError> {
        let mut items = Vec::new();
        for (index, source) in recipe.sources.iter().enumerate() {
            let (kind, root) = match source {
                Source::Static { root, .. } => ("static", resolve(data, root)),
                Source::Bl30k { root, .. } => ("bl30k", resolve(data, root)),
                Source::Davis { root, .. } => ("davis", resolve(data, root)),
                Source::Youtube { root, .. } => ("youtube", resolve(data, root)),
                Source::Synthetic { photos: Some(p), .. } => ("synthetic", resolve(data, p)),
                Source::Synthetic { .. } => ("synthetic", PathBuf::from("(generated)")),
            };
            let err = |source| LoaderError::Source { index, kind, root: root.clone(), source };
            let empty = |what| LoaderError::Empty { index, kind, root: root.clone(), what };
            let before = items.len();
            match source {
                Source::Static { repeat, .. } => {
                    let set = Arc::new(StaticImages::open(&root).map_err(err)?);
                    for _ in 0..*repeat {
                        items.extend((0..set.samples.len()).map(|i| Item::Image(set.clone(), i)));
                    }
                }
                Source::Bl30k { max_skip, .. } => {
                    let set = Arc::new(bl30k(&root).map_err(err)?);
                    if let Some(v) = unannotated(&set) {
                        return Err(LoaderError::Unannotated { index, kind, root: root.clone(), video: v.to_string() });
                    }
                    let c = Arc::new(max_skip.clone());
                    items.extend((0..set.videos.len()).map(|v| Item::Video(set.clone(), v, c.clone(), 1, true)));
                }
                Source::Davis { set, repeat, subset, max_skip, .. } => {
                    let mut ds = Davis::new(&root, 2017, set).open().map_err(err)?;
                    if let Some(s) = subset {
                        let keep = read_subset(&resolve(data, s)).map_err(err)?;
                        ds.videos.retain(|v| keep.contains(&v.name));
                    }
                    if let Some(v) = unannotated(&ds) {
                        return Err(LoaderError::Unannotated { index, kind, root: root.clone(), video: v.to_string() });
                    }
                    let ds = Arc::new(ds);
                    let c = Arc::new(max_skip.clone());
                    for _ in 0..*repeat {
                        items.extend((0..ds.videos.len()).map(|v| Item::Video(ds.clone(), v, c.clone(), 1, false)));
                    }
                }
                Source::Youtube { split, subset, frame_step, max_skip, .. } => {
                    let mut ds = YouTube::new(&root, split).open().map_err(err)?;
                    if let Some(s) = subset {
                        let keep = read_subset(&resolve(data, s)).map_err(err)?;
                        ds.videos.retain(|v| keep.contains(&v.name));
                    }
                    if let Some(v) = unannotated(&ds) {
                        return Err(LoaderError::Unannotated { index, kind, root: root.clone(), video: v.to_string() });
                    }
                    let ds = Arc::new(ds);
                    let c = Arc::new(max_skip.clone());
                    items.extend((0..ds.videos.len()).map(|v| Item::Video(ds.clone(), v, c.clone(), (*frame_step).max(1), false)));
                }
                Source::Synthetic { videos, frames, height, width, min_objects, max_objects, seed, photos, max_skip } => {
                    let cfg = SynthConfig { videos: *videos, frames: *frames, height: *height, width: *width, min_objects: *min_objects, max_objects: *max_objects, seed: *seed, ..Default::default() };
                    cfg.validate().map_err(err)?;
                    let photos = match photos {
                        Some(_) => Some(Arc::new(PhotoSet::load(&root).map_err(err)?)),
                        None => None,
                    };
                    let (cfg, c) = (Arc::new(cfg), Arc::new(max_skip.clone()));
                    items.extend((0..*videos).map(|v| Item::Synthetic(cfg.clone(), v, c.clone(), photos.clone())));
                }
            }
            if items.len() == before {
                return Err(empty(if kind == "static" { "image" } else { "video" }));
            }
        }
        Ok(Entries { items, crop: recipe.crop, crop_scale: recipe.crop_scale, objects: recipe.objects, seed: recipe.seed, iterations: recipe.iterations, batch: recipe.batch_size })
    }

    /// Number of entries (one epoch).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing was listed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Epochs in the whole run (`⌈iterations · B / entries⌉`).
    pub fn epochs(&self) -> usize {
        (self.iterations * self.batch).div_ceil(self.items.len().max(1))
    }

    /// The entry at global position `p` (epoch `p / len`, shuffled per epoch) and its epoch.
    fn entry_at(&self, p: usize) -> (usize, usize) {
        let n = self.items.len();
        let epoch = p / n;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(self.seed ^ 0xD1B5_4A32_D192_ED03 ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        (order[p % n], epoch)
    }

    /// Sample `slot` of iteration `iteration`.
    pub fn sample(&self, iteration: usize, slot: usize) -> Result<Sample, LoaderError> {
        let p = iteration * self.batch + slot;
        let (e, epoch) = self.entry_at(p);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.wrapping_add(0x2545_F491_4F6C_DD1D));
        rng.set_stream(p as u64);
        match &self.items[e] {
            Item::Image(set, i) => {
                let s = &set.samples[*i];
                let what = || s.image.display().to_string();
                let (frame, mask) = s.read().map_err(|source| LoaderError::Sample { what: what(), source })?;
                let aug = StaticToVideo { size: self.crop, ..StaticToVideo::default() };
                let v = aug.apply(&frame, &mask, &mut rng).map_err(|source| LoaderError::Sample { what: what(), source })?;
                let zeros = vec![0.0; self.crop * self.crop];
                Ok(Sample {
                    frames: v.frames.iter().map(normalized).collect(),
                    target: v.masks.iter().map(|m| m.iter().copied().collect()).collect(),
                    second: vec![zeros; 3],
                    has_second: false,
                })
            }
            Item::Video(ds, v, curriculum, step, bl30k) => {
                let video = &ds.videos[*v];
                let usable = video.annotated();
                if usable.is_empty() {
                    // Checked at open; a folder changed since is still named, never an index panic.
                    return Err(LoaderError::Sample { what: format!("video {}", video.name), source: DataError::InvalidArgument("has no annotated frame".into()) });
                }
                let skip = (curriculum.at(epoch, self.epochs()) / step).max(1);
                let frames = clip(usable.len(), skip, &mut rng);
                let read = |i: usize| {
                    let (f, m) = video.read_pair(usable[i]).map_err(|source| LoaderError::Sample { what: format!("video {}", video.name), source })?;
                    let m = m.unwrap_or_else(|| LabelMap::zeros(f.height(), f.width()));
                    Ok::<_, LoaderError>((f, m))
                };
                let mut pairs = Vec::with_capacity(3);
                for &i in &frames {
                    pairs.push(read(i)?);
                }
                self.finish_clip(pairs, *bl30k, &mut rng, &video.name)
            }
            Item::Synthetic(cfg, v, curriculum, photos) => {
                let plan = SynthPlan::with_photos(cfg, *v, photos.as_deref()).map_err(|source| LoaderError::Sample { what: format!("synthetic video {v}"), source })?;
                let skip = curriculum.at(epoch, self.epochs()).max(1);
                let frames = clip(plan.len(), skip, &mut rng);
                let mut pairs = Vec::with_capacity(3);
                for &t in &frames {
                    pairs.push(plan.render(t).map_err(|source| LoaderError::Sample { what: plan.name.clone(), source })?);
                }
                self.finish_clip(pairs, false, &mut rng, &plan.name)
            }
        }
    }

    /// Object selection, augmentation and masks of a 3-frame clip (methods.md §4.3).
    fn finish_clip(&self, pairs: Vec<(Frame, LabelMap)>, bl30k: bool, rng: &mut ChaCha8Rng, name: &str) -> Result<Sample, LoaderError> {
        let (frames, masks): (Vec<Frame>, Vec<LabelMap>) = pairs.into_iter().unzip();
        let mut aug = if bl30k { VideoAugment { size: self.crop, ..VideoAugment::bl30k() } } else { VideoAugment { size: self.crop, ..VideoAugment::default() } };
        if let Some(scale) = self.crop_scale {
            aug.crop_scale = scale;
        }
        // Up to five augmentations until the first frame shows a usable object; after that the
        // target is absent (all-empty masks), as published.
        let mut tries = 0;
        let (f, m, labels) = loop {
            let (f, m) = aug.apply(&frames, &masks, rng).map_err(|source| LoaderError::Sample { what: name.to_string(), source })?;
            let mut labels = m[0].object_ids();
            if bl30k {
                labels.retain(|&l| {
                    let area = |k: usize| m[k].labels.iter().filter(|&&v| v == l).count();
                    area(0) > 100 && (area(0) > 900 || (area(1) < 400 && area(2) < 400))
                });
            }
            tries += 1;
            if !labels.is_empty() || tries == 5 {
                break (f, m, labels);
            }
        };
        let s2 = self.crop * self.crop;
        if labels.is_empty() {
            return Ok(Sample { frames: f.iter().map(normalized).collect(), target: vec![vec![0.0; s2]; 3], second: vec![vec![0.0; s2]; 3], has_second: false });
        }
        let target = labels[rng.random_range(0..labels.len())];
        let others: Vec<u8> = labels.iter().copied().filter(|&l| l != target).collect();
        let second = (self.objects == 2 && !others.is_empty()).then(|| others[rng.random_range(0..others.len())]);
        let of = |m: &LabelMap, l: Option<u8>| -> Vec<f32> { m.labels.iter().map(|&v| if Some(v) == l { 1.0 } else { 0.0 }).collect() };
        Ok(Sample {
            frames: f.iter().map(normalized).collect(),
            target: m.iter().map(|mm| of(mm, Some(target))).collect(),
            second: m.iter().map(|mm| of(mm, second)).collect(),
            has_second: second.is_some(),
        })
    }
}

fn normalized(f: &Frame) -> Vec<f32> {
    f.to_normalized().into_raw_vec_and_offset().0
}

/// Three frame indices of a video of `n` frames with max-skip `skip` (methods.md §4.3:
/// STCN's rule; reversed with probability 0.5).
pub fn clip<R: Rng>(n: usize, skip: usize, rng: &mut R) -> [usize; 3] {
    if n == 0 {
        return [0; 3];
    }
    let j = n.min(skip.max(1));
    let s = rng.random_range(0..=n - j);
    let f1 = (s + rng.random_range(0..=j) + 1).min(n - j).min(n - 1);
    let f2 = (f1 + rng.random_range(0..=j) + 1).min(n - j / 2).min(n - 1);
    let mut out = [s, f1, f2];
    if rng.random::<f32>() < 0.5 {
        out.reverse();
    }
    out
}

/// Batches in iteration order, prepared by background workers: worker `w` prepares iterations
/// `w, w + W, …` and holds at most two ready.
pub struct Loader {
    receivers: Vec<Receiver<Result<Batch, LoaderError>>>,
    handles: Vec<JoinHandle<()>>,
    start: usize,
    next: usize,
}

impl Loader {
    /// Starts `workers` threads preparing batches from iteration `start` on.
    pub fn start(entries: Arc<Entries>, start: usize, end: usize, workers: usize) -> Self {
        let workers = workers.max(1);
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx): (SyncSender<Result<Batch, LoaderError>>, _) = sync_channel(2);
            let entries = entries.clone();
            handles.push(std::thread::spawn(move || {
                let mut it = start + w;
                while it < end {
                    let batch = (0..entries.batch).map(|slot| entries.sample(it, slot)).collect::<Result<Vec<_>, _>>().map(|s| Batch::from_samples(it, entries.crop, s));
                    if tx.send(batch).is_err() {
                        return;
                    }
                    it += workers;
                }
            }));
            receivers.push(rx);
        }
        Loader { receivers, handles, start, next: start }
    }

    /// The next iteration's batch.
    pub fn next_batch(&mut self) -> Result<Batch, LoaderError> {
        let w = (self.next - self.start) % self.receivers.len();
        let b = self.receivers[w].recv().map_err(|_| LoaderError::Stopped)??;
        self.next += 1;
        Ok(b)
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// A mask as an `S × S` array (for tests and inspection).
pub fn mask_array(v: &[f32], side: usize) -> Array2<f32> {
    Array2::from_shape_vec((side, side), v.to_vec()).unwrap_or_else(|_| Array2::zeros((side, side)))
}
