//! Scores DAVIS results with the toolkit's J, F and J&F.
//!
//! `cargo run --release --example evaluate -- --davis ROOT --results DIR [--set val] [--year 2017]`
//!
//! Prints the global and per-sequence tables, writes `global_results-<set>.csv` and
//! `per-sequence_results-<set>.csv` into the results folder (as the toolkit does), and the time.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use memvos::data::layout::Davis;
use memvos::eval::csv::{format_tables, write_csvs};
use memvos::eval::{EvalOptions, Protocol, evaluate};

#[derive(Parser)]
#[command(about = "Evaluate DAVIS results (J, F, J&F) with toolkit parity")]
struct Args {
    /// DAVIS root (with Annotations/480p and ImageSets/<year>/<set>.txt).
    #[arg(long)]
    davis: PathBuf,
    /// Results folder: <results>/<sequence>/<frame>.png.
    #[arg(long)]
    results: PathBuf,
    #[arg(long, default_value = "val")]
    set: String,
    #[arg(long, default_value_t = 2017)]
    year: u16,
    /// Boundary tolerance: a fraction of the diagonal (< 1) or a radius in pixels.
    #[arg(long, default_value_t = memvos::eval::metrics::BOUND_TH)]
    bound_th: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    memvos::eval::metrics::check_bound_th(args.bound_th).map_err(|e| format!("--bound-th: {e}"))?;
    // The CSVs go into the results folder, which must not be (or be inside) the dataset: its
    // annotations would be scored against themselves and the CSVs mixed into the dataset.
    memvos::data::paths::check_outputs_apart(&[("--results", &args.results)], &[("--davis", &args.davis)])?;
    let start = Instant::now();
    let dataset = Davis::new(&args.davis, args.year, &args.set).open()?;
    let opts = EvalOptions { protocol: Protocol::from_year(args.year)?, bound_th: args.bound_th };
    let bar = ProgressBar::new(dataset.videos.len() as u64)
        .with_style(ProgressStyle::with_template("scoring [{bar:30}] {pos}/{len} sequences ({elapsed}) {msg}")?);
    let eval = evaluate(&dataset, &args.results, &opts, |name| {
        bar.set_message(name.to_string());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let (g, p) = write_csvs(&eval, &args.results, &args.set)?;
    print!("{}", format_tables(&eval, &args.set));
    println!("\nwrote {} and {}", g.display(), p.display());
    println!("Total time: {:.3} s", start.elapsed().as_secs_f64());
    Ok(())
}
