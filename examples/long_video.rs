//! Runs a long synthetic video (a clip played back and forth) at low resolution under one memory
//! policy and prints peak memory and time per frame at frames 500, 1,000 and the last, ending with
//! one machine-readable line:
//! `policy=NAME frames=3000 rss_mb_500=… rss_mb_3000=… ms_per_frame_500=… ms_per_frame_3000=…`.
//!
//! `cargo run --release --example long_video -- --frames 3000 --policy fifo --capacity 16`
//! (weights: `--weights FILE`, or the deterministic formula weights of the parity fixtures when
//! omitted: timing and memory do not depend on the weights, QDMN's quality gating does).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use memvos::device::DeviceChoice;
use memvos::long_video::{run_long_video, synthetic_clip};
use memvos::memory::PolicyKind;
use memvos::model::{PropagatorConfig, load_stcn, write_formula_stcn};

#[derive(Parser)]
#[command(about = "Peak memory and time per frame of a memory policy on a long video")]
struct Args {
    #[arg(long, default_value_t = 3000)]
    frames: usize,
    #[arg(long, default_value = "every-n")]
    policy: PolicyKind,
    /// Frames a bounded policy keeps (first frame included).
    #[arg(long)]
    capacity: Option<usize>,
    #[arg(long, default_value_t = 5)]
    mem_every: usize,
    /// QDMN's quality threshold in (0, 1], relative to the first frame's quality.
    #[arg(long)]
    threshold: Option<f32>,
    #[arg(long)]
    weights: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    #[arg(long, default_value_t = 32)]
    height: usize,
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Length of the synthetic clip that is played back and forth.
    #[arg(long, default_value_t = 100)]
    clip: usize,
    /// Frames averaged for each time-per-frame figure.
    #[arg(long, default_value_t = 50)]
    window: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> ExitCode {
    let a = Args::parse();
    memvos::cli::main(|| run(a))
}

fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    if a.frames == 0 || a.frames > 10_000_000 {
        return Err(format!("--frames {}: give 1 to 10,000,000 frames", a.frames).into());
    }
    if a.window == 0 || a.clip < 2 {
        return Err("--window must be at least 1 and --clip at least 2".into());
    }
    let device = memvos::device::select_and_announce(a.device)?;
    let weights = match &a.weights {
        Some(w) => w.clone(),
        None => {
            let w = std::env::temp_dir().join("memvos-long-video-formula.safetensors");
            write_formula_stcn(&w, &device)?;
            w
        }
    };
    let net = load_stcn(&weights, &device)?;
    let mut cfg = PropagatorConfig::youtube().with_policy(a.policy);
    cfg.policy.every = a.mem_every;
    cfg.policy.capacity = a.capacity;
    cfg.policy.threshold = a.threshold;
    cfg.policy.seed = a.seed;
    let clip = synthetic_clip(a.height, a.width, a.clip, a.seed)?;
    let mut checkpoints: Vec<usize> = [500, 1000, a.frames].into_iter().filter(|&c| c <= a.frames).collect();
    checkpoints.dedup();
    let bar = ProgressBar::new(a.frames as u64).with_style(ProgressStyle::with_template("{bar:40} {pos}/{len} frames ({per_sec}, eta {eta})")?);
    let report = run_long_video(std::sync::Arc::new(net.clone()), cfg, &device, &clip, a.frames, &checkpoints, a.window, |t| bar.set_position(t as u64))?;
    bar.finish_and_clear();
    println!("{:>7} {:>12} {:>13} {:>14}", "frame", "peak RSS MB", "ms per frame", "memory frames");
    for c in &report {
        println!("{:>7} {:>12.1} {:>13.2} {:>14}", c.frame, c.rss_mb.unwrap_or(f64::NAN), c.ms_per_frame, c.memory_frames);
    }
    let (Some(first), Some(last)) = (report.first(), report.last()) else { return Err("no checkpoint was reached".into()) };
    println!(
        "policy={} frames={} rss_mb_{}={:.1} rss_mb_{}={:.1} ms_per_frame_{}={:.2} ms_per_frame_{}={:.2}",
        a.policy,
        a.frames,
        first.frame,
        first.rss_mb.unwrap_or(f64::NAN),
        last.frame,
        last.rss_mb.unwrap_or(f64::NAN),
        first.frame,
        first.ms_per_frame,
        last.frame,
        last.ms_per_frame
    );
    Ok(())
}
