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
//! - weights stored as float32 or as bfloat16 ([`Precision`]: half the memory, widened to float32
//!   block by block just before each product);
//! - separable bilinear resizing with PyTorch's `align_corners = False`, and max pooling.
//!
//! One level of parallelism: blocks of output pixels or tiles are spread over rayon's threads,
//! each running single-threaded matrix products (the `gemm` crate's kernels, chosen at run time:
//! AVX2/FMA or AVX-512 where the CPU has them).

#![warn(missing_docs)]

mod conv;
mod memory;
mod nhwc;
mod precision;
mod resize;
mod winograd;

pub mod shapes;

pub use conv::{BatchNormFold, ConvKind, ConvSpec, Fuse, PackedConv, WINOGRAD_MIN_PIXELS, Winograd};
pub use memory::{Affinity, TopKRead};
pub use nhwc::Nhwc;
pub use precision::{Precision, bf16_hardware, from_bf16, to_bf16};
pub use resize::{bilinear, max_pool_3x3_s2};

/// `dst = lhs · rhs` (`m × k` by `k × n`, all row-major, contiguous), single-threaded.
pub(crate) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], rhs: &[f32]) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n, "matmul operands");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst[..m * n].fill(0.0);
        return;
    }
    // SAFETY: the slices hold at least the `m × n`, `m × k` and `k × n` row-major elements the
    // strides describe (asserted above).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
