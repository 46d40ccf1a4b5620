//! A downstream crate written from memvos's README and `cargo doc` only. It
//! 1. segments a synthetic video with the shipped model on memvos's CPU kernels,
//! 2. swaps in FIFO memory,
//! 3. plugs in its own least-used eviction policy (XMem's rule) and inspects its state,
//! 4. adds its own method through the registry (STCN with a readout temperature), and
//! 5. times the top-k read kernels.
//! Each step checks what it got; any failure exits non-zero.

use std::any::Any;
use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use memvos::data::synth::{SynthConfig, SynthVideo, generate_video};
use memvos::data::LabelMap;
use memvos::memory::affinity::{readout, topk_softmax};
use memvos::memory::bench::Workload;
use memvos::memory::{Candidate, Fifo, MemoryBank, MemoryError, MemoryPolicy, Selection, Similarity, StoredFrame, ValueSlot, Write};
use memvos::model::burn::tensor::{Device, Tensor};
use memvos::model::registry::{Checkpoint, Loaded, MethodEntry};
use memvos::model::{
    AnyNetwork, Benchmark, InferenceCore, KeyKind, MemoryEncoding, MemoryNetwork, Method, Model, ModelOptions, ModelSource, Precision, Propagator, Query,
    SharedNetwork, WeightError, load_network,
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn video() -> Result<SynthVideo> {
    let cfg = SynthConfig { videos: 1, frames: 12, height: 96, width: 160, min_objects: 2, max_objects: 2, entry_probability: 0.0, seed: 7, ..Default::default() };
    Ok(generate_video(&cfg, 0)?)
}

/// Mean IoU over frames 1.. and objects against the ground truth.
fn mean_iou(out: &[LabelMap], v: &SynthVideo) -> f64 {
    let mut total = 0.0;
    let mut n = 0;
    for (got, want) in out.iter().zip(&v.masks).skip(1) {
        for &(id, _) in &v.objects {
            let (mut inter, mut union) = (0usize, 0usize);
            for (a, b) in got.labels.iter().zip(want.labels.iter()) {
                let (a, b) = (*a == id, *b == id);
                inter += (a && b) as usize;
                union += (a || b) as usize;
            }
            total += if union == 0 { 1.0 } else { inter as f64 / union as f64 };
            n += 1;
        }
    }
    total / n.max(1) as f64
}

fn segment(core: &mut InferenceCore, v: &SynthVideo) -> Result<Vec<LabelMap>> {
    let mut out = Vec::new();
    for (i, f) in v.frames.iter().enumerate() {
        let seg = core.step(f, (i == 0).then_some(&v.masks[0]))?.ok_or("no output after the first mask")?;
        out.push(seg.labels);
    }
    Ok(out)
}

fn propagate(p: &mut Propagator, v: &SynthVideo) -> Result<Vec<LabelMap>> {
    let mut out = Vec::new();
    for (i, f) in v.frames.iter().enumerate() {
        out.push(p.step(f, (i == 0).then_some(&v.masks[0]))?.ok_or("no output after the first mask")?.labels);
    }
    Ok(out)
}

/// Keeps at most `capacity` frames (the annotated first included), writing every `every`-th;
/// when full, evicts the stored frame the queries read least on average.
#[derive(Clone, Debug)]
struct LeastUsed {
    every: usize,
    capacity: usize,
    evicted: Vec<usize>,
}

impl MemoryPolicy for LeastUsed {
    fn name(&self) -> &'static str {
        "least-used"
    }
    fn write(&mut self, c: &Candidate, stored: &[StoredFrame]) -> Write {
        if !c.annotated && c.frame % self.every != 0 {
            return Write::Skip;
        }
        if stored.len() < self.capacity {
            return Write::keep();
        }
        let victim = (1..stored.len()).min_by(|&a, &b| stored[a].usage.mean().total_cmp(&stored[b].usage.mean())).unwrap_or(1);
        self.evicted.push(stored[victim].frame);
        Write::Permanent { evict: vec![victim] }
    }
    fn uses_usage(&self) -> bool {
        true
    }
    fn reset(&mut self) {
        self.evicted.clear();
    }
}

/// STCN whose memory read divides the affinities by a temperature before the top-k softmax.
struct WarmStcn {
    inner: AnyNetwork,
    temperature: f32,
}

impl MemoryNetwork for WarmStcn {
    fn method(&self) -> Method {
        Method::Stcn
    }
    fn name(&self) -> &str {
        "STCN-warm"
    }
    fn key_kind(&self) -> KeyKind {
        self.inner.key_kind()
    }
    fn similarity(&self) -> Similarity {
        self.inner.similarity()
    }
    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query {
        self.inner.encode_query(frame, previous)
    }
    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding {
        self.inner.encode_memory(frame, query, masks, next)
    }
    fn read_memory(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> std::result::Result<Tensor<4>, MemoryError> {
        let (keys, values) = bank.contents(Some(positions), true, ValueSlot::Value)?;
        let [_, ck, h, w] = query.k16.dims();
        let [k, cv, n] = values.dims();
        let q = query.k16.clone().reshape([1, ck, h * w]);
        let a = self.similarity().affinity(keys, q).div_scalar(self.temperature);
        let top = match bank.config().selection {
            Selection::TopK(t) => t.min(n),
            _ => n,
        };
        Ok(readout(topk_softmax(a, top)?, values).reshape([k, cv, h, w]))
    }
    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        self.inner.decode(query, readout)
    }
}

/// The registry entry: checkpoints tagged "stcn-warm".
struct WarmEntry {
    temperature: f32,
}

impl MethodEntry for WarmEntry {
    fn id(&self) -> &str {
        "stcn-warm"
    }
    fn detect(&self, checkpoint: &Checkpoint<'_>) -> bool {
        checkpoint.method_tag() == Some("stcn-warm")
    }
    fn load(&self, checkpoint: &Checkpoint<'_>, device: &Device) -> std::result::Result<Loaded, WeightError> {
        let inner = load_network(checkpoint.path, Some(Method::Stcn), device)?;
        Ok(Loaded::Custom(Arc::new(WarmStcn { inner, temperature: self.temperature }) as SharedNetwork))
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let v = video()?;
    let opts = ModelOptions::default();

    // 1. The shipped model on memvos's CPU kernels.
    let model = Model::load(ModelSource::Default, &opts)?;
    if !model.on_cpu_kernels() {
        return Err("the shipped STCN should run on memvos's CPU kernels".into());
    }
    let cfg = model.default_config(Benchmark::YouTube);
    let mut core = InferenceCore::new(model.shared(), cfg.clone(), None, &opts.device)?;
    let base = segment(&mut core, &v)?;
    let iou = mean_iou(&base, &v);
    println!("1. {}: mean IoU {iou:.3} over {} frames", model.describe(), v.frames.len());
    if iou < 0.7 {
        return Err(format!("mean IoU {iou:.3} below 0.7").into());
    }

    // 2. FIFO memory, by name and as an object.
    let fifo_cfg = {
        let mut c = cfg.clone().with_policy(memvos::memory::PolicyKind::Fifo);
        c.policy.every = 2;
        c.policy.capacity = Some(3);
        c
    };
    let mut p = Propagator::new(model.shared(), fifo_cfg, &opts.device)?;
    let fifo = propagate(&mut p, &v)?;
    let stored = p.stored_frames();
    println!("2. fifo (every 2, capacity 3): stored frames {stored:?}, mean IoU {:.3}", mean_iou(&fifo, &v));
    if stored.iter().any(|s| s.len() > 3 || s.first() != Some(&0)) {
        return Err(format!("FIFO kept {stored:?}").into());
    }
    let group = &p.groups()[0];
    let policy: &dyn Any = group.policy;
    policy.downcast_ref::<Fifo>().ok_or("the group's policy is not a Fifo")?;

    // 3. Our own least-used eviction.
    let mut p = Propagator::with_policy(model.shared(), cfg.clone(), Box::new(LeastUsed { every: 2, capacity: 3, evicted: Vec::new() }), &opts.device)?;
    let lu = propagate(&mut p, &v)?;
    let groups = p.groups();
    let policy: &dyn Any = groups[0].policy;
    let mine = policy.downcast_ref::<LeastUsed>().ok_or("the group's policy is not ours")?;
    println!("3. least-used: evicted {:?}, kept {:?} with mean usage {:?}, mean IoU {:.3}", mine.evicted, groups[0].stored.iter().map(|s| s.frame).collect::<Vec<_>>(),
        groups[0].stored.iter().map(|s| (s.usage.mean() * 1000.0).round() / 1000.0).collect::<Vec<_>>(), mean_iou(&lu, &v));
    if mine.evicted.is_empty() || groups[0].stored.len() > 3 || groups[0].stored.iter().any(|s| s.usage.reads == 0) {
        return Err("the least-used policy did not evict by usage".into());
    }

    // 4. Our own method through the registry: the shipped weights saved under our method id.
    let dir = std::env::temp_dir().join(format!("memvos-downstream-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("warm.safetensors");
    let net = model.network().ok_or("the shipped model is a built-in network")?;
    // The shipped network's configuration, as its file stores it.
    let (_, meta) = memvos::model::weights::safetensors_header_of_bytes(std::path::Path::new("shipped"), memvos::model::DEFAULT_MODEL)?;
    net.save_as(&path, meta.get(memvos::model::weights::CONFIG_KEY).cloned(), "stcn-warm")?;
    for (temperature, same) in [(1.0, true), (3.0, false)] {
        let opts = ModelOptions::default().with_method(WarmEntry { temperature })?;
        // A method of its own runs on burn's ops: bf16 weights are refused, not ignored.
        let bf16 = ModelOptions { precision: Precision::Bf16, ..ModelOptions::default().with_method(WarmEntry { temperature })? };
        match Model::load(ModelSource::Path(&path), &bf16) {
            Err(e) if e.to_string().contains("use fp32") => {}
            other => return Err(format!("bf16 on a registered method: {other:?}").into()),
        }
        let warm = Model::load(ModelSource::Path(&path), &opts)?;
        if warm.name() != "STCN-warm" {
            return Err(format!("the registry loaded {}", warm.name()).into());
        }
        let mut core = InferenceCore::new(warm.shared(), cfg.clone(), None, &opts.device)?;
        let out = segment(&mut core, &v)?;
        let differ: usize = out.iter().zip(&base).map(|(a, b)| a.labels.iter().zip(b.labels.iter()).filter(|(x, y)| x != y).count()).sum();
        println!("4. {} (T = {temperature}): {differ} pixels differ from the shipped model's, mean IoU {:.3}", warm.describe(), mean_iou(&out, &v));
        let pixels = v.frames.len() * v.frames[0].height() * v.frames[0].width();
        if same && differ * 1000 > pixels {
            return Err(format!("T = 1 should reproduce STCN: {differ} pixels differ").into());
        }
        if !same && differ == 0 {
            return Err("T = 3 changed nothing".into());
        }
    }
    std::fs::remove_dir_all(&dir).ok();

    // 5. The top-k read kernels, burn's and memvos's, through one interface. (CI builds this
    // crate unoptimised, see Cargo.toml: there the times show the API works, not the speed.)
    let profile = if cfg!(debug_assertions) { " (unoptimised build)" } else { "" };
    let w = Workload::new(64, 4, &opts.device);
    for k in memvos::model::cpu::read_kernels().into_iter().filter(|k| k.name().contains("top-20")) {
        let mut call = k.prepare(&w)?;
        call()?;
        let start = Instant::now();
        for _ in 0..3 {
            call()?;
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / 3.0;
        println!("5. {:<28} {ms:7.1} ms ({:.1} GFLOP/s){profile}", k.name(), k.flops(&w) / ms / 1e6);
    }
    Ok(())
}
