//! Runs a network on YouTube-VOS 2018/2019 validation and writes the submission layout
//! (`<out>/Annotations/<video>/<frame>.png`, the frames `meta.json` asks for). Frames are
//! resized to a shorter side of 480 and outputs back to the original size.
//!
//! `cargo run --release --example eval_youtube -- --root YouTube --year 2019 --out DIR --weights stcn.pth [--all-frames]`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use memvos::data::layout::YouTube;
use memvos::data::writer::YouTubeWriter;
use memvos::eval::FpsMeter;
use memvos::model::Benchmark;
use memvos::runner::{Annotations, ModelArgs, load_video, palette_of, run_video};

#[derive(Parser)]
#[command(about = "Segment YouTube-VOS validation videos")]
struct Args {
    /// YouTube-VOS root (`YouTube` for 2019, `YouTube2018` for 2018).
    #[arg(long)]
    root: PathBuf,
    /// 2018 or 2019 (the layouts are the same; recorded for the user).
    #[arg(long, default_value_t = 2019)]
    year: u16,
    #[arg(long, default_value = "valid")]
    split: String,
    #[arg(long)]
    out: PathBuf,
    /// Propagate through the dense 30 fps frames of `all_frames/<split>_all_frames`.
    #[arg(long)]
    all_frames: bool,
    /// Write every frame, not only those `meta.json` asks for.
    #[arg(long)]
    output_all: bool,
    #[command(flatten)]
    model: ModelArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.year != 2018 && args.year != 2019 {
        return Err(format!("--year must be 2018 or 2019, got {}", args.year).into());
    }
    args.model.check()?;
    let dataset = YouTube::new(&args.root, &args.split).all_frames(args.all_frames).open()?;
    let loaded = args.model.load()?;
    println!("{} ({}, {})", loaded.device_line, loaded.method(), args.model.weights.display());
    let cfg = args.model.schedule_for(loaded.method(), Benchmark::YouTube)?;
    let writer = YouTubeWriter::new(&args.out).write_all(args.output_all);
    let bar = ProgressBar::new(dataset.videos.len() as u64)
        .with_style(ProgressStyle::with_template("{msg:<12} [{bar:30}] {pos}/{len} videos ({elapsed}, eta {eta})")?);
    let mut fps = FpsMeter::new();
    for video in &dataset.videos {
        bar.set_message(video.name.clone());
        let frames = load_video(video, Annotations::Every)?;
        let outputs = run_video(&loaded, &cfg, &frames, Some(480), &mut fps)?;
        let w = YouTubeWriter { palette: palette_of(video), ..writer.clone() };
        for (i, labels) in &outputs {
            w.write(video, &frames.frame_names[*i], labels)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("wrote YouTube-VOS {} {} results for {} videos to {}", args.year, args.split, dataset.videos.len(), args.out.display());
    println!("{}", fps.summary());
    Ok(())
}
