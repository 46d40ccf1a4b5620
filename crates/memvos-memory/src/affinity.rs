//! Affinity kernels between memory keys and query keys, and the readouts they weight.
//!
//! Shapes: memory keys `[B, C_k, N]` (N = T·h·w memory positions), query keys `[B, C_k, M]`
//! (M = h·w query positions), affinities `[B, N, M]` normalised over the memory axis (dim 1),
//! memory values `[K, C_v, N]`, readouts `[K, C_v, M]`.
//!
//! Every kernel comes in a direct form (one `N × M` matrix) and, through [`read_chunked`], a
//! chunked form over memory whose working set is bounded by the chunk size: the full softmax
//! becomes a running ("online") softmax and top-k a running top-k. Both give the direct result
//! up to float rounding.

use burn_tensor::activation::softmax;
use burn_tensor::{Int, IndexingUpdateOp, Tensor};
use serde::{Deserialize, Serialize};

/// Inputs a kernel cannot work on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    #[error("top-k with k = {k} over {n} memory positions (k must be in 1..={n})")]
    /// A top-k that cannot be taken.
    TopK {
        /// The `k` asked for.
        k: usize,
        /// Memory positions.
        n: usize,
    },
    #[error("kernelised memory: {m} query positions do not make a {h}x{w} grid")]
    /// Query positions that are not the grid the kernel was told.
    Grid {
        /// Query positions.
        m: usize,
        /// Grid height.
        h: usize,
        /// Grid width.
        w: usize,
    },
    #[error("{what}: {detail}")]
    /// Operands whose shapes do not fit together.
    Shape {
        /// Which operand.
        what: &'static str,
        /// What was expected and found.
        detail: String,
    },
}

/// Checks that memory keys `[B, C_k, N]`, values `[K, C_v, N]` and query keys `[B, C_k, M]`
/// fit together (`B` = 1 or `K`).
fn check_shapes(memory_keys: &Tensor<3>, memory_values: &Tensor<3>, query_keys: &Tensor<3>) -> Result<(), KernelError> {
    let [b, ck, n] = memory_keys.dims();
    let [k, _, vn] = memory_values.dims();
    let [qb, qck, _] = query_keys.dims();
    if qck != ck || qb != b {
        return Err(KernelError::Shape { what: "query keys", detail: format!("[{qb}, {qck}, M] do not match memory keys [{b}, {ck}, N]") });
    }
    if vn != n || (b != 1 && b != k) {
        return Err(KernelError::Shape { what: "memory values", detail: format!("[{k}, C_v, {vn}] do not match memory keys [{b}, {ck}, {n}]") });
    }
    Ok(())
}

/// STM/MiVOS/QDMN's affinity (methods.md §2.1): the dot product scaled by `1/√C_k`,
/// `A[b, i, j] = k_i·q_j / √C_k`. Keys are per object there: batch over objects (`B = K`).
pub fn dot_affinity(memory_keys: Tensor<3>, query_keys: Tensor<3>) -> Tensor<3> {
    let [_, ck, _] = memory_keys.dims();
    memory_keys.swap_dims(1, 2).matmul(query_keys.div_scalar((ck as f64).sqrt()))
}

/// STCN's affinity (methods.md §2.2): negative squared L2 distance with the query-norm term
/// dropped (it is constant along the softmax axis), scaled by `1/√C_k`:
/// `A[b, i, j] = (2·k_i·q_j − ‖k_i‖²) / √C_k`.
pub fn l2_affinity(memory_keys: Tensor<3>, query_keys: Tensor<3>) -> Tensor<3> {
    let [_, ck, _] = memory_keys.dims();
    let ab = memory_keys.clone().swap_dims(1, 2).matmul(query_keys).mul_scalar(2.0); // [B, N, M]
    let a_sq = memory_keys.powi_scalar(2).sum_dim(1).swap_dims(1, 2); // [B, N, 1]
    (ab - a_sq).div_scalar((ck as f64).sqrt())
}

/// Softmax over the memory axis with all entries kept: `W[b, i, j] = exp(A_ij) / Σ_i exp(A_ij)`
/// (computed as `exp(A_ij − max_i A_ij) / Σ_i exp(A_ij − max_i A_ij)`).
pub fn softmax_memory(affinity: Tensor<3>) -> Tensor<3> {
    softmax(affinity, 1)
}

/// Group size of [`topk`]'s prefilter.
const TOPK_GROUP: usize = 8;

/// The `k` largest scores of every query column and their memory indices, both `[B, k, M]`,
/// in descending order. Exact: memory rows are cut into groups of 8, the `k` groups with the
/// largest maxima are kept (every group holding one of the `k` largest scores is among them),
/// and the top-k is taken over their `8k` members, so only `N/8 + 8k` entries per column are
/// sorted instead of `N`. Among scores equal to the k-th largest, which ones are kept is
/// unspecified (as in `torch.topk`). An error unless `1 ≤ k ≤ N`.
pub fn topk(scores: Tensor<3>, k: usize) -> Result<(Tensor<3>, Tensor<3, Int>), KernelError> {
    let [b, n, m] = scores.dims();
    if !(1..=n).contains(&k) {
        return Err(KernelError::TopK { k, n });
    }
    let groups = n.div_ceil(TOPK_GROUP);
    if groups < 4 * k {
        return Ok(scores.topk_with_indices(k, 1));
    }
    let device = scores.device();
    let padded = match groups * TOPK_GROUP - n {
        0 => scores,
        pad => Tensor::cat(vec![scores, Tensor::full([b, pad, m], f32::NEG_INFINITY, &device)], 1),
    };
    let group_max = padded.clone().reshape([b, groups, TOPK_GROUP, m]).max_dim(2).reshape([b, groups, m]);
    let (_, best_groups) = group_max.topk_with_indices(k, 1); // [B, k, M]
    let members = Tensor::<1, Int>::arange(0..TOPK_GROUP as i64, &device).reshape([1, 1, TOPK_GROUP, 1]);
    let candidates = (best_groups.reshape([b, k, 1, m]).mul_scalar(TOPK_GROUP as i64) + members)
        .reshape([b, k * TOPK_GROUP, m]);
    let (values, which) = padded.gather(1, candidates.clone()).topk_with_indices(k, 1);
    Ok((values, candidates.gather(1, which)))
}

/// Top-k softmax over the memory axis: for each query column keep the `k` largest affinities,
/// `w = exp(A − max) / Σ exp(A − max)` over those (the maximum is subtracted, so large
/// affinities never overflow), zero elsewhere. `k ≥ N` is the full softmax, `k = 0` an error.
/// Dense `[B, N, M]`; [`read`] reads through the same weights without building this matrix.
pub fn topk_softmax(affinity: Tensor<3>, k: usize) -> Result<Tensor<3>, KernelError> {
    let [_, n, _] = affinity.dims();
    if k >= n && n > 0 {
        return Ok(softmax_memory(affinity));
    }
    let (values, indices) = topk(affinity.clone(), k)?;
    Ok(affinity.zeros_like().scatter(1, indices, softmax(values, 1), IndexingUpdateOp::Add))
}

/// MiVOS's kernelised memory (methods.md §2.1), as scores for a top-k softmax. For memory
/// position `i` let `ĵ(i) = argmax_j A_ij` be its best query position on the `h × w` grid and
/// `g_ij = exp(−‖pos(j) − pos(ĵ(i))‖² / (2σ²))`; MiVOS weights `w_ij = exp(A_ij − max_i A_ij)·g_ij`,
/// takes the top-k over `i` and normalises the kept ones. Since `exp` is monotone and the
/// per-column maximum cancels in the normalisation, that equals the top-k softmax of
/// `A_ij − ‖pos(j) − pos(ĵ(i))‖² / (2σ²)`, which this returns (`[B, N, M]`, `M = h·w`).
/// Each row depends only on its own memory position, so chunks over memory can be kernelised
/// independently.
pub fn kernelized_scores(affinity: Tensor<3>, h: usize, w: usize, sigma: f64) -> Result<Tensor<3>, KernelError> {
    let [_, _, m] = affinity.dims();
    if m != h * w || m == 0 {
        return Err(KernelError::Grid { m, h, w });
    }
    let device = affinity.device();
    let best = affinity.clone().argmax(2); // [B, N, 1]
    let (by, bx) = (best.clone().div_scalar(w as i64).float(), best.remainder_scalar(w as i64).float());
    let j = Tensor::<1, Int>::arange(0..m as i64, &device);
    let (qy, qx) = (j.clone().div_scalar(w as i64).float().reshape([1, 1, m]), j.remainder_scalar(w as i64).float().reshape([1, 1, m]));
    let d2 = (qy - by).powi_scalar(2) + (qx - bx).powi_scalar(2);
    Ok(affinity - d2.div_scalar(2.0 * sigma * sigma))
}

/// Readout `R_k = V_k · W_k`: values `[K, C_v, N]` weighted by an affinity `[B, N, M]` that is
/// shared by all objects (`B = 1`, STCN's image-only keys) or per object (`B = K`, STM/MiVOS),
/// giving `[K, C_v, M]`.
pub fn readout(affinity: Tensor<3>, values: Tensor<3>) -> Tensor<3> {
    let [k, cv, n] = values.dims();
    let [b, _, m] = affinity.dims();
    if b == 1 {
        let w: Tensor<2> = affinity.reshape([n, m]);
        values.reshape([k * cv, n]).matmul(w).reshape([k, cv, m])
    } else {
        values.matmul(affinity)
    }
}

/// Readout through sparse weights: `R_k[:, j] = Σ_t weights[t, j] · V_k[:, indices[t, j]]`, with
/// weights and indices `[B, k, M]` (`B` = 1 shared, or `K` per object) and values `[K, C_v, N]`
/// → `[K, C_v, M]`. Works on `K·C_v·k·M` numbers, whatever the memory size.
pub fn readout_sparse(weights: Tensor<3>, indices: Tensor<3, Int>, values: Tensor<3>) -> Tensor<3> {
    let [k, cv, n] = values.dims();
    let [b, top, m] = weights.dims();
    // Gather whole rows of the position-major values `[K·N, C_v]` (contiguous copies): object
    // `o`'s position `i` is row `o·N + i`.
    let rows: Tensor<2> = values.swap_dims(1, 2).reshape([k * n, cv]);
    let offsets = Tensor::<1, Int>::arange_step(0..(k * n) as i64, n, &weights.device()).reshape([k, 1, 1]);
    let idx = (indices.expand([k, top, m]) + offsets).reshape([k * top * m]);
    let picked: Tensor<4> = rows.select(0, idx).reshape([k, top, m, cv]);
    let summed: Tensor<3> = (picked * weights.reshape([b, top, m, 1])).sum_dim(1).reshape([k, m, cv]);
    summed.swap_dims(1, 2)
}

/// How memory and query keys are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Similarity {
    /// [`dot_affinity`] (STM, MiVOS, QDMN).
    Dot,
    /// [`l2_affinity`] (STCN, GSFM, IMSFR).
    L2,
}

impl Similarity {
    /// The affinity `[B, N, M]` of memory keys `[B, C_k, N]` and query keys `[B, C_k, M]`.
    pub fn affinity(self, memory_keys: Tensor<3>, query_keys: Tensor<3>) -> Tensor<3> {
        match self {
            Similarity::Dot => dot_affinity(memory_keys, query_keys),
            Similarity::L2 => l2_affinity(memory_keys, query_keys),
        }
    }
}

/// Which memory entries a query column reads, and with what weights.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// Softmax over every memory position.
    Full,
    /// Softmax over the `k` largest affinities.
    TopK(usize),
    /// Kernelised memory ([`kernelized_scores`]) on the `h × w` query grid, then top-k.
    Kernelized {
        /// Affinities kept per query position after the kernel.
        k: usize,
        /// The Gaussian kernel's width σ on the grid.
        sigma: f64,
        /// Query grid height.
        h: usize,
        /// Query grid width.
        w: usize,
    },
}

impl Selection {
    fn scores(self, affinity: Tensor<3>) -> Result<Tensor<3>, KernelError> {
        match self {
            Selection::Kernelized { sigma, h, w, .. } => kernelized_scores(affinity, h, w, sigma),
            _ => Ok(affinity),
        }
    }

    fn k(self) -> Option<usize> {
        match self {
            Selection::Full => None,
            Selection::TopK(k) | Selection::Kernelized { k, .. } => Some(k),
        }
    }
}

/// Reads memory in one piece: keys `[B, C_k, N]`, values `[K, C_v, N]`, query keys
/// `[B, C_k, M]` → `[K, C_v, M]` (`B = 1`: keys shared by the objects; `B = K`: per object). Top-k reads gather the kept values ([`readout_sparse`]);
/// the full softmax multiplies the dense weights. Shapes that do not fit, `k = 0` and a
/// kernelised grid that is not the query's are errors.
pub fn read(memory_keys: Tensor<3>, memory_values: Tensor<3>, query_keys: Tensor<3>, similarity: Similarity, selection: Selection) -> Result<Tensor<3>, KernelError> {
    check_shapes(&memory_keys, &memory_values, &query_keys)?;
    let [_, _, n] = memory_keys.dims();
    let scores = selection.scores(similarity.affinity(memory_keys, query_keys))?;
    Ok(match selection.k().filter(|&k| k < n || k == 0) {
        None => readout(softmax_memory(scores), memory_values),
        Some(k) => {
            let (values, indices) = topk(scores, k)?;
            readout_sparse(softmax(values, 1), indices, memory_values)
        }
    })
}

/// [`read`] in chunks of `chunk` memory positions, holding at most one `chunk × M` affinity.
/// Full softmax: a running maximum `m`, normaliser `s` and weighted sum `R` are rescaled by
/// `exp(m_old − m_new)` at each chunk and `R / s` is returned. Top-k: the running `k` best
/// scores and their global indices are merged with each chunk's own top-k; the kept values
/// are gathered at the end.
pub fn read_chunked(
    memory_keys: Tensor<3>,
    memory_values: Tensor<3>,
    query_keys: Tensor<3>,
    similarity: Similarity,
    selection: Selection,
    chunk: usize,
) -> Result<Tensor<3>, KernelError> {
    check_shapes(&memory_keys, &memory_values, &query_keys)?;
    let [_, _, n] = memory_keys.dims();
    let chunk = chunk.max(1);
    if n <= chunk {
        return read(memory_keys, memory_values, query_keys, similarity, selection);
    }
    if selection.k() == Some(0) {
        return Err(KernelError::TopK { k: 0, n });
    }
    // n > chunk: the first chunk starts the running state, the others update it.
    let mut slices = (0..n).step_by(chunk).map(|a| (a, chunk.min(n - a)));
    let (first, first_len) = slices.next().unwrap_or((0, n));
    let scores_of = |a: usize, len: usize| selection.scores(similarity.affinity(memory_keys.clone().narrow(2, a, len), query_keys.clone()));
    match selection.k().filter(|&k| k < n) {
        None => {
            // Running max and normaliser [B, 1, M], weighted sum [K, C_v, M].
            let s = scores_of(first, first_len)?;
            let mut max = s.clone().max_dim(1);
            let e = (s - max.clone()).exp();
            let mut sum = e.clone().sum_dim(1);
            let mut acc = readout(e, memory_values.clone().narrow(2, first, first_len));
            for (a, len) in slices {
                let s = scores_of(a, len)?;
                let m_new = max.clone().max_pair(s.clone().max_dim(1));
                let scale = (max - m_new.clone()).exp();
                let e = (s - m_new.clone()).exp();
                sum = sum * scale.clone() + e.clone().sum_dim(1);
                acc = acc * scale + readout(e, memory_values.clone().narrow(2, a, len));
                max = m_new;
            }
            Ok(acc / sum)
        }
        Some(k) => {
            let (mut values, mut indices) = topk(scores_of(first, first_len)?, k.min(first_len))?;
            for (a, len) in slices {
                let (v, i) = topk(scores_of(a, len)?, k.min(len))?;
                let held = values.dims()[1] + len.min(k);
                let (v, which) = Tensor::cat(vec![values, v], 1).topk_with_indices(k.min(held), 1);
                indices = Tensor::cat(vec![indices, i.add_scalar(a as i64)], 1).gather(1, which);
                values = v;
            }
            Ok(readout_sparse(softmax(values, 1), indices, memory_values))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_tensor::{Device, TensorData};

    fn t3(v: Vec<f32>, shape: [usize; 3], d: &Device) -> Tensor<3> {
        Tensor::from_data(TensorData::new(v, shape), d)
    }

    #[test]
    fn l2_affinity_matches_the_formula() {
        let d = Device::flex();
        // C_k = 4, N = 2, M = 3
        let mk: Vec<f32> = (0..8).map(|i| (i as f32 * 0.37).sin()).collect();
        let qk: Vec<f32> = (0..12).map(|i| (i as f32 * 0.21).cos()).collect();
        let a = l2_affinity(t3(mk.clone(), [1, 4, 2], &d), t3(qk.clone(), [1, 4, 3], &d));
        let got = a.into_data().try_to_vec::<f32>().unwrap();
        for i in 0..2 {
            for j in 0..3 {
                let (mut dot, mut kk) = (0.0f64, 0.0f64);
                for c in 0..4 {
                    let k = mk[c * 2 + i] as f64;
                    dot += k * qk[c * 3 + j] as f64;
                    kk += k * k;
                }
                let want = (2.0 * dot - kk) / 2.0;
                assert!((got[i * 3 + j] as f64 - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn topk_softmax_keeps_k_per_column_and_sums_to_one() {
        let d = Device::flex();
        let v: Vec<f32> = (0..30).map(|i| ((i * 7) % 11) as f32 * 10.0).collect(); // large values
        let w = topk_softmax(t3(v.clone(), [1, 10, 3], &d), 4).unwrap();
        assert_eq!(topk_softmax(t3(v, [1, 10, 3], &d), 0).unwrap_err(), KernelError::TopK { k: 0, n: 10 });
        let w = w.into_data().try_to_vec::<f32>().unwrap();
        for j in 0..3 {
            let col: Vec<f32> = (0..10).map(|i| w[i * 3 + j]).collect();
            assert!(col.iter().all(|x| x.is_finite()));
            assert!(col.iter().filter(|&&x| x > 0.0).count() <= 4);
            assert!((col.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn readout_is_a_weighted_sum() {
        let d = Device::flex();
        let aff = t3(vec![1.0, 0.0, 0.0, 1.0], [1, 2, 2], &d); // identity
        let vals = t3((0..8).map(|i| i as f32).collect(), [2, 2, 2], &d);
        let r = readout(aff, vals.clone());
        assert_eq!(r.into_data().try_to_vec::<f32>().unwrap(), vals.into_data().try_to_vec::<f32>().unwrap());
    }
}
