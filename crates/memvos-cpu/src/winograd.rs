//! Winograd minimal filtering for 3×3 stride-1 convolutions (Lavin & Gray, 2016): each `m × m`
//! output tile comes from an `α × α` input tile (`α = m + 2`) as `Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A`.
//! Over channels the elementwise product becomes `α²` matrix products, one per transform point:
//! `M[e] = V[e] · U[e]` with `V[e]` `tiles × C_in` and `U[e]` `C_in × C_out`.
//!
//! `F(4×4, 3×3)` (`α = 6`): 36 products for 16 outputs instead of 144 (4×); `F(2×2, 3×3)`
//! (`α = 4`): 16 for 4 instead of 36 (2.25×), with a smaller rounding error.

use rayon::prelude::*;

use crate::{Nhwc, give_back, scratch};
use crate::conv::{Fuse, Winograd, epilogue_to};
use crate::precision::{Precision, Weights, WeightsRef, matmul_w};

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

/// Bytes the transformed inputs and the products of one pass hold, all threads together. A
/// pass reads each transformed weight once for all its tiles: the weights of a 1,024 → 512
/// convolution are 75 MB in `F(4×4)`, and read for a few dozen tiles at a time (per-thread
/// blocks sized for the cache) they were what the products waited on; for small weights, few
/// large passes mean few large products and few synchronisations (measured at 480p: passes of
/// 4 MiB were up to 25 % slower than 24 MiB on 64- and 128-channel maps).
const PASS_BYTES: usize = 24 << 20;

/// Tiles per pass at least (more than [`PASS_BYTES`] holds when the channels are many).
const MIN_PASS_TILES: usize = 64;

/// Tiles per parallel task of the transforms.
const TASK_TILES: usize = 8;

/// A 3×3, stride-1, padding-`pad` convolution of `x` by packed `u`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(x: &Nhwc, u: &Weights, bias: &[f32], cout: usize, pad: usize, v: Winograd, fuse: Fuse<'_>) -> Nhwc {
    forward_on(x, u, bias, cout, pad, v, fuse, crate::simd::avx512(), PASS_BYTES, true)
}

/// [`forward`] with its transforms compiled for AVX-512 (`simd`, on a CPU that has it) or not,
/// in passes of about `pass_bytes`, keeping bfloat16 weights' inputs as pairs where the CPU
/// multiplies in bfloat16 if `rounded_inputs`.
///
/// In passes of many tiles: (1) the tiles' inputs are gathered and transformed, tiles spread
/// over the threads, into `V[t][e][ci]`; (2) the α² products `M[e] = V[·][e] · U[e]`, products
/// spread over the threads, each reading its `U[e]` once for the whole pass; (3) the outputs
/// transformed back and written with the epilogue, tiles spread over the threads.
#[allow(clippy::too_many_arguments)]
fn forward_on(x: &Nhwc, u: &Weights, bias: &[f32], cout: usize, pad: usize, v: Winograd, fuse: Fuse<'_>, simd: bool, pass_bytes: usize, rounded_inputs: bool) -> Nhwc {
    let mt = mats(v);
    let (m, a, cin) = (mt.m, mt.alpha, x.c);
    let a2 = a * a;
    let (ho, wo) = (x.h + 2 * pad - 2, x.w + 2 * pad - 2);
    let (th, tw) = (ho.div_ceil(m), wo.div_ceil(m));
    let tiles = x.n * th * tw;
    // Every output pixel lies in one tile, which writes it.
    let mut out = Nhwc::for_overwrite(x.n, ho, wo, cout);
    if tiles == 0 || cout == 0 {
        return out;
    }
    // Passes of equal size, each as large as PASS_BYTES allows.
    let pass = (pass_bytes / (4 * a2 * (cin + cout))).max(MIN_PASS_TILES).min(tiles);
    let pass = tiles.div_ceil(tiles.div_ceil(pass));
    // Tiles never overlap, so the output tasks write disjoint pixels.
    let ctx = Tiles { x, bias, cout, pad, mt, fuse, th, tw, ho, wo, out: SendPtr(out.data.as_mut_ptr()) };
    // With bfloat16 arithmetic the transformed inputs are rounded as each tile is transformed
    // and kept as bfloat16 pairs, one plane per transform point (`[e][t][pairs]`, each plane's
    // tiles padded to whole AMX tiles of 32 rows): half the bytes, the products take them as
    // they are instead of rounding each matrix, and each product reads its rows one after
    // another (rows `α²` tiles apart would share one set of the L1 cache).
    let pairs = rounded_inputs && u.precision() == Precision::Bf16 && crate::bf16::kernel().is_some();
    let kh = crate::bf16::pair_rows(cin);
    let plane = pass.div_ceil(32) * 32 * kh;
    let vlen = if pairs { a2 * plane } else { a2 * pass * cin };
    // Both pass buffers in one of the calling thread's scratch buffers: one buffer, as large as
    // the largest pass met (≤ PASS_BYTES but for MIN_PASS_TILES), serves every convolution
    // without zeroing or faulting in pages again (the map pool would free and allocate it for
    // a convolution of a larger size). Both start on a cache line (AMX's tile rows are 64
    // bytes: unaligned, each spans two).
    let mlen = a2 * pass * cout;
    let mut buf = scratch(vlen.next_multiple_of(16) + mlen + 16);
    let start = buf.as_ptr().align_offset(64).min(16);
    let (vbuf, rest) = buf[start..].split_at_mut(vlen.next_multiple_of(16));
    let (vbuf, mbuf) = (&mut vbuf[..vlen], &mut rest[..mlen]);
    for t0 in (0..tiles).step_by(pass) {
        let nt = pass.min(tiles - t0);
        // Every value of both buffers is written before it is read (the transforms and the
        // products overwrite whole rows; the pairs' padding rows are loaded, never stored), so
        // stale scratch is fine.
        if pairs {
            // The planes are written through a pointer to `vbuf`, which is not used as f32
            // meanwhile: f32 and u32 have the same size and alignment, and every bit pattern
            // is a valid u32.
            let planes = SendPtr(vbuf.as_mut_ptr());
            (0..nt.div_ceil(TASK_TILES)).into_par_iter().for_each(|i| {
                // The task's tiles transformed in float32 (`[t][e][ci]`), then rounded into
                // each plane.
                let (first, count) = (i * TASK_TILES, TASK_TILES.min(nt - i * TASK_TILES));
                let mut v = scratch(count * a2 * cin);
                #[cfg(target_arch = "x86_64")]
                if simd {
                    // SAFETY: the CPU has AVX-512F (`simd` is only true then).
                    unsafe { inputs_avx512(&ctx, t0 + first, &mut v) };
                } else {
                    inputs(&ctx, t0 + first, &mut v);
                }
                #[cfg(not(target_arch = "x86_64"))]
                inputs(&ctx, t0 + first, &mut v);
                for e in 0..a2 {
                    // SAFETY: rows first..first+count of plane e lie in `vbuf` (count ≤ nt ≤
                    // pass rows a plane), and only this task writes them.
                    let rows = unsafe { std::slice::from_raw_parts_mut((planes.get() as *mut u32).add(e * plane + first * kh), count * kh) };
                    let rounded = crate::bf16::round_rows_into(&v[e * cin..], count, cin, a2 * cin, rows, kh);
                    debug_assert!(rounded, "bfloat16 arithmetic was checked above");
                }
                give_back(v);
            });
            // SAFETY: as above; the tasks writing it are done.
            let v16 = unsafe { std::slice::from_raw_parts(planes.get() as *const u32, vlen) };
            mbuf[..a2 * nt * cout].par_chunks_mut(nt * cout).enumerate().for_each(|(e, dst)| {
                let WeightsRef::Bf16(r) = u.matrix(e) else { unreachable!("bfloat16 weights (checked above)") };
                let done = crate::bf16::matmul_pairs(nt, cout, cin, dst, &v16[e * plane..], kh, r);
                debug_assert!(done, "bfloat16 arithmetic was checked above");
            });
        } else {
            vbuf[..nt * a2 * cin].par_chunks_mut(TASK_TILES * a2 * cin).enumerate().for_each(|(i, chunk)| {
                let first = t0 + i * TASK_TILES;
                #[cfg(target_arch = "x86_64")]
                if simd {
                    // SAFETY: the CPU has AVX-512F (`simd` is only true then).
                    return unsafe { inputs_avx512(&ctx, first, chunk) };
                }
                inputs(&ctx, first, chunk);
            });
            let vs = &vbuf[..];
            mbuf[..a2 * nt * cout].par_chunks_mut(nt * cout).enumerate().for_each(|(e, dst)| {
                matmul_w(nt, cout, cin, dst, &vs[e * cin..], a2 * cin, u.matrix(e));
            });
        }
        let ms = &mbuf[..a2 * nt * cout];
        (0..nt.div_ceil(TASK_TILES)).into_par_iter().for_each(|i| {
            let range = i * TASK_TILES..nt.min((i + 1) * TASK_TILES);
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: as above.
                return unsafe { outputs_avx512(&ctx, t0, range, ms, nt) };
            }
            outputs(&ctx, t0, range, ms, nt);
        });
    }
    let _ = simd;
    give_back(buf);
    out
}

/// What every task of one Winograd convolution shares.
struct Tiles<'a> {
    x: &'a Nhwc,
    bias: &'a [f32],
    cout: usize,
    pad: usize,
    mt: &'static Mats,
    fuse: Fuse<'a>,
    th: usize,
    tw: usize,
    ho: usize,
    wo: usize,
    out: SendPtr,
}

impl Tiles<'_> {
    /// Batch image and tile row and column of tile `tile`.
    fn place(&self, tile: usize) -> (usize, usize, usize) {
        let (b, r) = (tile / (self.th * self.tw), tile % (self.th * self.tw));
        (b, r / self.tw, r % self.tw)
    }
}

/// [`inputs`] compiled for AVX-512: the transforms' 16-channel steps become single 512-bit
/// instructions (the same operations in the same order, so the same results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn inputs_avx512(ctx: &Tiles<'_>, first: usize, chunk: &mut [f32]) {
    inputs(ctx, first, chunk)
}

/// Tiles `first..` (as many as `chunk` holds): each α × α input patch gathered (zeros outside
/// the map, ReLU'd if asked) and transformed, `V = Bᵀ d B`, into the tile's `α² × cin` rows
/// of `chunk`.
#[inline(always)]
fn inputs(ctx: &Tiles<'_>, first: usize, chunk: &mut [f32]) {
    let (x, mt, pad) = (ctx.x, ctx.mt, ctx.pad);
    let (m, a, cin) = (mt.m, mt.alpha, x.c);
    let a2 = a * a;
    // The patch's values are read where they lie in the input (a zero vector outside the map),
    // ReLU'd as the rows step reads them if asked: nothing is copied.
    let (mut zeros, mut tmp) = (scratch(cin), scratch(a2 * cin));
    zeros.fill(0.0);
    let mut patch: [&[f32]; 36] = [&zeros[..]; 36];
    for (t, v) in chunk.chunks_mut(a2 * cin).enumerate() {
        let (b, ty, tx) = ctx.place(first + t);
        for i in 0..a {
            let iy = (ty * m + i) as isize - pad as isize;
            for j in 0..a {
                let ix = (tx * m + j) as isize - pad as isize;
                patch[i * a + j] = if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                    &zeros[..]
                } else {
                    &x.data[((b * x.h + iy as usize) * x.w + ix as usize) * cin..][..cin]
                };
            }
        }
        // tmp = Bᵀ d (over rows), then V = tmp B (over columns), vectorised over channels.
        if ctx.fuse.relu_input {
            rows_step::<true>(mt.bt, a, a, |e| patch[e], &mut tmp, Grid::dense(cin), cin);
        } else {
            rows_step::<false>(mt.bt, a, a, |e| patch[e], &mut tmp, Grid::dense(cin), cin);
        }
        cols_step(mt.bt, a, a, a, &tmp, Grid::dense(cin), v, Grid::dense(cin), cin);
    }
    give_back(zeros);
    give_back(tmp);
}

/// [`outputs`] compiled for AVX-512 (as [`inputs_avx512`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn outputs_avx512(ctx: &Tiles<'_>, t0: usize, range: std::ops::Range<usize>, ms: &[f32], nt: usize) {
    outputs(ctx, t0, range, ms, nt)
}

/// Tiles `t0 + range` of a pass of `nt`: `Y = Aᵀ M A` from row `t` of each product `M[e]` in
/// `ms`, then bias, residual and ReLU, written to the output's pixels.
#[inline(always)]
fn outputs(ctx: &Tiles<'_>, t0: usize, range: std::ops::Range<usize>, ms: &[f32], nt: usize) {
    let (mt, cout) = (ctx.mt, ctx.cout);
    let (m, a) = (mt.m, mt.alpha);
    let (mut half, mut y) = (scratch(m * a * cout), scratch(m * m * cout));
    for t in range {
        let (b, ty, tx) = ctx.place(t0 + t);
        let grid = Grid { base: t * cout, stride: nt * cout };
        rows_step::<false>(mt.at, m, a, |e| &ms[grid.range(e, cout)], &mut half, Grid::dense(cout), cout);
        cols_step(mt.at, m, a, m, &half, Grid::dense(cout), &mut y, Grid::dense(cout), cout);
        for i in 0..m {
            let oy = ty * m + i;
            if oy >= ctx.ho {
                break;
            }
            for j in 0..m {
                let ox = tx * m + j;
                if ox >= ctx.wo {
                    break;
                }
                let p = (b * ctx.ho + oy) * ctx.wo + ox;
                let acc = &y[(i * m + j) * cout..(i * m + j + 1) * cout];
                // SAFETY: pixel `p` belongs to this tile only, and each tile is in one task, so
                // no other thread writes these `cout` values.
                let dst = unsafe { std::slice::from_raw_parts_mut(ctx.out.get().add(p * cout), cout) };
                epilogue_to(dst, acc, ctx.bias, ctx.fuse.residual.map(|r| &r.data[p * cout..(p + 1) * cout]), ctx.fuse.relu);
            }
        }
    }
    give_back(half);
    give_back(y);
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


    fn range(self, e: usize, c: usize) -> std::ops::Range<usize> {
        let start = self.base + e * self.stride;
        start..start + c
    }
}

/// Values per step of [`combine`]: its sums stay in registers.
const LANES: usize = 16;

/// `out = Σ w · src` over `terms` (channel vectors of `out.len()` values; `max(src, 0)` with
/// `RELU`), in the terms' order, one block of [`LANES`] channels at a time, so `out` is written
/// once.
#[inline(always)]
fn combine<const RELU: bool>(out: &mut [f32], terms: &[(f32, &[f32])]) {
    let c = out.len();
    let full = c - c % LANES;
    let read = |s: f32| if RELU { s.max(0.0) } else { s };
    for j in (0..full).step_by(LANES) {
        let mut acc = [0.0f32; LANES];
        for &(w, src) in terms {
            acc.iter_mut().zip(&src[j..j + LANES]).for_each(|(x, &s)| *x += w * read(s));
        }
        out[j..j + LANES].copy_from_slice(&acc);
    }
    for j in full..c {
        out[j] = terms.iter().fold(0.0f32, |acc, &(w, src)| acc + w * read(src[j]));
    }
}

/// The rows step of a transform: `out[i][j] = Σ_k mat[i][k] · inp(k·cols + j)` over
/// `rows_in × cols` (`cols = rows_in`) channel vectors (`inp(e)`: element `e`'s `c` values,
/// ReLU'd with `RELU`), into `rows_out × cols` of `out` (at `out_grid`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn rows_step<'a, const RELU: bool>(mat: &[f64], rows_out: usize, rows_in: usize, inp: impl Fn(usize) -> &'a [f32], out: &mut [f32], out_grid: Grid, c: usize) {
    let cols = rows_in;
    for i in 0..rows_out {
        for j in 0..cols {
            let mut terms: [(f32, &[f32]); 8] = [(0.0, &[]); 8];
            let mut count = 0;
            for k in 0..rows_in {
                let w = mat[i * rows_in + k] as f32;
                if w != 0.0 {
                    terms[count] = (w, &inp(k * cols + j)[..c]);
                    count += 1;
                }
            }
            combine::<RELU>(&mut out[out_grid.range(i * cols + j, c)], &terms[..count]);
        }
    }
}

/// The columns step: `out[i][j] = Σ_k mat[j][k] · inp[i][k]` for `rows × n` elements of `inp`
/// (at `in_grid`) into `rows × cols_out` elements of `out` (at `out_grid`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
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
            combine::<false>(&mut out[out_grid.range(i * cols_out + j, c)], &terms[..count]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u64) -> Vec<f32> {
        (0..len as u64).map(|i| ((i * 2654435761 + seed * 40503) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// Several passes give what one pass gives, and the AVX-512 copies of the transforms give
    /// the portable ones' bits (both variants, ReLU on the input, residual and ReLU fused, a
    /// batch of two maps whose tiles straddle the passes).
    #[test]
    fn passes_and_instruction_sets_agree() {
        let (n, h, w, cin, cout) = (2, 30, 29, 5, 7);
        let x = Nhwc::from_nchw(&values(n * cin * h * w, 1), n, cin, h, w);
        let residual = Nhwc::from_nchw(&values(n * cout * h * w, 2), n, cout, h, w);
        let (wt, bias) = (values(cout * cin * 9, 3), values(cout, 4));
        let fuse = Fuse { relu_input: true, residual: Some(&residual), relu: true };
        for v in [Winograd::F4, Winograd::F2] {
            let u = Weights::new(pack(&wt, cin, cout, v), cin, cout, Precision::Fp32);
            let one = forward_on(&x, &u, &bias, cout, 1, v, fuse, false, usize::MAX / 2, true);
            // The smallest passes (MIN_PASS_TILES): 128 F4 tiles (450 F2) in several passes.
            let several = forward_on(&x, &u, &bias, cout, 1, v, fuse, false, 0, true);
            let worst = one.data.iter().zip(several.data.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "{v:?}: passes differ by {worst}");
            if crate::simd::avx512() {
                let simd = forward_on(&x, &u, &bias, cout, 1, v, fuse, true, 0, true);
                assert!(simd.data.iter().zip(several.data.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "{v:?}: AVX-512 transforms differ");
            }
            // bfloat16 weights: inputs rounded as each tile is transformed and kept as pairs
            // give the bits of float32 inputs rounded by each product (where the CPU has
            // bfloat16 arithmetic; elsewhere both are the widening path), over several passes
            // with tiles beyond the last whole AMX tile.
            let half = Weights::new(pack(&wt, cin, cout, v), cin, cout, Precision::Bf16);
            let by_product = forward_on(&x, &half, &bias, cout, 1, v, fuse, crate::simd::avx512(), 0, false);
            let as_pairs = forward_on(&x, &half, &bias, cout, 1, v, fuse, crate::simd::avx512(), 0, true);
            assert!(by_product.data.iter().zip(as_pairs.data.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "{v:?}: bf16 inputs as pairs differ");
            assert!(by_product.data.iter().zip(several.data.iter()).any(|(a, b)| a != b), "{v:?}: bf16 weights are used");
        }
    }
}
