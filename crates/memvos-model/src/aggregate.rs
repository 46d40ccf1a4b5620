//! Soft aggregation (methods.md §1.5): per-object foreground probabilities `p_1..p_K` become a
//! distribution over background and objects.

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

/// `p_0 = Π (1 − p_k)`, `q = clamp([p_0, p], 1e-7, 1 − 1e-7)`, `softmax(ln(q / (1 − q)))` over the
/// `K + 1` channels. Input `[K, 1, H, W]`, output `[K + 1, 1, H, W]` (background first).
pub fn aggregate(prob: Tensor<4>) -> Tensor<4> {
    let [k, _, _, _] = prob.dims();
    let one_minus = prob.clone().neg().add_scalar(1.0);
    let bg = (1..k).fold(one_minus.clone().narrow(0, 0, 1), |acc, i| acc * one_minus.clone().narrow(0, i, 1));
    let q = Tensor::cat(vec![bg, prob], 0).clamp(1e-7, 1.0 - 1e-7);
    let logits = (q.clone() / q.neg().add_scalar(1.0)).log();
    softmax(logits, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn one_object_and_two() {
        let d = Device::flex();
        let p = Tensor::<4>::from_data(TensorData::new(vec![0.9f32, 0.2], [1, 1, 1, 2]), &d);
        let out = aggregate(p).into_data().try_to_vec::<f32>().unwrap();
        // K = 1, p = 0.9: background 0.1; odds 1/9 and 9, so the output is [1/82, 81/82].
        assert!((out[0] - 1.0 / 82.0).abs() < 1e-6 && (out[2] - 81.0 / 82.0).abs() < 1e-6, "{out:?}");
        // p = 0.2: odds 4 and 1/4 -> [16/17, 1/17].
        assert!((out[1] - 16.0 / 17.0).abs() < 1e-6 && (out[3] - 1.0 / 17.0).abs() < 1e-6, "{out:?}");
        let p = Tensor::<4>::from_data(TensorData::new(vec![0.5f32, 0.5], [2, 1, 1, 1]), &d);
        let out = aggregate(p).into_data().try_to_vec::<f32>().unwrap();
        // odds: bg 0.25/0.75 = 1/3, objects 1 each -> [1/7, 3/7, 3/7]
        assert!((out[0] - 1.0 / 7.0).abs() < 1e-6 && (out[1] - 3.0 / 7.0).abs() < 1e-6);
    }
}
