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

/// A memory read's operands, all float32 and position-major (NHWC: a position's channels are
/// contiguous), so each stored frame's keys and values are read where they lie — a frame of
/// memory is one block, and nothing is joined or transposed first.
#[derive(Clone, Copy, Debug)]
pub struct TopKRead<'a> {
    /// Memory keys, one block per stored frame: `keys[g]` is `[N_g][C_k]`.
    pub keys: &'a [&'a [f32]],
    /// Memory values per object, one block per stored frame: `values[o][g]` is `[N_g][C_v]`
    /// (`K = values.len()` objects, each read with the same affinity).
    pub values: &'a [Vec<&'a [f32]>],
    /// Query keys `[M][C_k]`.
    pub query: &'a [f32],
    /// Key channels `C_k`.
    pub ck: usize,
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
    /// Memory positions `N` (the blocks' positions together).
    pub fn positions(&self) -> usize {
        self.keys.iter().map(|k| k.len() / self.ck.max(1)).sum()
    }

    /// The readout `[K][M][C_v]` (each object's readout an NHWC map of the query's positions).
    ///
    /// # Panics
    /// When the slices' lengths disagree with the sizes or `top` is 0 (the memory bank checks
    /// both before it calls this).
    pub fn run(&self) -> Vec<f32> {
        let TopKRead { keys, values, query, ck, cv, top, affinity } = *self;
        assert!(ck > 0 && top > 0 && query.len() % ck == 0, "memory read operands");
        let sizes: Vec<usize> = keys.iter().map(|k| k.len() / ck).collect();
        assert!(keys.iter().zip(&sizes).all(|(k, &s)| k.len() == s * ck), "memory keys");
        assert!(values.iter().all(|per| per.len() == keys.len() && per.iter().zip(&sizes).all(|(v, &s)| v.len() == s * cv)), "memory values");
        let (objects, m, n) = (values.len(), query.len() / ck, sizes.iter().sum::<usize>());
        let offsets: Vec<usize> = sizes.iter().scan(0, |at, &s| Some(std::mem::replace(at, *at + s))).collect();
        let top = top.min(n);
        let mut out = vec![0.0f32; objects * m * cv];
        if m == 0 || objects == 0 || cv == 0 {
            return out;
        }
        let scale = 1.0 / (ck as f32).sqrt();
        // The scale (and L2's factor 2) folded into the query.
        let qs = if affinity == Affinity::L2 { 2.0 * scale } else { scale };
        let qt: Vec<f32> = query.iter().map(|&v| v * qs).collect();
        let sq: Vec<f32> = match affinity {
            Affinity::L2 => keys.iter().flat_map(|k| k.chunks(ck).map(|key| key.iter().map(|v| v * v).sum::<f32>() * scale)).collect(),
            Affinity::Dot => Vec::new(),
        };
        // Which block and row each memory position is.
        let place: Vec<(u32, u32)> = sizes.iter().enumerate().flat_map(|(g, &s)| (0..s as u32).map(move |i| (g as u32, i))).collect();
        // Each block of query positions: affinities, top-k, softmax, weighted sums → [M][K][C_v].
        let mut rows_out = vec![0.0f32; m * objects * cv];
        rows_out.par_chunks_mut(BLOCK * objects * cv).enumerate().for_each(|(blk, dst)| {
            let j0 = blk * BLOCK;
            let rows = dst.len() / (objects * cv);
            let q = &qt[j0 * ck..(j0 + rows) * ck];
            let mut s = vec![0.0f32; rows * n];
            for (g, key) in keys.iter().enumerate() {
                // s[:, block g] = q · keyᵀ
                crate::matmul_strided(rows, sizes[g], ck, &mut s[offsets[g]..], n, q, ck, 1, key, 1, ck, false);
            }
            if affinity == Affinity::L2 {
                s.chunks_mut(n).for_each(|row| row.iter_mut().zip(&sq).for_each(|(a, &b)| *a -= b));
            }
            if top == n {
                // Every position kept: the softmax in place, then one product per object.
                s.chunks_mut(n).for_each(softmax_in_place);
                for (o, per) in values.iter().enumerate() {
                    for (g, v) in per.iter().enumerate() {
                        // dst[r][o][..] (+)= s[r, block g] · v
                        crate::matmul_strided(rows, cv, sizes[g], &mut dst[o * cv..], objects * cv, &s[offsets[g]..], n, 1, v, cv, 1, g > 0);
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
                for (per, acc) in values.iter().zip(dst[r * objects * cv..(r + 1) * objects * cv].chunks_mut(cv)) {
                    for &(w, i) in &best {
                        let (g, at) = place[i];
                        let w = w / total;
                        let v = &per[g as usize][at as usize * cv..(at as usize + 1) * cv];
                        acc.iter_mut().zip(v).for_each(|(a, &x)| *a += w * x);
                    }
                }
            }
        });
        if objects == 1 {
            return rows_out;
        }
        // [M][K][C_v] → [K][M][C_v]: whole rows of C_v moved.
        out.par_chunks_mut(m * cv).enumerate().for_each(|(o, dst)| {
            for (j, row) in dst.chunks_mut(cv).enumerate() {
                row.copy_from_slice(&rows_out[(j * objects + o) * cv..][..cv]);
            }
        });
        out
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

    /// Dense float64 reference on joined position-major operands: affinity, top-k by sorting,
    /// softmax, readout `[K][M][C_v]`.
    #[allow(clippy::too_many_arguments)]
    fn reference(keys: &[f32], values: &[Vec<f32>], query: &[f32], ck: usize, cv: usize, top: usize, affinity: Affinity) -> Vec<f64> {
        let (n, m, objects) = (keys.len() / ck, query.len() / ck, values.len());
        let mut out = vec![0.0f64; objects * m * cv];
        for j in 0..m {
            let mut a: Vec<(f64, usize)> = (0..n)
                .map(|i| {
                    let dot: f64 = (0..ck).map(|c| keys[i * ck + c] as f64 * query[j * ck + c] as f64).sum();
                    let sq: f64 = (0..ck).map(|c| (keys[i * ck + c] as f64).powi(2)).sum();
                    let v = match affinity {
                        Affinity::Dot => dot,
                        Affinity::L2 => 2.0 * dot - sq,
                    };
                    (v / (ck as f64).sqrt(), i)
                })
                .collect();
            a.sort_by(|x, y| y.0.total_cmp(&x.0));
            a.truncate(top.min(n));
            let max = a[0].0;
            let total: f64 = a.iter().map(|x| (x.0 - max).exp()).sum();
            for (o, v) in values.iter().enumerate() {
                for c in 0..cv {
                    out[(o * m + j) * cv + c] = a.iter().map(|&(s, i)| (s - max).exp() / total * v[i * cv + c] as f64).sum();
                }
            }
        }
        out
    }

    #[test]
    fn matches_a_dense_reference() {
        // top ≥ N: the full softmax by products. Memory split into frames of unequal sizes.
        for (affinity, top, sizes, objects) in [(Affinity::L2, 5, vec![70], 2), (Affinity::Dot, 3, vec![25, 15], 1), (Affinity::L2, 100, vec![10, 7, 13], 3), (Affinity::Dot, 33, vec![33], 2), (Affinity::Dot, 1, vec![1, 32], 2), (Affinity::L2, 40, vec![20, 20], 2)] {
            let (ck, m, cv) = (8, 45, 6);
            let n: usize = sizes.iter().sum();
            let (keys, query) = (values(ck * n, 1), values(ck * m, 3));
            let vals: Vec<Vec<f32>> = (0..objects).map(|o| values(n * cv, 2 + o as u64 * 7)).collect();
            let blocks: Vec<(usize, usize)> = sizes.iter().scan(0, |at, &s| Some((std::mem::replace(at, *at + s), s))).collect();
            let key_blocks: Vec<&[f32]> = blocks.iter().map(|&(a, s)| &keys[a * ck..(a + s) * ck]).collect();
            let value_blocks: Vec<Vec<&[f32]>> = vals.iter().map(|v| blocks.iter().map(|&(a, s)| &v[a * cv..(a + s) * cv]).collect()).collect();
            let r = TopKRead { keys: &key_blocks, values: &value_blocks, query: &query, ck, cv, top, affinity };
            assert_eq!(r.positions(), n);
            let got = r.run();
            let want = reference(&keys, &vals, &query, ck, cv, top, affinity);
            assert_eq!(got.len(), want.len());
            let worst = got.iter().zip(&want).map(|(&g, &w)| (g as f64 - w).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-5, "{affinity:?} top {top} of {sizes:?}: worst error {worst}");
        }
    }

    #[test]
    fn selection_keeps_the_largest_in_order() {
        let mut best = Vec::new();
        select_top(&[0.5, f32::NAN, 3.0, -1.0, 3.0, 2.0], 3, &mut best);
        assert_eq!(best, vec![(3.0, 2), (3.0, 4), (2.0, 5)]);
    }
}
