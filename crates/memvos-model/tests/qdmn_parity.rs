//! QDMN parity with the reference PyTorch implementation (fixture `tests/fixtures/qdmn-parity`:
//! yongliu20/QDMN at 301f7bf, every weight filled by WEIGHTS-FORMULA.md, 3 frames of 96×160,
//! 2 objects, top-50, mem_freq 5, quality threshold 0.8, memory_thr 20).
//!
//! Filled through the published-checkpoint path (a `torch.save`-format `.pth` with the published
//! names, method recognised from its keys). Tolerances per element as the MiVOS test: ten times
//! the reference's own one-vs-two-thread float32 noise recorded in the fixture for each tensor,
//! at least `1e-5·max|ref|`; the quality scores and the normalised quality likewise; label maps
//! identical except at the reference's near ties (two largest probabilities closer than 1e-4:
//! 50 pixels in frame 1, 70 in frame 2).

mod common;

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use common::{Golden, Tol, assert_close, assert_close_values, check_core, check_formula, count_outside, fixture, formula_network};
use memvos_memory::{MemoryBank, MemoryPolicy, ReadConfig, Selection, Similarity};
use memvos_model::aggregate::aggregate;
use memvos_model::blocks::resize_bilinear;
use memvos_model::cpu::{ConvAlgo, CpuOptions, CpuQdmn};
use memvos_model::{AnyNetwork, Benchmark, MemoryNetwork, Method, PropagatorConfig, mivos};


#[test]
fn formula_matches_the_manifest_checksums() {
    assert_eq!(check_formula(&fixture("qdmn-parity")), (598, 92));
}

#[test]
fn qdmn_matches_the_reference_on_every_golden_tensor() {
    let d = Device::flex();
    let (any, g) = formula_network("qdmn-parity", Method::Qdmn);
    let AnyNetwork::Qdmn(net) = &any else { unreachable!() };
    let input = |t: usize| g.tensor4("input.frames", &d).narrow(0, t, 1);

    // The burn network's parts the trait does not show: memory features and the quality head's
    // last convolution, the gate, ASPP.
    let prob0 = aggregate(g.tensor4("input.first_masks", &d));
    let f16_0 = mivos::memory_features(&net.mask_rgb_encoder, input(0), prob0.clone().narrow(0, 1, 2));
    assert_close(&g, "f0.mem.f16", f16_0.clone(), None);
    assert_close(&g, "f0.quality.conv4", net.score.conv4_logits(f16_0), None);
    let prev1 = prob0.narrow(0, 1, 2).max_dim(0);
    let f1 = net.rgb_encoder.forward(input(1));
    assert_close(&g, "f1.query.prev_mask", resize_bilinear(prev1.clone(), 6, 10), None);
    let (gate, gated) = net.gate(f1.f16.clone(), prev1.clone());
    assert_close(&g, "f1.query.gate_logits", gate, None);
    assert_close(&g, "f1.query.f16_gated", gated, None);
    let m0 = net.encode_memory(input(0), &net.encode_query(input(0), None), aggregate(g.tensor4("input.first_masks", &d)).narrow(0, 1, 2), None);
    let mut bank = MemoryBank::new(ReadConfig { similarity: Similarity::Dot, selection: Selection::TopK(50), chunk: None });
    bank.push(0, None, m0.key, m0.value).unwrap();
    let q1 = net.encode_query(input(1), Some(prev1));
    let r1 = net.read_memory(&q1, &bank, &[0]).unwrap();
    let x1 = Tensor::cat(vec![r1, q1.v16.clone().expand([2, 512, 6, 10])], 1);
    assert_close(&g, "f1.aspp", net.aspp.forward(x1), None);
    let prob1 = g.tensor4("f1.prob", &d);
    let f16_1 = mivos::memory_features(&net.mask_rgb_encoder, input(1), prob1.narrow(0, 1, 2));
    assert_close(&g, "f1.quality.conv4", net.score.conv4_logits(f16_1), None);

    check_every_tensor(net, &g, &d, |name| g.tol(name));
}

/// The case through `net`'s four calls, every golden tensor within `tol(name)`.
fn check_every_tensor(net: &dyn MemoryNetwork, g: &Golden, d: &Device, tol: impl Fn(&str) -> Tol) {
    let close = |name: &str, t| assert_close(g, name, t, Some(tol(name)));
    let close_values = |name: &str, v: &[f32]| assert_close_values(g, name, v, Some(tol(name)));
    let input = |t: usize| g.tensor4("input.frames", d).narrow(0, t, 1);

    // Frame 0: memory encoding and quality of the annotated frame.
    let prob0 = aggregate(g.tensor4("input.first_masks", d));
    close("f0.prob", prob0.clone());
    let masks0 = prob0.clone().narrow(0, 1, 2);
    let q0 = net.encode_query(input(0), None);
    let m0 = net.encode_memory(input(0), &q0, masks0, None);
    close("f0.mem.key", m0.key.clone());
    close("f0.mem.value", m0.value.clone());
    let s0 = m0.quality.clone().expect("QDMN scores its memory");
    close_values("f0.quality.score", &s0);

    // Frame 1: the query gated by frame 0's mask, read of memory {0}, ASPP, decoder.
    let prev1 = prob0.narrow(0, 1, 2).max_dim(0);
    let q1 = net.encode_query(input(1), Some(prev1));
    close("f1.query.f16", q1.features.f16.clone());
    close("f1.query.f8", q1.features.f8.clone());
    close("f1.query.f4", q1.features.f4.clone());
    close("f1.query.key", q1.k16.clone());
    close("f1.query.value", q1.v16.clone());
    let mut bank = MemoryBank::new(ReadConfig { similarity: Similarity::Dot, selection: Selection::TopK(50), chunk: None });
    bank.push(0, None, m0.key, m0.value).unwrap();
    let r1 = net.read_memory(&q1, &bank, &[0]).unwrap();
    close("f1.readout", r1.clone());
    let logits1 = net.decode(&q1, r1);
    close("f1.decoder_logits", logits1.clone());
    let prob1 = aggregate(sigmoid(logits1));
    close("f1.prob", prob1.clone());

    // Frame 1's memory encoding and quality, normalised as QDMN does.
    let masks1 = prob1.clone().narrow(0, 1, 2);
    let m1 = net.encode_memory(input(1), &q1, masks1, None);
    let s1 = m1.quality.clone().unwrap();
    close_values("f1.quality.score", &s1);
    close("f1.mem.key", m1.key.clone());
    close("f1.mem.value", m1.value.clone());
    // Normalised as memvos does it: the propagator's group quality, the policy's reference.
    let mut policy = memvos_memory::Qdmn::davis();
    let first = memvos_model::propagator::group_quality(&s0, true, true);
    let _ = policy.write(&memvos_memory::Candidate { frame: 0, quality: Some(first), annotated: true }, &[]);
    let normalised = policy.normalised(memvos_model::propagator::group_quality(&s1, true, false)).expect("frame 0 sets the reference");
    let (_, want) = g.f32("f1.quality.normalized");
    assert_eq!(count_outside("f1.quality.normalized", &[normalised], &want, tol("f1.quality.normalized")), 0);

    // Frame 2: gated by frame 1's mask, reads {0} + temporary {1}.
    bank.set_temporary(1, m1.key, m1.value).unwrap();
    let prev2 = prob1.narrow(0, 1, 2).max_dim(0);
    let q2 = net.encode_query(input(2), Some(prev2));
    let r2 = net.read_memory(&q2, &bank, &[0]).unwrap();
    close("f2.readout", r2.clone());
    let logits2 = net.decode(&q2, r2);
    close("f2.decoder_logits", logits2.clone());
    close("f2.prob", aggregate(sigmoid(logits2)));
}

/// memvos's CPU kernels (packed weights, folded BatchNorm, NHWC, Winograd; the gate, the atrous
/// ASPP, the quality head, the per-object top-k read) with each convolution algorithm, every
/// golden tensor within the fixture's tolerance, as on burn's ops.
#[test]
fn qdmn_cpu_path_matches_the_reference_on_every_golden_tensor() {
    let d = Device::flex();
    let (any, g) = formula_network("qdmn-parity", Method::Qdmn);
    let AnyNetwork::Qdmn(net) = &any else { unreachable!() };
    for conv in [ConvAlgo::Gemm, ConvAlgo::F2, ConvAlgo::F4] {
        eprintln!("CPU path, {conv:?}:");
        check_every_tensor(&CpuQdmn::new(net, &d, CpuOptions::from(conv)).unwrap(), &g, &d, |name| g.tol(name));
    }
}

#[test]
fn the_inference_core_reproduces_the_reference_label_maps() {
    let cfg = PropagatorConfig::for_method(Method::Qdmn, Benchmark::Davis2017);
    assert_eq!((cfg.top_k, cfg.policy.threshold, cfg.policy.capacity), (Some(50), Some(0.8), Some(22)));
    check_core("qdmn-parity", Method::Qdmn, cfg);
}

/// The same through the inference core on memvos's CPU kernels (what `segment` runs by default).
#[test]
fn the_inference_core_on_cpu_kernels_reproduces_the_reference_label_maps() {
    common::check_core_on_cpu_kernels("qdmn-parity", Method::Qdmn, PropagatorConfig::for_method(Method::Qdmn, Benchmark::Davis2017));
}

/// The same case on burn's wgpu backend (Mesa's lavapipe in CI): every frame's probabilities
/// within [`common::WGPU_ATOL`], labels equal except at near ties.
#[cfg(feature = "wgpu")]
#[test]
fn the_inference_core_on_wgpu_reproduces_the_reference_label_maps() {
    let Some(d) = common::wgpu_device() else { return };
    let cfg = PropagatorConfig::for_method(Method::Qdmn, Benchmark::Davis2017);
    common::check_core_on("qdmn-parity", Method::Qdmn, cfg, &d, common::WGPU_ATOL);
}
