//! # memvos-cpu
//!
//! CPU inference kernels for the memvos networks, on NHWC float32 buffers ([`Nhwc`]), used by the
//! networks' blocks when they run on burn's CPU backend without autodiff (burn's own ops stay the
//! path for every other backend and for training):
//!
//! - convolutions whose weights are packed once ([`PackedConv`]), with BatchNorm folded into
//!   them, a ReLU on the input, and bias, residual add and ReLU fused into the output write;
//! - 3×3 stride-1 convolutions by Winograd's minimal filtering, `F(4×4, 3×3)` (4× fewer
//!   multiplications than direct) or `F(2×2, 3×3)` (2.25×, smaller rounding error), as 16 or 36
//!   independent matrix products per pass of many tiles (each transformed weight read once a
//!   pass); 1×1 convolutions as one matrix product; other shapes (7×7 stride 2, strided or
//!   dilated 3×3) by im2col in blocks;
//! - weights stored as float32 or as bfloat16 ([`Precision`]: half the memory; products by
//!   AMX's `tdpbf16ps` or AVX-512 BF16's `vdpbf16ps` where the CPU has them, else widened to
//!   float32 block by block just before each product);
//! - separable bilinear resizing with PyTorch's `align_corners = False`, and max pooling;
//! - 2-D discrete Fourier transforms of any size by rustfft, two real channels per complex
//!   transform (GSFM's spectral modules);
//! - the top-k memory read ([`TopKRead`]) without the dense affinity matrix.
//!
//! One level of parallelism: blocks of output pixels (im2col), or Winograd's tiles (transforms)
//! and transform points (products), are spread over rayon's threads, each running
//! single-threaded matrix products (the `gemm` crate's kernels, chosen at run time: AVX2/FMA or
//! AVX-512 where the CPU has them). The kernels' own loops have AVX-512 copies chosen at run
//! time too, computing the same bits.
//!
//! Memory is reused rather than allocated per call: each thread keeps its blocks' buffers, and
//! a map's values ([`Floats`]) are its own buffer — which goes back to the [`pool`] (its
//! stream's [`pool::Arena`]) for the next map of its size when the map is dropped — or another
//! owner's (a burn tensor's storage) read in place.

#![warn(missing_docs)]

mod conv;
mod bf16;
mod memory;
mod nhwc;
mod precision;
mod resize;
mod spectral;
mod winograd;

pub mod shapes;

pub use conv::{BatchNormFold, ConvKind, ConvSpec, Fuse, PackedConv, WINOGRAD_MIN_PIXELS, Winograd};
pub use memory::{Affinity, TopKRead};
pub use nhwc::{Floats, Nhwc, SharedFloats, pool};
pub use bf16::ARITHMETIC_VAR as BF16_ARITHMETIC_VAR;
pub use precision::{Precision, bf16_arithmetic, bf16_hardware, bf16_products, from_bf16, to_bf16};
pub use resize::{bilinear, bilinear_taps, max_pool_3x3_s2};
pub use spectral::{DftBasis, dft2, dft_basis, idft2_real};

/// Per-thread scratch buffers, reused from block to block and call to call: a kernel takes one
/// ([`scratch`]), overwrites what it reads, and gives it back ([`give_back`]), so blocks neither
/// allocate (fresh pages are faulted in and zeroed by the kernel) nor zero their buffers.
mod scratch {
    use std::cell::RefCell;

    thread_local! {
        static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    }

    /// At most this many buffers are kept per thread.
    const KEPT: usize = 8;

    /// A buffer of `len` values whose contents are unspecified (stale values of an earlier use,
    /// or zeros): the caller writes every value before reading it.
    pub(crate) fn scratch(len: usize) -> Vec<f32> {
        let mut v = FREE.with(|f| {
            let mut free = f.borrow_mut();
            // The smallest kept buffer that holds `len`, else the largest (grown below).
            let fit = free.iter().enumerate().filter(|(_, b)| b.capacity() >= len).min_by_key(|(_, b)| b.capacity()).map(|(i, _)| i);
            let at = fit.or_else(|| free.iter().enumerate().max_by_key(|(_, b)| b.capacity()).map(|(i, _)| i));
            at.map(|i| free.swap_remove(i)).unwrap_or_default()
        });
        if v.len() < len {
            v.resize(len, 0.0);
        }
        v.truncate(len);
        v
    }

    /// Returns a buffer taken with [`scratch`] for later use on this thread.
    pub(crate) fn give_back(v: Vec<f32>) {
        FREE.with(|f| {
            let mut free = f.borrow_mut();
            if free.len() < KEPT {
                free.push(v);
            } else if let Some(smallest) = free.iter_mut().min_by_key(|b| b.capacity()) {
                if smallest.capacity() < v.capacity() {
                    *smallest = v;
                }
            }
        });
    }
}

pub(crate) use scratch::{give_back, scratch};

/// Which vector instructions the kernels' own loops (Winograd's transforms, epilogues) are
/// compiled for: each such loop has a copy compiled for AVX-512 that runs where the CPU has it
/// (checked at run time), with the same operations in the same order as the portable copy, so
/// both give the same bits. The matrix products choose their own (the `gemm` crate's dispatch).
pub(crate) mod simd {
    /// Whether this CPU runs the AVX-512 copies.
    pub(crate) fn avx512() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// `dst = lhs · rhs` (`m × k` by `k × n`, all row-major, contiguous), single-threaded.
pub(crate) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], rhs: &[f32]) {
    matmul_cols(m, n, k, dst, lhs, k, rhs, false);
}

/// `dst (+)= lhs · rhs` (`m × k` by `k × n`) on strided operands, single-threaded: element
/// `(i, j)` of `dst` is `dst[i·dst_rs + j]`, of `lhs` `lhs[i·lhs_rs + p·lhs_cs]`, of `rhs`
/// `rhs[p·rhs_rs + j·rhs_cs]` (a transposed operand is a swap of its strides).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_strided(m: usize, n: usize, k: usize, dst: &mut [f32], dst_rs: usize, lhs: &[f32], lhs_rs: usize, lhs_cs: usize, rhs: &[f32], rhs_rs: usize, rhs_cs: usize, accumulate: bool) {
    if m == 0 || n == 0 {
        return;
    }
    // The last element each operand's strides reach, checked against its slice.
    assert!(dst.len() > (m - 1) * dst_rs + (n - 1), "matmul destination");
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_rs.max(1)).take(m).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    assert!(lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs && rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs, "matmul operands");
    // SAFETY: every index the strides reach is inside its slice (asserted above), and `dst`
    // does not alias the operands (a `&mut` borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `dst (+)= lhs[:, ..k] · rhs`, single-threaded: `lhs` holds `m` rows of `lhs_stride ≥ k`
/// values (the product reads the first `k` of each), `rhs` is `k × n` and `dst` `m × n`, all
/// row-major; `accumulate` adds to `dst` instead of overwriting it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_cols(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], lhs_stride: usize, rhs: &[f32], accumulate: bool) {
    assert!(k <= lhs_stride && dst.len() >= m * n && rhs.len() >= k * n, "matmul operands");
    matmul_strided(m, n, k, dst, n, lhs, lhs_stride, 1, rhs, n, 1, accumulate);
}
