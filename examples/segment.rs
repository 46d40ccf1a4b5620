//! Segments one video: frames are image files (JPEG or PNG) in name order, masks are palette
//! PNGs named like the frame they annotate; a mask at a later frame brings in the objects that
//! first appear there. Writes one palette PNG per frame (from the first mask on), named like the
//! frame, and `overlay.gif`.
//!
//! `cargo run --release --example segment -- --frames DIR --masks DIR --out DIR --weights W [--method auto]`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use memvos::data::layout::video_folder;
use memvos::data::overlay::{overlay, write_gif};
use memvos::data::write_mask;
use memvos::eval::FpsMeter;
use memvos::model::Benchmark;
use memvos::runner::{Annotations, ModelArgs, load_video, palette_of, run_video};

#[derive(Parser)]
#[command(about = "Segment the objects of a folder of frames from their first masks")]
struct Args {
    #[arg(long)]
    frames: PathBuf,
    #[arg(long)]
    masks: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Resize frames so the shorter side is this long (outputs come back at the frame size).
    #[arg(long)]
    short_side: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    args.model.check()?;
    let loaded = args.model.load()?;
    println!("{} ({}, {})", loaded.device_line, loaded.method(), args.model.weights.display());
    let name = args.frames.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into());
    let video = video_folder(&name, &args.frames, Some(&args.masks))?;
    let frames = load_video(&video, Annotations::Every)?;
    let cfg = args.model.schedule_for(loaded.method(), Benchmark::YouTube)?;
    let bar = ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} segmenting {msg} ({elapsed})")?);
    bar.set_message(format!("{} frames", frames.frames.len()));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut fps = FpsMeter::new();
    let start = Instant::now();
    let outputs = run_video(&loaded, &cfg, &frames, args.short_side, &mut fps)?;
    bar.finish_and_clear();
    let palette = palette_of(&video);
    let mut gif = Vec::with_capacity(outputs.len());
    for (i, labels) in &outputs {
        write_mask(&args.out.join(format!("{}.png", frames.frame_names[*i])), labels, &palette)?;
        gif.push(overlay(&frames.frames[*i], labels, &palette, 0.5)?);
    }
    write_gif(&args.out.join("overlay.gif"), &gif, 100, 480)?;
    println!("wrote {} masks and overlay.gif to {} in {:.1?}", outputs.len(), args.out.display(), start.elapsed());
    println!("{}", fps.summary());
    Ok(())
}
