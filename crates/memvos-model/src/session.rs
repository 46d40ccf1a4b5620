//! Interactive sessions over one video, as the MiVOS and Cutie tools work: annotate any frame
//! (every object in it), propagate forward or backward from it, look, correct a frame, propagate
//! again, add an object later.
//!
//! - **Annotations** ([`Session::annotate`]) are complete label maps of a frame. A run passes
//!   through an annotated frame only when told to ([`Until::Through`]); there the annotation is
//!   the output, new labels start objects, and objects absent from it are empty from there on.
//!   Annotated frames are permanent memory of the run: no policy evicts them.
//! - **Runs** ([`Session::start`], [`Session::propagate`]) segment one frame at a time in one
//!   [`Direction`], from an annotated frame (or a frame that already has a result: its labels
//!   start the run), stopping before the next annotated frame unless told otherwise. A run owns
//!   its [`Propagator`]; a caller can drop it at any frame, and the frames done stay.
//!   Backward is forward on the reversed frame order, nothing else.
//! - **Results** are kept per frame and direction, each with the annotated frame it comes from.
//!   A frame's labels ([`Session::labels`]) are its annotation; else the result whose source
//!   annotation is nearest (a tie goes to the forward run). Changing or clearing an annotation
//!   drops the results that came from it.
//! - **Frames** come from a folder or from memory ([`Frames`]), decoded when asked for and kept
//!   in a bounded cache.
//! - **Memory** stays bounded on long videos through the configuration's policy (annotations
//!   excepted).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use memvos_data::frame::{Frame, LabelMap};
use memvos_data::overlay::OverlayKind;
use memvos_data::{DataError, Palette};

use crate::inference::{InferenceCore, InferenceError};
use crate::propagator::{Propagator, PropagatorConfig, PropagatorError, SharedNetwork};

/// Which way a run goes through the video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards the last frame.
    Forward,
    /// Towards frame 0.
    Backward,
}

impl Direction {
    fn slot(self) -> usize {
        self as usize
    }

    /// The frame after `i` in this direction, if the video of `len` frames has one.
    fn next(self, i: usize, len: usize) -> Option<usize> {
        match self {
            Direction::Forward => (i + 1 < len).then_some(i + 1),
            Direction::Backward => i.checked_sub(1),
        }
    }
}

/// Where a run stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Before the next annotated frame in the direction, or at the end of the video.
    NextAnnotation,
    /// At this frame (inclusive), or before the next annotated frame if that comes first.
    Frame(usize),
    /// At the end of the video, passing through annotated frames (each restarts its objects
    /// from the annotation and becomes permanent memory).
    Through,
}

/// Frames a session reads: decoded when asked for.
pub trait FrameSource: Send {
    /// Number of frames.
    fn len(&self) -> usize;
    /// Whether there is no frame.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The name of frame `i` (a file stem, `00000`).
    fn name(&self, i: usize) -> &str;
    /// Decodes frame `i`.
    fn read(&self, i: usize) -> Result<Frame, DataError>;
}

/// Frames of a folder (JPEG or PNG, natural name order), or frames held in memory.
pub enum Frames {
    /// Image files, decoded when read.
    Files {
        /// The frames' names (file stems).
        names: Vec<String>,
        /// Their files.
        paths: Vec<PathBuf>,
    },
    /// Decoded frames.
    Memory {
        /// The frames' names (file stems).
        names: Vec<String>,
        /// The frames.
        frames: Vec<Frame>,
    },
}

impl Frames {
    /// The image files of `dir`, in natural name order.
    pub fn folder(dir: &Path) -> Result<Self, DataError> {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into());
        let video = memvos_data::layout::video_folder(&name, dir, None)?;
        let names = video.frames.iter().map(|f| f.name.clone()).collect();
        let paths = video.frames.into_iter().filter_map(|f| f.image).collect();
        Ok(Frames::Files { names, paths })
    }

    /// Frames in memory, named `00000`, `00001`, ….
    pub fn memory(frames: Vec<Frame>) -> Self {
        let names = (0..frames.len()).map(|i| format!("{i:05}")).collect();
        Frames::Memory { names, frames }
    }
}

impl FrameSource for Frames {
    fn len(&self) -> usize {
        match self {
            Frames::Files { names, .. } | Frames::Memory { names, .. } => names.len(),
        }
    }

    fn name(&self, i: usize) -> &str {
        match self {
            Frames::Files { names, .. } | Frames::Memory { names, .. } => names.get(i).map(String::as_str).unwrap_or(""),
        }
    }

    fn read(&self, i: usize) -> Result<Frame, DataError> {
        let missing = || DataError::InvalidArgument(format!("frame {i} asked for, the video has {}", self.len()));
        match self {
            Frames::Files { paths, .. } => memvos_data::read_frame(paths.get(i).ok_or_else(missing)?),
            Frames::Memory { frames, .. } => frames.get(i).cloned().ok_or_else(missing),
        }
    }
}

/// What can go wrong in a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A frame or annotation could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The inference core refused a frame or setting.
    #[error(transparent)]
    Inference(#[from] InferenceError),
    /// Propagation failed.
    #[error(transparent)]
    Propagate(#[from] PropagatorError),
    /// A frame index past the video's end.
    #[error("frame {frame}: the video has {len} frames")]
    NoFrame {
        /// The frame's index.
        frame: usize,
        /// Frames in the video.
        len: usize,
    },
    /// An annotation of another size than its frame.
    #[error("frame {frame} ({name}): the annotation is {got_w}x{got_h} (WxH), the frame {want_w}x{want_h}")]
    AnnotationSize {
        /// The frame's index.
        frame: usize,
        /// The frame's name.
        name: String,
        /// The annotation's width.
        got_w: usize,
        /// The annotation's height.
        got_h: usize,
        /// The frames' width.
        want_w: usize,
        /// The frames' height.
        want_h: usize,
    },
    /// A run from a frame with no annotation or result.
    #[error("frame {frame} ({name}) is neither annotated nor segmented: a run starts from an annotation or a result")]
    NothingToStartFrom {
        /// The frame's index.
        frame: usize,
        /// The frame's name.
        name: String,
    },
    /// A video without frames.
    #[error("the video has no frames")]
    Empty,
    /// An annotation file named like no frame.
    #[error("{path}: no frame is named {stem} (annotations are named like the frames they annotate)")]
    UnknownAnnotation {
        /// The annotation file.
        path: PathBuf,
        /// Its name without extension.
        stem: String,
    },
    /// An annotation file of another size than the frames.
    #[error("{path}: the annotation is {got_w}x{got_h} (WxH), the frames {want_w}x{want_h}")]
    AnnotationFileSize {
        /// The annotation file.
        path: PathBuf,
        /// The annotation's width.
        got_w: usize,
        /// The annotation's height.
        got_h: usize,
        /// The frames' width.
        want_w: usize,
        /// The frames' height.
        want_h: usize,
    },
    /// A folder without annotations.
    #[error("{dir}: no annotation (PNG named like a frame) in the folder")]
    NoAnnotations {
        /// The folder.
        dir: PathBuf,
    },
}

/// The annotations in `dir` of a video whose frames are `names` (`height × width`): every PNG
/// named like a frame, as `(frame, labels)` in frame order; a PNG that matches no frame, a size
/// that differs, or a folder without a PNG is an error naming the file.
pub fn read_annotations(dir: &Path, names: &[String], (h, w): (usize, usize)) -> Result<Vec<(usize, LabelMap)>, SessionError> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let listed = memvos_data::layout::video_folder(&name, dir, None).map_err(|e| match e {
        DataError::EmptyVideo { .. } => SessionError::NoAnnotations { dir: dir.to_path_buf() },
        other => other.into(),
    })?;
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut out = Vec::new();
    for f in &listed.frames {
        let Some(path) = f.image.as_ref().filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"))) else { continue };
        let Some(&i) = index.get(f.name.as_str()) else {
            return Err(SessionError::UnknownAnnotation { path: path.clone(), stem: f.name.clone() });
        };
        let labels = memvos_data::read_mask(path)?.labels;
        if (labels.height(), labels.width()) != (h, w) {
            return Err(SessionError::AnnotationFileSize { path: path.clone(), got_w: labels.width(), got_h: labels.height(), want_w: w, want_h: h });
        }
        out.push((i, labels));
    }
    if out.is_empty() {
        return Err(SessionError::NoAnnotations { dir: dir.to_path_buf() });
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// Which runs [`Session::fill`] makes from the annotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// From each annotation towards the end, up to the next annotation.
    Forward,
    /// From each annotation towards frame 0, down to the previous annotation.
    Backward,
    /// Both: every frame gets the run of its nearest annotation on each side.
    Both,
}

/// One frame's result of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameResult {
    /// The annotated frame the run (or its last restart) came from.
    pub source: usize,
    /// The frame's labels.
    pub labels: LabelMap,
}

/// Progress of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Frames segmented so far.
    pub done: usize,
    /// Frames the run will segment at most.
    pub total: usize,
    /// Frames per second so far.
    pub fps: f64,
}

/// Decoded frames kept by a session, at most `capacity`, least recently used out first.
struct FrameCache {
    capacity: usize,
    frames: HashMap<usize, Arc<Frame>>,
    order: VecDeque<usize>,
}

impl FrameCache {
    fn get(&mut self, i: usize, source: &dyn FrameSource) -> Result<Arc<Frame>, DataError> {
        if let Some(f) = self.frames.get(&i).cloned() {
            self.order.retain(|&j| j != i);
            self.order.push_back(i);
            return Ok(f);
        }
        let f = Arc::new(source.read(i)?);
        self.frames.insert(i, f.clone());
        self.order.push_back(i);
        while self.order.len() > self.capacity.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.frames.remove(&old);
            }
        }
        Ok(f)
    }
}

/// Frames a session keeps decoded by default.
pub const DEFAULT_CACHE_FRAMES: usize = 64;

/// An interactive session over one video (see the module documentation).
pub struct Session {
    net: SharedNetwork,
    config: PropagatorConfig,
    device: Device,
    short_side: Option<usize>,
    frames: Box<dyn FrameSource>,
    cache: FrameCache,
    size: (usize, usize),
    annotations: BTreeMap<usize, LabelMap>,
    results: [BTreeMap<usize, FrameResult>; 2],
}

impl Session {
    /// A session over `frames`, segmented by `net` with `config` (its memory policy bounds the
    /// memory of each run) on `device`. The first frame is decoded to learn the video's size.
    pub fn new(net: SharedNetwork, config: PropagatorConfig, frames: Box<dyn FrameSource>, device: &Device) -> Result<Self, SessionError> {
        config.validate(net.method()).map_err(PropagatorError::Config)?;
        if frames.is_empty() {
            return Err(SessionError::Empty);
        }
        let mut cache = FrameCache { capacity: DEFAULT_CACHE_FRAMES, frames: HashMap::new(), order: VecDeque::new() };
        let first = cache.get(0, frames.as_ref())?;
        let size = (first.height(), first.width());
        Ok(Session { net, config, device: device.clone(), short_side: None, frames, cache, size, annotations: BTreeMap::new(), results: [BTreeMap::new(), BTreeMap::new()] })
    }

    /// Runs the network with frames resized so their shorter side is `short_side` (results
    /// come back at the frame size).
    pub fn with_short_side(mut self, short_side: Option<usize>) -> Self {
        self.short_side = short_side;
        self
    }

    /// Keeps at most `frames` decoded frames.
    pub fn with_cache(mut self, frames: usize) -> Self {
        self.cache.capacity = frames.max(1);
        self
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the video has no frames (never: [`Session::new`] refuses one).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// `(height, width)` of the frames.
    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// The name of frame `i`.
    pub fn frame_name(&self, i: usize) -> &str {
        self.frames.name(i)
    }

    /// Frame `i`, decoded (from the cache when it is there). A frame of another size than the
    /// first is an error naming it.
    pub fn frame(&mut self, i: usize) -> Result<Arc<Frame>, SessionError> {
        self.check_frame(i)?;
        let f = self.cache.get(i, self.frames.as_ref())?;
        if (f.height(), f.width()) != self.size {
            let (h, w) = self.size;
            return Err(DataError::SizeMismatch { path: PathBuf::from(self.frames.name(i)), got_w: f.width(), got_h: f.height(), want_w: w, want_h: h }.into());
        }
        Ok(f)
    }

    fn check_frame(&self, i: usize) -> Result<(), SessionError> {
        if i >= self.len() {
            return Err(SessionError::NoFrame { frame: i, len: self.len() });
        }
        Ok(())
    }

    /// Sets the complete annotation of frame `i` (every object in it; 0 background, 255 void).
    /// It may add objects, change their masks, or leave out an object (which a run passing
    /// through here drops from then on). Results that came from an earlier annotation of this
    /// frame are dropped.
    pub fn annotate(&mut self, i: usize, labels: LabelMap) -> Result<(), SessionError> {
        self.check_frame(i)?;
        let (h, w) = self.size;
        if (labels.height(), labels.width()) != (h, w) {
            return Err(SessionError::AnnotationSize { frame: i, name: self.frame_name(i).to_string(), got_w: labels.width(), got_h: labels.height(), want_w: w, want_h: h });
        }
        if self.annotations.get(&i) != Some(&labels) {
            self.drop_results_from(i);
        }
        self.annotations.insert(i, labels);
        Ok(())
    }

    /// The annotation of frame `i`, if it has one.
    pub fn annotation(&self, i: usize) -> Option<&LabelMap> {
        self.annotations.get(&i)
    }

    /// The annotated frames, in order.
    pub fn annotated(&self) -> Vec<usize> {
        self.annotations.keys().copied().collect()
    }

    /// Removes frame `i`'s annotation (and the results that came from it) and its results.
    pub fn clear(&mut self, i: usize) {
        if self.annotations.remove(&i).is_some() {
            self.drop_results_from(i);
        }
        for r in &mut self.results {
            r.remove(&i);
        }
    }

    /// Removes object `id` from every annotation and result.
    pub fn remove_object(&mut self, id: u8) {
        let strip = |l: &mut LabelMap| l.labels.mapv_inplace(|v| if v == id { 0 } else { v });
        self.annotations.values_mut().for_each(strip);
        for r in &mut self.results {
            r.values_mut().for_each(|x| strip(&mut x.labels));
        }
    }

    /// Forgets every annotation and result.
    pub fn reset(&mut self) {
        self.annotations.clear();
        self.results.iter_mut().for_each(BTreeMap::clear);
    }

    fn drop_results_from(&mut self, source: usize) {
        for r in &mut self.results {
            r.retain(|_, x| x.source != source);
        }
    }

    /// The result of frame `i` in `direction`, if a run reached it.
    pub fn result(&self, i: usize, direction: Direction) -> Option<&FrameResult> {
        self.results[direction.slot()].get(&i)
    }

    /// Frame `i`'s labels: its annotation, else the result of the nearest annotation's run (a
    /// tie goes forward); `None` when nothing reached it.
    pub fn labels(&self, i: usize) -> Option<&LabelMap> {
        if let Some(a) = self.annotations.get(&i) {
            return Some(a);
        }
        let f = self.results[0].get(&i).map(|r| (i.abs_diff(r.source), r));
        let b = self.results[1].get(&i).map(|r| (i.abs_diff(r.source), r));
        match (f, b) {
            (Some((df, rf)), Some((db, rb))) => Some(if db < df { &rb.labels } else { &rf.labels }),
            (Some((_, r)), None) | (None, Some((_, r))) => Some(&r.labels),
            (None, None) => None,
        }
    }

    /// The object labels of every annotation, in order.
    pub fn objects(&self) -> Vec<u8> {
        let mut ids: Vec<u8> = self.annotations.values().flat_map(|a| a.object_ids()).filter(|&v| v != 255).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Starts a run from frame `from` (annotated, or with a result whose labels start it).
    /// Step it with [`Run::step`]; or use [`Session::propagate`] for an iterator.
    pub fn start(&mut self, from: usize, direction: Direction, until: Until) -> Result<Run, SessionError> {
        self.check_frame(from)?;
        let (start_labels, source) = match self.annotations.get(&from) {
            Some(a) => (a.clone(), from),
            None => {
                let r = self.results[direction.slot()].get(&from).or_else(|| self.results[1 - direction.slot()].get(&from));
                match r {
                    Some(r) => (r.labels.clone(), r.source),
                    None => return Err(SessionError::NothingToStartFrom { frame: from, name: self.frame_name(from).to_string() }),
                }
            }
        };
        // The frames the run will segment, in order.
        let mut plan = Vec::new();
        let mut i = from;
        while let Some(n) = direction.next(i, self.len()) {
            if until != Until::Through && self.annotations.contains_key(&n) {
                break;
            }
            plan.push(n);
            if until == Until::Frame(n) {
                break;
            }
            i = n;
        }
        let prop = Propagator::new(self.net.clone(), self.config.clone(), &self.device)?;
        Ok(Run {
            core: InferenceCore::with_propagator(prop, self.short_side)?,
            direction,
            from,
            start_labels: Some(start_labels),
            source,
            plan,
            next: 0,
            started: Instant::now(),
        })
    }

    /// A run as an iterator of `(frame, labels)`, one frame at a time; drop it to stop (the
    /// frames done stay).
    pub fn propagate(&mut self, from: usize, direction: Direction, until: Until) -> Result<Propagation<'_>, SessionError> {
        let run = self.start(from, direction, until)?;
        Ok(Propagation { session: self, run })
    }

    /// Reads every PNG of `dir` named like a frame as that frame's complete annotation (natural
    /// order; a name that matches no frame, a size that differs from the frames, or a folder
    /// with no PNG is an error naming the file). Returns the annotated frames.
    pub fn annotate_from_folder(&mut self, dir: &Path) -> Result<Vec<usize>, SessionError> {
        let names: Vec<String> = (0..self.len()).map(|i| self.frames.name(i).to_string()).collect();
        let read = read_annotations(dir, &names, self.size)?;
        let frames = read.iter().map(|(i, _)| *i).collect();
        for (i, labels) in read {
            self.annotate(i, labels)?;
        }
        Ok(frames)
    }

    /// Runs from every annotation as `which` says, each stopping before the next annotation;
    /// `on_frame(frame, progress of the run)` after each frame. Returns the frames segmented.
    pub fn fill(&mut self, which: Fill, mut on_frame: impl FnMut(usize, Progress)) -> Result<usize, SessionError> {
        let mut runs: Vec<(usize, Direction)> = Vec::new();
        if which != Fill::Backward {
            runs.extend(self.annotated().into_iter().map(|a| (a, Direction::Forward)));
        }
        if which != Fill::Forward {
            runs.extend(self.annotated().into_iter().rev().map(|a| (a, Direction::Backward)));
        }
        let mut done = 0;
        for (from, direction) in runs {
            let mut run = self.start(from, direction, Until::NextAnnotation)?;
            while let Some(r) = run.step(self) {
                let (i, _) = r?;
                done += 1;
                on_frame(i, run.progress());
            }
        }
        Ok(done)
    }

    /// Writes the labels of every frame that has some as palette PNGs named like the frames
    /// into `dir` (a DAVIS results folder for this video), and `overlay.gif` of those frames.
    /// Returns how many frames were written (none, and no GIF, before any annotation).
    pub fn export(&mut self, dir: &Path, palette: &Palette) -> Result<usize, SessionError> {
        self.export_with(dir, palette, OverlayKind::Gif)
    }

    /// [`Self::export`] with another overlay (or none).
    pub fn export_with(&mut self, dir: &Path, palette: &Palette, overlay: OverlayKind) -> Result<usize, SessionError> {
        let mut written = 0;
        let mut shown: Vec<(Arc<Frame>, LabelMap)> = Vec::new();
        for i in 0..self.len() {
            let Some(labels) = self.labels(i).cloned() else { continue };
            memvos_data::write_mask(&dir.join(format!("{}.png", self.frame_name(i))), &labels, palette)?;
            written += 1;
            if overlay != OverlayKind::None {
                shown.push((self.frame(i)?, labels));
            }
        }
        let pairs: Vec<(&Frame, &LabelMap)> = shown.iter().map(|(f, l)| (f.as_ref(), l)).collect();
        memvos_data::overlay::write_overlay(overlay, dir, &pairs, palette)?;
        Ok(written)
    }
}

/// A run in progress: it owns its propagator and borrows the session only while stepping, so a
/// server can lock the session per frame.
pub struct Run {
    core: InferenceCore,
    direction: Direction,
    from: usize,
    start_labels: Option<LabelMap>,
    source: usize,
    plan: Vec<usize>,
    next: usize,
    started: Instant,
}

impl Run {
    /// The frames this run will segment, in order.
    pub fn plan(&self) -> &[usize] {
        &self.plan
    }

    /// The direction.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Progress so far.
    pub fn progress(&self) -> Progress {
        let secs = self.started.elapsed().as_secs_f64();
        Progress { done: self.next, total: self.plan.len(), fps: if secs > 0.0 { self.next as f64 / secs } else { 0.0 } }
    }

    /// The stream indices stored in the run's memory, per object group (see
    /// [`Propagator::stored_frames`]); video frame `i` is stream index `|i − from|`.
    pub fn memory(&self) -> Vec<Vec<usize>> {
        self.core.propagator().stored_frames()
    }

    /// Segments the next frame of the plan and stores its result in `session`; `None` when the
    /// run is done.
    pub fn step(&mut self, session: &mut Session) -> Option<Result<(usize, LabelMap), SessionError>> {
        if let Some(labels) = self.start_labels.take() {
            // The start frame goes in as a full annotation: the run's first permanent memory.
            let r = session.frame(self.from).and_then(|f| self.core.step_annotated(&f, &labels).map(|_| ()).map_err(SessionError::from));
            if let Err(e) = r {
                self.next = self.plan.len();
                return Some(Err(e));
            }
        }
        let &i = self.plan.get(self.next)?;
        self.next += 1;
        let result = (|| {
            let frame = session.frame(i)?;
            let annotation = session.annotations.get(&i).cloned();
            let labels = match &annotation {
                Some(a) => {
                    self.core.step_annotated(&frame, a)?;
                    self.source = i;
                    a.clone()
                }
                None => match self.core.step(&frame, None)? {
                    Some(s) => s.labels,
                    None => LabelMap::zeros(frame.height(), frame.width()),
                },
            };
            if annotation.is_none() {
                session.results[self.direction.slot()].insert(i, FrameResult { source: self.source, labels: labels.clone() });
            }
            Ok((i, labels))
        })();
        if result.is_err() {
            self.next = self.plan.len();
        }
        Some(result)
    }
}

/// A run as an iterator over `(frame, labels)` ([`Session::propagate`]).
pub struct Propagation<'s> {
    session: &'s mut Session,
    run: Run,
}

impl Propagation<'_> {
    /// Progress so far.
    pub fn progress(&self) -> Progress {
        self.run.progress()
    }

    /// The run inside.
    pub fn run(&self) -> &Run {
        &self.run
    }
}

impl Iterator for Propagation<'_> {
    type Item = Result<(usize, LabelMap), SessionError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.run.step(self.session)
    }
}
