//! Affinity kernels between memory keys and query keys, and the readout they weight.
//!
//! Shapes: memory keys `[B, C_k, N]` (N = T·h·w memory positions), query keys `[B, C_k, M]`
//! (M = h·w query positions), affinities `[B, N, M]` normalised over the memory axis (dim 1).

use burn::tensor::activation::softmax;
use burn::tensor::{IndexingUpdateOp, Tensor};

/// STCN's affinity (methods.md §2.2): negative squared L2 distance with the query-norm term
/// dropped (it is constant along the softmax axis), scaled by `1/√C_k`:
/// `A[b, i, j] = (2·k_i·q_j − ‖k_i‖²) / √C_k`.
pub fn l2_affinity(memory_keys: Tensor<3>, query_keys: Tensor<3>) -> Tensor<3> {
    let [_, ck, _] = memory_keys.dims();
    let ab = memory_keys.clone().swap_dims(1, 2).matmul(query_keys).mul_scalar(2.0); // [B, N, M]
    let a_sq = memory_keys.powi_scalar(2).sum_dim(1).swap_dims(1, 2); // [B, N, 1]
    (ab - a_sq).div_scalar((ck as f64).sqrt())
}

/// Softmax over the memory axis with all entries kept: `W[b, i, j] = exp(A_ij) / Σ_i exp(A_ij)`.
pub fn softmax_memory(affinity: Tensor<3>) -> Tensor<3> {
    softmax(affinity, 1)
}

/// Top-k softmax over the memory axis: for each query column keep the `k` largest affinities,
/// `w = exp(A − max) / Σ exp(A − max)` over those (the maximum is subtracted, so large
/// affinities never overflow), zero elsewhere. `k ≥ N` is the full softmax.
pub fn topk_softmax(affinity: Tensor<3>, k: usize) -> Tensor<3> {
    let [_, n, _] = affinity.dims();
    if k >= n {
        return softmax_memory(affinity);
    }
    let (values, indices) = affinity.clone().topk_with_indices(k, 1); // [B, k, M]
    let max = values.clone().max_dim(1);
    let e = (values - max).exp();
    let w = e.clone() / e.sum_dim(1);
    affinity.zeros_like().scatter(1, indices, w, IndexingUpdateOp::Add)
}

/// Readout `R_k = V_k · W`: values `[K, C_v, N]` weighted by one affinity `[1, N, M]` shared by
/// all objects, giving `[K, C_v, M]`.
pub fn readout(affinity: Tensor<3>, values: Tensor<3>) -> Tensor<3> {
    let [k, cv, n] = values.dims();
    let [_, _, m] = affinity.dims();
    let w: Tensor<2> = affinity.reshape([n, m]);
    values.reshape([k * cv, n]).matmul(w).reshape([k, cv, m])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

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
        let w = topk_softmax(t3(v, [1, 10, 3], &d), 4);
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
