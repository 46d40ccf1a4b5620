//! The streaming engine users embed (methods.md §1.6, §1.8): built from a network and a
//! config, fed one frame at a time with optional masks of objects that appear in it, returning
//! per-object probabilities and a label map.
//!
//! Objects entering at the same frame share a memory bank whose first entry is that frame
//! (exactly STCN's per-object banks, whose keys are shared and whose entries differ only by
//! start frame). A frame's memory entry is encoded when the *next* frame arrives, so the last
//! frame of a video is never memorised and the caller need not say which frame is last.
//! Which frames are written, evicted and read is the [`MemoryPolicy`]'s decision
//! ([`memvos_memory::policy`]); the configuration names one, or [`Propagator::with_policy`]
//! takes any.

use burn::tensor::{Device, Tensor, TensorData};
use memvos_data::frame::{Frame, LabelMap, Pad, pad_chw};
use memvos_memory::{Candidate, FrameRule, MemoryBank, MemoryError, MemoryPolicy, PolicyConfig, PolicyKind, ReadConfig, Write};
use ndarray::{Array3, s};
use serde::{Deserialize, Serialize};

use crate::aggregate::aggregate;
use crate::stcn::Stcn;

/// The memory schedule and read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PropagatorConfig {
    /// Top-k of the affinity softmax; `None` for the full softmax.
    pub top_k: Option<usize>,
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

impl PropagatorConfig {
    /// STCN's DAVIS schedule: every 5th frame (absolute index), top-20, no temporary frame.
    pub fn davis() -> Self {
        PropagatorConfig { top_k: Some(20), policy: PolicyConfig { every: 5, rule: FrameRule::Absolute, ..PolicyConfig::default() }, chunk: None }
    }

    /// STCN's YouTube-VOS schedule: 5 frames after the last memory frame, top-20.
    pub fn youtube() -> Self {
        let mut c = Self::davis();
        c.policy.rule = FrameRule::Relative;
        c
    }

    /// This configuration with another policy kind (its other settings kept).
    pub fn with_policy(mut self, kind: PolicyKind) -> Self {
        self.policy.kind = kind;
        self
    }
}

/// What can go wrong while propagating.
#[derive(Debug, thiserror::Error)]
pub enum PropagatorError {
    #[error("frame {frame} is {got_w}x{got_h} (WxH) but the video started at {want_w}x{want_h}")]
    FrameSizeChanged { frame: usize, got_w: usize, got_h: usize, want_w: usize, want_h: usize },
    #[error("the mask given with frame {frame} is {got_w}x{got_h} (WxH) but the frame is {want_w}x{want_h}")]
    MaskSize { frame: usize, got_w: usize, got_h: usize, want_w: usize, want_h: usize },
    #[error("frame {frame}: object {id} is already tracked")]
    AlreadyTracked { frame: usize, id: u8 },
    #[error("invalid propagator configuration: {0}")]
    Config(String),
    #[error("empty frame (0x0)")]
    EmptyFrame,
    #[error(transparent)]
    Memory(#[from] MemoryError),
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

struct Group {
    bank: MemoryBank,
    policy: Box<dyn MemoryPolicy>,
    /// Channel indices (0-based over objects) of this group's objects.
    objects: Vec<usize>,
}

struct Pending {
    index: usize,
    image: Tensor<4>,
    key: Tensor<4>,
    f16: Tensor<4>,
    /// Object probabilities `[K, 1, H_pad, W_pad]`.
    objects: Tensor<4>,
    /// Objects were added on this frame: it is always memorised.
    interaction: bool,
}

/// Streams a video through an STCN network.
///
/// Each group of objects that enter together has its own bank and its own copy of the memory
/// policy ([`MemoryPolicy::fresh`]). Policies that use quality ([`MemoryPolicy::uses_quality`])
/// get, for a network without a quality head, a proxy per frame: the mean over the group's
/// non-empty objects of the soft IoU between the probability map `p` and its binarisation
/// `b = [p > 0.5]`, `Σ p·b / (Σ b + Σ p·(1 − b))` (1 for a confident mask, lower for a hesitant one).
pub struct Propagator<'n> {
    net: &'n Stcn,
    cfg: PropagatorConfig,
    policy: Box<dyn MemoryPolicy>,
    device: Device,
    next_index: usize,
    size: Option<(usize, usize)>,
    pad: Pad,
    ids: Vec<u8>,
    groups: Vec<Group>,
    pending: Option<Pending>,
}

fn data_err(e: impl std::fmt::Debug) -> PropagatorError {
    PropagatorError::Data(format!("{e:?}"))
}

impl<'n> Propagator<'n> {
    /// A propagator whose policy is built from `cfg.policy`.
    pub fn new(net: &'n Stcn, cfg: PropagatorConfig, device: &Device) -> Result<Self, PropagatorError> {
        let policy = cfg.policy.build().map_err(PropagatorError::Config)?;
        Self::with_policy(net, cfg, policy, device)
    }

    /// A propagator with any policy, including one of the user's own (`cfg.policy` is ignored).
    pub fn with_policy(net: &'n Stcn, cfg: PropagatorConfig, policy: Box<dyn MemoryPolicy>, device: &Device) -> Result<Self, PropagatorError> {
        if cfg.top_k == Some(0) {
            return Err(PropagatorError::Config("top_k must be at least 1".into()));
        }
        if cfg.chunk == Some(0) {
            return Err(PropagatorError::Config("chunk must be at least 1 memory position".into()));
        }
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
        })
    }

    /// The labels of the tracked objects, in channel order.
    pub fn objects(&self) -> &[u8] {
        &self.ids
    }

    /// Frames memorised so far (permanent entries of the oldest bank).
    pub fn memory_frames(&self) -> usize {
        self.groups.first().map(|g| g.bank.frames()).unwrap_or(0)
    }

    /// Segments the next frame. `new_objects` holds the masks of objects that appear in this
    /// frame (labels other than 0 and 255; each must be new). Returns `None` while no object
    /// is tracked yet (frames before the first mask).
    pub fn step(&mut self, frame: &Frame, new_objects: Option<&LabelMap>) -> Result<Option<StepOutput>, PropagatorError> {
        let index = self.next_index;
        let (h, w) = (frame.height(), frame.width());
        if h == 0 || w == 0 {
            return Err(PropagatorError::EmptyFrame);
        }
        match self.size {
            None => {
                self.size = Some((h, w));
                self.pad = Pad::to_multiple(h, w, 16);
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

        self.flush_pending()?;
        let image = self.tensor(pad_chw(frame.to_normalized().view(), self.pad))?;
        let key = self.net.encode_key(image.clone());

        // Propagate the tracked objects: `full` is `[K + 1, 1, H_pad, W_pad]`, background first.
        let mut full: Option<Tensor<4>> = None;
        if !self.ids.is_empty() {
            let mut readouts = Vec::with_capacity(self.groups.len());
            for g in &mut self.groups {
                let positions = g.policy.read(index, &g.bank.stored());
                readouts.push(g.bank.read(key.k16.clone(), Some(&positions))?);
            }
            let logits = self.net.decode(Tensor::cat(readouts, 0), &key);
            full = Some(aggregate(burn::tensor::activation::sigmoid(logits)));
        }

        // Bring in the new objects: their masks overwrite the propagated probabilities.
        if let Some(mask) = new_objects.filter(|_| !new_ids.is_empty()) {
            let onehot = self.tensor(pad_chw(mask.one_hot(&new_ids).view(), self.pad))?;
            let [kn, hp, wp] = {
                let d = onehot.dims();
                [d[1], d[2], d[3]]
            };
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
            let read = ReadConfig { chunk: self.cfg.chunk, ..ReadConfig::stcn(self.cfg.top_k) };
            self.groups.push(Group { bank: MemoryBank::new(read), policy: self.policy.fresh(), objects: (first..self.ids.len()).collect() });
            full = Some(aggregate(combined));
        }
        let full = full.ok_or_else(|| PropagatorError::Data("no objects".into()))?;
        let objects = full.clone().narrow(0, 1, self.ids.len());

        self.pending = Some(Pending {
            index,
            image,
            key: key.k16.clone(),
            f16: key.features.f16.clone(),
            objects,
            interaction: !new_ids.is_empty(),
        });
        self.output(index, full).map(Some)
    }

    /// The policy in use (its name, say).
    pub fn policy(&self) -> &dyn MemoryPolicy {
        self.policy.as_ref()
    }

    /// Offers the previous frame to each group's policy and writes it where they say so.
    fn flush_pending(&mut self) -> Result<(), PropagatorError> {
        let Some(p) = self.pending.take() else { return Ok(()) };
        let quality = if self.groups.iter().any(|g| g.policy.uses_quality()) { Some(self.quality(&p.objects)?) } else { None };
        let mut decisions = Vec::with_capacity(self.groups.len());
        for g in &mut self.groups {
            let q = quality.as_ref().map(|qs| {
                let nonzero: Vec<f32> = g.objects.iter().map(|&o| qs[o]).filter(|&q| q > 0.0).collect();
                if nonzero.is_empty() { 0.0 } else { nonzero.iter().sum::<f32>() / nonzero.len() as f32 }
            });
            let decision = g.policy.write(&Candidate { frame: p.index, quality: q, annotated: p.interaction }, &g.bank.stored());
            decisions.push((decision, q));
        }
        if decisions.iter().all(|(d, _)| *d == Write::Skip) {
            self.groups.iter_mut().for_each(|g| g.bank.clear_temporary());
            return Ok(());
        }
        let values = self.net.encode_value(p.image, p.f16, p.objects);
        let [_, cv, h, w] = values.dims();
        for (g, (decision, q)) in self.groups.iter_mut().zip(decisions) {
            let idx: Vec<i64> = g.objects.iter().map(|&o| o as i64).collect();
            let sel = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(idx.clone(), [idx.len()]), &self.device);
            let v = values.clone().select(0, sel).reshape([idx.len(), cv, h, w]);
            match decision {
                Write::Skip => g.bank.clear_temporary(),
                Write::Temporary => g.bank.set_temporary(p.index, p.key.clone(), v)?,
                Write::Permanent { evict } => {
                    g.bank.evict(&evict)?;
                    g.bank.push(p.index, q, p.key.clone(), v)?;
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
        let inter = inter.into_data().try_to_vec::<f32>().map_err(data_err)?;
        let union = union.into_data().try_to_vec::<f32>().map_err(data_err)?;
        Ok(inter.iter().zip(&union).map(|(&i, &u)| if u > 0.0 { i / u } else { 0.0 }).collect())
    }

    fn tensor(&self, a: Array3<f32>) -> Result<Tensor<4>, PropagatorError> {
        let (c, h, w) = a.dim();
        let v = a.into_raw_vec_and_offset().0;
        Ok(Tensor::from_data(TensorData::new(v, [1, c, h, w]), &self.device))
    }

    fn output(&self, index: usize, probs: Tensor<4>) -> Result<StepOutput, PropagatorError> {
        let [c, _, hp, wp] = probs.dims();
        let v = probs.into_data().try_to_vec::<f32>().map_err(data_err)?;
        let padded = Array3::from_shape_vec((c, hp, wp), v).map_err(data_err)?;
        let p = self.pad;
        let probs = padded.slice(s![.., p.top..hp - p.bottom, p.left..wp - p.right]).to_owned();
        let mut ids = vec![0u8];
        ids.extend(&self.ids);
        let labels = LabelMap::from_argmax(probs.view(), &ids).map_err(data_err)?;
        Ok(StepOutput { index, probs, ids, labels })
    }
}
