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
use memvos::data::layout::video_folder;
use memvos::data::overlay::{overlay, write_gif};
use memvos::data::write_mask;
use memvos::eval::FpsMeter;
use memvos::model::Benchmark;
use memvos::output;
use memvos::progress::Progress;
use memvos::runner::{Annotations, ModelArgs, load_video, palette_of, run_video_with};

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
    /// Resize frames so the shorter side is this long (outputs come back at the frame size);
    /// default: the frames' own size.
    #[arg(long)]
    short_side: Option<usize>,
    /// Do nothing if every mask is already there and decodes; clear a killed run's temporary
    /// files (a partly written video is segmented again: propagation needs every frame). Only a
    /// folder this same run wrote (same frames, masks, weights and flags, recorded in its
    /// memvos-run.json) is resumed.
    #[arg(long)]
    resume: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    args.model.check()?;
    // An output never lands on an input (checked before anything is read).
    let mut inputs = vec![("--frames", args.frames.as_path()), ("--masks", args.masks.as_path())];
    inputs.extend(args.model.weights.as_deref().map(|w| ("--weights", w)));
    memvos::data::paths::check_outputs_apart(&[("--out", &args.out)], &inputs)?;
    // Inputs, sizes and the output folder are checked before the network is loaded.
    let name = args.frames.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into());
    let video = video_folder(&name, &args.frames, Some(&args.masks))?;
    let size = output::frame_size(&video);
    if let (Some(s), Some((h, w))) = (args.short_side, size) {
        check_short_side(s, h, w)?;
    }
    let stale = output::prepare(&args.out, "--out")?;
    if stale > 0 {
        println!("removed {stale} temporary file(s) of an interrupted run");
    }
    let manifest = output::Manifest::new("segment")
        .input("--frames", &args.frames)?
        .input("--masks", &args.masks)?
        .flag("--short-side", args.short_side.map_or("none".to_string(), |s| s.to_string()))
        .model(&args.model)?;
    manifest.claim(&args.out, args.resume)?;
    let first = video.annotated().first().copied().unwrap_or(0);
    let expected: Vec<PathBuf> = video.frames[first..].iter().map(|f| args.out.join(format!("{}.png", f.name))).collect();
    if args.resume && args.out.join("overlay.gif").is_file() && size.is_some_and(|(h, w)| output::complete(&expected, h, w)) {
        println!("all {} masks in {} are complete: nothing to do", expected.len(), args.out.display());
        return Ok(());
    }
    let frames = load_video(&video, Annotations::Every)?;
    let loaded = args.model.load()?;
    println!("{}", loaded.describe());
    let cfg = args.model.schedule_for(loaded.method(), Benchmark::YouTube)?;
    let mut progress = Progress::frames(frames.frames.len() as u64);
    progress.video(&name);
    let mut fps = FpsMeter::new();
    let start = Instant::now();
    let outputs = run_video_with(&loaded, &cfg, &frames, args.short_side, &mut fps, &mut |_| progress.inc(1))?;
    progress.finish();
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

/// `--short-side` must be in range and keep the frames' longer side within bounds.
fn check_short_side(s: usize, h: usize, w: usize) -> Result<(), String> {
    use memvos::model::inference::{MAX_SHORT_SIDE, MAX_SIDE};
    if !(16..=MAX_SHORT_SIDE).contains(&s) {
        return Err(format!("--short-side {s}: must be in 16..={MAX_SHORT_SIDE}"));
    }
    let (th, tw) = memvos::data::frame::youtube_inference_size(h, w, s);
    if th > MAX_SIDE || tw > MAX_SIDE {
        return Err(format!("--short-side {s}: the {w}x{h} (WxH) frames would become {tw}x{th}, longer than {MAX_SIDE} on a side"));
    }
    Ok(())
}
