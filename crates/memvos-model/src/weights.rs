//! Weights: importing published PyTorch checkpoints (`.pth`) and safetensors files with their
//! `state_dict` names, saving and loading in safetensors (PyTorch names) or burn's own burnpack
//! format, and the deterministic formula of the parity fixtures (`WEIGHTS-FORMULA.md`).
//!
//! Loading is strict: missing tensors, unexpected tensors (other than BatchNorm's
//! `num_batches_tracked`) and shape mismatches come back together as one [`WeightError`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, BurnpackStore, KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};
use memvos_backbone::DOWNSAMPLE_RENAMES;

/// Everything that can go wrong with a weights file.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("cannot read weights {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write weights {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{path} holds {found} weights, not {expected} weights")]
    WrongMethod { path: PathBuf, expected: &'static str, found: &'static str },
    #[error("{path} does not fit the {method} network:{}", list_problems(.missing, .unexpected, .shapes))]
    Mismatch { path: PathBuf, method: &'static str, missing: Vec<String>, unexpected: Vec<String>, shapes: Vec<String> },
}

fn list_problems(missing: &[String], unexpected: &[String], shapes: &[String]) -> String {
    let mut s = String::new();
    for (what, items) in [("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)] {
        if !items.is_empty() {
            let shown: Vec<&str> = items.iter().take(20).map(String::as_str).collect();
            let more = if items.len() > 20 { format!(" … and {} more", items.len() - 20) } else { String::new() };
            s.push_str(&format!("\n  {} {what}: {}{more}", items.len(), shown.join(", ")));
        }
    }
    s
}

/// The methods whose checkpoints memvos knows, recognised by their top-level key prefixes
/// (methods.md §3.3).
pub fn detect_method(keys: &[String]) -> Option<&'static str> {
    let has = |p: &str| keys.iter().any(|k| k.starts_with(p));
    if has("conv_fusion1v.") {
        Some("IMSFR")
    } else if has("lfm.") {
        Some("GSFM")
    } else if has("aspp.") || has("score.") {
        Some("QDMN")
    } else if has("mask_rgb_encoder.") && has("kv_m_f16.") {
        Some("MiVOS")
    } else if has("key_encoder.") && has("value_encoder.") && has("key_proj.") {
        Some("STCN")
    } else {
        None
    }
}

/// PyTorch `state_dict` name → our module path, for STCN (the whole mapping; every other name
/// is equal). Applied in order.
pub fn stcn_key_renames() -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        (r"^key_encoder\.res2\.", "key_encoder.layer1."),
        (r"^value_encoder\.(conv1|bn1|layer1|layer2|layer3)\.", "value_encoder.trunk.$1."),
        (r"\.attention\.ChannelGate\.mlp\.1\.", ".attention.channel_gate.fc1."),
        (r"\.attention\.ChannelGate\.mlp\.3\.", ".attention.channel_gate.fc2."),
        (r"\.attention\.SpatialGate\.spatial\.conv\.", ".attention.spatial_gate.conv."),
    ];
    v.extend(DOWNSAMPLE_RENAMES);
    v
}

/// Our module path → PyTorch name (the inverse of [`stcn_key_renames`]), for saving.
pub fn stcn_key_renames_inverse() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"^key_encoder\.layer1\.", "key_encoder.res2."),
        (r"^value_encoder\.trunk\.", "value_encoder."),
        (r"\.attention\.channel_gate\.fc1\.", ".attention.ChannelGate.mlp.1."),
        (r"\.attention\.channel_gate\.fc2\.", ".attention.ChannelGate.mlp.3."),
        (r"\.attention\.spatial_gate\.conv\.", ".attention.SpatialGate.spatial.conv."),
        (r"\.downsample\.conv\.", ".downsample.0."),
        (r"\.downsample\.bn\.", ".downsample.1."),
    ]
}

/// Applies a rename table to one name (what the stores do to every key).
pub fn rename(name: &str, table: &[(&str, &str)]) -> String {
    let mut out = name.to_string();
    for (from, to) in table {
        if let Ok(re) = regex::Regex::new(from) {
            out = re.replace_all(&out, *to).into_owned();
        }
    }
    out
}

fn remapper(table: &[(&str, &str)]) -> KeyRemapper {
    // The patterns are constants of this module, checked by the tests.
    KeyRemapper::from_patterns(table.to_vec()).unwrap_or_default()
}

/// The weight formats memvos reads and writes, chosen by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PyTorch `torch.save` (zip or legacy pickle): `.pth`, `.pt`, `.ckpt`.
    Pytorch,
    /// safetensors with PyTorch names and layouts: `.safetensors`.
    Safetensors,
    /// burn's burnpack record: `.bpk`.
    Burnpack,
}

impl Format {
    pub fn of(path: &Path) -> Result<Self, WeightError> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "pth" | "pt" | "ckpt" | "tar" => Ok(Format::Pytorch),
            "safetensors" => Ok(Format::Safetensors),
            "bpk" | "burnpack" => Ok(Format::Burnpack),
            _ => Err(WeightError::Read { path: path.to_path_buf(), reason: "unknown extension (expected .pth, .safetensors or .bpk)".into() }),
        }
    }
}

fn check(result: ApplyResult, path: &Path, method: &'static str) -> Result<usize, WeightError> {
    let unexpected: Vec<String> = result.unused.iter().filter(|k| !k.ends_with("num_batches_tracked")).cloned().collect();
    let missing: Vec<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
    let shapes: Vec<String> = result
        .errors
        .iter()
        .map(|e| match e {
            ApplyError::ShapeMismatch { path, expected, found } => format!("{path} (expected {:?}, found {:?})", expected.as_slice(), found.as_slice()),
            other => other.to_string(),
        })
        .collect();
    if missing.is_empty() && unexpected.is_empty() && shapes.is_empty() {
        Ok(result.applied.len())
    } else {
        Err(WeightError::Mismatch { path: path.to_path_buf(), method, missing, unexpected, shapes })
    }
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> WeightError {
    WeightError::Read { path: path.to_path_buf(), reason: e.to_string() }
}

/// Loads weights into `module` from a `.pth`, `.safetensors` (PyTorch names) or `.bpk` file.
/// `renames` maps PyTorch names to module paths; `method` names the network in errors, and a
/// file recognisably of another method is refused as such. Returns the number of tensors applied.
pub fn load<M: Module + ModuleSnapshot>(module: &mut M, path: &Path, method: &'static str, renames: &[(&str, &str)]) -> Result<usize, WeightError> {
    if !path.is_file() {
        return Err(read_err(path, "no such file"));
    }
    let result = match Format::of(path)? {
        Format::Pytorch => {
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false).allow_partial(true).validate(false).remap(remapper(renames));
            refuse_other_method(&mut store, path, method, renames)?;
            module.load_from(&mut store).map_err(|e| read_err(path, e))?
        }
        Format::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .map_indices_contiguous(false)
                .allow_partial(true)
                .validate(false)
                .remap(remapper(renames));
            refuse_other_method(&mut store, path, method, renames)?;
            module.load_from(&mut store).map_err(|e| read_err(path, e))?
        }
        Format::Burnpack => {
            let mut store = BurnpackStore::from_file(path).allow_partial(true).validate(false);
            module.load_from(&mut store).map_err(|e| read_err(path, e))?
        }
    };
    check(result, path, method)
}

fn refuse_other_method<S: ModuleStore>(store: &mut S, path: &Path, method: &'static str, renames: &[(&str, &str)]) -> Result<(), WeightError> {
    let keys = store.keys().map_err(|e| read_err(path, e))?;
    // Keys come back renamed; undo the renames that change top-level prefixes before matching.
    let _ = renames;
    match detect_method(&keys) {
        Some(found) if found != method => Err(WeightError::WrongMethod { path: path.to_path_buf(), expected: method, found }),
        _ => Ok(()),
    }
}

/// Saves `module` as safetensors with PyTorch names and layouts (readable by PyTorch's
/// `safetensors.torch.load_file`), atomically.
pub fn save_safetensors<M: Module + ModuleSnapshot>(module: &M, path: &Path, inverse_renames: &[(&str, &str)]) -> Result<(), WeightError> {
    let werr = |e: &dyn std::fmt::Display| WeightError::Write { path: path.to_path_buf(), reason: e.to_string() };
    let mut store = SafetensorsStore::from_bytes(None).with_to_adapter(BurnToPyTorchAdapter).remap(remapper(inverse_renames));
    module.save_into(&mut store).map_err(|e| werr(&e))?;
    let bytes = store.get_bytes().map_err(|e| werr(&e))?;
    memvos_data::write_atomic(path, &bytes).map_err(|e| werr(&e))
}

/// Saves `module` in burn's burnpack format, atomically (written beside, then renamed).
pub fn save_burnpack<M: Module + ModuleSnapshot>(module: &M, path: &Path) -> Result<(), WeightError> {
    let werr = |e: &dyn std::fmt::Display| WeightError::Write { path: path.to_path_buf(), reason: e.to_string() };
    let tmp = path.with_extension("bpk.tmp");
    let mut store = BurnpackStore::from_file(&tmp).overwrite(true).auto_extension(false);
    module.save_into(&mut store).map_err(|e| werr(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| werr(&e))
}

/// The deterministic weights of the parity fixtures (`shared/fixtures/WEIGHTS-FORMULA.md`).
pub mod formula {
    use super::*;

    pub fn fnv1a64(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
    }

    pub fn splitmix64(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `unit(name, i)` in `[0, 1)`.
    pub fn unit(hash: u64, i: u64) -> f64 {
        (splitmix64(hash ^ i) >> 11) as f64 * (-53f64).exp2()
    }

    /// The values of tensor `name` of PyTorch shape `shape` (row-major), rounded once to f32.
    /// Returns `None` for `num_batches_tracked`, which the formula ignores.
    pub fn fill(name: &str, shape: &[usize]) -> Option<Vec<f32>> {
        let h = fnv1a64(name.as_bytes());
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product();
        let sym = |i: u64| 2.0 * unit(h, i) - 1.0;
        let f: Box<dyn Fn(u64) -> f64> = if name.ends_with("num_batches_tracked") {
            return None;
        } else if name.ends_with("running_mean") {
            Box::new(move |i| 0.1 * sym(i))
        } else if name.ends_with("running_var") {
            Box::new(move |i| 0.5 + unit(h, i))
        } else if name.ends_with(".weight") && shape.len() == 1 {
            Box::new(move |i| 0.5 + unit(h, i)) // BatchNorm weight
        } else if name.ends_with(".weight") {
            let s = (3.0 / fan_in as f64).sqrt();
            Box::new(move |i| sym(i) * s) // Conv2d / Linear weight
        } else if name.ends_with(".bias") {
            Box::new(move |i| 0.1 * sym(i)) // conv, linear and BatchNorm bias
        } else {
            Box::new(move |i| 0.02 * sym(i))
        };
        Some((0..n as u64).map(|i| f(i) as f32).collect())
    }

    /// The PyTorch `state_dict` names and shapes of a module (BatchNorm `gamma`/`beta` as
    /// `weight`/`bias`, Linear weights transposed back to `[out, in]`, names renamed by
    /// `inverse_renames`), without `num_batches_tracked`.
    pub fn state_dict_entries<M: Module + ModuleSnapshot>(module: &M, inverse_renames: &[(&str, &str)]) -> Vec<(String, Vec<usize>)> {
        let mut v: Vec<(String, Vec<usize>)> = module
            .collect(None, Some(Box::new(BurnToPyTorchAdapter)), false)
            .into_iter()
            .map(|t| (rename(&t.name, inverse_renames), t.shape.as_slice().to_vec()))
            .collect();
        v.sort();
        v
    }

    /// Writes a formula-filled `state_dict` (names and PyTorch shapes given) as a safetensors
    /// file, so it can be imported exactly like a converted checkpoint.
    pub fn write_state_dict(entries: &[(String, Vec<usize>)], path: &Path) -> Result<(), WeightError> {
        let werr = |e: String| WeightError::Write { path: path.to_path_buf(), reason: e };
        let mut data: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
        for (name, shape) in entries {
            if let Some(v) = fill(name, shape) {
                data.insert(name.clone(), (shape.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()));
            }
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(n, (s, b))| safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).map(|v| (n.clone(), v)))
            .collect::<Result<_, _>>()
            .map_err(|e| werr(e.to_string()))?;
        let bytes = safetensors::serialize(views, None).map_err(|e| werr(e.to_string()))?;
        memvos_data::write_atomic(path, &bytes).map_err(|e| werr(e.to_string()))
    }
}
