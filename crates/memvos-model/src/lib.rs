//! # memvos-model
//!
//! The memory networks — [`mivos`], [`stcn`], [`qdmn`], [`gsfm`], [`imsfr`] — each one file
//! behind the [`MemoryNetwork`] trait, built from shared [`blocks`] (and GSFM's [`spectral`]
//! modules); their weight import and export
//! ([`weights`], [`pth`]); soft aggregation ([`aggregate`]); the [`Propagator`], the streaming
//! engine fed one frame at a time with optional new object masks; and the [`InferenceCore`] on
//! top of it, which does what every runner does per frame (resize to a short side and back,
//! ignore masks of objects already tracked, one argmax), so an embedding crate gets the results
//! the examples get.
//!
//! ```no_run
//! use std::path::Path;
//! use memvos_data::{Frame, LabelMap};
//! use memvos_model::{Benchmark, InferenceCore, MemoryNetwork, Model, ModelOptions, ModelSource, PropagatorConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let frames: Vec<Frame> = Vec::new();
//! # let masks: Vec<Option<LabelMap>> = Vec::new();
//! let opts = ModelOptions::default(); // the CPU, method from the file, fastest kernels
//! let model = Model::load(ModelSource::Path(Path::new("stcn.pth")), &opts)?;
//! let cfg = PropagatorConfig::for_method(model.method(), Benchmark::YouTube);
//! let mut core = InferenceCore::new(model.shared(), cfg, Some(480), &opts.device)?; // None: native size
//! for (frame, mask) in frames.iter().zip(&masks) {
//!     // `mask`: the objects that first appear in this frame, if any
//!     if let Some(out) = core.step(frame, mask.as_ref())? {
//!         println!("frame {}: objects {:?}", out.index, out.labels.object_ids());
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod aggregate;
pub mod blocks;
pub mod correspond;
pub mod cpu;
#[cfg(feature = "download")]
pub mod download;
pub mod fuzzing;
pub mod gsfm;
pub mod imsfr;
pub mod inference;
pub mod mivos;
pub mod model;
pub mod network;
pub mod propagator;
pub mod session;
pub mod pth;
pub mod published;
pub mod qdmn;
pub mod registry;
pub mod spectral;
pub mod stcn;
pub mod weights;

use std::path::Path;

/// burn, as memvos builds it: name its types (`memvos_model::burn::tensor::Device`) without a
/// dependency of your own.
pub use burn;
use burn::tensor::Device;

pub use gsfm::{Gsfm, GsfmConfig};
pub use imsfr::{Imsfr, ImsfrConfig};
pub use inference::{InferenceCore, InferenceError, Segmented};
pub use mivos::{Mivos, MivosConfig};
pub use cpu::Precision;
pub use model::{Kernels, Model, ModelError, ModelOptions, ModelSource};
pub use network::{KeyKind, MemoryEncoding, MemoryNetwork, Method, Query};
pub use propagator::{Benchmark, GroupView, Propagator, PropagatorConfig, PropagatorError, SharedNetwork, StepOutput};
pub use qdmn::Qdmn;
pub use registry::{Checkpoint, Loaded, MethodEntry, Registry};
pub use session::{Direction, Fill, FrameSource, Frames, Session, SessionError, Until};
pub use stcn::{Stcn, StcnConfig};
pub use weights::WeightError;

/// A network of any method, as loaded from a checkpoint whose method is found at run time.
#[derive(Debug)]
pub enum AnyNetwork {
    /// MiVOS.
    Mivos(Mivos),
    /// STCN.
    Stcn(Stcn),
    /// QDMN.
    Qdmn(Qdmn),
    /// GSFM.
    Gsfm(Gsfm),
    /// IMSFR.
    Imsfr(Imsfr),
}

/// Runs `$body` with `$n` bound to the network inside any variant.
macro_rules! each {
    ($net:expr, $n:ident => $body:expr) => {
        match $net {
            AnyNetwork::Mivos($n) => $body,
            AnyNetwork::Stcn($n) => $body,
            AnyNetwork::Qdmn($n) => $body,
            AnyNetwork::Gsfm($n) => $body,
            AnyNetwork::Imsfr($n) => $body,
        }
    };
}

/// Whether `device` is (or wraps, under autodiff) a device of burn's wgpu backend, whose
/// buffers are limited in size (QDMN splits a layer for it).
pub fn is_wgpu(device: &Device) -> bool {
    #[cfg(feature = "wgpu")]
    {
        *device != Device::flex() && format!("{device:?}").contains("Wgpu")
    }
    #[cfg(not(feature = "wgpu"))]
    {
        let _ = device;
        false
    }
}

fn config<T: serde::de::DeserializeOwned>(json: Option<&str>) -> Result<Option<T>, String> {
    json.map(|j| serde_json::from_str(j).map_err(|e| e.to_string())).transpose()
}

impl AnyNetwork {
    /// A network of `method`, of the published shape or of the configuration `config_json`
    /// (the JSON of the method's config struct, as memvos stores it in a checkpoint).
    pub fn new(method: Method, config_json: Option<&str>, device: &Device) -> Result<Self, String> {
        Ok(match method {
            Method::Stcn => {
                let cfg: StcnConfig = config(config_json)?.unwrap_or_default();
                cfg.validate()?;
                AnyNetwork::Stcn(Stcn::with_config(&cfg, device))
            }
            Method::Mivos => AnyNetwork::Mivos(Mivos::with_config(&config(config_json)?.unwrap_or_default(), device)),
            Method::Qdmn => AnyNetwork::Qdmn(Qdmn::with_config(&config(config_json)?.unwrap_or_else(qdmn::published_config), device)),
            Method::Gsfm => AnyNetwork::Gsfm(Gsfm::with_config(&config(config_json)?.unwrap_or_default(), device)),
            Method::Imsfr => AnyNetwork::Imsfr(Imsfr::with_config(&config(config_json)?.unwrap_or_default(), device)),
        })
    }

    /// Where a network of `method` is built to be loaded for `device`: the device itself, except
    /// QDMN on wgpu, loaded on the CPU (its checkpoint holds a layer too large for a wgpu
    /// buffer) and then [`Self::placed`].
    pub fn build_device(method: Method, device: &Device) -> Device {
        if method == Method::Qdmn && is_wgpu(device) { Device::flex() } else { device.clone() }
    }

    /// This network on `device` (QDMN's large layer split for wgpu, see [`qdmn::Score`]).
    pub fn placed(self, device: &Device) -> Self {
        match self {
            AnyNetwork::Qdmn(mut q) => {
                q.score = q.score.placed(device);
                AnyNetwork::Qdmn(burn::module::Module::to_device(q, device))
            }
            AnyNetwork::Stcn(n) => AnyNetwork::Stcn(burn::module::Module::to_device(n, device)),
            AnyNetwork::Mivos(n) => AnyNetwork::Mivos(burn::module::Module::to_device(n, device)),
            AnyNetwork::Gsfm(n) => AnyNetwork::Gsfm(burn::module::Module::to_device(n, device)),
            AnyNetwork::Imsfr(n) => AnyNetwork::Imsfr(burn::module::Module::to_device(n, device)),
        }
    }

    /// The network behind the common trait.
    pub fn network(&self) -> &dyn MemoryNetwork {
        each!(self, n => n)
    }

    /// This network as a handle streams can own ([`Propagator::new`], [`InferenceCore::new`]).
    pub fn shared(self) -> propagator::SharedNetwork {
        std::sync::Arc::new(self)
    }

    /// The network's method.
    pub fn method(&self) -> Method {
        self.network().method()
    }

    /// `(PyTorch name → module path, module path → PyTorch name)` tables of a method.
    pub fn renames(method: Method) -> (Vec<(&'static str, &'static str)>, Vec<(&'static str, &'static str)>) {
        match method {
            Method::Mivos => (mivos::key_renames(), mivos::key_renames_inverse()),
            Method::Qdmn => (qdmn::key_renames(), qdmn::key_renames_inverse()),
            Method::Stcn | Method::Gsfm | Method::Imsfr => (stcn::key_renames(), stcn::key_renames_inverse()),
        }
    }

    /// Loads weights into this network, strictly (see [`weights::load`]).
    pub fn load_weights(&mut self, path: &Path) -> Result<usize, WeightError> {
        let method = self.method();
        let (fwd, inv) = Self::renames(method);
        each!(self, n => weights::load(n, path, method, &fwd, &inv))
    }

    /// The PyTorch `state_dict` names and shapes of this network (without
    /// `num_batches_tracked`).
    pub fn state_dict_entries(&self) -> Vec<(String, Vec<usize>)> {
        let (_, inv) = Self::renames(self.method());
        each!(self, n => weights::formula::state_dict_entries(n, &inv))
    }

    /// Saves the network: `.safetensors` with the published PyTorch names (and memvos's method
    /// and configuration as metadata), or `.bpk` (burn's burnpack).
    pub fn save(&self, path: &Path, config_json: Option<String>) -> Result<(), WeightError> {
        self.save_as(path, config_json, self.method().id())
    }

    /// [`Self::save`] with another method id in the metadata: how a downstream variant of a
    /// built-in network (a [`registry::MethodEntry`] of its own) marks its checkpoints. Loading
    /// such a file as the built-in method still reads its stored configuration.
    pub fn save_as(&self, path: &Path, config_json: Option<String>, method_id: &str) -> Result<(), WeightError> {
        let (_, inv) = Self::renames(self.method());
        let mut meta = vec![(weights::METHOD_KEY, method_id.to_string())];
        meta.extend(config_json.map(|c| (weights::CONFIG_KEY, c)));
        // Checkpoints hold QDMN's quality head as the published one: its first layer whole.
        let joined;
        let this = match self {
            AnyNetwork::Qdmn(q) if q.score.fc1.is_none() => {
                joined = AnyNetwork::Qdmn(q.joined());
                &joined
            }
            other => other,
        };
        match weights::Format::of(path)? {
            weights::Format::Burnpack => each!(this, n => weights::save_burnpack(n, path)),
            weights::Format::Safetensors => each!(this, n => weights::save_safetensors(n, path, &inv, &meta)),
            weights::Format::Pytorch => Err(WeightError::Write { path: path.to_path_buf(), reason: "memvos writes checkpoints as .safetensors (PyTorch names) or .bpk; .pth only for formula weights".into() }),
        }
    }
}

/// Every call goes to the network inside.
impl MemoryNetwork for AnyNetwork {
    fn method(&self) -> Method {
        each!(self, n => n.method())
    }
    fn key_kind(&self) -> KeyKind {
        self.network().key_kind()
    }
    fn similarity(&self) -> memvos_memory::Similarity {
        self.network().similarity()
    }
    fn encode_query(&self, frame: burn::tensor::Tensor<4>, previous: Option<burn::tensor::Tensor<4>>) -> Query {
        self.network().encode_query(frame, previous)
    }
    fn encode_memory(&self, frame: burn::tensor::Tensor<4>, query: &Query, masks: burn::tensor::Tensor<4>, next: Option<burn::tensor::Tensor<4>>) -> MemoryEncoding {
        self.network().encode_memory(frame, query, masks, next)
    }
    fn read_memory(&self, query: &Query, bank: &memvos_memory::MemoryBank, positions: &[usize]) -> Result<burn::tensor::Tensor<4>, memvos_memory::MemoryError> {
        self.network().read_memory(query, bank, positions)
    }
    fn decode(&self, query: &Query, readout: burn::tensor::Tensor<4>) -> burn::tensor::Tensor<4> {
        self.network().decode(query, readout)
    }
    fn has_quality_head(&self) -> bool {
        self.network().has_quality_head()
    }
    fn uses_previous_mask(&self) -> bool {
        self.network().uses_previous_mask()
    }
    fn uses_next_frame(&self) -> bool {
        self.network().uses_next_frame()
    }
}

/// The PyTorch `state_dict` names of a method's published network (without
/// `num_batches_tracked`), computed once per process.
pub fn published_names(method: Method) -> Vec<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<Method, Vec<String>>>> = OnceLock::new();
    let cache = NAMES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(method)
        .or_insert_with(|| match AnyNetwork::new(method, None, &Device::flex()) {
            Ok(net) => net.state_dict_entries().into_iter().map(|(n, _)| n).collect(),
            Err(_) => Vec::new(),
        })
        .clone()
}

/// The configuration of a method's published network as JSON (the shape
/// [`AnyNetwork::new`] takes): `StcnConfig`, `MivosConfig` (MiVOS, QDMN), `GsfmConfig`,
/// `ImsfrConfig`.
pub fn published_config_json(method: Method) -> serde_json::Value {
    let v = match method {
        Method::Stcn => serde_json::to_value(StcnConfig::published()),
        Method::Mivos => serde_json::to_value(MivosConfig::published()),
        Method::Qdmn => serde_json::to_value(qdmn::published_config()),
        Method::Gsfm => serde_json::to_value(GsfmConfig::default()),
        Method::Imsfr => serde_json::to_value(ImsfrConfig::default()),
    };
    v.unwrap_or(serde_json::Value::Null)
}

/// Loads a network from a checkpoint (`.pth`, `.safetensors` with the published names, or
/// `.bpk`). `method` `None` recognises the method from the file (memvos's metadata, else the
/// keys); an explicit method that the file does not hold is refused, naming both methods and
/// the keys that differ, before anything is built or read beyond the file's key list.
pub fn load_network(path: &Path, method: Option<Method>, device: &Device) -> Result<AnyNetwork, WeightError> {
    let method = match method {
        Some(m) => {
            let keys = weights::read_keys(path)?;
            if let Some(found) = Method::detect(&keys).filter(|&f| f != m) {
                let (missing, unexpected) = weights::key_diff(&keys, &published_names(m));
                return Err(WeightError::WrongMethod { path: path.to_path_buf(), expected: m, found, missing, unexpected });
            }
            m
        }
        None => weights::detect(path)?,
    };
    let meta = weights::read_metadata(path)?;
    // The stored configuration is this method's when the file says so, or when it names a method
    // memvos does not know (a downstream variant stores its base network's configuration).
    let same_method = meta.get(weights::METHOD_KEY).is_none_or(|m| m == method.id() || m.parse::<Method>().is_err());
    let cfg = meta.get(weights::CONFIG_KEY).filter(|_| same_method);
    let build_on = AnyNetwork::build_device(method, device);
    let mut net = AnyNetwork::new(method, cfg.map(String::as_str), &build_on).map_err(|reason| WeightError::Config { path: path.to_path_buf(), reason })?;
    net.load_weights(path)?;
    Ok(if build_on == *device { net } else { net.placed(device) })
}

/// The model shipped inside memvos, used when no weights are given: a small STCN trained on a
/// CPU on synthetic videos (its recipe, training command and scores are in the README). The
/// file carries its method and network configuration.
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../../models/memvos-small-stcn.safetensors");

/// The name the default model goes by in messages.
pub const DEFAULT_MODEL_NAME: &str = "the shipped default model (models/memvos-small-stcn.safetensors)";

/// Loads a network from the bytes of a safetensors checkpoint written by memvos (its method and
/// configuration in the metadata; `label` names it in errors).
pub fn load_network_bytes(bytes: &[u8], label: &Path, method: Option<Method>, device: &Device) -> Result<AnyNetwork, WeightError> {
    let (tensors, meta) = weights::safetensors_header_of_bytes(label, bytes)?;
    let keys: Vec<String> = tensors.into_iter().map(|(n, _, _)| n).collect();
    let found = match meta.get(weights::METHOD_KEY) {
        Some(m) => m.parse().map_err(|e: String| WeightError::Config { path: label.to_path_buf(), reason: e })?,
        None => Method::detect(&keys).ok_or_else(|| WeightError::UnknownMethod { path: label.to_path_buf(), sample: keys.iter().take(5).cloned().collect() })?,
    };
    if let Some(m) = method.filter(|&m| m != found) {
        let (missing, unexpected) = weights::key_diff(&keys, &published_names(m));
        return Err(WeightError::WrongMethod { path: label.to_path_buf(), expected: m, found, missing, unexpected });
    }
    let build_on = AnyNetwork::build_device(found, device);
    let mut net = AnyNetwork::new(found, meta.get(weights::CONFIG_KEY).map(String::as_str), &build_on).map_err(|reason| WeightError::Config { path: label.to_path_buf(), reason })?;
    let (fwd, _) = AnyNetwork::renames(found);
    each!(&mut net, n => weights::load_safetensors_bytes(n, bytes, label, found, &fwd))?;
    Ok(if build_on == *device { net } else { net.placed(device) })
}

/// The shipped default model ([`DEFAULT_MODEL`]).
pub fn load_default(method: Option<Method>, device: &Device) -> Result<AnyNetwork, WeightError> {
    load_network_bytes(DEFAULT_MODEL, Path::new(DEFAULT_MODEL_NAME), method, device)
}

/// Writes a checkpoint of `method` (published shape) filled by the parity fixtures' formula
/// (`WEIGHTS-FORMULA.md`), as `.pth` or `.safetensors` with the published names: deterministic
/// weights for demos and tests, loaded exactly like a published checkpoint.
pub fn write_formula(method: Method, path: &Path, device: &Device) -> Result<(), WeightError> {
    let net = AnyNetwork::new(method, None, device).map_err(|reason| WeightError::Write { path: path.to_path_buf(), reason })?;
    weights::formula::write_state_dict(&net.state_dict_entries(), path)
}

/// Loads an STCN network from `stcn.pth` (s012 or s03), a safetensors file with the same names,
/// or a burnpack file written by [`save_stcn`].
pub fn load_stcn(path: &Path, device: &Device) -> Result<Stcn, WeightError> {
    match load_network(path, Some(Method::Stcn), device)? {
        AnyNetwork::Stcn(n) => Ok(n),
        other => Err(WeightError::WrongMethod { path: path.to_path_buf(), expected: Method::Stcn, found: other.method(), missing: vec![], unexpected: vec![] }),
    }
}

/// Saves an STCN network: `.safetensors` with the PyTorch names of `stcn.pth`, or `.bpk`.
pub fn save_stcn(net: &Stcn, path: &Path) -> Result<(), WeightError> {
    match weights::Format::of(path)? {
        weights::Format::Burnpack => weights::save_burnpack(net, path),
        weights::Format::Safetensors => weights::save_safetensors(net, path, &stcn::key_renames_inverse(), &[(weights::METHOD_KEY, Method::Stcn.id().to_string())]),
        weights::Format::Pytorch => Err(WeightError::Write { path: path.to_path_buf(), reason: "writing .pth is not supported; use .safetensors".into() }),
    }
}

/// Writes an STCN checkpoint filled by the parity fixtures' formula (see [`write_formula`]).
pub fn write_formula_stcn(path: &Path, device: &Device) -> Result<(), WeightError> {
    write_formula(Method::Stcn, path, device)
}
