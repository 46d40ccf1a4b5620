//! The loops the example binaries run, composed from the crates: choose a device, load a
//! network, stream a video through an [`InferenceCore`], and time it as the papers do (frames
//! in memory before the clock starts, label maps back on the host before it stops, I/O
//! excluded). Everything per frame lives in `memvos-model`; this module holds only command-line
//! arguments, device selection and timing.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use memvos_data::frame::{Frame, LabelMap};
use memvos_data::layout::Video;
use memvos_data::{DataError, Palette};
use memvos_eval::FpsMeter;
use memvos_memory::PolicyKind;
use memvos_model::inference::InferenceError;
use memvos_model::cpu::{ConvAlgo, Precision};
use memvos_model::{Benchmark, InferenceCore, Kernels, MemoryNetwork, Method, Model, ModelError, ModelOptions, ModelSource, PropagatorConfig, PropagatorError, SharedNetwork, WeightError};

use crate::device::{DeviceChoice, DeviceError, select};

/// Errors of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The device could not be had.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The weights could not be loaded.
    #[error(transparent)]
    Weights(#[from] WeightError),
    /// Frames or masks could not be read or written.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Segmenting a video failed.
    #[error("video {video}: {source}")]
    Propagate {
        /// The video.
        video: String,
        /// What the inference core said.
        source: InferenceError,
    },
    /// A video without a mask to start from.
    #[error("video {video}: no mask shows an object to start from (looked at {path} and the other annotations)")]
    NoMask {
        /// The video.
        video: String,
        /// The file looked at.
        path: PathBuf,
    },
    /// A flag's value is invalid.
    #[error("{flag}: {reason}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An output path cannot be used.
    #[error("{flag} {path}: {reason}")]
    Output {
        /// The flag.
        flag: &'static str,
        /// The file looked at.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// `--method`: a method, or `auto` to recognise it from the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodChoice {
    /// Recognise the method from the checkpoint.
    Auto,
    /// MiVOS.
    Mivos,
    /// STCN.
    Stcn,
    /// QDMN.
    Qdmn,
    /// GSFM.
    Gsfm,
    /// IMSFR.
    Imsfr,
}

impl MethodChoice {
    /// The method asked for (`None` for `auto`).
    pub fn method(self) -> Option<Method> {
        match self {
            MethodChoice::Auto => None,
            MethodChoice::Mivos => Some(Method::Mivos),
            MethodChoice::Stcn => Some(Method::Stcn),
            MethodChoice::Qdmn => Some(Method::Qdmn),
            MethodChoice::Gsfm => Some(Method::Gsfm),
            MethodChoice::Imsfr => Some(Method::Imsfr),
        }
    }
}

/// The options every runner takes.
#[derive(Clone, Debug, clap::Args)]
pub struct ModelArgs {
    /// Network to run: stcn, mivos, qdmn, gsfm, imsfr, or auto (recognised from the checkpoint).
    #[arg(long, value_enum, default_value = "auto")]
    pub method: MethodChoice,
    /// Weights: the published `.pth`, a `.safetensors` with the same names, a burnpack `.bpk`,
    /// or a published name (stcn, mivos, qdmn: from the cache folder `weights download` fills)
    /// (default: the small STCN shipped with memvos, trained on synthetic videos).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// cpu, cuda[:N], wgpu[:N] or auto (CUDA, then a hardware wgpu adapter, then the CPU).
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
    /// MiVOS's kernelised memory (σ = 5.6 on the 1/16 grid; MiVOS and QDMN only).
    #[arg(long)]
    pub kernel: bool,
    /// Memory policy: every-n, mivos, qdmn, imsfr, fifo or reservoir (default: the method's).
    #[arg(long)]
    pub policy: Option<PolicyKind>,
    /// Frames a bounded policy (qdmn, fifo, reservoir) keeps, the first frame included (QDMN's
    /// memory_thr 20 is capacity 22).
    #[arg(long)]
    pub capacity: Option<usize>,
    /// The qdmn policy's quality threshold in (0, 1], relative to the first frame's quality
    /// (default 0.8 on DAVIS, 0.75 on YouTube-VOS).
    #[arg(long)]
    pub quality_threshold: Option<f32>,
    /// Seed of the randomised policies (imsfr, reservoir).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Read memory in chunks of this many positions (bounded working memory; same result).
    #[arg(long)]
    pub chunk: Option<usize>,
    /// Kernels on the CPU: memvos's (BatchNorm folded, weights packed once, Winograd 3×3 convs;
    /// every built-in method) or burn's own ops. Other devices always run burn's.
    #[arg(long, value_enum, default_value = "memvos")]
    pub cpu_kernels: CpuKernels,
    /// How memvos's CPU kernels store the weights: fp32, or bf16 (half the weight memory;
    /// bfloat16 products on AMX or AVX-512 BF16 where the CPU has them, else widened to fp32;
    /// memvos's CPU kernels only).
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
    /// Threads of the CPU kernels and of burn's CPU backend (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `--cpu-kernels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuKernels {
    /// memvos's CPU path with Winograd F(4×4, 3×3) (F(2×2) for convolutions of ≥ 512×512
    /// channels outside STCN's decoder).
    Memvos,
    /// memvos's CPU path with Winograd F(4×4, 3×3) on every 3×3 convolution (fastest, most memory).
    MemvosF4All,
    /// memvos's CPU path with Winograd F(2×2, 3×3) (smaller rounding error).
    MemvosF2,
    /// memvos's CPU path with every convolution as im2col + matrix product (most exact).
    MemvosGemm,
    /// burn's ops.
    Burn,
}

impl CpuKernels {
    /// The CPU path's options (`None`: burn's ops), for tools that tune them further.
    pub fn options(self) -> Option<memvos_model::cpu::CpuOptions> {
        match self.kernels() {
            Kernels::Memvos(conv) => Some(conv.into()),
            Kernels::Burn | Kernels::Auto => None,
        }
    }

    /// The model's kernel choice.
    pub fn kernels(self) -> Kernels {
        match self {
            CpuKernels::Memvos => Kernels::Memvos(ConvAlgo::F4),
            CpuKernels::MemvosF4All => Kernels::Memvos(ConvAlgo::F4All),
            CpuKernels::MemvosF2 => Kernels::Memvos(ConvAlgo::F2),
            CpuKernels::MemvosGemm => Kernels::Memvos(ConvAlgo::Gemm),
            CpuKernels::Burn => Kernels::Burn,
        }
    }
}

/// Most threads `--threads` takes.
pub const MAX_THREADS: usize = 1024;

fn check_threads(n: usize) -> Result<(), RunError> {
    if n == 0 || n > MAX_THREADS {
        return Err(RunError::Flag { flag: "--threads", reason: format!("{n}: expected 1 to {MAX_THREADS}") });
    }
    Ok(())
}

/// Runs the CPU kernels and burn's CPU backend on `n` threads (rayon's global pool, which both
/// use). Call it before anything runs; a second call with another count is an error.
pub fn use_threads(n: usize) -> Result<(), RunError> {
    check_threads(n)?;
    match rayon::ThreadPoolBuilder::new().num_threads(n).build_global() {
        Ok(()) => Ok(()),
        Err(_) if rayon::current_num_threads() == n => Ok(()),
        Err(e) => Err(RunError::Flag { flag: "--threads", reason: format!("{n}: the thread pool already runs {} threads ({e})", rayon::current_num_threads()) }),
    }
}

/// Threads the CPU kernels and burn's CPU backend run on.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// A loaded model and the line saying which device runs it.
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// The device it runs on.
    pub device: Device,
    /// One line saying which device runs.
    pub device_line: String,
}

impl Loaded {
    /// The model's method.
    pub fn method(&self) -> Method {
        self.model.method()
    }

    /// The network the runners drive (the CPU path where there is one, else burn's).
    pub fn network(&self) -> SharedNetwork {
        self.model.shared()
    }

    /// "device (method, weights)", printed by the runners.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.device_line, self.model.describe())
    }
}

impl ModelArgs {
    /// The options with the command line's defaults, for `weights` and `method`.
    pub fn new(weights: Option<PathBuf>, method: MethodChoice) -> Self {
        ModelArgs {
            method,
            weights,
            device: DeviceChoice::Auto,
            top_k: None,
            mem_every: None,
            include_last: false,
            kernel: false,
            policy: None,
            capacity: None,
            quality_threshold: None,
            seed: 0,
            chunk: None,
            cpu_kernels: CpuKernels::Memvos,
            precision: Precision::Fp32,
            threads: None,
        }
    }

    /// Checks the flags that do not need the network (before anything heavy is loaded).
    pub fn check(&self) -> Result<(), RunError> {
        let bad = |flag, reason: String| Err(RunError::Flag { flag, reason });
        if self.top_k == Some(0) {
            return bad("--top-k", "must be at least 1".into());
        }
        if self.mem_every == Some(0) {
            return bad("--mem-every", "must be at least 1".into());
        }
        if self.chunk == Some(0) {
            return bad("--chunk", "must be at least 1 memory position".into());
        }
        if let Some(t) = self.threads {
            check_threads(t)?;
        }
        if let Some(t) = self.quality_threshold {
            if !(t > 0.0 && t <= 1.0) {
                return bad("--quality-threshold", format!("{t} is outside (0, 1]"));
            }
        }
        if let Some(m) = self.method.method().filter(|m| self.kernel && !m.supports_kernel()) {
            return bad("--kernel", format!("the kernelised memory is MiVOS's and QDMN's; {m} has none"));
        }
        Ok(())
    }

    /// Picks the device (printing nothing) and loads the weights (the method from `--method`,
    /// or recognised from the file).
    pub fn load(&self) -> Result<Loaded, RunError> {
        self.check()?;
        if let Some(t) = self.threads {
            use_threads(t)?;
        }
        let selected = select(self.device)?;
        let opts = ModelOptions { device: selected.device.clone(), method: self.method.method(), kernels: self.cpu_kernels.kernels(), precision: self.precision, ..ModelOptions::default() };
        // A bare published name that is not a file here is the published checkpoint.
        let published = self.weights.as_deref().and_then(|w| w.to_str()).filter(|w| !Path::new(w).exists() && memvos_model::published::find(w).is_some());
        let source = match (&self.weights, published) {
            (_, Some(name)) => ModelSource::Published(name),
            (Some(w), None) => ModelSource::Path(w),
            (None, None) => ModelSource::Default,
        };
        let model = Model::load(source, &opts).map_err(|e| match e {
            ModelError::Weights(w) => RunError::Weights(w),
            ModelError::Published(p) => RunError::Flag { flag: "--weights", reason: p.to_string() },
            p @ ModelError::Precision { .. } => RunError::Flag { flag: "--precision", reason: p.to_string() },
            other => RunError::Flag { flag: "--cpu-kernels", reason: other.to_string() },
        })?;
        Ok(Loaded { model, device: selected.device, device_line: selected.description })
    }

    /// The loaded method's published schedule on `benchmark`, with this run's overrides.
    pub fn schedule_for(&self, method: Method, benchmark: Benchmark) -> Result<PropagatorConfig, RunError> {
        self.apply(PropagatorConfig::for_method(method, benchmark), method)
    }

    /// `base` with this run's overrides, checked against `method`; errors name the flag.
    pub fn apply(&self, base: PropagatorConfig, method: Method) -> Result<PropagatorConfig, RunError> {
        self.check()?;
        if self.kernel && !method.supports_kernel() {
            return Err(RunError::Flag { flag: "--kernel", reason: format!("the kernelised memory is MiVOS's and QDMN's; {method} has none") });
        }
        let mut cfg = base;
        cfg.top_k = self.top_k.or(cfg.top_k);
        cfg.chunk = self.chunk.or(cfg.chunk);
        if self.kernel {
            cfg.kernel = Some(memvos_model::propagator::KERNEL_SIGMA);
        }
        if let Some(kind) = self.policy {
            cfg = cfg.with_policy(kind);
        }
        let p = &mut cfg.policy;
        p.every = self.mem_every.unwrap_or(p.every);
        p.include_last |= self.include_last;
        p.capacity = self.capacity.or(p.capacity);
        p.seed = self.seed;
        if let Some(t) = self.quality_threshold {
            if p.kind != PolicyKind::Qdmn {
                return Err(RunError::Flag { flag: "--quality-threshold", reason: format!("only the qdmn policy uses it (the policy is {})", p.kind) });
            }
            p.threshold = Some(t);
        }
        if let Err(reason) = p.build() {
            let flag = if reason.contains("capacity") { "--capacity" } else { "--policy" };
            return Err(RunError::Flag { flag, reason });
        }
        cfg.validate(method).map_err(|reason| RunError::Flag { flag: "--method", reason })?;
        Ok(cfg)
    }
}

/// A video in memory: its frames and, where given, masks of objects that appear there.
pub struct LoadedVideo {
    /// The video's name.
    pub name: String,
    /// Its frames' names.
    pub frame_names: Vec<String>,
    /// Its frames.
    pub frames: Vec<Frame>,
    /// The mask given with each frame, if any.
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
    if which == Annotations::Every {
        video.check_first_appearances(&masks)?;
    }
    let has_object = masks.iter().flatten().any(|m| m.labels.iter().any(|&v| v != 0 && v != 255));
    if !has_object {
        let path = video.frames.iter().find_map(|f| f.annotation.clone()).or_else(|| video.frames.first().and_then(|f| f.image.clone())).unwrap_or_default();
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
    run_video_with(loaded, cfg, video, short_side, fps, &mut |_| {})
}

/// [`run_video`], calling `on_frame(frame index)` after each frame (progress reporting).
pub fn run_video_with(
    loaded: &Loaded,
    cfg: &PropagatorConfig,
    video: &LoadedVideo,
    short_side: Option<usize>,
    fps: &mut FpsMeter,
    on_frame: &mut dyn FnMut(usize),
) -> Result<Vec<(usize, LabelMap)>, RunError> {
    let perr = |source: InferenceError| RunError::Propagate { video: video.name.clone(), source };
    let mut core = InferenceCore::new(loaded.network(), cfg.clone(), short_side, &loaded.device).map_err(perr)?;
    let mut out = Vec::with_capacity(video.frames.len());
    let _ = loaded.device.sync();
    fps.start();
    for (i, frame) in video.frames.iter().enumerate() {
        if let Some(s) = core.step(frame, video.masks[i].as_ref()).map_err(perr)? {
            out.push((i, s.labels));
        }
        on_frame(i);
    }
    let _ = loaded.device.sync();
    fps.stop(out.len() as u64);
    Ok(out)
}

/// A propagator error as a run error of `video`.
pub fn propagate_error(video: &str, e: PropagatorError) -> RunError {
    RunError::Propagate { video: video.to_string(), source: e.into() }
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
