//! Weight files: write the parity fixtures' formula weights of any method (deterministic, for
//! demos and tests) as `.pth` or `.safetensors`, convert a checkpoint between `.pth`,
//! `.safetensors` and burnpack `.bpk`, or say which method a file holds.
//!
//! `cargo run --release --example weights -- formula --method mivos --out mivos-formula.pth`
//! `cargo run --release --example weights -- convert --from stcn.pth --to stcn.bpk`
//! `cargo run --release --example weights -- inspect --file propagation_model.pth`
//! `cargo run --release --example weights -- download stcn [--to DIR]`

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Parser, Subcommand};
use memvos::burn;
use memvos::model::{Method, download, load_network, published, weights, write_formula};
use memvos::runner::MethodChoice;

#[derive(Parser)]
#[command(about = "Create, convert or inspect weight files of the memvos networks")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fill a method's network by WEIGHTS-FORMULA.md and save it with the published names.
    Formula {
        #[arg(long, value_enum, default_value = "stcn")]
        method: MethodChoice,
        /// `.pth` (torch.save format) or `.safetensors`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load weights (strictly) and save them in another format.
    Convert {
        #[arg(long)]
        from: PathBuf,
        /// `.safetensors` (published names) or `.bpk`.
        #[arg(long)]
        to: PathBuf,
        #[arg(long, value_enum, default_value = "auto")]
        method: MethodChoice,
    },
    /// Download a published checkpoint (stcn, mivos, qdmn) into the cache folder, or DIR;
    /// an interrupted download resumes. Kept only if it imports strictly as its method.
    Download {
        /// stcn, mivos or qdmn.
        name: String,
        /// Folder to put it in (default: the cache folder `--weights NAME` looks in).
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Print the method a file holds and its number of tensors (every tensor is read and checked).
    Inspect {
        #[arg(long)]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::flex();
    match args.cmd {
        Cmd::Formula { method, out } => {
            let method = method.method().ok_or("--method: formula weights need a method, not auto")?;
            weights::Format::of(&out)?;
            write_formula(method, &out, &device)?;
            println!("wrote formula-filled {method} weights to {}", out.display());
        }
        Cmd::Convert { from, to, method } => {
            memvos::data::paths::check_outputs_apart(&[("--to", &to)], &[("--from", &from)])?;
            weights::Format::of(&to)?;
            if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
                return Err(format!("--to: folder {} does not exist", parent.display()).into());
            }
            let net = load_network(&from, method.method(), &device)?;
            net.save(&to, None)?;
            println!("converted {} ({}) to {}", from.display(), net.method(), to.display());
        }
        Cmd::Download { name, to } => {
            let entry = published::find(&name).ok_or_else(|| published::PublishedError::Unknown { name: name.clone() })?;
            let dir = match to {
                Some(d) => d,
                None => published::cache_dir().ok_or_else(|| published::PublishedError::NoCache { name: name.clone() })?,
            };
            println!("downloading the published {} weights ({}, {}) from {} into {}", entry.name, entry.method, entry.repository, entry.url(), dir.display());
            let mut bar = memvos::progress::Bytes::new();
            let got = download::fetch(entry, &dir, &mut |p| bar.update(p));
            bar.finish();
            let got = got?;
            if got.resumed_from > 0 {
                println!("resumed after {} bytes", got.resumed_from);
            }
            let note = if got.recorded_now { "recorded now; later downloads must match" } else { "matches the record" };
            println!("{}: {} bytes, SHA-256 {} ({note}); use it with --weights {}", got.path.display(), got.size, got.sha256, entry.name);
        }
        Cmd::Inspect { file } => {
            // Every tensor is read and checked against the file's own record before anything
            // is reported about it.
            let summary = weights::verify(&file)?;
            let method: Option<Method> = weights::detect(&file).ok();
            let what = match method {
                Some(m) => format!("{m} weights"),
                None => "not a checkpoint of a known method".to_string(),
            };
            println!("{}: {what}, {} tensors, {:.1} MB of data, every tensor read and checked", file.display(), summary.tensors, summary.data_bytes as f64 / 1e6);
        }
    }
    Ok(())
}
