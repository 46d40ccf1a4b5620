//! YouTube-VOS helpers: package a submission for the benchmark server, or score results of
//! held-out training videos locally (validation/test ground truth is not public).
//!
//! `cargo run --release --example youtube_vos -- --root YT --split valid --results DIR --zip sub.zip`
//! `cargo run --release --example youtube_vos -- --root YT --split train --results DIR --score 50 [--seed 0]`
//! `cargo run --release --example youtube_vos -- --root YT --split train --holdout 50 --list heldout.txt`
//!
//! A local score needs full ground truth (the `train` split); held-out videos are listed, and
//! `--list FILE` writes them for `eval_youtube --videos FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use memvos::data::layout::YouTube;
use memvos::eval::youtube::{holdout, package_submission, score_videos};

#[derive(Parser)]
#[command(about = "Package a YouTube-VOS submission or score held-out training videos")]
struct Args {
    #[arg(long)]
    root: PathBuf,
    #[arg(long, default_value = "valid")]
    split: String,
    /// Submission folder: <results>/Annotations/<video>/<frame>.png.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Write the checked submission as this zip.
    #[arg(long)]
    zip: Option<PathBuf>,
    /// Score this many held-out videos (chosen by --seed) of the split locally (needs a split
    /// with full ground truth: train).
    #[arg(long)]
    score: Option<usize>,
    /// Only choose this many held-out videos (by --seed) and list them.
    #[arg(long)]
    holdout: Option<usize>,
    /// Write the held-out videos' names here, one per line (for `eval_youtube --videos`).
    #[arg(long)]
    list: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.zip.is_none() && args.score.is_none() && args.holdout.is_none() {
        return Err("nothing to do: give --zip FILE, --score N and/or --holdout N".into());
    }
    if args.score.is_some() && args.holdout.is_some() {
        return Err("--score N already holds out N videos; give one of --score and --holdout".into());
    }
    let results = || args.results.clone().ok_or("--results: the submission folder is needed for --zip and --score");
    // Neither the zip nor the list may replace anything of the dataset or the results.
    let mut inputs = vec![("--root", args.root.as_path())];
    inputs.extend(args.results.as_deref().map(|r| ("--results", r)));
    let mut outputs = Vec::new();
    outputs.extend(args.zip.as_deref().map(|z| ("--zip", z)));
    outputs.extend(args.list.as_deref().map(|l| ("--list", l)));
    memvos::data::paths::check_outputs_apart(&outputs, &inputs)?;
    if let (Some(z), Some(l)) = (&args.zip, &args.list) {
        memvos::data::paths::check_outputs_apart(&[("--list", l)], &[("--zip", z)])?;
    }
    let dataset = YouTube::new(&args.root, &args.split).open()?;
    if let Some(zip) = &args.zip {
        let report = package_submission(&dataset, &results()?, zip)?;
        println!("checked and packaged {} frames of {} videos into {}", report.frames, report.videos, zip.display());
    }
    if let Some(n) = args.score.or(args.holdout) {
        let names: Vec<String> = dataset.videos.iter().map(|v| v.name.clone()).collect();
        let picked = holdout(&names, n, args.seed).map_err(|e| e.to_string())?;
        println!("held-out videos (seed {}): {}", args.seed, picked.join(", "));
        if let Some(list) = &args.list {
            memvos::data::write_atomic(list, picked.iter().map(|n| format!("{n}\n")).collect::<String>().as_bytes())?;
            println!("wrote the list to {}", list.display());
        }
        if args.score.is_some() {
            let s = score_videos(&dataset, &args.split, &picked, &results()?, memvos::eval::metrics::BOUND_TH)?;
            println!("{} videos, {} objects: J&F {:.4}  J {:.4}  F {:.4}", picked.len(), s.objects.len(), s.global.jf_mean, s.global.j_mean, s.global.f_mean);
        }
    }
    Ok(())
}
