//! Convolutions whose weights are packed once, at load: BatchNorm folded in, laid out for the
//! kernel that runs them, and the bias, residual add and ReLU applied as each output pixel is
//! written ([`epilogue`]).

use rayon::prelude::*;

use crate::{Nhwc, give_back, scratch};
use crate::precision::{Precision, Weights, WeightsRef, matmul_w};
use crate::winograd;

/// Which Winograd variant a 3×3 stride-1 convolution uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Winograd {
    /// `F(4×4, 3×3)`: 4× fewer multiplications than direct.
    F4,
    /// `F(2×2, 3×3)`: 2.25× fewer, about 10× smaller rounding error than `F4`.
    F2,
}

/// A square convolution's shape (PyTorch's `Conv2d(cin, cout, k, stride, padding, dilation)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel size (`k × k`).
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// Spacing of the kernel's taps (1: a plain convolution; DeepLab's atrous ones: 6, 12, 18).
    pub dilation: usize,
}

impl ConvSpec {
    /// A convolution without dilation.
    pub const fn new(cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Self {
        ConvSpec { cin, cout, k, stride, pad, dilation: 1 }
    }

    /// Output size for an `h × w` input.
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        let span = self.dilation * (self.k - 1) + 1;
        ((h + 2 * self.pad).saturating_sub(span) / self.stride + 1, (w + 2 * self.pad).saturating_sub(span) / self.stride + 1)
    }

    /// Multiply-adds × 2 for an `n × h × w` input (the direct method's count).
    pub fn flops(&self, n: usize, h: usize, w: usize) -> f64 {
        let (ho, wo) = self.out_size(h, w);
        2.0 * (n * ho * wo) as f64 * (self.cin * self.k * self.k * self.cout) as f64
    }
}

/// How a packed convolution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKind {
    /// 1×1 without padding: one matrix product over pixels (strided pixels gathered first).
    Pointwise,
    /// 3×3 stride 1 by Winograd's minimal filtering.
    Winograd(Winograd),
    /// Any other shape: patches gathered into a matrix (im2col) block by block.
    Im2col,
}

/// A BatchNorm's inference parameters, folded into the preceding convolution:
/// `w' = w·γ/√(σ²+ε)`, `b' = (b − μ)·γ/√(σ²+ε) + β`.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormFold<'a> {
    /// Scale γ per channel.
    pub gamma: &'a [f32],
    /// Shift β per channel.
    pub beta: &'a [f32],
    /// Running mean μ per channel.
    pub mean: &'a [f32],
    /// Running variance σ² per channel.
    pub var: &'a [f32],
    /// ε added to the variance.
    pub eps: f64,
}

/// What a convolution fuses around its matrix products.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fuse<'a> {
    /// `max(x, 0)` on the input as it is read (the pre-activation blocks' `conv(relu(x))`).
    pub relu_input: bool,
    /// Added to the output (same size as the output).
    pub residual: Option<&'a Nhwc>,
    /// `max(y, 0)` on the output, after the residual.
    pub relu: bool,
}

/// A convolution ready to run: folded, packed weights and its bias.
#[derive(Clone, Debug)]
pub struct PackedConv {
    /// The convolution's shape.
    pub spec: ConvSpec,
    /// How it is computed (pointwise, im2col, Winograd), which decides the packed layout.
    pub kind: ConvKind,
    /// Pointwise / im2col: `[k·k·cin][cout]` (rows ordered `ky, kx, ci`); Winograd: `U[α²][cin][cout]`.
    weight: Weights,
    /// Winograd only: the im2col packing too, for maps too small to amortise the transforms
    /// (fewer than [`WINOGRAD_MIN_PIXELS`] output pixels).
    small: Weights,
    bias: Vec<f32>,
    /// Output pixels from which Winograd runs (default [`WINOGRAD_MIN_PIXELS`]).
    winograd_from: usize,
}

/// Below this many output pixels a Winograd convolution runs as im2col: its transformed weights
/// are 4× (F4) the size of the plain ones, and a tiny map reads them for few tiles.
pub const WINOGRAD_MIN_PIXELS: usize = 1024;

impl PackedConv {
    /// Packs `weight` (`[cout][cin][k][k]`, PyTorch's layout) and `bias`, folding `bn` into them.
    /// 3×3 stride-1 convolutions use `winograd` when given, im2col otherwise.
    ///
    /// # Panics
    /// When the slices' lengths do not match `spec` (a bug in the caller, not user input: the
    /// networks check every tensor's shape when they load).
    pub fn new(spec: ConvSpec, weight: &[f32], bias: Option<&[f32]>, bn: Option<BatchNormFold<'_>>, winograd: Option<Winograd>) -> Self {
        let ConvSpec { cin, cout, k, .. } = spec;
        assert_eq!(weight.len(), cout * cin * k * k, "conv weight length");
        let kk = cin * k * k;
        let mut w64: Vec<f64> = weight.iter().map(|&v| v as f64).collect();
        let mut b64: Vec<f64> = match bias {
            Some(b) => {
                assert_eq!(b.len(), cout, "conv bias length");
                b.iter().map(|&v| v as f64).collect()
            }
            None => vec![0.0; cout],
        };
        if let Some(bn) = bn {
            for s in [bn.gamma, bn.beta, bn.mean, bn.var] {
                assert_eq!(s.len(), cout, "batch norm length");
            }
            for co in 0..cout {
                let scale = bn.gamma[co] as f64 / (bn.var[co] as f64 + bn.eps).sqrt();
                w64[co * kk..(co + 1) * kk].iter_mut().for_each(|v| *v *= scale);
                b64[co] = (b64[co] - bn.mean[co] as f64) * scale + bn.beta[co] as f64;
            }
        }
        let folded: Vec<f32> = w64.iter().map(|&v| v as f32).collect();
        let kind = match (k, spec.stride, winograd) {
            (1, _, _) if spec.pad == 0 => ConvKind::Pointwise,
            (3, 1, Some(v)) if spec.dilation == 1 => ConvKind::Winograd(v),
            _ => ConvKind::Im2col,
        };
        // [co][ci][ky][kx] → [(ky, kx, ci)][co]
        let mut plain = vec![0.0f32; kk * cout];
        for co in 0..cout {
            for ci in 0..cin {
                for ky in 0..k {
                    for kx in 0..k {
                        plain[((ky * k + kx) * cin + ci) * cout + co] = folded[((co * cin + ci) * k + ky) * k + kx];
                    }
                }
            }
        }
        let (weight, small) = match kind {
            ConvKind::Winograd(v) => (winograd::pack(&folded, cin, cout, v), plain),
            _ => (plain, Vec::new()),
        };
        // Winograd's weights are one cin × cout matrix per transform element.
        let rows = if matches!(kind, ConvKind::Winograd(_)) { cin } else { kk };
        let (weight, small) = (Weights::new(weight, rows, cout, Precision::Fp32), Weights::new(small, kk, cout, Precision::Fp32));
        PackedConv { spec, kind, weight, small, bias: b64.iter().map(|&v| v as f32).collect(), winograd_from: WINOGRAD_MIN_PIXELS }
    }

    /// Runs Winograd from `pixels` output pixels on (smaller maps use im2col). With 0 the im2col
    /// copy of a Winograd convolution's weights is dropped: a quarter of its memory less.
    pub fn with_winograd_from(mut self, pixels: usize) -> Self {
        self.winograd_from = pixels;
        if pixels == 0 && matches!(self.kind, ConvKind::Winograd(_)) {
            self.small = Weights::new(Vec::new(), 0, 0, Precision::Fp32);
        }
        self
    }

    /// The weights stored in `precision` (bias and products stay float32). bfloat16 halves the
    /// weights' memory; each product widens them back block by block.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.weight = self.weight.into_precision(precision);
        self.small = self.small.into_precision(precision);
        self
    }

    /// How the weights are stored.
    pub fn precision(&self) -> Precision {
        self.weight.precision()
    }

    /// Bytes the packed weights hold (both packings of a Winograd convolution).
    pub fn weight_bytes(&self) -> usize {
        self.weight.bytes() + self.small.bytes()
    }

    /// The folded bias.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Runs the convolution on `x` (`x.c` must be `spec.cin`; a residual must have the output's size).
    pub fn forward(&self, x: &Nhwc, fuse: Fuse<'_>) -> Nhwc {
        let s = self.spec;
        assert_eq!(x.c, s.cin, "conv input channels");
        let (ho, wo) = s.out_size(x.h, x.w);
        if let Some(r) = fuse.residual {
            assert_eq!((r.n, r.h, r.w, r.c), (x.n, ho, wo, s.cout), "residual size");
        }
        match self.kind {
            ConvKind::Winograd(_) if x.n * ho * wo < self.winograd_from => self.forward_gemm(x, self.small.all(), ho, wo, fuse),
            ConvKind::Winograd(v) => winograd::forward(x, &self.weight, &self.bias, s.cout, s.pad, v, fuse),
            ConvKind::Pointwise | ConvKind::Im2col => self.forward_gemm(x, self.weight.all(), ho, wo, fuse),
        }
    }

    /// Pointwise and im2col: blocks of output pixels, each one matrix product.
    fn forward_gemm(&self, x: &Nhwc, weight: WeightsRef<'_>, ho: usize, wo: usize, fuse: Fuse<'_>) -> Nhwc {
        let s = self.spec;
        let (cin, cout, k) = (s.cin, s.cout, s.k);
        let kk = k * k * cin;
        let pixels = x.n * ho * wo;
        // Every output value is written below (the products, then the epilogue).
        let mut out = Nhwc::for_overwrite(x.n, ho, wo, cout);
        if pixels == 0 {
            return out;
        }
        // Blocks of 128–512 output pixels (about 256 K patch values) keep the patch matrix in
        // cache; smaller when the image would otherwise give a thread no block.
        let threads = rayon::current_num_threads();
        let per_block = ((1 << 18) / kk.max(1)).clamp(128, 512).min(pixels.div_ceil(2 * threads).max(16));
        let direct = k == 1 && s.stride == 1 && !fuse.relu_input;
        let simd = crate::simd::avx512();
        out.data.par_chunks_mut(per_block * cout).enumerate().for_each(|(blk, dst)| {
            let job = Im2colBlock { conv: self, x, weight, ho, wo, fuse, per_block, direct };
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: the CPU has AVX-512F (`simd` is only true then).
                return unsafe { job.run_avx512(blk, dst) };
            }
            let _ = simd;
            job.run(blk, dst);
        });
        out
    }
}

/// One block of output pixels of [`PackedConv::forward_gemm`].
struct Im2colBlock<'a> {
    conv: &'a PackedConv,
    x: &'a Nhwc,
    weight: WeightsRef<'a>,
    ho: usize,
    wo: usize,
    fuse: Fuse<'a>,
    per_block: usize,
    direct: bool,
}

impl Im2colBlock<'_> {
    /// [`Im2colBlock::run`] compiled for AVX-512: the gathers' ReLU and the epilogue in 512-bit
    /// instructions (the same operations, the same results).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, blk: usize, dst: &mut [f32]) {
        self.run(blk, dst)
    }

    /// Block `blk`: its patches gathered (unless the input is the patch matrix), one product,
    /// the epilogue.
    #[inline(always)]
    fn run(&self, blk: usize, dst: &mut [f32]) {
        let Im2colBlock { conv, x, weight, ho, wo, fuse, per_block, direct } = *self;
        let s = conv.spec;
        let (cin, cout, k) = (s.cin, s.cout, s.k);
        let kk = k * k * cin;
        let p0 = blk * per_block;
        let np = dst.len() / cout;
        // Every patch value is written (copied, ReLU'd or zero-filled) before the product.
        let mut patch = if direct { Vec::new() } else { scratch(np * kk) };
        let lhs: &[f32] = if direct {
            &x.data[p0 * cin..(p0 + np) * cin]
        } else {
            for (i, row) in patch.chunks_mut(kk).enumerate() {
                let p = p0 + i;
                let (b, r) = (p / (ho * wo), p % (ho * wo));
                let (oy, ox) = (r / wo, r % wo);
                for ky in 0..k {
                    let iy = (oy * s.stride + ky * s.dilation) as isize - s.pad as isize;
                    let ix0 = (ox * s.stride) as isize - s.pad as isize;
                    if s.dilation == 1 && iy >= 0 && iy < x.h as isize && ix0 >= 0 && ix0 as usize + k <= x.w {
                        // The patch row's k pixels are adjacent in the input: one run (for the
                        // stem's 3 channels, one copy instead of seven).
                        let d = &mut row[ky * k * cin..(ky + 1) * k * cin];
                        let src = &x.data[((b * x.h + iy as usize) * x.w + ix0 as usize) * cin..][..k * cin];
                        if fuse.relu_input {
                            d.iter_mut().zip(src).for_each(|(o, &v)| *o = v.max(0.0));
                        } else {
                            d.copy_from_slice(src);
                        }
                        continue;
                    }
                    for kx in 0..k {
                        let ix = (ox * s.stride + kx * s.dilation) as isize - s.pad as isize;
                        let d = &mut row[(ky * k + kx) * cin..(ky * k + kx + 1) * cin];
                        if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                            d.fill(0.0);
                        } else {
                            let src = &x.data[((b * x.h + iy as usize) * x.w + ix as usize) * cin..][..cin];
                            if fuse.relu_input {
                                d.iter_mut().zip(src).for_each(|(o, &v)| *o = v.max(0.0));
                            } else {
                                d.copy_from_slice(src);
                            }
                        }
                    }
                }
            }
            &patch
        };
        matmul_w(np, cout, kk, dst, lhs, kk, weight);
        for (i, acc) in dst.chunks_mut(cout).enumerate() {
            let p = p0 + i;
            epilogue(acc, &conv.bias, fuse.residual.map(|r| &r.data[p * cout..(p + 1) * cout]), fuse.relu);
        }
        if !direct {
            give_back(patch); // only what was taken: the direct path's empty vector stays out of the list
        }
    }
}

/// [`epilogue`] of `acc` written to `dst` (the same operations).
#[inline(always)]
pub(crate) fn epilogue_to(dst: &mut [f32], acc: &[f32], bias: &[f32], residual: Option<&[f32]>, relu: bool) {
    let (dst, acc, bias) = (&mut dst[..acc.len()], &acc[..], &bias[..acc.len()]);
    match (residual, relu) {
        (Some(r), true) => dst.iter_mut().zip(acc).zip(bias).zip(r).for_each(|(((o, &a), &b), &r)| *o = (a + b + r).max(0.0)),
        (Some(r), false) => dst.iter_mut().zip(acc).zip(bias).zip(r).for_each(|(((o, &a), &b), &r)| *o = a + (b + r)),
        (None, true) => dst.iter_mut().zip(acc).zip(bias).for_each(|((o, &a), &b)| *o = (a + b).max(0.0)),
        (None, false) => dst.iter_mut().zip(acc).zip(bias).for_each(|((o, &a), &b)| *o = a + b),
    }
}

/// `acc += bias (+ residual)`, then `max(acc, 0)` if `relu`: one output pixel's channels.
#[inline(always)]
pub(crate) fn epilogue(acc: &mut [f32], bias: &[f32], residual: Option<&[f32]>, relu: bool) {
    match (residual, relu) {
        (Some(r), true) => acc.iter_mut().zip(bias).zip(r).for_each(|((a, &b), &r)| *a = (*a + b + r).max(0.0)),
        (Some(r), false) => acc.iter_mut().zip(bias).zip(r).for_each(|((a, &b), &r)| *a += b + r),
        (None, true) => acc.iter_mut().zip(bias).for_each(|(a, &b)| *a = (*a + b).max(0.0)),
        (None, false) => acc.iter_mut().zip(bias).for_each(|(a, &b)| *a += b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution in float64 on NCHW, the reference.
    fn direct(x: &[f32], n: usize, h: usize, w: usize, wt: &[f32], bias: &[f32], s: ConvSpec) -> Vec<f64> {
        let (ho, wo) = s.out_size(h, w);
        let mut out = vec![0.0f64; n * s.cout * ho * wo];
        for b in 0..n {
            for co in 0..s.cout {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = bias[co] as f64;
                        for ci in 0..s.cin {
                            for ky in 0..s.k {
                                for kx in 0..s.k {
                                    let iy = (oy * s.stride + ky * s.dilation) as isize - s.pad as isize;
                                    let ix = (ox * s.stride + kx * s.dilation) as isize - s.pad as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                        acc += x[((b * s.cin + ci) * h + iy as usize) * w + ix as usize] as f64 * wt[((co * s.cin + ci) * s.k + ky) * s.k + kx] as f64;
                                    }
                                }
                            }
                        }
                        out[((b * s.cout + co) * ho + oy) * wo + ox] = acc;
                    }
                }
            }
        }
        out
    }

    /// A deterministic pseudo-random sequence in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn check(s: ConvSpec, n: usize, h: usize, w: usize, wino: Option<Winograd>, expect: ConvKind, tol: f64) {
        let x = values(n * s.cin * h * w, 1);
        let wt = values(s.cout * s.cin * s.k * s.k, 2);
        let bias = values(s.cout, 3);
        let want = direct(&x, n, h, w, &wt, &bias, s);
        let scale = (s.cin * s.k * s.k) as f64;
        // Winograd on every size, and (for Winograd convs) the im2col fallback of small maps.
        for from in [0, usize::MAX] {
            let conv = PackedConv::new(s, &wt, Some(&bias), None, wino).with_winograd_from(from);
            assert_eq!(conv.kind, expect);
            let got = conv.forward(&Nhwc::from_nchw(&x, n, s.cin, h, w), Fuse::default()).to_nchw();
            assert_eq!(got.len(), want.len());
            let worst = got.iter().zip(&want).map(|(&g, &r)| (g as f64 - r).abs()).fold(0.0, f64::max);
            assert!(worst <= tol * scale.sqrt(), "{s:?} {expect:?} Winograd from {from} px: worst error {worst}");
            // bfloat16 weights: half the bytes, each weight within 2⁻⁹ of itself, so each sum of
            // `terms` products of values in [-1, 1) within terms·2⁻⁹ (F4's transforms amplify).
            let half = conv.with_precision(Precision::Bf16);
            // Two bytes a weight, each matrix padded to whole bfloat16 tiles (rows to 32, columns
            // to 16): Winograd's one cin × cout matrix per transform element, plus the im2col
            // copy when small maps keep it; every other kind one (k·k·cin) × cout matrix.
            let kk = s.k * s.k * s.cin;
            let bf16 = |rows: usize, count: usize| count * 2 * crate::bf16::paired_len(rows, s.cout);
            let want_bytes = match expect {
                ConvKind::Winograd(v) => bf16(s.cin, if v == Winograd::F4 { 36 } else { 16 }) + if from == 0 { 0 } else { bf16(kk, 1) },
                _ => bf16(kk, 1),
            };
            assert_eq!((half.precision(), half.weight_bytes()), (Precision::Bf16, want_bytes), "{s:?}");
            let got16 = half.forward(&Nhwc::from_nchw(&x, n, s.cin, h, w), Fuse::default()).to_nchw();
            let worst16 = got16.iter().zip(&want).map(|(&g, &r)| (g as f64 - r).abs()).fold(0.0, f64::max);
            // With bfloat16 arithmetic the activations (Winograd: their transforms) are rounded as well.
            let amplify = if expect == ConvKind::Winograd(Winograd::F4) && from == 0 { 4.0 } else { 1.0 };
            let amplify = if crate::bf16::kernel().is_some() { 2.0 * amplify } else { amplify };
            assert!(worst16 <= amplify * scale / 512.0, "{s:?} {expect:?} bf16, Winograd from {from} px: worst error {worst16}");
            assert!(got16 != got, "{s:?}: bf16 weights change the result");
        }
    }

    #[test]
    fn every_kind_matches_direct_convolution() {
        let sp = ConvSpec::new;
        check(sp(5, 7, 1, 1, 0), 2, 9, 11, None, ConvKind::Pointwise, 1e-6);
        check(sp(6, 4, 1, 2, 0), 1, 9, 10, None, ConvKind::Pointwise, 1e-6);
        check(sp(5, 8, 3, 1, 1), 2, 13, 10, None, ConvKind::Im2col, 1e-6);
        check(sp(5, 8, 3, 2, 1), 1, 13, 10, None, ConvKind::Im2col, 1e-6);
        check(sp(3, 6, 7, 2, 3), 1, 17, 20, None, ConvKind::Im2col, 1e-6);
        check(sp(9, 5, 3, 1, 1), 2, 13, 10, Some(Winograd::F2), ConvKind::Winograd(Winograd::F2), 1e-6);
        check(sp(9, 5, 3, 1, 1), 2, 13, 10, Some(Winograd::F4), ConvKind::Winograd(Winograd::F4), 1e-5);
        check(sp(16, 3, 3, 1, 1), 1, 4, 5, Some(Winograd::F4), ConvKind::Winograd(Winograd::F4), 1e-5);
        check(sp(4, 4, 3, 1, 1), 1, 1, 1, Some(Winograd::F4), ConvKind::Winograd(Winograd::F4), 1e-5);
        // Channels in many 16-lane steps of the transforms, the last one partial.
        check(sp(70, 130, 3, 1, 1), 1, 9, 10, Some(Winograd::F4), ConvKind::Winograd(Winograd::F4), 1e-5);
        check(sp(130, 70, 3, 1, 1), 1, 9, 10, Some(Winograd::F2), ConvKind::Winograd(Winograd::F2), 1e-6);
        // Atrous (ASPP's): im2col whatever Winograd says, taps beyond the map read as zeros.
        let atrous = |dilation| ConvSpec { dilation, ..sp(6, 5, 3, 1, dilation) };
        check(atrous(2), 2, 9, 11, Some(Winograd::F4), ConvKind::Im2col, 1e-6);
        check(atrous(6), 1, 7, 13, Some(Winograd::F4), ConvKind::Im2col, 1e-6);
    }

    #[test]
    fn batch_norm_folds_and_epilogue_fuses() {
        let s = ConvSpec::new(4, 3, 3, 1, 1);
        let (n, h, w) = (1, 6, 7);
        let x = values(n * s.cin * h * w, 4);
        let wt = values(s.cout * s.cin * 9, 5);
        let (gamma, beta, mean) = (vec![0.5f32, 2.0, -1.0], vec![0.1f32, -0.2, 0.3], vec![0.05f32, -0.4, 0.2]);
        let var = vec![0.25f32, 1.5, 0.01];
        let bn = BatchNormFold { gamma: &gamma, beta: &beta, mean: &mean, var: &var, eps: 1e-5 };
        let residual = Nhwc::from_nchw(&values(n * s.cout * h * w, 6), n, s.cout, h, w);
        for wino in [None, Some(Winograd::F2), Some(Winograd::F4)] {
            let conv = PackedConv::new(s, &wt, None, Some(bn), wino).with_winograd_from(0);
            let fuse = Fuse { relu_input: true, residual: Some(&residual), relu: true };
            let got = conv.forward(&Nhwc::from_nchw(&x, n, s.cin, h, w), fuse).to_nchw();
            let relu_x: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
            let plain = direct(&relu_x, n, h, w, &wt, &[0.0; 3], s);
            let res = residual.to_nchw();
            for (i, (&g, &p)) in got.iter().zip(&plain).enumerate() {
                let co = (i / (h * w)) % s.cout;
                let sc = gamma[co] as f64 / (var[co] as f64 + 1e-5).sqrt();
                let want = ((p - mean[co] as f64) * sc + beta[co] as f64 + res[i] as f64).max(0.0);
                assert!((g as f64 - want).abs() < 1e-4, "{wino:?} element {i}: {g} vs {want}");
            }
        }
    }
}
