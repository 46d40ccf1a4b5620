//! What a crate embedding memvos relies on: one model type that runs on the fastest path by
//! itself, streams that own their network and move between threads, and a query that is the
//! one source of truth on every path (a wrapper that edits it is heard by burn's ops and by
//! memvos's CPU kernels alike).

use std::sync::Arc;

use memvos_data::synth::{SynthConfig, generate_video};
use memvos_model::{Benchmark, InferenceCore, Kernels, MemoryNetwork, Method, Model, ModelOptions, ModelSource, Propagator, PropagatorConfig, SharedNetwork};

mod wrappers;
use wrappers::EditV16;

fn assert_send<T: Send + 'static>() {}

#[test]
fn streams_own_their_network_and_are_send() {
    assert_send::<Model>();
    assert_send::<Propagator>();
    assert_send::<InferenceCore>();
    assert_send::<memvos_model::Session>();
    assert_send::<memvos_model::session::Run>();
    // A struct keeps the model and its stream together, and a thread runs it.
    struct Tracker {
        core: InferenceCore,
    }
    let model = Model::load(ModelSource::Default, &ModelOptions::default()).unwrap();
    assert!(model.on_cpu_kernels(), "the shipped STCN runs on memvos's CPU kernels by default");
    let cfg = PropagatorConfig::for_method(model.method(), Benchmark::YouTube);
    let mut t = Tracker { core: InferenceCore::new(model.shared(), cfg, None, model.device()).unwrap() };
    let v = generate_video(&SynthConfig { videos: 1, frames: 3, height: 48, width: 80, min_objects: 1, max_objects: 1, entry_probability: 0.0, ..Default::default() }, 0).unwrap();
    let labels = std::thread::spawn(move || {
        let mut out = Vec::new();
        for (i, f) in v.frames.iter().enumerate() {
            out.push(t.core.step(f, (i == 0).then_some(&v.masks[0])).unwrap().unwrap().labels);
        }
        out
    })
    .join()
    .unwrap();
    assert_eq!(labels.len(), 3);
}

#[test]
fn a_wrapper_that_edits_the_query_is_heard_on_both_paths() {
    let v = generate_video(&SynthConfig { videos: 1, frames: 4, height: 96, width: 128, min_objects: 2, max_objects: 2, entry_probability: 0.0, seed: 4, ..Default::default() }, 0).unwrap();
    let run = |net: SharedNetwork| -> Vec<Vec<f32>> {
        let cfg = PropagatorConfig::for_method(Method::Stcn, Benchmark::YouTube);
        let mut core = InferenceCore::new(net, cfg, None, &burn::tensor::Device::flex()).unwrap();
        v.frames.iter().enumerate().map(|(i, f)| core.step(f, (i == 0).then_some(&v.masks[0])).unwrap().unwrap().probs.iter().copied().collect()).collect()
    };
    let load = |kernels| Model::load(ModelSource::Default, &ModelOptions { kernels, ..ModelOptions::default() }).unwrap();
    let (burn, cpu) = (load(Kernels::Burn), load(Kernels::Auto));
    assert!(!burn.on_cpu_kernels() && cpu.on_cpu_kernels());
    let plain = run(burn.shared());
    let edited_burn = run(Arc::new(EditV16(burn.shared())));
    let edited_cpu = run(Arc::new(EditV16(cpu.shared())));
    let max_diff = |a: &[Vec<f32>], b: &[Vec<f32>]| a.iter().flatten().zip(b.iter().flatten()).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    // The edit changes the result on burn's ops ...
    let changed = max_diff(&plain[1..], &edited_burn[1..]);
    assert!(changed > 1e-3, "editing v16 changed nothing ({changed})");
    // ... and the CPU path computes the same edited result (within its float32 rounding).
    let between = max_diff(&edited_burn, &edited_cpu);
    eprintln!("edit moves probabilities by {changed:.3e}; burn vs CPU path with the edit: {between:.3e}");
    assert!(between < 1e-3, "the CPU path ignored the edited query: {between}");
}

#[test]
fn switching_policy_clears_what_the_new_one_refuses() {
    let qdmn = PropagatorConfig::for_method(Method::Qdmn, Benchmark::Davis2017);
    assert!(qdmn.policy.threshold.is_some() && qdmn.policy.capacity.is_some());
    let fifo = qdmn.clone().with_policy(memvos_memory::PolicyKind::Fifo);
    assert_eq!((fifo.policy.threshold, fifo.policy.capacity), (None, Some(22)));
    assert!(fifo.policy.build().is_ok(), "QDMN's config switched to FIFO builds");
    let every = qdmn.with_policy(memvos_memory::PolicyKind::EveryN);
    assert_eq!((every.policy.threshold, every.policy.capacity), (None, None));
    assert!(every.policy.build().is_ok());
}
