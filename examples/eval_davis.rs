//! Runs a network on DAVIS 2016/2017 and writes results in the DAVIS layout, ready for
//! `evaluate`.
//!
//! `cargo run --release --example eval_davis -- --davis ROOT --year 2017 --set val --out DIR --weights stcn.pth`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use memvos::data::layout::Davis;
use memvos::data::writer::DavisWriter;
use memvos::eval::FpsMeter;
use memvos::model::Benchmark;
use memvos::runner::{Annotations, ModelArgs, load_video, palette_of, run_video};

#[derive(Parser)]
#[command(about = "Segment DAVIS videos from their first-frame masks")]
struct Args {
    #[arg(long)]
    davis: PathBuf,
    #[arg(long, default_value_t = 2017)]
    year: u16,
    #[arg(long, default_value = "val")]
    set: String,
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    args.model.check()?;
    let dataset = Davis::new(&args.davis, args.year, &args.set).open()?;
    let loaded = args.model.load()?;
    println!("{} ({}, {})", loaded.device_line, loaded.method(), args.model.weights.display());
    let benchmark = if args.year == 2016 { Benchmark::Davis2016 } else { Benchmark::Davis2017 };
    let cfg = args.model.schedule_for(loaded.method(), benchmark)?;
    let bar = ProgressBar::new(dataset.num_frames() as u64)
        .with_style(ProgressStyle::with_template("{msg:<16} [{bar:30}] {pos}/{len} frames ({elapsed}, eta {eta})")?);
    let mut fps = FpsMeter::new();
    for video in &dataset.videos {
        bar.set_message(video.name.clone());
        let frames = load_video(video, Annotations::FirstFrame)?;
        let outputs = run_video(&loaded, &cfg, &frames, None, &mut fps)?;
        let writer = DavisWriter::new(&args.out, args.year).with_palette(palette_of(video));
        for (i, labels) in &outputs {
            writer.write(&video.name, &frames.frame_names[*i], labels)?;
        }
        bar.inc(video.len() as u64);
    }
    bar.finish_and_clear();
    println!("wrote {} videos to {}", dataset.videos.len(), args.out.display());
    println!("{}", fps.summary());
    Ok(())
}
