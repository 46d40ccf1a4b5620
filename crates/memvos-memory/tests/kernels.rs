//! The affinity kernels against a float64 reference written from the formulas, in their direct
//! and chunked forms, on random inputs and on ties. Tolerance: max abs error ≤ 1e-4 · (1 + max
//! |reference|) on readouts and weights (float32 against float64).

use burn::tensor::{Device, Tensor, TensorData};
use memvos_memory::{Selection, Similarity, kernelized_scores, read, read_chunked, topk, topk_softmax};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Case {
    b: usize,
    ck: usize,
    n: usize,
    m: usize,
    k: usize,
    cv: usize,
    mk: Vec<f32>,
    qk: Vec<f32>,
    mv: Vec<f32>,
}

impl Case {
    fn random(seed: u64, b: usize, ck: usize, n: usize, m: usize, k: usize, cv: usize) -> Case {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut v = |len: usize| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>();
        Case { b, ck, n, m, k, cv, mk: v(b * ck * n), qk: v(b * ck * m), mv: v(k * cv * n) }
    }

    fn tensors(&self, d: &Device) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
        (
            Tensor::from_data(TensorData::new(self.mk.clone(), [self.b, self.ck, self.n]), d),
            Tensor::from_data(TensorData::new(self.mv.clone(), [self.k, self.cv, self.n]), d),
            Tensor::from_data(TensorData::new(self.qk.clone(), [self.b, self.ck, self.m]), d),
        )
    }

    /// A[b][i][j] in float64.
    fn affinity(&self, sim: Similarity) -> Vec<Vec<Vec<f64>>> {
        let (n, m, ck) = (self.n, self.m, self.ck);
        (0..self.b)
            .map(|b| {
                (0..n)
                    .map(|i| {
                        (0..m)
                            .map(|j| {
                                let (mut dot, mut kk) = (0.0, 0.0);
                                for c in 0..ck {
                                    let a = self.mk[(b * ck + c) * n + i] as f64;
                                    dot += a * self.qk[(b * ck + c) * m + j] as f64;
                                    kk += a * a;
                                }
                                match sim {
                                    Similarity::Dot => dot / (ck as f64).sqrt(),
                                    Similarity::L2 => (2.0 * dot - kk) / (ck as f64).sqrt(),
                                }
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    /// Weights W[b][i][j] in float64; top-k ties broken by the lower memory index.
    fn weights(&self, sim: Similarity, sel: Selection) -> Vec<Vec<Vec<f64>>> {
        let mut a = self.affinity(sim);
        let (n, m) = (self.n, self.m);
        let k = match sel {
            Selection::Full => n,
            Selection::TopK(k) => k.min(n),
            Selection::Kernelized { k, sigma, h, w } => {
                // MiVOS's form: exp(A − max_i A)·g, top-k on that, normalise the kept.
                for ab in a.iter_mut() {
                    let col_max: Vec<f64> = (0..m).map(|j| (0..n).map(|i| ab[i][j]).fold(f64::MIN, f64::max)).collect();
                    let mut w_ = vec![vec![0.0; m]; n];
                    for i in 0..n {
                        let best = (0..m).fold(0, |bj, j| if ab[i][j] > ab[i][bj] { j } else { bj });
                        let (by, bx) = ((best / w) as f64, (best % w) as f64);
                        for j in 0..m {
                            let (qy, qx) = ((j / w) as f64, (j % w) as f64);
                            let g = (-((qy - by).powi(2) + (qx - bx).powi(2)) / (2.0 * sigma * sigma)).exp();
                            w_[i][j] = (ab[i][j] - col_max[j]).exp() * g;
                        }
                    }
                    // Store ln(w) so the shared top-k softmax below normalises w over the kept.
                    for i in 0..n {
                        for j in 0..m {
                            ab[i][j] = w_[i][j].ln();
                        }
                    }
                }
                let _ = h;
                k.min(n)
            }
        };
        a.iter()
            .map(|ab| {
                let mut out = vec![vec![0.0; m]; n];
                for j in 0..m {
                    let mut order: Vec<usize> = (0..n).collect();
                    order.sort_by(|&x, &y| ab[y][j].total_cmp(&ab[x][j]).then(x.cmp(&y)));
                    let kept = &order[..k];
                    let max = ab[kept[0]][j];
                    let sum: f64 = kept.iter().map(|&i| (ab[i][j] - max).exp()).sum();
                    for &i in kept {
                        out[i][j] = (ab[i][j] - max).exp() / sum;
                    }
                }
                out
            })
            .collect()
    }

    /// Readout R[o][c][j] in float64, flattened.
    fn readout(&self, sim: Similarity, sel: Selection) -> Vec<f64> {
        let w = self.weights(sim, sel);
        let mut r = Vec::with_capacity(self.k * self.cv * self.m);
        for o in 0..self.k {
            let wb = &w[if self.b == 1 { 0 } else { o }];
            for c in 0..self.cv {
                for j in 0..self.m {
                    r.push((0..self.n).map(|i| wb[i][j] * self.mv[(o * self.cv + c) * self.n + i] as f64).sum());
                }
            }
        }
        r
    }
}

fn check(what: &str, got: Tensor<3>, want: &[f64]) {
    let got = got.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = 1.0 + want.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    let err = got.iter().zip(want).fold(0.0f64, |a, (&g, &w)| a.max((g as f64 - w).abs()));
    assert!(err <= 1e-4 * scale, "{what}: max abs error {err:e} (scale {scale})");
}

fn selections(k: usize, h: usize, w: usize) -> [Selection; 3] {
    [Selection::Full, Selection::TopK(k), Selection::Kernelized { k, sigma: 5.6, h, w }]
}

#[test]
fn direct_and_chunked_reads_match_float64() {
    let d = Device::flex();
    // 5 memory frames of a 6x8 grid: N = 240, M = 48; shared keys (STCN) and per-object keys (STM).
    for (seed, b, sim) in [(1, 1, Similarity::L2), (2, 1, Similarity::Dot), (3, 2, Similarity::Dot), (4, 2, Similarity::L2)] {
        let case = Case::random(seed, b, 16, 240, 48, 2, 8);
        for sel in selections(5, 6, 8) {
            let want = case.readout(sim, sel);
            let (mk, mv, qk) = case.tensors(&d);
            check(&format!("{sim:?} {sel:?} direct"), read(mk.clone(), mv.clone(), qk.clone(), sim, sel).unwrap(), &want);
            for chunk in [1, 7, 48, 100, 239, 240, 1000] {
                let r = read_chunked(mk.clone(), mv.clone(), qk.clone(), sim, sel, chunk).unwrap();
                check(&format!("{sim:?} {sel:?} chunk {chunk}"), r, &want);
            }
        }
    }
}

#[test]
fn dense_top_k_weights_match_float64() {
    let d = Device::flex();
    let case = Case::random(5, 1, 64, 1620, 30, 1, 1);
    let (mk, _, qk) = case.tensors(&d);
    for k in [1, 20, 50, 1620] {
        let want: Vec<f64> = case.weights(Similarity::L2, Selection::TopK(k))[0].iter().flatten().copied().collect();
        check(&format!("top-{k} weights"), topk_softmax(Similarity::L2.affinity(mk.clone(), qk.clone()), k).unwrap(), &want);
    }
}

#[test]
fn grouped_top_k_is_exact_on_large_memories() {
    let d = Device::flex();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (n, m, k) = (16 * 1620 + 5, 7, 20); // not a multiple of the group size
    let v: Vec<f32> = (0..n * m).map(|_| rng.random_range(-10.0f32..10.0)).collect();
    let (values, indices) = topk(Tensor::from_data(TensorData::new(v.clone(), [1, n, m]), &d), k).unwrap();
    let values = values.into_data().try_to_vec::<f32>().unwrap();
    let indices = indices.into_data().convert::<i64>().try_into_vec::<i64>().unwrap();
    for j in 0..m {
        let mut col: Vec<(f32, usize)> = (0..n).map(|i| (v[i * m + j], i)).collect();
        col.sort_by(|a, b| b.0.total_cmp(&a.0));
        for t in 0..k {
            assert_eq!(values[t * m + j], col[t].0, "column {j} rank {t}");
            assert_eq!(v[indices[t * m + j] as usize * m + j], col[t].0, "index of column {j} rank {t}");
        }
    }
}

#[test]
fn ties_are_read_consistently() {
    let d = Device::flex();
    // Memory made of 4 copies of the same 30 keys and values: every affinity appears 4 times,
    // so a top-k boundary always cuts through ties. Any choice among tied entries reads the same
    // values, so direct, chunked and float64 must agree.
    let base = Case::random(11, 1, 8, 30, 12, 2, 4);
    let rep = 4;
    let n = base.n * rep;
    let tile = |v: &[f32], rows: usize| -> Vec<f32> { (0..rows).flat_map(|r| (0..rep).flat_map(move |_| v[r * base.n..(r + 1) * base.n].to_vec())).collect() };
    let (mk, mv) = (tile(&base.mk, base.ck), tile(&base.mv, base.k * base.cv));
    let case = Case { n, mk, mv, ..base };
    for sim in [Similarity::L2, Similarity::Dot] {
        for sel in [Selection::Full, Selection::TopK(1), Selection::TopK(6), Selection::TopK(10), Selection::Kernelized { k: 7, sigma: 5.6, h: 3, w: 4 }] {
            let want = case.readout(sim, sel);
            let (mk, mv, qk) = case.tensors(&d);
            check(&format!("ties {sim:?} {sel:?} direct"), read(mk.clone(), mv.clone(), qk.clone(), sim, sel).unwrap(), &want);
            for chunk in [5, 30, 31, 64] {
                check(&format!("ties {sim:?} {sel:?} chunk {chunk}"), read_chunked(mk.clone(), mv.clone(), qk.clone(), sim, sel, chunk).unwrap(), &want);
            }
        }
    }
    // All-equal affinities: the full softmax is the mean, top-k keeps exactly k with weight 1/k.
    let flat: Tensor<3> = Tensor::zeros([1, 40, 3], &d);
    let w = topk_softmax(flat.clone(), 8).unwrap().into_data().try_to_vec::<f32>().unwrap();
    for j in 0..3 {
        let col: Vec<f32> = (0..40).map(|i| w[i * 3 + j]).collect();
        assert_eq!(col.iter().filter(|&&x| x > 0.0).count(), 8);
        assert!(col.iter().all(|&x| x == 0.0 || (x - 0.125).abs() < 1e-7));
    }
}

#[test]
fn kernelized_scores_follow_the_best_query_position() {
    let d = Device::flex();
    // One memory position whose best query position is (1, 2) on a 3x4 grid.
    let mut a = vec![0.0f32; 12];
    a[4 + 2] = 1.0;
    let s = kernelized_scores(Tensor::from_data(TensorData::new(a.clone(), [1, 1, 12]), &d), 3, 4, 2.0).unwrap();
    let s = s.into_data().try_to_vec::<f32>().unwrap();
    for j in 0..12 {
        let d2 = ((j / 4) as f32 - 1.0).powi(2) + ((j % 4) as f32 - 2.0).powi(2);
        assert!((s[j] - (a[j] - d2 / 8.0)).abs() < 1e-6);
    }
}

/// Every kernel on burn's wgpu backend (Mesa's lavapipe in CI) against the same kernel on the
/// CPU: affinities, top-k softmax weights, the top-k values and their indices, kernelized
/// scores, and direct and chunked reads, within 1e-5 per element.
#[cfg(feature = "wgpu")]
#[test]
fn every_kernel_on_wgpu_matches_the_cpu() {
    let Some(gpu) = burn::tensor::Device::enumerate(burn::tensor::DeviceType::Wgpu).into_iter().next() else {
        assert!(std::env::var_os("MEMVOS_REQUIRE_WGPU").is_none(), "MEMVOS_REQUIRE_WGPU is set but no wgpu adapter answered");
        eprintln!("SKIPPED: no wgpu adapter answered");
        return;
    };
    let cpu = Device::flex();
    fn close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>) {
        assert_eq!(a.dims(), b.dims(), "{what}: shape");
        let (a, b) = (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
        let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        eprintln!("{what:<40} max abs {err:.2e}");
        assert!(err <= 1e-5, "{what}: wgpu differs from the CPU by {err:e}");
    }
    for (seed, b, sim) in [(21, 1, Similarity::L2), (22, 2, Similarity::Dot)] {
        let case = Case::random(seed, b, 16, 240, 48, 2, 8);
        let (mk, mv, qk) = case.tensors(&cpu);
        let (gk, gv, gq) = case.tensors(&gpu);
        close(&format!("{sim:?} affinity"), sim.affinity(mk.clone(), qk.clone()), sim.affinity(gk.clone(), gq.clone()));
        for sel in selections(5, 6, 8) {
            close(&format!("{sim:?} {sel:?} read"), read(mk.clone(), mv.clone(), qk.clone(), sim, sel).unwrap(), read(gk.clone(), gv.clone(), gq.clone(), sim, sel).unwrap());
            close(&format!("{sim:?} {sel:?} read, chunk 100"), read_chunked(mk.clone(), mv.clone(), qk.clone(), sim, sel, 100).unwrap(), read_chunked(gk.clone(), gv.clone(), gq.clone(), sim, sel, 100).unwrap());
        }
    }
    // Top-k on a large memory (grouped selection), values and indices.
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let (n, m) = (16 * 1620 + 5, 7);
    let v: Vec<f32> = (0..n * m).map(|_| rng.random_range(-10.0f32..10.0)).collect();
    let on = |d: &Device| Tensor::<3>::from_data(TensorData::new(v.clone(), [1, n, m]), d);
    for k in [1, 20, 50] {
        let ((cv, ci), (gv, gi)) = (topk(on(&cpu), k).unwrap(), topk(on(&gpu), k).unwrap());
        close(&format!("top-{k} values"), cv, gv);
        // The same entries, up to the order of equal values (ties among 181,475 random floats
        // do occur: the two backends may break them differently).
        let idx = |t: burn::tensor::Tensor<3, burn::tensor::Int>| t.into_data().convert::<i64>().try_into_vec::<i64>().unwrap();
        let (ci, gi) = (idx(ci), idx(gi));
        let same = ci.iter().zip(&gi).filter(|(a, b)| a == b).count();
        for (p, (a, b)) in ci.iter().zip(&gi).enumerate() {
            assert_eq!(v[*a as usize * m + p % m], v[*b as usize * m + p % m], "top-{k} position {p}: entries {a} (CPU) and {b} (wgpu) hold different values");
        }
        eprintln!("top-{k} indices: {same} of {} equal, the rest at tied values", ci.len());
        close(&format!("top-{k} softmax"), topk_softmax(on(&cpu), k).unwrap(), topk_softmax(on(&gpu), k).unwrap());
    }
    let a: Vec<f32> = (0..2 * 12 * 12).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let at = |d: &Device| Tensor::<3>::from_data(TensorData::new(a.clone(), [2, 12, 12]), d);
    close("kernelized scores", kernelized_scores(at(&cpu), 3, 4, 5.6).unwrap(), kernelized_scores(at(&gpu), 3, 4, 5.6).unwrap());
}
