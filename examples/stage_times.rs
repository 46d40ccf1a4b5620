//! Where one 480p step of a method spends its time (854×480 padded to 864×480) on the chosen
//! device: median milliseconds per stage — query encoding, memory read of `--memory` frames,
//! decoding, soft aggregation, memory encoding — and a whole streamed frame (the inference core
//! on a synthetic video, memory written on the method's schedule), with its FPS. Weights are
//! burn's random initialisation (speed does not depend on their values).
//!
//! `cargo run --release --example stage_times -- --method stcn [--objects 1] [--memory 4]`
//! `cargo run --release --example stage_times -- --method all --stream 10`
//! `cargo run --release --example stage_times -- --size 32x64 --cpu-kernels burn` (tiny frames,
//! burn's own CPU ops instead of memvos's kernels)

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use memvos::burn::tensor::{Distribution, Tensor};
use memvos::data::synth::{SynthConfig, generate_video};
use memvos::device::DeviceChoice;
use memvos::memory::{MemoryBank, ReadConfig, Selection, transfers};
use memvos::model::aggregate::aggregate;
use memvos::model::cpu::{CpuOptions, Precision, accelerate, conversions};
use memvos::model::{AnyNetwork, Benchmark, InferenceCore, Method, PropagatorConfig, SharedNetwork};
use memvos::runner::{CpuKernels, MethodChoice};
use memvos::timing::{faults, median_seconds};

#[derive(Parser)]
#[command(about = "Per-stage time of one 480p step of a memory network")]
struct Args {
    /// A method, or `auto`/all methods one after the other.
    #[arg(long, value_enum, default_value = "stcn")]
    method: MethodChoice,
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
    /// Frames of the streamed synthetic video (0 skips the stream).
    #[arg(long, default_value_t = 6)]
    stream: usize,
    /// Frame size HxW (padded to multiples of 16 for the stages).
    #[arg(long, default_value = "480x854", value_parser = memvos::cli::parse_size)]
    size: (usize, usize),
    /// Only the streamed video (no per-stage timings): for peak-memory measurements.
    #[arg(long)]
    stream_only: bool,
    /// memvos's CPU kernels or burn's ops (CPU only).
    #[arg(long, value_enum, default_value = "memvos")]
    cpu_kernels: CpuKernels,
    /// memvos's kernels: maps below this many output pixels by im2col instead of Winograd (1024
    /// is faster on tiny frames and keeps both weight layouts; 0 keeps only Winograd's; default:
    /// 0 for fp32, 1024 for bf16, as the runners do).
    #[arg(long)]
    winograd_from: Option<usize>,
    /// memvos's kernels: weights stored as fp32 or bf16.
    #[arg(long, default_value = "fp32")]
    precision: Precision,
    /// Threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// For bf16: which bfloat16 instructions the CPU has (memvos widens to float32 either way).
fn bf16_note(p: Precision) -> String {
    match p {
        Precision::Fp32 => String::new(),
        _ => format!(" (products in {})", memvos::cpu::bf16_products()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    memvos::cli::main(|| run(args))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.objects == 0 || args.objects > 32 || args.memory == 0 || args.memory > 64 || args.stream > 1000 {
        return Err("--objects must be in 1..=32, --memory in 1..=64, --stream at most 1000".into());
    }
    if args.repeats == 0 || args.repeats > 1000 {
        return Err(format!("--repeats {}: each stage is timed 1..=1000 times (0 would print a table of zeros)", args.repeats).into());
    }
    let (fh, fw) = args.size;
    if fh < 16 || fw < 16 || fh > 4096 || fw > 4096 {
        return Err(format!("--size {fh}x{fw}: each side must be in 16..=4096").into());
    }
    if let Some(t) = args.threads {
        memvos::runner::use_threads(t)?;
    }
    let device = memvos::device::select_and_announce(args.device)?;
    let methods: Vec<Method> = args.method.method().map(|m| vec![m]).unwrap_or_else(|| Method::ALL.to_vec());
    let (h, w, k) = (fh.div_ceil(16) * 16, fw.div_ceil(16) * 16, args.objects);
    println!("{fh}×{fw} (stages at {h}×{w}), {k} object(s), CPU kernels: {:?}, {} weights{}, {} threads", args.cpu_kernels, args.precision, bf16_note(args.precision), memvos::runner::threads());
    println!("| method | query encoder | memory read ({} frames) | decoder | aggregation | memory encoder | streamed frame | FPS | host↔device copies per streamed frame | CPU path's tensor↔NHWC conversions per streamed frame | fresh pages faulted in per streamed frame (allocation) |", args.memory);
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for method in methods {
        let any = AnyNetwork::new(method, None, &device)?;
        let fast = match args.cpu_kernels.options() {
            Some(opts) => {
                let opts = opts.with_precision(args.precision);
                accelerate(&any, &device, CpuOptions { winograd_from: args.winograd_from.unwrap_or(opts.winograd_from), ..opts })?
            }
            None => None,
        };
        if fast.is_none() && args.precision != Precision::Fp32 {
            return Err(format!("--precision {}: {method} does not run on memvos's CPU kernels here", args.precision).into());
        }
        let shared: SharedNetwork = match fast {
            Some(f) => Arc::from(f),
            None => Arc::new(any),
        };
        let net = shared.as_ref();
        if args.stream_only {
            let (per_frame, fps, copies, outside, fresh) = stream(shared.clone(), method, k, args.stream.max(2), (fh, fw), &device)?;
            println!("| {method} | | | | | | {per_frame:.0} ms | {fps:.2} | {copies} | {outside} | {fresh} |");
            continue;
        }
        let normal = Distribution::Normal(0.0, 1.0);
        let frame = Tensor::<4>::random([1, 3, h, w], normal, &device);
        let masks = Tensor::<4>::random([k, 1, h, w], Distribution::Uniform(0.0, 1.0), &device);
        let query = net.encode_query(frame.clone(), Some(masks.clone().max_dim(0)));
        let cfg = PropagatorConfig::for_method(method, Benchmark::Davis2017);
        let selection = cfg.top_k.map(Selection::TopK).unwrap_or(Selection::Full);
        let mut bank = MemoryBank::new(ReadConfig { similarity: net.similarity(), selection, chunk: None });
        for t in 0..args.memory {
            let m = net.encode_memory(frame.clone(), &query, masks.clone(), Some(frame.clone()));
            bank.push_with_aux(t, None, m.key, m.value, m.aux)?;
        }
        let positions: Vec<usize> = (0..args.memory).collect();
        let readout = net.read_memory(&query, &bank, &positions)?;
        let ms = |f: &mut dyn FnMut() -> Tensor<4>| 1e3 * median_seconds(&device, args.repeats, f);
        let q = ms(&mut || net.encode_query(frame.clone(), Some(masks.clone().max_dim(0))).k16);
        let r = ms(&mut || net.read_memory(&query, &bank, &positions).unwrap_or_else(|_| readout.clone()));
        let d = ms(&mut || net.decode(&query, readout.clone()));
        let a = ms(&mut || aggregate(masks.clone()));
        let m = ms(&mut || net.encode_memory(frame.clone(), &query, masks.clone(), Some(frame.clone())).value);
        let (per_frame, fps, copies, outside, fresh) = if args.stream > 0 { stream(shared.clone(), method, k, args.stream, (fh, fw), &device)? } else { (f64::NAN, f64::NAN, String::new(), String::new(), String::new()) };
        println!("| {method} | {q:.0} ms | {r:.0} ms | {d:.0} ms | {a:.0} ms | {m:.0} ms | {per_frame:.0} ms | {fps:.2} | {copies} | {outside} | {fresh} |");
    }
    Ok(())
}

/// Streams a synthetic video of `frames` frames with `objects` objects through the
/// inference core (DAVIS schedule); returns (ms per frame after the first, FPS, the copies
/// between host and device memvos made per frame after the first, the CPU path's tensor ↔ NHWC
/// conversions per frame, the pages faulted in per frame and the kernel time they cost).
#[allow(clippy::type_complexity)]
fn stream(net: SharedNetwork, method: Method, objects: usize, frames: usize, (height, width): (usize, usize), device: &memvos::burn::tensor::Device) -> Result<(f64, f64, String, String, String), Box<dyn std::error::Error>> {
    let synth = SynthConfig { videos: 1, frames, height, width, min_objects: objects, max_objects: objects, entry_probability: 0.0, seed: 3, ..Default::default() };
    let video = generate_video(&synth, 0)?;
    let mut core = InferenceCore::new(net, PropagatorConfig::for_method(method, Benchmark::Davis2017), None, device)?;
    core.step(&video.frames[0], Some(&video.masks[0]))?;
    let _ = device.sync();
    let before = transfers::counts();
    let converted = conversions::counts();
    let faulted = faults();
    let start = Instant::now();
    for f in &video.frames[1..] {
        core.step(f, None)?;
    }
    let _ = device.sync();
    let per = start.elapsed().as_secs_f64() / (frames - 1).max(1) as f64;
    let c = transfers::counts() - before;
    let n = (frames - 1).max(1) as f64;
    let copies = format!("{:.1} up ({:.0} KB), {:.1} down ({:.0} KB)", c.uploads as f64 / n, c.upload_bytes as f64 / n / 1e3, c.downloads as f64 / n, c.download_bytes as f64 / n / 1e3);
    let v = conversions::counts() - converted;
    let outside = if v.count == 0 {
        "none (burn's ops)".to_string()
    } else {
        let ms = v.nanos as f64 / 1e6 / n;
        format!("{:.0} ({:.0} MB), {ms:.0} ms = {:.1} % of the frame", v.count as f64 / n, 4.0 * v.values as f64 / n / 1e6, 100.0 * ms / (1e3 * per))
    };
    let fresh = match (faulted, faults()) {
        (Some(a), Some(b)) => {
            let d = b - a;
            format!("{:.1} K ({:.0} MB of 4 KiB pages), {:.0} ms of kernel time (all threads)", d.minor as f64 / n / 1e3, d.minor as f64 * 4096.0 / n / 1e6, 1e3 * d.system_seconds / n)
        }
        _ => "not measured here (no /proc/self/stat)".to_string(),
    };
    Ok((1e3 * per, 1.0 / per, copies, outside, fresh))
}
