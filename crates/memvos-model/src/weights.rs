//! Weights: importing published PyTorch checkpoints (`.pth`) and safetensors files with their
//! `state_dict` names, saving and loading in safetensors (PyTorch names) or burn's own burnpack
//! format, and the deterministic formula of the parity fixtures (`WEIGHTS-FORMULA.md`).
//!
//! Loading is strict: missing tensors, unexpected tensors (other than BatchNorm's
//! `num_batches_tracked`) and shape mismatches come back together as one [`WeightError`]; a
//! checkpoint of another method is refused as such. Each network file holds its own rename
//! table (PyTorch name ↔ module path); this module only applies them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, BurnpackStore, KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};

use crate::network::Method;

/// Everything that can go wrong with a weights file.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    /// The file could not be read or parsed.
    #[error("cannot read weights {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file could not be written.
    #[error("cannot write weights {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The keys match no method.
    #[error("cannot tell which method {path} holds: its keys match none of STCN, MiVOS, QDMN, GSFM, IMSFR (first keys: {}); pass --method", .sample.join(", "))]
    UnknownMethod {
        /// The file.
        path: PathBuf,
        /// Its first keys.
        sample: Vec<String>,
    },
    /// The file holds another method than the one asked for.
    #[error("{path} holds {found} weights, not {expected} weights (asked for with --method {}); its keys against {expected}'s:{}", .expected.id(), list_problems(.missing, .unexpected, &[]))]
    WrongMethod {
        /// The file.
        path: PathBuf,
        /// The method asked for.
        expected: Method,
        /// The method the keys show.
        found: Method,
        /// Tensors the network has and the file lacks.
        missing: Vec<String>,
        /// Tensors the file has and the network lacks.
        unexpected: Vec<String>,
    },
    /// The tensors do not fit the network.
    #[error("{path} does not fit the {method} network:{}", list_problems(.missing, .unexpected, .shapes))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The method.
        method: Method,
        /// Tensors the network has and the file lacks.
        missing: Vec<String>,
        /// Tensors the file has and the network lacks.
        unexpected: Vec<String>,
        /// Tensors whose shapes differ.
        shapes: Vec<String>,
    },
    /// The stored network configuration is invalid.
    #[error("{path}: the network configuration stored in the file is not valid: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A tensor's bytes do not match the file's own record.
    #[error("{path} is damaged ({reason}); download or copy it again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The first 20 of a list, then "… and N more".
pub fn cut_list(items: &[String], max: usize) -> String {
    let shown: Vec<&str> = items.iter().take(max).map(String::as_str).collect();
    let more = if items.len() > max { format!(" … and {} more", items.len() - max) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

fn list_problems(missing: &[String], unexpected: &[String], shapes: &[String]) -> String {
    let parts: Vec<String> = [("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)]
        .into_iter()
        .filter(|(_, items)| !items.is_empty())
        .map(|(what, items)| format!("{} {what}: {}", items.len(), cut_list(items, 20)))
        .collect();
    format!(" {}", parts.join("; "))
}

/// The safetensors metadata key holding the method of a memvos checkpoint.
pub const METHOD_KEY: &str = "memvos.method";
/// The safetensors metadata key holding a memvos checkpoint's network configuration (JSON).
pub const CONFIG_KEY: &str = "memvos.config";

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
    // The patterns are constants of the network files, checked by the tests.
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
    /// The format of a file by its extension: `.pth`/`.pt`/`.ckpt`/`.tar`, `.safetensors` or `.bpk`.
    pub fn of(path: &Path) -> Result<Self, WeightError> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "pth" | "pt" | "ckpt" | "tar" => Ok(Format::Pytorch),
            "safetensors" => Ok(Format::Safetensors),
            "bpk" | "burnpack" => Ok(Format::Burnpack),
            _ => Err(WeightError::Read { path: path.to_path_buf(), reason: format!("unknown extension {ext:?} (expected .pth, .safetensors or .bpk)") }),
        }
    }
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> WeightError {
    WeightError::Read { path: path.to_path_buf(), reason: e.to_string() }
}

/// The largest safetensors header memvos reads (the published checkpoints' are ~60 KB).
const MAX_HEADER: u64 = 64 << 20;

/// A safetensors header: tensor names with their dtype and shape, and the metadata.
type Header = (Vec<(String, String, Vec<usize>)>, BTreeMap<String, String>);

/// A safetensors file's header.
fn safetensors_header(path: &Path) -> Result<Header, WeightError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| read_err(path, e))?;
    let file_len = f.metadata().map_err(|e| read_err(path, e))?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| read_err(path, "not a safetensors file: shorter than its 8-byte header length"))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER || n + 8 > file_len {
        return Err(read_err(path, format!("not a safetensors file: header length {n} does not fit a {file_len}-byte file")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| read_err(path, e))?;
    parse_header(path, &header)
}

/// The header of safetensors bytes held in memory.
pub fn safetensors_header_of_bytes(label: &Path, bytes: &[u8]) -> Result<Header, WeightError> {
    let n = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).ok_or_else(|| read_err(label, "not a safetensors file"))?;
    if n > MAX_HEADER || n + 8 > bytes.len() as u64 {
        return Err(read_err(label, format!("not a safetensors file: header length {n} does not fit {} bytes", bytes.len())));
    }
    parse_header(label, &bytes[8..8 + n as usize])
}

fn parse_header(path: &Path, header: &[u8]) -> Result<Header, WeightError> {
    let json: serde_json::Value = serde_json::from_slice(header).map_err(|e| read_err(path, format!("safetensors header is not JSON: {e}")))?;
    let obj = json.as_object().ok_or_else(|| read_err(path, "safetensors header is not a JSON object"))?;
    let mut tensors = Vec::new();
    let mut meta = BTreeMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            if let Some(m) = v.as_object() {
                for (k, v) in m {
                    meta.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
            continue;
        }
        let dtype = v.get("dtype").and_then(|d| d.as_str()).unwrap_or("?").to_string();
        let shape = v.get("shape").and_then(|s| s.as_array()).map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as usize).collect()).unwrap_or_default();
        tensors.push((name.clone(), dtype, shape));
    }
    Ok((tensors, meta))
}

/// The tensor names of a weights file without loading the tensors: PyTorch names for `.pth`
/// and `.safetensors`, module paths for `.bpk`.
pub fn read_keys(path: &Path) -> Result<Vec<String>, WeightError> {
    if !path.is_file() {
        return Err(read_err(path, if path.exists() { "not a file" } else { "no such file" }));
    }
    let mut keys = match Format::of(path)? {
        Format::Pytorch => pytorch_reader::PytorchReader::new(path).map_err(|e| read_err(path, e))?.keys(),
        Format::Safetensors => {
            let (tensors, _) = safetensors_header(path)?;
            let bad: Vec<String> = tensors.iter().filter(|(n, d, _)| d != "F32" && !n.ends_with("num_batches_tracked")).map(|(n, d, _)| format!("{n} ({d})")).collect();
            if !bad.is_empty() {
                return Err(read_err(path, format!("memvos reads float32 weights; {} tensor(s) have another type: {} (convert them to float32 first)", bad.len(), cut_list(&bad, 5))));
            }
            tensors.into_iter().map(|(n, _, _)| n).collect()
        }
        Format::Burnpack => BurnpackStore::from_file(path).keys().map_err(|e| read_err(path, e))?,
    };
    keys.sort();
    Ok(keys)
}

/// A weights file's metadata (safetensors `__metadata__`; empty for other formats).
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>, WeightError> {
    match Format::of(path)? {
        Format::Safetensors => Ok(safetensors_header(path)?.1),
        _ => Ok(BTreeMap::new()),
    }
}

/// The method a weights file holds: from memvos's metadata when present, else by its keys.
pub fn detect(path: &Path) -> Result<Method, WeightError> {
    if let Some(m) = read_metadata(path)?.get(METHOD_KEY) {
        return m.parse().map_err(|e: String| WeightError::Config { path: path.to_path_buf(), reason: e });
    }
    let keys = read_keys(path)?;
    Method::detect(&keys).ok_or_else(|| WeightError::UnknownMethod { path: path.to_path_buf(), sample: keys.into_iter().take(5).collect() })
}

/// One float32 tensor of a `.pth` or `.safetensors` file by its PyTorch name: its shape and
/// values (`None` when the file has no such tensor).
pub fn read_tensor(path: &Path, name: &str) -> Result<Option<(Vec<usize>, Vec<f32>)>, WeightError> {
    let floats = |b: &[u8]| b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>();
    match Format::of(path)? {
        Format::Pytorch => {
            let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| read_err(path, e))?;
            let Some(t) = reader.get(name) else { return Ok(None) };
            if t.dtype() != pytorch_reader::DType::F32 {
                return Err(read_err(path, format!("{name} is {:?}, not float32", t.dtype())));
            }
            let bytes = t.read().map_err(|e| read_err(path, e))?;
            Ok(Some((t.shape().to_vec(), floats(&bytes))))
        }
        Format::Safetensors => {
            let bytes = std::fs::read(path).map_err(|e| read_err(path, e))?;
            let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| read_err(path, e))?;
            match st.tensor(name) {
                Ok(v) if v.dtype() == safetensors::Dtype::F32 => Ok(Some((v.shape().to_vec(), floats(v.data())))),
                Ok(v) => Err(read_err(path, format!("{name} is {:?}, not float32", v.dtype()))),
                Err(_) => Ok(None),
            }
        }
        Format::Burnpack => Err(read_err(path, "reading single tensors needs .pth or .safetensors")),
    }
}

/// What [`verify`] read of a weights file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    /// Tensors in the file, each read in full.
    pub tensors: usize,
    /// Bytes of tensor data read.
    pub data_bytes: u64,
}

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> WeightError {
    WeightError::Corrupt { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Reads every tensor of a weights file in full, checking it against the file's own record of
/// it: a `.pth`'s zip entries against their CRC-32 (a flipped byte anywhere in the pickle or the
/// data is found) and each tensor's bytes against its dtype and shape; a `.safetensors`'s
/// offsets against its header and the file's length; a `.bpk`'s tensors against its index.
/// A file that disagrees with itself is [`WeightError::Corrupt`], named in one line.
pub fn verify(path: &Path) -> Result<FileSummary, WeightError> {
    if !path.is_file() {
        return Err(read_err(path, if path.exists() { "not a file" } else { "no such file" }));
    }
    let format = Format::of(path)?;
    let bytes = std::fs::read(path).map_err(|e| read_err(path, e))?;
    if format == Format::Pytorch {
        return verify_pytorch(path, path, &bytes);
    }
    verify_bytes(path, format, bytes)
}

/// [`verify`] on a file's bytes held in memory (`path` only names it in errors). A PyTorch
/// checkpoint is read through a temporary file (its reader needs one).
pub fn verify_bytes(path: &Path, format: Format, bytes: Vec<u8>) -> Result<FileSummary, WeightError> {
    let mut data_bytes = 0u64;
    let tensors = match format {
        Format::Pytorch => {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = std::env::temp_dir().join(format!(".memvos-verify-{}-{n}.pth", std::process::id()));
            std::fs::write(&tmp, &bytes).map_err(|e| read_err(&tmp, e))?;
            let result = verify_pytorch(&tmp, path, &bytes);
            let _ = std::fs::remove_file(&tmp);
            return result;
        }

        Format::Safetensors => {
            let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, e))?;
            for (_, v) in st.tensors() {
                data_bytes += v.data().len() as u64;
            }
            st.len()
        }
        Format::Burnpack => {
            let reader = burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).map_err(|e| corrupt(path, e))?;
            let names: Vec<String> = reader.tensor_names().into_iter().map(String::from).collect();
            for n in &names {
                data_bytes += reader.tensor_data(n).map_err(|e| corrupt(path, format!("tensor {n}: {e}")))?.len() as u64;
            }
            names.len()
        }
    };
    Ok(FileSummary { tensors, data_bytes })
}

/// A PyTorch checkpoint at `file` (named `path` in errors) whose bytes are `bytes`: the zip
/// entries against their CRC-32, then every tensor read and its length checked.
fn verify_pytorch(file: &Path, path: &Path, bytes: &[u8]) -> Result<FileSummary, WeightError> {
    if bytes.starts_with(b"PK") {
        verify_zip(path, bytes)?;
    }
    let reader = pytorch_reader::PytorchReader::new(file).map_err(|e| corrupt(path, e))?;
    let mut data_bytes = 0u64;
    let keys = reader.keys();
    for k in &keys {
        let t = reader.get(k).ok_or_else(|| corrupt(path, format!("tensor {k} is listed but cannot be found")))?;
        let claimed = t.shape().iter().try_fold(t.dtype().size(), |a, &d| a.checked_mul(d));
        if claimed.is_none_or(|c| c as u64 > bytes.len() as u64) {
            return Err(corrupt(path, format!("tensor {k} of shape {:?} claims more bytes than the file holds", t.shape())));
        }
        let data = t.read().map_err(|e| corrupt(path, e))?;
        if data.len() != t.byte_len() {
            return Err(corrupt(path, format!("tensor {k} has {} bytes, its shape {:?} needs {}", data.len(), t.shape(), t.byte_len())));
        }
        data_bytes += data.len() as u64;
    }
    Ok(FileSummary { tensors: keys.len(), data_bytes })
}

/// Reads every entry of a zip container in full: the zip reader checks each against its CRC-32.
fn verify_zip(path: &Path, bytes: &[u8]) -> Result<(), WeightError> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| corrupt(path, format!("zip container: {e}")))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| corrupt(path, format!("zip entry {i}: {e}")))?;
        let name = entry.name().map(|n| n.to_string()).unwrap_or_else(|_| format!("#{i}"));
        let mut sink = Vec::new();
        // The entry's size is the container's claim; reading stops at it, so a hostile size
        // cannot allocate more than the file holds.
        (&mut entry).take(bytes.len() as u64 + 1).read_to_end(&mut sink).map_err(|e| corrupt(path, format!("zip entry {name}: {e}")))?;
    }
    Ok(())
}

/// The most dimensions of a parameter burn's optimiser state may claim.
const MAX_STATE_RANK: u64 = 8;

/// Checks an optimiser state file (burn's burnpack optimiser record, as a training checkpoint
/// writes it) before burn loads it — burn's loader panics on some malformed records — and
/// returns the parameter ids it holds state for: every tensor carries a parameter id matching
/// its name (`ID.field`), ranks are small and agree with the tensors, and the tensors' bytes
/// fit the file.
pub fn check_optimizer_state(bytes: &[u8]) -> Result<Vec<u64>, String> {
    let reader = burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| format!("not an optimiser state: {e}"))?;
    let mut ranks = BTreeMap::new();
    for (name, value) in reader.scalars() {
        if let Some(id) = name.strip_suffix(".__rank") {
            let id: u64 = id.parse().map_err(|_| format!("scalar {name}: {id:?} is not a parameter id"))?;
            let rank = u64::try_from(*value).ok().filter(|&r| r <= MAX_STATE_RANK).ok_or_else(|| format!("scalar {name}: not a rank of at most {MAX_STATE_RANK}"))?;
            ranks.insert(id, rank as usize);
        }
    }
    let tensors = reader.into_tensors().map_err(|e| format!("optimiser state: {e}"))?;
    for t in &tensors {
        let id = t.param_id.ok_or_else(|| format!("tensor {} carries no parameter id", t.name))?;
        let prefix = t.name.split('.').next().unwrap_or_default();
        if prefix.parse::<u64>().ok() != Some(id) {
            return Err(format!("tensor {} is not named after its parameter id {id}", t.name));
        }
        let rank = t.shape.len();
        if rank as u64 > MAX_STATE_RANK || ranks.get(&id).is_some_and(|&r| r != rank) {
            return Err(format!("tensor {} has {rank} dimensions, its parameter's rank says otherwise", t.name));
        }
        ranks.entry(id).or_insert(rank);
        let elements = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).ok_or_else(|| format!("tensor {}: shape overflows", t.name))?;
        if elements.checked_mul(t.dtype.size() as u64).is_none_or(|b| b != t.byte_len() as u64) {
            return Err(format!("tensor {}: its bytes do not fit its shape", t.name));
        }
    }
    let mut ids: Vec<u64> = ranks.into_keys().collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The PyTorch `state_dict` names a module expects (without `num_batches_tracked`).
pub fn expected_names<M: Module + ModuleSnapshot>(module: &M, inverse_renames: &[(&str, &str)]) -> Vec<String> {
    formula::state_dict_entries(module, inverse_renames).into_iter().map(|(n, _)| n).collect()
}

/// `(missing, unexpected)`: expected names absent from `file`, and names of `file` not expected
/// (`num_batches_tracked` ignored).
pub fn key_diff(file: &[String], expected: &[String]) -> (Vec<String>, Vec<String>) {
    let file: std::collections::BTreeSet<&String> = file.iter().filter(|k| !k.ends_with("num_batches_tracked")).collect();
    let want: std::collections::BTreeSet<&String> = expected.iter().collect();
    (want.difference(&file).map(|s| s.to_string()).collect(), file.difference(&want).map(|s| s.to_string()).collect())
}

fn check(result: ApplyResult, path: &Path, method: Method) -> Result<usize, WeightError> {
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

/// Loads weights into `module` from a `.pth`, `.safetensors` (PyTorch names) or `.bpk` file.
/// `renames` maps PyTorch names to module paths and `inverse` back; `method` names the network
/// in errors. A file recognisably of another method is refused with both methods named and the
/// keys that differ. Every tensor is first read in full and checked ([`verify`]), so a damaged
/// file is named as such, never reported as a shape mismatch. Returns the number of tensors
/// applied.
pub fn load<M: Module + ModuleSnapshot>(module: &mut M, path: &Path, method: Method, renames: &[(&str, &str)], inverse: &[(&str, &str)]) -> Result<usize, WeightError> {
    let keys = read_keys(path)?;
    verify(path)?;
    let format = Format::of(path)?;
    if let Some(found) = Method::detect(&keys).filter(|&f| f != method) {
        let expected: Vec<String> = match format {
            Format::Burnpack => module.collect(None, None, false).into_iter().map(|t| t.name.clone()).collect(),
            _ => expected_names(module, inverse),
        };
        let (missing, unexpected) = key_diff(&keys, &expected);
        return Err(WeightError::WrongMethod { path: path.to_path_buf(), expected: method, found, missing, unexpected });
    }
    let result = match format {
        Format::Pytorch => {
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false).allow_partial(true).validate(false).remap(remapper(renames));
            module.load_from(&mut store).map_err(|e| read_err(path, e))?
        }
        Format::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .map_indices_contiguous(false)
                .allow_partial(true)
                .validate(false)
                .remap(remapper(renames));
            module.load_from(&mut store).map_err(|e| read_err(path, e))?
        }
        Format::Burnpack => {
            let mut store = BurnpackStore::from_file(path).allow_partial(true).validate(false);
            module.load_from(&mut store).map_err(|e| read_err(path, e))?
        }
    };
    check(result, path, method)
}

/// Loads weights from the bytes of a safetensors file (PyTorch names), strictly, as [`load`].
pub fn load_safetensors_bytes<M: Module + ModuleSnapshot>(module: &mut M, bytes: &[u8], label: &Path, method: Method, renames: &[(&str, &str)]) -> Result<usize, WeightError> {
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
        .with_from_adapter(PyTorchToBurnAdapter)
        .map_indices_contiguous(false)
        .allow_partial(true)
        .validate(false)
        .remap(remapper(renames));
    let result = module.load_from(&mut store).map_err(|e| read_err(label, e))?;
    check(result, label, method)
}

/// Saves `module` as safetensors with PyTorch names and layouts (readable by PyTorch's
/// `safetensors.torch.load_file`), with `metadata`, atomically.
pub fn save_safetensors<M: Module + ModuleSnapshot>(module: &M, path: &Path, inverse_renames: &[(&str, &str)], metadata: &[(&str, String)]) -> Result<(), WeightError> {
    let werr = |e: &dyn std::fmt::Display| WeightError::Write { path: path.to_path_buf(), reason: e.to_string() };
    let mut store = SafetensorsStore::from_bytes(None).with_to_adapter(BurnToPyTorchAdapter).remap(remapper(inverse_renames));
    for (k, v) in metadata {
        store = store.metadata(*k, v.clone());
    }
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

    /// FNV-1a, 64-bit, of `bytes` (the formula weights' seeds).
    pub fn fnv1a64(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
    }

    /// SplitMix64's finaliser (the formula weights' generator).
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

    /// Writes a formula-filled `state_dict` (names and PyTorch shapes given) as a `.safetensors`
    /// or `.pth` file (by extension), so it can be imported exactly like a published checkpoint.
    /// A `.pth` also holds each BatchNorm's `num_batches_tracked` (0), as `torch.save` writes it.
    pub fn write_state_dict(entries: &[(String, Vec<usize>)], path: &Path) -> Result<(), WeightError> {
        let werr = |e: String| WeightError::Write { path: path.to_path_buf(), reason: e };
        match Format::of(path)? {
            Format::Pytorch => {
                let mut out = Vec::with_capacity(entries.len());
                for (name, shape) in entries {
                    out.push((name.clone(), shape.clone(), crate::pth::PthData::F32(fill(name, shape).unwrap_or_default())));
                    if let Some(bn) = name.strip_suffix(".running_var") {
                        out.push((format!("{bn}.num_batches_tracked"), vec![], crate::pth::PthData::I64(vec![0])));
                    }
                }
                crate::pth::write(path, &out).map_err(werr)
            }
            Format::Safetensors => {
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
            Format::Burnpack => Err(werr("formula weights are written as .pth or .safetensors (PyTorch names)".into())),
        }
    }
}
