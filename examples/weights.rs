//! Weight files: write the parity fixtures' formula weights (deterministic, for demos and
//! tests), or convert a checkpoint between `.pth`, `.safetensors` and burnpack `.bpk`.
//!
//! `cargo run --release --example weights -- formula --out stcn-formula.safetensors`
//! `cargo run --release --example weights -- convert --from stcn.pth --to stcn.bpk`

use std::path::PathBuf;

use burn::tensor::Device;
use clap::{Parser, Subcommand};
use memvos::burn;
use memvos::model::{load_stcn, save_stcn, write_formula_stcn};

#[derive(Parser)]
#[command(about = "Create or convert STCN weight files")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fill STCN by WEIGHTS-FORMULA.md and save it as safetensors with the stcn.pth names.
    Formula {
        #[arg(long)]
        out: PathBuf,
    },
    /// Load STCN weights (strictly) and save them in another format.
    Convert {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        to: PathBuf,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::flex();
    match Args::parse().cmd {
        Cmd::Formula { out } => {
            write_formula_stcn(&out, &device)?;
            println!("wrote formula-filled STCN weights to {}", out.display());
        }
        Cmd::Convert { from, to } => {
            let net = load_stcn(&from, &device)?;
            save_stcn(&net, &to)?;
            println!("converted {} to {}", from.display(), to.display());
        }
    }
    Ok(())
}
