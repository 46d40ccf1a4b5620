//! bfloat16 matrix products: `dst = bf16(lhs) · rhs` with float32 sums, on AMX or AVX-512 BF16.
//!
//! The right-hand side (the weights) is stored as pairs of rows in panels of 16 columns
//! ([`pack_pairs`]): element `(r, j)` of a `k × n` matrix at `((j / 16)·k' + r / 2)·32 +
//! (j % 16)·2 + r % 2`, with `k` padded with zeros to `2k'`, a multiple of 32, and `n` to a
//! multiple of 16. A row of a panel (16 columns of two rows, 64 bytes) is one load for AVX-512
//! BF16, and 16 of them in a row are AMX's `B` tile of `tdpbf16ps`, contiguous (1 KiB): a
//! product's tiles of weights are read in order and sit in distinct cache sets. The left-hand
//! side (activations) is rounded to bfloat16 (to nearest, ties to even; `vcvtne2ps2bf16`) a
//! block of rows at a time as it is read.
//!
//! - **AMX** (`tdpbf16ps`; Sapphire Rapids and later Xeons): tiles of 32 rows × 32 columns held
//!   in four accumulator tiles, depth 32 per instruction. The tile instructions are written as
//!   inline assembly (their intrinsics are not in stable Rust), and Linux must grant the
//!   process the tile state first (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), asked once.
//! - **AVX-512 BF16** (`vdpbf16ps`): tiles of 8 rows × 32 columns in 16 zmm accumulators.
//!
//! [`kernel`] picks the first the CPU (and the OS) allows; without either, [`crate::precision`]
//! widens the weights to float32 and keeps the activations float32.

use crate::precision::to_bf16;

/// Pair rows of a `k`-row matrix in storage: `k` rounded up to 32 (whole AMX tiles of depth).
pub(crate) fn pair_rows(k: usize) -> usize {
    k.div_ceil(32) * 16
}

/// Columns of an `n`-column matrix in storage: rounded up to 16 (whole 64-byte rows of pairs).
fn padded_cols(n: usize) -> usize {
    n.div_ceil(16) * 16
}

/// Elements a `k × n` matrix takes as pairs of rows (padded with zeros to whole tiles).
pub(crate) fn paired_len(k: usize, n: usize) -> usize {
    pair_rows(k) * padded_cols(n) * 2
}

/// A row-major `k × n` bfloat16 matrix as pairs of rows in panels of 16 columns, zero-padded
/// ([`paired_len`]).
pub(crate) fn pack_pairs(rows: &[u16], k: usize, n: usize) -> Vec<u16> {
    let mut out = vec![0u16; paired_len(k, n)];
    for r in 0..k {
        for j in 0..n {
            out[paired_index(k, r, j)] = rows[r * n + j];
        }
    }
    out
}

/// Where element `(r, j)` of a paired `k × ·` matrix lies.
#[inline]
fn paired_index(k: usize, r: usize, j: usize) -> usize {
    ((j / 16 * pair_rows(k) + r / 2) * 16 + j % 16) * 2 + r % 2
}

/// Pair row `t` of panel `p` (columns `16p..16p + 16`) of a paired `k × ·` matrix: 16 pairs.
#[inline]
pub(crate) fn panel_row(pairs: &[u16], k: usize, p: usize, t: usize) -> &[u16] {
    &pairs[(p * pair_rows(k) + t) * 32..][..32]
}

/// Element `(r, j)` of a paired `k × ·` matrix.
#[inline]
pub(crate) fn paired_at(pairs: &[u16], k: usize, r: usize, j: usize) -> u16 {
    pairs[paired_index(k, r, j)]
}

/// The bfloat16 arithmetic a product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AMX tiles (`tdpbf16ps`).
    Amx,
    /// AVX-512 BF16 (`vdpbf16ps`).
    Avx512,
}

impl Kernel {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "AMX-BF16 (tdpbf16ps)",
            Kernel::Avx512 => "AVX-512 BF16 (vdpbf16ps)",
        }
    }
}

/// Set to `off` in the environment, [`ARITHMETIC_VAR`] keeps bfloat16 weights on the widening
/// path on any CPU (activations float32: the same results on every machine).
pub const ARITHMETIC_VAR: &str = "MEMVOS_BF16_ARITHMETIC";

/// Whether [`ARITHMETIC_VAR`] turns the bfloat16 arithmetic off (read once).
pub(crate) fn turned_off() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| std::env::var(ARITHMETIC_VAR).is_ok_and(|v| v.eq_ignore_ascii_case("off")))
}

/// The kernel this CPU runs, detected once: AMX when the CPU has AMX-BF16 and AVX-512 BF16 and
/// Linux grants the tile state, else AVX-512 BF16 when present, else none (also when
/// [`ARITHMETIC_VAR`] is `off`).
pub(crate) fn kernel() -> Option<Kernel> {
    if turned_off() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        static KERNEL: std::sync::OnceLock<Option<Kernel>> = std::sync::OnceLock::new();
        *KERNEL.get_or_init(|| {
            let avx512 = std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16");
            if avx512 && amx::request() {
                Some(Kernel::Amx)
            } else if avx512 {
                Some(Kernel::Avx512)
            } else {
                None
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// `dst = bf16(lhs) · rhs` (`m × k` row-major, rows `lda ≥ k` values apart, by the paired
/// `k × n` `rhs`), single-threaded, on [`kernel`]'s arithmetic; `false` (nothing written) when
/// there is none.
pub(crate) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], lda: usize, rhs: &[u16]) -> bool {
    match kernel() {
        Some(kernel) => {
            matmul_on(kernel, m, n, k, dst, lhs, lda, rhs);
            true
        }
        None => false,
    }
}

/// [`matmul`] on a given kernel, which this CPU must run ([`kernel`] returned it or AMX's
/// fallback).
///
/// # Panics
/// When the operands are smaller than the shapes say, or the kernel is not this CPU's.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_on(kernel: Kernel, m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], lda: usize, rhs: &[u16]) {
    assert!(dst.len() >= m * n && k <= lda && (m == 0 || lhs.len() >= (m - 1) * lda + k) && rhs.len() >= paired_len(k, n), "bf16 matmul operands");
    let ours = self::kernel();
    assert!(ours == Some(kernel) || (kernel == Kernel::Avx512 && ours == Some(Kernel::Amx)), "{} does not run on this CPU", kernel.name());
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `kernel()` checked the CPU (and for AMX the OS grant); the operand sizes are
    // asserted above.
    unsafe { run(kernel, m, n, k, dst, Lhs::Floats(lhs, lda), rhs) };
}

/// `kernel`'s product on `lhs`, with this thread's block buffer for the rounded rows.
///
/// # Safety
/// The CPU runs `kernel` ([`kernel`] returned it, or AMX's fallback), and the operands hold
/// what the shapes say (the callers assert it).
#[allow(clippy::too_many_arguments)]
unsafe fn run(kernel: Kernel, m: usize, n: usize, k: usize, dst: &mut [f32], lhs: Lhs<'_>, rhs: &[u16]) {
    #[cfg(target_arch = "x86_64")]
    ROWS.with(|cell| {
        let mut a = cell.borrow_mut();
        // SAFETY: the caller's contract.
        unsafe {
            match kernel {
                Kernel::Amx => amx::matmul(m, n, k, dst, lhs, rhs, &mut a),
                Kernel::Avx512 => avx512::matmul(m, n, k, dst, lhs, rhs, &mut a),
            }
        }
    });
}

/// A product's left-hand side: float32 rows (`lda` apart), rounded block by block as they are
/// read, or rows already rounded to pairs ([`round_rows_into`]; `stride` pairs apart, the first
/// [`pair_rows`]`(k)` of each used).
#[derive(Clone, Copy)]
pub(crate) enum Lhs<'a> {
    Floats(&'a [f32], usize),
    Pairs(&'a [u32], usize),
}

/// `dst = a · rhs` with `a`'s `m` rows already rounded to bfloat16 pairs (`stride` pairs apart;
/// rows up to the next multiple of 32 must exist — AMX loads whole tiles — but their values
/// do not matter), single-threaded; `false` (nothing written) without bfloat16 arithmetic.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_pairs(m: usize, n: usize, k: usize, dst: &mut [f32], a: &[u32], stride: usize, rhs: &[u16]) -> bool {
    let Some(kernel) = kernel() else { return false };
    let kh = pair_rows(k);
    assert!(dst.len() >= m * n && kh <= stride && (m == 0 || a.len() >= (m.div_ceil(32) * 32 - 1) * stride + kh) && rhs.len() >= paired_len(k, n), "bf16 matmul operands");
    if m == 0 || n == 0 {
        return true;
    }
    // SAFETY: `kernel()` checked the CPU (and for AMX the OS grant); the operand sizes are
    // asserted above.
    unsafe { run(kernel, m, n, k, dst, Lhs::Pairs(a, stride), rhs) };
    true
}

/// `rows` rows of `k` float32 values (`lda` apart) rounded to bfloat16 pairs into `out`
/// (`stride ≥` [`pair_rows`]`(k)` pairs apart, pairs past `⌈k/2⌉` zero), as the products round
/// their left-hand side; `false` (nothing written) without bfloat16 arithmetic.
pub(crate) fn round_rows_into(src: &[f32], rows: usize, k: usize, lda: usize, out: &mut [u32], stride: usize) -> bool {
    if kernel().is_none() {
        return false;
    }
    assert!(k <= lda && (rows == 0 || src.len() >= (rows - 1) * lda + k) && pair_rows(k) <= stride && out.len() >= rows * stride, "bf16 rounding operands");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `kernel()` found AVX-512 F and BF16; the sizes are asserted above.
    unsafe {
        rounding::round_rows(src, rows, k, lda, out, stride)
    };
    true
}

thread_local! {
    /// Each thread's block of left-hand rows rounded to bfloat16 pairs.
    static ROWS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rows of the left-hand side rounded at a time (their pairs stay in L2 while every column
/// panel reads them).
const BLOCK_ROWS: usize = 128;

#[cfg(target_arch = "x86_64")]
mod rounding {
    use std::arch::x86_64::*;

    use super::to_bf16;

    /// `rows` rows of `k` float32 values (`lda` apart) as rows of `stride` bfloat16 pairs, the
    /// pairs past `⌈k/2⌉` zero.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn round_rows(src: &[f32], rows: usize, k: usize, lda: usize, out: &mut [u32], stride: usize) {
        for r in 0..rows {
            // SAFETY: AVX-512 F and BF16 are enabled here (the caller's contract).
            unsafe { round_row(&src[r * lda..r * lda + k], &mut out[r * stride..(r + 1) * stride]) };
        }
    }

    /// One row: 32 values at a time by `vcvtne2ps2bf16` (to nearest even, as [`to_bf16`] does;
    /// denormals count as zero), the rest one pair at a time, then zeros.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn round_row(src: &[f32], out: &mut [u32]) {
        let full = src.len() / 32;
        for c in 0..full {
            // SAFETY: 32 values from 32·c are in `src`; 16 pairs from 16·c are in `out` (it holds
            // at least ⌈len/2⌉ pairs).
            unsafe {
                let lo = _mm512_loadu_ps(src.as_ptr().add(32 * c));
                let hi = _mm512_loadu_ps(src.as_ptr().add(32 * c + 16));
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(out.as_mut_ptr().add(16 * c) as *mut __m512i, v);
            }
        }
        let half = src.len().div_ceil(2);
        for (t, o) in out.iter_mut().enumerate().skip(16 * full) {
            *o = if t < half {
                let hi = src.get(2 * t + 1).copied().unwrap_or(0.0);
                to_bf16(src[2 * t]) as u32 | (to_bf16(hi) as u32) << 16
            } else {
                0
            };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{BLOCK_ROWS, Lhs, pair_rows, rounding::round_rows};

    /// Rows per register tile.
    const MR: usize = 8;

    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: Lhs<'_>, rhs: &[u16], a: &mut Vec<u32>) {
        let kh = pair_rows(k);
        if let Lhs::Floats(..) = lhs {
            a.resize(BLOCK_ROWS.min(m) * kh, 0);
        }
        // Elements (in pairs) from one panel of 16 columns to the next.
        let panel = kh * 16;
        let b = rhs.as_ptr() as *const i32;
        for i0 in (0..m).step_by(BLOCK_ROWS) {
            let rows = BLOCK_ROWS.min(m - i0);
            // The block's rounded rows and their stride in pairs.
            let (a, kh_stride) = match lhs {
                Lhs::Floats(l, lda) => {
                    // SAFETY: AVX-512 F and BF16 are enabled here (the caller's contract).
                    unsafe { round_rows(&l[i0 * lda..], rows, k, lda, a, kh) };
                    (&a[..], kh)
                }
                Lhs::Pairs(p, stride) => (&p[i0 * stride..], stride),
            };
            for j0 in (0..n).step_by(32) {
                let cols = 32.min(n - j0);
                let (m0, m1) = (mask(cols.min(16)), mask(cols.saturating_sub(16)));
                let bj = b.wrapping_add(j0 / 16 * panel);
                let mut r = 0;
                while r < rows {
                    let ap = a[r * kh_stride..].as_ptr();
                    let dp = dst[(i0 + r) * n + j0..].as_mut_ptr();
                    // SAFETY: rows r.. of the rounded block (kh pairs each), columns j0..j0+cols
                    // of `rhs` (the panels from j0 / 16, kh pair rows each) and of `dst` rows
                    // i0+r.. (n each), all in bounds; the masks cover only the `cols` columns
                    // that exist.
                    unsafe {
                        match rows - r {
                            8.. => tile::<MR>(kh, kh_stride, ap, bj, panel, n, m0, m1, dp),
                            7 => tile::<7>(kh, kh_stride, ap, bj, panel, n, m0, m1, dp),
                            6 => tile::<6>(kh, kh_stride, ap, bj, panel, n, m0, m1, dp),
                            5 => tile::<5>(kh, kh_stride, ap, bj, panel, n, m0, m1, dp),
                            4 => tile::<4>(kh, kh_stride, ap, bj, panel, n, m0, m1, dp),
                            3 => tile::<3>(kh, kh_stride, ap, bj, panel, n, m0, m1, dp),
                            2 => tile::<2>(kh, kh_stride, ap, bj, panel, n, m0, m1, dp),
                            _ => tile::<1>(kh, kh_stride, ap, bj, panel, n, m0, m1, dp),
                        }
                    }
                    r += MR.min(rows - r);
                }
            }
        }
    }

    fn mask(lanes: usize) -> __mmask16 {
        if lanes >= 16 { 0xffff } else { ((1u32 << lanes) - 1) as __mmask16 }
    }

    /// `dst[R × 32] = a[R × kh pairs] · b[kh pairs × 32]` (`a`'s rows `stride` pairs apart; `b`
    /// two panels of 16 columns, `panel` pairs apart), the columns masked by `m0`, `m1`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize>(kh: usize, stride: usize, a: *const u32, b: *const i32, panel: usize, n: usize, m0: __mmask16, m1: __mmask16, dst: *mut f32) {
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        for t in 0..kh {
            // SAFETY (whole block): the caller's bounds; masked-off lanes are neither read nor
            // written, and their addresses are formed with wrapping arithmetic.
            unsafe {
                let row = b.wrapping_add(t * 16);
                let b0: __m512bh = std::mem::transmute(_mm512_maskz_loadu_epi32(m0, row));
                let b1: __m512bh = std::mem::transmute(_mm512_maskz_loadu_epi32(m1, row.wrapping_add(panel)));
                for r in 0..R {
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r * stride + t) as i32));
                    c0[r] = _mm512_dpbf16_ps(c0[r], av, b0);
                    c1[r] = _mm512_dpbf16_ps(c1[r], av, b1);
                }
            }
        }
        for r in 0..R {
            // SAFETY: as above.
            unsafe {
                _mm512_mask_storeu_ps(dst.add(r * n), m0, c0[r]);
                _mm512_mask_storeu_ps(dst.add(r * n).wrapping_add(16), m1, c1[r]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod amx {
    use std::arch::asm;

    use super::{BLOCK_ROWS, Lhs, padded_cols, pair_rows, rounding::round_rows};

    /// Asks Linux for the AMX tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM,
    /// XFEATURE_XTILEDATA)`) when the CPU reports AMX-TILE and AMX-BF16; whether it was granted.
    pub(super) fn request() -> bool {
        // CPUID leaf 7, sub-leaf 0, EDX bits 22 (AMX-BF16) and 24 (AMX-TILE).
        // SAFETY: CPUID only reads identification registers; leaf 7 is asked for only when the
        // CPU reports it.
        #[allow(unused_unsafe)]
        let cpu = unsafe {
            std::arch::x86_64::__cpuid(0).eax >= 7 && {
                let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
                (edx >> 22) & 1 == 1 && (edx >> 24) & 1 == 1
            }
        };
        if !cpu || !cfg!(target_os = "linux") {
            return false;
        }
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: the arch_prctl system call with a request that only changes this process's
        // permitted extended state; the registers the kernel clobbers are declared.
        unsafe {
            asm!("syscall", inlateout("rax") SYS_ARCH_PRCTL => ret, in("rdi") ARCH_REQ_XCOMP_PERM, in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret == 0
    }

    /// Values on whole cache lines.
    #[repr(C, align(64))]
    struct Lines<const N: usize>([f32; N]);

    /// Every tile 16 rows × 64 bytes (palette 1).
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    const CONFIG: Config = {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < 8 {
            c[16 + 2 * t] = 64;
            c[48 + t] = 16;
            t += 1;
        }
        Config(c)
    };

    /// Pair rows of the weights a product takes at a time (depth 256): the chunk's two panels'
    /// tiles (16 KiB) stay in L1 while each 32-row tile of the block reads them, the partial
    /// sums waiting in an accumulator block (16 KiB) between chunks.
    const KC: usize = 128;

    /// tmm0–3: the 32 × 32 float32 accumulators (rows 0–15 / 16–31 × columns 0–15 / 16–31);
    /// tmm4–5: two 16-row blocks of the left-hand side, 32 deep; tmm6–7: two 16-column blocks of
    /// the right-hand side (contiguous tiles of two panels).
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: Lhs<'_>, rhs: &[u16], a: &mut Vec<u32>) {
        let (kh, np) = (pair_rows(k), padded_cols(n));
        // The rounded block starts on a cache line (tile rows are 64 bytes: unaligned, each
        // would span two lines).
        let mut start = 0;
        if let Lhs::Floats(..) = lhs {
            // Rows rounded up to 32 so every tile load stays in the (zeroed) block.
            let block = BLOCK_ROWS.min(m.div_ceil(32) * 32);
            a.resize(block * kh + 16, 0);
            start = a.as_ptr().align_offset(64);
        }
        let a = &mut a[start..];
        let mut c = Lines([0.0f32; 4 * 256]);
        let c = &mut c.0;
        // The block's partial sums between chunks of depth: rows 32 floats (128 bytes) apart.
        let mut acc = Lines([0.0f32; BLOCK_ROWS * 32]);
        let acc = &mut acc.0;
        // SAFETY: AMX was granted (the caller's contract); CONFIG is a valid palette-1 config.
        unsafe { asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly)) };
        for i0 in (0..m).step_by(BLOCK_ROWS) {
            let rows = BLOCK_ROWS.min(m - i0);
            // The block's rounded rows (whole tiles of 32 rows readable) and their stride in pairs.
            let (a, kh_stride) = match lhs {
                Lhs::Floats(l, lda) => {
                    // SAFETY: AVX-512 F and BF16 are enabled here.
                    unsafe { round_rows(&l[i0 * lda..], rows, k, lda, a, kh) };
                    let padded = rows.div_ceil(32) * 32;
                    a[rows * kh..padded * kh].fill(0);
                    (&a[..], kh)
                }
                Lhs::Pairs(p, stride) => (&p[i0 * stride..], stride),
            };
            let astride = kh_stride * 4;
            for j0 in (0..np).step_by(32) {
                let two_cols = j0 + 16 < np;
                // The panels of columns j0.. and j0+16.. (the second only when it exists).
                let b0 = rhs[j0 / 16 * kh * 32..].as_ptr();
                let b1 = b0.wrapping_add(kh * 32);
                // One chunk at least: an empty product stores its zeros.
                for t0 in (0..kh.max(1)).step_by(KC) {
                    let t1 = (t0 + KC).min(kh);
                    for r0 in (0..rows).step_by(32) {
                        let two_rows = r0 + 16 < rows;
                        let sums = acc[r0 * 32..].as_mut_ptr();
                        // SAFETY: tile loads read 16 rows × 64 bytes: from the rounded block
                        // (rows r0..r0+32 < padded, pairs t..t+16 ≤ kh), from `rhs` (pair rows
                        // t..t+16 ≤ kh of panels j0 / 16 and, with two_cols, the next, which
                        // exist in storage) and from `acc` (rows r0..r0+32 ≤ BLOCK_ROWS); stores
                        // go to `acc`, to `dst` when the 32 × 32 block lies inside it (checked),
                        // else to `c`.
                        unsafe {
                            if t0 == 0 {
                                asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
                            } else {
                                asm!("tileloadd tmm0, [{c} + {s}*1]", "tileloadd tmm1, [{c1} + {s}*1]", "tileloadd tmm2, [{c2} + {s}*1]",
                                    "tileloadd tmm3, [{c3} + {s}*1]", c = in(reg) sums, c1 = in(reg) sums.add(16), c2 = in(reg) sums.add(512),
                                    c3 = in(reg) sums.add(528), s = in(reg) 128usize, options(nostack, readonly));
                            }
                            for t in (t0..t1).step_by(16) {
                                let ap = a.as_ptr().add(r0 * kh_stride + t);
                                asm!("tileloadd tmm4, [{a} + {sa}*1]", "tileloadd tmm6, [{b} + {sb}*1]", "tdpbf16ps tmm0, tmm4, tmm6",
                                    a = in(reg) ap, sa = in(reg) astride, b = in(reg) b0.add(t * 32), sb = in(reg) 64usize, options(nostack, readonly));
                                if two_cols {
                                    asm!("tileloadd tmm7, [{b} + {sb}*1]", "tdpbf16ps tmm1, tmm4, tmm7",
                                        b = in(reg) b1.add(t * 32), sb = in(reg) 64usize, options(nostack, readonly));
                                }
                                if two_rows {
                                    asm!("tileloadd tmm5, [{a} + {sa}*1]", "tdpbf16ps tmm2, tmm5, tmm6",
                                        a = in(reg) ap.add(16 * kh_stride), sa = in(reg) astride, options(nostack, readonly));
                                    if two_cols {
                                        asm!("tdpbf16ps tmm3, tmm5, tmm7", options(nostack, nomem));
                                    }
                                }
                            }
                            if t1 < kh {
                                asm!("tilestored [{c} + {s}*1], tmm0", "tilestored [{c1} + {s}*1], tmm1", "tilestored [{c2} + {s}*1], tmm2",
                                    "tilestored [{c3} + {s}*1], tmm3", c = in(reg) sums, c1 = in(reg) sums.add(16), c2 = in(reg) sums.add(512),
                                    c3 = in(reg) sums.add(528), s = in(reg) 128usize, options(nostack));
                                continue;
                            }
                            if r0 + 32 <= rows && j0 + 32 <= n {
                                // All four tiles inside `dst`: stored there, rows n values apart
                                // (rows i0+r0.., columns j0.. of dst, 32 × 32, in bounds).
                                let d = dst.as_mut_ptr().add((i0 + r0) * n + j0);
                                asm!("tilestored [{c} + {s}*1], tmm0", "tilestored [{c1} + {s}*1], tmm1", "tilestored [{c2} + {s}*1], tmm2",
                                    "tilestored [{c3} + {s}*1], tmm3", c = in(reg) d, c1 = in(reg) d.add(16),
                                    c2 = in(reg) d.add(16 * n), c3 = in(reg) d.add(16 * n + 16), s = in(reg) 4 * n, options(nostack));
                                continue;
                            }
                            asm!("tilestored [{c} + {s}*1], tmm0", "tilestored [{c1} + {s}*1], tmm1", "tilestored [{c2} + {s}*1], tmm2",
                                "tilestored [{c3} + {s}*1], tmm3", c = in(reg) c.as_mut_ptr(), c1 = in(reg) c.as_mut_ptr().add(256),
                                c2 = in(reg) c.as_mut_ptr().add(512), c3 = in(reg) c.as_mut_ptr().add(768), s = in(reg) 64usize, options(nostack));
                        }
                        // Tile (ri, ci) holds rows r0 + 16·ri.., columns j0 + 16·ci.. of the block.
                        for ri in 0..2 {
                            for ci in 0..2 {
                                let (r1, j1) = (r0 + 16 * ri, j0 + 16 * ci);
                                if r1 >= rows || j1 >= n {
                                    continue;
                                }
                                let cols = 16.min(n - j1);
                                let tile = &c[(2 * ri + ci) * 256..][..256];
                                for r in 0..16.min(rows - r1) {
                                    let row = &mut dst[(i0 + r1 + r) * n + j1..];
                                    if cols == 16 {
                                        // A whole row of the tile: one fixed-size copy, not a call.
                                        row[..16].copy_from_slice(&tile[r * 16..r * 16 + 16]);
                                    } else {
                                        row[..cols].copy_from_slice(&tile[r * 16..r * 16 + cols]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // SAFETY: releases this thread's tile state (configured above).
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precision::from_bf16;

    fn values(len: usize, seed: u64) -> Vec<f32> {
        (0..len as u64).map(|i| ((i * 2654435761 + seed * 40503) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// The kernels this CPU runs (AMX's CPUs run AVX-512 BF16 too).
    fn kernels() -> Vec<Kernel> {
        match kernel() {
            Some(Kernel::Amx) => vec![Kernel::Amx, Kernel::Avx512],
            Some(Kernel::Avx512) => vec![Kernel::Avx512],
            None => Vec::new(),
        }
    }

    /// Every tail of rows (tiles of 8, 16 and 32; blocks of 128), columns (16 and 32) and depth
    /// (odd `k`, AMX's 32, the vector rounding's 32): the product of the rounded operands in
    /// float64, within float32 summation error, on every kernel this CPU has.
    #[test]
    fn kernels_give_the_product_of_rounded_operands() {
        if kernel().is_none() {
            let mut dst = vec![7.0; 4];
            assert!(!matmul(2, 2, 3, &mut dst, &[0.0; 6], 3, &pack_pairs(&[0; 6], 3, 2)), "no bfloat16 arithmetic: the caller widens");
            assert_eq!(dst, vec![7.0; 4], "nothing written without a kernel");
            eprintln!("no AVX-512 BF16 or AMX on this CPU (or {ARITHMETIC_VAR}=off): only the fallback's contract is checked here");
            return;
        }
        let shapes = [(1, 1, 1), (9, 17, 3), (8, 32, 64), (130, 70, 33), (257, 16, 65), (3, 100, 256), (20, 33, 2), (5, 7, 0), (47, 48, 97), (160, 64, 288)];
        for kernel in kernels() {
            for (m, n, k) in shapes {
                let (lhs, rhs) = (values(m * k, 1), values(k * n, 2));
                let rows: Vec<u16> = rhs.iter().map(|&v| to_bf16(v)).collect();
                let mut dst = vec![f32::NAN; m * n];
                matmul_on(kernel, m, n, k, &mut dst, &lhs, k, &pack_pairs(&rows, k, n));
                for i in 0..m {
                    for j in 0..n {
                        let (mut want, mut size) = (0.0f64, 0.0f64);
                        for t in 0..k {
                            let p = from_bf16(to_bf16(lhs[i * k + t])) as f64 * from_bf16(rows[t * n + j]) as f64;
                            want += p;
                            size += p.abs();
                        }
                        let got = dst[i * n + j] as f64;
                        assert!((got - want).abs() <= 1e-6 * (1.0 + size), "{}: {m}×{k}·{k}×{n} at ({i}, {j}): {got} vs {want}", kernel.name());
                    }
                }
            }
        }
    }

    #[test]
    fn pairs_round_trip_with_padding() {
        let (k, n) = (5, 3);
        let rows: Vec<u16> = (1..=15).collect();
        let p = pack_pairs(&rows, k, n);
        assert_eq!(p.len(), 16 * 16 * 2, "k to 32, n to 16");
        for r in 0..k {
            for j in 0..n {
                assert_eq!(paired_at(&p, k, r, j), rows[r * n + j]);
            }
        }
        assert_eq!(p.iter().filter(|&&v| v != 0).count(), 15, "padding is zeros");
    }
}
