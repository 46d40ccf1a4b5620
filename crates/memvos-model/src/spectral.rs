//! Two-dimensional discrete Fourier transforms of feature maps of any size, and GSFM's
//! spectral filter module built on them (methods.md §2.4).
//!
//! burn's FFT takes power-of-two lengths only, and GSFM's maps are 30×54 and 120×216 at 480p, so
//! the DFT is written as matrix products with cosine and sine matrices, which is exact for any
//! size, runs on every backend and differentiates under autodiff. For `x` of `h × w`, with
//! `C_n[k, j] = cos(2πkj/n)` and `S_n[k, j] = sin(2πkj/n)` (symmetric):
//!
//! ```text
//! Y = F_h x F_w,  F = C − iS:      Re Y = C_h x C_w − S_h x S_w,   Im Y = −(S_h x C_w + C_h x S_w)
//! real(ifft2(A + iB)) = (C_h A C_w − S_h A S_w − S_h B C_w − C_h B S_w) / (h·w)
//! ```
//!
//! The matrices are [`memvos_cpu::dft_basis`]'s (computed once per size in float64, angles
//! reduced modulo `n` first), which the CPU path's NHWC transforms use too.

use std::sync::{Mutex, OnceLock};

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use memvos_memory::transfers::upload;

use crate::blocks::conv;

/// A DFT asked of a map with no elements.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("2-D DFT of an empty map ({h}x{w}): both sides must be at least 1")]
pub struct EmptyMap {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
}

/// Constant tensors made once per key and device and kept there, so a GPU device gets them
/// once, not on every frame. Not on autodiff devices (a tensor there belongs to a graph).
fn on_device(key: (u8, usize, usize), device: &Device, make: impl FnOnce() -> Vec<Tensor<4>>) -> Vec<Tensor<4>> {
    type Kept = Vec<((u8, usize, usize), Device, Vec<Tensor<4>>)>;
    static KEPT: OnceLock<Mutex<Kept>> = OnceLock::new();
    if device.is_autodiff() {
        return make();
    }
    let mut kept = match KEPT.get_or_init(|| Mutex::new(Vec::new())).lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some((_, _, t)) = kept.iter().find(|(k, d, _)| *k == key && d == device) {
        return t.clone();
    }
    let t = make();
    kept.push((key, device.clone(), t.clone()));
    t
}

/// `(C_n, S_n)` as `[1, 1, n, n]` tensors on `device`.
fn matrices(n: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let t = on_device((0, n, 0), device, || {
        let b = memvos_cpu::dft_basis(n);
        vec![upload(TensorData::new(b.0.clone(), [1, 1, n, n]), device), upload(TensorData::new(b.1.clone(), [1, 1, n, n]), device)]
    });
    (t[0].clone(), t[1].clone())
}

/// The unnormalised 2-D DFT over the last two axes of `x` `[B, C, h, w]` (no shift): its real
/// and imaginary parts.
pub fn dft2(x: Tensor<4>) -> Result<(Tensor<4>, Tensor<4>), EmptyMap> {
    let [_, _, h, w] = x.dims();
    if h == 0 || w == 0 {
        return Err(EmptyMap { h, w });
    }
    let device = x.device();
    let (ch, sh) = matrices(h, &device);
    let (cw, sw) = matrices(w, &device);
    let xc = x.clone().matmul(cw);
    let xs = x.matmul(sw);
    let re = ch.clone().matmul(xc.clone()) - sh.clone().matmul(xs.clone());
    let im = (sh.matmul(xc) + ch.matmul(xs)).neg();
    Ok((re, im))
}

/// The real part of the inverse 2-D DFT (normalised by `1/(h·w)`) of `re + i·im`.
pub fn idft2_real(re: Tensor<4>, im: Tensor<4>) -> Result<Tensor<4>, EmptyMap> {
    let [_, _, h, w] = re.dims();
    if h == 0 || w == 0 {
        return Err(EmptyMap { h, w });
    }
    let device = re.device();
    let (ch, sh) = matrices(h, &device);
    let (cw, sw) = matrices(w, &device);
    // C_h A C_w − S_h A S_w − S_h B C_w − C_h B S_w = C_h (A C_w − B S_w) − S_h (A S_w + B C_w)
    let left_c = re.clone().matmul(cw.clone()) - im.clone().matmul(sw.clone());
    let left_s = re.matmul(sw) + im.matmul(cw);
    Ok((ch.matmul(left_c) - sh.matmul(left_s)).div_scalar((h * w) as f64))
}

/// GSFM's Gaussian `G(u, v) = exp(−((u − ⌊h/2⌋)² + (v − ⌊w/2⌋)²) / (2σ²))` on the unshifted
/// frequency grid (its peak is the highest frequency), `[1, 1, h, w]`.
pub fn gaussian(h: usize, w: usize, sigma: f64, device: &Device) -> Tensor<4> {
    let make = || vec![upload(TensorData::new(gaussian_values(h, w, sigma), [1, 1, h, w]), device)];
    if sigma == GSFM_SIGMA {
        on_device((1, h, w), device, make).remove(0)
    } else {
        make().remove(0)
    }
}

/// [`gaussian`]'s values, row-major `h × w`.
pub fn gaussian_values(h: usize, w: usize, sigma: f64) -> Vec<f32> {
    let (ch, cw) = ((h / 2) as f64, (w / 2) as f64);
    (0..h * w)
        .map(|i| {
            let (u, v) = ((i / w) as f64, (i % w) as f64);
            (-((u - ch).powi(2) + (v - cw).powi(2)) / (2.0 * sigma * sigma)).exp() as f32
        })
        .collect()
}

/// Which band a [`SpectralFilter`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    /// Multiply the spectrum by `1 − G` (GSFM's LFM).
    Low,
    /// Multiply the spectrum by `G` (GSFM's HFM).
    High,
}

/// GSFM's width of the Gaussian, in frequency bins.
pub const GSFM_SIGMA: f64 = 7.0;

/// GSFM's spectral module (LFM/HFM): `x + Re ifft2(split(conv2(relu(conv1(cat[Re Y, Im Y])))))`
/// with `Y = fft2(x) ⊙ (1 − G)` (low) or `⊙ G` (high). The two 1×1 convs act on `2C` channels
/// (real parts first); nothing depends on the map's size but `G`.
#[derive(Module, Debug)]
pub struct SpectralFilter {
    /// First 1×1 conv on `[Re, Im]`.
    pub conv1: Conv2d,
    /// Second 1×1 conv on `[Re, Im]`.
    pub conv2: Conv2d,
}

impl SpectralFilter {
    /// A module for maps of `channels` channels.
    pub fn new(channels: usize, device: &Device) -> Self {
        SpectralFilter { conv1: conv(2 * channels, 2 * channels, 1, device), conv2: conv(2 * channels, 2 * channels, 1, device) }
    }

    /// Filters `x` `[B, C, h, w]` (any `h, w ≥ 1`).
    pub fn forward(&self, x: Tensor<4>, band: Band) -> Tensor<4> {
        let [_, c, h, w] = x.dims();
        let g = gaussian(h, w, GSFM_SIGMA, &x.device());
        let mask = match band {
            Band::Low => g.neg().add_scalar(1.0),
            Band::High => g,
        };
        // A feature map of a frame is never empty; an empty one passes through unchanged.
        let Ok((re, im)) = dft2(x.clone()) else { return x };
        let z = Tensor::cat(vec![re * mask.clone(), im * mask], 1);
        let z = self.conv2.forward(relu(self.conv1.forward(z)));
        let (re, im) = (z.clone().narrow(1, 0, c), z.narrow(1, c, c));
        match idft2_real(re, im) {
            Ok(y) => x + y,
            Err(_) => x,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A float64 DFT of a row-major `h × w` map, straight from the definition.
    fn reference(x: &[f64], h: usize, w: usize) -> (Vec<f64>, Vec<f64>) {
        let mut re = vec![0.0; h * w];
        let mut im = vec![0.0; h * w];
        for k in 0..h {
            for l in 0..w {
                for j in 0..h {
                    for m in 0..w {
                        let a = -2.0 * std::f64::consts::PI * (((k * j) % h) as f64 / h as f64 + ((l * m) % w) as f64 / w as f64);
                        re[k * w + l] += x[j * w + m] * a.cos();
                        im[k * w + l] += x[j * w + m] * a.sin();
                    }
                }
            }
        }
        (re, im)
    }

    fn input(h: usize, w: usize, seed: u64) -> Vec<f64> {
        (0..h * w).map(|i| ((i as u64 * 2654435761 + seed * 97) % 1000) as f64 / 500.0 - 1.0).collect()
    }

    #[test]
    fn dft_matches_a_float64_reference_for_sizes_1_to_64() {
        let d = Device::flex();
        // Every size 1..=64 on one axis, paired with primes and even sizes on the other.
        let others = [1, 2, 7, 13, 30, 54, 61];
        for n in 1..=64usize {
            let m = others[n % others.len()];
            for (h, w) in [(n, m), (m, n)] {
                let x = input(h, w, n as u64);
                let (want_re, want_im) = reference(&x, h, w);
                let t = Tensor::<4>::from_data(TensorData::new(x.iter().map(|&v| v as f32).collect::<Vec<f32>>(), [1, 1, h, w]), &d);
                let (re, im) = dft2(t.clone()).unwrap();
                let re = re.into_data().try_to_vec::<f32>().unwrap();
                let im = im.into_data().try_to_vec::<f32>().unwrap();
                let scale = (h * w) as f64;
                for i in 0..h * w {
                    assert!((re[i] as f64 - want_re[i]).abs() <= 1e-5 * scale, "{h}x{w} re[{i}]: {} vs {}", re[i], want_re[i]);
                    assert!((im[i] as f64 - want_im[i]).abs() <= 1e-5 * scale, "{h}x{w} im[{i}]: {} vs {}", im[i], want_im[i]);
                }
                // The inverse brings the map back.
                let (re, im) = dft2(t.clone()).unwrap();
                let back = idft2_real(re, im).unwrap().into_data().try_to_vec::<f32>().unwrap();
                for (b, &v) in back.iter().zip(&x) {
                    assert!((*b as f64 - v).abs() <= 1e-5, "{h}x{w} round trip");
                }
            }
        }
    }

    #[test]
    fn empty_maps_are_errors() {
        let d = Device::flex();
        let e = dft2(Tensor::<4>::zeros([1, 2, 0, 5], &d)).unwrap_err();
        assert_eq!(e, EmptyMap { h: 0, w: 5 });
        assert!(e.to_string().contains("empty map"));
        assert!(idft2_real(Tensor::<4>::zeros([1, 1, 3, 0], &d), Tensor::<4>::zeros([1, 1, 3, 0], &d)).is_err());
    }

    #[test]
    fn gradients_match_finite_differences() {
        let d = Device::flex().autodiff();
        let (h, w) = (5, 7);
        let x: Vec<f32> = input(h, w, 3).iter().map(|&v| v as f32).collect();
        let loss_of = |v: Vec<f32>, track: bool| {
            let t = Tensor::<4>::from_data(TensorData::new(v, [1, 1, h, w]), &d);
            let t = if track { t.require_grad() } else { t };
            let (re, im) = dft2(t.clone()).unwrap();
            // A non-linear loss through both parts and the inverse.
            let y = idft2_real(re.clone() * re.clone(), im.clone()).unwrap();
            let loss = (re.powi_scalar(2).sum() + im.powi_scalar(2).sum()).mul_scalar(1e-2) + y.sum();
            (t, loss)
        };
        let (t, loss) = loss_of(x.clone(), true);
        let grads = loss.backward();
        let g = t.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let f = |v: Vec<f32>| loss_of(v, false).1.into_scalar::<f32>() as f64;
        let eps = 1e-2f32;
        for i in [0, 3, 11, 17, 34] {
            let mut plus = x.clone();
            plus[i] += eps;
            let mut minus = x.clone();
            minus[i] -= eps;
            let fd = (f(plus) - f(minus)) / (2.0 * eps as f64);
            assert!((g[i] as f64 - fd).abs() <= 2e-2 * (1.0 + fd.abs()), "d loss / d x[{i}]: autodiff {} vs finite differences {fd}", g[i]);
        }
    }
}
