//! Two-dimensional discrete Fourier transforms of NHWC maps of any size, as matrix products with
//! cosine and sine matrices (GSFM's spectral modules; burn's own FFT takes powers of two only).
//! For each channel's `h × w` map `x`, with `C_n[k, j] = cos(2πkj/n)`, `S_n[k, j] = sin(2πkj/n)`
//! (symmetric):
//!
//! ```text
//! Re Y = C_h x C_w − S_h x S_w,   Im Y = −(S_h x C_w + C_h x S_w)
//! real(ifft2(A + iB)) = (C_h (A C_w − B S_w) − S_h (A S_w + B C_w)) / (h·w)
//! ```
//!
//! On NHWC buffers the products along `w` are one `w × w` by `w × C` product per image row, and
//! those along `h` one `h × h` by `h × (w·C)` product per image, split by output rows over the
//! threads: the channels are the vector in both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::{Nhwc, matmul, matmul_cols};

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

fn negated(m: &[f32]) -> Vec<f32> {
    m.iter().map(|v| -v).collect()
}

/// Along `w`: for every image row, `out_a = P·a_row (+ Q·b_row)` and `out_b = R·a_row (+ T·b_row)`
/// with `w × w` matrices (`b` and its matrices absent for a real input).
fn along_w(a: &Nhwc, b: Option<&Nhwc>, [p, q, r, t]: [&[f32]; 4]) -> (Nhwc, Nhwc) {
    let (w, c) = (a.w, a.c);
    let (mut out_a, mut out_b) = (Nhwc::zeros(a.n, a.h, w, c), Nhwc::zeros(a.n, a.h, w, c));
    let row = w * c;
    out_a.data.par_chunks_mut(row).zip(out_b.data.par_chunks_mut(row)).enumerate().for_each(|(i, (da, db))| {
        let ra = &a.data[i * row..(i + 1) * row];
        matmul(w, c, w, da, p, ra);
        matmul(w, c, w, db, r, ra);
        if let Some(b) = b {
            let rb = &b.data[i * row..(i + 1) * row];
            matmul_cols(w, c, w, da, q, w, rb, true);
            matmul_cols(w, c, w, db, t, w, rb, true);
        }
    });
    (out_a, out_b)
}

/// Along `h`: for every image, `P·a + Q·b` with `h × h` matrices, output rows over the threads.
fn along_h(a: &Nhwc, b: &Nhwc, p: &[f32], q: &[f32]) -> Nhwc {
    let (h, plane) = (a.h, a.h * a.w * a.c);
    let cols = a.w * a.c;
    let mut out = Nhwc::zeros(a.n, h, a.w, a.c);
    if plane == 0 {
        return out;
    }
    let rows_per_task = h.div_ceil(2 * rayon::current_num_threads()).max(1);
    out.data.par_chunks_mut(plane).enumerate().for_each(|(img, image)| {
        let (pa, pb) = (&a.data[img * plane..(img + 1) * plane], &b.data[img * plane..(img + 1) * plane]);
        image.par_chunks_mut(rows_per_task * cols).enumerate().for_each(|(blk, dst)| {
            let (u0, rows) = (blk * rows_per_task, dst.len() / cols);
            matmul_cols(rows, cols, h, dst, &p[u0 * h..], h, pa, false);
            matmul_cols(rows, cols, h, dst, &q[u0 * h..], h, pb, true);
        });
    });
    out
}

/// The unnormalised 2-D DFT of every channel of `x` (no shift): its real and imaginary parts.
///
/// # Panics
/// On an empty map (`h` or `w` 0): callers check (a frame's feature map never is).
pub fn dft2(x: &Nhwc) -> (Nhwc, Nhwc) {
    assert!(x.h > 0 && x.w > 0, "2-D DFT of an empty map");
    let (bh, bw) = (dft_basis(x.h), dft_basis(x.w));
    let (cw, sw) = (&bw.0[..], &bw.1[..]);
    let (xc, xs) = along_w(x, None, [cw, &[], sw, &[]]);
    let (ch, sh) = (&bh.0[..], &bh.1[..]);
    let (nch, nsh) = (negated(ch), negated(sh));
    // Re = C_h·xc − S_h·xs; Im = −S_h·xc − C_h·xs.
    (along_h(&xc, &xs, ch, &nsh), along_h(&xc, &xs, &nsh, &nch))
}

/// The real part of the inverse 2-D DFT (normalised by `1/(h·w)`) of `re + i·im`.
///
/// # Panics
/// On an empty map, or when the two parts differ in size.
pub fn idft2_real(re: &Nhwc, im: &Nhwc) -> Nhwc {
    assert!(re.h > 0 && re.w > 0, "2-D DFT of an empty map");
    assert_eq!((re.n, re.h, re.w, re.c), (im.n, im.h, im.w, im.c), "real and imaginary parts differ in size");
    let (bh, bw) = (dft_basis(re.h), dft_basis(re.w));
    let (cw, sw) = (&bw.0[..], &bw.1[..]);
    let nsw = negated(sw);
    // L_c = A·C_w − B·S_w, L_s = A·S_w + B·C_w (along w), then C_h·L_c − S_h·L_s.
    let (lc, ls) = along_w(re, Some(im), [cw, &nsw, sw, cw]);
    let mut y = along_h(&lc, &ls, &bh.0, &negated(&bh.1));
    let scale = 1.0 / (re.h * re.w) as f32;
    y.data.par_chunks_mut(4096).for_each(|c| c.iter_mut().for_each(|v| *v *= scale));
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
        for (n, h, w, c) in [(1, 1, 1, 1), (2, 7, 13, 3), (1, 30, 54, 2), (3, 5, 1, 4), (1, 1, 9, 5)] {
            let mut x = Nhwc::zeros(n, h, w, c);
            x.data.iter_mut().enumerate().for_each(|(i, v)| *v = ((i as u64 * 2654435761) % 1000) as f32 / 500.0 - 1.0);
            let (re, im) = dft2(&x);
            let scale = (h * w) as f64;
            for ch in 0..c {
                let first = Nhwc { n: 1, h, w, c, data: x.data[..h * w * c].to_vec() };
                let (want_re, want_im) = reference(&first, ch);
                for p in 0..h * w {
                    assert!((re.data[p * c + ch] as f64 - want_re[p]).abs() <= 1e-5 * scale, "{h}x{w} re");
                    assert!((im.data[p * c + ch] as f64 - want_im[p]).abs() <= 1e-5 * scale, "{h}x{w} im");
                }
            }
            let back = idft2_real(&re, &im);
            for (b, v) in back.data.iter().zip(&x.data) {
                assert!((b - v).abs() <= 1e-5, "{h}x{w} round trip: {b} vs {v}");
            }
        }
    }
}
