//! The top-k memory read on the CPU: for each query position, the affinity to every memory
//! position (one matrix product per block of query positions), the `k` largest kept, their
//! softmax, and the weighted sum of those `k` memory values for every object — without the dense
//! `N × M` affinity, its sort, or a gather of `k·M` whole value rows.

use rayon::prelude::*;

/// How memory and query keys are compared (the scale `1/√C_k` included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    /// `k_i·q_j / √C_k` (STM, MiVOS, QDMN).
    Dot,
    /// STCN's `(2·k_i·q_j − ‖k_i‖²) / √C_k`.
    L2,
}

/// A memory read's operands, all row-major float32.
#[derive(Clone, Copy, Debug)]
pub struct TopKRead<'a> {
    /// Memory keys `[C_k][N]`.
    pub keys: &'a [f32],
    /// Memory values `[K][C_v][N]` (K objects).
    pub values: &'a [f32],
    /// Query keys `[C_k][M]`.
    pub query: &'a [f32],
    /// Key channels `C_k`.
    pub ck: usize,
    /// Memory positions `N`.
    pub n: usize,
    /// Query positions `M`.
    pub m: usize,
    /// Objects `K`.
    pub objects: usize,
    /// Value channels `C_v`.
    pub cv: usize,
    /// Memory positions kept per query position (`k ≥ N` keeps all: the full softmax).
    pub top: usize,
    /// How keys are compared.
    pub affinity: Affinity,
}

/// Query positions per block: one `block × N` affinity per thread at a time.
const BLOCK: usize = 32;

impl TopKRead<'_> {
    /// The readout `[K][C_v][M]`.
    ///
    /// # Panics
    /// When the slices' lengths disagree with the sizes or `top` is 0 (the memory bank checks
    /// both before it calls this).
    pub fn run(&self) -> Vec<f32> {
        let TopKRead { keys, values, query, ck, n, m, objects, cv, top, affinity } = *self;
        assert!(keys.len() == ck * n && values.len() == objects * cv * n && query.len() == ck * m, "memory read operands");
        assert!(top > 0, "top-k of 0");
        let top = top.min(n);
        let scale = 1.0 / (ck as f32).sqrt();
        // Query position-major, with the scale (and L2's factor 2) folded in.
        let qs = if affinity == Affinity::L2 { 2.0 * scale } else { scale };
        let mut qt = vec![0.0f32; m * ck];
        for c in 0..ck {
            for j in 0..m {
                qt[j * ck + c] = query[c * m + j] * qs;
            }
        }
        let sq: Vec<f32> = match affinity {
            Affinity::L2 => (0..n).map(|i| (0..ck).map(|c| keys[c * n + i] * keys[c * n + i]).sum::<f32>() * scale).collect(),
            Affinity::Dot => Vec::new(),
        };
        // Values position-major per object: [K][N][C_v].
        let mut vt = vec![0.0f32; objects * n * cv];
        vt.par_chunks_mut(n * cv).enumerate().for_each(|(o, dst)| {
            let src = &values[o * cv * n..(o + 1) * cv * n];
            for c in 0..cv {
                for i in 0..n {
                    dst[i * cv + c] = src[c * n + i];
                }
            }
        });
        // Each block of query positions: affinities, top-k, softmax, weighted sums → [M][K][C_v].
        let mut out = vec![0.0f32; m * objects * cv];
        out.par_chunks_mut(BLOCK * objects * cv).enumerate().for_each(|(blk, dst)| {
            let j0 = blk * BLOCK;
            let rows = dst.len() / (objects * cv);
            let mut s = vec![0.0f32; rows * n];
            crate::matmul(rows, n, ck, &mut s, &qt[j0 * ck..(j0 + rows) * ck], keys);
            if affinity == Affinity::L2 {
                s.chunks_mut(n).for_each(|row| row.iter_mut().zip(&sq).for_each(|(a, &b)| *a -= b));
            }
            if top == n {
                // Every position kept: the softmax in place, then one product per object.
                s.chunks_mut(n).for_each(softmax_in_place);
                let mut part = vec![0.0f32; rows * cv];
                for o in 0..objects {
                    crate::matmul(rows, cv, n, &mut part, &s, &vt[o * n * cv..(o + 1) * n * cv]);
                    for (r, src) in part.chunks(cv).enumerate() {
                        dst[(r * objects + o) * cv..(r * objects + o + 1) * cv].copy_from_slice(src);
                    }
                }
                return;
            }
            let mut best: Vec<(f32, usize)> = Vec::with_capacity(top + 1);
            for (r, row) in s.chunks_mut(n).enumerate() {
                select_top(row, top, &mut best);
                let Some(&(max, _)) = best.first() else {
                    continue; // every affinity NaN: a zero readout
                };
                let mut total = 0.0f32;
                for b in best.iter_mut() {
                    b.0 = (b.0 - max).exp();
                    total += b.0;
                }
                for (o, acc) in dst[r * objects * cv..(r + 1) * objects * cv].chunks_mut(cv).enumerate() {
                    let v = &vt[o * n * cv..(o + 1) * n * cv];
                    for &(w, i) in &best {
                        let w = w / total;
                        acc.iter_mut().zip(&v[i * cv..(i + 1) * cv]).for_each(|(a, &x)| *a += w * x);
                    }
                }
            }
        });
        // [M][K][C_v] → [K][C_v][M].
        let mut result = vec![0.0f32; objects * cv * m];
        result.par_chunks_mut(cv * m).enumerate().for_each(|(o, dst)| {
            for j in 0..m {
                let src = &out[(j * objects + o) * cv..][..cv];
                for c in 0..cv {
                    dst[c * m + j] = src[c];
                }
            }
        });
        result
    }
}

/// `row` replaced by its softmax; NaNs weigh 0 (all NaN: all 0), as the top-k path skips them.
fn softmax_in_place(row: &mut [f32]) {
    if row.iter().all(|v| v.is_nan()) {
        row.fill(0.0);
        return;
    }
    let max = row.iter().filter(|v| !v.is_nan()).fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut total = 0.0f32;
    for v in row.iter_mut() {
        *v = if v.is_nan() { 0.0 } else { (*v - max).exp() };
        total += *v;
    }
    row.iter_mut().for_each(|v| *v /= total);
}

/// The `top` largest values of `row` with their indices into `best`, largest first (ties keep
/// the lower index first). NaNs are skipped.
fn select_top(row: &[f32], top: usize, best: &mut Vec<(f32, usize)>) {
    best.clear();
    for (i, &v) in row.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.len() == top {
            if v <= best[top - 1].0 {
                continue;
            }
            best.pop();
        }
        let at = best.partition_point(|&(b, _)| b >= v);
        best.insert(at, (v, i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Dense float64 reference: affinity, top-k by sorting, softmax, readout.
    fn reference(r: &TopKRead<'_>) -> Vec<f64> {
        let (ck, n, m) = (r.ck, r.n, r.m);
        let mut out = vec![0.0f64; r.objects * r.cv * m];
        for j in 0..m {
            let mut a: Vec<(f64, usize)> = (0..n)
                .map(|i| {
                    let dot: f64 = (0..ck).map(|c| r.keys[c * n + i] as f64 * r.query[c * m + j] as f64).sum();
                    let sq: f64 = (0..ck).map(|c| (r.keys[c * n + i] as f64).powi(2)).sum();
                    let v = match r.affinity {
                        Affinity::Dot => dot,
                        Affinity::L2 => 2.0 * dot - sq,
                    };
                    (v / (ck as f64).sqrt(), i)
                })
                .collect();
            a.sort_by(|x, y| y.0.total_cmp(&x.0));
            a.truncate(r.top.min(n));
            let max = a[0].0;
            let total: f64 = a.iter().map(|x| (x.0 - max).exp()).sum();
            for o in 0..r.objects {
                for c in 0..r.cv {
                    out[(o * r.cv + c) * m + j] = a.iter().map(|&(v, i)| (v - max).exp() / total * r.values[(o * r.cv + c) * n + i] as f64).sum();
                }
            }
        }
        out
    }

    #[test]
    fn matches_a_dense_reference() {
        // top ≥ N: the full softmax by products.
        for (affinity, top, n, objects) in [(Affinity::L2, 5, 70, 2), (Affinity::Dot, 3, 40, 1), (Affinity::L2, 100, 30, 3), (Affinity::Dot, 33, 33, 2), (Affinity::Dot, 1, 33, 2)] {
            let (ck, m, cv) = (8, 45, 6);
            let (keys, vals, query) = (values(ck * n, 1), values(objects * cv * n, 2), values(ck * m, 3));
            let r = TopKRead { keys: &keys, values: &vals, query: &query, ck, n, m, objects, cv, top, affinity };
            let got = r.run();
            let want = reference(&r);
            let worst = got.iter().zip(&want).map(|(&g, &w)| (g as f64 - w).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-5, "{affinity:?} top {top} of {n}: worst error {worst}");
        }
    }

    #[test]
    fn selection_keeps_the_largest_in_order() {
        let mut best = Vec::new();
        select_top(&[0.5, f32::NAN, 3.0, -1.0, 3.0, 2.0], 3, &mut best);
        assert_eq!(best, vec![(3.0, 2), (3.0, 4), (2.0, 5)]);
    }
}
