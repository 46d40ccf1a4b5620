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
    TrainOptions { data: out.to_path_buf(), out: out.to_path_buf(), resume: false, init: None, devices: vec![], stop_after: None }
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
    // The fifth channel: orthonormal columns over the 8 output rows of a 49-long slice.
    let fifth: Vec<f32> = (0..8).flat_map(|o| conv1[o * 5 * plane + 4 * plane..(o + 1) * 5 * plane].to_vec()).collect();
    let norm: f32 = fifth[..plane].iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
}

#[test]
fn two_devices_give_the_update_of_one() {
    let d = burn::tensor::Device::flex();
    let run = |devices: Vec<burn::tensor::Device>| {
        let dir = tempfile::tempdir().unwrap();
        let r = tiny(&["iterations=1", "checkpoint_every=1", "bootstrap.start=100", "bootstrap.end=100"]);
        let w = train(&r, &TrainOptions { devices, ..opts(dir.path()) }, &mut memvos_train::trainer::Silent).unwrap().weights.unwrap();
        let st = tensors(&w);
        (dir, st)
    };
    let (_a, one) = run(vec![d.clone()]);
    let (_c, again) = run(vec![d.clone()]);
    assert!(one == again, "two one-device runs differ");
    let (_b, two) = run(vec![d.clone(), d]);
    let mut worst = 0f32;
    for ((n, a), (_, b)) in one.iter().zip(&two) {
        for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
            let (x, y) = (f32::from_le_bytes(x.try_into().unwrap()), f32::from_le_bytes(y.try_into().unwrap()));
            worst = worst.max((x - y).abs());
            assert!((x - y).abs() <= 1e-4 * (1.0 + x.abs()), "{n}: {x} vs {y}");
        }
    }
    eprintln!("largest weight difference, one device vs two: {worst:e}");
}
