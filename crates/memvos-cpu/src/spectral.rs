//! Two-dimensional discrete Fourier transforms of NHWC maps of any size (GSFM's spectral modules;
//! burn's own FFT takes powers of two only), by rustfft's mixed-radix FFTs.
//!
//! Each task takes a block of [`BLOCK`] channels of one image, gathers them into planes (one
//! 64-byte stretch of every pixel), and transforms two real channels `a`, `b` at once as the
//! complex plane `z = a + i·b`: rows (length `w`), a transpose, columns (length `h`). Their
//! spectra separate by symmetry, with `Z' = Z(−k, −l)`:
//!
//! ```text
//! A = (Z + conj Z') / 2,   B = (Z − conj Z') / 2i
//! ```
//!
//! The inverse takes the real part of `ifft2(S)`, which is `ifft2` of `S`'s Hermitian part
//! `H = (S + conj S') / 2`; two channels' Hermitian parts go through one complex inverse as
//! `H₁ + i·H₂` and come back as its real and imaginary parts.
//!
//! The cosine and sine matrices of [`dft_basis`] remain for burn's side of the same transform.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftDirection, FftPlanner};

use crate::Nhwc;

/// `(C_n, S_n)`, `n × n` row-major, the angles reduced modulo `n` and computed in float64.
pub type DftBasis = Arc<(Vec<f32>, Vec<f32>)>;

/// The DFT basis of length `n`, computed once per length.
pub fn dft_basis(n: usize) -> DftBasis {
    static CACHE: OnceLock<Mutex<HashMap<usize, DftBasis>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = match cache.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.entry(n)
        .or_insert_with(|| {
            let (mut c, mut s) = (Vec::with_capacity(n * n), Vec::with_capacity(n * n));
            for k in 0..n {
                for j in 0..n {
                    let a = 2.0 * std::f64::consts::PI * ((k * j) % n) as f64 / n as f64;
                    c.push(a.cos() as f32);
                    s.push(a.sin() as f32);
                }
            }
            Arc::new((c, s))
        })
        .clone()
}

/// Channels per task: one 64-byte stretch of a pixel's channels.
const BLOCK: usize = 16;

/// The FFT of length `n` in one direction, planned once per process.
fn plan(n: usize, direction: FftDirection) -> Arc<dyn Fft<f32>> {
    static PLANNER: OnceLock<Mutex<FftPlanner<f32>>> = OnceLock::new();
    let planner = PLANNER.get_or_init(|| Mutex::new(FftPlanner::new()));
    let mut planner = match planner.lock() {
        Ok(p) => p,
        Err(poisoned) => poisoned.into_inner(),
    };
    planner.plan_fft(n, direction)
}

/// A raw pointer into an output map; the tasks write disjoint channels of it.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: each task writes only its own block's channels (see `blocks`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// Writes `v` at `i`.
    ///
    /// # Safety
    /// `i` is in bounds of the map and no other task writes it.
    unsafe fn write(self, i: usize, v: f32) {
        // SAFETY: the caller's contract.
        unsafe { *self.0.add(i) = v }
    }
}

/// Runs `f(image, first channel, channels)` for every block of [`BLOCK`] channels of every image,
/// over the threads.
fn blocks(n: usize, c: usize, f: impl Fn(usize, usize, usize) + Sync) {
    let per_image = c.div_ceil(BLOCK);
    (0..n * per_image).into_par_iter().for_each(|t| {
        let (img, c0) = (t / per_image, (t % per_image) * BLOCK);
        f(img, c0, BLOCK.min(c - c0));
    });
}

/// The 2-D transform of `planes` (each `h × w`, row-major) in one direction, in place: the
/// result's planes are `w × h` (column-major: `[l][k]`). `tmp` has the planes' size.
fn fft2(planes: &mut Vec<Complex32>, tmp: &mut Vec<Complex32>, h: usize, w: usize, direction: FftDirection) {
    let (rows, cols) = (plan(w, direction), plan(h, direction));
    let mut scratch = vec![Complex32::default(); rows.get_inplace_scratch_len().max(cols.get_inplace_scratch_len())];
    rows.process_with_scratch(planes, &mut scratch);
    for (src, dst) in planes.chunks(h * w).zip(tmp.chunks_mut(h * w)) {
        for k in 0..h {
            for l in 0..w {
                dst[l * h + k] = src[k * w + l];
            }
        }
    }
    cols.process_with_scratch(tmp, &mut scratch);
    std::mem::swap(planes, tmp);
}

/// The unnormalised 2-D DFT of every channel of `x` (no shift): its real and imaginary parts.
///
/// # Panics
/// On an empty map (`h` or `w` 0): callers check (a frame's feature map never is).
pub fn dft2(x: &Nhwc) -> (Nhwc, Nhwc) {
    assert!(x.h > 0 && x.w > 0, "2-D DFT of an empty map");
    let (h, w, c, hw) = (x.h, x.w, x.c, x.h * x.w);
    let (mut re, mut im) = (Nhwc::zeros(x.n, h, w, c), Nhwc::zeros(x.n, h, w, c));
    let (out_re, out_im) = (SendPtr(re.data.as_mut_ptr()), SendPtr(im.data.as_mut_ptr()));
    blocks(x.n, c, |img, c0, cb| {
        let pairs = cb.div_ceil(2);
        let mut planes = vec![Complex32::default(); pairs * hw];
        let mut tmp = planes.clone();
        for p in 0..hw {
            let px = &x.data[(img * hw + p) * c + c0..][..cb];
            for q in 0..pairs {
                planes[q * hw + p] = Complex32::new(px[2 * q], px.get(2 * q + 1).copied().unwrap_or(0.0));
            }
        }
        fft2(&mut planes, &mut tmp, h, w, FftDirection::Forward);
        for k in 0..h {
            for l in 0..w {
                let (at, mirror) = (l * h + k, ((w - l) % w) * h + (h - k) % h);
                let base = (img * hw + k * w + l) * c + c0;
                for q in 0..pairs {
                    let (z, m) = (planes[q * hw + at], planes[q * hw + mirror]);
                    // SAFETY: pixel (img, k, l), channels c0 + 2q (+1) < c0 + cb: this block's.
                    unsafe {
                        out_re.write(base + 2 * q, 0.5 * (z.re + m.re));
                        out_im.write(base + 2 * q, 0.5 * (z.im - m.im));
                        if 2 * q + 1 < cb {
                            out_re.write(base + 2 * q + 1, 0.5 * (z.im + m.im));
                            out_im.write(base + 2 * q + 1, 0.5 * (m.re - z.re));
                        }
                    }
                }
            }
        }
    });
    (re, im)
}

/// The real part of the inverse 2-D DFT (normalised by `1/(h·w)`) of `re + i·im`.
///
/// # Panics
/// On an empty map, or when the two parts differ in size.
pub fn idft2_real(re: &Nhwc, im: &Nhwc) -> Nhwc {
    assert!(re.h > 0 && re.w > 0, "2-D DFT of an empty map");
    assert_eq!((re.n, re.h, re.w, re.c), (im.n, im.h, im.w, im.c), "real and imaginary parts differ in size");
    let (h, w, c, hw) = (re.h, re.w, re.c, re.h * re.w);
    let scale = 1.0 / hw as f32;
    let mut y = Nhwc::zeros(re.n, h, w, c);
    let out = SendPtr(y.data.as_mut_ptr());
    blocks(re.n, c, |img, c0, cb| {
        let pairs = cb.div_ceil(2);
        let mut planes = vec![Complex32::default(); pairs * hw];
        let mut tmp = planes.clone();
        let at = |part: &Nhwc, p: usize, ch: usize| if ch < cb { part.data[(img * hw + p) * c + c0 + ch] } else { 0.0 };
        for k in 0..h {
            for l in 0..w {
                let (p, mirror) = (k * w + l, ((h - k) % h) * w + (w - l) % w);
                for q in 0..pairs {
                    // Hermitian parts of the two channels' spectra, then H₁ + i·H₂.
                    let (a, b) = (2 * q, 2 * q + 1);
                    let h1 = Complex32::new(at(re, p, a) + at(re, mirror, a), at(im, p, a) - at(im, mirror, a));
                    let h2 = Complex32::new(at(re, p, b) + at(re, mirror, b), at(im, p, b) - at(im, mirror, b));
                    planes[q * hw + p] = Complex32::new(0.5 * (h1.re - h2.im), 0.5 * (h1.im + h2.re));
                }
            }
        }
        fft2(&mut planes, &mut tmp, h, w, FftDirection::Inverse);
        for k in 0..h {
            for l in 0..w {
                let base = (img * hw + k * w + l) * c + c0;
                for q in 0..pairs {
                    let v = planes[q * hw + l * h + k];
                    // SAFETY: pixel (img, k, l), channels c0 + 2q (+1) < c0 + cb: this block's.
                    unsafe {
                        out.write(base + 2 * q, v.re * scale);
                        if 2 * q + 1 < cb {
                            out.write(base + 2 * q + 1, v.im * scale);
                        }
                    }
                }
            }
        }
    });
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A float64 DFT of one channel, straight from the definition.
    fn reference(x: &Nhwc, ch: usize) -> (Vec<f64>, Vec<f64>) {
        let (h, w, c) = (x.h, x.w, x.c);
        let (mut re, mut im) = (vec![0.0; h * w], vec![0.0; h * w]);
        for k in 0..h {
            for l in 0..w {
                for j in 0..h {
                    for m in 0..w {
                        let a = -2.0 * std::f64::consts::PI * (((k * j) % h) as f64 / h as f64 + ((l * m) % w) as f64 / w as f64);
                        let v = x.data[(j * w + m) * c + ch] as f64;
                        re[k * w + l] += v * a.cos();
                        im[k * w + l] += v * a.sin();
                    }
                }
            }
        }
        (re, im)
    }

    #[test]
    fn dft_matches_a_float64_reference_and_inverts() {
        // Odd channel counts (an unpaired channel), more than one block of channels, batches.
        for (n, h, w, c) in [(1, 1, 1, 1), (2, 7, 13, 3), (1, 30, 54, 2), (3, 5, 1, 4), (1, 1, 9, 5), (2, 6, 10, 37)] {
            let mut x = Nhwc::zeros(n, h, w, c);
            x.data.iter_mut().enumerate().for_each(|(i, v)| *v = ((i as u64 * 2654435761) % 1000) as f32 / 500.0 - 1.0);
            let (re, im) = dft2(&x);
            let scale = (h * w) as f64;
            let plane = h * w * c;
            for img in 0..n {
                let one = Nhwc { n: 1, h, w, c, data: x.data[img * plane..(img + 1) * plane].to_vec().into() };
                for ch in 0..c {
                    let (want_re, want_im) = reference(&one, ch);
                    for p in 0..h * w {
                        let i = img * plane + p * c + ch;
                        assert!((re.data[i] as f64 - want_re[p]).abs() <= 1e-5 * scale, "{h}x{w}x{c} re, image {img} channel {ch}");
                        assert!((im.data[i] as f64 - want_im[p]).abs() <= 1e-5 * scale, "{h}x{w}x{c} im, image {img} channel {ch}");
                    }
                }
            }
            let back = idft2_real(&re, &im);
            for (b, v) in back.data.iter().zip(&x.data) {
                assert!((b - v).abs() <= 1e-5, "{h}x{w} round trip: {b} vs {v}");
            }
        }
    }

    /// GSFM's inverse sees spectra mixed by 1×1 convolutions, which are not Hermitian: the real
    /// part of their inverse, against the definition in float64.
    #[test]
    fn inverse_of_a_non_hermitian_spectrum_keeps_the_real_part() {
        for (n, h, w, c) in [(1, 4, 6, 3), (2, 5, 7, 18), (1, 1, 3, 2)] {
            let mut re = Nhwc::zeros(n, h, w, c);
            let mut im = Nhwc::zeros(n, h, w, c);
            re.data.iter_mut().enumerate().for_each(|(i, v)| *v = ((i as u64 * 2654435761) % 997) as f32 / 498.0 - 1.0);
            im.data.iter_mut().enumerate().for_each(|(i, v)| *v = ((i as u64 * 40503 + 7) % 991) as f32 / 495.0 - 1.0);
            let y = idft2_real(&re, &im);
            let plane = h * w * c;
            for img in 0..n {
                for ch in 0..c {
                    for j in 0..h {
                        for m in 0..w {
                            let mut want = 0.0f64;
                            for k in 0..h {
                                for l in 0..w {
                                    let a = 2.0 * std::f64::consts::PI * (((k * j) % h) as f64 / h as f64 + ((l * m) % w) as f64 / w as f64);
                                    let i = img * plane + (k * w + l) * c + ch;
                                    want += re.data[i] as f64 * a.cos() - im.data[i] as f64 * a.sin();
                                }
                            }
                            want /= (h * w) as f64;
                            let got = y.data[img * plane + (j * w + m) * c + ch] as f64;
                            assert!((got - want).abs() <= 1e-5, "{h}x{w}x{c}: image {img} channel {ch} at ({j}, {m}): {got} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
