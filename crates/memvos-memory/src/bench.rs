//! The kernel workloads that `benches/affinity.rs` (criterion) and the `kernel_table` example
//! time: 480p query frames (30×54 = 1,620 positions at 1/16), key channels 64 or 128, memories of
//! 1 to 64 frames, 512 value channels, one object. Each case knows its floating-point work so a
//! time can be turned into GFLOP/s.

use burn_tensor::{Device, Distribution, Tensor};

use crate::affinity::{self, KernelError, Selection, Similarity};

/// Query positions of a 480p frame at 1/16 (30×54).
pub const QUERY_H: usize = 30;
/// Query width at 1/16.
pub const QUERY_W: usize = 54;
/// Value channels of STM/STCN.
pub const VALUE_CHANNELS: usize = 512;

/// Random keys and values for one benchmark size.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Key channels `C_k`.
    pub key_channels: usize,
    /// Memory frames (each `QUERY_H × QUERY_W` positions).
    pub memory_frames: usize,
    /// Memory keys `[1, C_k, N]`.
    pub memory_keys: Tensor<3>,
    /// Memory values `[1, C_v, N]`.
    pub memory_values: Tensor<3>,
    /// Query keys `[1, C_k, M]`.
    pub query_keys: Tensor<3>,
}

impl Workload {
    /// Normal random operands on `device`.
    pub fn new(key_channels: usize, memory_frames: usize, device: &Device) -> Self {
        let m = QUERY_H * QUERY_W;
        let n = memory_frames * m;
        let normal = Distribution::Normal(0.0, 1.0);
        Workload {
            key_channels,
            memory_frames,
            memory_keys: Tensor::random([1, key_channels, n], normal, device),
            memory_values: Tensor::random([1, VALUE_CHANNELS, n], normal, device),
            query_keys: Tensor::random([1, key_channels, m], normal, device),
        }
    }

    /// Memory positions `N`.
    pub fn n(&self) -> usize {
        self.memory_frames * QUERY_H * QUERY_W
    }

    /// Query positions `M`.
    pub fn m(&self) -> usize {
        QUERY_H * QUERY_W
    }
}

/// The kernels timed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    /// [`affinity::dot_affinity`].
    Dot,
    /// [`affinity::l2_affinity`].
    L2,
    /// L2 affinity, then the dense [`affinity::topk_softmax`] (k = 20).
    TopKSoftmax,
    /// L2 affinity, then the full [`affinity::softmax_memory`].
    FullSoftmax,
    /// L2 affinity, [`affinity::kernelized_scores`] (σ = 5.6), dense top-k softmax (k = 50).
    Kernelized,
    /// A whole top-20 read ([`affinity::read`]): affinity, top-k, sparse readout.
    ReadTopK,
    /// A whole full-softmax read: affinity, softmax, dense readout.
    ReadFull,
    /// A top-20 read in chunks of one frame ([`affinity::read_chunked`], running top-k).
    ChunkedTopK,
    /// A full-softmax read in chunks of one frame (online softmax).
    ChunkedFull,
}

impl Kernel {
    /// Every kernel, in table order.
    pub const ALL: [Kernel; 9] = [
        Kernel::Dot,
        Kernel::L2,
        Kernel::TopKSoftmax,
        Kernel::FullSoftmax,
        Kernel::Kernelized,
        Kernel::ReadTopK,
        Kernel::ReadFull,
        Kernel::ChunkedTopK,
        Kernel::ChunkedFull,
    ];

    /// The kernel's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Dot => "dot affinity",
            Kernel::L2 => "l2 affinity",
            Kernel::TopKSoftmax => "l2 + top-20 softmax",
            Kernel::FullSoftmax => "l2 + full softmax",
            Kernel::Kernelized => "l2 + kernelised top-50",
            Kernel::ReadTopK => "read top-20",
            Kernel::ReadFull => "read full",
            Kernel::ChunkedTopK => "chunked read top-20",
            Kernel::ChunkedFull => "chunked read full",
        }
    }

    /// Floating-point operations counted as the matrix products do (2 per multiply-add):
    /// affinities `2·N·M·C_k`, dense readouts `2·C_v·N·M`, sparse readouts `2·C_v·k·M`.
    /// Softmax, top-k and the L2 norm term are not counted (they are not matrix work).
    pub fn flops(self, w: &Workload) -> f64 {
        let (n, m, ck, cv) = (w.n() as f64, w.m() as f64, w.key_channels as f64, VALUE_CHANNELS as f64);
        let aff = 2.0 * n * m * ck;
        match self {
            Kernel::Dot | Kernel::L2 | Kernel::TopKSoftmax | Kernel::FullSoftmax | Kernel::Kernelized => aff,
            Kernel::ReadTopK | Kernel::ChunkedTopK => aff + 2.0 * cv * 20f64.min(n) * m,
            Kernel::ReadFull | Kernel::ChunkedFull => aff + 2.0 * cv * n * m,
        }
    }

    /// Runs the kernel once; the result is returned so the caller can wait for it. The
    /// workloads are well-formed, so the kernels' input errors cannot occur.
    pub fn run(self, w: &Workload) -> Result<Tensor<3>, affinity::KernelError> {
        let (mk, mv, qk) = (w.memory_keys.clone(), w.memory_values.clone(), w.query_keys.clone());
        let chunk = w.m();
        Ok(match self {
            Kernel::Dot => affinity::dot_affinity(mk, qk),
            Kernel::L2 => affinity::l2_affinity(mk, qk),
            Kernel::TopKSoftmax => affinity::topk_softmax(affinity::l2_affinity(mk, qk), 20)?,
            Kernel::FullSoftmax => affinity::softmax_memory(affinity::l2_affinity(mk, qk)),
            Kernel::Kernelized => {
                affinity::topk_softmax(affinity::kernelized_scores(affinity::l2_affinity(mk, qk), QUERY_H, QUERY_W, 5.6)?, 50)?
            }
            Kernel::ReadTopK => affinity::read(mk, mv, qk, Similarity::L2, Selection::TopK(20))?,
            Kernel::ReadFull => affinity::read(mk, mv, qk, Similarity::L2, Selection::Full)?,
            Kernel::ChunkedTopK => affinity::read_chunked(mk, mv, qk, Similarity::L2, Selection::TopK(20), chunk)?,
            Kernel::ChunkedFull => affinity::read_chunked(mk, mv, qk, Similarity::L2, Selection::Full, chunk)?,
        })
    }
}

/// A memory-read kernel as the benchmarks time it: burn's tensor kernels ([`Kernel`]) and other
/// implementations alike (memvos's CPU top-k read, `memvos_model::cpu::CpuTopKRead`; a kernel of
/// your own), so `kernel_table` and `benches/affinity.rs` compare them on the same workloads.
///
/// ```
/// use memvos_memory::bench::{Kernel, ReadKernel, Workload};
/// use memvos_memory::burn_tensor::Device;
/// # fn main() -> Result<(), memvos_memory::KernelError> {
/// # let device = Device::default();
/// let w = Workload::new(64, 1, &device);
/// let kernel: &dyn ReadKernel = &Kernel::ReadTopK;
/// let mut run = kernel.prepare(&w)?; // operands made ready outside the timing
/// run()?; // one timed call
/// assert!(kernel.flops(&w) > 0.0);
/// # Ok(())
/// # }
/// ```
pub trait ReadKernel {
    /// A short name for tables ("read top-20").
    fn name(&self) -> String;
    /// Floating-point operations of one call on `w` (matrix work only, as [`Kernel::flops`]).
    fn flops(&self, w: &Workload) -> f64;
    /// Readies the operands for `w` (copies, layouts: not timed) and returns one call of the
    /// kernel, which returns when its result is computed.
    fn prepare<'a>(&'a self, w: &'a Workload) -> Result<Box<dyn FnMut() -> Result<(), KernelError> + 'a>, KernelError>;
}

impl ReadKernel for Kernel {
    fn name(&self) -> String {
        Kernel::name(*self).to_string()
    }

    fn flops(&self, w: &Workload) -> f64 {
        Kernel::flops(*self, w)
    }

    fn prepare<'a>(&'a self, w: &'a Workload) -> Result<Box<dyn FnMut() -> Result<(), KernelError> + 'a>, KernelError> {
        let device = w.query_keys.device();
        Ok(Box::new(move || {
            let out = self.run(w)?;
            // Wait for the device to finish the result.
            let _ = device.sync();
            drop(out);
            Ok(())
        }))
    }
}

/// Floating-point operations of one `n × k` by `k × m` matrix product.
pub fn matmul_flops(n: usize, k: usize, m: usize) -> f64 {
    2.0 * n as f64 * k as f64 * m as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_runs_with_the_expected_shape() {
        let d = Device::flex();
        let w = Workload::new(64, 1, &d);
        for k in Kernel::ALL {
            let out = k.run(&w).unwrap();
            let want = if matches!(k, Kernel::ReadTopK | Kernel::ReadFull | Kernel::ChunkedTopK | Kernel::ChunkedFull) {
                [1, VALUE_CHANNELS, w.m()]
            } else {
                [1, w.n(), w.m()]
            };
            assert_eq!(out.dims(), want, "{}", k.name());
            assert!(k.flops(&w) > 0.0);
        }
    }
}
