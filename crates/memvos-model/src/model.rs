//! One model type for code that embeds memvos: [`Model::load`] takes weights from a file, from
//! bytes or the shipped default, recognises the method, and runs on memvos's own CPU kernels
//! where they cover it (else on burn's ops) without the caller choosing. A [`Model`] is itself a
//! [`MemoryNetwork`], cheap to clone, `Send + Sync`, and what [`crate::Propagator`],
//! [`crate::InferenceCore`] and [`crate::Session`] take ([`Model::shared`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::{Device, Tensor};
use memvos_memory::{MemoryBank, MemoryError, Similarity};

use crate::cpu::{ConvAlgo, CpuOptions, Precision, accelerate};
use crate::network::{KeyKind, MemoryEncoding, MemoryNetwork, Method, Query};
use crate::propagator::{Benchmark, PropagatorConfig, SharedNetwork};
use crate::registry::{DuplicateId, Loaded, MethodEntry, Registry};
use crate::weights::WeightError;
use crate::{AnyNetwork, DEFAULT_MODEL_NAME, load_default, load_network, load_network_bytes};

/// Where a model's weights come from.
#[derive(Clone, Copy, Debug)]
pub enum ModelSource<'a> {
    /// A `.pth`, `.safetensors` (published names) or `.bpk` file.
    Path(&'a Path),
    /// The bytes of a safetensors checkpoint written by memvos; `label` names it in messages.
    Bytes {
        /// The file's bytes.
        bytes: &'a [u8],
        /// Its name in messages.
        label: &'a str,
    },
    /// The small STCN shipped inside memvos ([`crate::DEFAULT_MODEL`]).
    Default,
    /// A published checkpoint by name (`"stcn"`, `"mivos"`, `"qdmn"`: [`crate::published`]),
    /// from the cache folder it is downloaded into.
    Published(&'a str),
}

/// Which kernels run the network on the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// memvos's CPU kernels where they cover the method and the device is the CPU, else burn's
    /// ops.
    #[default]
    Auto,
    /// burn's ops everywhere.
    Burn,
    /// memvos's CPU kernels with this convolution algorithm (where they cover the method).
    Memvos(ConvAlgo),
}

/// How to load a [`Model`].
#[derive(Clone, Debug)]
pub struct ModelOptions {
    /// The device the network runs on (default: the CPU).
    pub device: Device,
    /// The method the weights must hold; `None` recognises it from the file.
    pub method: Option<Method>,
    /// CPU kernels.
    pub kernels: Kernels,
    /// How the weights are stored while running: float32 (the default) or bfloat16, which
    /// needs memvos's CPU kernels (STCN on the CPU today; an error elsewhere, never a silent
    /// float32 run).
    pub precision: Precision,
    /// The methods a checkpoint is recognised as (default: the five built-in ones). Entries
    /// registered by the caller are asked first when `method` is `None`.
    pub registry: Registry,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { device: Device::flex(), method: None, kernels: Kernels::Auto, precision: Precision::Fp32, registry: Registry::builtin() }
    }
}

/// What can go wrong loading a [`Model`].
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The weights could not be read or do not fit.
    #[error(transparent)]
    Weights(#[from] WeightError),
    /// A published name that is unknown or not downloaded.
    #[error(transparent)]
    Published(#[from] crate::published::PublishedError),
    /// A precision the chosen kernels do not offer.
    #[error("precision {precision}: {reason}")]
    Precision {
        /// The precision asked for.
        precision: Precision,
        /// Why it cannot run.
        reason: String,
    },
    /// memvos's CPU kernels were asked for and cannot run the network.
    #[error("memvos CPU kernels for {method}: {reason}")]
    Kernels {
        /// The network's method.
        method: Method,
        /// Why.
        reason: String,
    },
}

impl ModelOptions {
    /// These options with a registry that also knows `entry` (asked before the built-ins).
    pub fn with_method(mut self, entry: impl MethodEntry + 'static) -> Result<Self, DuplicateId> {
        self.registry.register(entry)?;
        Ok(self)
    }
}

/// A loaded network on its device, on the fastest path memvos has for it.
#[derive(Clone)]
pub struct Model {
    burn: Option<Arc<AnyNetwork>>,
    run: SharedNetwork,
    fast: bool,
    precision: Precision,
    device: Device,
    source: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Model({})", self.describe())
    }
}

impl Model {
    /// Loads weights (strictly: missing, unexpected or misshapen tensors are one error) and
    /// picks the kernels.
    pub fn load(source: ModelSource<'_>, options: &ModelOptions) -> Result<Model, ModelError> {
        let device = &options.device;
        let (net, label) = match source {
            ModelSource::Path(p) if options.method.is_none() && options.registry.has_custom() => {
                let label = p.display().to_string();
                match options.registry.load(p, None, device)?.1 {
                    Loaded::Builtin(net) => (net, label),
                    Loaded::Custom(_) if options.precision != Precision::Fp32 => {
                        return Err(ModelError::Precision { precision: options.precision, reason: format!("{label} is a method registered outside memvos, run as it is on burn's ops; use fp32") });
                    }
                    Loaded::Custom(net) => return Ok(Self::custom(net, label, device)),
                }
            }
            ModelSource::Path(p) => (load_network(p, options.method, device)?, p.display().to_string()),
            ModelSource::Bytes { bytes, label } => (load_network_bytes(bytes, &PathBuf::from(label), options.method, device)?, label.to_string()),
            ModelSource::Default => (load_default(options.method, device)?, DEFAULT_MODEL_NAME.to_string()),
            ModelSource::Published(name) => {
                let (published, path) = crate::published::locate(name)?;
                let method = options.method.unwrap_or(published.method);
                (load_network(&path, Some(method), device)?, format!("the published {} weights ({})", published.name, path.display()))
            }
        };
        Self::from_network(net, label, options)
    }

    /// A model around a network built or loaded by the caller (`label` names it in messages).
    pub fn from_network(net: AnyNetwork, label: impl Into<String>, options: &ModelOptions) -> Result<Model, ModelError> {
        let device = options.device.clone();
        let cpu = match options.kernels {
            Kernels::Burn => None,
            Kernels::Auto => Some(CpuOptions::default()),
            Kernels::Memvos(conv) => Some(CpuOptions::from(conv)),
        }
        .map(|o| o.with_precision(options.precision));
        let fast = match cpu {
            Some(opts) => accelerate(&net, &device, opts).map_err(|e| ModelError::Kernels { method: net.method(), reason: e.to_string() })?,
            None => None,
        };
        if options.precision != Precision::Fp32 && fast.is_none() {
            let why = match options.kernels {
                Kernels::Burn => "burn's kernels were asked for".to_string(),
                _ if !crate::cpu::runs_on(&device) => "the device is not burn's CPU backend".to_string(),
                _ => format!("memvos's CPU kernels do not run {} yet", net.method()),
            };
            return Err(ModelError::Precision { precision: options.precision, reason: format!("it needs memvos's CPU kernels, and {why}; use fp32") });
        }
        let burn = Arc::new(net);
        let (run, fast): (SharedNetwork, bool) = match fast {
            Some(f) => (Arc::from(f), true),
            None => (burn.clone(), false),
        };
        Ok(Model { burn: Some(burn), run, fast, precision: options.precision, device, source: label.into() })
    }

    /// A model around a network memvos does not know (a downstream method), run as it is on
    /// burn's ops. `label` names it in messages.
    pub fn custom(net: SharedNetwork, label: impl Into<String>, device: &Device) -> Model {
        Model { burn: None, run: net, fast: false, precision: Precision::Fp32, device: device.clone(), source: label.into() }
    }

    /// The network as a handle a stream owns.
    pub fn shared(&self) -> SharedNetwork {
        Arc::new(self.clone())
    }

    /// The built-in network on burn's ops (for saving, training, inspecting its modules);
    /// `None` for a [`Model::custom`] network.
    pub fn network(&self) -> Option<&AnyNetwork> {
        self.burn.as_deref()
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How its weights are stored while running.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Whether memvos's CPU kernels run it.
    pub fn on_cpu_kernels(&self) -> bool {
        self.fast
    }

    /// "METHOD, where the weights came from[, memvos CPU kernels]".
    pub fn describe(&self) -> String {
        let kernels = match (self.fast, self.precision) {
            (false, _) => String::new(),
            (true, Precision::Fp32) => ", memvos CPU kernels".to_string(),
            (true, p) => format!(", memvos CPU kernels, {p} weights, products in {}", memvos_cpu::bf16_products()),
        };
        format!("{}, {}{kernels}", self.run.name(), self.source)
    }
}

impl MemoryNetwork for Model {
    fn method(&self) -> Method {
        self.run.method()
    }
    fn name(&self) -> &str {
        self.run.name()
    }
    fn default_config(&self, benchmark: Benchmark) -> PropagatorConfig {
        self.run.default_config(benchmark)
    }
    fn key_kind(&self) -> KeyKind {
        self.run.key_kind()
    }
    fn similarity(&self) -> Similarity {
        self.run.similarity()
    }
    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query {
        self.run.encode_query(frame, previous)
    }
    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding {
        self.run.encode_memory(frame, query, masks, next)
    }
    fn read_memory(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> Result<Tensor<4>, MemoryError> {
        self.run.read_memory(query, bank, positions)
    }
    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        self.run.decode(query, readout)
    }
    fn has_quality_head(&self) -> bool {
        self.run.has_quality_head()
    }
    fn uses_previous_mask(&self) -> bool {
        self.run.uses_previous_mask()
    }
    fn uses_next_frame(&self) -> bool {
        self.run.uses_next_frame()
    }
}
