//! Starting a stage from weights: a previous stage's final weights or a published checkpoint,
//! loaded strictly, except that a stage-0 network's 4-channel first memory/value-encoder conv
//! gains the fifth input ("others") channel, initialised orthogonally as the reference training
//! code does (methods.md §3.4: `nn.init.orthogonal_` on the `64 × 49` slice).

use std::path::Path;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use memvos_model::weights::{self, WeightError};
use memvos_model::{AnyNetwork, KeyKind, Method};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::step::Trainable;
use crate::trainer::TrainError;

/// The PyTorch name of a method's first memory/value-encoder conv.
pub fn first_conv_name(method: Method) -> &'static str {
    match method.key_kind() {
        KeyKind::PerObject => "mask_rgb_encoder.conv1.weight",
        KeyKind::Shared => "value_encoder.conv1.weight",
    }
}

/// A `rows × cols` matrix with orthonormal columns (`rows ≥ cols`) or rows, from a seeded normal
/// draw orthogonalised by Gram–Schmidt (as `torch.nn.init.orthogonal_` gives), row-major.
pub fn orthogonal(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    use rand_distr_free::normal;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (n, m) = if rows >= cols { (rows, cols) } else { (cols, rows) };
    // m vectors of length n, orthonormalised.
    let mut v: Vec<Vec<f64>> = (0..m).map(|_| (0..n).map(|_| normal(&mut rng)).collect()).collect();
    for i in 0..m {
        for j in 0..i {
            let d: f64 = (0..n).map(|k| v[i][k] * v[j][k]).sum();
            for k in 0..n {
                v[i][k] -= d * v[j][k];
            }
        }
        let norm = v[i].iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        v[i].iter_mut().for_each(|x| *x /= norm);
    }
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = if rows >= cols { v[c][r] } else { v[r][c] } as f32;
        }
    }
    out
}

/// Box–Muller normal draws (the `rand` crate alone has no normal distribution).
mod rand_distr_free {
    use rand::Rng;

    pub fn normal<R: Rng>(rng: &mut R) -> f64 {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Loads `path` into `net`; a 4-channel first conv in the file meets a 5-channel one in the
/// network by gaining an orthogonal fifth channel.
pub fn load_initial<M: Trainable>(mut net: M, path: &Path, method: Method) -> Result<M, TrainError> {
    let (fwd, inv) = AnyNetwork::renames(method);
    let conv_name = first_conv_name(method);
    match weights::load(&mut net, path, method, &fwd, &inv) {
        Ok(_) => Ok(net),
        Err(WeightError::Mismatch { missing, unexpected, shapes, .. }) if missing.is_empty() && unexpected.is_empty() && shapes.len() == 1 => {
            let Some((shape, data)) = weights::read_tensor(path, conv_name)? else {
                return Err(WeightError::Mismatch { path: path.to_path_buf(), method, missing, unexpected, shapes }.into());
            };
            let conv = net.first_conv();
            let [out, cin, kh, kw] = conv.weight.dims();
            if shape != [out, 4, kh, kw] || cin != 5 {
                return Err(WeightError::Mismatch { path: path.to_path_buf(), method, missing, unexpected, shapes }.into());
            }
            // Channels 0..4 from the file, channel 4 orthogonal.
            let extra = orthogonal(out, kh * kw, 14159265);
            let mut w = vec![0f32; out * 5 * kh * kw];
            let plane = kh * kw;
            for o in 0..out {
                w[o * 5 * plane..o * 5 * plane + 4 * plane].copy_from_slice(&data[o * 4 * plane..(o + 1) * 4 * plane]);
                w[o * 5 * plane + 4 * plane..(o + 1) * 5 * plane].copy_from_slice(&extra[o * plane..(o + 1) * plane]);
            }
            let device = conv.weight.val().device();
            conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [out, 5, kh, kw]), &device));
            Ok(net)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_columns() {
        let m = orthogonal(64, 49, 3);
        for i in 0..49 {
            for j in 0..49 {
                let d: f64 = (0..64).map(|r| m[r * 49 + i] as f64 * m[r * 49 + j] as f64).sum();
                assert!((d - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5, "{i} {j} {d}");
            }
        }
    }
}
