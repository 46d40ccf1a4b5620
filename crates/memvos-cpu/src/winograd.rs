//! Winograd minimal filtering for 3×3 stride-1 convolutions (Lavin & Gray, 2016): each `m × m`
//! output tile comes from an `α × α` input tile (`α = m + 2`) as `Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A`.
//! Over channels the elementwise product becomes `α²` matrix products, one per transform point:
//! `M[e] = V[e] · U[e]` with `V[e]` `tiles × C_in` and `U[e]` `C_in × C_out`.
//!
//! `F(4×4, 3×3)` (`α = 6`): 36 products for 16 outputs instead of 144 (4×); `F(2×2, 3×3)`
//! (`α = 4`): 16 for 4 instead of 36 (2.25×), with a smaller rounding error.

use rayon::prelude::*;

use crate::{Nhwc, give_back, scratch};
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
    // Every output pixel lies in one tile, which writes it.
    let mut out = Nhwc::for_overwrite(x.n, ho, wo, cout);
    // At least two blocks per thread where the map allows (blocks of ≥ 8 tiles), so small maps
    // (112 tiles at 30×54) still use every core.
    let tb = tiles_per_block(cin, a).clamp(8, 128).min(tiles.div_ceil(2 * rayon::current_num_threads()).max(8));
    let blocks = tiles.div_ceil(tb);
    // Each block writes whole output tiles; tiles never overlap, so blocks write disjoint pixels.
    let out_ptr = SendPtr(out.data.as_mut_ptr());
    (0..blocks).into_par_iter().for_each(|blk| {
        let t0 = blk * tb;
        let nt = tb.min(tiles - t0);
        // Every value of these is written before it is read (the gathers, transforms and
        // products overwrite whole rows), so stale scratch is fine.
        let (mut vbuf, mut mbuf) = (scratch(a2 * nt * cin), scratch(a2 * nt * cout));
        let (mut d, mut tmp) = (scratch(a2 * cin), scratch(a2 * cin));
        // Element e of tile t in the products' buffers: row t of matrix e.
        let (v_elems, m_elems) = (Grid { base: 0, stride: nt * cin }, Grid { base: 0, stride: nt * cout });
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
            // tmp = Bᵀ d (over rows), then V = tmp B (over columns) straight into row t of
            // each product's input, vectorised over channels.
            rows_step(mt.bt, a, a, &d, Grid::dense(cin), &mut tmp, Grid::dense(cin), cin);
            cols_step(mt.bt, a, a, a, &tmp, Grid::dense(cin), &mut vbuf, v_elems.at(t * cin), cin);
        }
        for e in 0..a2 {
            matmul_w(nt, cout, cin, &mut mbuf[e * nt * cout..(e + 1) * nt * cout], &vbuf[e * nt * cin..(e + 1) * nt * cin], u.matrix(e));
        }
        let (mut half, mut y) = (scratch(m * a * cout), scratch(m * m * cout));
        for t in 0..nt {
            let tile = t0 + t;
            let (b, r) = (tile / (th * tw), tile % (th * tw));
            let (ty, tx) = (r / tw, r % tw);
            // Y = Aᵀ M A, M read from row t of each product's output.
            rows_step(mt.at, m, a, &mbuf, m_elems.at(t * cout), &mut half, Grid::dense(cout), cout);
            cols_step(mt.at, m, a, m, &half, Grid::dense(cout), &mut y, Grid::dense(cout), cout);
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
        for buf in [vbuf, mbuf, d, tmp, half, y] {
            give_back(buf);
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

/// Where the channel vectors of a grid of transform elements lie in a buffer: element `e`
/// at `base + e · stride` (`stride = C` when they are packed one after another).
#[derive(Clone, Copy)]
struct Grid {
    base: usize,
    stride: usize,
}

impl Grid {
    /// Elements one after another, `c` values each.
    fn dense(c: usize) -> Grid {
        Grid { base: 0, stride: c }
    }

    /// The same grid shifted by `offset` values.
    fn at(self, offset: usize) -> Grid {
        Grid { base: self.base + offset, stride: self.stride }
    }

    fn range(self, e: usize, c: usize) -> std::ops::Range<usize> {
        let start = self.base + e * self.stride;
        start..start + c
    }
}

/// Values per step of [`combine`]: its sums stay in registers.
const LANES: usize = 16;

/// `out = Σ w · src` over `terms` (channel vectors of `out.len()` values), in the terms' order,
/// one block of [`LANES`] channels at a time, so `out` is written once.
fn combine(out: &mut [f32], terms: &[(f32, &[f32])]) {
    let c = out.len();
    let full = c - c % LANES;
    for j in (0..full).step_by(LANES) {
        let mut acc = [0.0f32; LANES];
        for &(w, src) in terms {
            acc.iter_mut().zip(&src[j..j + LANES]).for_each(|(x, &s)| *x += w * s);
        }
        out[j..j + LANES].copy_from_slice(&acc);
    }
    for j in full..c {
        out[j] = terms.iter().fold(0.0f32, |acc, &(w, src)| acc + w * src[j]);
    }
}

/// The rows step of a transform: `out[i][j] = Σ_k mat[i][k] · inp[k][j]` over `rows_in × cols`
/// (`cols = rows_in`) channel vectors of `inp` (at `in_grid`), into `rows_out × cols` of `out`
/// (at `out_grid`).
#[allow(clippy::too_many_arguments)]
fn rows_step(mat: &[f64], rows_out: usize, rows_in: usize, inp: &[f32], in_grid: Grid, out: &mut [f32], out_grid: Grid, c: usize) {
    let cols = rows_in;
    for i in 0..rows_out {
        for j in 0..cols {
            let mut terms: [(f32, &[f32]); 8] = [(0.0, &[]); 8];
            let mut count = 0;
            for k in 0..rows_in {
                let w = mat[i * rows_in + k] as f32;
                if w != 0.0 {
                    terms[count] = (w, &inp[in_grid.range(k * cols + j, c)]);
                    count += 1;
                }
            }
            combine(&mut out[out_grid.range(i * cols + j, c)], &terms[..count]);
        }
    }
}

/// The columns step: `out[i][j] = Σ_k mat[j][k] · inp[i][k]` for `rows × n` elements of `inp`
/// (at `in_grid`) into `rows × cols_out` elements of `out` (at `out_grid`).
#[allow(clippy::too_many_arguments)]
fn cols_step(mat: &[f64], cols_out: usize, n: usize, rows: usize, inp: &[f32], in_grid: Grid, out: &mut [f32], out_grid: Grid, c: usize) {
    for i in 0..rows {
        for j in 0..cols_out {
            let mut terms: [(f32, &[f32]); 8] = [(0.0, &[]); 8];
            let mut count = 0;
            for k in 0..n {
                let w = mat[j * n + k] as f32;
                if w != 0.0 {
                    terms[count] = (w, &inp[in_grid.range(i * n + k, c)]);
                    count += 1;
                }
            }
            combine(&mut out[out_grid.range(i * cols_out + j, c)], &terms[..count]);
        }
    }
}
