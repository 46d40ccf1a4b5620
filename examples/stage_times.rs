//! Times each stage of one STCN step at 480p (854 padded to 864) on the chosen device: a table
//! of median milliseconds, to see where a frame's time goes.
//!
//! `cargo run --release --example stage_times -- [--device cpu] [--objects 1] [--memory 4]`

use clap::Parser;
use memvos::burn::tensor::{Distribution, Tensor};
use memvos::device::DeviceChoice;
use memvos::memory::{MemoryBank, ReadConfig};
use memvos::model::Stcn;
use memvos::model::aggregate::aggregate;
use memvos::timing::median_seconds;

#[derive(Parser)]
#[command(about = "Per-stage time of one STCN step at 480p")]
struct Args {
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Objects segmented.
    #[arg(long, default_value_t = 1)]
    objects: usize,
    /// Memory frames read.
    #[arg(long, default_value_t = 4)]
    memory: usize,
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = memvos::device::select_and_announce(args.device)?;
    let net = Stcn::new(&device);
    let (h, w, k) = (480, 864, args.objects);
    let normal = Distribution::Normal(0.0, 1.0);
    let frame = Tensor::<4>::random([1, 3, h, w], normal, &device);
    let key = net.encode_key(frame.clone());
    let mut bank = MemoryBank::new(ReadConfig::stcn(Some(20)));
    for t in 0..args.memory {
        bank.push(t, None, key.k16.clone(), Tensor::random([k, 512, h / 16, w / 16], normal, &device))?;
    }
    let masks = Tensor::<4>::random([k, 1, h, w], Distribution::Uniform(0.0, 1.0), &device);
    let readout = bank.read(key.k16.clone(), None)?;
    let ms = |f: &mut dyn FnMut() -> Tensor<4>| 1e3 * median_seconds(&device, args.repeats, f);
    let rows = [
        ("key encoder (ResNet-50, key proj, key comp)", ms(&mut || net.encode_key(frame.clone()).k16)),
        ("memory read (top-20)", ms(&mut || bank.read(key.k16.clone(), None).unwrap())),
        ("decoder", ms(&mut || net.decode(readout.clone(), &key))),
        ("soft aggregation", ms(&mut || aggregate(masks.clone()))),
        ("value encoder (ResNet-18, fuser)", ms(&mut || net.encode_value(frame.clone(), key.features.f16.clone(), masks.clone()))),
    ];
    println!("| stage ({k} object(s), {} memory frames) | ms |\n|---|---|", args.memory);
    let mut total = 0.0;
    for (n, t) in rows {
        println!("| {n} | {t:.1} |");
        total += t;
    }
    println!("| total | {total:.1} |");
    Ok(())
}
