//! Runs a network on YouTube-VOS 2018/2019 validation and writes the submission layout
//! (`<out>/Annotations/<video>/<frame>.png`, the frames `meta.json` asks for). Frames are
//! resized so their shorter side is `--short-side` (480, as the published evaluations do) and
//! the outputs back to the original size.
//!
//! `cargo run --release --example eval_youtube -- --root YouTube --year 2019 --out DIR --weights stcn.pth [--all-frames] [--resume]`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use memvos::data::layout::{Shard, Video, YouTube};
use memvos::data::writer::YouTubeWriter;
use memvos::eval::FpsMeter;
use memvos::model::Benchmark;
use memvos::output;
use memvos::progress::Progress;
use memvos::runner::{Annotations, ModelArgs, load_video, palette_of, run_video_with};

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
    /// Resize frames so their shorter side has this length (outputs come back at the original
    /// size); the published evaluations use 480.
    #[arg(long, default_value_t = 480)]
    short_side: usize,
    /// Run only the videos listed in this file, one per line (e.g. `youtube_vos --holdout N --list`).
    #[arg(long)]
    videos: Option<PathBuf>,
    /// Skip videos whose outputs are all present and decode; clear a killed run's temporary files.
    /// Only a folder this same run wrote (same root, split, weights and flags, recorded in its
    /// memvos-run.json) is resumed.
    #[arg(long)]
    resume: bool,
    /// Run only part I of N of the videos (after `--videos`; dealt round-robin by name): N
    /// machines running I = 1..N write results that together are one submission.
    #[arg(long, default_value = "1/1")]
    shard: Shard,
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
    let mut inputs = vec![("--root", args.root.as_path())];
    inputs.extend(args.videos.as_deref().map(|v| ("--videos", v)));
    inputs.extend(args.model.weights.as_deref().map(|w| ("--weights", w)));
    memvos::data::paths::check_outputs_apart(&[("--out", &args.out)], &inputs)?;
    // The dataset and the output folder are checked before the network is loaded.
    let dataset = YouTube::new(&args.root, &args.split).all_frames(args.all_frames).open()?;
    let names: Vec<String> = dataset.videos.iter().map(|v| v.name.clone()).collect();
    let chosen = match &args.videos {
        Some(list) => output::video_list(list, &names)?,
        None => names,
    };
    let videos: Vec<&Video> = dataset.videos.iter().filter(|v| chosen.contains(&v.name)).collect();
    if videos.is_empty() {
        return Err(format!("--root {}: split {} holds no video", args.root.display(), args.split).into());
    }
    let all = videos.len();
    let names: Vec<&str> = videos.iter().map(|v| v.name.as_str()).collect();
    let part = args.shard.select(&names);
    let videos: Vec<&Video> = videos.into_iter().filter(|v| part.contains(&v.name.as_str())).collect();
    if videos.is_empty() {
        return Err(format!("--shard {}: no video falls in this part of the {all} videos", args.shard).into());
    }
    if args.shard != Shard::ALL {
        println!("shard {}: {} of {all} videos", args.shard, videos.len());
    }
    for v in &videos {
        v.check_images()?;
    }
    let stale = output::prepare(&args.out, "--out")?;
    if stale > 0 {
        println!("removed {stale} temporary file(s) of an interrupted run");
    }
    // Shards of one run share a folder: the shard is not part of what must match.
    let mut manifest = output::Manifest::new("eval_youtube")
        .input("--root", &args.root)?
        .flag("--split", &args.split)
        .flag("--all-frames", args.all_frames)
        .flag("--output-all", args.output_all)
        .flag("--short-side", args.short_side)
        .model(&args.model)?;
    if let Some(v) = &args.videos {
        manifest = manifest.input("--videos", v)?;
    }
    manifest.claim(&args.out, args.resume)?;
    let loaded = args.model.load()?;
    println!("{}", loaded.describe());
    let cfg = args.model.schedule_for(loaded.method(), Benchmark::YouTube)?;
    let writer = YouTubeWriter::new(&args.out).write_all(args.output_all);
    let mut progress = Progress::frames(videos.iter().map(|v| v.len() as u64).sum());
    let mut fps = FpsMeter::new();
    let mut skipped = 0;
    for video in &videos {
        progress.video(&video.name);
        let first = video.annotated().first().copied().unwrap_or(0);
        let expected: Vec<PathBuf> = video.frames[first..].iter().filter(|f| writer.wants(video, &f.name)).map(|f| writer.path(&video.name, &f.name)).collect();
        if args.resume && output::frame_size(video).is_some_and(|(h, w)| output::complete(&expected, h, w)) {
            skipped += 1;
            progress.inc(video.len() as u64);
            continue;
        }
        let frames = load_video(video, Annotations::Every)?;
        let outputs = run_video_with(&loaded, &cfg, &frames, Some(args.short_side), &mut fps, &mut |_| progress.inc(1))?;
        let w = YouTubeWriter { palette: palette_of(video), ..writer.clone() };
        for (i, labels) in &outputs {
            w.write(video, &frames.frame_names[*i], labels)?;
        }
    }
    progress.finish();
    println!("wrote YouTube-VOS {} {} results for {} videos to {}{}", args.year, args.split, videos.len() - skipped, args.out.display(), if skipped > 0 { format!(" ({skipped} complete from before)") } else { String::new() });
    println!("{}", fps.summary());
    Ok(())
}
