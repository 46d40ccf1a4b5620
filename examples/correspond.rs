//! Where the network's affinity puts a point of one frame in another: a heat map over the second
//! frame (the Mask-Propagation seed's correspondence view).
//!
//! `cargo run --release --example correspond -- --from A.jpg --to B.jpg --point X,Y --out heat.png [--weights W]`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use memvos::data::io::write_frame;
use memvos::data::read_frame;
use memvos::model::correspond::{correspondence, heat_overlay};
use memvos::runner::ModelArgs;

#[derive(Parser)]
#[command(about = "Show where a point of one frame goes in another frame, by the memory network's affinity")]
struct Args {
    #[arg(long)]
    from: PathBuf,
    #[arg(long)]
    to: PathBuf,
    /// The point in --from, `X,Y` in pixels.
    #[arg(long, value_parser = parse_point)]
    point: (usize, usize),
    /// The heat map over --to (PNG).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

fn parse_point(s: &str) -> Result<(usize, usize), String> {
    let (x, y) = s.split_once(',').ok_or("expected X,Y, e.g. 120,64")?;
    let n = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
    Ok((n(x)?, n(y)?))
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    args.model.check()?;
    memvos::data::paths::check_outputs_apart(&[("--out", &args.out)], &[("--from", &args.from), ("--to", &args.to)])?;
    let (a, b) = (read_frame(&args.from)?, read_frame(&args.to)?);
    let loaded = args.model.load()?;
    println!("{}", loaded.describe());
    let heat = correspondence(loaded.network().as_ref(), &a, &b, args.point, &loaded.device).map_err(|e| format!("--point: {e}"))?;
    let (y, x) = heat.indexed_iter().fold(((0, 0), f32::MIN), |best, (p, &v)| if v > best.1 { (p, v) } else { best }).0;
    write_frame(&args.out, &heat_overlay(&b, &heat, Some((x, y))), 95)?;
    println!("wrote {}: ({}, {}) in {} is most like ({x}, {y}) in {}", args.out.display(), args.point.0, args.point.1, args.from.display(), args.to.display());
    Ok(())
}
