//! `--precision bf16` (memvos's CPU kernels with bfloat16 weights) against float32, on what a
//! user scores: the shipped model's J&F on the 30 held-out synthetic videos of the README (240×432,
//! seed 7777; here their first 12 frames, to keep CI short — the README's 30-frame table comes
//! from `eval_davis --precision bf16`) must stay within 0.005 of float32's, through the runner's
//! own loop (`ModelArgs::load`, `load_video`, `run_video`) and the DAVIS toolkit's metrics, and its
//! label maps may differ from float32's in at most 0.5 % of the pixels, on those videos and on the
//! STCN parity fixture's video. (The parity fixture's own formula weights under bf16:
//! memvos-model's `stcn_parity.rs`.)

use std::path::Path;

use memvos::data::layout::Davis;
use memvos::data::{Frame, LabelMap};
use memvos::data::synth::{SynthConfig, write_dataset};
use memvos::data::writer::DavisWriter;
use memvos::eval::{EvalOptions, FpsMeter, evaluate};
use memvos::model::{Benchmark, Precision};
use memvos::runner::{Annotations, Loaded, LoadedVideo, MethodChoice, ModelArgs, load_video, palette_of, run_video};

/// The largest share of pixels whose label bf16 may move (the bound).
const LABEL_SHARE: f64 = 0.005;

/// The shipped model on the CPU kernels at `precision`, and its DAVIS 2017 schedule.
fn shipped(precision: Precision) -> (Loaded, memvos::model::PropagatorConfig) {
    let mut args = ModelArgs::new(None, MethodChoice::Auto);
    args.precision = precision;
    let loaded = args.load().unwrap();
    assert!(loaded.model.on_cpu_kernels(), "{}", loaded.describe());
    assert_eq!(loaded.model.precision(), precision);
    let cfg = args.schedule_for(loaded.method(), Benchmark::Davis2017).unwrap();
    (loaded, cfg)
}

/// The shipped model's J&F on `root` at `precision`, its results written under `out`; the
/// frames, the FPS and every predicted label map (the given first frames left out), in order.
fn score(root: &Path, out: &Path, precision: Precision) -> (f64, usize, f64, Vec<LabelMap>) {
    let dataset = Davis::new(root, 2017, "val").open().unwrap();
    let (loaded, cfg) = shipped(precision);
    let mut fps = FpsMeter::new();
    let mut frames = 0;
    let mut predicted = Vec::new();
    for video in &dataset.videos {
        let v = load_video(video, Annotations::FirstFrame).unwrap();
        let writer = DavisWriter::new(out, 2017).with_palette(palette_of(video));
        for (i, labels) in run_video(&loaded, &cfg, &v, None, &mut fps).unwrap() {
            writer.write(&video.name, &v.frame_names[i], &labels).unwrap();
            frames += 1;
            if i > 0 {
                predicted.push(labels);
            }
        }
    }
    let eval = evaluate(&dataset, out, &EvalOptions::default(), |_| {}).unwrap();
    (eval.global.jf_mean, frames, fps.fps(), predicted)
}

/// `(differing, all)`: pixels whose labels differ between `a` and `b`, of all their pixels.
fn label_changes(a: &[LabelMap], b: &[LabelMap]) -> (usize, usize) {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold((0, 0), |(d, n), (a, b)| {
        assert_eq!(a.labels.dim(), b.labels.dim());
        (d + a.labels.iter().zip(b.labels.iter()).filter(|(x, y)| x != y).count(), n + a.labels.len())
    })
}

#[test]
fn bf16_keeps_the_shipped_models_held_out_score() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("heldout");
    let cfg = SynthConfig { videos: 30, frames: 12, height: 240, width: 432, seed: 7777, ..Default::default() };
    write_dataset(&root, &cfg, |_| {}).unwrap();
    let (fp32, n32, fps32, labels32) = score(&root, &dir.path().join("fp32"), Precision::Fp32);
    let (bf16, n16, fps16, labels16) = score(&root, &dir.path().join("bf16"), Precision::Bf16);
    let (differing, pixels) = label_changes(&labels32, &labels16);
    eprintln!(
        "held-out J&F: fp32 {fp32:.4} ({n32} frames, {fps32:.1} FPS), bf16 {bf16:.4} ({n16} frames, {fps16:.1} FPS; {}); difference {:.4}; labels moved: {differing} of {pixels}",
        memvos::model::cpu::bf16_products(),
        bf16 - fp32
    );
    assert_eq!(n32, n16);
    assert!(fp32 >= 0.84, "the shipped model's held-out J&F is {fp32:.4} (README: 0.851 on 30 frames)");
    assert!((bf16 - fp32).abs() <= 0.005, "bf16 J&F {bf16:.4} vs fp32 {fp32:.4}");
    assert!(differing as f64 <= LABEL_SHARE * pixels as f64, "bf16 moved {differing} of {pixels} labels");
}

/// The STCN parity fixture's video (3 frames of 96×160 cut from a photograph with a moving
/// window, two elliptic objects in frame 0; `tests/fixtures/stcn-parity/README.md`).
fn parity_fixture_video() -> LoadedVideo {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stcn-parity/golden.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let frames = st.tensor("input.frames_uint8").unwrap();
    let &[t, h, w, 3] = frames.shape() else { panic!("input.frames_uint8 is {:?}", frames.shape()) };
    let masks = st.tensor("input.first_frame_masks").unwrap();
    let m: Vec<f32> = masks.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let first = LabelMap::new(ndarray::Array2::from_shape_fn((h, w), |(y, x)| {
        if m[y * w + x] > 0.5 { 1 } else if m[h * w + y * w + x] > 0.5 { 2 } else { 0 }
    }));
    LoadedVideo {
        name: "stcn-parity".into(),
        frame_names: (0..t).map(|i| format!("{i:05}")).collect(),
        frames: (0..t).map(|i| Frame::from_raw(h, w, frames.data()[i * h * w * 3..(i + 1) * h * w * 3].to_vec()).unwrap()).collect(),
        masks: (0..t).map(|i| (i == 0).then(|| first.clone())).collect(),
    }
}

#[test]
fn bf16_keeps_the_shipped_models_labels_on_the_parity_fixture() {
    let video = parity_fixture_video();
    let run = |precision| {
        let (loaded, cfg) = shipped(precision);
        run_video(&loaded, &cfg, &video, None, &mut FpsMeter::new()).unwrap().into_iter().filter(|(i, _)| *i > 0).map(|(_, l)| l).collect::<Vec<_>>()
    };
    let (fp32, bf16) = (run(Precision::Fp32), run(Precision::Bf16));
    assert_eq!(fp32.len(), video.frames.len() - 1);
    let objects = fp32.iter().map(|l| l.labels.iter().filter(|&&v| v > 0).count()).sum::<usize>();
    let (differing, pixels) = label_changes(&fp32, &bf16);
    eprintln!("parity fixture, shipped model: {differing} of {pixels} labels moved by bf16 ({}); {objects} object pixels in fp32", memvos::model::cpu::bf16_products());
    assert!(objects > pixels / 20, "the objects must not vanish ({objects} of {pixels} pixels)");
    assert!(differing as f64 <= LABEL_SHARE * pixels as f64, "bf16 moved {differing} of {pixels} labels");
}
