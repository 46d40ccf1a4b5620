//! The inference core: what every runner does per frame around the [`Propagator`], in one place
//! an embedding crate can use and get the examples' results.
//!
//! Per frame: the annotation given with the frame is reduced to objects not tracked yet (void
//! 255 and already-tracked labels become background); with a short side set (YouTube-VOS
//! inference: 480), the frame is resized bicubically so its shorter side has that length and
//! the mask by nearest neighbour; the propagator's probabilities come back bilinearly resized to
//! the frame's size; one argmax gives the labels.

use burn::tensor::Device;
use memvos_data::DataError;
use memvos_data::frame::{Frame, LabelMap, resize_bicubic, resize_bilinear, resize_nearest, youtube_inference_size};
use ndarray::Array3;

use crate::propagator::{Propagator, PropagatorConfig, PropagatorError, SharedNetwork};

/// The largest short side accepted (8K video has 4,320).
pub const MAX_SHORT_SIDE: usize = 4320;
/// The largest side of a frame after resizing.
pub const MAX_SIDE: usize = 16384;

/// What can go wrong in the inference core.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The propagator failed.
    #[error(transparent)]
    Propagate(#[from] PropagatorError),
    /// A frame or mask could not be converted.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A short side outside the supported range.
    #[error("--short-side {0} must be in 16..={MAX_SHORT_SIDE}")]
    ShortSide(usize),
    /// A resize that would exceed the largest side.
    #[error("a {w}x{h} (WxH) frame resized to a short side of {short} would be {tw}x{th}, longer than {MAX_SIDE} pixels on a side")]
    TooLarge {
        /// The frame's width.
        w: usize,
        /// The frame's height.
        h: usize,
        /// The short side asked for.
        short: usize,
        /// The resized width.
        tw: usize,
        /// The resized height.
        th: usize,
    },
}

/// One segmented frame.
#[derive(Clone, Debug)]
pub struct Segmented {
    /// Index of the frame in the stream.
    pub index: usize,
    /// Probabilities `[K + 1, H, W]` at the frame's size, background first.
    pub probs: Array3<f32>,
    /// The label of each probability channel (`ids[0] = 0`).
    pub ids: Vec<u8>,
    /// The argmax of `probs`, as labels, at the frame's size.
    pub labels: LabelMap,
}

/// Streams one video: a [`Propagator`] plus the per-frame handling around it.
pub struct InferenceCore {
    prop: Propagator,
    short_side: Option<usize>,
}

impl InferenceCore {
    /// A core for one video. `short_side` resizes frames so their shorter side has that length
    /// (and the outputs back); `None` runs at the frame's size. The core owns its handle to the
    /// network, so it can live in a struct or move to another thread.
    pub fn new(net: SharedNetwork, cfg: PropagatorConfig, short_side: Option<usize>, device: &Device) -> Result<Self, InferenceError> {
        Self::with_propagator(Propagator::new(net, cfg, device)?, short_side)
    }

    /// A core around a propagator built by the caller (with a policy of its own, say).
    pub fn with_propagator(prop: Propagator, short_side: Option<usize>) -> Result<Self, InferenceError> {
        if let Some(s) = short_side.filter(|s| !(16..=MAX_SHORT_SIDE).contains(s)) {
            return Err(InferenceError::ShortSide(s));
        }
        Ok(InferenceCore { prop, short_side })
    }

    /// The propagator inside.
    pub fn propagator(&self) -> &Propagator {
        &self.prop
    }

    /// The size the network sees for a frame of `h × w`.
    pub fn inference_size(&self, h: usize, w: usize) -> Result<(usize, usize), InferenceError> {
        let Some(short) = self.short_side else { return Ok((h, w)) };
        if h == 0 || w == 0 {
            return Ok((h, w));
        }
        let (th, tw) = youtube_inference_size(h, w, short);
        if th > MAX_SIDE || tw > MAX_SIDE {
            return Err(InferenceError::TooLarge { w, h, short, tw, th });
        }
        Ok((th, tw))
    }

    /// Takes the next frame with its complete annotation (see [`Propagator::step_annotated`]):
    /// the output labels are the annotation; the frame becomes permanent memory. An annotation
    /// without objects, before any object is tracked, only advances the stream.
    pub fn step_annotated(&mut self, frame: &Frame, labels: &LabelMap) -> Result<Option<Segmented>, InferenceError> {
        let (h, w) = (frame.height(), frame.width());
        if (labels.height(), labels.width()) != (h, w) {
            let index = self.prop.frames_seen();
            return Err(PropagatorError::MaskSize { frame: index, got_w: labels.width(), got_h: labels.height(), want_w: w, want_h: h }.into());
        }
        if self.prop.objects().is_empty() && labels.object_ids().iter().all(|&v| v == 255) {
            self.prop.step(frame, None)?;
            return Ok(None);
        }
        let (th, tw) = self.inference_size(h, w)?;
        let out = if (th, tw) == (h, w) {
            self.prop.step_annotated(frame, labels)?
        } else {
            let small = Frame::from_unit_chw(resize_bicubic(frame.to_unit_chw().view(), th, tw).view())?;
            self.prop.step_annotated(&small, &resize_nearest(labels, th, tw))?
        };
        let probs = if (th, tw) == (h, w) { out.probs } else { resize_bilinear(out.probs.view(), h, w) };
        let mut exact = labels.clone();
        exact.labels.mapv_inplace(|v| if v == 255 { 0 } else { v });
        Ok(Some(Segmented { index: out.index, probs, ids: out.ids, labels: exact }))
    }

    /// Segments the next frame. `annotation` is the frame's mask, if it has one: its objects
    /// that are not tracked yet start here; the others are ignored. `None` until a first
    /// object is given.
    pub fn step(&mut self, frame: &Frame, annotation: Option<&LabelMap>) -> Result<Option<Segmented>, InferenceError> {
        let (h, w) = (frame.height(), frame.width());
        if let Some(m) = annotation.filter(|m| (m.height(), m.width()) != (h, w)) {
            let index = self.prop.frames_seen();
            return Err(PropagatorError::MaskSize { frame: index, got_w: m.width(), got_h: m.height(), want_w: w, want_h: h }.into());
        }
        let new = annotation
            .map(|m| {
                let mut m = m.clone();
                let tracked = self.prop.objects();
                m.labels.mapv_inplace(|v| if v == 255 || tracked.contains(&v) { 0 } else { v });
                m
            })
            .filter(|m| !m.object_ids().is_empty());
        let (th, tw) = self.inference_size(h, w)?;
        let out = if (th, tw) == (h, w) {
            self.prop.step_probs(frame, new.as_ref())?
        } else {
            let small = Frame::from_unit_chw(resize_bicubic(frame.to_unit_chw().view(), th, tw).view())?;
            let small_mask = new.as_ref().map(|m| resize_nearest(m, th, tw));
            self.prop.step_probs(&small, small_mask.as_ref())?.map(|(i, p, ids)| (i, resize_bilinear(p.view(), h, w), ids))
        };
        let Some((index, probs, ids)) = out else { return Ok(None) };
        let labels = LabelMap::from_argmax(probs.view(), &ids)?;
        Ok(Some(Segmented { index, probs, ids, labels }))
    }
}
