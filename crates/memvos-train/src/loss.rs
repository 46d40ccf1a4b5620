//! The training losses (methods.md §1.5, §2.3, §2.4, §2.6): soft aggregation into logits,
//! the bootstrapped cross-entropy, GSFM's boundary loss, QDMN's quality target.

use burn::tensor::activation::{log_softmax, sigmoid, softmax};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Int, Tensor, TensorData};

/// Soft aggregation for training: per-object probabilities `[B, K, H, W]` → the logits
/// `ℓ = ln(q / (1 − q))` of `q = clamp([Π(1 − p_k), p], 1e-7, 1 − 1e-7)` (`[B, K + 1, H, W]`,
/// background first; fed to cross-entropy) and their softmax, the aggregated probabilities.
pub fn aggregate_logits(prob: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let [_, k, _, _] = prob.dims();
    let one_minus = prob.clone().neg().add_scalar(1.0);
    let bg = (1..k).fold(one_minus.clone().narrow(1, 0, 1), |acc, i| acc * one_minus.clone().narrow(1, i, 1));
    let q = Tensor::cat(vec![bg, prob], 1).clamp(1e-7, 1.0 - 1e-7);
    let logits = (q.clone() / q.neg().add_scalar(1.0)).log();
    let probs = softmax(logits.clone(), 1);
    (logits, probs)
}

/// Per-pixel cross-entropy of logits `[B, C, H, W]` against classes `[B, H, W]`, flattened.
pub fn pixel_ce(logits: Tensor<4>, classes: Tensor<3, Int>) -> Tensor<1> {
    let [b, _, h, w] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, classes.reshape([b, 1, h, w]));
    picked.neg().reshape([b * h * w])
}

/// STCN's bootstrapped cross-entropy: the mean over the `p` fraction of pixels (of the whole
/// batch) with the largest loss; `p ≥ 1` is the plain mean. The selection is not differentiated
/// (the gradient flows through the kept pixels' losses).
pub fn bootstrapped_ce(logits: Tensor<4>, classes: Tensor<3, Int>, p: f64) -> Tensor<1> {
    let raw = pixel_ce(logits, classes);
    let n = raw.dims()[0];
    let k = ((n as f64 * p).floor() as usize).clamp(1, n);
    if k >= n {
        return raw.mean();
    }
    let kth = raw.clone().detach().topk(k, 0).narrow(0, k - 1, 1);
    let keep = raw.clone().detach().greater_equal(kth.expand([n])).float();
    (raw * keep.clone()).sum() / keep.sum()
}

/// GSFM's boundary target of masks `[N, 1, H, W]`: the 3×3 Laplacian (8 at the centre, −1
/// around, zero padding), clamped at 0, above 0.1.
pub fn boundary_target(masks: Tensor<4>) -> Tensor<4> {
    let device = masks.device();
    let mut k = vec![-1.0f32; 9];
    k[4] = 8.0;
    let kernel = Tensor::<4>::from_data(TensorData::new(k, [1, 1, 3, 3]), &device);
    let edges = conv2d(masks, kernel, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
    edges.greater_elem(0.1).float()
}

/// GSFM's boundary loss of logits `[N, 1, H, W]` against a target: per sample, the mean binary
/// cross-entropy with logits plus the Dice loss `1 − (2Σxy + 1)/(Σx + Σy + 1)`; `[N]`.
pub fn boundary_loss(logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let [n, _, h, w] = logits.dims();
    let x: Tensor<2> = logits.reshape([n, h * w]);
    let y: Tensor<2> = target.reshape([n, h * w]);
    // BCE with logits, stable: max(x, 0) − x·y + ln(1 + e^{−|x|}).
    let bce = x.clone().clamp_min(0.0) - x.clone() * y.clone() + x.clone().abs().neg().exp().add_scalar(1.0).log();
    let bce: Tensor<1> = bce.mean_dim(1).reshape([n]);
    let s = sigmoid(x);
    let inter: Tensor<1> = (s.clone() * y.clone()).sum_dim(1).reshape([n]);
    let dice = (inter.mul_scalar(2.0).add_scalar(1.0) / (s.sum_dim(1).reshape([n]) + y.sum_dim(1).reshape([n])).add_scalar(1.0)).neg().add_scalar(1.0);
    bce + dice
}

/// QDMN's quality target: the IoU of `prob > 0.5` with the ground truth, per row of `[N, H·W]`
/// (0 for an empty union). Not differentiated.
pub fn iou_target(prob: Tensor<2>, gt: Tensor<2>) -> Tensor<1> {
    let [n, _] = prob.dims();
    let p = prob.detach().greater_elem(0.5).float();
    let g = gt.greater_elem(0.5).float();
    let inter: Tensor<1> = (p.clone() * g.clone()).sum_dim(1).reshape([n]);
    let union: Tensor<1> = (p + g).clamp_max(1.0).sum_dim(1).reshape([n]);
    let safe = union.clone().clamp_min(1.0);
    inter / safe * union.greater_elem(0.0).float()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn t4(v: Vec<f32>, s: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, s), &Device::flex())
    }

    #[test]
    fn aggregation_logits_give_the_inference_probabilities() {
        let p = t4(vec![0.9, 0.2], [1, 1, 1, 2]);
        let (_, probs) = aggregate_logits(p.clone());
        let want = memvos_model::aggregate::aggregate(p.reshape([1, 1, 1, 2])).into_data().try_to_vec::<f32>().unwrap();
        let got = probs.into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn bootstrapping_keeps_the_worst_pixels() {
        let d = Device::flex();
        // Four pixels, two classes; pixel losses differ.
        let logits = t4(vec![2.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, 0.0], [1, 2, 2, 2]);
        let classes = Tensor::<3, Int>::from_data(TensorData::new(vec![0i64, 0, 1, 1], [1, 2, 2]), &d);
        let raw = pixel_ce(logits.clone(), classes.clone()).into_data().try_to_vec::<f32>().unwrap();
        let mut sorted = raw.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let mean: f32 = raw.iter().sum::<f32>() / 4.0;
        let all = bootstrapped_ce(logits.clone(), classes.clone(), 1.0).into_scalar::<f32>();
        let half = bootstrapped_ce(logits, classes, 0.5).into_scalar::<f32>();
        assert!((all - mean).abs() < 1e-6);
        assert!((half - (sorted[0] + sorted[1]) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn boundary_and_quality_targets() {
        let mut m = vec![0.0f32; 25];
        for y in 1..4 {
            for x in 1..4 {
                m[y * 5 + x] = 1.0;
            }
        }
        let b = boundary_target(t4(m.clone(), [1, 1, 5, 5])).into_data().try_to_vec::<f32>().unwrap();
        // The ring of the square is boundary, its centre is not.
        assert_eq!(b[12], 0.0);
        assert_eq!(b[6], 1.0);
        assert_eq!(b.iter().sum::<f32>(), 8.0);
        let l = boundary_loss(t4(vec![10.0; 25], [1, 1, 5, 5]), t4(vec![1.0; 25], [1, 1, 5, 5])).into_data().try_to_vec::<f32>().unwrap();
        assert!(l[0] < 1e-3, "{l:?}");
        let prob = Tensor::<2>::from_data(TensorData::new(vec![0.9f32, 0.9, 0.1, 0.1, 0.0, 0.0], [2, 3]), &Device::flex());
        let gt = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0], [2, 3]), &Device::flex());
        assert_eq!(iou_target(prob, gt).into_data().try_to_vec::<f32>().unwrap(), vec![0.5, 0.0]);
    }
}
