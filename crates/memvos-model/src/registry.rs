//! The method registry: how a checkpoint is recognised and which network it builds. The five
//! built-in methods are entries like any other, so a downstream crate adds a sixth (or a variant
//! of one) by implementing [`MethodEntry`] and [`Registry::register`]ing it; [`crate::Model::load`]
//! then recognises its checkpoints and runs its network on the same streams.
//!
//! ```
//! use std::sync::Arc;
//! use memvos_model::registry::{Checkpoint, Loaded, MethodEntry, Registry};
//! use memvos_model::{Method, WeightError, load_network};
//! use memvos_model::burn::tensor::Device;
//!
//! /// STCN weights saved with the method id "stcn-warm" (a toy variant).
//! struct WarmStcn;
//!
//! impl MethodEntry for WarmStcn {
//!     fn id(&self) -> &str {
//!         "stcn-warm"
//!     }
//!     fn detect(&self, checkpoint: &Checkpoint<'_>) -> bool {
//!         checkpoint.method_tag() == Some("stcn-warm")
//!     }
//!     fn load(&self, checkpoint: &Checkpoint<'_>, device: &Device) -> Result<Loaded, WeightError> {
//!         // A real variant wraps the network in its own `MemoryNetwork` here.
//!         Ok(Loaded::Custom(Arc::new(load_network(checkpoint.path, Some(Method::Stcn), device)?)))
//!     }
//! }
//!
//! let mut registry = Registry::builtin();
//! registry.register(WarmStcn).unwrap();
//! assert_eq!(registry.ids(), ["stcn-warm", "mivos", "stcn", "qdmn", "gsfm", "imsfr"]);
//! assert!(registry.register(WarmStcn).is_err(), "an id is registered once");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;

use crate::network::Method;
use crate::propagator::SharedNetwork;
use crate::weights::{self, WeightError};
use crate::{AnyNetwork, load_network};

/// What a [`MethodEntry`] sees of a checkpoint before anything is loaded.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoint<'a> {
    /// The file.
    pub path: &'a Path,
    /// Its tensor names, sorted (PyTorch names for `.pth`/`.safetensors`, module paths for `.bpk`).
    pub keys: &'a [String],
    /// Its metadata (safetensors `__metadata__`; empty for other formats).
    pub metadata: &'a BTreeMap<String, String>,
}

impl Checkpoint<'_> {
    /// The method id memvos wrote into the file's metadata (`memvos.method`), if any.
    pub fn method_tag(&self) -> Option<&str> {
        self.metadata.get(weights::METHOD_KEY).map(String::as_str)
    }

    /// Whether some tensor name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.keys.iter().any(|k| k.starts_with(prefix))
    }
}

/// A network a [`MethodEntry`] built.
pub enum Loaded {
    /// One of memvos's five networks: memvos can save it, train it and run it on its CPU kernels.
    Builtin(AnyNetwork),
    /// Any other network: streams drive it through [`crate::MemoryNetwork`] on burn's ops.
    Custom(SharedNetwork),
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loaded::Builtin(n) => write!(f, "Builtin({})", n.method()),
            Loaded::Custom(n) => write!(f, "Custom({})", n.name()),
        }
    }
}

/// One method of the registry: recognises its checkpoints and builds its network from them.
pub trait MethodEntry: Send + Sync {
    /// The lower-case id used on command lines and in checkpoint metadata ("stcn").
    fn id(&self) -> &str;

    /// Whether `checkpoint` holds this method's weights.
    fn detect(&self, checkpoint: &Checkpoint<'_>) -> bool;

    /// Builds the network and loads the checkpoint into it (strictly: a missing, unexpected or
    /// misshapen tensor is an error).
    fn load(&self, checkpoint: &Checkpoint<'_>, device: &Device) -> Result<Loaded, WeightError>;
}

/// A built-in method as a registry entry.
#[derive(Clone, Copy, Debug)]
pub struct Builtin(pub Method);

impl MethodEntry for Builtin {
    fn id(&self) -> &str {
        self.0.id()
    }

    fn detect(&self, checkpoint: &Checkpoint<'_>) -> bool {
        match checkpoint.method_tag() {
            Some(tag) => tag == self.0.id(),
            None => Method::detect(checkpoint.keys) == Some(self.0),
        }
    }

    fn load(&self, checkpoint: &Checkpoint<'_>, device: &Device) -> Result<Loaded, WeightError> {
        load_network(checkpoint.path, Some(self.0), device).map(Loaded::Builtin)
    }
}

/// Why an entry could not be registered.
#[derive(Debug, thiserror::Error)]
#[error("method id {id:?} is already registered")]
pub struct DuplicateId {
    /// The id.
    pub id: String,
}

/// The methods [`crate::Model::load`] knows, in the order they are asked to recognise a
/// checkpoint: registered entries first (the newest first, so a variant wins over the method it
/// derives from), then the built-ins.
#[derive(Clone)]
pub struct Registry {
    entries: Vec<Arc<dyn MethodEntry>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.ids()).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// The five built-in methods.
    pub fn builtin() -> Self {
        Registry { entries: Method::ALL.into_iter().map(|m| Arc::new(Builtin(m)) as Arc<dyn MethodEntry>).collect() }
    }

    /// Adds a method, asked before every entry already there. Ids are unique.
    pub fn register(&mut self, entry: impl MethodEntry + 'static) -> Result<&mut Self, DuplicateId> {
        if self.get(entry.id()).is_some() {
            return Err(DuplicateId { id: entry.id().to_string() });
        }
        self.entries.insert(0, Arc::new(entry));
        Ok(self)
    }

    /// The ids, in the order entries are asked.
    pub fn ids(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.id()).collect()
    }

    /// The entry of an id (case-insensitive).
    pub fn get(&self, id: &str) -> Option<&dyn MethodEntry> {
        self.entries.iter().find(|e| e.id().eq_ignore_ascii_case(id)).map(|e| e.as_ref())
    }

    /// Whether the registry holds more than the built-in methods.
    pub fn has_custom(&self) -> bool {
        self.entries.len() > Method::ALL.len()
    }

    /// The first entry that recognises `checkpoint`.
    pub fn detect(&self, checkpoint: &Checkpoint<'_>) -> Option<&dyn MethodEntry> {
        self.entries.iter().find(|e| e.detect(checkpoint)).map(|e| e.as_ref())
    }

    /// Loads the checkpoint at `path` as method `id`, or as the method that recognises it.
    /// Returns the id used and the network. A file no entry recognises is
    /// [`WeightError::UnknownMethod`].
    pub fn load(&self, path: &Path, id: Option<&str>, device: &Device) -> Result<(String, Loaded), WeightError> {
        let keys = weights::read_keys(path)?;
        let metadata = weights::read_metadata(path)?;
        let checkpoint = Checkpoint { path, keys: &keys, metadata: &metadata };
        let entry = match id {
            Some(id) => self.get(id).ok_or_else(|| WeightError::Config { path: path.to_path_buf(), reason: format!("unknown method {id:?} (registered: {})", self.ids().join(", ")) })?,
            None => self.detect(&checkpoint).ok_or_else(|| WeightError::UnknownMethod { path: path.to_path_buf(), sample: keys.iter().take(5).cloned().collect() })?,
        };
        Ok((entry.id().to_string(), entry.load(&checkpoint, device)?))
    }
}
