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
//!   independent matrix products per block of tiles; 1×1 convolutions as one matrix product;
//!   other shapes (7×7 stride 2, strided or dilated 3×3) by im2col in blocks;
//! - separable bilinear resizing with PyTorch's `align_corners = False`, and max pooling.
//!
//! One level of parallelism: blocks of output pixels or tiles are spread over rayon's threads,
//! each running single-threaded matrix products (the `gemm` crate's kernels, chosen at run time:
//! AVX2/FMA or AVX-512 where the CPU has them).

mod conv;
mod memory;
mod nhwc;
mod resize;
mod winograd;

pub mod shapes;

pub use conv::{BatchNormFold, ConvKind, ConvSpec, Fuse, PackedConv, WINOGRAD_MIN_PIXELS, Winograd};
pub use memory::{Affinity, TopKRead};
pub use nhwc::Nhwc;
pub use resize::{bilinear, max_pool_3x3_s2};

/// `dst = lhs · rhs` (`m × k` by `k × n`, all row-major, contiguous), single-threaded.
pub(crate) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], rhs: &[f32]) {
    matmul_strided(m, n, k, dst, n, lhs, k, rhs, n);
}

/// [`matmul`] with row strides: `dst` rows `dst_rs` apart, `lhs` rows `lhs_rs`, `rhs` rows
/// `rhs_rs` (a block of columns of a wider matrix), single-threaded.
///
/// # Panics
/// When a slice is shorter than its rows and strides need.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_strided(m: usize, n: usize, k: usize, dst: &mut [f32], dst_rs: usize, lhs: &[f32], lhs_rs: usize, rhs: &[f32], rhs_rs: usize) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst_rs >= n && dst.len() >= (m - 1) * dst_rs + n, "matmul destination");
    if k == 0 {
        dst.chunks_mut(dst_rs).take(m).for_each(|r| r[..n].fill(0.0));
        return;
    }
    assert!(lhs_rs >= k && lhs.len() >= (m - 1) * lhs_rs + k, "matmul left operand");
    assert!(rhs_rs >= n && rhs.len() >= (k - 1) * rhs_rs + n, "matmul right operand");
    // SAFETY: the asserts above guarantee every element the sizes and strides address lies
    // inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            false,
            lhs.as_ptr(),
            1,
            lhs_rs as isize,
            rhs.as_ptr(),
            1,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

