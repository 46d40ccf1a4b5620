//! Shared by the parity tests: reading a fixture (golden tensors, manifest), filling a
//! checkpoint by the formula, and per-element comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use memvos_data::{Frame, LabelMap};
use memvos_model::weights::formula;
use memvos_model::cpu::{CpuOptions, accelerate};
use memvos_model::{InferenceCore, Method, PropagatorConfig, Segmented, SharedNetwork, load_network};
use ndarray::{Array2, Array3};
use serde_json::Value;

/// `tests/fixtures/<name>` of the repository.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

pub struct Golden {
    tensors: HashMap<String, (Vec<usize>, Vec<u8>, safetensors::Dtype)>,
    /// The reference's own float32 noise per tensor (max abs difference between its 1-thread
    /// and 2-thread runs), from the manifest.
    noise: HashMap<String, f64>,
}

/// How many times the reference's own noise a tensor may differ by.
pub const NOISE_FACTOR: f64 = 10.0;
/// The least tolerance, relative to the tensor's largest magnitude (for tensors the reference
/// reproduced bit for bit across thread counts).
pub const FLOOR: f64 = 1e-5;

impl Golden {
    pub fn load(dir: &Path) -> Self {
        let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st.tensors().into_iter().map(|(n, v)| (n, (v.shape().to_vec(), v.data().to_vec(), v.dtype()))).collect();
        let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
        let noise = m["reference_noise_vs_2_threads"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v["max_abs"].as_f64().unwrap_or(0.0))).collect())
            .unwrap_or_default();
        Golden { tensors, noise }
    }

    /// The tolerance of tensor `name`: `atol = max(10 × the reference's own noise, 1e-5 ·
    /// max|ref|)`, `rtol = 0`.
    pub fn tol(&self, name: &str) -> Tol {
        self.tol_like(name, name)
    }

    /// The tolerance of `name` with the noise the reference recorded for `like` (the same
    /// computation on another frame).
    pub fn tol_like(&self, name: &str, like: &str) -> Tol {
        let (_, reference) = self.f32(name);
        let scale = reference.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
        let noise = self.noise.get(like).copied().unwrap_or(0.0);
        Tol { atol: (NOISE_FACTOR * noise).max(FLOOR * scale), rtol: 0.0 }
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn f32(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let (s, b, d) = self.tensors.get(name).unwrap_or_else(|| panic!("golden tensor {name} missing"));
        assert_eq!(*d, safetensors::Dtype::F32, "{name}");
        (s.clone(), b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    pub fn tensor4(&self, name: &str, d: &Device) -> Tensor<4> {
        let (s, v) = self.f32(name);
        Tensor::from_data(TensorData::new(v, [s[0], s[1], s[2], s[3]]), d)
    }

    /// The fixture's frames (`input.frames_u8`, `[T, H, W, 3]` integers stored as f32).
    pub fn frames(&self) -> Vec<Frame> {
        let (s, v) = self.f32("input.frames_u8");
        let (t, h, w) = (s[0], s[1], s[2]);
        (0..t).map(|i| Frame::from_raw(h, w, v[i * h * w * 3..(i + 1) * h * w * 3].iter().map(|&x| x as u8).collect()).unwrap()).collect()
    }

    /// The first-frame masks (`input.first_masks`, one-hot `[K, 1, H, W]`) as a label map.
    pub fn first_labels(&self) -> LabelMap {
        let (s, m) = self.f32("input.first_masks");
        let (k, h, w) = (s[0], s[2], s[3]);
        LabelMap::new(Array2::from_shape_fn((h, w), |(y, x)| (0..k).find(|&o| m[o * h * w + y * w + x] > 0.5).map(|o| o as u8 + 1).unwrap_or(0)))
    }
}

pub fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The manifest's `state_dict` rows: name, shape, row.
pub fn manifest(dir: &Path) -> Vec<(String, Vec<usize>, Value)> {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    m["state_dict"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect(), e.clone()))
        .collect()
}

/// Checks our formula against the manifest's checksums (first four values, float64 sum) for
/// every tensor; returns (tensors checked, `num_batches_tracked` buffers).
pub fn check_formula(dir: &Path) -> (usize, usize) {
    let mut checked = 0;
    let mut buffers = 0;
    for (name, shape, e) in manifest(dir) {
        let Some(v) = formula::fill(&name, &shape) else {
            assert!(name.ends_with("num_batches_tracked"), "{name}");
            buffers += 1;
            continue;
        };
        let first4: Vec<f32> = e["first4"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        assert_eq!(&v[..first4.len()], &first4[..], "{name} first4");
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        let want = e["sum_f64"].as_f64().unwrap();
        assert!((sum - want).abs() <= 1e-9 * (1.0 + want.abs()) + 1e-7, "{name}: sum {sum} vs {want}");
        checked += 1;
    }
    (checked, buffers)
}

/// Writes the formula-filled state dict of the fixture's manifest to `path` (`.pth` or
/// `.safetensors`, with the published names).
pub fn formula_checkpoint(dir: &Path, path: &Path) {
    let entries: Vec<(String, Vec<usize>)> = manifest(dir).into_iter().filter(|(n, _, _)| !n.ends_with("num_batches_tracked")).map(|(n, s, _)| (n, s)).collect();
    formula::write_state_dict(&entries, path).unwrap();
}

/// A per-element tolerance: `|ours − ref| ≤ atol + rtol·|ref|`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub atol: f64,
    pub rtol: f64,
}

/// Compares per element; prints the largest error and the tolerance used; returns the number
/// of elements outside the tolerance (callers assert it is 0, or bounded).
pub fn count_outside(name: &str, ours: &[f32], reference: &[f32], tol: Tol) -> usize {
    assert_eq!(ours.len(), reference.len(), "{name}: {} values vs {}", ours.len(), reference.len());
    let mut worst = 0f64;
    let mut outside = 0;
    for (&a, &b) in ours.iter().zip(reference) {
        let (a, b) = (a as f64, b as f64);
        let err = (a - b).abs();
        worst = worst.max(err);
        if !(err <= tol.atol + tol.rtol * b.abs()) {
            outside += 1;
        }
    }
    eprintln!("{name:<28} max abs {worst:.2e}  (atol {:.1e}, rtol {:.0e})  outside {outside}/{}", tol.atol, tol.rtol, ours.len());
    outside
}

/// Asserts every element of `ours` (shape checked) within `tol` (default [`Golden::tol`]) of
/// the golden tensor `name`.
pub fn assert_close(golden: &Golden, name: &str, ours: Tensor<4>, tol: Option<Tol>) {
    let (shape, reference) = golden.f32(name);
    assert_eq!(ours.dims().to_vec(), shape, "{name} shape");
    let tol = tol.unwrap_or_else(|| golden.tol(name));
    let o = values(ours);
    let outside = count_outside(name, &o, &reference, tol);
    assert_eq!(outside, 0, "{name}: {outside} elements outside the tolerance");
}

/// [`assert_close`] for values of any shape (compared flat; counts must agree).
pub fn assert_close_values(golden: &Golden, name: &str, ours: &[f32], tol: Option<Tol>) {
    let (_, reference) = golden.f32(name);
    let tol = tol.unwrap_or_else(|| golden.tol(name));
    let outside = count_outside(name, ours, &reference, tol);
    assert_eq!(outside, 0, "{name}: {outside} elements outside the tolerance");
}

/// Pixels of frame `t` whose two largest reference probabilities (`f{t}.prob`) are closer than
/// `gap`, and the pixels where `labels` differs from the reference label map (`out.masks`)
/// outside those. Returns `(near ties, differing, differing outside near ties)`.
pub fn label_differences(golden: &Golden, t: usize, labels: &LabelMap, gap: f32) -> (usize, usize, usize) {
    let (ps, p) = golden.f32(&format!("f{t}.prob"));
    let (k, h, w) = (ps[0], ps[2], ps[3]);
    let probs = Array3::from_shape_vec((k, h, w), p).unwrap();
    let (ms, m) = golden.f32("out.masks");
    assert_eq!((ms[1], ms[2]), (h, w));
    let (mut ties, mut differing, mut bad) = (0, 0, 0);
    for y in 0..h {
        for x in 0..w {
            let mut v: Vec<f32> = (0..k).map(|c| probs[[c, y, x]]).collect();
            v.sort_by(|a, b| b.total_cmp(a));
            let tie = v[0] - v[1] < gap;
            ties += tie as usize;
            let reference = m[t * h * w + y * w + x] as u8;
            if labels.labels[[y, x]] != reference {
                differing += 1;
                bad += !tie as usize;
            }
        }
    }
    eprintln!("frame {t}: {ties} near-tie pixels, {differing} labels differ ({bad} outside near ties)");
    (ties, differing, bad)
}

/// The fixture's network filled by the formula through a `.pth` with the published names,
/// loaded with `--method auto`'s detection (which must find `method`), and its golden tensors.
pub fn formula_network(name: &str, method: Method) -> (memvos_model::AnyNetwork, Golden) {
    let dir = fixture(name);
    let tmp = tempfile::tempdir().unwrap();
    let pth = tmp.path().join(format!("{}.pth", method.id()));
    formula_checkpoint(&dir, &pth);
    let any = load_network(&pth, None, &Device::flex()).expect("the formula .pth loads");
    assert_eq!(any.method(), method, "recognised from the keys");
    (any, Golden::load(&dir))
}

/// Runs the fixture end to end through the inference core from its frames and first label
/// map, the network filled by the formula through a `.pth`, and returns the outputs; checks
/// what memvos computed that needs no tolerance: every frame's object ids, and frame 0's label
/// map equal to the annotation it was given.
pub fn run_core(name: &str, method: Method, cfg: PropagatorConfig) -> (Golden, Vec<Segmented>) {
    run_core_on(name, method, cfg, &Device::flex())
}

/// [`run_core`] on device `d`.
pub fn run_core_on(name: &str, method: Method, cfg: PropagatorConfig, d: &Device) -> (Golden, Vec<Segmented>) {
    run_core_with(name, method, cfg, d, |any| any.shared())
}

/// [`run_core_on`] with the loaded network handed to the core as `wrap` makes it (memvos's CPU
/// kernels around it, say).
pub fn run_core_with(name: &str, method: Method, cfg: PropagatorConfig, d: &Device, wrap: impl Fn(memvos_model::AnyNetwork) -> SharedNetwork) -> (Golden, Vec<Segmented>) {
    let dir = fixture(name);
    let tmp = tempfile::tempdir().unwrap();
    let pth = tmp.path().join(format!("{}.pth", method.id()));
    formula_checkpoint(&dir, &pth);
    let any = load_network(&pth, Some(method), d).unwrap();
    let g = Golden::load(&dir);
    let mut core = InferenceCore::new(wrap(any), cfg, None, d).unwrap();
    let first = g.first_labels();
    let mut outs = Vec::new();
    for (t, frame) in g.frames().iter().enumerate() {
        let out = core.step(frame, (t == 0).then_some(&first)).unwrap().unwrap();
        assert_eq!(out.ids, vec![0, 1, 2]);
        if t == 0 {
            assert_eq!(out.labels, first, "frame 0 is the annotation");
        }
        outs.push(out);
    }
    (g, outs)
}

/// [`run_core`], then every probability within the tensor's tolerance and every label equal to
/// the reference's except at near ties.
pub fn check_core(name: &str, method: Method, cfg: PropagatorConfig) {
    check_core_on(name, method, cfg, &Device::flex(), 0.0);
}

/// [`check_core`] on device `d`, each probability's tolerance widened to at least `atol`, and
/// labels allowed to differ where the reference's two largest probabilities are within `2·atol`.
pub fn check_core_on(name: &str, method: Method, cfg: PropagatorConfig, d: &Device, atol: f64) {
    check_outputs(run_core_on(name, method, cfg, d), atol);
}

/// [`check_core`] on memvos's CPU kernels (default options: Winograd F(4×4)), which must cover
/// `method`: the same tolerances.
pub fn check_core_on_cpu_kernels(name: &str, method: Method, cfg: PropagatorConfig) {
    check_outputs(run_core_with(name, method, cfg, &Device::flex(), on_cpu_kernels), 0.0);
}

/// `any` on memvos's CPU kernels (default options), which must cover its method.
pub fn on_cpu_kernels(any: memvos_model::AnyNetwork) -> SharedNetwork {
    let method = any.method();
    let fast = accelerate(&any, &Device::flex(), CpuOptions::default()).unwrap().unwrap_or_else(|| panic!("memvos's CPU kernels cover {method}"));
    std::sync::Arc::from(fast)
}

/// Every probability within the tensor's tolerance (widened to at least `atol`) and every label
/// equal to the reference's except at near ties.
fn check_outputs((g, outs): (Golden, Vec<Segmented>), atol: f64) {
    for (t, out) in outs.iter().enumerate() {
        let (_, want) = g.f32(&format!("f{t}.prob"));
        let got: Vec<f32> = out.probs.iter().copied().collect();
        let mut tol = g.tol(&format!("f{t}.prob"));
        tol.atol = tol.atol.max(atol);
        assert_eq!(count_outside(&format!("f{t}.prob (core)"), &got, &want, tol), 0);
        let (_, differing, bad) = label_differences(&g, t, &out.labels, (2.0 * atol).max(1e-4) as f32);
        assert_eq!(bad, 0, "frame {t}: {differing} labels differ, {bad} of them not at near ties");
    }
}

/// The per-element tolerance of a probability computed on wgpu: the fixtures' tolerance for
/// features (1e-3), not the 1e-4 of probabilities computed on the CPU. wgpu's products sum in
/// another order, so features differ by ~1e-6 relative, and the soft aggregation (a logit of
/// clamped probabilities, then a softmax) amplifies that up to ~10× near saturated pixels.
/// Measured on lavapipe: 1.6e-4 (STCN), 1.4e-4 (GSFM), 1.0e-5 (MiVOS). Labels may then differ
/// where the reference's two largest probabilities are within twice this.
pub const WGPU_ATOL: f64 = 1e-3;

/// The first wgpu adapter burn finds (Mesa's lavapipe in CI). Where none answers the wgpu
/// tests print SKIPPED and pass, unless `MEMVOS_REQUIRE_WGPU` is set (CI sets it), where that
/// is a failure.
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Option<Device> {
    let found = Device::enumerate(burn::tensor::DeviceType::Wgpu).into_iter().next();
    if found.is_none() {
        assert!(std::env::var_os("MEMVOS_REQUIRE_WGPU").is_none(), "MEMVOS_REQUIRE_WGPU is set but no wgpu adapter answered (install mesa-vulkan-drivers and libvulkan1)");
        eprintln!("SKIPPED: no wgpu adapter answered");
    }
    found
}
