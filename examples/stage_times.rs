//! Times each stage of one STCN step at 480p on the chosen device (a table of medians).
//!
//! `cargo run --release --example stage_times -- [--device cpu] [--objects 2] [--memory 4]`

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use clap::Parser;
use memvos::device::DeviceChoice;
use memvos::memory::MemoryBank;
use memvos::model::Stcn;
use memvos::model::aggregate::aggregate;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    #[arg(long, default_value_t = 1)]
    objects: usize,
    #[arg(long, default_value_t = 4)]
    memory: usize,
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn time<T>(device: &Device, repeats: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut v = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        let out = f();
        device.sync().ok();
        drop(out);
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let selected = memvos::device::select(args.device)?;
    println!("{}", selected.description);
    let device = selected.device;
    let net = Stcn::new(&device);
    let (h, w, k) = (480, 864, args.objects);
    let frame = Tensor::<4>::random([1, 3, h, w], Distribution::Normal(0.0, 1.0), &device);
    let key = net.encode_key(frame.clone());
    let mut bank = MemoryBank::new(Some(20));
    for _ in 0..args.memory {
        bank.add(key.k16.clone(), Tensor::random([k, 512, h / 16, w / 16], Distribution::Normal(0.0, 1.0), &device), false)?;
    }
    let masks = Tensor::<4>::random([k, 1, h, w], Distribution::Uniform(0.0, 1.0), &device);
    let readout = bank.read(key.k16.clone())?;
    let r = args.repeats;
    let n = args.memory * (h / 16) * (w / 16);
    let m = (h / 16) * (w / 16);
    let mk = Tensor::<3>::random([1, 64, n], Distribution::Normal(0.0, 1.0), &device);
    let qk = Tensor::<3>::random([1, 64, m], Distribution::Normal(0.0, 1.0), &device);
    let vals = Tensor::<3>::random([k, 512, n], Distribution::Normal(0.0, 1.0), &device);
    let aff = memvos::memory::affinity::l2_affinity(mk.clone(), qk.clone());
    let rows = [
        ("key encoder (ResNet-50 + proj)", time(&device, r, || net.encode_key(frame.clone()))),
        ("  resnet-50 trunk", time(&device, r, || net.key_encoder.forward(frame.clone()))),
        ("memory read", time(&device, r, || bank.read(key.k16.clone()))),
        ("  l2 affinity", time(&device, r, || memvos::memory::affinity::l2_affinity(mk.clone(), qk.clone()))),
        ("  topk dim1", time(&device, r, || aff.clone().topk_with_indices(20, 1))),
        ("  topk dim2 (transposed)", time(&device, r, || aff.clone().swap_dims(1, 2).topk_with_indices(20, 2))),
        ("  topk_softmax", time(&device, r, || memvos::memory::affinity::topk_softmax(aff.clone(), 20))),
        ("  readout matmul", time(&device, r, || memvos::memory::affinity::readout(aff.clone(), vals.clone()))),
        ("decoder", time(&device, r, || net.decode(readout.clone(), &key))),
        ("  compress", time(&device, r, || net.decoder.compress.forward(Tensor::cat(vec![readout.clone(), key.v16.clone().expand([k, 512, h / 16, w / 16])], 1)))),
        ("aggregate", time(&device, r, || aggregate(masks.clone()))),
        ("value encoder", time(&device, r, || net.encode_value(frame.clone(), key.features.f16.clone(), masks.clone()))),
        ("to host", time(&device, r, || masks.clone().into_data())),
    ];
    println!("{:<34} {:>10}", "stage", "ms");
    for (n, ms) in rows {
        println!("{n:<34} {ms:>10.1}");
    }
    Ok(())
}
