//! Prints the read kernels of `benches/affinity.rs` as a table — burn's tensor kernels and
//! memvos's CPU top-k read, through one `ReadKernel` interface: median time, GFLOP/s (matrix
//! work only, see `ReadKernel::flops`) and the share of the machine's measured matrix-product peak.
//!
//! `cargo run --release --example kernel_table -- [--device cpu] [--frames 1,4,16,64] [--repeats 3]`

use clap::Parser;
use memvos::burn::tensor::{Distribution, Tensor};
use memvos::device::DeviceChoice;
use memvos::memory::bench::{Workload, matmul_flops};
use memvos::model::cpu::read_kernels;
use memvos::timing::median_seconds as median_s;

#[derive(Parser)]
#[command(about = "Affinity kernels at 480p against the matrix-product peak")]
struct Args {
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Memory sizes in frames.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    frames: Vec<usize>,
    /// Key channels.
    #[arg(long, value_delimiter = ',', default_value = "64,128")]
    key_channels: Vec<usize>,
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.frames.iter().any(|&f| f == 0 || f > 256) || args.key_channels.iter().any(|&c| c == 0 || c > 1024) || args.repeats == 0 || args.repeats > 1000 {
        return Err("--frames must be in 1..=256, --key-channels in 1..=1024, --repeats in 1..=1000".into());
    }
    let device = memvos::device::select_and_announce(args.device)?;
    let s = 2048;
    let a = Tensor::<2>::random([s, s], Distribution::Normal(0.0, 1.0), &device);
    let b = Tensor::<2>::random([s, s], Distribution::Normal(0.0, 1.0), &device);
    let peak = matmul_flops(s, s, s) / median_s(&device, args.repeats, || a.clone().matmul(b.clone())) / 1e9;
    println!("matrix-product peak ({s}x{s}x{s} f32): {peak:.1} GFLOP/s\n");
    println!("| kernel | C_k | memory frames | N | ms | GFLOP/s | % of peak |");
    println!("|---|---|---|---|---|---|---|");
    for &ck in &args.key_channels {
        for &frames in &args.frames {
            let w = Workload::new(ck, frames, &device);
            for k in read_kernels() {
                let mut call = k.prepare(&w)?;
                call()?;
                let t = median_s(&device, args.repeats, &mut call);
                let gflops = k.flops(&w) / t / 1e9;
                println!("| {} | {ck} | {frames} | {} | {:.1} | {gflops:.1} | {:.0}% |", k.name(), w.n(), t * 1e3, 100.0 * gflops / peak);
            }
        }
    }
    Ok(())
}
