//! The trainer on a tiny STCN (ResNet-18 trunks of width 8, 32×32 crops) and a tiny synthetic
//! set: the loss decreases, a run stopped between checkpoints and resumed reaches bit for bit the
//! weights of an uninterrupted one, stage 0 → stage 1 adds the value encoder's fifth channel,
//! two devices give one device's update, and bad setups are clear errors.

use std::path::Path;

use memvos_model::weights;
use memvos_train::recipe::{self, Recipe};
use memvos_train::trainer::read_checkpoint;
use memvos_train::{TrainError, TrainOptions, train};

const TINY: &str = r#"
method = "stcn"
stage = 3
network = { key_encoder = { depth = "R18", in_channels = 3, conv_bias = false, width = 8 }, value_encoder = { depth = "R18", in_channels = 5, conv_bias = true, width = 8 }, key_dim = 8, value_dim = 16, decoder = [16, 8] }
iterations = 8
batch_size = 4
lr = 1e-3
lr_steps = [6]
weight_decay = 1e-7
bootstrap = { start = 4, end = 6, p = 0.5 }
crop = 32
objects = 2
seed = 7
checkpoint_every = 3
workers = 2

[[sources]]
kind = "synthetic"
videos = 3
frames = 8
height = 48
width = 64
max_objects = 3
seed = 11
max_skip = { start = 2, values = [3], after = [0.5] }
"#;

fn tiny(overrides: &[&str]) -> Recipe {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    recipe::parse(TINY, false, "tiny", &o).unwrap()
}

fn opts(out: &Path) -> TrainOptions {
    TrainOptions { data: out.to_path_buf(), out: out.to_path_buf(), resume: false, resume_with_changes: false, init: None, devices: vec![], stop_after: None }
}

fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, t)| (n, t.data().to_vec())).collect();
    v.sort();
    v
}

#[test]
fn the_loss_decreases_on_a_tiny_synthetic_set() {
    let dir = tempfile::tempdir().unwrap();
    let r = tiny(&["iterations=60", "checkpoint_every=30", "lr_steps=[]", "bootstrap.start=1000", "bootstrap.end=1000", "sources.0.videos=2"]);
    let report = train(&r, &opts(dir.path()), &mut memvos_train::trainer::Silent).unwrap();
    let losses: Vec<f64> = report.history.iter().map(|s| s.loss).collect();
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let last: f64 = losses[50..].iter().sum::<f64>() / 10.0;
    eprintln!("mean loss, first 10: {first:.4}, last 10: {last:.4}");
    assert!(last < 0.8 * first, "the loss did not decrease: {first:.4} -> {last:.4}");
    // The final weights carry the method and the network configuration, and load for inference.
    let w = report.weights.unwrap();
    let meta = weights::read_metadata(&w).unwrap();
    assert_eq!(meta.get(weights::METHOD_KEY).map(String::as_str), Some("stcn"));
    let net = memvos_model::load_network(&w, None, &burn::tensor::Device::flex()).unwrap();
    assert_eq!(net.method(), memvos_model::Method::Stcn);
    assert!(dir.path().join("loss.png").is_file());
}

#[test]
fn a_stopped_run_resumes_to_the_same_weights_bit_for_bit() {
    let whole = tempfile::tempdir().unwrap();
    let r = tiny(&[]);
    let a = train(&r, &opts(whole.path()), &mut memvos_train::trainer::Silent).unwrap();
    let split = tempfile::tempdir().unwrap();
    // Stopped after iteration 4 (index), as a kill would: the last checkpoint is after index 2.
    let stopped = train(&r, &TrainOptions { stop_after: Some(4), ..opts(split.path()) }, &mut memvos_train::trainer::Silent).unwrap();
    assert_eq!((stopped.ran, stopped.weights.is_none()), (5, true));
    assert_eq!(read_checkpoint(split.path()).unwrap().unwrap().iteration, 2);
    // A killed checkpoint write leaves temporary debris: it is cleared, not read.
    std::fs::write(split.path().join(".model-0000005.bpk.tmp-999"), b"partial").unwrap();
    let b = train(&r, &TrainOptions { resume: true, ..opts(split.path()) }, &mut memvos_train::trainer::Silent).unwrap();
    assert_eq!(b.ran, 5, "iterations 3..8 ran again");
    assert!(!split.path().join(".model-0000005.bpk.tmp-999").exists());
    let losses = |h: &[memvos_train::IterationStats]| h.iter().map(|s| s.loss).collect::<Vec<_>>();
    assert_eq!(losses(&a.history), losses(&b.history), "loss histories");
    let (wa, wb) = (tensors(&a.weights.unwrap()), tensors(&b.weights.unwrap()));
    let differing: Vec<&String> = wa.iter().zip(&wb).filter(|(x, y)| x != y).map(|(x, _)| &x.0).collect();
    assert!(differing.is_empty(), "{} tensors differ from the uninterrupted run's, e.g. {:?}", differing.len(), &differing[..differing.len().min(5)]);
}

#[test]
fn resume_and_output_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let r = tiny(&["iterations=2", "checkpoint_every=1"]);
    let err = train(&r, &TrainOptions { resume: true, ..opts(dir.path()) }, &mut memvos_train::trainer::Silent).unwrap_err();
    assert!(matches!(err, TrainError::Resume(_)) && err.to_string().contains("no checkpoint"), "{err}");
    train(&r, &opts(dir.path()), &mut memvos_train::trainer::Silent).unwrap();
    // A finished run's folder is not silently overwritten.
    let err = train(&r, &opts(dir.path()), &mut memvos_train::trainer::Silent).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    // A checkpoint of another stage or method.
    let other = tiny(&["iterations=2", "stage=2"]);
    let err = train(&other, &TrainOptions { resume: true, ..opts(dir.path()) }, &mut memvos_train::trainer::Silent).unwrap_err();
    assert!(err.to_string().contains("stage 3") && err.to_string().contains("stage 2"), "{err}");
    let mut mivos = other.clone();
    mivos.method = memvos_model::Method::Mivos;
    mivos.stage = 3;
    mivos.network = None;
    let err = train(&mivos, &TrainOptions { resume: true, ..opts(dir.path()) }, &mut memvos_train::trainer::Silent).unwrap_err();
    assert!(err.to_string().contains("STCN") && err.to_string().contains("MiVOS"), "{err}");
    // An output path that is a file.
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let err = train(&r, &opts(&file), &mut memvos_train::trainer::Silent).unwrap_err();
    assert!(err.to_string().contains("is a file"), "{err}");
}

#[test]
fn a_root_without_the_layout_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, extra) in [("davis", "set = \"train\"\nmax_skip = { values = [], after = [] }"), ("static", ""), ("bl30k", "max_skip = { values = [], after = [] }"), ("youtube", "max_skip = { values = [], after = [] }")] {
        let text = TINY.split("[[sources]]").next().unwrap().to_string() + &format!("[[sources]]\nkind = \"{kind}\"\nroot = \"nowhere\"\n{extra}\n");
        let r = recipe::parse(&text, false, kind, &[]).unwrap();
        let out = dir.path().join(kind);
        let err = train(&r, &TrainOptions { data: dir.path().to_path_buf(), ..opts(&out) }, &mut memvos_train::trainer::Silent).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("({kind})")) && msg.contains("nowhere"), "{msg}");
    }
}

#[test]
fn stage_zero_weights_start_stage_one_with_a_fifth_channel() {
    let dir = tempfile::tempdir().unwrap();
    let s0 = tiny(&["stage=0", "objects=1", "iterations=2", "checkpoint_every=2"]);
    let w0 = train(&s0, &opts(&dir.path().join("s0")), &mut memvos_train::trainer::Silent).unwrap().weights.unwrap();
    let (shape0, conv0) = weights::read_tensor(&w0, "value_encoder.conv1.weight").unwrap().unwrap();
    assert_eq!(shape0, vec![8, 4, 7, 7], "stage 0 is single-object: RGB + mask");
    let s1 = tiny(&["iterations=1", "checkpoint_every=1", "lr=1e-12"]);
    let w1 = train(&s1, &TrainOptions { init: Some(w0.clone()), ..opts(&dir.path().join("s1")) }, &mut memvos_train::trainer::Silent).unwrap().weights.unwrap();
    let (shape1, conv1) = weights::read_tensor(&w1, "value_encoder.conv1.weight").unwrap().unwrap();
    assert_eq!(shape1, vec![8, 5, 7, 7]);
    let plane = 49;
    for o in 0..8 {
        for (a, b) in conv0[o * 4 * plane..(o + 1) * 4 * plane].iter().zip(&conv1[o * 5 * plane..o * 5 * plane + 4 * plane]) {
            assert!((a - b).abs() < 1e-6, "the four stage-0 channels are kept");
        }
    }
    // The fifth channel: the 8 output channels' 49-long slices are orthonormal (their Gram
    // matrix is the identity), as torch.nn.init.orthogonal_ gives for 8 × 49.
    let fifth = |o: usize| &conv1[o * 5 * plane + 4 * plane..(o + 1) * 5 * plane];
    for i in 0..8 {
        for j in 0..8 {
            let d: f64 = fifth(i).iter().zip(fifth(j)).map(|(a, b)| *a as f64 * *b as f64).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((d - want).abs() < 1e-4, "fifth channel, output rows {i}·{j} = {d}, want {want}");
        }
    }
}

/// The gradients themselves, one device against two: one plain SGD step (`w₁ = w₀ − lr·g`, no
/// weight decay) recovers `g = (w₀ − w₁)/lr` per parameter. (Adam's first step is about
/// `lr·sign(g)` and Adam is scale-invariant, so its weights could not show a gradient off by a
/// constant factor.)
#[test]
fn two_devices_give_the_gradients_of_one() {
    let d = burn::tensor::Device::flex();
    let floats = |b: &[u8]| b.chunks_exact(4).map(|x| f32::from_le_bytes(x.try_into().unwrap()) as f64).collect::<Vec<f64>>();
    let run = |devices: Vec<burn::tensor::Device>, lr: &str| {
        let dir = tempfile::tempdir().unwrap();
        let r = tiny(&["iterations=1", "checkpoint_every=1", "bootstrap.start=100", "bootstrap.end=100", "optimizer=sgd", "weight_decay=0.0", &format!("lr={lr}")]);
        let w = train(&r, &TrainOptions { devices, ..opts(dir.path()) }, &mut memvos_train::trainer::Silent).unwrap().weights.unwrap();
        tensors(&w)
    };
    let start = run(vec![d.clone()], "1e-30"); // the initial weights (the step is below float32's resolution)
    let one = run(vec![d.clone()], "1.0");
    assert!(one == run(vec![d.clone()], "1.0"), "two one-device runs differ");
    let two = run(vec![d.clone(), d], "1.0");
    let (mut compared, mut moving) = (0, 0);
    for (((n, w0), (_, a)), (_, b)) in start.iter().zip(&one).zip(&two) {
        let (w0, a, b) = (floats(w0), floats(a), floats(b));
        let g1: Vec<f64> = w0.iter().zip(&a).map(|(x, y)| x - y).collect();
        let g2: Vec<f64> = w0.iter().zip(&b).map(|(x, y)| x - y).collect();
        let scale = g1.iter().fold(0f64, |m, g| m.max(g.abs()));
        if scale == 0.0 {
            continue; // parameters the loss does not reach (running statistics, unused heads)
        }
        moving += 1;
        // float32 weights of magnitude |w₀| carry the step with error ≈ 2⁻²⁴·|w₀|.
        for (i, (x, y)) in g1.iter().zip(&g2).enumerate() {
            let tol = 1e-3 * scale + 4.0 * f32::EPSILON as f64 * (1.0 + w0[i].abs());
            assert!((x - y).abs() <= tol, "{n}[{i}]: gradient {x:e} on one device, {y:e} on two");
        }
        compared += g1.len();
    }
    eprintln!("{moving} parameters with a gradient, {compared} gradient values agree");
    assert!(moving > 10, "the step moved only {moving} parameters");
}

#[test]
fn resume_takes_only_the_recipe_it_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let silent = &mut memvos_train::trainer::Silent;
    let r = tiny(&["iterations=4", "checkpoint_every=2"]);
    train(&r, &TrainOptions { stop_after: Some(1), ..opts(dir.path()) }, silent).unwrap();
    // A changed learning rate, seed, batch size or source is refused, listing the fields.
    let changed = tiny(&["iterations=4", "checkpoint_every=2", "lr=2e-3", "seed=8", "sources.0.videos=4"]);
    let err = train(&changed, &TrainOptions { resume: true, ..opts(dir.path()) }, silent).unwrap_err().to_string();
    for f in ["lr: 0.001 → 0.002", "seed: 7 → 8", "sources.0.videos: 3 → 4", "--resume-with-changes"] {
        assert!(err.contains(f), "{f:?} not in {err}");
    }
    let state = read_checkpoint(dir.path()).unwrap().unwrap();
    assert_eq!(state.recipe, r, "the refused resume left the checkpoint's recipe as it was");
    // Iterations below the checkpoint: a message that can be acted on.
    let short = tiny(&["iterations=1", "checkpoint_every=2"]);
    let err = train(&short, &TrainOptions { resume: true, ..opts(dir.path()) }, silent).unwrap_err().to_string();
    assert!(err.contains("after iteration 2") && err.contains("--set iterations=N for some N above 2"), "{err}");
    // Extending the run and changing the workers are allowed without the flag.
    let longer = tiny(&["iterations=6", "checkpoint_every=2", "workers=1"]);
    train(&longer, &TrainOptions { resume: true, stop_after: Some(3), ..opts(dir.path()) }, silent).unwrap();
    // With --resume-with-changes both recipes are recorded.
    let lr = tiny(&["iterations=6", "checkpoint_every=2", "workers=1", "lr=5e-4"]);
    train(&lr, &TrainOptions { resume: true, resume_with_changes: true, ..opts(dir.path()) }, silent).unwrap();
    let state = read_checkpoint(dir.path()).unwrap().unwrap();
    assert_eq!(state.recipe.lr, 5e-4);
    assert_eq!(state.earlier_recipes.len(), 1);
    assert_eq!((state.earlier_recipes[0].from_iteration, state.earlier_recipes[0].recipe.lr), (4, 1e-3));
    assert_eq!(state.earlier_recipes[0].changed, ["lr: 0.001 → 0.0005"]);
}

#[test]
fn a_checkpoint_that_is_not_this_runs_is_refused() {
    let silent = &mut memvos_train::trainer::Silent;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let r = tiny(&["iterations=4", "checkpoint_every=2"]);
    train(&r, &TrainOptions { stop_after: Some(1), ..opts(a.path()) }, silent).unwrap();
    train(&tiny(&["iterations=4", "checkpoint_every=2", "seed=99"]), &TrainOptions { stop_after: Some(1), ..opts(b.path()) }, silent).unwrap();
    let optim = "optim-0000001.bpk";
    let original = std::fs::read(a.path().join(optim)).unwrap();
    // Another run's optimiser state in its place: found by the checkpoint's SHA-256 ...
    std::fs::copy(b.path().join(optim), a.path().join(optim)).unwrap();
    let err = train(&r, &TrainOptions { resume: true, ..opts(a.path()) }, silent).unwrap_err().to_string();
    assert!(err.contains(optim) && err.contains("another run"), "{err}");
    // ... and, with no hash recorded (an older checkpoint), by its parameter ids.
    let json = a.path().join("checkpoint.json");
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    state["files_sha256"] = serde_json::Value::Null;
    std::fs::write(&json, serde_json::to_string(&state).unwrap()).unwrap();
    let err = train(&r, &TrainOptions { resume: true, ..opts(a.path()) }, silent).unwrap_err().to_string();
    assert!(err.contains("not this network's optimiser state"), "{err}");
    std::fs::write(a.path().join(optim), &original).unwrap();
    // An absurd iteration (u64::MAX would wrap to 0) or a history past it: damaged.
    let good = std::fs::read_to_string(&json).unwrap();
    let mut bad: serde_json::Value = serde_json::from_str(&good).unwrap();
    bad["iteration"] = serde_json::json!(u64::MAX);
    std::fs::write(&json, serde_json::to_string(&bad).unwrap()).unwrap();
    let err = train(&r, &TrainOptions { resume: true, ..opts(a.path()) }, silent).unwrap_err().to_string();
    assert!(err.contains("damaged"), "{err}");
    let mut bad: serde_json::Value = serde_json::from_str(&good).unwrap();
    bad["history"][0]["iteration"] = serde_json::json!(u64::MAX / 2);
    std::fs::write(&json, serde_json::to_string(&bad).unwrap()).unwrap();
    let err = train(&r, &TrainOptions { resume: true, ..opts(a.path()) }, silent).unwrap_err().to_string();
    assert!(err.contains("history") && err.contains("damaged"), "{err}");
    // The loss curve of an absurd history is drawn (clipped) without hanging.
    let t = std::time::Instant::now();
    let hist: Vec<memvos_train::IterationStats> = [0usize, usize::MAX / 3, 5, usize::MAX]
        .iter()
        .map(|&i| memvos_train::IterationStats { iteration: i, loss: 1.0, iou: 0.5, lr: 1e-3, seconds: 1.0 })
        .collect();
    memvos_train::plot::write_loss_curve(&a.path().join("absurd.png"), &hist).unwrap();
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    // The intact checkpoint still resumes.
    std::fs::write(&json, good).unwrap();
    train(&r, &TrainOptions { resume: true, ..opts(a.path()) }, silent).unwrap();
}

#[test]
fn training_data_is_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let silent = &mut memvos_train::trainer::Silent;
    // A DAVIS video with frames but no annotation: named.
    let root = dir.path().join("davis");
    std::fs::create_dir_all(root.join("ImageSets/2017")).unwrap();
    std::fs::write(root.join("ImageSets/2017/train.txt"), "bare\n").unwrap();
    memvos_data::io::write_frame(&root.join("JPEGImages/480p/bare/00000.jpg"), &memvos_data::Frame::filled(48, 64, [1, 2, 3]), 90).unwrap();
    std::fs::create_dir_all(root.join("Annotations/480p/bare")).unwrap();
    let text = TINY.split("[[sources]]").next().unwrap().to_string() + "[[sources]]\nkind = \"davis\"\nroot = \"davis\"\nmax_skip = { values = [], after = [] }\n";
    let r = recipe::parse(&text, false, "davis", &[]).unwrap();
    let err = train(&r, &TrainOptions { data: dir.path().to_path_buf(), ..opts(&dir.path().join("out")) }, silent).unwrap_err().to_string();
    assert!(err.contains("video bare has no annotated frame"), "{err}");
    // An output folder inside a data root.
    let err = train(&r, &TrainOptions { data: dir.path().to_path_buf(), ..opts(&root.join("runs")) }, silent).unwrap_err().to_string();
    assert!(err.contains("lies inside sources.0.root"), "{err}");
    // Bounds and budgets, each field in range but not their product.
    let e = recipe::parse(TINY, false, "t", &["workers=1000".into()]).unwrap_err().to_string();
    assert!(e.contains("workers = 1000"), "{e}");
    let e = recipe::parse(TINY, false, "t", &["batch_size=4096".into(), "crop=1024".into()]).unwrap_err().to_string();
    assert!(e.contains("batch_size × crop²"), "{e}");
    let e = recipe::parse(TINY, false, "t", &["workers=64".into(), "batch_size=16".into(), "crop=512".into()]).unwrap_err().to_string();
    assert!(e.contains("MiB budget"), "{e}");
    let e = recipe::parse(TINY, false, "t", &["sources.0.frames=100000".into(), "sources.0.height=4096".into(), "sources.0.width=4096".into()]);
    assert!(e.is_ok(), "the recipe itself is checked when opened");
    let r = e.unwrap();
    let err = train(&r, &opts(&dir.path().join("synth")), silent).unwrap_err().to_string();
    assert!(err.contains("budget"), "{err}");
}

/// The first wgpu adapter (Mesa's lavapipe in CI), or None where none answers (SKIPPED, unless
/// `MEMVOS_REQUIRE_WGPU` is set, as CI does).
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Option<burn::tensor::Device> {
    let found = burn::tensor::Device::enumerate(burn::tensor::DeviceType::Wgpu).into_iter().next();
    if found.is_none() {
        assert!(std::env::var_os("MEMVOS_REQUIRE_WGPU").is_none(), "MEMVOS_REQUIRE_WGPU is set but no wgpu adapter answered");
        eprintln!("SKIPPED: no wgpu adapter answered");
    }
    found
}

/// One step of the tiny recipe (SGD, lr 1, so the update is the gradient) on wgpu and on the
/// CPU from the same initial weights and the same batch: the same loss and the same gradient.
/// Tolerances: the loss within 1e-4 relative, every gradient within 1e-3 of its tensor's largest
/// (the two-device test's bound; both backends sum in float32 in different orders, through a
/// forward and a backward pass). Measured on lavapipe: loss 4.2e-7 relative, gradients 5.6e-5.
#[cfg(feature = "wgpu")]
#[test]
fn a_training_step_on_wgpu_gives_the_cpus_loss_and_gradients() {
    let Some(gpu) = wgpu_device() else { return };
    let cpu = burn::tensor::Device::flex();
    let floats = |b: &[u8]| b.chunks_exact(4).map(|x| f32::from_le_bytes(x.try_into().unwrap()) as f64).collect::<Vec<f64>>();
    let run = |device: &burn::tensor::Device, lr: &str| {
        let dir = tempfile::tempdir().unwrap();
        let r = tiny(&["iterations=1", "checkpoint_every=1", "bootstrap.start=100", "bootstrap.end=100", "optimizer=sgd", "weight_decay=0.0", &format!("lr={lr}")]);
        let report = train(&r, &TrainOptions { devices: vec![device.clone()], ..opts(dir.path()) }, &mut memvos_train::trainer::Silent).unwrap();
        (report.history[0].loss, tensors(&report.weights.unwrap()))
    };
    // The initial weights (the step is below float32's resolution): the same draw on both (the
    // trainer draws on the CPU); BatchNorm's running statistics, updated by the forward pass,
    // differ in the last bits.
    let (_, start) = run(&cpu, "1e-30");
    let (_, start_gpu) = run(&gpu, "1e-30");
    for ((n, a), (_, b)) in start.iter().zip(&start_gpu) {
        let (a, b) = (floats(a), floats(b));
        let err = a.iter().zip(&b).fold(0f64, |m, (x, y)| m.max((x - y).abs() / (1.0 + x.abs())));
        assert!(err <= 1e-5, "{n}: the initial weights depend on the device ({err:e})");
    }
    let (loss_cpu, one_cpu) = run(&cpu, "1.0");
    let (loss_gpu, one_gpu) = run(&gpu, "1.0");
    eprintln!("loss: CPU {loss_cpu:.7}, wgpu {loss_gpu:.7}");
    assert!((loss_cpu - loss_gpu).abs() <= WGPU_LOSS_RTOL * loss_cpu.abs(), "loss {loss_cpu} on the CPU, {loss_gpu} on wgpu");
    let (mut compared, mut moving, mut worst) = (0, 0, 0f64);
    for ((((n, w0), (_, w0_gpu)), (_, a)), (_, b)) in start.iter().zip(&start_gpu).zip(&one_cpu).zip(&one_gpu) {
        let (w0, w0_gpu, a, b) = (floats(w0), floats(w0_gpu), floats(a), floats(b));
        let g_cpu: Vec<f64> = w0.iter().zip(&a).map(|(x, y)| x - y).collect();
        let g_gpu: Vec<f64> = w0_gpu.iter().zip(&b).map(|(x, y)| x - y).collect();
        let scale = g_cpu.iter().fold(0f64, |m, g| m.max(g.abs()));
        if scale == 0.0 {
            continue;
        }
        moving += 1;
        for (i, (x, y)) in g_cpu.iter().zip(&g_gpu).enumerate() {
            let err = (x - y).abs();
            worst = worst.max(err / scale);
            // float32 weights of magnitude |w₀| carry the step with error ≈ 2⁻²⁴·|w₀| each.
            assert!(err <= WGPU_GRAD_RTOL * scale + 4.0 * f32::EPSILON as f64 * (1.0 + w0[i].abs()), "{n}[{i}]: gradient {x:e} on the CPU, {y:e} on wgpu (tensor's largest {scale:e})");
        }
        compared += g_cpu.len();
    }
    eprintln!("{moving} parameters with a gradient, {compared} gradient values, worst difference {worst:.2e} of the tensor's largest gradient");
    assert!(moving > 10, "the step moved only {moving} parameters");
}

#[cfg(feature = "wgpu")]
const WGPU_LOSS_RTOL: f64 = 1e-4;
#[cfg(feature = "wgpu")]
const WGPU_GRAD_RTOL: f64 = 1e-3;

/// On wgpu, a two-iteration run stopped after its first iteration's checkpoint and resumed ends
/// with the weights of an uninterrupted run, bit for bit.
#[cfg(feature = "wgpu")]
#[test]
fn a_stopped_run_on_wgpu_resumes_to_the_same_weights_bit_for_bit() {
    let Some(gpu) = wgpu_device() else { return };
    let r = tiny(&["iterations=2", "checkpoint_every=1"]);
    let on_gpu = |out: &Path| TrainOptions { devices: vec![gpu.clone()], ..opts(out) };
    let whole = tempfile::tempdir().unwrap();
    let a = train(&r, &on_gpu(whole.path()), &mut memvos_train::trainer::Silent).unwrap();
    let split = tempfile::tempdir().unwrap();
    let stopped = train(&r, &TrainOptions { stop_after: Some(0), ..on_gpu(split.path()) }, &mut memvos_train::trainer::Silent).unwrap();
    assert_eq!((stopped.ran, stopped.weights.is_none()), (1, true));
    assert_eq!(read_checkpoint(split.path()).unwrap().unwrap().iteration, 0);
    let b = train(&r, &TrainOptions { resume: true, ..on_gpu(split.path()) }, &mut memvos_train::trainer::Silent).unwrap();
    assert_eq!(b.ran, 1, "iteration 1 ran again");
    let losses = |h: &[memvos_train::IterationStats]| h.iter().map(|s| s.loss).collect::<Vec<_>>();
    assert_eq!(losses(&a.history), losses(&b.history), "loss histories");
    let (wa, wb) = (tensors(&a.weights.unwrap()), tensors(&b.weights.unwrap()));
    let differing: Vec<&String> = wa.iter().zip(&wb).filter(|(x, y)| x != y).map(|(x, _)| &x.0).collect();
    assert!(differing.is_empty(), "{} tensors differ from the uninterrupted run's, e.g. {:?}", differing.len(), &differing[..differing.len().min(5)]);
}

/// A tiny QDMN (ResNet-18 trunks of width 8; its quality head is the published one, with the
/// 36,864 → 1,024 layer that is over wgpu's 128 MiB buffer limit), two iterations.
#[cfg(feature = "wgpu")]
fn tiny_qdmn() -> Recipe {
    let toml = TINY
        .replace(r#"method = "stcn""#, r#"method = "qdmn""#)
        .replace(
            r#"network = { key_encoder = { depth = "R18", in_channels = 3, conv_bias = false, width = 8 }, value_encoder = { depth = "R18", in_channels = 5, conv_bias = true, width = 8 }, key_dim = 8, value_dim = 16, decoder = [16, 8] }"#,
            r#"network = { memory_encoder = { depth = "R18", in_channels = 5, conv_bias = true, width = 8 }, query_encoder = { depth = "R18", in_channels = 3, conv_bias = true, width = 8 }, key_dim = 8, value_dim = 16, decoder = [16, 8] }
quality_weight = 1.0"#,
        );
    assert!(toml.contains("qdmn") && toml.contains("memory_encoder"), "TINY changed: update tiny_qdmn");
    recipe::parse(&toml, false, "tiny-qdmn", &["iterations=2".into(), "checkpoint_every=1".into(), "batch_size=1".into(), "objects=1".into()]).unwrap()
}

/// QDMN trains on wgpu: its quality head's large layer is kept in blocks by the trainer on every
/// device, so a run stopped on wgpu resumes there bit for bit, resumes on the CPU too (the same
/// parameters and optimiser state) with the loss wgpu computes for that iteration (within the
/// STCN step's tolerance), and its exported weights hold the layer whole under its published name.
#[cfg(feature = "wgpu")]
#[test]
fn qdmn_trains_on_wgpu_and_its_checkpoints_resume_on_either_device() {
    let Some(gpu) = wgpu_device() else { return };
    let r = tiny_qdmn();
    let on = |device: &burn::tensor::Device, out: &Path| TrainOptions { devices: vec![device.clone()], ..opts(out) };
    let silent = || memvos_train::trainer::Silent;
    let whole = tempfile::tempdir().unwrap();
    let a = train(&r, &on(&gpu, whole.path()), &mut silent()).unwrap();
    let stopped = tempfile::tempdir().unwrap();
    let s = train(&r, &TrainOptions { stop_after: Some(0), ..on(&gpu, stopped.path()) }, &mut silent()).unwrap();
    assert_eq!(s.ran, 1);
    let moved = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(stopped.path()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), moved.path().join(e.file_name())).unwrap();
    }
    let b = train(&r, &TrainOptions { resume: true, ..on(&gpu, stopped.path()) }, &mut silent()).unwrap();
    let losses = |h: &[memvos_train::IterationStats]| h.iter().map(|s| s.loss).collect::<Vec<_>>();
    assert_eq!(b.ran, 1);
    assert_eq!(losses(&a.history), losses(&b.history), "loss histories");
    let (wa, wb) = (tensors(a.weights.as_ref().unwrap()), tensors(b.weights.as_ref().unwrap()));
    let differing: Vec<&String> = wa.iter().zip(&wb).filter(|(x, y)| x != y).map(|(x, _)| &x.0).collect();
    assert!(differing.is_empty(), "{} tensors differ from the uninterrupted run's, e.g. {:?}", differing.len(), &differing[..differing.len().min(5)]);

    let c = train(&r, &TrainOptions { resume: true, ..on(&burn::tensor::Device::flex(), moved.path()) }, &mut silent()).unwrap();
    assert_eq!((c.ran, c.last), (1, Some(1)), "the wgpu checkpoint resumed on the CPU");
    // Iteration 1 from the same weights and batch, on the CPU and on wgpu: the same loss.
    let (l_cpu, l_gpu) = (c.history[1].loss, a.history[1].loss);
    let secs = |h: &[memvos_train::IterationStats]| h.iter().map(|s| format!("{:.1}", s.seconds)).collect::<Vec<_>>().join(", ");
    eprintln!("QDMN iteration 1 loss: CPU {l_cpu:.7}, wgpu {l_gpu:.7}; steps: wgpu {} s, CPU {} s", secs(&a.history), secs(&c.history[1..]));
    assert!((l_cpu - l_gpu).abs() <= WGPU_LOSS_RTOL * l_cpu.abs(), "loss {l_cpu} on the CPU, {l_gpu} on wgpu");

    let bytes = std::fs::read(a.weights.as_ref().unwrap()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("score.fc1.weight").unwrap().shape(), &[1024, 36864]);
    assert!(st.names().iter().all(|n| !n.contains("fc1_blocks")), "the export holds the blocks");
    let net = memvos_model::load_network(a.weights.as_ref().unwrap(), None, &gpu).unwrap();
    assert_eq!(net.method(), memvos_model::Method::Qdmn);
}
