//! The example binaries as a user meets them: hostile arguments and files give one human line
//! on stderr (`error: …`, the message and its causes) and exit code 1, never a panic, an abort or
//! a debug dump; checks come before heavy work; a killed run resumes to the same outputs.
//!
//! The binaries are the ones `cargo test --workspace` builds beside this test
//! (`target/<profile>/examples/`). A test whose binary was not built fails, saying how to build
//! it (`cargo test` cannot build it from inside: it holds the build directory's lock).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use memvos::data::synth::{SynthConfig, write_dataset};
use memvos::data::{LabelMap, Palette, io, write_mask};

fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps").join("examples");
    let p = dir.join(name);
    assert!(p.is_file(), "the example {} was not built: run `cargo test --workspace` (or `cargo build --examples`) first", p.display());
    Some(p)
}

fn run(name: &str, args: &[&str]) -> Option<Output> {
    let bin = example(name)?;
    Some(Command::new(bin).args(args).stdin(Stdio::null()).output().unwrap())
}

/// Asserts a failure with exit code 1 and one stderr line `error: …` containing every `needle`.
fn fails_with(name: &str, args: &[&str], needles: &[&str]) {
    let Some(out) = run(name, args) else { return };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(out.status.code(), Some(1), "{name} {args:?}: exit {:?}, stderr {stderr}", out.status.code());
    assert_eq!(lines.len(), 1, "{name} {args:?}: one line expected, got {stderr}");
    assert!(lines[0].starts_with("error: "), "{name} {args:?}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains(" {") && !stderr.contains("RUST_BACKTRACE"), "{name} {args:?}: not a human message: {stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "{name} {args:?}: {n:?} not in {stderr}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small synthetic DAVIS root.
fn synth_root(dir: &Path, videos: usize, frames: usize, seed: u64) -> PathBuf {
    let root = dir.join("davis");
    let cfg = SynthConfig { videos, frames, height: 48, width: 80, min_objects: 1, max_objects: 2, entry_probability: 0.0, seed, ..Default::default() };
    write_dataset(&root, &cfg, |_| {}).unwrap();
    root
}

#[test]
fn size_arguments_are_checked_not_allocated() {
    for b in ["1e30", "1e8", "0", "NaN", "2.5"] {
        fails_with("evaluate", &["--davis", "nowhere", "--results", "nowhere", "--bound-th", b], &["--bound-th"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    for size in ["99999999999x99999999999", "16x200000", "100000x100000"] {
        fails_with("synth", &["--out", s(&out), "--size", size], &["--size", "at most 8192"]);
    }
    fails_with("long_video", &["--frames", "0", "--device", "cpu"], &["--frames"]);
}

#[test]
fn photo_folders_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let missing = dir.path().join("no-photos-here");
    fails_with("synth", &["--out", s(&out), "--videos", "1", "--photos", s(&missing)], &["no-photos-here", "missing folder"]);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails_with("synth", &["--out", s(&out), "--videos", "1", "--photos", s(&empty)], &["empty", "no .jpg"]);
    std::fs::write(empty.join("cut.jpg"), b"\xff\xd8\xff\xe0 not really").unwrap();
    fails_with("synth", &["--out", s(&out), "--videos", "1", "--photos", s(&empty)], &["cut.jpg"]);
    let train = dir.path().join("t");
    fails_with("train", &["--recipe", "stcn/s0", "--out", s(&train), "--photos", s(&empty)], &["--photos", "no synthetic source"]);
    fails_with("train", &["--recipe", "stcn/cpu-photos", "--out", s(&train), "--photos", s(&missing)], &["no-photos-here"]);
    // A real folder: photo videos written and read back.
    std::fs::remove_file(empty.join("cut.jpg")).unwrap();
    let photo = memvos::data::Frame { rgb: ndarray::Array3::from_shape_fn((80, 120, 3), |(y, x, c)| ((y * 2 + x * 3 + c * 90) % 256) as u8) };
    memvos::data::io::write_frame(&empty.join("p.jpg"), &photo, 90).unwrap();
    let Some(done) = run("synth", &["--out", s(&out), "--videos", "2", "--frames", "4", "--size", "48x80", "--photos", s(&empty)]) else { return };
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(out.join("JPEGImages/480p/synth-0001/00003.jpg").is_file());
}

#[test]
fn runner_arguments_and_outputs_are_checked_before_the_network_loads() {
    let dir = tempfile::tempdir().unwrap();
    let v = memvos::data::synth::generate_video(&SynthConfig { videos: 1, frames: 3, height: 48, width: 80, min_objects: 1, max_objects: 1, entry_probability: 0.0, ..Default::default() }, 0).unwrap();
    let frames = dir.path().join("frames");
    let masks = dir.path().join("masks");
    for (t, f) in v.frames.iter().enumerate() {
        io::write_frame(&frames.join(format!("{t:05}.jpg")), f, 95).unwrap();
    }
    write_mask(&masks.join("00000.png"), &v.masks[0], &Palette::davis()).unwrap();
    let out = dir.path().join("out");
    let base = ["--frames", s(&frames), "--masks", s(&masks), "--device", "cpu"];
    let with = |extra: &[&str]| -> Vec<String> { base.iter().chain(extra).map(|x| x.to_string()).collect() };
    let call = |a: Vec<String>, needles: &[&str]| fails_with("segment", &a.iter().map(String::as_str).collect::<Vec<_>>(), needles);
    call(with(&["--out", s(&out), "--short-side", "100000"]), &["--short-side 100000"]);
    call(with(&["--out", s(&out), "--short-side", "0"]), &["--short-side 0"]);
    call(with(&["--out", s(&out), "--top-k", "0"]), &["--top-k"]);
    call(with(&["--out", s(&out), "--quality-threshold", "1.5"]), &["--quality-threshold", "(0, 1]"]);
    call(with(&["--out", s(&out), "--method", "stcn", "--kernel"]), &["--kernel"]);
    call(with(&["--out", s(&out), "--threads", "0"]), &["--threads", "0: expected 1 to 1024"]);
    // bf16 needs memvos's CPU kernels: asked of burn's, refused (no silent float32 run).
    call(with(&["--out", s(&out), "--cpu-kernels", "burn", "--precision", "bf16"]), &["--precision", "bf16", "burn's kernels were asked for", "use fp32"]);
    // The output is a file, or in a folder that cannot be created: refused before any work.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    call(with(&["--out", s(&file)]), &["--out", "is a file"]);
    call(with(&["--out", s(&file.join("sub"))]), &["--out", "cannot be created"]);
    // Weights of an unknown format, and a converter target of one, named without reading input.
    call(with(&["--out", s(&out), "--weights", s(&file)]), &["unknown extension"]);
    fails_with("weights", &["convert", "--from", "absent.pth", "--to", s(&dir.path().join("x.onnx"))], &["x.onnx", "unknown extension"]);
    // Published names: an unknown one lists the known ones.
    fails_with("weights", &["download", "stm"], &["unknown published weights \"stm\"", "stcn, mivos, qdmn"]);
    call(with(&["--out", s(&out), "--weights", "stm"]), &["weights stm"]);
    // An all-zero first mask: said so, not "a GIF needs at least one frame".
    write_mask(&masks.join("00000.png"), &LabelMap::zeros(48, 80), &Palette::davis()).unwrap();
    call(with(&["--out", s(&out)]), &["no mask shows an object"]);
}

#[test]
fn dataset_roots_are_checked_with_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = synth_root(dir.path(), 1, 3, 1);
    let out = dir.path().join("out");
    // An empty list of videos.
    std::fs::write(root.join("ImageSets/2017/val.txt"), "").unwrap();
    fails_with("eval_davis", &["--davis", s(&root), "--out", s(&out), "--device", "cpu"], &["holds no video"]);
    // A root without JPEGImages: named, with the video and frame.
    std::fs::write(root.join("ImageSets/2017/val.txt"), "synth-0000\n").unwrap();
    std::fs::rename(root.join("JPEGImages"), dir.path().join("moved")).unwrap();
    fails_with("eval_davis", &["--davis", s(&root), "--out", s(&out), "--device", "cpu"], &["synth-0000", "00000", "JPEGImages"]);
    fails_with("eval_davis", &["--davis", s(&dir.path().join("nope")), "--out", s(&out)], &["nope"]);
}

#[test]
fn youtube_vos_paths_refuse_what_would_be_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("yt");
    let pal = Palette::davis();
    let frame = memvos::data::Frame::filled(20, 30, [10, 20, 30]);
    for split in ["train", "valid"] {
        for f in ["00000", "00005", "00010"] {
            io::write_frame(&root.join(format!("{split}/JPEGImages/v/{f}.jpg")), &frame, 90).unwrap();
        }
    }
    let obj = LabelMap::new(ndarray::Array2::from_shape_fn((20, 30), |(y, x)| if y > 5 && x > 5 { 3 } else { 0 }));
    for f in ["00000", "00005", "00010"] {
        write_mask(&root.join(format!("train/Annotations/v/{f}.png")), &obj, &pal).unwrap();
    }
    // valid: only the first-appearance mask, and meta.json says object 3 starts at 00005.
    write_mask(&root.join("valid/Annotations/v/00000.png"), &LabelMap::zeros(20, 30), &pal).unwrap();
    let meta = r#"{"videos": {"v": {"objects": {"3": {"category": "cat", "frames": ["00005", "00010"]}}}}}"#;
    std::fs::write(root.join("valid/meta.json"), meta).unwrap();
    std::fs::write(root.join("train/meta.json"), meta.replace("[\"00005\", \"00010\"]", "[\"00000\", \"00005\", \"00010\"]")).unwrap();
    let sub = dir.path().join("sub");
    // A zip (or a list) written over the dataset's meta.json or into the results is refused,
    // and the file is left as it was.
    let meta_before = std::fs::read(root.join("valid/meta.json")).unwrap();
    fails_with("youtube_vos", &["--root", s(&root), "--split", "valid", "--results", s(&sub), "--zip", s(&root.join("valid/meta.json"))], &["--zip", "lies inside --root"]);
    fails_with("youtube_vos", &["--root", s(&root), "--split", "valid", "--results", s(&sub), "--zip", s(&sub.join("Annotations/v/00000.png"))], &["--zip", "lies inside --results"]);
    fails_with("youtube_vos", &["--root", s(&root), "--split", "train", "--holdout", "1", "--list", s(&root.join("train/meta.json"))], &["--list", "lies inside --root"]);
    assert_eq!(std::fs::read(root.join("valid/meta.json")).unwrap(), meta_before);
    // Scoring a split without full annotations.
    fails_with("youtube_vos", &["--root", s(&root), "--split", "valid", "--results", s(&sub), "--score", "1"], &["split valid", "full annotations"]);
    // More held-out videos than there are.
    fails_with("youtube_vos", &["--root", s(&root), "--split", "train", "--results", s(&sub), "--score", "10"], &["--score 10", "1 video(s)"]);
    // A first-appearance mask missing its object: named with video, object and frame.
    fails_with("eval_youtube", &["--root", s(&root), "--out", s(&sub), "--device", "cpu"], &["video v", "object 3", "00005"]);
    // --score lists the held-out videos, --list writes them for eval_youtube --videos.
    let list = dir.path().join("heldout.txt");
    let out = run("youtube_vos", &["--root", s(&root), "--split", "train", "--holdout", "1", "--list", s(&list)]);
    if let Some(out) = out {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("held-out videos (seed 0): v"));
        assert_eq!(std::fs::read_to_string(&list).unwrap(), "v\n");
    }
    std::fs::write(&list, "w\n").unwrap();
    fails_with("eval_youtube", &["--root", s(&root), "--split", "train", "--out", s(&sub), "--videos", s(&list), "--device", "cpu"], &["--videos", "w, which is not in the dataset"]);
}

fn read_outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for e in walk(dir) {
        let rel = e.strip_prefix(dir).unwrap().display().to_string();
        v.push((rel, std::fs::read(&e).unwrap()));
    }
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// Runs `bin` with `args` until it reaches the pause point `label` (see
/// `memvos::data::failpoint`), then SIGKILLs it there. Fails if the child ends before.
fn kill_at(bin: &Path, args: &[String], label: &str, marker_dir: &Path) {
    let marker = marker_dir.join(format!("paused-{}", label.replace(['/', ':'], "_")));
    let mut child = Command::new(bin)
        .args(args)
        .env("MEMVOS_PAUSE_AT", label)
        .env("MEMVOS_PAUSE_MARKER", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !marker.is_file() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{} ended ({status}) before reaching {label}: nothing was killed", bin.display());
        }
        assert!(start.elapsed() < Duration::from_secs(300), "{label} was never reached");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.try_wait().unwrap().is_none(), "the child ended at {label} before the kill");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_killed_eval_davis_run_resumes_to_the_same_outputs() {
    let Some(bin) = example("eval_davis") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = synth_root(dir.path(), 4, 10, 3);
    let args = |out: &Path| vec!["--davis".to_string(), s(&root).into(), "--out".into(), s(out).into(), "--device".into(), "cpu".into()];
    // The uninterrupted run.
    let whole = dir.path().join("whole");
    let o = Command::new(&bin).args(args(&whole)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same run, SIGKILLed between two masks of its second video: the first video is
    // complete, the second half written.
    let cut = dir.path().join("cut");
    kill_at(&bin, &args(&cut), "mask:synth-0001/00004", dir.path());
    assert!(cut.join("synth-0001/00004.png").is_file() && !cut.join("synth-0001/00005.png").exists(), "not killed mid-video");
    // Debris of a write interrupted by a kill.
    std::fs::write(cut.join("synth-0001/.00005.png.tmp-4242"), b"half").unwrap();
    let o = Command::new(&bin).args(args(&cut)).arg("--resume").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("temporary file(s) of an interrupted run"), "{stdout}");
    assert!(stdout.contains("wrote 3 videos") && stdout.contains("(1 complete from before)"), "the first video is kept, the half-written one redone: {stdout}");
    assert_eq!(read_outputs(&whole), read_outputs(&cut), "the resumed outputs differ from the uninterrupted run's");
}

#[test]
fn eval_davis_shards_merge_to_the_whole_run() {
    let Some(bin) = example("eval_davis") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = synth_root(dir.path(), 5, 4, 11);
    let run = |out: &Path, extra: &[&str]| {
        let o = Command::new(&bin).args(["--davis", s(&root), "--out", s(out), "--device", "cpu"]).args(extra).output().unwrap();
        assert!(o.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let whole = dir.path().join("whole");
    run(&whole, &[]);
    let merged = dir.path().join("merged");
    let mut counts = Vec::new();
    for i in 1..=3 {
        let stdout = run(&merged, &["--shard", &format!("{i}/3")]);
        let line = stdout.lines().find(|l| l.starts_with(&format!("shard {i}/3: "))).unwrap_or_else(|| panic!("no shard line in {stdout}"));
        counts.push(line.to_string());
    }
    assert_eq!(counts, ["shard 1/3: 2 of 5 videos", "shard 2/3: 2 of 5 videos", "shard 3/3: 1 of 5 videos"]);
    assert_eq!(read_outputs(&whole), read_outputs(&merged), "three shards merged differ from one run");
    // A malformed value is a usage error (clap's exit code 2) naming the flag and the range.
    let o = Command::new(&bin).args(["--davis", s(&root), "--out", s(&merged), "--shard", "4/3"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--shard") && stderr.contains("4/3: the index must be in 1..=3"), "{stderr}");
    fails_with("eval_davis", &["--davis", s(&root), "--out", s(&merged), "--shard", "6/6", "--device", "cpu"], &["--shard 6/6", "no video"]);
}

/// A tiny STCN recipe for the `train` example (the trainer's own tests use the same sizes).
const TINY_RECIPE: &str = r#"
method = "stcn"
stage = 3
network = { key_encoder = { depth = "R18", in_channels = 3, conv_bias = false, width = 8 }, value_encoder = { depth = "R18", in_channels = 5, conv_bias = true, width = 8 }, key_dim = 8, value_dim = 16, decoder = [16, 8] }
iterations = 12
batch_size = 2
lr = 1e-3
lr_steps = [9]
weight_decay = 1e-7
bootstrap = { start = 4, end = 8, p = 0.5 }
crop = 32
objects = 2
seed = 7
checkpoint_every = 2
workers = 1

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

#[test]
fn a_killed_training_run_resumes_to_the_same_weights() {
    let Some(bin) = example("train") else { return };
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("tiny.toml");
    std::fs::write(&recipe, TINY_RECIPE).unwrap();
    let args = |out: &Path| vec!["--recipe".to_string(), s(&recipe).into(), "--out".into(), s(out).into(), "--no-dashboard".into()];
    let whole = dir.path().join("whole");
    let o = Command::new(&bin).args(args(&whole)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same run, SIGKILLed in the middle of writing its second checkpoint (after iteration
    // 4: the model file is written, the optimiser state and checkpoint.json are not) ...
    let cut = dir.path().join("cut");
    kill_at(&bin, &args(&cut), "checkpoint:4", dir.path());
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(cut.join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(state["iteration"], 1, "checkpoint.json still names the first checkpoint");
    assert!(cut.join("model-0000003.bpk").is_file() && !cut.join("optim-0000003.bpk").exists(), "not killed mid-checkpoint");
    // ... resumed from the first, SIGKILLed again mid-write of the fourth (iteration 8) ...
    let resume = |out: &Path| {
        let mut a = args(out);
        a.push("--resume".into());
        a
    };
    kill_at(&bin, &resume(&cut), "checkpoint:8", dir.path());
    // ... and resumed to the end.
    let o = Command::new(&bin).args(resume(&cut)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tensors = |p: PathBuf| {
        let bytes = std::fs::read(p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, t)| (n, t.data().to_vec())).collect();
        v.sort();
        v
    };
    let (a, b) = (tensors(whole.join("final.safetensors")), tensors(cut.join("final.safetensors")));
    assert_eq!(a.len(), b.len());
    let differing: Vec<&String> = a.iter().zip(&b).filter(|(x, y)| x != y).map(|(x, _)| &x.0).collect();
    assert!(differing.is_empty(), "{} tensors differ from the uninterrupted run's, e.g. {:?}", differing.len(), &differing[..differing.len().min(5)]);
    // Only the newest two checkpoints stay (keep_checkpoints = 2), plus the final weights.
    let models: Vec<String> = std::fs::read_dir(&cut).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("model-")).collect();
    let mut models = models;
    models.sort();
    assert_eq!(models, ["model-0000009.bpk", "model-0000011.bpk"]);
    // Resuming without a checkpoint is a clear error.
    fails_with("train", &["--recipe", s(&recipe), "--out", s(&dir.path().join("empty")), "--resume", "--no-dashboard"], &["--resume", "no checkpoint"]);
}

/// Every file below `dir` with its bytes (to prove a refused run touched nothing).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    if dir.is_dir() { read_outputs(dir) } else { Vec::new() }
}

#[test]
fn outputs_never_land_on_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let root = synth_root(dir.path(), 1, 3, 5);
    let frames = root.join("JPEGImages/480p/synth-0000");
    let masks = root.join("Annotations/480p/synth-0000");
    let before = snapshot(&root);
    let seg = |out: &Path, needles: &[&str]| fails_with("segment", &["--frames", s(&frames), "--masks", s(&masks), "--out", s(out), "--device", "cpu"], needles);
    // Is, lies inside, contains; through `..` and a symlink.
    seg(&masks, &["--out", "is --masks", "choose another --out"]);
    seg(&frames, &["is --frames"]);
    seg(&masks.join("pred"), &["lies inside --masks"]);
    seg(&root.join("Annotations"), &["contains --masks"]);
    seg(&frames.join("../synth-0000/./x"), &["lies inside --frames"]);
    #[cfg(unix)]
    {
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&masks, &link).unwrap();
        seg(&link, &["is --masks"]);
    }
    // The masks folder given as the frames folder.
    fails_with("segment", &["--frames", s(&frames), "--masks", s(&frames), "--out", s(&dir.path().join("o")), "--device", "cpu"], &["ambiguous", "--masks and --frames are the same folder"]);
    // eval_davis onto the dataset's own annotations; evaluate with the dataset as results.
    fails_with("eval_davis", &["--davis", s(&root), "--out", s(&root.join("Annotations/480p")), "--device", "cpu"], &["--out", "lies inside --davis"]);
    fails_with("evaluate", &["--davis", s(&root), "--results", s(&root.join("Annotations/480p"))], &["--results", "lies inside --davis"]);
    // A converter writing over its source.
    let w = dir.path().join("w.safetensors");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/memvos-small-stcn.safetensors"), &w).unwrap();
    fails_with("weights", &["convert", "--from", s(&w), "--to", s(&w)], &["--to", "is --from"]);
    // synth into a folder that holds someone's data.
    fails_with("synth", &["--out", s(&root.join("Annotations")), "--videos", "1"], &["--out", "synth did not write"]);
    assert_eq!(before, snapshot(&root), "a refused run changed the dataset");
}

#[test]
fn resume_continues_only_the_run_that_wrote_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = synth_root(dir.path(), 2, 3, 9);
    let video = |i: usize| (root.join(format!("JPEGImages/480p/synth-000{i}")), root.join(format!("Annotations/480p/synth-000{i}")));
    let out = dir.path().join("out");
    let seg = |i: usize, extra: &[&str]| -> Vec<String> {
        let (f, m) = video(i);
        let mut a: Vec<String> = ["--frames", s(&f), "--masks", s(&m), "--out", s(&out), "--device", "cpu"].iter().map(|x| x.to_string()).collect();
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let o = Command::new(example("segment").unwrap()).args(seg(0, &[])).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let written = snapshot(&out);
    // The same run resumes (nothing to do) ...
    let o = Command::new(example("segment").unwrap()).args(seg(0, &["--resume"])).output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("nothing to do"), "{}", String::from_utf8_lossy(&o.stdout));
    // ... another video, other weights or other flags do not.
    let a = seg(1, &["--resume"]);
    fails_with("segment", &a.iter().map(String::as_str).collect::<Vec<_>>(), &["--resume", "another run", "--frames was", "synth-0000", "now", "synth-0001"]);
    let a = seg(0, &["--resume", "--top-k", "5"]);
    fails_with("segment", &a.iter().map(String::as_str).collect::<Vec<_>>(), &["--top-k was default, now 5"]);
    let formula = dir.path().join("formula.safetensors");
    let o = Command::new(example("weights").unwrap()).args(["formula", "--method", "stcn", "--out", s(&formula)]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = seg(0, &["--resume", "--weights", s(&formula)]);
    fails_with("segment", &a.iter().map(String::as_str).collect::<Vec<_>>(), &["--weights was the shipped default model", "now sha256:"]);
    assert_eq!(written, snapshot(&out), "a refused resume changed the outputs");
    // A folder of masks nobody recorded is not "complete" either.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    write_mask(&foreign.join("00000.png"), &LabelMap::zeros(48, 80), &Palette::davis()).unwrap();
    let (f, m) = video(0);
    fails_with("segment", &["--frames", s(&f), "--masks", s(&m), "--out", s(&foreign), "--device", "cpu", "--resume"], &["no memvos-run.json"]);
}

#[test]
fn readers_and_counts_say_what_they_checked() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/memvos-small-stcn.safetensors");
    let o = run("weights", &["inspect", "--file", s(&shipped)]).unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("every tensor read and checked"), "{}", String::from_utf8_lossy(&o.stdout));
    let half = dir.path().join("half.safetensors");
    let bytes = std::fs::read(&shipped).unwrap();
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    fails_with("weights", &["inspect", "--file", s(&half)], &["half.safetensors", "damaged"]);
    fails_with("stage_times", &["--repeats", "0", "--device", "cpu"], &["--repeats 0"]);
    // A recipe with a TOML syntax error: one line with its place.
    let recipe = dir.path().join("bad.toml");
    std::fs::write(&recipe, "method = \"stcn\"\nstage = 3\nlr = = 1\n").unwrap();
    fails_with("train", &["--recipe", s(&recipe), "--out", s(&dir.path().join("o")), "--no-dashboard"], &["bad.toml", "line 3, column"]);
}

#[test]
fn segment_takes_annotations_of_any_frame_in_either_direction() {
    let dir = tempfile::tempdir().unwrap();
    let root = synth_root(dir.path(), 1, 8, 12);
    let frames = root.join("JPEGImages/480p/synth-0000");
    let gt = root.join("Annotations/480p/synth-0000");
    let seg = |ann: &Path, out: &Path, direction: &str| -> Output {
        Command::new(example("segment").unwrap()).args(["--frames", s(&frames), "--annotations", s(ann), "--direction", direction, "--out", s(out), "--device", "cpu"]).output().unwrap()
    };
    let pngs = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".png")).collect();
        v.sort();
        v
    };
    // Annotated on its last frame only: backward fills the whole video.
    let last = dir.path().join("last");
    std::fs::create_dir_all(&last).unwrap();
    std::fs::copy(gt.join("00007.png"), last.join("00007.png")).unwrap();
    let out = dir.path().join("back");
    let o = seg(&last, &out, "backward");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(pngs(&out), (0..8).map(|i| format!("{i:05}.png")).collect::<Vec<_>>());
    assert_eq!(memvos::data::read_mask(&out.join("00007.png")).unwrap().labels, memvos::data::read_mask(&gt.join("00007.png")).unwrap().labels, "the annotated frame is its annotation");
    assert!(out.join("overlay.gif").is_file());
    // Forward from the last frame writes only it; both from frames 0 and 7 writes every frame.
    let o = seg(&last, &dir.path().join("fwd"), "forward");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(pngs(&dir.path().join("fwd")), vec!["00007.png".to_string()]);
    let two = dir.path().join("two");
    std::fs::create_dir_all(&two).unwrap();
    for f in ["00000.png", "00007.png"] {
        std::fs::copy(gt.join(f), two.join(f)).unwrap();
    }
    let o = seg(&two, &dir.path().join("both"), "both");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(pngs(&dir.path().join("both")).len(), 8);
    // --overlay mp4: overlay.mp4 (an AV1 MP4; decoded in a browser by memvos-studio's test) instead of the GIF.
    let mp4 = dir.path().join("mp4");
    let o = Command::new(example("segment").unwrap()).args(["--frames", s(&frames), "--annotations", s(&two), "--out", s(&mp4), "--device", "cpu", "--overlay", "mp4"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("overlay.mp4"), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(&std::fs::read(mp4.join("overlay.mp4")).unwrap()[4..8], b"ftyp");
    assert!(!mp4.join("overlay.gif").exists());
    // A flag's value clap refuses: exit 2 (a usage error), the reason on the error line.
    let o = run("segment", &["--frames", s(&frames), "--annotations", s(&two), "--out", s(&dir.path().join("webm")), "--overlay", "webm"]).unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.lines().next().is_some_and(|l| l.starts_with("error: ") && l.contains("--overlay webm") && l.contains("use mp4")), "{stderr}");
    // Errors name the file: a name that is no frame, another size, an empty folder.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(gt.join("00000.png"), bad.join("frame-zero.png")).unwrap();
    let args = |ann: &Path| vec!["--frames".to_string(), s(&frames).into(), "--annotations".into(), s(ann).into(), "--out".into(), s(&dir.path().join("o")).into(), "--device".into(), "cpu".into()];
    let call = |a: Vec<String>, needles: &[&str]| fails_with("segment", &a.iter().map(String::as_str).collect::<Vec<_>>(), needles);
    call(args(&bad), &["frame-zero.png", "no frame is named frame-zero"]);
    std::fs::remove_file(bad.join("frame-zero.png")).unwrap();
    write_mask(&bad.join("00003.png"), &LabelMap::zeros(10, 10), &Palette::davis()).unwrap();
    call(args(&bad), &["00003.png", "10x10", "80x48"]);
    std::fs::remove_file(bad.join("00003.png")).unwrap();
    call(args(&bad), &["bad", "no annotation"]);
    // --direction backward without annotations is refused.
    fails_with("segment", &["--frames", s(&frames), "--masks", s(&gt), "--direction", "backward", "--out", s(&dir.path().join("o")), "--device", "cpu"], &["--direction", "--annotations"]);
}

#[test]
fn correspond_writes_a_heat_map_and_the_studio_checks_its_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = synth_root(dir.path(), 1, 3, 14);
    let frames = root.join("JPEGImages/480p/synth-0000");
    let heat = dir.path().join("heat.png");
    let (a, b) = (frames.join("00000.jpg"), frames.join("00002.jpg"));
    let o = run("correspond", &["--from", s(&a), "--to", s(&b), "--point", "40,24", "--out", s(&heat), "--device", "cpu"]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("is most like"));
    let img = image::open(&heat).unwrap();
    assert_eq!((img.width(), img.height()), (80, 48));
    fails_with("correspond", &["--from", s(&a), "--to", s(&b), "--point", "400,24", "--out", s(&heat), "--device", "cpu"], &["--point", "outside"]);
    fails_with("correspond", &["--from", s(&a), "--to", s(&b), "--point", "1,1", "--out", s(&b), "--device", "cpu"], &["--out", "is --to"]);
    // The studio refuses an export folder on its inputs and bad annotations before serving.
    fails_with("studio", &["--frames", s(&frames), "--out", s(&frames), "--no-open", "--device", "cpu"], &["--out", "is --frames"]);
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    write_mask(&bad.join("00001.png"), &LabelMap::zeros(5, 5), &Palette::davis()).unwrap();
    fails_with("studio", &["--frames", s(&frames), "--masks", s(&bad), "--out", s(&dir.path().join("o")), "--no-open", "--device", "cpu"], &["00001.png", "5x5"]);
}

/// `segment --device wgpu` (Mesa's lavapipe in CI) on a synthetic video: it says which adapter
/// runs it, and writes the CPU's label maps. The CLI does not expose probabilities, so "near
/// ties aside" is a count: at most 0.2 % of the pixels of a frame may differ (measured: none differ in 6 frames of 48×80).
#[cfg(feature = "wgpu")]
#[test]
fn segment_on_wgpu_writes_the_cpus_label_maps() {
    if burn::tensor::Device::enumerate(burn::tensor::DeviceType::Wgpu).is_empty() {
        assert!(std::env::var_os("MEMVOS_REQUIRE_WGPU").is_none(), "MEMVOS_REQUIRE_WGPU is set but no wgpu adapter answered");
        eprintln!("SKIPPED: no wgpu adapter answered");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = synth_root(dir.path(), 1, 6, 21);
    let frames = root.join("JPEGImages/480p/synth-0000");
    let masks = root.join("Annotations/480p/synth-0000");
    let seg = |device: &str| -> (String, Vec<Vec<u8>>) {
        let out = dir.path().join(device);
        let o = Command::new(example("segment").unwrap()).args(["--frames", s(&frames), "--masks", s(&masks), "--out", s(&out), "--device", device]).output().unwrap();
        assert!(o.status.success(), "--device {device}: {}", String::from_utf8_lossy(&o.stderr));
        let maps = (0..6).map(|t| memvos::data::read_mask(&out.join(format!("{t:05}.png"))).unwrap().labels.labels.iter().copied().collect()).collect();
        (String::from_utf8_lossy(&o.stdout).into_owned(), maps)
    };
    let (said, gpu) = seg("wgpu");
    assert!(said.contains("running on wgpu device 0: ") && said.contains("driver"), "{said}");
    let (_, cpu) = seg("cpu");
    for (t, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
        eprintln!("frame {t}: {differing} of {} labels differ", a.len());
        assert!(differing as f64 <= 0.002 * a.len() as f64, "frame {t}: {differing} labels differ between wgpu and the CPU");
    }
}
