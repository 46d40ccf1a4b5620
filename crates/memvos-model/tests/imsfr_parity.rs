//! IMSFR parity with the reference PyTorch implementation (fixture `tests/fixtures/imsfr-parity`:
//! xinbaiw/IMSFR at a840ad6 with STCN's `cbam.py` supplied and the top-k softmax made
//! max-subtracted, as ours is; every weight filled by WEIGHTS-FORMULA.md; 3 frames of 96×160,
//! 2 objects, global top-4, mem_every 1 so frame 1 is stored and is frame 2's "previous" memory).
//!
//! The fixture's README explains two amplifiers that make IMSFR's later tensors noisy even
//! between two runs of the reference: the value encoding evaluates sin/cos(32·v) with |v| up to
//! ~185, and saturated sigmoids (logits ±47) meet the aggregation's clamp, so a tiny logit change
//! can move a probability by up to 0.17 at isolated pixels, which then feeds frame 1's memory.
//! Hence two tests:
//!
//! - stepwise, every stored tensor: frame 1's memory is encoded from the *reference's* frame-1
//!   probabilities, so each tensor is compared with the same inputs, tightly: ten times the
//!   reference's own one-vs-two-thread noise recorded for it, at least `1e-5·max|ref|`, per
//!   element (logits and every pre-aggregation tensor included); frame 1's memory and frame 2's
//!   tensors, whose recorded noise carries the reference's noisy frame-1 probabilities, are
//!   held to the noise of the same computation one frame earlier (frame-2 logits within 7e-3,
//!   measured 8e-4);
//! - probabilities (stepwise and end to end through the inference core from the label map) are
//!   held to what the reference's own two runs differ by: every element within the largest
//!   difference it recorded (0.05 in frame 1, 0.167 in frame 2; stepwise frame 2, with the
//!   reference's frame-1 inputs, within frame 1's), and no more elements off by more than 1e-3
//!   than its own count plus a tenth (18 in frame 1, 2,498 in frame 2; measured 18 and 2,664);
//!   label maps identical except at near ties and at most the 8 pixels that flip between the
//!   reference's own two runs (measured 6).
//!
//! Also: two runs with the same seed give identical masks (the published sampling is unseeded).

mod common;

use burn::tensor::activation::sigmoid;
use burn::tensor::Device;
use common::{assert_close, assert_close_values, check_formula, count_outside, fixture, formula_network, label_differences, run_core_on, values};
use memvos_memory::{MemoryBank, ReadConfig, ReadSpec, Selection, Similarity, ValueSlot};
use memvos_model::aggregate::aggregate;
use memvos_model::imsfr::value_encoding;
use memvos_model::cpu::{ConvAlgo, CpuImsfr, CpuOptions};
use memvos_model::{AnyNetwork, Benchmark, MemoryNetwork, Method, PropagatorConfig};
use serde_json::Value;

#[test]
fn formula_matches_the_manifest_checksums() {
    assert_eq!(check_formula(&fixture("imsfr-parity")), (610, 109));
}

#[test]
fn value_encoding_is_block_major() {
    let d = Device::flex();
    let v = burn::tensor::Tensor::<4>::from_data(burn::tensor::TensorData::new(vec![0.5f32, -1.0], [1, 2, 1, 1]), &d);
    let pe = values(value_encoding(v));
    assert_eq!(pe.len(), 26);
    assert_eq!(&pe[..2], &[0.5, -1.0]);
    assert!((pe[2] - 0.5f32.sin()).abs() < 1e-6 && (pe[4] - 0.5f32.cos()).abs() < 1e-6);
    assert!((pe[24] - (32.0f32 * 0.5).cos()).abs() < 1e-5 && (pe[25] - (-32.0f32).cos()).abs() < 1e-5);
}

#[test]
fn imsfr_matches_the_reference_on_every_golden_tensor() {
    let d = Device::flex();
    let (any, g) = formula_network("imsfr-parity", Method::Imsfr);
    let AnyNetwork::Imsfr(net) = &any else { unreachable!() };
    let input = |t: usize| g.tensor4("input.frames", &d).narrow(0, t, 1);

    // Frame 0: key = key_comp(f16); value gated by frame 1; v_pe.
    let q0 = net.encode_query(input(0), None);
    assert_close(&g, "f0.key.f16", q0.features.f16.clone(), None);
    assert_close(&g, "f0.key.key", q0.k16.clone(), None);
    let prob0 = aggregate(g.tensor4("input.first_masks", &d));
    assert_close(&g, "f0.prob", prob0.clone(), None);
    let v0 = net.encode_values(input(0), q0.features.f16.clone(), prob0.narrow(0, 1, 2), input(1));
    assert_close(&g, "f0.mem.value_gate_logits", v0.gate_logits, None);
    assert_close(&g, "f0.mem.value", v0.value.clone(), None);
    assert_close(&g, "f0.mem.pe_proj", v0.pe_proj, None);
    assert_close(&g, "f0.mem.value_pe", v0.value_pe.clone(), None);

    // Frame 1: three readouts of memory {0}.
    let mut bank = MemoryBank::new(ReadConfig { similarity: Similarity::L2, selection: Selection::TopK(4), chunk: None });
    bank.push_with_aux(0, None, q0.k16.clone(), v0.value, Some(v0.value_pe)).unwrap();
    let q1 = net.encode_query(input(1), None);
    assert_close(&g, "f1.key.f16", q1.features.f16.clone(), None);
    assert_close(&g, "f1.key.f8", q1.features.f8.clone(), None);
    assert_close(&g, "f1.key.f4", q1.features.f4.clone(), None);
    assert_close(&g, "f1.key.key", q1.k16.clone(), None);
    let aff = |sel, pos: &[usize]| values(bank.affinity_with(q1.k16.clone(), Some(pos), false, sel).unwrap().reshape([1, 1, 60, 60]));
    assert_close_values(&g, "f1.affinity.global_topk", &aff(Selection::TopK(4), &[0]), None);
    assert_close_values(&g, "f1.affinity.first", &aff(Selection::Full, &[0]), None);
    assert_close_values(&g, "f1.affinity.prev", &aff(Selection::Full, &[0]), None);
    let r1 = net.readouts(&q1, &bank, &[0]).unwrap();
    assert_close(&g, "f1.readout.global_topk", r1.memory, None);
    assert_close(&g, "f1.readout.first", r1.first, None);
    assert_close(&g, "f1.readout.prev", r1.adjacent, None);
    assert_close(&g, "f1.fusion_gate_logits", r1.gate_logits, None);
    let logits1 = net.decode(&q1, r1.fused);
    assert_close(&g, "f1.decoder_logits", logits1.clone(), None);
    assert_probabilities(&g, "f1.prob", aggregate(sigmoid(logits1)), "f1.prob", 0.0);

    // Frame 1's memory, encoded (with frame 2 as its next frame) from the reference's own
    // frame-1 probabilities, so the comparison below sees the reference's inputs. The noise the
    // reference recorded for these tensors includes that of its frame-1 probabilities; with
    // the inputs shared they are held to the noise of the same computation one frame earlier.
    let like = |name: &str, earlier: &str| Some(g.tol_like(name, earlier));
    let prob1 = g.tensor4("f1.prob", &d);
    let v1 = net.encode_values(input(1), q1.features.f16.clone(), prob1.narrow(0, 1, 2), input(2));
    assert_close(&g, "f1.mem.value", v1.value.clone(), like("f1.mem.value", "f0.mem.value"));
    assert_close(&g, "f1.mem.value_pe", v1.value_pe.clone(), like("f1.mem.value_pe", "f0.mem.value_pe"));
    bank.push_with_aux(1, None, q1.k16.clone(), v1.value, Some(v1.value_pe)).unwrap();

    // Frame 2: memory {0, 1} top-4, first frame 0, previous frame 1 (v_pe).
    let q2 = net.encode_query(input(2), None);
    let aff2 = bank.affinity_with(q2.k16.clone(), Some(&[0, 1]), false, Selection::TopK(4)).unwrap();
    assert_close_values(&g, "f2.affinity.global_topk", &values(aff2.reshape([1, 1, 120, 60])), None);
    let r2 = net.readouts(&q2, &bank, &[0, 1]).unwrap();
    assert_close(&g, "f2.readout.global_topk", r2.memory, like("f2.readout.global_topk", "f1.readout.global_topk"));
    assert_close(&g, "f2.readout.first", r2.first, None);
    assert_close(&g, "f2.readout.prev", r2.adjacent, like("f2.readout.prev", "f1.readout.prev"));
    assert_close(&g, "f2.fusion_gate_logits", r2.gate_logits, like("f2.fusion_gate_logits", "f1.fusion_gate_logits"));
    let logits2 = net.decode(&q2, r2.fused);
    assert_close(&g, "f2.decoder_logits", logits2.clone(), like("f2.decoder_logits", "f1.decoder_logits"));
    assert_probabilities(&g, "f2.prob", aggregate(sigmoid(logits2)), "f1.prob", 0.0);
    // The adjacent read is the aux value of the newest entry.
    let adj = bank.read_with(q2.k16.clone(), ReadSpec { positions: Some(&[1]), temporary: false, selection: Selection::Full, slot: ValueSlot::Aux }).unwrap();
    assert_close(&g, "f2.readout.prev", adj, like("f2.readout.prev", "f1.readout.prev"));
}

/// memvos's CPU kernels with each convolution algorithm, step by step as above through the
/// network's four calls: every tensor within the fixture's tolerance as above (frame 1's memory
/// and frame 2's logits held to the noise of the same computation a frame earlier), probabilities
/// within the reference's own noise, and the fused readout equal to the burn network's on the same
/// query and memory (the three reads and the gate on [`memvos_cpu`]'s top-k read).
#[test]
fn imsfr_cpu_path_matches_the_reference_on_every_golden_tensor() {
    let d = Device::flex();
    let (any, g) = formula_network("imsfr-parity", Method::Imsfr);
    let AnyNetwork::Imsfr(net) = &any else { unreachable!() };
    let input = |t: usize| g.tensor4("input.frames", &d).narrow(0, t, 1);
    let tol = |name: &str| Some(g.tol(name));
    let like = |name: &str, earlier: &str| Some(g.tol_like(name, earlier));
    let prob0 = aggregate(g.tensor4("input.first_masks", &d));
    let prob1 = g.tensor4("f1.prob", &d);
    for conv in [ConvAlgo::Gemm, ConvAlgo::F2, ConvAlgo::F4] {
        eprintln!("CPU path, {conv:?}:");
        let cpu = CpuImsfr::new(net, &d, CpuOptions::from(conv)).unwrap();
        let q0 = cpu.encode_query(input(0), None);
        assert_close(&g, "f0.key.f16", q0.features.f16.clone(), tol("f0.key.f16"));
        assert_close(&g, "f0.key.key", q0.k16.clone(), tol("f0.key.key"));
        let m0 = cpu.encode_memory(input(0), &q0, prob0.clone().narrow(0, 1, 2), Some(input(1)));
        assert_close(&g, "f0.mem.value", m0.value.clone(), tol("f0.mem.value"));
        let aux0 = m0.aux.expect("IMSFR keeps v_pe");
        assert_close(&g, "f0.mem.value_pe", aux0.clone(), tol("f0.mem.value_pe"));

        let mut bank = MemoryBank::new(ReadConfig { similarity: Similarity::L2, selection: Selection::TopK(4), chunk: None });
        bank.push_with_aux(0, None, q0.k16.clone(), m0.value, Some(aux0)).unwrap();
        let q1 = cpu.encode_query(input(1), None);
        for (name, t) in [("f1.key.f16", &q1.features.f16), ("f1.key.f8", &q1.features.f8), ("f1.key.f4", &q1.features.f4), ("f1.key.key", &q1.k16)] {
            assert_close(&g, name, t.clone(), tol(name));
        }
        let r1 = cpu.read_memory(&q1, &bank, &[0]).unwrap();
        same_readout(&r1, net.readouts(&q1, &bank, &[0]).unwrap().fused);
        let logits1 = cpu.decode(&q1, r1);
        assert_close(&g, "f1.decoder_logits", logits1.clone(), tol("f1.decoder_logits"));
        assert_probabilities(&g, "f1.prob", aggregate(sigmoid(logits1)), "f1.prob", CPU_OUTLIERS);

        let m1 = cpu.encode_memory(input(1), &q1, prob1.clone().narrow(0, 1, 2), Some(input(2)));
        assert_close(&g, "f1.mem.value", m1.value.clone(), like("f1.mem.value", "f0.mem.value"));
        let aux1 = m1.aux.expect("IMSFR keeps v_pe");
        assert_close(&g, "f1.mem.value_pe", aux1.clone(), like("f1.mem.value_pe", "f0.mem.value_pe"));
        bank.push_with_aux(1, None, q1.k16.clone(), m1.value, Some(aux1)).unwrap();

        let q2 = cpu.encode_query(input(2), None);
        let r2 = cpu.read_memory(&q2, &bank, &[0, 1]).unwrap();
        same_readout(&r2, net.readouts(&q2, &bank, &[0, 1]).unwrap().fused);
        let logits2 = cpu.decode(&q2, r2);
        assert_close(&g, "f2.decoder_logits", logits2.clone(), like("f2.decoder_logits", "f1.decoder_logits"));
        assert_probabilities(&g, "f2.prob", aggregate(sigmoid(logits2)), "f1.prob", CPU_OUTLIERS);
    }
}

/// Probabilities off by more than 1e-3 the CPU path may have, as a fraction of all: its sums
/// round in another order than burn's, which the saturated sigmoids and the clamp amplify at
/// isolated pixels as between the reference's own runs (18 such elements in frame 1). Measured
/// in frames 1 and 2 of 46,080 elements: 10 and 26 (im2col), 16 and 36 (F(2×2)), 38 and 48
/// (F(4×4)), at most 0.10 %; the bound is 0.2 %.
const CPU_OUTLIERS: f64 = 0.002;

/// The CPU path's fused readout against the burn network's on the same inputs: within 1e-5 of
/// the largest magnitude (the same reads, summed in another order).
fn same_readout(cpu: &burn::tensor::Tensor<4>, burn: burn::tensor::Tensor<4>) {
    let (a, b) = (values(cpu.clone()), values(burn));
    let scale = b.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
    assert_eq!(count_outside("fused readout vs burn's", &a, &b, common::Tol { atol: 1e-5 * scale, rtol: 0.0 }), 0);
}

/// The reference's own noise on `name` between its two runs: (largest difference, count of
/// elements that moved by more than 1e-3).
fn reference_noise(name: &str) -> (f64, usize) {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(fixture("imsfr-parity").join("manifest.json")).unwrap()).unwrap();
    let n = &m["reference_noise_vs_2_threads"][name];
    (n["max_abs"].as_f64().unwrap(), n["count_gt_1e-3"].as_u64().unwrap() as usize)
}

/// Outliers allowed: the reference's own count, plus a tenth (the reference's saturated
/// sigmoids meet the aggregation's clamp, so float32 paths that differ in the last bit move the
/// same kind of isolated pixels; measured: 18 of its 18 in frame 1, 2,664 of its 2,498 in
/// frame 2).
fn allowance(reference_count: usize) -> usize {
    reference_count + reference_count.div_ceil(10)
}

/// Probabilities held to what the reference's own two runs differ by on `like` (the same
/// computation, with the same inputs): every element within its largest difference, and no
/// more elements off by more than 1e-3 than [`allowance`] of its count, or than `fraction` of
/// all elements where that is more.
fn assert_probabilities(g: &common::Golden, name: &str, ours: burn::tensor::Tensor<4>, like: &str, fraction: f64) {
    let (max_abs, count) = reference_noise(like);
    let got = values(ours);
    let (_, want) = g.f32(name);
    assert_eq!(count_outside(name, &got, &want, common::Tol { atol: max_abs + 1e-6, rtol: 0.0 }), 0, "{name}: beyond the reference's own noise {max_abs}");
    let outliers = count_outside(&format!("{name}, > 1e-3"), &got, &want, common::Tol { atol: 1e-3, rtol: 0.0 });
    let bound = (allowance(count) as f64).max(fraction * got.len() as f64);
    assert!(outliers as f64 <= bound, "{name}: {outliers} elements off by more than 1e-3 (the reference's own runs: {count})");
}

#[test]
fn the_inference_core_reproduces_the_reference_label_maps() {
    check_core_with(&|cfg| run_core_on("imsfr-parity", Method::Imsfr, cfg, &Device::flex()), 1.0, None, true, 3);
}

/// The same on memvos's CPU kernels (what `segment` runs by default), the bounds widened: their
/// sums round in another order, which the saturated sigmoids and the clamp amplify at isolated
/// pixels as between the reference's own runs, and frame 2 reads frame 1's prediction as memory,
/// so the difference compounds there. Twice the reference's largest difference (measured: 0.050
/// in frame 1 and 0.167 in frame 2, each the reference's own largest), and up to 10 % of the
/// elements off by more than 1e-3 (measured: 38 = 0.08 % in frame 1 against the reference's own
/// 18; 3,414 = 7.4 % in frame 2 against its own 2,498 = 5.4 %). Labels: 6 differ outside near
/// ties, the reference's own runs 8.
#[test]
fn the_inference_core_on_cpu_kernels_reproduces_the_reference_label_maps() {
    check_core_with(&|cfg| common::run_core_with("imsfr-parity", Method::Imsfr, cfg, &Device::flex(), common::on_cpu_kernels), 2.0, Some(0.1), true, 3);
}

/// The inference core (run by `run`) against the reference: every probability within the reference's
/// own noise, outliers and label flips outside near ties no more than between its own runs, and
/// seeded sampling giving the same masks twice (when `again`). `slack` widens the reference's
/// own bounds (1 on burn's CPU ops); `outliers` raises the bound on elements off by more than
/// 1e-3 to at least that fraction of all elements; only the first `frames` frames are compared.
fn check_core_with(run: &dyn Fn(PropagatorConfig) -> (common::Golden, Vec<memvos_model::Segmented>), slack: f64, outliers: Option<f64>, again: bool, frames: usize) {
    let mut cfg = PropagatorConfig::for_method(Method::Imsfr, Benchmark::Davis2017);
    assert_eq!((cfg.top_k, cfg.policy.every), (Some(4), 6));
    cfg.policy.every = 1; // the fixture's mem_every
    cfg.policy.seed = 7;
    let (g, outs) = run(cfg.clone());
    let mut flipped = 0;
    for (t, out) in outs.iter().enumerate().take(frames) {
        let name = format!("f{t}.prob");
        let (_, want) = g.f32(&name);
        let got: Vec<f32> = out.probs.iter().copied().collect();
        let (max_abs, count) = reference_noise(&name);
        assert_eq!(count_outside(&format!("{name} (core)"), &got, &want, common::Tol { atol: slack * max_abs + 1e-6, rtol: 0.0 }), 0, "{name}: beyond {slack} × the reference's own noise {max_abs}");
        let off = count_outside(&format!("{name} (core), > 1e-3"), &got, &want, common::Tol { atol: 1e-3, rtol: 0.0 });
        let bound = (allowance(count) as f64).max(outliers.map_or(0.0, |f| f * got.len() as f64));
        assert!(off as f64 <= bound, "{name}: {off} elements off by more than 1e-3 (the reference's own runs: {count})");
        flipped += label_differences(&g, t, &out.labels, 1e-4).2;
    }
    // The labels: no more flips outside near ties than between the reference's own runs.
    let (_, allowed) = reference_noise("out.masks");
    eprintln!("{flipped} labels differ outside near ties (the reference's own runs: {allowed})");
    assert!(flipped as f64 <= slack * allowed as f64, "{flipped} labels differ outside near ties (the reference's own runs: {allowed})");
    if again {
        // Seeded sampling: the same seed gives the same masks.
        let (_, again) = run(cfg);
        assert!(outs.iter().zip(&again).all(|(a, b)| a.labels == b.labels));
    }
}

/// The same case on burn's wgpu backend (Mesa's lavapipe in CI), held to the same
/// bounds as the CPU widened 3× (the reference's own two runs differ by up to 0.05 in frame 1;
/// lavapipe by 0.10), and at most 10 % of the elements off by more than 1e-3 (measured: 8.0 %
/// in frame 1). This fixture reads the top 4 of nearly equal L2 affinities (formula weights): when
/// wgpu's sums differ from the CPU's in the last bits (5e-7, `kernels.rs`), other entries win, and
/// whole regions move; the labels do not (flips outside near ties ≤ 3× the reference's own;
/// measured 1). Frames 0 and 1 only: end to end, frame 2 reads frame 1's own prediction as
/// memory, so the divergence compounds (measured: 33 % of frame 2's elements off by more than
/// 1e-3, up to 0.39, as the reference's own runs reach 0.17); the next test holds frame 2 on wgpu
/// with the reference's frame 1 as its memory.
#[cfg(feature = "wgpu")]
#[test]
fn the_inference_core_on_wgpu_reproduces_the_reference_label_maps() {
    let Some(d) = common::wgpu_device() else { return };
    check_core_with(&|cfg| run_core_on("imsfr-parity", Method::Imsfr, cfg, &d), 3.0, Some(0.1), false, 2);
}

/// Frame 2 on wgpu, stepwise as the CPU's first test does: frame 1's memory encoded from the
/// reference's own frame-1 probabilities, so frame 2 sees the reference's inputs instead of
/// compounding wgpu's frame-1 differences. Held to frame 1's bounds on wgpu (the reference's own
/// frame-1 noise widened 3×, at most 10 % of the elements off by more than 1e-3), and labels
/// equal to the reference's except at near ties and at most 3× the flips between the reference's
/// own runs. Measured on lavapipe: largest difference 0.100, 4,320 of 46,080 elements (9.4 %) off
/// by more than 1e-3; labels (argmax ties to the lower class, as `torch.argmax`) 165 differ, none
/// outside near ties.
#[cfg(feature = "wgpu")]
#[test]
fn imsfr_frame_2_on_wgpu_reads_the_references_frame_1_as_memory_and_matches() {
    let Some(d) = common::wgpu_device() else { return };
    let (any, g) = formula_network("imsfr-parity", Method::Imsfr);
    let AnyNetwork::Imsfr(net) = any.placed(&d) else { unreachable!() };
    let input = |t: usize| g.tensor4("input.frames", &d).narrow(0, t, 1);
    let mut bank = MemoryBank::new(ReadConfig { similarity: Similarity::L2, selection: Selection::TopK(4), chunk: None });
    for t in [0, 1] {
        let q = net.encode_query(input(t), None);
        let prob = if t == 0 { aggregate(g.tensor4("input.first_masks", &d)) } else { g.tensor4("f1.prob", &d) };
        let v = net.encode_values(input(t), q.features.f16.clone(), prob.narrow(0, 1, 2), input(t + 1));
        bank.push_with_aux(t, None, q.k16.clone(), v.value, Some(v.value_pe)).unwrap();
    }
    let q2 = net.encode_query(input(2), None);
    let r2 = net.readouts(&q2, &bank, &[0, 1]).unwrap();
    let prob2 = aggregate(sigmoid(net.decode(&q2, r2.fused)));
    let got = values(prob2.clone());
    let (_, want) = g.f32("f2.prob");
    let (max_abs, count) = reference_noise("f1.prob");
    let worst = got.iter().zip(&want).fold(0f64, |m, (a, b)| m.max((a - b).abs() as f64));
    let off = count_outside("f2.prob (wgpu, stepwise), > 1e-3", &got, &want, common::Tol { atol: 1e-3, rtol: 0.0 });
    eprintln!("frame 2 on wgpu, stepwise: largest difference {worst:.3e}, {off} of {} elements off by more than 1e-3", got.len());
    assert_eq!(count_outside("f2.prob (wgpu, stepwise)", &got, &want, common::Tol { atol: 3.0 * max_abs + 1e-6, rtol: 0.0 }), 0, "beyond 3 × the reference's own frame-1 noise {max_abs}");
    assert!(off as f64 <= (allowance(count) as f64).max(0.1 * got.len() as f64), "{off} elements off by more than 1e-3");
    let [k, _, h, w] = prob2.dims();
    let ids: Vec<u8> = (0..k as u8).collect();
    let labels = memvos_data::LabelMap::from_argmax(ndarray::ArrayView3::from_shape((k, h, w), &got).unwrap(), &ids).unwrap();
    let (_, _, flipped) = label_differences(&g, 2, &labels, 1e-4);
    let (_, allowed) = reference_noise("out.masks");
    assert!(flipped <= 3 * allowed, "{flipped} labels differ outside near ties (the reference's own runs: {allowed})");
}
