//! Weight precision: float32, or bfloat16.
//!
//! bfloat16 keeps float32's 8-bit exponent and the top 7 bits of its mantissa, so a value
//! converts to float32 by a 16-bit shift. [`Precision::Bf16`] stores every packed weight so (half
//! the memory and half the bytes each frame reads). How its products run depends on the CPU
//! ([`bf16_products`] says which):
//!
//! - with AMX-BF16 or AVX-512 BF16, [`crate::bf16`]'s kernels round the activations to bfloat16
//!   as well and multiply pairs (`tdpbf16ps` on tiles, `vdpbf16ps` on vectors), summing in
//!   float32;
//! - elsewhere, blocks of rows of the weights are widened to float32 just before each matrix
//!   product, which multiplies and accumulates float32 activations in float32: the only change
//!   from fp32 is then the weights' rounding (relative error ≤ 2⁻⁹).
//!
//! Everything but the matrix products (Winograd transforms, resizing, the memory read) stays
//! float32 on both paths. [`bf16_hardware`] names the CPU's bfloat16 instructions.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How packed weights are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 (the default).
    #[default]
    Fp32,
    /// bfloat16 weights; bfloat16 products where the CPU has them (see the module doc).
    Bf16,
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            _ => Err(format!("precision {s}: expected fp32 or bf16")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        })
    }
}

/// The CPU's bfloat16 instructions, if any: "AMX-BF16", "AVX-512 BF16", or `None`.
pub fn bf16_hardware() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID leaf 7, sub-leaf 0, EDX bit 22: AMX-BF16 (its detection macro is not stable).
        #[allow(unused_unsafe)]
        // SAFETY: CPUID leaf 7 exists on every x86-64 CPU that reports a maximum leaf ≥ 7,
        // checked first; it only reads identification registers.
        let amx = unsafe { std::arch::x86_64::__cpuid(0).eax >= 7 && (std::arch::x86_64::__cpuid_count(7, 0).edx >> 22) & 1 == 1 };
        if amx {
            return Some("AMX-BF16");
        }
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            return Some("AVX-512 BF16");
        }
    }
    None
}

/// `x` rounded to the nearest bfloat16 (ties to even); NaN stays NaN.
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// A bfloat16 widened to float32 (exact).
#[inline]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Packed weights in their storage precision: `count` matrices of `k × n` one after the other,
/// float32 row-major or bfloat16 as pairs of rows ([`crate::bf16`]'s layout, each matrix's
/// pairs contiguous, an odd `k` padded with a zero row).
#[derive(Clone, Debug)]
pub(crate) struct Weights {
    k: usize,
    n: usize,
    store: Store,
}

#[derive(Clone, Debug)]
enum Store {
    Fp32(Vec<f32>),
    Bf16(Lined<u16>),
}

/// Values whose first lies on a cache line where the allocation put it: the bfloat16 kernels
/// load weights 64 bytes at a time (a row of an AMX tile, a zmm register), and from a
/// 16-byte-aligned allocation each load spanned two lines. (Float32 weights stay where they
/// were made: `gemm` packs them, and copying them at load time raised the peak memory.) A
/// clone keeps the values, not the alignment.
#[derive(Clone, Debug)]
struct Lined<T> {
    buf: Vec<T>,
    start: usize,
}

impl<T: Copy + Default> Lined<T> {
    /// `len` values.
    fn new(values: impl IntoIterator<Item = T>, len: usize) -> Self {
        let line = 64 / std::mem::size_of::<T>();
        let mut buf: Vec<T> = Vec::with_capacity(len + line);
        let start = buf.as_ptr().align_offset(64).min(line);
        buf.resize(start, T::default());
        buf.extend(values);
        Lined { buf, start }
    }

    fn get(&self) -> &[T] {
        &self.buf[self.start..]
    }
}

/// Row-major `k × n` float32 matrices `w` rounded to bfloat16 and stored as pairs of rows.
fn paired(w: &[f32], k: usize, n: usize) -> Lined<u16> {
    if k * n == 0 {
        return Lined::new([], 0);
    }
    let len = w.len() / (k * n) * crate::bf16::paired_len(k, n);
    let pairs = w.chunks(k * n).flat_map(|m| {
        let rows: Vec<u16> = m.iter().map(|&v| to_bf16(v)).collect();
        crate::bf16::pack_pairs(&rows, k, n)
    });
    Lined::new(pairs, len)
}

impl Weights {
    /// `w` holds row-major `k × n` matrices, one after the other.
    pub(crate) fn new(w: Vec<f32>, k: usize, n: usize, p: Precision) -> Self {
        assert!(k * n == 0 && w.is_empty() || k * n > 0 && w.len() % (k * n) == 0, "weights: whole k × n matrices");
        let store = match p {
            Precision::Fp32 => Store::Fp32(w),
            Precision::Bf16 => Store::Bf16(paired(&w, k, n)),
        };
        Weights { k, n, store }
    }

    pub(crate) fn precision(&self) -> Precision {
        match self.store {
            Store::Fp32(_) => Precision::Fp32,
            Store::Bf16(_) => Precision::Bf16,
        }
    }

    /// Elements one matrix takes in storage.
    fn stride(&self) -> usize {
        match self.store {
            Store::Fp32(_) => self.k * self.n,
            Store::Bf16(_) => crate::bf16::paired_len(self.k, self.n),
        }
    }

    /// As `p` (itself when it already is; float32 from bfloat16 does not undo the rounding).
    pub(crate) fn into_precision(self, p: Precision) -> Self {
        let (k, n) = (self.k, self.n);
        let store = match (self.store, p) {
            (Store::Bf16(_), Precision::Fp32) if k * n == 0 => Store::Fp32(Vec::new()),
            (Store::Fp32(w), Precision::Bf16) => Store::Bf16(paired(&w, k, n)),
            (Store::Bf16(h), Precision::Fp32) => {
                let h = h.get();
                let mut out = Vec::with_capacity(h.len() / crate::bf16::paired_len(k, n) * k * n);
                for m in h.chunks(crate::bf16::paired_len(k, n)) {
                    out.extend((0..k * n).map(|i| from_bf16(crate::bf16::paired_at(m, k, i / n, i % n))));
                }
                Store::Fp32(out)
            }
            (same, _) => same,
        };
        Weights { k, n, store }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        match &self.store {
            Store::Fp32(w) => 4 * w.len(),
            Store::Bf16(h) => 2 * h.get().len(),
        }
    }

    /// Matrix `e`.
    pub(crate) fn matrix(&self, e: usize) -> WeightsRef<'_> {
        let range = e * self.stride()..(e + 1) * self.stride();
        match &self.store {
            Store::Fp32(w) => WeightsRef::Fp32(&w[range]),
            Store::Bf16(h) => WeightsRef::Bf16(&h.get()[range]),
        }
    }

    /// The whole storage (one matrix, or none).
    pub(crate) fn all(&self) -> WeightsRef<'_> {
        match &self.store {
            Store::Fp32(w) => WeightsRef::Fp32(w),
            Store::Bf16(h) => WeightsRef::Bf16(h.get()),
        }
    }
}

/// A borrowed matrix of [`Weights`] (bfloat16 as pairs of rows).
#[derive(Clone, Copy, Debug)]
pub(crate) enum WeightsRef<'a> {
    Fp32(&'a [f32]),
    Bf16(&'a [u16]),
}

/// Rows of a bfloat16 right-hand side widened at a time: at most this many values (256 KB of
/// float32), so the widened block stays in the core's L2 cache while the product reads it.
const WIDEN_VALUES: usize = 1 << 16;

/// `dst = lhs · rhs` (`m × k` by `k × n`, row-major; `lhs`'s rows `lda ≥ k` values apart, the
/// others contiguous), single-threaded, with `rhs` in either precision. A bfloat16 `rhs` runs [`crate::bf16`]'s kernels where the CPU has AMX or
/// AVX-512 BF16 (activations rounded to bfloat16 too); elsewhere it is widened a block of rows at
/// a time and the blocks' products accumulated in float32 (activations stay float32).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_w(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], lda: usize, rhs: WeightsRef<'_>) {
    match rhs {
        WeightsRef::Fp32(r) => crate::matmul_cols(m, n, k, dst, lhs, lda, r, false),
        WeightsRef::Bf16(r) => {
            if crate::bf16::matmul(m, n, k, dst, lhs, lda, r) {
                return;
            }
            widened_matmul(m, n, k, dst, lhs, lda, r);
        }
    }
}

/// [`matmul_w`]'s path without bfloat16 arithmetic: the paired `rhs` widened to float32 a block
/// of rows at a time.
pub(crate) fn widened_matmul(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], lda: usize, r: &[u16]) {
    assert!(r.len() >= crate::bf16::paired_len(k, n), "matmul operands");
    if m == 0 || n == 0 || k == 0 {
        // Nothing to widen: the empty product's zeros, as the float32 path writes them.
        return crate::matmul(m, n, 0, dst, lhs, &[]);
    }
    // Whole pairs of rows per block.
    let rows = ((WIDEN_VALUES / n) & !1).clamp(2, k.div_ceil(2) * 2);
    WIDENED.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.resize(rows * n, 0.0);
        for k0 in (0..k).step_by(rows) {
            let kb = rows.min(k - k0);
            // k0 is even: each stored row of pairs of a panel (16 columns) widens into two rows
            // of the block.
            for t in 0..kb.div_ceil(2) {
                for (p, cols) in (0..n).step_by(16).enumerate() {
                    for (j, pair) in crate::bf16::panel_row(r, k, p, k0 / 2 + t).chunks_exact(2).take(16.min(n - cols)).enumerate() {
                        buf[2 * t * n + cols + j] = from_bf16(pair[0]);
                        if 2 * t + 1 < kb {
                            buf[(2 * t + 1) * n + cols + j] = from_bf16(pair[1]);
                        }
                    }
                }
            }
            crate::matmul_cols(m, n, kb, dst, &lhs[k0..], lda, &buf[..kb * n], k0 > 0);
        }
    });
}

/// Whether `--precision bf16` multiplies in bfloat16 here (AMX or AVX-512 BF16, not turned off);
/// otherwise it widens the weights to float32.
pub fn bf16_arithmetic() -> bool {
    crate::bf16::kernel().is_some()
}

/// What `--precision bf16` multiplies with on this CPU.
pub fn bf16_products() -> &'static str {
    match crate::bf16::kernel() {
        Some(crate::bf16::Kernel::Amx) => "AMX-BF16 (tdpbf16ps): bfloat16 weights and activations, float32 sums",
        Some(crate::bf16::Kernel::Avx512) => "AVX-512 BF16 (vdpbf16ps): bfloat16 weights and activations, float32 sums",
        None if crate::bf16::turned_off() => "float32 (MEMVOS_BF16_ARITHMETIC=off): bfloat16 weights widened, float32 activations",
        None => "float32 (no AVX-512 BF16 or AMX on this CPU): bfloat16 weights widened, float32 activations",
    }
}

thread_local! {
    /// Each thread's widened block of a bfloat16 right-hand side.
    static WIDENED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(from_bf16(to_bf16(1.0)), 1.0);
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: to the even one (1).
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        for i in 0..10_000 {
            let x = ((i as f32) * 0.7311).sin() * 10f32.powi(i % 7 - 3);
            let e = (from_bf16(to_bf16(x)) - x).abs();
            assert!(e <= x.abs() / 256.0, "{x}: {e}");
        }
    }

    #[test]
    fn bf16_product_is_the_product_of_rounded_weights() {
        // k spans several widened blocks (n = 600: 109 rows a block).
        let (m, n, k) = (5, 600, 300);
        let lhs: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let rhs: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 97.0).collect();
        let w = Weights::new(rhs.clone(), k, n, Precision::Bf16);
        let round = |v: &[f32]| -> Vec<f32> { v.iter().map(|&v| from_bf16(to_bf16(v))).collect() };
        let rounded = round(&rhs);
        // Both paths against the product of their rounded operands: the widening keeps the
        // activations float32; the AVX-512 BF16 kernel rounds them too.
        let mut want = vec![0.0; m * n];
        crate::matmul(m, n, k, &mut want, &lhs, &rounded);
        let mut got = vec![7.0; m * n];
        widened_matmul(m, n, k, &mut got, &lhs, k, match w.all() {
            WeightsRef::Bf16(r) => r,
            WeightsRef::Fp32(_) => unreachable!("stored as bf16"),
        });
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "widened: {g} vs {w}");
        }
        if crate::bf16::kernel().is_some() {
            crate::matmul(m, n, k, &mut want, &round(&lhs), &rounded);
        }
        matmul_w(m, n, k, &mut got, &lhs, k, w.all());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{}: {g} vs {w}", bf16_products());
        }
        // Two bytes a weight; rows padded to 32 and columns to 16 for whole tiles.
        assert_eq!(w.bytes(), 2 * 320 * 608);
        let back = w.into_precision(Precision::Fp32);
        assert_eq!(back.bytes(), 4 * k * n);
        assert!(matches!(back.all(), WeightsRef::Fp32(r) if r == &rounded[..]), "widening back gives the rounded weights");
    }
}
