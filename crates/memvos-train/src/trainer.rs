//! The iteration loop: Adam with weight decay and the step schedule, the 3-frame step on one
//! device or split over several (burn's multi-device gradients), checkpoints every
//! `checkpoint_every` iterations written atomically, and a resume that loses nothing.
//!
//! A checkpoint is three files in the output folder: `model-NNNNNNN.bpk` (the network, burn's
//! burnpack), `optim-NNNNNNN.bpk` (Adam's moments and step counts), and `checkpoint.json`
//! (method, stage, the recipe, the iteration, the loss history), written last, each through a
//! temporary file and a rename. The learning rate and the bootstrapping fraction are functions
//! of the iteration and the data order a function of the recipe's seed and the iteration, so
//! nothing else needs saving: a resumed run computes exactly what an uninterrupted one does.
//! Each checkpoint also exports `weights.safetensors` (the weights so far, with the method and
//! configuration), and the end of the run `final.safetensors`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, MultiGradientsParams, SgdConfig, decay::WeightDecayConfig};
use burn::tensor::{Bytes, Device};
use memvos_model::{AnyNetwork, Method, weights};
use serde::{Deserialize, Serialize};

use crate::data::{Entries, Loader, LoaderError};
use crate::recipe::{Optimizer, Recipe};
use crate::step::{BatchTensors, StepConfig, Trainable, forward, target_iou};

/// What can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The recipe is invalid.
    #[error("invalid recipe: {0}")]
    Recipe(String),
    /// The training data could not be prepared.
    #[error(transparent)]
    Data(#[from] LoaderError),
    /// Weights could not be read or written.
    #[error(transparent)]
    Weights(#[from] weights::WeightError),
    /// A checkpoint could not be written or read.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The run cannot be resumed as asked.
    #[error("--resume: {0}")]
    Resume(String),
    /// The output folder cannot be used.
    #[error("output folder {path}: {reason}")]
    Output {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A training step failed (a non-finite loss, a shape).
    #[error("training step at iteration {iteration}: {reason}")]
    Step {
        /// The iteration.
        iteration: usize,
        /// What went wrong.
        reason: String,
    },
}

/// How to run a recipe.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The folder the recipe's source roots are relative to.
    pub data: PathBuf,
    /// Where checkpoints, the loss curve and the final weights go.
    pub out: PathBuf,
    /// Continue from the checkpoint in `out`. The recipe must be the checkpoint's, except for
    /// more `iterations` (the run extended) and the settings that do not change what is
    /// computed (`workers`, `checkpoint_every`, `keep_checkpoints`).
    pub resume: bool,
    /// With `resume`: accept a recipe that differs from the checkpoint's in other fields too;
    /// the checkpoint then records the earlier recipe and what changed.
    pub resume_with_changes: bool,
    /// Start from these weights (a previous stage, a published `.pth`); a stage-0 network's
    /// 4-channel first conv gets the fifth input channel (methods.md §3.4).
    pub init: Option<PathBuf>,
    /// Training devices (autodiff is enabled on each); the batch is split over them. Empty:
    /// the CPU.
    pub devices: Vec<Device>,
    /// Stop after this iteration without a final checkpoint, as a killed run would (tests).
    pub stop_after: Option<usize>,
}

/// One iteration's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationStats {
    /// The iteration's number.
    pub iteration: usize,
    /// Its total loss.
    pub loss: f64,
    /// The IoU of its predicted masks.
    pub iou: f64,
    /// The learning rate it ran with.
    pub lr: f64,
    /// Wall seconds of the iteration (waiting for data included).
    pub seconds: f64,
}

/// Receives the loop's progress (a dashboard, a progress bar, a log).
pub trait Observer {
    /// Training starts at iteration `first` of `total`.
    fn start(&mut self, _first: usize, _total: usize) {}
    /// An iteration finished.
    fn iteration(&mut self, _stats: &IterationStats) {}
    /// A checkpoint was written into `folder`.
    fn checkpoint(&mut self, _iteration: usize, _folder: &Path) {}
    /// Asked after every iteration: stop now (a checkpoint is written first).
    fn should_stop(&self) -> bool {
        false
    }
}

/// An observer that does nothing.
pub struct Silent;
impl Observer for Silent {}

/// The checkpoint's metadata (`checkpoint.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The method trained.
    pub method: Method,
    /// The stage.
    pub stage: u8,
    /// The iteration the checkpoint was taken after (the next one to run is `iteration + 1`).
    pub iteration: usize,
    /// The recipe the run follows.
    pub recipe: Recipe,
    /// Every iteration's numbers so far.
    pub history: Vec<IterationStats>,
    /// SHA-256 of the checkpoint's model and optimiser files, so a resume refuses files of
    /// another run put in their place.
    #[serde(default)]
    pub files_sha256: Option<(String, String)>,
    /// Recipes this run used before a `--resume-with-changes`, oldest first.
    #[serde(default)]
    pub earlier_recipes: Vec<RecipeChange>,
}

/// A recipe change accepted by `--resume-with-changes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecipeChange {
    /// The first iteration run with the new recipe.
    pub from_iteration: usize,
    /// The recipe used before it.
    pub recipe: Recipe,
    /// The fields that changed, `field: old → new`.
    pub changed: Vec<String>,
}

/// Recipe fields a resume may change without `--resume-with-changes`: they do not change what
/// is computed (`iterations` may only grow: the run is extended).
const HARMLESS: [&str; 3] = ["workers", "checkpoint_every", "keep_checkpoints"];

/// The fields in which two recipes differ, as `field: old → new` (dotted paths).
pub fn recipe_changes(old: &Recipe, new: &Recipe) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::{Array, Object};
        match (a, b) {
            (Object(x), Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(&p, x.get(k).unwrap_or(&serde_json::Value::Null), y.get(k).unwrap_or(&serde_json::Value::Null), out);
                }
            }
            (Array(x), Array(y)) if x.len() == y.len() => {
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}.{i}"), u, v, out);
                }
            }
            _ if a != b => out.push(format!("{path}: {a} → {b}")),
            _ => {}
        }
    }
    let (a, b) = (serde_json::to_value(old).unwrap_or_default(), serde_json::to_value(new).unwrap_or_default());
    let mut out = Vec::new();
    walk("", &a, &b, &mut out);
    out
}

/// Checks a checkpoint against itself and against the recipe it is resumed with; returns the
/// recipe changes to record (empty when the recipe is the checkpoint's).
fn check_resume(state: &CheckpointState, recipe: &Recipe, with_changes: bool, out: &Path) -> Result<Vec<String>, TrainError> {
    let json = out.join("checkpoint.json");
    // A checkpoint is always taken inside its own recipe's run, with a history of rising
    // iterations up to it; anything else is a damaged (or hand-edited) file.
    if state.iteration >= state.recipe.iterations {
        return Err(ckpt_err(&json, format!("iteration {} is not inside its own recipe's {} iterations: the file is damaged", state.iteration, state.recipe.iterations)));
    }
    if state.history.windows(2).any(|w| w[0].iteration >= w[1].iteration) || state.history.last().is_some_and(|s| s.iteration > state.iteration) {
        return Err(ckpt_err(&json, format!("its loss history does not rise to iteration {}: the file is damaged", state.iteration)));
    }
    if state.iteration + 1 > recipe.iterations {
        return Err(TrainError::Resume(format!(
            "the checkpoint in {} is after iteration {}, past the recipe's {} iterations: resume with --set iterations=N for some N above {}, or train into another --out",
            out.display(),
            state.iteration + 1,
            recipe.iterations,
            state.iteration + 1
        )));
    }
    let changes: Vec<String> = recipe_changes(&state.recipe, recipe)
        .into_iter()
        .filter(|c| !HARMLESS.iter().any(|h| c.starts_with(&format!("{h}:"))))
        .filter(|c| !c.starts_with("iterations:") || recipe.iterations < state.recipe.iterations)
        .collect();
    if !changes.is_empty() && !with_changes {
        return Err(TrainError::Resume(format!(
            "the recipe differs from the checkpoint's in {}: resume with the checkpoint's recipe, or pass --resume-with-changes to continue with the new one (both are recorded)",
            changes.join("; ")
        )));
    }
    Ok(changes)
}

/// What a finished (or stopped) run leaves.
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// Iterations run in this call.
    pub ran: usize,
    /// The last iteration done.
    pub last: Option<usize>,
    /// Every iteration's numbers (resumed runs included).
    pub history: Vec<IterationStats>,
    /// The final weights (`final.safetensors`), when the recipe's iterations are all done.
    pub weights: Option<PathBuf>,
}

fn ckpt_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint { path: path.to_path_buf(), reason: e.to_string() }
}

/// The state saved in `out`, if any.
pub fn read_checkpoint(out: &Path) -> Result<Option<CheckpointState>, TrainError> {
    let p = out.join("checkpoint.json");
    if !p.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| ckpt_err(&p, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| ckpt_err(&p, format!("not a memvos checkpoint: {e}")))
}

fn checkpoint_files(out: &Path, iteration: usize) -> (PathBuf, PathBuf) {
    (out.join(format!("model-{iteration:07}.bpk")), out.join(format!("optim-{iteration:07}.bpk")))
}

/// The iterations of the checkpoints in `out` (`model-N.bpk`), oldest first.
pub fn checkpoint_iterations(out: &Path) -> Vec<usize> {
    let mut its: Vec<usize> = std::fs::read_dir(out)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("model-")?.strip_suffix(".bpk")?.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    its.sort_unstable();
    its
}

/// Keeps the checkpoint of `current` (the one checkpoint.json names) and the newest `keep − 1`
/// before it; removes older ones and any newer file a killed checkpoint write left behind.
fn prune_checkpoints(out: &Path, current: usize, keep: usize) {
    let its = checkpoint_iterations(out);
    let older: Vec<usize> = its.iter().copied().filter(|&i| i < current).collect();
    let stale = older[..older.len().saturating_sub(keep.max(1) - 1)].iter().chain(its.iter().filter(|&&i| i > current));
    for &it in stale {
        let (a, b) = checkpoint_files(out, it);
        let _ = std::fs::remove_file(a);
        let _ = std::fs::remove_file(b);
    }
}

/// Trains `recipe` as `opts` say, reporting to `observer`.
pub fn train(recipe: &Recipe, opts: &TrainOptions, observer: &mut dyn Observer) -> Result<TrainReport, TrainError> {
    recipe.validate().map_err(TrainError::Recipe)?;
    // Check everything a user can get wrong before anything heavy starts; the output folder
    // never lands on a data root or the initial weights.
    let roots = crate::data::source_roots(recipe, &opts.data);
    let mut inputs: Vec<(String, &Path)> = roots.iter().map(|(i, p)| (format!("sources.{i}.root"), p.as_path())).collect();
    inputs.extend(opts.init.as_deref().map(|p| ("--init".to_string(), p)));
    let inputs: Vec<(&str, &Path)> = inputs.iter().map(|(f, p)| (f.as_str(), *p)).collect();
    memvos_data::paths::check_outputs_apart(&[("--out", &opts.out)], &inputs).map_err(|e| TrainError::Output { path: opts.out.clone(), reason: e.to_string() })?;
    prepare_output(&opts.out)?;
    let previous = read_checkpoint(&opts.out)?;
    match (&previous, opts.resume) {
        (None, true) => return Err(TrainError::Resume(format!("no checkpoint in {} (checkpoint.json is missing)", opts.out.display()))),
        (Some(s), false) => {
            return Err(TrainError::Output { path: opts.out.clone(), reason: format!("holds a checkpoint (iteration {}): pass --resume to continue it, or choose another --out", s.iteration) });
        }
        (Some(s), true) if (s.method, s.stage) != (recipe.method, recipe.stage) => {
            return Err(TrainError::Resume(format!("the checkpoint in {} is {} stage {}, the recipe {} stage {}", opts.out.display(), s.method, s.stage, recipe.method, recipe.stage)));
        }
        (Some(s), true) if s.recipe.network != recipe.network => {
            return Err(TrainError::Resume(format!("the checkpoint in {} was trained with another network configuration", opts.out.display())));
        }
        _ => {}
    }
    let changes = match &previous {
        Some(s) => check_resume(s, recipe, opts.resume_with_changes, &opts.out)?,
        None => Vec::new(),
    };
    let entries = Arc::new(Entries::open(recipe, &opts.data)?);
    let devices: Vec<Device> = if opts.devices.is_empty() { vec![Device::flex()] } else { opts.devices.clone() };
    let devices: Vec<Device> = devices.into_iter().map(|d| if d.is_autodiff() { d } else { d.autodiff() }).collect();
    if devices.len() > recipe.batch_size {
        return Err(TrainError::Recipe(format!("batch_size {} is smaller than the {} devices", recipe.batch_size, devices.len())));
    }
    // The initial weights come from burn's seeded random generator, which is the process's:
    // seed it and draw every parameter under a lock, so another thread drawing random numbers
    // meanwhile (another run, a test) cannot change them. They are drawn on the CPU and then
    // moved, so a seed gives the same weights whichever device trains (each backend has its own
    // generator).
    static INIT: Mutex<()> = Mutex::new(());
    let guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    let draw_on = Device::flex().autodiff();
    draw_on.seed(recipe.seed);
    let net = AnyNetwork::new(recipe.method, recipe.network_json().as_deref(), &draw_on).map_err(|e| TrainError::Recipe(format!("network: {e}")))?;
    macro_rules! go {
        ($n:expr) => {{
            let mut n = materialize($n)?;
            if let Some(init) = &opts.init {
                n = crate::init::load_initial(n, init, recipe.method)?;
            }
            // The published layout is loaded, then the trainer's (QDMN's split head), then moved.
            let n = n.training_layout();
            let n = if devices[0] == draw_on { n } else { n.fork(&devices[0]) };
            drop(guard);
            run(n, recipe, opts, previous, changes, entries, &devices, observer)
        }};
    }
    match net {
        AnyNetwork::Stcn(n) => go!(n),
        AnyNetwork::Mivos(n) => go!(n),
        AnyNetwork::Qdmn(n) => go!(n),
        AnyNetwork::Gsfm(n) => go!(n),
        AnyNetwork::Imsfr(n) => go!(n),
    }
}

/// burn initialises a parameter when it is first used; draws them all now, in module order, so
/// the initial weights depend on the seed alone (not on which device or step touches them first).
fn materialize<M: Module>(net: M) -> Result<M, TrainError> {
    let record = net.clone().into_record();
    net.try_load_record(record).map_err(|e| TrainError::Recipe(format!("network initialisation: {e}")))
}

fn prepare_output(out: &Path) -> Result<(), TrainError> {
    let err = |reason: String| TrainError::Output { path: out.to_path_buf(), reason };
    if out.exists() && !out.is_dir() {
        return Err(err("is a file, not a folder".into()));
    }
    std::fs::create_dir_all(out).map_err(|e| err(e.to_string()))?;
    let probe = out.join(".memvos-write-test");
    std::fs::write(&probe, b"").map_err(|e| err(format!("not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    // Debris of a run killed while writing: temporary files are never complete checkpoints.
    if let Ok(dir) = std::fs::read_dir(out) {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().contains(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    memvos_data::write_atomic(path, bytes).map_err(|e| ckpt_err(path, e))
}

fn run<M: Trainable>(
    net: M,
    recipe: &Recipe,
    opts: &TrainOptions,
    previous: Option<CheckpointState>,
    changes: Vec<String>,
    entries: Arc<Entries>,
    devices: &[Device],
    observer: &mut dyn Observer,
) -> Result<TrainReport, TrainError> {
    let mut net = net;
    if recipe.freeze_bn {
        // BatchNorm in inference mode (running statistics frozen), every weight trained.
        net = net.freeze().set_require_grad(true);
    }
    let wd = (recipe.weight_decay > 0.0).then(|| WeightDecayConfig::new(recipe.weight_decay as f32));
    let mut optim: ModuleOptimizer = match recipe.optimizer {
        Optimizer::Adam => AdamConfig::new().with_weight_decay(wd).init(),
        Optimizer::Sgd => SgdConfig::new().with_weight_decay(wd).init(),
    };
    let mut earlier = Vec::new();
    let (mut history, first) = match previous {
        Some(state) => {
            let (mp, op) = checkpoint_files(&opts.out, state.iteration);
            let model = std::fs::read(&mp).map_err(|e| ckpt_err(&mp, e))?;
            let o = std::fs::read(&op).map_err(|e| ckpt_err(&op, e))?;
            if let Some((ms, os)) = &state.files_sha256 {
                for (path, bytes, want) in [(&mp, &model, ms), (&op, &o, os)] {
                    if &sha256(bytes) != want {
                        return Err(ckpt_err(path, "is not the file this checkpoint wrote (its SHA-256 differs from checkpoint.json's): it belongs to another run or is damaged"));
                    }
                }
            }
            let record = burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(model)).map_err(|e| ckpt_err(&mp, e))?;
            net = net.try_load_record(record).map_err(|e| ckpt_err(&mp, e))?;
            check_optimiser_ids(&o, &net, &op)?;
            optim = optim.from_bytes(Bytes::from_bytes_vec(o)).map_err(|e| ckpt_err(&op, e))?;
            earlier = state.earlier_recipes.clone();
            if !changes.is_empty() {
                earlier.push(RecipeChange { from_iteration: state.iteration + 1, recipe: state.recipe.clone(), changed: changes });
            }
            (state.history, state.iteration + 1)
        }
        None => (Vec::new(), 0),
    };
    let end = recipe.iterations;
    let stop = opts.stop_after.map(|s| (s + 1).min(end)).unwrap_or(end);
    observer.start(first, end);
    let mut loader = Loader::start(entries, first, end, recipe.workers);
    let mut ran = 0;
    let mut last = first.checked_sub(1);
    for it in first..stop {
        let t0 = Instant::now();
        let batch = loader.next_batch()?;
        let lr = recipe.lr_at(it);
        let cfg = StepConfig { objects: recipe.objects, bootstrap_p: recipe.bootstrap_p(it), boundary_weight: recipe.boundary_weight, quality_weight: recipe.quality_weight };
        let step_err = |e: &dyn std::fmt::Display| TrainError::Step { iteration: it, reason: e.to_string() };
        let (loss, iou);
        if devices.len() == 1 {
            let t = BatchTensors::new(&batch, recipe.objects, &devices[0]);
            let out = forward(&net, &t, cfg).map_err(|e| step_err(&e))?;
            iou = target_iou(&out, &t);
            loss = out.loss.clone().into_scalar::<f32>() as f64;
            let grads = GradientsParams::from_grads(out.loss.backward(), &net);
            net = optim.step(lr, net, grads);
        } else {
            // The batch split over the devices; each part's loss weighted by its share, the
            // gradients summed on each parameter's device.
            let n = devices.len();
            let mut multi = MultiGradientsParams::default();
            let (mut l, mut io) = (0.0, 0.0);
            let mut start = 0;
            for (d, device) in devices.iter().enumerate() {
                let len = batch.size / n + usize::from(d < batch.size % n);
                let part = batch.slice(start, len);
                start += len;
                let share = len as f64 / batch.size as f64;
                let local = net.clone().fork(device);
                let t = BatchTensors::new(&part, recipe.objects, device);
                let out = forward(&local, &t, cfg).map_err(|e| step_err(&e))?;
                io += share * target_iou(&out, &t);
                let weighted = out.loss.mul_scalar(share);
                l += weighted.clone().into_scalar::<f32>() as f64;
                multi.grads.push((GradientsParams::from_grads(weighted.backward(), &local), device.clone()));
            }
            loss = l;
            iou = io;
            net = optim.step_multi(lr, net, multi);
        }
        if !loss.is_finite() {
            return Err(TrainError::Step { iteration: it, reason: format!("the loss is {loss} (lower the learning rate?)") });
        }
        let stats = IterationStats { iteration: it, loss, iou, lr, seconds: t0.elapsed().as_secs_f64() };
        observer.iteration(&stats);
        history.push(stats);
        ran += 1;
        last = Some(it);
        let stopping = observer.should_stop();
        if (it + 1) % recipe.checkpoint_every == 0 || it + 1 == end || stopping {
            save_checkpoint(&net, &optim, recipe, it, &history, &earlier, &opts.out)?;
            observer.checkpoint(it, &opts.out);
        }
        if stopping {
            break;
        }
    }
    drop(loader);
    let weights = match last {
        Some(l) if l + 1 == end => Some(export(&net, recipe, l, &opts.out.join("final.safetensors"))?),
        _ => None,
    };
    Ok(TrainReport { ran, last, history, weights })
}

/// Writes the network's weights with the published names and memvos's metadata (method,
/// network configuration, how far it was trained), loadable by every runner.
fn export<M: Trainable>(net: &M, recipe: &Recipe, iteration: usize, path: &Path) -> Result<PathBuf, TrainError> {
    let (_, inverse) = AnyNetwork::renames(recipe.method);
    let mut meta = vec![(weights::METHOD_KEY, recipe.method.id().to_string())];
    if let Some(cfg) = recipe.network_json() {
        meta.push((weights::CONFIG_KEY, cfg));
    }
    meta.push(("memvos.trained", format!("{} stage {}, {} of {} iterations", recipe.method, recipe.stage, iteration + 1, recipe.iterations)));
    weights::save_safetensors(&net.published_layout(), path, &inverse, &meta)?;
    Ok(path.to_path_buf())
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Refuses an optimiser state that is not this network's: burn keys Adam's moments by
/// parameter id, ids the model record restores, so a state file of another run or another
/// network holds ids the network does not have (burn would silently start from zero moments).
fn check_optimiser_ids<M: Module>(bytes: &[u8], net: &M, path: &Path) -> Result<(), TrainError> {
    let ids = weights::check_optimizer_state(bytes).map_err(|e| ckpt_err(path, e))?;
    let params: std::collections::BTreeSet<u64> = burn::module::list_param_ids(net).into_iter().map(|p| p.val()).collect();
    let foreign = ids.iter().filter(|id| !params.contains(id)).count();
    if ids.is_empty() || foreign > 0 {
        return Err(ckpt_err(path, format!("is not this network's optimiser state ({foreign} of its {} parameter states belong to no parameter of the network): it comes from another run or network", ids.len())));
    }
    Ok(())
}


#[allow(clippy::too_many_arguments)]
fn save_checkpoint<M: Trainable>(net: &M, optim: &ModuleOptimizer, recipe: &Recipe, iteration: usize, history: &[IterationStats], earlier: &[RecipeChange], out: &Path) -> Result<(), TrainError> {
    let (mp, op) = checkpoint_files(out, iteration);
    let model = net.clone().into_record().into_bytes().map_err(|e| ckpt_err(&mp, e))?;
    write_atomic(&mp, &model)?;
    // A kill here leaves a model file that checkpoint.json does not name yet (crash tests).
    memvos_data::failpoint::pause(&format!("checkpoint:{}", iteration + 1));
    let o = optim.into_bytes().map_err(|e| ckpt_err(&op, e))?;
    write_atomic(&op, &o)?;
    let state = CheckpointState {
        method: recipe.method,
        stage: recipe.stage,
        iteration,
        recipe: recipe.clone(),
        history: history.to_vec(),
        files_sha256: Some((sha256(&model), sha256(&o))),
        earlier_recipes: earlier.to_vec(),
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| ckpt_err(out, e))?;
    // The metadata goes last: until it is renamed into place, the previous checkpoint stands.
    write_atomic(&out.join("checkpoint.json"), &json)?;
    // Then only the newest `keep_checkpoints` stay (this one among them).
    prune_checkpoints(out, iteration, recipe.keep_checkpoints);
    crate::plot::write_loss_curve(&out.join("loss.png"), history).map_err(|e| ckpt_err(&out.join("loss.png"), e))?;
    // The weights so far, for evaluating a run while it trains.
    export(net, recipe, iteration, &out.join("weights.safetensors"))?;
    Ok(())
}
