//! `--precision bf16` (memvos's CPU kernels with bfloat16 weights) against float32, on what a
//! user scores: the shipped model's J&F on the 30 held-out synthetic videos of the README (240×432,
//! seed 7777; here their first 12 frames, to keep CI short — the README's 30-frame table comes
//! from `eval_davis --precision bf16`) must stay within 0.005 of float32's, through the runner's
//! own loop (`ModelArgs::load`, `load_video`, `run_video`) and the DAVIS toolkit's metrics. (Label
//! maps on the STCN parity fixture: memvos-model's `stcn_parity.rs`.)

use std::path::Path;

use memvos::data::layout::Davis;
use memvos::data::synth::{SynthConfig, write_dataset};
use memvos::data::writer::DavisWriter;
use memvos::eval::{EvalOptions, FpsMeter, evaluate};
use memvos::model::{Benchmark, Precision};
use memvos::runner::{Annotations, MethodChoice, ModelArgs, load_video, palette_of, run_video};

/// The shipped model's J&F on `root` at `precision`, its results written under `out`.
fn score(root: &Path, out: &Path, precision: Precision) -> (f64, usize, f64) {
    let dataset = Davis::new(root, 2017, "val").open().unwrap();
    let mut args = ModelArgs::new(None, MethodChoice::Auto);
    args.precision = precision;
    let loaded = args.load().unwrap();
    assert!(loaded.model.on_cpu_kernels(), "{}", loaded.describe());
    assert_eq!(loaded.model.precision(), precision);
    let cfg = args.schedule_for(loaded.method(), Benchmark::Davis2017).unwrap();
    let mut fps = FpsMeter::new();
    let mut frames = 0;
    for video in &dataset.videos {
        let v = load_video(video, Annotations::FirstFrame).unwrap();
        let writer = DavisWriter::new(out, 2017).with_palette(palette_of(video));
        for (i, labels) in run_video(&loaded, &cfg, &v, None, &mut fps).unwrap() {
            writer.write(&video.name, &v.frame_names[i], &labels).unwrap();
            frames += 1;
        }
    }
    let eval = evaluate(&dataset, out, &EvalOptions::default(), |_| {}).unwrap();
    (eval.global.jf_mean, frames, fps.fps())
}

#[test]
fn bf16_keeps_the_shipped_models_held_out_score() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("heldout");
    let cfg = SynthConfig { videos: 30, frames: 12, height: 240, width: 432, seed: 7777, ..Default::default() };
    write_dataset(&root, &cfg, |_| {}).unwrap();
    let (fp32, n32, fps32) = score(&root, &dir.path().join("fp32"), Precision::Fp32);
    let (bf16, n16, fps16) = score(&root, &dir.path().join("bf16"), Precision::Bf16);
    eprintln!("held-out J&F: fp32 {fp32:.4} ({n32} frames, {fps32:.1} FPS), bf16 {bf16:.4} ({n16} frames, {fps16:.1} FPS); difference {:.4}", bf16 - fp32);
    assert_eq!(n32, n16);
    assert!(fp32 >= 0.84, "the shipped model's held-out J&F is {fp32:.4} (README: 0.851 on 30 frames)");
    assert!((bf16 - fp32).abs() <= 0.005, "bf16 J&F {bf16:.4} vs fp32 {fp32:.4}");
}
