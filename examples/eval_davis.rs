//! Runs a network on DAVIS 2016/2017 and writes results in the DAVIS layout, ready for
//! `evaluate`.
//!
//! `cargo run --release --example eval_davis -- --davis ROOT --year 2017 --set val --out DIR --weights stcn.pth`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use memvos::data::layout::{Davis, Shard};
use memvos::data::writer::DavisWriter;
use memvos::eval::FpsMeter;
use memvos::model::Benchmark;
use memvos::output;
use memvos::progress::Progress;
use memvos::runner::{Annotations, ModelArgs, load_video, palette_of, run_video_with};

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
    /// Write each video's first mask in every frame instead of segmenting (the no-motion
    /// baseline a method should beat).
    #[arg(long)]
    copy_first: bool,
    /// Skip videos whose outputs are all present and decode; clear a killed run's temporary files.
    /// Only a folder this same run wrote (same root, set, weights and flags, recorded in its
    /// memvos-run.json) is resumed.
    #[arg(long)]
    resume: bool,
    /// Run only part I of N of the videos (dealt round-robin by name): N machines running
    /// I = 1..N write results that, merged into one folder, `evaluate` scores as one run.
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
    args.model.check()?;
    let mut inputs = vec![("--davis", args.davis.as_path())];
    inputs.extend(args.model.weights.as_deref().map(|w| ("--weights", w)));
    memvos::data::paths::check_outputs_apart(&[("--out", &args.out)], &inputs)?;
    // The dataset and the output folder are checked before the network is loaded.
    let dataset = Davis::new(&args.davis, args.year, &args.set).open()?;
    if dataset.videos.is_empty() {
        return Err(format!("--davis {}: the {} {} list holds no video", args.davis.display(), args.year, args.set).into());
    }
    let all = dataset.videos.len();
    let dataset = dataset.shard(args.shard);
    if dataset.videos.is_empty() {
        return Err(format!("--shard {}: no video falls in this part of the {all} videos", args.shard).into());
    }
    if args.shard != Shard::ALL {
        println!("shard {}: {} of {all} videos", args.shard, dataset.videos.len());
    }
    if !args.copy_first {
        for v in &dataset.videos {
            v.check_images()?;
        }
    }
    let stale = output::prepare(&args.out, "--out")?;
    if stale > 0 {
        println!("removed {stale} temporary file(s) of an interrupted run");
    }
    // Shards of one run share a folder: the shard is not part of what must match.
    let manifest = output::Manifest::new("eval_davis")
        .input("--davis", &args.davis)?
        .flag("--year", args.year)
        .flag("--set", &args.set)
        .flag("--copy-first", args.copy_first);
    let manifest = if args.copy_first { manifest } else { manifest.model(&args.model)? };
    manifest.claim(&args.out, args.resume)?;
    if args.copy_first {
        for video in &dataset.videos {
            let first = video.read_annotation(0, None)?.ok_or_else(|| format!("video {} has no first-frame mask", video.name))?;
            let writer = DavisWriter::new(&args.out, args.year).with_palette(palette_of(video));
            for f in &video.frames {
                writer.write(&video.name, &f.name, &first)?;
            }
        }
        println!("wrote the first masks of {} videos to every frame in {}", dataset.videos.len(), args.out.display());
        return Ok(());
    }
    let loaded = args.model.load()?;
    println!("{}", loaded.describe());
    let benchmark = if args.year == 2016 { Benchmark::Davis2016 } else { Benchmark::Davis2017 };
    let cfg = args.model.schedule_for(loaded.method(), benchmark)?;
    let mut progress = Progress::frames(dataset.num_frames() as u64);
    let mut fps = FpsMeter::new();
    let mut skipped = 0;
    for video in &dataset.videos {
        progress.video(&video.name);
        let writer = DavisWriter::new(&args.out, args.year).with_palette(palette_of(video));
        let expected: Vec<PathBuf> = video.frames.iter().map(|f| writer.path(&video.name, &f.name)).collect();
        if args.resume && output::frame_size(video).is_some_and(|(h, w)| output::complete(&expected, h, w)) {
            skipped += 1;
            progress.inc(video.len() as u64);
            continue;
        }
        let frames = load_video(video, Annotations::FirstFrame)?;
        let outputs = run_video_with(&loaded, &cfg, &frames, None, &mut fps, &mut |_| progress.inc(1))?;
        for (i, labels) in &outputs {
            writer.write(&video.name, &frames.frame_names[*i], labels)?;
            memvos::data::failpoint::pause(&format!("mask:{}/{}", video.name, frames.frame_names[*i]));
        }
    }
    progress.finish();
    let from_before = if skipped > 0 { format!(" ({skipped} complete from before)") } else { String::new() };
    println!("wrote {} videos to {}{from_before}", dataset.videos.len() - skipped, args.out.display());
    println!("{}", fps.summary());
    Ok(())
}
