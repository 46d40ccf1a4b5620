//! The loops the example binaries run, composed from the crates: choose a device, load a
//! network, stream a video through a [`Propagator`], and time it as the papers do (frames in
//! memory before the clock starts, label maps back on the host before it stops, I/O excluded).

use std::path::PathBuf;

use burn::tensor::Device;
use memvos_data::frame::{Frame, LabelMap, resize_bicubic, resize_bilinear, resize_nearest, youtube_inference_size};
use memvos_data::layout::Video;
use memvos_data::{DataError, Palette};
use memvos_eval::FpsMeter;
use memvos_memory::PolicyKind;
use memvos_model::{Propagator, PropagatorConfig, PropagatorError, Stcn, WeightError, load_stcn};

use crate::device::{DeviceChoice, DeviceError, select};

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("video {video}: {source}")]
    Propagate { video: String, source: PropagatorError },
    #[error("video {video} has no annotated frame (no mask to start from) in {path}")]
    NoMask { video: String, path: PathBuf },
}

/// The methods memvos can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    Stcn,
}

/// The options every runner takes.
#[derive(Clone, Debug, clap::Args)]
pub struct ModelArgs {
    /// Network to run.
    #[arg(long, value_enum, default_value = "stcn")]
    pub method: Method,
    /// Weights: the published `.pth`, a `.safetensors` with the same names, or a burnpack `.bpk`.
    #[arg(long)]
    pub weights: PathBuf,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Top-k of the memory read (default: the method's).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Memorise every N-th frame (default: the method's).
    #[arg(long)]
    pub mem_every: Option<usize>,
    /// Keep the previous frame as temporary memory.
    #[arg(long)]
    pub include_last: bool,
    /// Memory policy: every-n, mivos, qdmn, imsfr, fifo or reservoir (default: the method's every-n).
    #[arg(long)]
    pub policy: Option<PolicyKind>,
    /// Frames a bounded policy (qdmn, fifo, reservoir) keeps, the first frame included.
    #[arg(long)]
    pub capacity: Option<usize>,
    /// Seed of the randomised policies (imsfr, reservoir).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Read memory in chunks of this many positions (bounded working memory; same result).
    #[arg(long)]
    pub chunk: Option<usize>,
}

/// A loaded network on its device.
pub struct Loaded {
    pub net: Stcn,
    pub device: Device,
    /// One line saying which device runs.
    pub device_line: String,
}

impl ModelArgs {
    /// Picks the device (printing nothing) and loads the weights.
    pub fn load(&self) -> Result<Loaded, RunError> {
        let selected = select(self.device)?;
        let net = match self.method {
            Method::Stcn => load_stcn(&self.weights, &selected.device)?,
        };
        Ok(Loaded { net, device: selected.device, device_line: selected.description })
    }

    /// The method's schedule with this run's overrides.
    pub fn schedule(&self, base: PropagatorConfig) -> PropagatorConfig {
        let mut cfg = base;
        cfg.top_k = self.top_k.or(cfg.top_k);
        cfg.chunk = self.chunk.or(cfg.chunk);
        let p = &mut cfg.policy;
        p.kind = self.policy.unwrap_or(p.kind);
        p.every = self.mem_every.unwrap_or(p.every);
        p.include_last |= self.include_last;
        p.capacity = self.capacity.or(p.capacity);
        p.seed = self.seed;
        cfg
    }
}

/// A video in memory: its frames and, where given, masks of objects that appear there.
pub struct LoadedVideo {
    pub name: String,
    pub frame_names: Vec<String>,
    pub frames: Vec<Frame>,
    pub masks: Vec<Option<LabelMap>>,
}

/// Which annotations start objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Annotations {
    /// Only the first frame's (DAVIS).
    FirstFrame,
    /// Every annotated frame's; objects already tracked are ignored there (YouTube-VOS).
    Every,
}

/// Decodes a listed video (frames and annotations, sizes checked).
pub fn load_video(video: &Video, which: Annotations) -> Result<LoadedVideo, RunError> {
    let mut frames = Vec::with_capacity(video.len());
    let mut masks = Vec::with_capacity(video.len());
    for i in 0..video.len() {
        let want = which == Annotations::Every || i == 0;
        let (frame, mask) = if want { video.read_pair(i)? } else { (video.read_frame(i)?, None) };
        frames.push(frame);
        masks.push(mask);
    }
    if masks.iter().all(Option::is_none) {
        let path = video.frames.first().and_then(|f| f.image.clone()).unwrap_or_default();
        return Err(RunError::NoMask { video: video.name.clone(), path });
    }
    Ok(LoadedVideo { name: video.name.clone(), frame_names: video.frames.iter().map(|f| f.name.clone()).collect(), frames, masks })
}

/// Streams a video; returns `(frame index, labels)` for every frame from the first mask on.
/// `short_side` resizes frames so their shorter side has that length (YouTube-VOS: 480) and the
/// outputs back to the frame size. The time between the first step and the last label map is
/// credited to `fps`.
pub fn run_video(
    loaded: &Loaded,
    cfg: &PropagatorConfig,
    video: &LoadedVideo,
    short_side: Option<usize>,
    fps: &mut FpsMeter,
) -> Result<Vec<(usize, LabelMap)>, RunError> {
    let perr = |source| RunError::Propagate { video: video.name.clone(), source };
    let mut prop = Propagator::new(&loaded.net, cfg.clone(), &loaded.device).map_err(perr)?;
    let mut out = Vec::with_capacity(video.frames.len());
    let _ = loaded.device.sync();
    fps.start();
    for (i, frame) in video.frames.iter().enumerate() {
        let (h, w) = (frame.height(), frame.width());
        let target = short_side.map(|s| youtube_inference_size(h, w, s)).filter(|&t| t != (h, w));
        let new = video.masks[i].as_ref().map(|m| {
            // Labels already tracked are not new objects here.
            let mut m = m.clone();
            m.labels.mapv_inplace(|v| if v == 255 || prop.objects().contains(&v) { 0 } else { v });
            m
        });
        let new = new.filter(|m| !m.object_ids().is_empty());
        let step = match target {
            None => prop.step(frame, new.as_ref()).map_err(perr)?,
            Some((th, tw)) => {
                let small = Frame::from_unit_chw(resize_bicubic(frame.to_unit_chw().view(), th, tw).view())?;
                let small_mask = new.as_ref().map(|m| resize_nearest(m, th, tw));
                prop.step(&small, small_mask.as_ref()).map_err(perr)?.map(|mut s| {
                    s.probs = resize_bilinear(s.probs.view(), h, w);
                    s
                })
            }
        };
        if let Some(s) = step {
            let labels = if target.is_some() { LabelMap::from_argmax(s.probs.view(), &s.ids)? } else { s.labels };
            out.push((i, labels));
        }
    }
    let _ = loaded.device.sync();
    fps.stop(out.len() as u64);
    Ok(out)
}

/// The palette of a video's first annotation, or DAVIS's.
pub fn palette_of(video: &Video) -> Palette {
    video
        .annotated()
        .first()
        .and_then(|&i| video.frames[i].annotation.as_ref())
        .and_then(|p| memvos_data::read_mask(p).ok())
        .and_then(|m| m.palette)
        .unwrap_or_default()
}
