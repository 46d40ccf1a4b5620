//! Generates a synthetic DAVIS-style dataset and reads it back with a summary.
//!
//! `cargo run --release --example synth -- --out DIR --videos N [--seed S] [--frames F]
//! [--size HxW] [--max-objects K] [--photos DIR]`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use memvos::data::layout::{Davis, summarize};
use memvos::data::photos::PhotoSet;
use memvos::data::synth::{SynthConfig, write_dataset_with};

#[derive(Parser)]
#[command(about = "Write synthetic videos as a DAVIS root, then read them back")]
struct Args {
    /// Output DAVIS root.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 3)]
    videos: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 30)]
    frames: usize,
    /// Frame size as HxW.
    #[arg(long, default_value = "480x854", value_parser = memvos::cli::parse_size)]
    size: (usize, usize),
    #[arg(long, default_value_t = 5)]
    max_objects: usize,
    /// A folder of photographs (JPEG/PNG): backgrounds and objects cut from real photos
    /// (`scripts/fetch-photos.sh DIR` fetches the set the shipped model learned on).
    #[arg(long)]
    photos: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = SynthConfig {
        videos: args.videos,
        frames: args.frames,
        height: args.size.0,
        width: args.size.1,
        max_objects: args.max_objects,
        seed: args.seed,
        ..Default::default()
    };
    cfg.validate().map_err(|e| format!("--size/--frames/--videos/--max-objects: {e}"))?;
    let photos = match &args.photos {
        Some(dir) => Some(PhotoSet::load(dir).map_err(|e| format!("--photos: {e}"))?),
        None => None,
    };

    // A folder that holds something synth did not write (a real dataset) is never written into.
    let manifest = memvos::output::Manifest::new("synth");
    let ours = std::fs::read_to_string(args.out.join(memvos::output::MANIFEST)).is_ok_and(|t| t.contains("\"synth\""));
    let occupied = std::fs::read_dir(&args.out).is_ok_and(|mut d| d.next().is_some());
    if occupied && !ours {
        return Err(format!("--out {}: the folder holds files synth did not write; choose an empty or new folder", args.out.display()).into());
    }
    memvos::output::prepare(&args.out, "--out")?;
    manifest.claim(&args.out, false)?;
    let bar = ProgressBar::new(cfg.videos as u64)
        .with_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} videos ({elapsed})")?);
    bar.set_message("generating");
    let start = Instant::now();
    let written = write_dataset_with(&args.out, &cfg, photos.as_ref(), |_| bar.inc(1))?;
    bar.finish();
    println!("wrote {} videos, {} frames to {} in {:.1?}", written.videos.len(), written.frames, args.out.display(), start.elapsed());

    let ds = Davis::new(&args.out, 2017, "val").open()?;
    println!("{:<12} {:>6} {:>10}  objects (id: first frame, frames present)", "video", "frames", "size");
    for v in &ds.videos {
        let s = summarize(v)?;
        let objs: Vec<String> = s.objects.iter().map(|(id, f, n)| format!("{id}: {f}, {n}")).collect();
        println!("{:<12} {:>6} {:>10}  {}", s.name, s.frames, format!("{}x{}", s.height, s.width), objs.join("; "));
    }
    Ok(())
}
