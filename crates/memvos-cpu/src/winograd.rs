//! Winograd minimal filtering for 3×3 stride-1 convolutions (Lavin & Gray, 2016): each `m × m`
//! output tile comes from an `α × α` input tile (`α = m + 2`) as `Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A`.
//! Over channels the elementwise product becomes `α²` matrix products, one per transform point:
//! `M[e] = V[e] · U[e]` with `V[e]` `tiles × C_in` and `U[e]` `C_in × C_out`.
//!
//! `F(4×4, 3×3)` (`α = 6`): 36 products for 16 outputs instead of 144 (4×); `F(2×2, 3×3)`
//! (`α = 4`): 16 for 4 instead of 36 (2.25×), with a smaller rounding error.

use rayon::prelude::*;

use crate::Nhwc;
use crate::conv::{Fuse, Winograd, epilogue};
use crate::precision::{Weights, matmul_w};

/// The transform matrices of a variant: `Bᵀ` (`α × α`), `G` (`α × 3`), `Aᵀ` (`m × α`).
struct Mats {
    m: usize,
    alpha: usize,
    bt: &'static [f64],
    g: &'static [f64],
    at: &'static [f64],
}

/// `F(4×4, 3×3)` on the points `0, ±1, ±1/2, ∞`: the same count of multiplications as the
/// usual `0, ±1, ±2`, with transforms of smaller entries and about half the rounding error
/// (Barabasz et al., 2020, "Error analysis and improving the accuracy of Winograd convolution
/// for deep neural networks"; matrices derived by Toom–Cook interpolation).
const F4: Mats = Mats {
    m: 4,
    alpha: 6,
    bt: &[
        0.25, 0.0, -1.25, 0.0, 1.0, 0.0, //
        0.0, -0.25, -0.25, 1.0, 1.0, 0.0, //
        0.0, 0.25, -0.25, -1.0, 1.0, 0.0, //
        0.0, -0.5, -1.0, 0.5, 1.0, 0.0, //
        0.0, 0.5, -1.0, -0.5, 1.0, 0.0, //
        0.0, 0.25, 0.0, -1.25, 0.0, 1.0,
    ],
    g: &[
        4.0, 0.0, 0.0, //
        2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, //
        2.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0, //
        -8.0 / 3.0, -4.0 / 3.0, -2.0 / 3.0, //
        -8.0 / 3.0, 4.0 / 3.0, -2.0 / 3.0, //
        0.0, 0.0, 1.0,
    ],
    at: &[
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0, //
        0.0, 1.0, -1.0, 0.5, -0.5, 0.0, //
        0.0, 1.0, 1.0, 0.25, 0.25, 0.0, //
        0.0, 1.0, -1.0, 0.125, -0.125, 1.0,
    ],
};

const F2: Mats = Mats {
    m: 2,
    alpha: 4,
    bt: &[
        1.0, 0.0, -1.0, 0.0, //
        0.0, 1.0, 1.0, 0.0, //
        0.0, -1.0, 1.0, 0.0, //
        0.0, 1.0, 0.0, -1.0,
    ],
    g: &[
        1.0, 0.0, 0.0, //
        0.5, 0.5, 0.5, //
        0.5, -0.5, 0.5, //
        0.0, 0.0, 1.0,
    ],
    at: &[
        1.0, 1.0, 1.0, 0.0, //
        0.0, 1.0, -1.0, -1.0,
    ],
};

fn mats(v: Winograd) -> &'static Mats {
    match v {
        Winograd::F4 => &F4,
        Winograd::F2 => &F2,
    }
}

/// `U[e][ci][co]` from weights `[cout][cin][3][3]` (computed in float64).
pub(crate) fn pack(weight: &[f32], cin: usize, cout: usize, v: Winograd) -> Vec<f32> {
    let mt = mats(v);
    let a = mt.alpha;
    let mut u = vec![0.0f32; a * a * cin * cout];
    for co in 0..cout {
        for ci in 0..cin {
            let g: [f64; 9] = std::array::from_fn(|i| weight[(co * cin + ci) * 9 + i] as f64);
            // t = G g (α × 3, α ≤ 6), then u = t Gᵀ (α × α); on the stack (no allocation per
            // filter: a 512 × 512 convolution has 262,144 of them).
            let mut t = [0.0f64; 18];
            for i in 0..a {
                for j in 0..3 {
                    t[i * 3 + j] = (0..3).map(|k| mt.g[i * 3 + k] * g[k * 3 + j]).sum();
                }
            }
            for i in 0..a {
                for j in 0..a {
                    let val: f64 = (0..3).map(|k| t[i * 3 + k] * mt.g[j * 3 + k]).sum();
                    u[((i * a + j) * cin + ci) * cout + co] = val as f32;
                }
            }
        }
    }
    u
}

/// Tiles per block of the matrix products.
fn tiles_per_block(cin: usize, alpha: usize) -> usize {
    (4 << 20) / (4 * cin.max(1) * alpha * alpha).max(1)
}

/// A 3×3, stride-1, padding-`pad` convolution of `x` by packed `u`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(x: &Nhwc, u: &Weights, bias: &[f32], cout: usize, pad: usize, v: Winograd, fuse: Fuse<'_>) -> Nhwc {
    let mt = mats(v);
    let (m, a) = (mt.m, mt.alpha);
    let a2 = a * a;
    let cin = x.c;
    let (ho, wo) = (x.h + 2 * pad - 2, x.w + 2 * pad - 2);
    let (th, tw) = (ho.div_ceil(m), wo.div_ceil(m));
    let tiles = x.n * th * tw;
    let mut out = Nhwc::zeros(x.n, ho, wo, cout);
    // At least two blocks per thread where the map allows (blocks of ≥ 8 tiles), so small maps
    // (112 tiles at 30×54) still use every core.
    let tb = tiles_per_block(cin, a).clamp(8, 128).min(tiles.div_ceil(2 * rayon::current_num_threads()).max(8));
    let blocks = tiles.div_ceil(tb);
    // Each block writes whole output tiles; tiles never overlap, so blocks write disjoint pixels.
    let out_ptr = SendPtr(out.data.as_mut_ptr());
    (0..blocks).into_par_iter().for_each(|blk| {
        let t0 = blk * tb;
        let nt = tb.min(tiles - t0);
        let mut vbuf = vec![0.0f32; a2 * nt * cin];
        let mut mbuf = vec![0.0f32; a2 * nt * cout];
        let mut d = vec![0.0f32; a2 * cin];
        let mut tmp = vec![0.0f32; a2 * cin];
        for t in 0..nt {
            let tile = t0 + t;
            let (b, r) = (tile / (th * tw), tile % (th * tw));
            let (ty, tx) = (r / tw, r % tw);
            // Gather the α × α input patch (zero outside), ReLU'd if asked.
            for i in 0..a {
                let iy = (ty * m + i) as isize - pad as isize;
                for j in 0..a {
                    let ix = (tx * m + j) as isize - pad as isize;
                    let dst = &mut d[(i * a + j) * cin..(i * a + j + 1) * cin];
                    if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                        dst.fill(0.0);
                    } else {
                        let src = &x.data[((b * x.h + iy as usize) * x.w + ix as usize) * cin..][..cin];
                        if fuse.relu_input {
                            dst.iter_mut().zip(src).for_each(|(o, &s)| *o = s.max(0.0));
                        } else {
                            dst.copy_from_slice(src);
                        }
                    }
                }
            }
            // tmp = Bᵀ d (over rows), then V = tmp B (over columns), vectorised over channels.
            // (d is no longer needed once tmp holds Bᵀ d, so V goes back into it.)
            transform(mt.bt, a, a, &d, &mut tmp, cin, true);
            transform(mt.bt, a, a, &tmp, &mut d, cin, false);
            for e in 0..a2 {
                vbuf[(e * nt + t) * cin..(e * nt + t + 1) * cin].copy_from_slice(&d[e * cin..(e + 1) * cin]);
            }
        }
        for e in 0..a2 {
            matmul_w(nt, cout, cin, &mut mbuf[e * nt * cout..(e + 1) * nt * cout], &vbuf[e * nt * cin..(e + 1) * nt * cin], u.matrix(e));
        }
        let mut mt_in = vec![0.0f32; a2 * cout];
        let mut half = vec![0.0f32; m * a * cout];
        let mut y = vec![0.0f32; m * m * cout];
        for t in 0..nt {
            let tile = t0 + t;
            let (b, r) = (tile / (th * tw), tile % (th * tw));
            let (ty, tx) = (r / tw, r % tw);
            for e in 0..a2 {
                mt_in[e * cout..(e + 1) * cout].copy_from_slice(&mbuf[(e * nt + t) * cout..(e * nt + t + 1) * cout]);
            }
            // Y = Aᵀ M A.
            transform(mt.at, m, a, &mt_in, &mut half, cout, true);
            transform_cols(mt.at, m, a, &half, &mut y, cout);
            for i in 0..m {
                let oy = ty * m + i;
                if oy >= ho {
                    break;
                }
                for j in 0..m {
                    let ox = tx * m + j;
                    if ox >= wo {
                        break;
                    }
                    let p = (b * ho + oy) * wo + ox;
                    let acc = &mut y[(i * m + j) * cout..(i * m + j + 1) * cout];
                    epilogue(acc, bias, fuse.residual.map(|r| &r.data[p * cout..(p + 1) * cout]), fuse.relu);
                    // SAFETY: pixel `p` belongs to this tile only, and tiles are split between
                    // blocks without overlap, so no other thread writes these `cout` values.
                    let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(p * cout), cout) };
                    dst.copy_from_slice(acc);
                }
            }
        }
    });
    out
}

/// A raw pointer shared by the blocks, which write disjoint parts of the output.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only used for disjoint writes (see `forward`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `out[i][j] = Σ_k mat[i][k] · inp[k][j]` (rows, `rows_in` → `rows_out`) for `rows_out × cols`
/// grids of channel vectors (`cols = rows_in` for the square step), when `rows` is true.
fn transform(mat: &[f64], rows_out: usize, rows_in: usize, inp: &[f32], out: &mut [f32], c: usize, rows: bool) {
    if rows {
        // inp: [rows_in][cols][c] with cols = rows_in (square input grid); out: [rows_out][cols][c].
        let cols = rows_in;
        for i in 0..rows_out {
            for j in 0..cols {
                let o = &mut out[(i * cols + j) * c..(i * cols + j + 1) * c];
                o.fill(0.0);
                for k in 0..rows_in {
                    let w = mat[i * rows_in + k] as f32;
                    if w != 0.0 {
                        let src = &inp[(k * cols + j) * c..(k * cols + j + 1) * c];
                        o.iter_mut().zip(src).for_each(|(x, &s)| *x += w * s);
                    }
                }
            }
        }
    } else {
        // Columns of a square grid: out[i][j] = Σ_k mat[j][k] · inp[i][k].
        let n = rows_in;
        for i in 0..n {
            for j in 0..rows_out {
                let o = &mut out[(i * rows_out + j) * c..(i * rows_out + j + 1) * c];
                o.fill(0.0);
                for k in 0..n {
                    let w = mat[j * n + k] as f32;
                    if w != 0.0 {
                        let src = &inp[(i * n + k) * c..(i * n + k + 1) * c];
                        o.iter_mut().zip(src).for_each(|(x, &s)| *x += w * s);
                    }
                }
            }
        }
    }
}

/// The column step of the output transform: `y[i][j] = Σ_k Aᵀ[j][k] · half[i][k]` for `half`
/// of `m × α` channel vectors.
fn transform_cols(at: &[f64], m: usize, a: usize, half: &[f32], y: &mut [f32], c: usize) {
    for i in 0..m {
        for j in 0..m {
            let o = &mut y[(i * m + j) * c..(i * m + j + 1) * c];
            o.fill(0.0);
            for k in 0..a {
                let w = at[j * a + k] as f32;
                if w != 0.0 {
                    let src = &half[(i * a + k) * c..(i * a + k + 1) * c];
                    o.iter_mut().zip(src).for_each(|(x, &s)| *x += w * s);
                }
            }
        }
    }
}
