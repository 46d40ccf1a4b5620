//! Weight precision: float32, or bfloat16 storage with float32 products.
//!
//! bfloat16 keeps float32's 8-bit exponent and the top 7 bits of its mantissa, so a weight
//! converts to float32 by a 16-bit shift. [`Precision::Bf16`] stores every packed weight so (half
//! the memory and half the bytes each frame reads) and widens blocks of rows to float32 just
//! before each matrix product, which then multiplies and accumulates in float32 as before: the
//! only change to the result is the weights' rounding (relative error ≤ 2⁻⁹). Activations stay
//! float32.
//!
//! This CPU has no bfloat16 arithmetic unless it has AVX-512 BF16 or AMX ([`bf16_hardware`]
//! says which); the widening runs on every x86-64 and ARM CPU, so the results are the same
//! everywhere.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How packed weights are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 (the default).
    #[default]
    Fp32,
    /// bfloat16 storage, float32 products.
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

/// Packed weights in their storage precision.
#[derive(Clone, Debug)]
pub(crate) enum Weights {
    Fp32(Vec<f32>),
    Bf16(Vec<u16>),
}

impl Weights {
    pub(crate) fn new(w: Vec<f32>, p: Precision) -> Self {
        match p {
            Precision::Fp32 => Weights::Fp32(w),
            Precision::Bf16 => Weights::Bf16(w.iter().map(|&v| to_bf16(v)).collect()),
        }
    }

    pub(crate) fn precision(&self) -> Precision {
        match self {
            Weights::Fp32(_) => Precision::Fp32,
            Weights::Bf16(_) => Precision::Bf16,
        }
    }

    /// As `p` (itself when it already is; float32 from bfloat16 does not undo the rounding).
    pub(crate) fn into_precision(self, p: Precision) -> Self {
        match (self, p) {
            (Weights::Fp32(w), Precision::Bf16) => Weights::new(w, p),
            (Weights::Bf16(h), Precision::Fp32) => Weights::Fp32(h.iter().map(|&v| from_bf16(v)).collect()),
            (same, _) => same,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Weights::Fp32(w) => w.len(),
            Weights::Bf16(h) => h.len(),
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Weights::Fp32(w) => 4 * w.len(),
            Weights::Bf16(h) => 2 * h.len(),
        }
    }

    /// Elements `range` as a view of the same storage.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> WeightsRef<'_> {
        match self {
            Weights::Fp32(w) => WeightsRef::Fp32(&w[range]),
            Weights::Bf16(h) => WeightsRef::Bf16(&h[range]),
        }
    }

    pub(crate) fn all(&self) -> WeightsRef<'_> {
        self.slice(0..self.len())
    }
}

/// A borrowed block of [`Weights`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum WeightsRef<'a> {
    Fp32(&'a [f32]),
    Bf16(&'a [u16]),
}

/// Rows of a bfloat16 right-hand side widened at a time: at most this many values (256 KB of
/// float32), so the widened block stays in the core's L2 cache while the product reads it.
const WIDEN_VALUES: usize = 1 << 16;

/// `dst = lhs · rhs` (`m × k` by `k × n`, row-major, contiguous), single-threaded, with `rhs` in
/// either precision: a bfloat16 `rhs` is widened a block of rows at a time and the blocks'
/// products accumulated in float32.
pub(crate) fn matmul_w(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], rhs: WeightsRef<'_>) {
    match rhs {
        WeightsRef::Fp32(r) => crate::matmul(m, n, k, dst, lhs, r),
        WeightsRef::Bf16(r) => {
            assert!(r.len() >= k * n, "matmul operands");
            if m == 0 || n == 0 || k == 0 {
                // Nothing to widen: the empty product's zeros, as the float32 path writes them.
                return crate::matmul(m, n, 0, dst, lhs, &[]);
            }
            let rows = (WIDEN_VALUES / n).clamp(1, k);
            WIDENED.with(|cell| {
                let mut buf = cell.borrow_mut();
                buf.resize(rows * n, 0.0);
                for k0 in (0..k).step_by(rows) {
                    let kb = rows.min(k - k0);
                    buf[..kb * n].iter_mut().zip(&r[k0 * n..(k0 + kb) * n]).for_each(|(o, &h)| *o = from_bf16(h));
                    crate::matmul_cols(m, n, kb, dst, &lhs[k0..], k, &buf[..kb * n], k0 > 0);
                }
            });
        }
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
        let w = Weights::new(rhs.clone(), Precision::Bf16);
        let rounded: Vec<f32> = rhs.iter().map(|&v| from_bf16(to_bf16(v))).collect();
        let mut want = vec![0.0; m * n];
        crate::matmul(m, n, k, &mut want, &lhs, &rounded);
        let mut got = vec![7.0; m * n];
        matmul_w(m, n, k, &mut got, &lhs, w.all());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
        }
        assert_eq!(w.bytes(), 2 * k * n);
        assert_eq!(w.into_precision(Precision::Fp32).bytes(), 4 * k * n);
    }
}
