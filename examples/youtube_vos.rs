//! YouTube-VOS helpers: package a submission for the benchmark server, or score results of
//! held-out training videos locally (validation/test ground truth is not public).
//!
//! `cargo run --release --example youtube_vos -- --root YT --split valid --results DIR --zip sub.zip`
//! `cargo run --release --example youtube_vos -- --root YT --split train --results DIR --score 50 [--seed 0]`

use std::path::PathBuf;

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
    results: PathBuf,
    /// Write the checked submission as this zip.
    #[arg(long)]
    zip: Option<PathBuf>,
    /// Score this many held-out videos (chosen by --seed) of the split locally.
    #[arg(long)]
    score: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dataset = YouTube::new(&args.root, &args.split).open()?;
    if let Some(zip) = &args.zip {
        let report = package_submission(&dataset, &args.results, zip)?;
        println!("packaged {} frames of {} videos into {}", report.frames, report.videos, zip.display());
    }
    if let Some(n) = args.score {
        let names: Vec<String> = dataset.videos.iter().map(|v| v.name.clone()).collect();
        let picked = holdout(&names, n, args.seed);
        let s = score_videos(&dataset, &picked, &args.results, memvos::eval::metrics::BOUND_TH)?;
        println!("{} videos, {} objects: J&F {:.4}  J {:.4}  F {:.4}", picked.len(), s.objects.len(), s.global.jf_mean, s.global.j_mean, s.global.f_mean);
    }
    if args.zip.is_none() && args.score.is_none() {
        return Err("nothing to do: give --zip FILE and/or --score N".into());
    }
    Ok(())
}
