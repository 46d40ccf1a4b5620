//! Weight files: write the parity fixtures' formula weights of any method (deterministic, for
//! demos and tests) as `.pth` or `.safetensors`, convert a checkpoint between `.pth`,
//! `.safetensors` and burnpack `.bpk`, or say which method a file holds.
//!
//! `cargo run --release --example weights -- formula --method mivos --out mivos-formula.pth`
//! `cargo run --release --example weights -- convert --from stcn.pth --to stcn.bpk`
//! `cargo run --release --example weights -- inspect --file propagation_model.pth`

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Parser, Subcommand};
use memvos::burn;
use memvos::model::{Method, load_network, weights, write_formula};
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
