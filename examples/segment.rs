//! Segments one video: frames are image files (JPEG or PNG) in natural name order.
//!
//! - `--masks DIR`: palette PNGs named like the frame they annotate, each giving the objects that
//!   first appear there; the video is segmented forward from the first.
//! - `--annotations DIR`: each PNG is the complete annotation of its frame (every object in
//!   it), on any frames; `--direction forward|backward|both` runs from each annotation towards
//!   the end, towards frame 0, or both ways (each frame then takes the run of its nearest
//!   annotation), each run stopping at the next annotation.
//!
//! Writes one palette PNG per segmented frame, named like the frame, and `overlay.gif` (`--overlay mp4`: `overlay.mp4`; `--overlay none`: masks only).
//!
//! `cargo run --release --example segment -- --frames DIR --masks DIR --out DIR [--weights W] [--method auto]`
//! `cargo run --release --example segment -- --frames DIR --annotations DIR --direction both --out DIR`

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use memvos::data::layout::video_folder;
use memvos::data::overlay::{OverlayKind, write_overlay};
use memvos::data::{Frame, LabelMap, write_mask};
use memvos::eval::FpsMeter;
use memvos::model::session::read_annotations;
use memvos::model::{Benchmark, Fill, FrameSource, Frames, Session};
use memvos::output;
use memvos::progress::Progress;
use memvos::runner::{Annotations, ModelArgs, load_video, palette_of, run_video_with};

#[derive(Parser)]
#[command(about = "Segment the objects of a folder of frames from their first masks")]
struct Args {
    #[arg(long)]
    frames: PathBuf,
    /// First-appearance masks: objects start where their mask is, and are tracked forward.
    #[arg(long, required_unless_present = "annotations", conflicts_with = "annotations")]
    masks: Option<PathBuf>,
    /// Complete annotations of any frames (every object in each), named like the frames.
    #[arg(long)]
    annotations: Option<PathBuf>,
    /// With --annotations: forward (towards the end), backward (towards frame 0) or both.
    #[arg(long, value_enum, default_value = "forward")]
    direction: DirectionArg,
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// The picture written beside the masks: gif (overlay.gif: each frame in full colour with
    /// the masks blended in and outlined), mp4 (overlay.mp4: the same at full resolution, AV1,
    /// 24 frames a second) or none.
    #[arg(long, default_value = "gif")]
    overlay: OverlayKind,
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

/// `--direction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DirectionArg {
    Forward,
    Backward,
    Both,
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    args.model.check()?;
    // An output never lands on an input (checked before anything is read).
    let mut inputs = vec![("--frames", args.frames.as_path())];
    inputs.extend(args.masks.as_deref().map(|m| ("--masks", m)));
    inputs.extend(args.annotations.as_deref().map(|a| ("--annotations", a)));
    inputs.extend(args.model.weights.as_deref().map(|w| ("--weights", w)));
    memvos::data::paths::check_outputs_apart(&[("--out", &args.out)], &inputs)?;
    if let Some(dir) = &args.annotations {
        return run_annotations(&args, dir);
    }
    if args.direction != DirectionArg::Forward {
        return Err("--direction backward|both needs --annotations (complete annotations of any frame); --masks runs forward".into());
    }
    let masks = args.masks.clone().ok_or("--masks or --annotations is needed")?;
    // Inputs, sizes and the output folder are checked before the network is loaded.
    let name = args.frames.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into());
    let video = video_folder(&name, &args.frames, Some(&masks))?;
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
        .input("--masks", &masks)?
        .flag("--short-side", args.short_side.map_or("none".to_string(), |s| s.to_string()))
        .flag("--overlay", format!("{:?}", args.overlay).to_lowercase())
        .model(&args.model)?;
    manifest.claim(&args.out, args.resume)?;
    let first = video.annotated().first().copied().unwrap_or(0);
    let expected: Vec<PathBuf> = video.frames[first..].iter().map(|f| args.out.join(format!("{}.png", f.name))).collect();
    if args.resume && args.overlay.file_name().is_none_or(|f| args.out.join(f).is_file()) && size.is_some_and(|(h, w)| output::complete(&expected, h, w)) {
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
    for (i, labels) in &outputs {
        write_mask(&args.out.join(format!("{}.png", frames.frame_names[*i])), labels, &palette)?;
    }
    let shown: Vec<(&Frame, &LabelMap)> = outputs.iter().map(|(i, l)| (&frames.frames[*i], l)).collect();
    let picture = write_overlay(args.overlay, &args.out, &shown, &palette)?.map(|p| format!(" and {}", p.file_name().unwrap_or_default().to_string_lossy())).unwrap_or_default();
    println!("wrote {} masks{picture} to {} in {:.1?}", outputs.len(), args.out.display(), start.elapsed());
    println!("{}", fps.summary());
    Ok(())
}

/// `--annotations` and `--direction`: an interactive session run from the command line.
fn run_annotations(args: &Args, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    memvos::data::paths::check_distinct(("--annotations", dir), ("--frames", &args.frames))?;
    let frames = Frames::folder(&args.frames)?;
    let names: Vec<String> = (0..frames.len()).map(|i| frames.name(i).to_string()).collect();
    let first = frames.read(0)?;
    let (h, w) = (first.height(), first.width());
    if let Some(s) = args.short_side {
        check_short_side(s, h, w)?;
    }
    // Every annotation is read and checked before the network is loaded.
    let annotations = read_annotations(dir, &names, (h, w))?;
    let stale = output::prepare(&args.out, "--out")?;
    if stale > 0 {
        println!("removed {stale} temporary file(s) of an interrupted run");
    }
    let manifest = output::Manifest::new("segment")
        .input("--frames", &args.frames)?
        .input("--annotations", dir)?
        .flag("--direction", format!("{:?}", args.direction).to_lowercase())
        .flag("--short-side", args.short_side.map_or("none".to_string(), |s| s.to_string()))
        .flag("--overlay", format!("{:?}", args.overlay).to_lowercase())
        .model(&args.model)?;
    manifest.claim(&args.out, args.resume)?;
    let (lo, hi) = (annotations[0].0, annotations[annotations.len() - 1].0);
    let covered: Vec<usize> = match args.direction {
        DirectionArg::Forward => (lo..names.len()).collect(),
        DirectionArg::Backward => (0..=hi).collect(),
        DirectionArg::Both => (0..names.len()).collect(),
    };
    let expected: Vec<PathBuf> = covered.iter().map(|&i| args.out.join(format!("{}.png", names[i]))).collect();
    let overlay_done = args.overlay.file_name().is_none_or(|f| args.out.join(f).is_file());
    if args.resume && overlay_done && output::complete(&expected, h, w) {
        println!("all {} masks in {} are complete: nothing to do", expected.len(), args.out.display());
        return Ok(());
    }
    let loaded = args.model.load()?;
    println!("{}", loaded.describe());
    let cfg = args.model.schedule_for(loaded.method(), Benchmark::YouTube)?;
    let palette = memvos::data::read_mask(&dir.join(format!("{}.png", names[lo]))).ok().and_then(|m| m.palette).unwrap_or_default();
    let mut session = Session::new(loaded.network(), cfg, Box::new(frames), &loaded.device)?.with_short_side(args.short_side);
    for (i, labels) in annotations {
        session.annotate(i, labels)?;
    }
    let which = match args.direction {
        DirectionArg::Forward => Fill::Forward,
        DirectionArg::Backward => Fill::Backward,
        DirectionArg::Both => Fill::Both,
    };
    let planned = covered.len().saturating_sub(session.annotated().len()) * if which == Fill::Both { 2 } else { 1 };
    let mut progress = Progress::frames(planned as u64);
    progress.video(&names[0]);
    let start = Instant::now();
    let done = session.fill(which, |_, _| progress.inc(1))?;
    progress.finish();
    let written = session.export_with(&args.out, &palette, args.overlay)?;
    let secs = start.elapsed().as_secs_f64();
    let picture = args.overlay.file_name().map(|f| format!(" and {f}")).unwrap_or_default();
    println!("wrote {written} masks{picture} to {} in {secs:.1} s ({done} frames segmented, {:.2} FPS)", args.out.display(), done as f64 / secs.max(1e-9));
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
