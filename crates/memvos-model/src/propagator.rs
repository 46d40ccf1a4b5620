//! The streaming engine users embed (methods.md §1.6, §1.8): built from any [`MemoryNetwork`]
//! and a config, fed one frame at a time with optional masks of objects that appear in it,
//! returning per-object probabilities and a label map.
//!
//! Objects entering at the same frame share a memory bank whose first entry is that frame
//! (exactly the per-object banks of the reference code, whose entries differ only by start
//! frame). A frame's memory entry is encoded when the *next* frame arrives, so the last frame of
//! a video is never memorised, the caller need not say which frame is last, and a network that
//! gates a memory value with the following frame (IMSFR) has it. Which frames are written,
//! evicted and read is the [`MemoryPolicy`]'s decision ([`memvos_memory::policy`]); the
//! configuration names one, or [`Propagator::with_policy`] takes any.

use std::sync::Arc;

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor, TensorData};
use memvos_cpu::pool::Arena;
use memvos_memory::transfers::{download, upload};
use memvos_data::frame::{Frame, LabelMap, Pad, pad_chw};
use memvos_memory::{
    Candidate, FrameRule, ImsfrSampling, MemoryBank, MemoryError, MemoryPolicy, PolicyConfig, PolicyKind, ReadConfig, Selection, StoredFrame, Write,
};
use ndarray::{Array3, s};
use serde::{Deserialize, Serialize};

use crate::aggregate::aggregate;
use crate::network::{KeyKind, MemoryEncoding, MemoryNetwork, Method, Query};

/// A network shared by the streams that drive it.
pub type SharedNetwork = std::sync::Arc<dyn MemoryNetwork>;

/// The benchmarks whose published settings [`PropagatorConfig::for_method`] knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Benchmark {
    /// DAVIS 2017 (multi-object, absolute frame indices where the method uses them).
    Davis2017,
    /// DAVIS 2016 (single object).
    Davis2016,
    /// YouTube-VOS, and any video whose objects may appear later (relative frame rules).
    YouTube,
}

/// The memory schedule and read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PropagatorConfig {
    /// Top-k of the affinity softmax; `None` for the full softmax.
    pub top_k: Option<usize>,
    /// MiVOS's kernelised memory with this σ (on the 1/16 grid; published 5.6), for the
    /// dot-product methods (MiVOS, QDMN). Needs `top_k`.
    pub kernel: Option<f64>,
    /// Which frames are written, evicted and read (every-N by default).
    pub policy: PolicyConfig,
    /// Read memory in chunks of this many positions (bounded working memory for very long
    /// memories, same result); `None` reads in one piece.
    pub chunk: Option<usize>,
}

impl Default for PropagatorConfig {
    fn default() -> Self {
        Self::davis()
    }
}

/// MiVOS's kernel width σ on the 1/16 grid.
pub const KERNEL_SIGMA: f64 = 5.6;

impl PropagatorConfig {
    /// STCN's DAVIS schedule: every 5th frame (absolute index), top-20, no temporary frame.
    pub fn davis() -> Self {
        PropagatorConfig { top_k: Some(20), kernel: None, policy: PolicyConfig { every: 5, rule: FrameRule::Absolute, ..PolicyConfig::default() }, chunk: None }
    }

    /// STCN's YouTube-VOS schedule: 5 frames after the last memory frame, top-20.
    pub fn youtube() -> Self {
        let mut c = Self::davis();
        c.policy.rule = FrameRule::Relative;
        c
    }

    /// The published evaluation settings of a method on a benchmark (methods.md §1.8).
    pub fn for_method(method: Method, benchmark: Benchmark) -> Self {
        let rule = if benchmark == Benchmark::YouTube { FrameRule::Relative } else { FrameRule::Absolute };
        let base = |top_k: usize, every: usize, kind: PolicyKind, rule: FrameRule| PropagatorConfig {
            top_k: Some(top_k),
            kernel: None,
            policy: PolicyConfig { kind, every, rule, ..PolicyConfig::default() },
            chunk: None,
        };
        match method {
            Method::Stcn => base(20, 5, PolicyKind::EveryN, rule),
            Method::Mivos => base(50, 5, PolicyKind::Mivos, FrameRule::Relative),
            Method::Qdmn => {
                let mut c = base(50, 5, PolicyKind::Qdmn, FrameRule::Relative);
                let youtube = benchmark == Benchmark::YouTube;
                c.policy.threshold = Some(if youtube { 0.75 } else { 0.8 });
                c.policy.capacity = Some(if youtube { 12 } else { 22 });
                c
            }
            Method::Gsfm => base(if benchmark == Benchmark::Davis2016 { 20 } else { 50 }, 3, PolicyKind::EveryN, rule),
            Method::Imsfr => {
                let (top_k, every, sampling) = match benchmark {
                    Benchmark::Davis2017 => (4, 6, ImsfrSampling::davis17()),
                    Benchmark::Davis2016 => (12, 6, ImsfrSampling::davis16()),
                    Benchmark::YouTube => (20, 3, ImsfrSampling::youtube()),
                };
                let mut c = base(top_k, every, PolicyKind::Imsfr, rule);
                c.policy.sampling = ImsfrSampling { read_newest: false, ..sampling };
                c
            }
        }
    }

    /// This configuration with another policy kind (its other settings kept).
    pub fn with_policy(mut self, kind: PolicyKind) -> Self {
        if kind != self.policy.kind {
            // Settings the new policy would refuse go: a QDMN threshold, a bounded capacity.
            if kind != PolicyKind::Qdmn {
                self.policy.threshold = None;
            }
            if !kind.bounded() {
                self.policy.capacity = None;
            }
        }
        self.policy.kind = kind;
        self
    }

    /// Checks the settings against a method; errors name the setting.
    pub fn validate(&self, method: Method) -> Result<(), String> {
        if self.top_k == Some(0) {
            return Err("top_k must be at least 1".into());
        }
        if self.chunk == Some(0) {
            return Err("chunk must be at least 1 memory position".into());
        }
        if let Some(sigma) = self.kernel {
            if !method.supports_kernel() {
                return Err(format!("the kernelised memory is MiVOS's and QDMN's (dot-product affinity); {method} has none"));
            }
            if !(sigma.is_finite() && sigma > 0.0) {
                return Err(format!("kernel sigma {sigma} must be a positive number"));
            }
            if self.top_k.is_none() {
                return Err("the kernelised memory needs a top-k".into());
            }
        }
        Ok(())
    }
}

/// What can go wrong while propagating.
#[derive(Debug, thiserror::Error)]
pub enum PropagatorError {
    /// A frame of another size than the video's first.
    #[error("frame {frame} is {got_w}x{got_h} (WxH) but the video started at {want_w}x{want_h}")]
    FrameSizeChanged {
        /// The frame's index.
        frame: usize,
        /// Its width.
        got_w: usize,
        /// Its height.
        got_h: usize,
        /// The expected width.
        want_w: usize,
        /// The expected height.
        want_h: usize,
    },
    /// A mask of another size than its frame.
    #[error("the mask given with frame {frame} is {got_w}x{got_h} (WxH) but the frame is {want_w}x{want_h}")]
    MaskSize {
        /// The frame's index.
        frame: usize,
        /// Its width.
        got_w: usize,
        /// Its height.
        got_h: usize,
        /// The expected width.
        want_w: usize,
        /// The expected height.
        want_h: usize,
    },
    /// A new mask for an object already tracked.
    #[error("frame {frame}: object {id} is already tracked")]
    AlreadyTracked {
        /// The frame's index.
        frame: usize,
        /// The object's label.
        id: u8,
    },
    /// The configuration is invalid.
    #[error("invalid propagator configuration: {0}")]
    Config(String),
    /// A frame without pixels.
    #[error("empty frame (0x0)")]
    EmptyFrame,
    /// A memory read or write failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Tensor data could not be read back.
    #[error("tensor data: {0}")]
    Data(String),
}

/// The result of one frame.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// Index of the frame in the stream (0 for the first frame given).
    pub index: usize,
    /// Probabilities `[K + 1, H, W]` at the frame's size, background first.
    pub probs: Array3<f32>,
    /// The label of each probability channel (`ids[0] = 0`).
    pub ids: Vec<u8>,
    /// Argmax of `probs`, as labels.
    pub labels: LabelMap,
}

/// One object group's memory, as [`Propagator::groups`] shows it.
#[derive(Debug)]
pub struct GroupView<'a> {
    /// The group's object labels.
    pub objects: Vec<u8>,
    /// The group's policy, with its state.
    pub policy: &'a dyn MemoryPolicy,
    /// The bank's stored frames in storage order, each with its [`memvos_memory::Usage`].
    pub stored: Vec<StoredFrame>,
    /// Frames given as full annotations after the bank's first: kept outside the policy.
    pub permanent: Vec<usize>,
}

struct Group {
    bank: MemoryBank,
    policy: Box<dyn MemoryPolicy>,
    /// Channel indices (0-based over objects) of this group's objects.
    objects: Vec<usize>,
    /// Stream indices of entries no policy may evict (frames given as full annotations after
    /// the bank's first); the policy never sees them and every read includes them.
    permanent: Vec<usize>,
}

impl Group {
    /// What the policy sees of the bank: the first entry and the entries it may evict, with
    /// their positions in the bank.
    fn view(&self) -> (Vec<StoredFrame>, Vec<usize>) {
        let stored = self.bank.stored();
        let mut frames = Vec::with_capacity(stored.len());
        let mut positions = Vec::with_capacity(stored.len());
        for (i, s) in stored.iter().enumerate() {
            if i == 0 || !self.permanent.contains(&s.frame) {
                frames.push(*s);
                positions.push(i);
            }
        }
        (frames, positions)
    }

    /// Bank positions a query at `index` reads: the policy's choice, then every permanent entry.
    fn read_positions(&mut self, index: usize) -> Vec<usize> {
        let (view, positions) = self.view();
        let mut read: Vec<usize> = self.policy.read(index, &view).into_iter().filter_map(|p| positions.get(p).copied()).collect();
        let stored = self.bank.stored();
        read.extend(stored.iter().enumerate().skip(1).filter(|(_, s)| self.permanent.contains(&s.frame)).map(|(i, _)| i));
        read
    }
}

struct Pending {
    index: usize,
    image: Tensor<4>,
    query: Query,
    /// Object probabilities `[K, 1, H_pad, W_pad]`.
    objects: Tensor<4>,
    /// Objects were added on this frame: it is always memorised.
    interaction: bool,
    /// The frame was given as a full annotation: memorised in every bank, never evicted.
    permanent: bool,
}

/// One group's quality from its objects' scores, as the memory policy sees it: QDMN's head
/// (`from_head`) averages all objects' scores, except on an annotated frame, whose non-zero
/// scores set the reference; the proxy skips empty objects (score 0) on every frame.
pub fn group_quality(scores: &[f32], from_head: bool, annotated: bool) -> f32 {
    let kept: Vec<f32> = if from_head && !annotated { scores.to_vec() } else { scores.iter().copied().filter(|&q| q > 0.0).collect() };
    if kept.is_empty() { 0.0 } else { kept.iter().sum::<f32>() / kept.len() as f32 }
}

/// Streams a video through a [`MemoryNetwork`].
///
/// Each group of objects that enter together has its own bank and its own copy of the memory
/// policy ([`MemoryPolicy::fresh`]). Policies that use quality ([`MemoryPolicy::uses_quality`])
/// get the network's quality scores where it has a quality head (QDMN: the mean over the
/// group's objects, non-zero scores only on the annotated frame, as QDMN normalises), and
/// otherwise a proxy per frame: the mean over the group's non-empty objects of the soft IoU
/// between the probability map `p` and its binarisation `b = [p > 0.5]`,
/// `Σ p·b / (Σ b + Σ p·(1 − b))` (1 for a confident mask, lower for a hesitant one).
pub struct Propagator {
    net: SharedNetwork,
    cfg: PropagatorConfig,
    policy: Box<dyn MemoryPolicy>,
    device: Device,
    next_index: usize,
    size: Option<(usize, usize)>,
    pad: Pad,
    ids: Vec<u8>,
    groups: Vec<Group>,
    pending: Option<Pending>,
    /// The CPU kernels' map buffers of this stream, reused from frame to frame.
    arena: Arc<Arena>,
}

fn data_err(e: impl std::fmt::Debug) -> PropagatorError {
    PropagatorError::Data(format!("{e:?}"))
}

fn select_objects(t: &Tensor<4>, objects: &[usize], total: usize, device: &Device) -> Tensor<4> {
    if objects.len() == total && objects.iter().enumerate().all(|(i, &o)| i == o) {
        return t.clone();
    }
    let idx: Vec<i64> = objects.iter().map(|&o| o as i64).collect();
    let sel = upload::<1, Int>(TensorData::new(idx, [objects.len()]), device);
    t.clone().select(0, sel)
}

impl Propagator {
    /// A propagator whose policy is built from `cfg.policy`. It owns a handle to the network
    /// (`Arc::new(net)`, or a clone of one shared by several streams), so it can be kept in a
    /// struct and moved to another thread.
    pub fn new(net: SharedNetwork, cfg: PropagatorConfig, device: &Device) -> Result<Self, PropagatorError> {
        let policy = cfg.policy.build().map_err(PropagatorError::Config)?;
        Self::with_policy(net, cfg, policy, device)
    }

    /// A propagator with any policy, including one of the user's own (`cfg.policy` is ignored).
    pub fn with_policy(net: SharedNetwork, cfg: PropagatorConfig, policy: Box<dyn MemoryPolicy>, device: &Device) -> Result<Self, PropagatorError> {
        cfg.validate(net.method()).map_err(PropagatorError::Config)?;
        Ok(Propagator {
            net,
            cfg,
            policy,
            device: device.clone(),
            next_index: 0,
            size: None,
            pad: Pad::default(),
            ids: Vec::new(),
            groups: Vec::new(),
            pending: None,
            arena: Arena::new(),
        })
    }

    /// The buffers memvos's CPU kernels keep for this stream's next frames (the maps a step
    /// makes and drops on the calling thread; freed with the propagator).
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// The labels of the tracked objects, in channel order.
    pub fn objects(&self) -> &[u8] {
        &self.ids
    }

    /// Frames memorised so far (permanent entries of the oldest bank).
    pub fn memory_frames(&self) -> usize {
        self.groups.first().map(|g| g.bank.frames()).unwrap_or(0)
    }

    /// Frames given so far (the index the next frame gets).
    pub fn frames_seen(&self) -> usize {
        self.next_index
    }

    /// The policy in use (its name, say): the prototype each object group's bank gets a
    /// [`Fresh`] copy of.
    pub fn policy(&self) -> &dyn MemoryPolicy {
        self.policy.as_ref()
    }

    /// Each object group's memory as its policy sees it, oldest group first: the objects, the
    /// group's own policy (its state: downcast with `(p as &dyn Any).downcast_ref::<Fifo>()`)
    /// and the stored frames with their read history.
    pub fn groups(&self) -> Vec<GroupView<'_>> {
        self.groups
            .iter()
            .map(|g| GroupView { objects: g.objects.iter().filter_map(|&o| self.ids.get(o).copied()).collect(), policy: g.policy.as_ref(), stored: g.bank.stored(), permanent: g.permanent.clone() })
            .collect()
    }

    /// The network driven.
    pub fn network(&self) -> &SharedNetwork {
        &self.net
    }

    /// Segments the next frame. `new_objects` holds the masks of objects that appear in this
    /// frame (labels other than 0 and 255; each must be new). Returns `None` while no object
    /// is tracked yet (frames before the first mask).
    pub fn step(&mut self, frame: &Frame, new_objects: Option<&LabelMap>) -> Result<Option<StepOutput>, PropagatorError> {
        let Some((index, probs, ids)) = self.step_probs(frame, new_objects)? else { return Ok(None) };
        let labels = LabelMap::from_argmax(probs.view(), &ids).map_err(data_err)?;
        Ok(Some(StepOutput { index, probs, ids, labels }))
    }

    /// [`Self::step`] without the argmax: `(frame index, probabilities [K + 1, H, W], channel
    /// labels)`, for a caller that resizes the probabilities first.
    pub fn step_probs(&mut self, frame: &Frame, new_objects: Option<&LabelMap>) -> Result<Option<(usize, Array3<f32>, Vec<u8>)>, PropagatorError> {
        let arena = Arc::clone(&self.arena);
        arena.enter(|| self.step_probs_in_arena(frame, new_objects))
    }

    /// [`Self::step_probs`] inside the stream's arena.
    fn step_probs_in_arena(&mut self, frame: &Frame, new_objects: Option<&LabelMap>) -> Result<Option<(usize, Array3<f32>, Vec<u8>)>, PropagatorError> {
        let index = self.next_index;
        let (h, w) = (frame.height(), frame.width());
        if h == 0 || w == 0 {
            return Err(PropagatorError::EmptyFrame);
        }
        match self.size {
            None => {
                self.size = Some((h, w));
                self.pad = Pad::to_multiple(h, w, 16).map_err(|e| PropagatorError::Config(e.to_string()))?;
            }
            Some((wh, ww)) if (wh, ww) != (h, w) => {
                return Err(PropagatorError::FrameSizeChanged { frame: index, got_w: w, got_h: h, want_w: ww, want_h: wh });
            }
            _ => {}
        }
        let new_ids: Vec<u8> = match new_objects {
            Some(m) => {
                if (m.height(), m.width()) != (h, w) {
                    return Err(PropagatorError::MaskSize { frame: index, got_w: m.width(), got_h: m.height(), want_w: w, want_h: h });
                }
                let ids = m.object_ids();
                if let Some(&id) = ids.iter().find(|id| self.ids.contains(id)) {
                    return Err(PropagatorError::AlreadyTracked { frame: index, id });
                }
                ids
            }
            None => Vec::new(),
        };
        self.next_index += 1;
        if self.ids.is_empty() && new_ids.is_empty() {
            return Ok(None);
        }

        let image = self.tensor(pad_chw(frame.to_normalized().view(), self.pad))?;
        let previous = match &self.pending {
            Some(p) if self.net.uses_previous_mask() => Some(p.objects.clone().max_dim(0)),
            _ => None,
        };
        self.flush_pending(&image)?;
        let query = self.net.encode_query(image.clone(), previous);

        // Propagate the tracked objects: `full` is `[K + 1, 1, H_pad, W_pad]`, background first.
        let mut full: Option<Tensor<4>> = None;
        if !self.ids.is_empty() {
            let mut readouts = Vec::with_capacity(self.groups.len());
            for g in &mut self.groups {
                let positions = g.read_positions(index);
                readouts.push(self.net.read_memory(&query, &g.bank, &positions)?);
                if g.policy.uses_usage() {
                    g.bank.record_usage(query.k16.clone(), Some(&positions))?;
                }
            }
            let logits = self.net.decode(&query, Tensor::cat(readouts, 0));
            full = Some(aggregate(sigmoid(logits)));
        }

        // Bring in the new objects: their masks overwrite the propagated probabilities.
        if let Some(mask) = new_objects.filter(|_| !new_ids.is_empty()) {
            let onehot = self.tensor(pad_chw(mask.one_hot(&new_ids).view(), self.pad))?;
            let [_, kn, hp, wp] = onehot.dims();
            let onehot = onehot.reshape([kn, 1, hp, wp]);
            let combined = match full.take() {
                Some(old) => {
                    let old = old.narrow(0, 1, self.ids.len());
                    let covered = onehot.clone().sum_dim(0).greater_elem(0.5).float();
                    let keep = covered.neg().add_scalar(1.0);
                    Tensor::cat(vec![old * keep, onehot], 0)
                }
                None => onehot,
            };
            let first = self.ids.len();
            self.ids.extend(&new_ids);
            let read = self.read_config(hp, wp);
            self.groups.push(Group { bank: MemoryBank::new(read), policy: self.policy.fresh(), objects: (first..self.ids.len()).collect(), permanent: Vec::new() });
            full = Some(aggregate(combined));
        }
        let full = full.ok_or_else(|| PropagatorError::Data("no objects".into()))?;
        let objects = full.clone().narrow(0, 1, self.ids.len());

        self.pending = Some(Pending { index, image, query, objects, interaction: !new_ids.is_empty(), permanent: false });
        self.output(index, full).map(Some)
    }

    /// Segments the next frame from its complete annotation `labels` (every object in it; 255
    /// is void): the output is the annotation itself; labels not tracked yet start new objects,
    /// tracked objects take the annotation's mask (an object absent from it is empty from this
    /// frame on), and the frame becomes permanent memory of every bank, which no policy evicts.
    pub fn step_annotated(&mut self, frame: &Frame, labels: &LabelMap) -> Result<StepOutput, PropagatorError> {
        let index = self.next_index;
        let (h, w) = (frame.height(), frame.width());
        if (labels.height(), labels.width()) != (h, w) {
            return Err(PropagatorError::MaskSize { frame: index, got_w: labels.width(), got_h: labels.height(), want_w: w, want_h: h });
        }
        let mut clean = labels.clone();
        clean.labels.mapv_inplace(|v| if v == 255 { 0 } else { v });
        let new_ids: Vec<u8> = clean.object_ids().into_iter().filter(|id| !self.ids.contains(id)).collect();
        if self.ids.is_empty() {
            // Nothing tracked yet: the plain path (new objects, first entries of their bank).
            let out = self.step(frame, Some(&clean))?;
            if let Some(p) = self.pending.as_mut() {
                p.permanent = true;
            }
            return out.ok_or_else(|| PropagatorError::Data("an annotation without objects starts nothing".into()));
        }
        // Tracked objects first, then the new ones: their masks are the annotation's.
        let mut new_mask = clean.clone();
        new_mask.labels.mapv_inplace(|v| if new_ids.contains(&v) { v } else { 0 });
        let out = self.step(frame, (!new_ids.is_empty()).then_some(&new_mask))?.ok_or_else(|| PropagatorError::Data("no objects".into()))?;
        let onehot = self.tensor(pad_chw(clean.one_hot(&self.ids).view(), self.pad))?;
        let [_, k, hp, wp] = onehot.dims();
        let full = aggregate(onehot.reshape([k, 1, hp, wp]));
        if let Some(p) = self.pending.as_mut() {
            p.objects = full.clone().narrow(0, 1, k);
            p.interaction = true;
            p.permanent = true;
        }
        let (i, probs, ids) = self.output(out.index, full)?;
        let labels = LabelMap::from_argmax(probs.view(), &ids).map_err(data_err)?;
        Ok(StepOutput { index: i, probs, ids, labels })
    }

    /// The stream indices stored in each object group's memory (permanent entries), oldest
    /// group first.
    pub fn stored_frames(&self) -> Vec<Vec<usize>> {
        self.groups.iter().map(|g| g.bank.stored().iter().map(|s| s.frame).collect()).collect()
    }

    /// How a new bank reads, for padded frames of `hp × wp`.
    fn read_config(&self, hp: usize, wp: usize) -> ReadConfig {
        let selection = match (self.cfg.top_k, self.cfg.kernel) {
            (Some(k), Some(sigma)) => Selection::Kernelized { k, sigma, h: hp / 16, w: wp / 16 },
            (Some(k), None) => Selection::TopK(k),
            (None, _) => Selection::Full,
        };
        ReadConfig { similarity: self.net.similarity(), selection, chunk: self.cfg.chunk }
    }

    /// Offers the previous frame to each group's policy and writes it where they say so.
    /// `next` is the frame that follows it (the one being segmented now).
    fn flush_pending(&mut self, next: &Tensor<4>) -> Result<(), PropagatorError> {
        let Some(p) = self.pending.take() else { return Ok(()) };
        let encode = |p: &Pending| {
            let next = self.net.uses_next_frame().then(|| next.clone());
            self.net.encode_memory(p.image.clone(), &p.query, p.objects.clone(), next)
        };
        let wants_quality = self.groups.iter().any(|g| g.policy.uses_quality());
        let mut encoded: Option<MemoryEncoding> = None;
        let (quality, from_head) = if !wants_quality {
            (None, false)
        } else if self.net.has_quality_head() {
            let e = encode(&p);
            let q = e.quality.clone();
            encoded = Some(e);
            (q, true)
        } else {
            (Some(self.quality(&p.objects)?), false)
        };
        let mut decisions = Vec::with_capacity(self.groups.len());
        for g in &mut self.groups {
            let q = quality.as_ref().map(|qs| {
                let scores: Vec<f32> = g.objects.iter().filter_map(|&o| qs.get(o).copied()).collect();
                group_quality(&scores, from_head, p.interaction)
            });
            let (view, positions) = g.view();
            let decision = if p.permanent && !view.is_empty() {
                // A full annotation after the bank's first entry: kept outside the policy.
                g.permanent.push(p.index);
                Write::Permanent { evict: Vec::new() }
            } else {
                match g.policy.write(&Candidate { frame: p.index, quality: q, annotated: p.interaction }, &view) {
                    Write::Permanent { evict } => Write::Permanent { evict: evict.into_iter().filter_map(|e| positions.get(e).copied()).collect() },
                    other => other,
                }
            };
            decisions.push((decision, q));
        }
        if decisions.iter().all(|(d, _)| *d == Write::Skip) {
            self.groups.iter_mut().for_each(|g| g.bank.clear_temporary());
            return Ok(());
        }
        let enc = match encoded {
            Some(e) => e,
            None => encode(&p),
        };
        let total = self.ids.len();
        let per_object = self.net.key_kind() == KeyKind::PerObject;
        for (g, (decision, q)) in self.groups.iter_mut().zip(decisions) {
            let pick = |t: &Tensor<4>| select_objects(t, &g.objects, total, &self.device);
            let key = if per_object { pick(&enc.key) } else { enc.key.clone() };
            let value = pick(&enc.value);
            let aux = enc.aux.as_ref().map(pick);
            match decision {
                Write::Skip => g.bank.clear_temporary(),
                Write::Temporary => g.bank.set_temporary_with_aux(p.index, key, value, aux)?,
                Write::Permanent { evict } => {
                    g.bank.evict(&evict)?;
                    g.bank.push_with_aux(p.index, q, key, value, aux)?;
                }
            }
        }
        Ok(())
    }

    /// Per-object quality proxy (see [`Propagator`]) of probabilities `[K, 1, H, W]`.
    fn quality(&self, objects: &Tensor<4>) -> Result<Vec<f32>, PropagatorError> {
        let [k, _, h, w] = objects.dims();
        let p: Tensor<2> = objects.clone().reshape([k, h * w]);
        let b = p.clone().greater_elem(0.5).float();
        let inter = (p.clone() * b.clone()).sum_dim(1);
        let union = b.clone().sum_dim(1) + (p * b.neg().add_scalar(1.0)).sum_dim(1);
        // One copy to the host: intersections and unions side by side.
        let both = download(Tensor::cat(vec![inter, union], 1)).try_to_vec::<f32>().map_err(data_err)?;
        Ok(both.chunks_exact(2).map(|iu| if iu[1] > 0.0 { iu[0] / iu[1] } else { 0.0 }).collect())
    }

    fn tensor(&self, a: Array3<f32>) -> Result<Tensor<4>, PropagatorError> {
        let (c, h, w) = a.dim();
        let v = a.into_raw_vec_and_offset().0;
        Ok(upload(TensorData::new(v, [1, c, h, w]), &self.device))
    }

    fn output(&self, index: usize, probs: Tensor<4>) -> Result<(usize, Array3<f32>, Vec<u8>), PropagatorError> {
        let [c, _, hp, wp] = probs.dims();
        let v = download(probs).try_to_vec::<f32>().map_err(data_err)?;
        let padded = Array3::from_shape_vec((c, hp, wp), v).map_err(data_err)?;
        let p = self.pad;
        let probs = padded.slice(s![.., p.top..hp - p.bottom, p.left..wp - p.right]).to_owned();
        let mut ids = vec![0u8];
        ids.extend(&self.ids);
        Ok((index, probs, ids))
    }
}
