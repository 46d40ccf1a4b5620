//! STCN parity with the reference PyTorch implementation (fixture `tests/fixtures/stcn-parity`,
//! made by running hkchengrex/STCN at eb83102 with every weight filled by WEIGHTS-FORMULA.md).
//!
//! The network is filled by the formula *through the import path a real checkpoint takes*
//! (a safetensors file with the `stcn.pth` names, renamed and adapted by burn-store), then the
//! case of the fixture's README is run: 3 frames of 96×160, 2 objects, top-20, mem_every 5.
//!
//! Tolerances (the fixture README's): every element of every intermediate feature within
//! `|ours − ref| ≤ 1e-3 + 1e-3·|ref|`, and the tensor within 1e-4 relative in the Frobenius norm
//! besides; probabilities within 1e-4 absolute, per element; label maps identical except at
//! pixels where the two largest reference probabilities are within 1e-4 — none in frame 0, and in
//! frames 1 and 2 no more differing pixels than there are such near ties.

#[cfg(feature = "wgpu")]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use memvos_data::{Frame, LabelMap};
use memvos_memory::{MemoryBank, ReadConfig};
use memvos_model::aggregate::aggregate;
use memvos_model::weights::formula;
use memvos_model::cpu::{ConvAlgo, CpuOptions, CpuStcn, Precision, WINOGRAD_MIN_PIXELS};
use memvos_model::{Propagator, PropagatorConfig, Stcn, load_stcn};
use ndarray::{Array2, Array3};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/stcn-parity")
}

struct Golden {
    tensors: HashMap<String, (Vec<usize>, Vec<u8>, safetensors::Dtype)>,
}

impl Golden {
    fn load() -> Self {
        let bytes = std::fs::read(fixture().join("golden.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st.tensors().into_iter().map(|(n, v)| (n, (v.shape().to_vec(), v.data().to_vec(), v.dtype()))).collect();
        Golden { tensors }
    }

    fn f32(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let (s, b, d) = &self.tensors[name];
        assert_eq!(*d, safetensors::Dtype::F32, "{name}");
        (s.clone(), b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn u8(&self, name: &str) -> (Vec<usize>, Vec<u8>) {
        let (s, b, _) = &self.tensors[name];
        (s.clone(), b.clone())
    }

    fn tensor4(&self, name: &str, d: &Device) -> Tensor<4> {
        let (s, v) = self.f32(name);
        Tensor::from_data(TensorData::new(v, [s[0], s[1], s[2], s[3]]), d)
    }
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Relative error in the Frobenius norm.
fn rel_l2(ours: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(ours.len(), reference.len());
    let num: f64 = ours.iter().zip(reference).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
    let den: f64 = reference.iter().map(|b| (*b as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn max_abs(ours: &[f32], reference: &[f32]) -> f64 {
    ours.iter().zip(reference).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max)
}

fn assert_feature(name: &str, ours: Tensor<4>, golden: &Golden) {
    let (shape, reference) = golden.f32(name);
    assert_eq!(ours.dims().to_vec(), shape, "{name} shape");
    let o = values(ours);
    let e = rel_l2(&o, &reference);
    let outside = o.iter().zip(&reference).filter(|(a, b)| !((**a as f64 - **b as f64).abs() <= 1e-3 + 1e-3 * (**b as f64).abs())).count();
    eprintln!("{name:<24} rel L2 {e:.2e}  max abs {:.2e}  outside |a-b| <= 1e-3 + 1e-3|b|: {outside}", max_abs(&o, &reference));
    assert_eq!(outside, 0, "{name}: {outside} elements outside the per-element tolerance");
    assert!(e <= 1e-4, "{name}: relative L2 error {e:.3e} > 1e-4");
}

fn manifest() -> Vec<(String, Vec<usize>, Value)> {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("manifest.json")).unwrap()).unwrap();
    m["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect(), e.clone()))
        .collect()
}

/// The formula-filled state dict, written as safetensors with the published names.
fn formula_checkpoint(dir: &Path) -> PathBuf {
    let entries: Vec<(String, Vec<usize>)> = manifest().into_iter().map(|(n, s, _)| (n, s)).collect();
    let path = dir.join("stcn-formula.safetensors");
    formula::write_state_dict(&entries, &path).unwrap();
    path
}

#[test]
fn formula_matches_the_manifest_checksums_tensor_by_tensor() {
    let entries = manifest();
    assert_eq!(entries.len(), 405);
    let mut checked = 0;
    for (name, shape, e) in &entries {
        let Some(v) = formula::fill(name, shape) else {
            assert!(name.ends_with("num_batches_tracked"));
            continue;
        };
        let first4: Vec<f32> = e["first4"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        assert_eq!(&v[..first4.len()], &first4[..], "{name} first4");
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        let want = e["sum_f64"].as_f64().unwrap();
        assert!((sum - want).abs() <= 1e-9 * (1.0 + want.abs()) + 1e-7, "{name}: sum {sum} vs {want}");
        checked += 1;
    }
    let buffers = entries.iter().filter(|(n, _, _)| n.ends_with("num_batches_tracked")).count();
    assert_eq!((checked, buffers), (347, 58), "every tensor but the 58 num_batches_tracked buffers");
}

#[test]
fn stcn_matches_the_reference_on_every_golden_tensor() {
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let net = load_stcn(&formula_checkpoint(dir.path()), &d).expect("every key of the manifest loads");
    check_network(std::sync::Arc::new(net.clone()), &d, 1e-4);
}

/// The CPU path (packed weights, folded BatchNorm, NHWC, Winograd) at the same tolerances, with
/// each of its convolution algorithms.
#[test]
fn stcn_cpu_path_matches_the_reference_on_every_golden_tensor() {
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let net = load_stcn(&formula_checkpoint(dir.path()), &d).expect("every key of the manifest loads");
    // Winograd on every 3×3 stride-1 convolution (the default), and with the fixture's maps
    // (below 1,024 output pixels) by im2col as `winograd_from` allows.
    let with = |conv, winograd_from| CpuOptions { conv, winograd_from, ..CpuOptions::default() };
    for opts in [with(ConvAlgo::Gemm, 0), with(ConvAlgo::F2, 0), CpuOptions::default(), with(ConvAlgo::F4, WINOGRAD_MIN_PIXELS)] {
        eprintln!("CPU path, {opts:?}:");
        check_network(std::sync::Arc::new(CpuStcn::new(&net, &d, opts).unwrap()), &d, 1e-4);
    }
}

/// `--precision bf16` on the CPU path (Winograd F4, the default), against float32: every label
/// that differs is at a pixel where float32's two largest probabilities are within `margin`, at
/// most `share` of the pixels differ, and the probabilities stay within `prob`. The bounds depend
/// on the products the CPU runs (`memvos_cpu::bf16_products`):
///
/// - bfloat16 arithmetic (AMX or AVX-512 BF16: activations rounded too): margin 0.06, share 8 %,
///   probabilities 0.03. Measured here on AMX (frames 1–2, 30,720 pixels): 2,166 differ with F4
///   (7.1 %), 1,753 with F2, 1,395 with im2col; worst margin 0.051, probabilities within 2.7e-2.
/// - weights widened to float32 (no bfloat16 arithmetic, or `MEMVOS_BF16_ARITHMETIC=off`): margin
///   0.02, share 2 %, probabilities 0.02. Measured here with the variable set: 133 and 127 of
///   15,360 differ on frames 1 and 2 (0.9 %; the 1/16-resolution maps by im2col, as bf16 runs
///   them), probabilities within 1.1e-2 (with Winograd on every map, before: 288, 1.9 %).
///
/// The issue asked for ≤ 0.5 %, which this fixture does not allow: its weights are the formula's
/// (not trained), so its probabilities are nearly flat — 87 % of the pixels of frames 1–2 have
/// float32's two largest probabilities within 0.06 of each other (0.6 % within 0.004), so any
/// rounding moves some labels. Measured on AMX by keeping parts of the network in float32 (label
/// changes on frames 1 and 2 of 15,360 each): all bf16 1,075 / 1,091; decoder fp32 336 / 323; only
/// the key encoder's trunk in bf16 109 / 114 (0.7 %) — no useful share of bf16 reaches 0.5 % on
/// these weights. On trained weights the bound holds with room: the shipped model on this
/// fixture's video moves 30 of 30,720 labels (0.1 %; 17 widened), and 0.03 % of the held-out
/// videos' labels, J&F within 0.0003 (`tests/precision.rs`, which asserts ≤ 0.5 % for both).
#[test]
fn stcn_cpu_path_in_bf16_keeps_the_label_maps() {
    let d = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let net = load_stcn(&formula_checkpoint(dir.path()), &d).unwrap();
    let golden = Golden::load();
    let (fshape, raw) = golden.u8("input.frames_uint8");
    let (t_len, h, w) = (fshape[0], fshape[1], fshape[2]);
    let frames: Vec<Frame> = (0..t_len).map(|t| Frame::from_raw(h, w, raw[t * h * w * 3..(t + 1) * h * w * 3].to_vec()).unwrap()).collect();
    let (_, masks) = golden.f32("input.first_frame_masks");
    let first = LabelMap::new(Array2::from_shape_fn((h, w), |(y, x)| {
        if masks[y * w + x] > 0.5 { 1 } else if masks[h * w + y * w + x] > 0.5 { 2 } else { 0 }
    }));
    let run = |precision| {
        let cpu = CpuStcn::new(&net, &d, CpuOptions::default().with_precision(precision)).unwrap();
        let mut prop = Propagator::new(std::sync::Arc::new(cpu), PropagatorConfig::davis(), &d).unwrap();
        frames.iter().enumerate().map(|(t, f)| prop.step(f, (t == 0).then_some(&first)).unwrap().unwrap()).collect::<Vec<_>>()
    };
    let (fp32, bf16) = (run(Precision::Fp32), run(Precision::Bf16));
    let arithmetic = memvos_model::cpu::bf16_arithmetic();
    let (margin, share, prob) = if arithmetic { (0.06, 0.08, 0.03) } else { (0.02, 0.02, 0.02) };
    let mut changed = false;
    for (t, (a, b)) in fp32.iter().zip(&bf16).enumerate() {
        let mut differing = 0;
        for y in 0..h {
            for x in 0..w {
                if a.labels.labels[[y, x]] != b.labels.labels[[y, x]] {
                    let mut p: Vec<f32> = (0..a.probs.dim().0).map(|c| a.probs[[c, y, x]]).collect();
                    p.sort_by(|u, v| v.total_cmp(u));
                    assert!(p[0] - p[1] <= margin, "frame {t} ({y}, {x}): bf16 moved a label float32 gives with a margin of {}", p[0] - p[1]);
                    differing += 1;
                }
            }
        }
        let e = max_abs(&a.probs.iter().copied().collect::<Vec<_>>(), &b.probs.iter().copied().collect::<Vec<_>>());
        eprintln!("frame {t}: bf16 vs fp32 ({}): {differing} of {} labels differ, probabilities within {e:.2e}", memvos_model::cpu::bf16_products(), h * w);
        assert!(differing as f64 <= share * (h * w) as f64, "frame {t}: {differing} labels differ");
        assert!(e <= prob, "frame {t}: probabilities differ by {e}");
        changed |= t > 0 && e > 0.0;
    }
    assert_eq!(bf16[0].labels, first);
    assert!(changed, "bf16 weights must change the probabilities a little (or they are not used)");
}

/// The fixture's case on `d`; probabilities within `prob_atol` of the reference's (1e-4, the
/// fixture's tolerance, on the CPU) and labels equal except where its two largest are within
/// twice that.
fn check_network(net: memvos_model::SharedNetwork, d: &Device, prob_atol: f64) {
    let d = d.clone();
    let golden = Golden::load();

    // Input conversion: uint8 frames -> ImageNet-normalised network input.
    let (fshape, raw) = golden.u8("input.frames_uint8");
    let (t_len, h, w) = (fshape[0], fshape[1], fshape[2]);
    let frames: Vec<Frame> = (0..t_len).map(|t| Frame::from_raw(h, w, raw[t * h * w * 3..(t + 1) * h * w * 3].to_vec()).unwrap()).collect();
    let (_, want_input) = golden.f32("input.frames");
    let ours_input: Vec<f32> = frames.iter().flat_map(|f| f.to_normalized().into_raw_vec_and_offset().0).collect();
    assert!(max_abs(&ours_input, &want_input) <= 1e-6, "input normalisation");
    let input = |t: usize| golden.tensor4("input.frames", &d).narrow(0, t, 1);

    // Frame 0: keys, aggregated ground truth, values.
    let k0 = net.encode_query(input(0), None);
    assert_feature("f0.key_encoder.f16", k0.features.f16.clone(), &golden);
    assert_feature("f0.key_encoder.f8", k0.features.f8.clone(), &golden);
    assert_feature("f0.key_encoder.f4", k0.features.f4.clone(), &golden);
    assert_feature("f0.k16", k0.k16.clone(), &golden);
    assert_feature("f0.key_comp", k0.v16.clone(), &golden);
    let prob0 = aggregate(golden.tensor4("input.first_frame_masks", &d));
    let (_, want_prob0) = golden.f32("f0.prob");
    assert!(max_abs(&values(prob0.clone()), &want_prob0) <= 1e-6, "f0.prob");
    let v0 = net.encode_memory(input(0), &k0, prob0.narrow(0, 1, 2), None).value;
    assert_feature("f0.value", v0.clone(), &golden);

    // Frames 1 and 2 read memory {frame 0}.
    let mut bank = MemoryBank::new(ReadConfig::stcn(Some(20)));
    bank.push(0, None, k0.k16.clone(), v0).unwrap();
    for t in [1, 2] {
        let key = net.encode_query(input(t), None);
        if t == 1 {
            assert_feature("f1.key_encoder.f16", key.features.f16.clone(), &golden);
            assert_feature("f1.key_encoder.f8", key.features.f8.clone(), &golden);
            assert_feature("f1.key_encoder.f4", key.features.f4.clone(), &golden);
            assert_feature("f1.k16", key.k16.clone(), &golden);
            assert_feature("f1.key_comp", key.v16.clone(), &golden);
            let aff = bank.affinity(key.k16.clone()).unwrap();
            let aff4: Tensor<4> = aff.reshape([1, 1, 60, 60]);
            let (_, want) = golden.f32("f1.affinity");
            let got = values(aff4);
            let e = max_abs(&got, &want);
            eprintln!("{:<24} max abs {e:.2e}", "f1.affinity");
            assert!(e <= 1e-4, "f1.affinity max abs {e}");
            assert_feature("f1.readout", bank.read(key.k16.clone(), None).unwrap(), &golden);
        }
        let logits = net.decode(&key, bank.read(key.k16.clone(), None).unwrap());
        assert_feature(&format!("f{t}.logits"), logits, &golden);
    }

    // End to end through the Propagator, from uint8 frames and a label map.
    let (_, masks) = golden.f32("input.first_frame_masks");
    let first = LabelMap::new(Array2::from_shape_fn((h, w), |(y, x)| {
        if masks[y * w + x] > 0.5 { 1 } else if masks[h * w + y * w + x] > 0.5 { 2 } else { 0 }
    }));
    let mut prop = Propagator::new(net.clone(), PropagatorConfig::davis(), &d).unwrap();
    let (_, want_masks) = golden.u8("masks");
    for (t, frame) in frames.iter().enumerate() {
        let out = prop.step(frame, (t == 0).then_some(&first)).unwrap().unwrap();
        assert_eq!(out.ids, vec![0, 1, 2]);
        let (_, want) = golden.f32(&format!("f{t}.prob"));
        let got: Vec<f32> = out.probs.iter().copied().collect();
        let e = max_abs(&got, &want); // the per-element maximum
        eprintln!("{:<24} max abs {e:.2e}", format!("f{t}.prob (propagator)"));
        assert!(e <= prob_atol, "f{t}.prob max abs {e}");
        let want_p = Array3::from_shape_vec((3, h, w), want).unwrap();
        let (mut differing, mut ties) = (0, 0);
        for y in 0..h {
            for x in 0..w {
                let mut p: Vec<f32> = (0..3).map(|c| want_p[[c, y, x]]).collect();
                p.sort_by(|a, b| b.total_cmp(a));
                let tie = (p[0] - p[1]) as f64 <= 2.0 * prob_atol;
                ties += tie as usize;
                let ours = out.labels.labels[[y, x]];
                let reference = want_masks[t * h * w + y * w + x];
                if ours != reference {
                    assert!(tie, "frame {t} ({y}, {x}): label {ours} vs {reference}, not a near tie");
                    differing += 1;
                }
            }
        }
        eprintln!("frame {t}: {differing} labels differ, {ties} near-tie pixels");
        if t == 0 {
            // What memvos returns for the annotated frame is the annotation itself.
            assert_eq!(out.labels, first, "frame 0's output is its annotation");
        }
        // Measured: 0 flips on burn's ops and im2col, at most 1 (a near tie) with Winograd.
        assert!(differing <= 2, "frame {t}: {differing} labels differ from the reference (at most 2 near ties allowed)");
    }
    assert_eq!(prop.memory_frames(), 1, "only frame 0 is memorised (1 % 5 != 0, the last frame never)");
}

#[test]
fn small_state_dict_pth_reads_back_the_formula() {
    use burn::store::{KeyRemapper, ModuleSnapshot, PytorchStore};
    let d = Device::flex();
    let mut net = Stcn::new(&d);
    let mut store = PytorchStore::from_file(fixture().join("small_state_dict.pth"))
        .map_indices_contiguous(false)
        .allow_partial(true)
        .remap(KeyRemapper::from_patterns(memvos_model::stcn::key_renames()).unwrap());
    let result = net.load_from(&mut store).unwrap();
    assert_eq!(result.applied.len(), 4, "{result:?}");
    let check = |name: &str, got: Vec<f32>, shape: &[usize]| {
        let want = formula::fill(name, shape).unwrap();
        assert_eq!(got, want, "{name}");
    };
    check("key_proj.key_proj.weight", net.key_proj.key_proj.weight.val().into_data().try_to_vec::<f32>().unwrap(), &[64, 1024, 3, 3]);
    check("key_proj.key_proj.bias", net.key_proj.key_proj.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap(), &[64]);
    check("decoder.pred.weight", net.decoder.pred.weight.val().into_data().try_to_vec::<f32>().unwrap(), &[1, 256, 3, 3]);
    check("decoder.pred.bias", net.decoder.pred.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap(), &[1]);
}

/// The whole case — every intermediate tensor, the affinity, the readout, the propagator's
/// probabilities and labels — on burn's wgpu backend (Mesa's lavapipe in CI): the features at
/// the fixture's tolerances, the probabilities at [`common::WGPU_ATOL`].
#[cfg(feature = "wgpu")]
#[test]
fn stcn_on_wgpu_matches_the_reference_on_every_golden_tensor() {
    let Some(d) = common::wgpu_device() else { return };
    let dir = tempfile::tempdir().unwrap();
    let net = load_stcn(&formula_checkpoint(dir.path()), &d).expect("every key of the manifest loads");
    check_network(std::sync::Arc::new(net), &d, common::WGPU_ATOL);
}
