//! The CPU inference path: the networks' blocks rebuilt on [`memvos_cpu`]'s kernels, with
//! BatchNorm folded into the convolutions and every weight packed once, when the path is built,
//! and activations kept NHWC from a trunk's input to the decoder's logits.
//!
//! Every built-in method has its mapping from modules to CPU blocks here, the blocks shared:
//! [`CpuStcn`], [`CpuMivos`], [`CpuQdmn`], [`CpuGsfm`], [`CpuImsfr`]. [`accelerate`] wraps a
//! loaded network into the one that implements the same [`MemoryNetwork`] trait and runs on
//! these kernels when the device is burn's CPU backend without autodiff; burn's
//! own ops stay the path for training, for other backends, and for whatever a wrapper does not
//! cover (batches of several frames, queries made by the burn path). The wrapper reads the
//! network's weights once: build it after loading them.
//!
//! Shared work is done once per frame, not once per object: the decoder's skip convolutions on
//! the query's `f8`/`f4` are the same for every object, so they run on one batch row and are
//! added to each object's upsampled features.
//!
//! Each 3×3 stride-1 convolution runs by Winograd's `F(4×4, 3×3)` unless [`CpuOptions`] says
//! otherwise; its rounding error is what the parity tests measure (see the README).
//!
//! Nothing is copied at the [`MemoryNetwork`] boundary: [`to_tensor`] hands a map's buffer to
//! burn as the tensor's storage (NHWC, seen as `[N, C, H, W]` through a permutation), and
//! [`to_nhwc`] reads a tensor so laid out in place — the query's features, the memory bank's
//! keys and values (read frame by frame where they lie), the readout. A tensor laid out
//! otherwise (made by burn's ops, e.g. a wrapper's edit) is converted, and [`conversions`]
//! counts it.


use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use std::sync::Arc;

use burn::backend::flex::{Flex, FlexTensor};
use burn::tensor::{DType, Device, Tensor, TensorData};
use memvos_backbone::{Block, Features, ResNet};
pub use memvos_cpu::{WINOGRAD_MIN_PIXELS, bf16_arithmetic, bf16_products};
use memvos_cpu::{Affinity, BatchNormFold, ConvSpec, Floats, Fuse, Nhwc, PackedConv, SharedFloats, TopKRead, Winograd, bilinear, dft2, idft2_real, max_pool_3x3_s2};
pub use memvos_cpu::Precision;
use memvos_memory::bench::{Kernel, ReadKernel, VALUE_CHANNELS, Workload};
use memvos_memory::{KernelError, MemoryBank, MemoryError, Selection, Similarity, ValueSlot};
use serde::{Deserialize, Serialize};

use crate::AnyNetwork;
use crate::blocks::{Cbam, Decoder, FeatureFusionBlock, MivosDecoder, MivosUpsampleBlock, ResBlock, UpsampleBlock};
use crate::gsfm::{Gsfm, GsfmDecoder};
use crate::imsfr::{Imsfr, PE_FREQUENCIES};
use crate::spectral::{Band, GSFM_SIGMA, SpectralFilter, gaussian_values};
use crate::mivos::{KeyValue, Mivos};
use crate::qdmn::{Aspp, Qdmn, SCORE_INPUT, Score};
use crate::network::{KeyKind, MemoryEncoding, MemoryNetwork, Method, Query};
use crate::stcn::Stcn;

/// Why the CPU path could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// A tensor the CPU path cannot take (type, shape).
    #[error("CPU path: tensor {name}: {reason}")]
    Tensor {
        /// The tensor.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How the CPU path runs its convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvAlgo {
    /// 3×3 stride-1 convolutions by Winograd `F(4×4, 3×3)` (the default), except those with
    /// at least [`F4_MAX_CHANNEL_PAIRS`] input × output channels, by `F(2×2, 3×3)` — outside
    /// STCN's decoder, which runs [`ConvAlgo::F4All`] (see [`CpuOptions::for_decoder`]).
    F4,
    /// Every 3×3 stride-1 convolution by `F(4×4, 3×3)`: the fastest, and the most memory (the
    /// transformed weights of a 1,024 → 512 convolution take 75 MB, 34 MB in `F(2×2)`).
    #[serde(rename = "f4all")]
    F4All,
    /// By Winograd `F(2×2, 3×3)`: fewer savings, smaller rounding error.
    F2,
    /// Every convolution as a plain matrix product of patches (im2col): the most exact.
    Gemm,
}

/// From this many input × output channels (512 × 512) [`ConvAlgo::F4`] runs a 3×3 convolution
/// by `F(2×2, 3×3)`. Those are the decoders' and fusers' convolutions on 1/16- and 1/8-scale
/// maps, where `F(4×4)`'s transformed weights (4× the plain ones; `F(2×2)`'s 1.8×) cost the
/// most memory. Since Winograd runs in passes (each transformed weight read once a pass, not
/// once per block of a few dozen tiles), `F(4×4)` is the faster there too (2 threads, 480p:
/// 1,024 → 512 at 30×54 14.5 ms against 20.1 ms, 512 → 512 at 60×108 27 against 40 ms), so
/// this is a memory bound: all of them in `F(4×4)` put every method but STCN above PyTorch's
/// peak memory with 3 objects (GSFM 2,187 MiB against 1,900, IMSFR 2,011 against 1,699).
/// STCN's decoder lifts it ([`CpuOptions::for_decoder`]).
pub const F4_MAX_CHANNEL_PAIRS: usize = 512 * 512;

/// Options of the CPU path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuOptions {
    /// How 3×3 stride-1 convolutions are computed.
    pub conv: ConvAlgo,
    /// Winograd runs on maps of at least this many output pixels. 0 (the default): on every
    /// map, and no im2col copy of its weights is kept (about 200 MB less for STCN; at 480p every
    /// such map is larger anyway). [`WINOGRAD_MIN_PIXELS`]: maps below 1,024 output pixels by
    /// im2col, whose weights are a quarter the size — faster on tiny frames, for that memory.
    #[serde(default)]
    pub winograd_from: usize,
    /// How packed weights are stored: float32 (the default) or bfloat16 (half the memory;
    /// bfloat16 products on AMX or AVX-512 BF16 where the CPU has them, see [`Precision`]).
    #[serde(default)]
    pub precision: Precision,
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions { conv: ConvAlgo::F4, winograd_from: 0, precision: Precision::Fp32 }
    }
}

impl From<ConvAlgo> for CpuOptions {
    fn from(conv: ConvAlgo) -> Self {
        CpuOptions { conv, ..Default::default() }
    }
}

impl CpuOptions {
    /// These options with weights stored in `precision`. bfloat16 also runs maps below
    /// [`WINOGRAD_MIN_PIXELS`] by im2col: with bfloat16 products the tiny maps' matrix products
    /// are bound by the bytes of weights read, a quarter for im2col's, and both layouts in
    /// bfloat16 still take less memory than Winograd's alone in float32.
    pub fn with_precision(self, precision: Precision) -> Self {
        let winograd_from = if precision == Precision::Bf16 { WINOGRAD_MIN_PIXELS } else { self.winograd_from };
        CpuOptions { precision, winograd_from, ..self }
    }

    fn winograd(&self) -> Option<Winograd> {
        match self.conv {
            ConvAlgo::F4 | ConvAlgo::F4All => Some(Winograd::F4),
            ConvAlgo::F2 => Some(Winograd::F2),
            ConvAlgo::Gemm => None,
        }
    }

    /// The Winograd variant of a convolution of shape `spec` ([`ConvAlgo::F4`]'s exception).
    fn winograd_for(&self, spec: &ConvSpec) -> Option<Winograd> {
        match self.winograd() {
            Some(Winograd::F4) if self.conv == ConvAlgo::F4 && spec.cin * spec.cout >= F4_MAX_CHANNEL_PAIRS => Some(Winograd::F2),
            w => w,
        }
    }

    /// These options for STCN's decoder: [`ConvAlgo::F4`] becomes [`ConvAlgo::F4All`]. The
    /// decoder runs once per object every frame, and `F(4×4)` on its four ≥ 512-channel
    /// convolutions saved 25 ms of STCN's 555 ms frame at 480p (one run, 1 object) for 126 MB
    /// more weights. STCN's peak memory stays below PyTorch's with it (README); MiVOS's (within
    /// 17 MiB of PyTorch's, measured) and the others' would not, and keep `F(2×2)` there.
    pub fn for_decoder(self) -> Self {
        match self.conv {
            ConvAlgo::F4 => CpuOptions { conv: ConvAlgo::F4All, ..self },
            _ => self,
        }
    }
}

/// Whether `device` runs the CPU path: burn's CPU backend (flex) without autodiff.
pub fn runs_on(device: &Device) -> bool {
    !device.is_autodiff() && *device == Device::flex()
}

/// The network behind the CPU path when `device` is the CPU (every built-in method has one);
/// `None` otherwise (use `net.network()`).
pub fn accelerate(net: &AnyNetwork, device: &Device, opts: CpuOptions) -> Result<Option<Box<dyn MemoryNetwork>>, CpuError> {
    if !runs_on(device) {
        return Ok(None);
    }
    Ok(Some(match net {
        AnyNetwork::Stcn(n) => Box::new(CpuStcn::new(n, device, opts)?),
        AnyNetwork::Mivos(n) => Box::new(CpuMivos::new(n, device, opts)?),
        AnyNetwork::Qdmn(n) => Box::new(CpuQdmn::new(n, device, opts)?),
        AnyNetwork::Gsfm(n) => Box::new(CpuGsfm::new(n, device, opts)?),
        AnyNetwork::Imsfr(n) => Box::new(CpuImsfr::new(n, device, opts)?),
    }))
}

// ---------------------------------------------------------------------------------------------
// Tensors in and out.

fn floats<const D: usize>(t: Tensor<D>, name: &str) -> Result<Vec<f32>, CpuError> {
    t.into_data().try_into_vec_as::<f32>().map_err(|e| CpuError::Tensor { name: name.into(), reason: format!("{e:?}") })
}

/// A `[N, C, H, W]` tensor as an NHWC map. A tensor this path made ([`to_tensor`]: NHWC
/// storage seen through a permutation) is read in place, without a copy; any other (a tensor
/// burn's ops made, one a wrapper network edited) is copied into NHWC order.
pub fn to_nhwc(t: Tensor<4>) -> Nhwc {
    let [n, c, h, w] = t.dims();
    let t = match nhwc_storage(t) {
        Ok(storage) => return Nhwc { n, h, w, c, data: Floats::Shared(Arc::new(storage)) },
        Err(t) => t,
    };
    let start = std::time::Instant::now();
    // The networks' activations are float32 on the CPU backend, which this path requires.
    let v = floats(t, "activation").expect("float activations on the CPU backend");
    let x = Nhwc::from_nchw(&v, n, c, h, w);
    conversions::record(x.data.len(), start);
    x
}

/// An NHWC map as a `[N, C, H, W]` tensor on `device`: the map's own buffer becomes the tensor's
/// storage, in NHWC order, seen through a permutation (no copy; burn's ops read any layout).
/// A map that reads another owner's values in place is copied first.
pub fn to_tensor(x: Nhwc, device: &Device) -> Tensor<4> {
    let Nhwc { n, h, w, c, data } = x;
    let data = if data.is_shared() {
        let start = std::time::Instant::now();
        let v = data.into_vec();
        conversions::record(v.len(), start);
        v
    } else {
        data.into_vec() // the buffer itself
    };
    Tensor::<4>::from_data(TensorData::new(data, [n, h, w, c]), device).permute([0, 3, 1, 2])
}

/// A float32 tensor's storage on burn's CPU backend, read in place by an NHWC map (which keeps
/// it alive: burn's tensors are immutable, so the values cannot change under the map).
struct FlexStorage(FlexTensor);

impl SharedFloats for FlexStorage {
    fn floats(&self) -> &[f32] {
        self.0.storage::<f32>()
    }
}

/// `t`'s storage when it holds exactly `t`'s values in NHWC order (strides `[H·W·C, 1, W·C, C]`
/// on the dimensions longer than 1, from offset 0, nothing else stored), else `t` back.
fn nhwc_storage(t: Tensor<4>) -> Result<FlexStorage, Tensor<4>> {
    let [n, c, h, w] = t.dims();
    let Ok(flex) = t.clone().try_into_primitive::<Flex>() else {
        return Err(t); // another backend, or autodiff
    };
    let layout = flex.layout();
    let expected = [h * w * c, 1, w * c, c];
    let nhwc = [n, c, h, w].iter().zip(expected).zip(layout.strides()).all(|((&len, want), &got)| len <= 1 || got == want as isize);
    if flex.dtype() == DType::F32 && layout.start_offset() == 0 && nhwc && flex.bytes().len() == n * c * h * w * 4 {
        Ok(FlexStorage(flex))
    } else {
        Err(t)
    }
}

/// What the CPU path spends outside its kernels: the conversions between burn's `[N, C, H, W]`
/// tensors and its NHWC maps at the [`MemoryNetwork`] boundary (each a copy with a transpose
/// into a new buffer). `stage_times` reports them per streamed frame.
pub mod conversions {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::Instant;

    static COUNT: AtomicU64 = AtomicU64::new(0);
    static VALUES: AtomicU64 = AtomicU64::new(0);
    static NANOS: AtomicU64 = AtomicU64::new(0);

    /// Conversions since the process started (or the difference of two [`counts`]).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Conversions {
        /// Tensors converted (either way).
        pub count: u64,
        /// Their float32 values.
        pub values: u64,
        /// Wall time spent in them, nanoseconds.
        pub nanos: u64,
    }

    impl std::ops::Sub for Conversions {
        type Output = Conversions;

        fn sub(self, o: Conversions) -> Conversions {
            Conversions { count: self.count - o.count, values: self.values - o.values, nanos: self.nanos - o.nanos }
        }
    }

    /// The totals so far.
    pub fn counts() -> Conversions {
        Conversions { count: COUNT.load(Relaxed), values: VALUES.load(Relaxed), nanos: NANOS.load(Relaxed) }
    }

    pub(super) fn record(values: usize, start: Instant) {
        COUNT.fetch_add(1, Relaxed);
        VALUES.fetch_add(values as u64, Relaxed);
        NANOS.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// Packing burn modules.

/// A burn conv's shape, weight and bias.
fn parts(conv: &Conv2d, name: &str) -> Result<(ConvSpec, Vec<f32>, Option<Vec<f32>>), CpuError> {
    let [cout, cin, kh, kw] = conv.weight.dims();
    let bad = |reason: String| CpuError::Tensor { name: name.into(), reason };
    let pad = match conv.padding {
        PaddingConfig2d::Explicit(t, l, b, r) if t == l && l == b && b == r => t,
        PaddingConfig2d::Valid => 0,
        ref p => return Err(bad(format!("padding {p:?} is not symmetric"))),
    };
    if kh != kw || conv.stride[0] != conv.stride[1] || conv.dilation[0] != conv.dilation[1] || conv.dilation[0] == 0 || conv.groups != 1 {
        return Err(bad(format!("a {kh}x{kw} conv with stride {:?}, dilation {:?}, groups {} is not covered", conv.stride, conv.dilation, conv.groups)));
    }
    let spec = ConvSpec { cin, cout, k: kh, stride: conv.stride[0], pad, dilation: conv.dilation[0] };
    let bias = conv.bias.as_ref().map(|b| floats(b.val(), name)).transpose()?;
    Ok((spec, floats(conv.weight.val(), name)?, bias))
}

fn pack(conv: &Conv2d, bn: Option<&BatchNorm>, name: &str, opts: CpuOptions) -> Result<PackedConv, CpuError> {
    let (spec, weight, bias) = parts(conv, name)?;
    let bn_vals = bn
        .map(|bn| -> Result<_, CpuError> { Ok((floats(bn.gamma.val(), name)?, floats(bn.beta.val(), name)?, floats(bn.running_mean.value(), name)?, floats(bn.running_var.value(), name)?, bn.epsilon)) })
        .transpose()?;
    let fold = bn_vals.as_ref().map(|(g, b, m, v, eps)| BatchNormFold { gamma: g, beta: b, mean: m, var: v, eps: *eps });
    Ok(PackedConv::new(spec, &weight, bias.as_deref(), fold, opts.winograd_for(&spec)).with_winograd_from(opts.winograd_from).with_precision(opts.precision))
}

/// Two convolutions of one input as one, their output channels concatenated (`a`'s first).
fn pack_pair(a: &Conv2d, b: &Conv2d, name: &str, opts: CpuOptions) -> Result<(PackedConv, usize), CpuError> {
    let (sa, mut wa, ba) = parts(a, name)?;
    let (sb, wb, bb) = parts(b, name)?;
    if (sa.cin, sa.k, sa.stride, sa.pad, sa.dilation) != (sb.cin, sb.k, sb.stride, sb.pad, sb.dilation) {
        return Err(CpuError::Tensor { name: name.into(), reason: format!("{sa:?} and {sb:?} differ in more than their outputs") });
    }
    wa.extend(wb);
    let zeros = |c: usize| vec![0.0; c];
    let mut bias = ba.unwrap_or_else(|| zeros(sa.cout));
    bias.extend(bb.unwrap_or_else(|| zeros(sb.cout)));
    let spec = ConvSpec { cout: sa.cout + sb.cout, ..sa };
    Ok((PackedConv::new(spec, &wa, Some(&bias), None, opts.winograd_for(&spec)).with_winograd_from(opts.winograd_from).with_precision(opts.precision), sa.cout))
}

// ---------------------------------------------------------------------------------------------
// ResNet trunks.

struct CpuBlock {
    conv1: PackedConv,
    conv2: PackedConv,
    conv3: Option<PackedConv>,
    downsample: Option<PackedConv>,
}

impl CpuBlock {
    fn new(b: &Block, name: &str, opts: CpuOptions) -> Result<Self, CpuError> {
        let conv3 = match (&b.conv3, &b.bn3) {
            (Some(c), Some(bn)) => Some(pack(c, Some(bn), &format!("{name}.conv3"), opts)?),
            _ => None,
        };
        Ok(CpuBlock {
            conv1: pack(&b.conv1, Some(&b.bn1), &format!("{name}.conv1"), opts)?,
            conv2: pack(&b.conv2, Some(&b.bn2), &format!("{name}.conv2"), opts)?,
            conv3,
            downsample: b.downsample.as_ref().map(|d| pack(&d.conv, Some(&d.bn), &format!("{name}.downsample"), opts)).transpose()?,
        })
    }

    fn forward(&self, x: Nhwc) -> Nhwc {
        let identity = self.downsample.as_ref().map(|d| d.forward(&x, Fuse::default()));
        let identity = identity.as_ref().unwrap_or(&x);
        let relu = Fuse { relu: true, ..Fuse::default() };
        let out = self.conv1.forward(&x, relu);
        let last = Fuse { residual: Some(identity), relu: true, ..Fuse::default() };
        match &self.conv3 {
            Some(c3) => c3.forward(&self.conv2.forward(&out, relu), last),
            None => self.conv2.forward(&out, last),
        }
    }
}

/// A ResNet trunk to `layer3` on the CPU path.
pub struct CpuResNet {
    conv1: PackedConv,
    layers: [Vec<CpuBlock>; 3],
}

impl CpuResNet {
    /// The trunk `r` packed for the CPU (`name` names its tensors in errors).
    pub fn new(r: &ResNet, name: &str, opts: CpuOptions) -> Result<Self, CpuError> {
        let layer = |blocks: &[Block], l: usize| -> Result<Vec<CpuBlock>, CpuError> { blocks.iter().enumerate().map(|(i, b)| CpuBlock::new(b, &format!("{name}.layer{l}.{i}"), opts)).collect() };
        Ok(CpuResNet { conv1: pack(&r.conv1, Some(&r.bn1), &format!("{name}.conv1"), opts)?, layers: [layer(&r.layer1, 1)?, layer(&r.layer2, 2)?, layer(&r.layer3, 3)?] })
    }

    /// `[f4, f8, f16]` of an NHWC input.
    pub fn forward(&self, x: &Nhwc) -> [Nhwc; 3] {
        let x = self.conv1.forward(x, Fuse { relu: true, ..Fuse::default() });
        let x = max_pool_3x3_s2(&x);
        let f4 = self.layers[0].iter().fold(x, |x, b| b.forward(x));
        let f8 = self.layers[1].iter().fold(f4.clone(), |x, b| b.forward(x));
        let f16 = self.layers[2].iter().fold(f8.clone(), |x, b| b.forward(x));
        [f4, f8, f16]
    }
}

// ---------------------------------------------------------------------------------------------
// The memory networks' blocks.

/// [`ResBlock`]: `skip(x) + conv2(relu(conv1(relu(x))))`, the add fused into `conv2`.
struct CpuResBlock {
    conv1: PackedConv,
    conv2: PackedConv,
    downsample: Option<PackedConv>,
}

impl CpuResBlock {
    fn new(b: &ResBlock, name: &str, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuResBlock {
            conv1: pack(&b.conv1, None, &format!("{name}.conv1"), opts)?,
            conv2: pack(&b.conv2, None, &format!("{name}.conv2"), opts)?,
            downsample: b.downsample.as_ref().map(|d| pack(d, None, &format!("{name}.downsample"), opts)).transpose()?,
        })
    }

    fn forward(&self, x: &Nhwc) -> Nhwc {
        let r = self.conv1.forward(x, Fuse { relu_input: true, relu: true, ..Fuse::default() });
        let skip = self.downsample.as_ref().map(|d| d.forward(x, Fuse::default()));
        self.conv2.forward(&r, Fuse { residual: Some(skip.as_ref().unwrap_or(x)), ..Fuse::default() })
    }
}

/// [`Cbam`]: the channel gate's two-layer MLP on average and max pooling, then the spatial gate.
struct CpuCbam {
    /// `[C][C/16]`, `[C/16]`, `[C/16][C]`, `[C]` (burn's `Linear` layout, `x · W + b`).
    fc1: (Vec<f32>, Vec<f32>),
    fc2: (Vec<f32>, Vec<f32>),
    spatial: PackedConv,
}

fn linear(l: &Linear, name: &str) -> Result<(Vec<f32>, Vec<f32>), CpuError> {
    let [_, o] = l.weight.dims();
    let b = match &l.bias {
        Some(b) => floats(b.val(), name)?,
        None => vec![0.0; o],
    };
    Ok((floats(l.weight.val(), name)?, b))
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl CpuCbam {
    fn new(c: &Cbam, name: &str, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuCbam {
            fc1: linear(&c.channel_gate.fc1, &format!("{name}.channel_gate.fc1"))?,
            fc2: linear(&c.channel_gate.fc2, &format!("{name}.channel_gate.fc2"))?,
            spatial: pack(&c.spatial_gate.conv, None, &format!("{name}.spatial_gate.conv"), opts)?,
        })
    }

    fn mlp(&self, v: &[f32]) -> Vec<f32> {
        let apply = |x: &[f32], (w, b): &(Vec<f32>, Vec<f32>), relu: bool| -> Vec<f32> {
            let o = b.len();
            let mut y = b.clone();
            for (i, &xi) in x.iter().enumerate() {
                y.iter_mut().zip(&w[i * o..(i + 1) * o]).for_each(|(a, &wv)| *a += xi * wv);
            }
            if relu {
                y.iter_mut().for_each(|a| *a = a.max(0.0));
            }
            y
        };
        apply(&apply(v, &self.fc1, true), &self.fc2, false)
    }

    fn forward(&self, x: &Nhwc) -> Nhwc {
        let (c, hw) = (x.c, x.h * x.w);
        let mut gated = x.clone();
        let mut pooled = Nhwc::zeros(x.n, x.h, x.w, 2);
        for b in 0..x.n {
            let plane = &x.data[b * hw * c..(b + 1) * hw * c];
            let (mut sum, mut max) = (vec![0.0f64; c], vec![f32::NEG_INFINITY; c]);
            for px in plane.chunks(c) {
                for (i, &v) in px.iter().enumerate() {
                    sum[i] += v as f64;
                    max[i] = max[i].max(v);
                }
            }
            let avg: Vec<f32> = sum.iter().map(|s| (s / hw as f64) as f32).collect();
            let scale: Vec<f32> = self.mlp(&avg).iter().zip(self.mlp(&max)).map(|(a, m)| sigmoid(a + m)).collect();
            let g = &mut gated.data[b * hw * c..(b + 1) * hw * c];
            for (px, out) in g.chunks_mut(c).zip(pooled.data[b * hw * 2..(b + 1) * hw * 2].chunks_mut(2)) {
                let (mut m, mut s) = (f32::NEG_INFINITY, 0.0f32);
                for (v, &sc) in px.iter_mut().zip(&scale) {
                    *v *= sc;
                    m = m.max(*v);
                    s += *v;
                }
                out[0] = m;
                out[1] = s / c as f32;
            }
        }
        gate_pixels(&mut gated, &self.spatial.forward(&pooled, Fuse::default()));
        gated
    }
}

/// `x · σ(logits)`: every channel of each pixel scaled by its one-channel gate.
fn gate_pixels(x: &mut Nhwc, logits: &Nhwc) {
    let c = x.c;
    for (px, &l) in x.data.chunks_mut(c).zip(&logits.data) {
        let s = sigmoid(l);
        px.iter_mut().for_each(|v| *v *= s);
    }
}

/// [`FeatureFusionBlock`]: `block2(x + cbam(x))` with `x = block1(cat[values, key f16])`.
struct CpuFuser {
    block1: CpuResBlock,
    attention: CpuCbam,
    block2: CpuResBlock,
}

impl CpuFuser {
    fn new(f: &FeatureFusionBlock, name: &str, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuFuser {
            block1: CpuResBlock::new(&f.block1, &format!("{name}.block1"), opts)?,
            attention: CpuCbam::new(&f.attention, &format!("{name}.attention"), opts)?,
            block2: CpuResBlock::new(&f.block2, &format!("{name}.block2"), opts)?,
        })
    }

    fn forward(&self, x: &Nhwc, f16: &Nhwc) -> Nhwc {
        let f16 = if f16.n == x.n { f16.clone() } else { f16.repeat(x.n) };
        let x = self.block1.forward(&Nhwc::concat(x, &f16));
        let mut y = self.attention.forward(&x);
        y.add_assign(&x);
        self.block2.forward(&y)
    }
}

/// [`UpsampleBlock`], `out_conv(skip_conv(skip) + up×2(up))`, or MiVOS's
/// [`MivosUpsampleBlock`], whose skip path has one more ResBlock (`skip_conv2`).
struct CpuUpsample {
    skip_conv: PackedConv,
    skip_block: Option<CpuResBlock>,
    out_conv: CpuResBlock,
}

impl CpuUpsample {
    fn new(u: &UpsampleBlock, name: &str, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuUpsample { skip_conv: pack(&u.skip_conv, None, &format!("{name}.skip_conv"), opts)?, skip_block: None, out_conv: CpuResBlock::new(&u.out_conv, &format!("{name}.out_conv"), opts)? })
    }

    fn mivos(u: &MivosUpsampleBlock, name: &str, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuUpsample {
            skip_conv: pack(&u.skip_conv1, None, &format!("{name}.skip_conv1"), opts)?,
            skip_block: Some(CpuResBlock::new(&u.skip_conv2, &format!("{name}.skip_conv2"), opts)?),
            out_conv: CpuResBlock::new(&u.out_conv, &format!("{name}.out_conv"), opts)?,
        })
    }

    /// `skip` of one batch row (the query's, shared by the objects) or of `up`'s rows.
    fn forward(&self, skip: &Nhwc, up: &Nhwc) -> Nhwc {
        let mut up2 = bilinear(up, 2 * up.h, 2 * up.w);
        let x = match &self.skip_block {
            None if skip.n == up.n => self.skip_conv.forward(skip, Fuse { residual: Some(&up2), ..Fuse::default() }),
            None => {
                up2.add_broadcast(&self.skip_conv.forward(skip, Fuse::default()));
                up2
            }
            Some(block) => {
                up2.add_broadcast(&block.forward(&self.skip_conv.forward(skip, Fuse::default())));
                up2
            }
        };
        self.out_conv.forward(&x)
    }
}

/// STCN's [`Decoder`] or MiVOS's [`MivosDecoder`] (which differ in their upsampling blocks).
struct CpuDecoder {
    compress: CpuResBlock,
    up_16_8: CpuUpsample,
    up_8_4: CpuUpsample,
    pred: PackedConv,
}

impl CpuDecoder {
    fn new(d: &Decoder, opts: CpuOptions) -> Result<Self, CpuError> {
        Self::stcn(&d.compress, &d.up_16_8, &d.up_8_4, &d.pred, opts)
    }

    /// STCN's decoder from its parts (GSFM's decoder begins with them).
    fn stcn(compress: &ResBlock, up_16_8: &UpsampleBlock, up_8_4: &UpsampleBlock, pred: &Conv2d, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuDecoder {
            compress: CpuResBlock::new(compress, "decoder.compress", opts)?,
            up_16_8: CpuUpsample::new(up_16_8, "decoder.up_16_8", opts)?,
            up_8_4: CpuUpsample::new(up_8_4, "decoder.up_8_4", opts)?,
            pred: pack(pred, None, "decoder.pred", opts)?,
        })
    }

    fn mivos(d: &MivosDecoder, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuDecoder {
            compress: CpuResBlock::new(&d.compress, "decoder.compress", opts)?,
            up_16_8: CpuUpsample::mivos(&d.up_16_8, "decoder.up_16_8", opts)?,
            up_8_4: CpuUpsample::mivos(&d.up_8_4, "decoder.up_8_4", opts)?,
            pred: pack(&d.pred, None, "decoder.pred", opts)?,
        })
    }

    /// The upsampled features at 1/4 `[K, 4h, 4w, C]` from `x` `[K, h, w, C_in]` and the query's
    /// skips (one row each).
    fn features(&self, x: &Nhwc, f8: &Nhwc, f4: &Nhwc) -> Nhwc {
        let x = self.compress.forward(x);
        let x = self.up_16_8.forward(f8, &x);
        self.up_8_4.forward(f4, &x)
    }

    /// `pred(relu(x))` upsampled ×4: the logits `[K, 16h, 16w, 1]`.
    fn logits(&self, x: &Nhwc) -> Nhwc {
        let p = self.pred.forward(x, Fuse { relu_input: true, ..Fuse::default() });
        bilinear(&p, 4 * p.h, 4 * p.w)
    }

    /// The logits of `readout` (`[K, C_v, h, w]`) next to the query's `v16` (through `aspp`
    /// first, QDMN's), on the query's skips, as a tensor on `device`.
    fn decode(&self, query: &Query, readout: Tensor<4>, aspp: Option<&CpuAspp>, device: &Device) -> Tensor<4> {
        let (x, f8, f4) = decoder_inputs(query, readout);
        let x = match aspp {
            Some(a) => a.forward(&x),
            None => x,
        };
        to_tensor(self.logits(&self.features(&x, &f8, &f4)), device)
    }
}

/// A decoder's inputs: the readout next to the query's `v16` (a row per object), and the query's
/// `f8` and `f4` skips (one row).
fn decoder_inputs(query: &Query, readout: Tensor<4>) -> (Nhwc, Nhwc, Nhwc) {
    let r = to_nhwc(readout);
    let x = Nhwc::concat(&r, &to_nhwc(query.v16.clone()).repeat(r.n));
    (x, to_nhwc(query.features.f8.clone()), to_nhwc(query.features.f4.clone()))
}

/// `net`'s own decode for a batch of queries (the CPU path takes one frame at a time), else
/// `cpu`'s: the one guard every CPU network's `decode` shares.
fn decode_one(net: &dyn MemoryNetwork, query: &Query, readout: Tensor<4>, cpu: impl FnOnce(&Query, Tensor<4>) -> Tensor<4>) -> Tensor<4> {
    if query.v16.dims()[0] != 1 {
        return net.decode(query, readout);
    }
    cpu(query, readout)
}

/// A trunk and its key/value heads (one convolution, the key's `key_dim` channels first) on one
/// frame `[1, 3, H, W]`: the query of the methods' figure. `gate` may give the heads another
/// input than the trunk's `f16` (QDMN's gated features); the query keeps the trunk's.
fn encode_frame(trunk: &CpuResNet, heads: &PackedConv, key_dim: usize, frame: Tensor<4>, gate: impl FnOnce(&Nhwc) -> Option<Nhwc>, device: &Device) -> Query {
    let [f4, f8, f16] = trunk.forward(&to_nhwc(frame));
    let gated = gate(&f16);
    let (k16, v16) = heads.forward(gated.as_ref().unwrap_or(&f16), Fuse::default()).split_channels(key_dim);
    let d = device;
    Query { k16: to_tensor(k16, d), v16: to_tensor(v16, d), features: Features { f4: to_tensor(f4, d), f8: to_tensor(f8, d), f16: to_tensor(f16, d) } }
}

/// STCN's value encoder (GSFM's, IMSFR's): the trunk on `[RGB, own mask, others]`, its `f16`
/// fused with the query's.
struct CpuValueEncoder {
    trunk: CpuResNet,
    in_channels: usize,
    fuser: CpuFuser,
}

impl CpuValueEncoder {
    fn new(trunk: &ResNet, fuser: &FeatureFusionBlock, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuValueEncoder { trunk: CpuResNet::new(trunk, "value_encoder", opts)?, in_channels: trunk.conv1.weight.dims()[1], fuser: CpuFuser::new(fuser, "value_encoder.fuser", opts)? })
    }

    /// The values `[K, h, w, C_v]` of `frame` for `K` objects' `masks`. The query's features are
    /// read from the query itself (one source of truth).
    fn encode(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>) -> Nhwc {
        let f16 = memory_f16(&self.trunk, self.in_channels, frame, masks);
        self.fuser.forward(&f16, &to_nhwc(query.features.f16.clone()))
    }
}

/// A memory (value) encoder's `f16` for `K` objects of one frame: `[K, h, w, C]` from the frame
/// `[1, 3, H, W]` and the masks `[K, 1, H, W]` (input `[RGB, own mask, others]`, or `[RGB,
/// mask]` for a 4-channel encoder).
fn memory_f16(trunk: &CpuResNet, in_channels: usize, frame: Tensor<4>, masks: Tensor<4>) -> Nhwc {
    let k = masks.dims()[0];
    let m = floats(masks, "masks").expect("float masks on the CPU backend");
    let [_, _, f16] = trunk.forward(&value_input(&to_nhwc(frame), &m, k, in_channels));
    f16
}

// ---------------------------------------------------------------------------------------------
// Networks.

/// What a CPU network is (method, keys, affinity, the inputs it wants) comes from the burn
/// network it was built from, `self.net`.
macro_rules! same_network_as_burn {
    () => {
        fn method(&self) -> Method {
            self.net.method()
        }

        fn key_kind(&self) -> KeyKind {
            self.net.key_kind()
        }

        fn similarity(&self) -> Similarity {
            self.net.similarity()
        }

        fn has_quality_head(&self) -> bool {
            self.net.has_quality_head()
        }

        fn uses_previous_mask(&self) -> bool {
            self.net.uses_previous_mask()
        }

        fn uses_next_frame(&self) -> bool {
            self.net.uses_next_frame()
        }
    };
    // And its memory read is the bank's own, on the CPU where `read_topk` covers it.
    (top_k_read) => {
        same_network_as_burn!();

        fn read_memory(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> Result<Tensor<4>, MemoryError> {
            read_or(&self.net, query, bank, positions, &self.device)
        }
    };
}

/// STCN on the CPU path.
pub struct CpuStcn {
    /// The burn network (a cheap clone sharing its weights), for what the path does not cover.
    net: Stcn,
    device: Device,
    key_encoder: CpuResNet,
    /// `key_proj` and `key_comp` as one convolution; the first `key_dim` channels are the key.
    key_heads: PackedConv,
    key_dim: usize,
    value_encoder: CpuValueEncoder,
    decoder: CpuDecoder,
}

impl CpuStcn {
    /// STCN packed for the CPU; its outputs come back as tensors on `device`.
    pub fn new(net: &Stcn, device: &Device, opts: CpuOptions) -> Result<Self, CpuError> {
        let (key_heads, key_dim) = pack_pair(&net.key_proj.key_proj, &net.key_comp, "key_proj/key_comp", opts)?;
        Ok(CpuStcn {
            net: net.clone(),
            device: device.clone(),
            key_encoder: CpuResNet::new(&net.key_encoder, "key_encoder", opts)?,
            key_heads,
            key_dim,
            value_encoder: CpuValueEncoder::new(&net.value_encoder.trunk, &net.value_encoder.fuser, opts)?,
            decoder: CpuDecoder::new(&net.decoder, opts.for_decoder())?,
        })
    }
}

/// The value encoder's NHWC input: `[RGB, own mask, others]` per object (4 channels: no others).
fn value_input(frame: &Nhwc, masks: &[f32], k: usize, channels: usize) -> Nhwc {
    let hw = frame.h * frame.w;
    let mut x = Nhwc::zeros(k, frame.h, frame.w, channels);
    for o in 0..k {
        for p in 0..hw {
            let dst = &mut x.data[(o * hw + p) * channels..(o * hw + p + 1) * channels];
            dst[..3].copy_from_slice(&frame.data[p * 3..p * 3 + 3]);
            dst[3] = masks[o * hw + p];
            if channels == 5 {
                dst[4] = (0..k).filter(|&j| j != o).map(|j| masks[j * hw + p]).sum();
            }
        }
    }
    x
}

/// memvos's CPU top-k read ([`TopKRead`]) as a benchmark [`ReadKernel`], beside burn's tensor
/// kernels in `kernel_table` and `benches/affinity.rs`: the same workloads, L2 affinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTopKRead {
    /// Memory positions kept per query position.
    pub top: usize,
}

impl ReadKernel for CpuTopKRead {
    fn name(&self) -> String {
        format!("memvos cpu read top-{}", self.top)
    }

    fn flops(&self, w: &Workload) -> f64 {
        let (n, m) = (w.n() as f64, w.m() as f64);
        2.0 * n * m * w.key_channels as f64 + 2.0 * VALUE_CHANNELS as f64 * (self.top as f64).min(n) * m
    }

    fn prepare<'a>(&'a self, w: &'a Workload) -> Result<Box<dyn FnMut() -> Result<(), KernelError> + 'a>, KernelError> {
        let data = |t: &Tensor<3>, what: &'static str| floats(t.clone(), what).map_err(|e| KernelError::Shape { what, detail: e.to_string() });
        let (keys, values, query) = (data(&w.memory_keys, "memory keys")?, data(&w.memory_values, "memory values")?, data(&w.query_keys, "query keys")?);
        if self.top == 0 {
            return Err(KernelError::TopK { k: 0, n: w.n() });
        }
        let (ck, n, m) = (w.key_channels, w.n(), w.m());
        // The workload's channel-major operands in this read's position-major order (before the
        // timed part, as the CPU path's maps already are).
        let position_major = |x: &[f32], c: usize, p: usize| Nhwc::from_nchw(x, 1, c, 1, p).data.into_vec();
        let (keys, values, query) = (position_major(&keys, ck, n), position_major(&values, VALUE_CHANNELS, n), position_major(&query, ck, m));
        Ok(Box::new(move || {
            let key_blocks = [&keys[..]];
            let value_blocks = [vec![&values[..]]];
            let read = TopKRead { keys: &key_blocks, values: &value_blocks, query: &query, ck, cv: VALUE_CHANNELS, top: self.top, affinity: Affinity::L2 };
            std::hint::black_box(read.run());
            Ok(())
        }))
    }
}

/// Every read kernel the benchmarks compare: burn's ([`Kernel::ALL`]), then memvos's CPU top-20
/// read (comparable with "read top-20").
pub fn read_kernels() -> Vec<Box<dyn ReadKernel>> {
    let mut all: Vec<Box<dyn ReadKernel>> = Kernel::ALL.into_iter().map(|k| Box::new(k) as Box<dyn ReadKernel>).collect();
    all.push(Box::new(CpuTopKRead { top: 20 }));
    all
}

/// One read of `bank` on [`TopKRead`]: the entries at `positions` (plus the temporary one when
/// `temporary`), their `slot` values, the `top` largest affinities of each query position (`top`
/// ≥ the memory's size: the full softmax). Keys shared by the objects (`[1, C_k, h, w]` a frame,
/// one read for all of them) or one set per object (`[K, C_k, h, w]`, a read per object). Each
/// stored frame is read where it lies: in place when this path wrote it (NHWC storage), copied
/// into NHWC order otherwise (a frame the burn path wrote). Returns the readout `[K, h, w, C_v]`,
/// or `None` where the path does not cover the read (several query rows, shapes the burn path's
/// checks should name), which the burn path then does.
fn read_on_cpu(query: &Query, bank: &MemoryBank, positions: &[usize], temporary: bool, slot: ValueSlot, top: usize) -> Result<Option<Nhwc>, MemoryError> {
    let [b, ck, h, w] = query.k16.dims();
    if b != 1 || top == 0 {
        return Ok(None);
    }
    let frames: Vec<(Nhwc, Nhwc)> = bank.frames_read(Some(positions), temporary, slot)?.into_iter().map(|(k, v)| (to_nhwc(k), to_nhwc(v))).collect();
    let Some((k0, v0)) = frames.first() else { return Ok(None) };
    let (groups, objects, cv) = (k0.n, v0.n, v0.c);
    let fits = |(k, v): &(Nhwc, Nhwc)| k.c == ck && k.n == groups && v.n == objects && v.c == cv && (k.h, k.w) == (v.h, v.w);
    if !frames.iter().all(fits) || (groups != 1 && groups != objects) {
        return Ok(None);
    }
    let affinity = match bank.config().similarity {
        Similarity::L2 => Affinity::L2,
        Similarity::Dot => Affinity::Dot,
    };
    let q = to_nhwc(query.k16.clone());
    // Row `o` of a frame's `[rows, h, w, C]` map.
    let row = |x: &'_ Nhwc, o: usize| -> std::ops::Range<usize> {
        let len = x.h * x.w * x.c;
        o * len..(o + 1) * len
    };
    let values: Vec<Vec<&[f32]>> = (0..objects).map(|o| frames.iter().map(|(_, v)| &v.data[row(v, o)]).collect()).collect();
    let out = if groups == 1 {
        let keys: Vec<&[f32]> = frames.iter().map(|(k, _)| &k.data[..]).collect();
        TopKRead { keys: &keys, values: &values, query: &q.data, ck, cv, top, affinity }.run()
    } else {
        (0..objects)
            .flat_map(|o| {
                let keys: Vec<&[f32]> = frames.iter().map(|(k, _)| &k.data[row(k, o)]).collect();
                TopKRead { keys: &keys, values: &values[o..o + 1], query: &q.data, ck, cv, top, affinity }.run()
            })
            .collect()
    };
    Ok(Some(Nhwc { n: objects, h, w, c: cv, data: out.into() }))
}

/// The bank's own read (top-k in one piece, the temporary entry included) on [`TopKRead`];
/// `None` leaves it (and its error messages) to the burn path, as for the kernelised memory or a
/// chunked read.
fn read_topk(query: &Query, bank: &MemoryBank, positions: &[usize], device: &Device) -> Result<Option<Tensor<4>>, MemoryError> {
    let cfg = bank.config();
    let (Selection::TopK(top), None) = (cfg.selection, cfg.chunk) else { return Ok(None) };
    Ok(read_on_cpu(query, bank, positions, true, ValueSlot::Value, top)?.map(|out| to_tensor(out, device)))
}

/// The memory read on the CPU path where it covers the bank's read, else `net`'s.
fn read_or(net: &dyn MemoryNetwork, query: &Query, bank: &MemoryBank, positions: &[usize], device: &Device) -> Result<Tensor<4>, MemoryError> {
    match read_topk(query, bank, positions, device)? {
        Some(r) => Ok(r),
        None => net.read_memory(query, bank, positions),
    }
}

impl MemoryNetwork for CpuStcn {
    same_network_as_burn!(top_k_read);

    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query {
        if frame.dims()[0] != 1 {
            return self.net.encode_query(frame, previous);
        }
        encode_frame(&self.key_encoder, &self.key_heads, self.key_dim, frame, |_| None, &self.device)
    }

    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding {
        if frame.dims()[0] != 1 || query.features.f16.dims()[0] != 1 {
            return self.net.encode_memory(frame, query, masks, next);
        }
        let value = self.value_encoder.encode(frame, query, masks);
        MemoryEncoding { key: query.k16.clone(), value: to_tensor(value, &self.device), aux: None, quality: None }
    }

    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        decode_one(&self.net, query, readout, |q, r| self.decoder.decode(q, r, None, &self.device))
    }
}

/// What MiVOS and QDMN share on the CPU path: the query's ResNet-50 and its key/value heads
/// (`kv_q_f16`, one convolution), the memory encoder's ResNet-50 on `[RGB, own mask, others]`
/// and its heads (`kv_m_f16`), MiVOS's decoder.
struct CpuMivosCore {
    rgb_encoder: CpuResNet,
    /// `kv_q_f16`'s key and value projections as one convolution; the first `key_dim` channels
    /// are the key.
    kv_q_f16: PackedConv,
    mask_rgb_encoder: CpuResNet,
    /// `kv_m_f16`'s key and value projections as one convolution.
    kv_m_f16: PackedConv,
    key_dim: usize,
    memory_in: usize,
    decoder: CpuDecoder,
}

impl CpuMivosCore {
    fn new(rgb_encoder: &ResNet, kv_q_f16: &KeyValue, mask_rgb_encoder: &ResNet, kv_m_f16: &KeyValue, decoder: &MivosDecoder, opts: CpuOptions) -> Result<Self, CpuError> {
        let (q_heads, key_dim) = pack_pair(&kv_q_f16.key_proj, &kv_q_f16.val_proj, "kv_q_f16", opts)?;
        let (m_heads, memory_key_dim) = pack_pair(&kv_m_f16.key_proj, &kv_m_f16.val_proj, "kv_m_f16", opts)?;
        if memory_key_dim != key_dim {
            return Err(CpuError::Tensor { name: "kv_m_f16.key_proj".into(), reason: format!("{memory_key_dim} key channels, the query's have {key_dim}") });
        }
        Ok(CpuMivosCore {
            rgb_encoder: CpuResNet::new(rgb_encoder, "rgb_encoder", opts)?,
            kv_q_f16: q_heads,
            mask_rgb_encoder: CpuResNet::new(mask_rgb_encoder, "mask_rgb_encoder", opts)?,
            kv_m_f16: m_heads,
            key_dim,
            memory_in: mask_rgb_encoder.conv1.weight.dims()[1],
            decoder: CpuDecoder::mivos(decoder, opts)?,
        })
    }

    /// The memory encoder's `f16` for `K` objects, and their keys and values from it.
    fn encode_memory(&self, frame: Tensor<4>, masks: Tensor<4>, device: &Device) -> (Nhwc, MemoryEncoding) {
        let f16 = memory_f16(&self.mask_rgb_encoder, self.memory_in, frame, masks);
        let (key, value) = self.kv_m_f16.forward(&f16, Fuse::default()).split_channels(self.key_dim);
        (f16, MemoryEncoding { key: to_tensor(key, device), value: to_tensor(value, device), aux: None, quality: None })
    }
}

/// MiVOS on the CPU path (`CpuMivosCore`), each object's top-k read over its own keys.
pub struct CpuMivos {
    /// The burn network (a cheap clone sharing its weights), for what the path does not cover.
    net: Mivos,
    device: Device,
    core: CpuMivosCore,
}

impl CpuMivos {
    /// MiVOS packed for the CPU; its outputs come back as tensors on `device`.
    pub fn new(net: &Mivos, device: &Device, opts: CpuOptions) -> Result<Self, CpuError> {
        let core = CpuMivosCore::new(&net.rgb_encoder, &net.kv_q_f16, &net.mask_rgb_encoder, &net.kv_m_f16, &net.decoder, opts)?;
        Ok(CpuMivos { net: net.clone(), device: device.clone(), core })
    }
}

impl MemoryNetwork for CpuMivos {
    same_network_as_burn!(top_k_read);

    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query {
        if frame.dims()[0] != 1 {
            return self.net.encode_query(frame, previous);
        }
        let c = &self.core;
        encode_frame(&c.rgb_encoder, &c.kv_q_f16, c.key_dim, frame, |_| None, &self.device)
    }

    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding {
        if frame.dims()[0] != 1 {
            return self.net.encode_memory(frame, query, masks, next);
        }
        self.core.encode_memory(frame, masks, &self.device).1
    }

    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        decode_one(&self.net, query, readout, |q, r| self.core.decoder.decode(q, r, None, &self.device))
    }
}

/// QDMN's [`Aspp`]: the 1×1 and the three atrous branches and the image-pooling one, each with
/// its BatchNorm folded and its ReLU fused, concatenated, then `conv1` (BatchNorm `bn1`, ReLU).
struct CpuAspp {
    branches: [PackedConv; 4],
    pool: PackedConv,
    conv1: PackedConv,
}

impl CpuAspp {
    fn new(a: &Aspp, opts: CpuOptions) -> Result<Self, CpuError> {
        let branch = |b: &crate::qdmn::AsppBranch, name: &str| pack(&b.atrous_conv, Some(&b.bn), &format!("aspp.{name}.atrous_conv"), opts);
        Ok(CpuAspp {
            branches: [branch(&a.aspp1, "aspp1")?, branch(&a.aspp2, "aspp2")?, branch(&a.aspp3, "aspp3")?, branch(&a.aspp4, "aspp4")?],
            pool: pack(&a.global_avg_pool.conv, Some(&a.global_avg_pool.bn), "aspp.global_avg_pool.conv", opts)?,
            conv1: pack(&a.conv1, Some(&a.bn1), "aspp.conv1", opts)?,
        })
    }

    fn forward(&self, x: &Nhwc) -> Nhwc {
        let relu = Fuse { relu: true, ..Fuse::default() };
        let (c, hw) = (x.c, x.h * x.w);
        // Image pooling: each row's channel means, the 1×1 conv, spread over the grid (bilinear
        // from 1×1 is a broadcast).
        let mut means = Nhwc::zeros(x.n, 1, 1, c);
        for (b, m) in means.data.chunks_mut(c).enumerate() {
            let mut sum = vec![0.0f64; c];
            for px in x.data[b * hw * c..(b + 1) * hw * c].chunks(c) {
                sum.iter_mut().zip(px).for_each(|(s, &v)| *s += v as f64);
            }
            m.iter_mut().zip(&sum).for_each(|(m, s)| *m = (s / hw as f64) as f32);
        }
        let pooled = self.pool.forward(&means, relu);
        let pc = pooled.c;
        let mut spread = Nhwc::zeros(x.n, x.h, x.w, pc);
        for (b, rows) in spread.data.chunks_mut(hw * pc).enumerate() {
            rows.chunks_mut(pc).for_each(|px| px.copy_from_slice(&pooled.data[b * pc..(b + 1) * pc]));
        }
        let cat = self.branches.iter().fold(None, |acc: Option<Nhwc>, b| {
            let y = b.forward(x, relu);
            Some(match acc {
                Some(a) => Nhwc::concat(&a, &y),
                None => y,
            })
        });
        let cat = Nhwc::concat(&cat.expect("four branches"), &spread);
        self.conv1.forward(&cat, relu)
    }
}

/// A burn `Linear` (`x · W + b`, `W` `[in][out]`) as a 1×1 convolution on a `[K, 1, 1, in]` map.
fn linear_conv(l: &Linear, name: &str, opts: CpuOptions) -> Result<PackedConv, CpuError> {
    let (w, b) = linear(l, name)?;
    let [inputs, outputs] = l.weight.dims();
    // [in][out] → [out][in] (PyTorch's conv layout).
    let mut t = vec![0.0f32; inputs * outputs];
    for i in 0..inputs {
        for o in 0..outputs {
            t[o * inputs + i] = w[i * outputs + o];
        }
    }
    Ok(PackedConv::new(ConvSpec::new(inputs, outputs, 1, 1, 0), &t, Some(&b), None, None).with_precision(opts.precision))
}

/// QDMN's quality head ([`Score`]): f16 resized to 24×24, three 3×3 convs and a strided one,
/// flattened channel-major, two linear layers, ReLU after each.
struct CpuScore {
    convs: [PackedConv; 4],
    /// The first linear layer (36,864 → 1,024) packed in bfloat16; `None` in float32, where
    /// burn's own layer in `head` runs it (the same float32 weights: a packed copy would add
    /// 144 MB for a product that runs once per memorised frame and object).
    fc1: Option<PackedConv>,
    /// The burn head (a cheap clone sharing its weights).
    head: Score,
    fc2: PackedConv,
}

impl CpuScore {
    fn new(s: &Score, opts: CpuOptions) -> Result<Self, CpuError> {
        let fc1 = match opts.precision {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(linear_conv(s.joined().fc1.as_ref().expect("a joined head has its first layer whole"), "score.fc1", opts)?),
        };
        Ok(CpuScore {
            convs: [pack(&s.conv1, None, "score.conv1", opts)?, pack(&s.conv2, None, "score.conv2", opts)?, pack(&s.conv3, None, "score.conv3", opts)?, pack(&s.conv4, None, "score.conv4", opts)?],
            fc1,
            head: s.clone(),
            fc2: linear_conv(&s.fc2, "score.fc2", opts)?,
        })
    }

    /// One score per row of `f16`.
    fn forward(&self, f16: &Nhwc, device: &Device) -> Vec<f32> {
        let relu = Fuse { relu: true, ..Fuse::default() };
        let x = self.convs.iter().fold(bilinear(f16, SCORE_INPUT, SCORE_INPUT), |x, c| c.forward(&x, relu));
        // Flattened channel-major, as the head does: `[K][C·H·W]`, a `[K, 1, 1, C·H·W]` map.
        let (k, inputs) = (x.n, x.c * x.h * x.w);
        let flat = x.to_nchw();
        let hidden = match &self.fc1 {
            Some(fc1) => fc1.forward(&Nhwc { n: k, h: 1, w: 1, c: inputs, data: flat.into() }, relu),
            None => {
                let y = self.head.fc1_forward(Tensor::<2>::from_data(TensorData::new(flat, [k, inputs]), device));
                let y = floats(burn::tensor::activation::relu(y), "score.fc1").expect("float32 on the CPU backend");
                Nhwc { n: k, h: 1, w: 1, c: y.len() / k.max(1), data: y.into() }
            }
        };
        self.fc2.forward(&hidden, relu).data.into_vec()
    }
}

/// QDMN on the CPU path: MiVOS's (`CpuMivosCore`) plus the previous-mask gate on the query
/// features (`concat_conv`), ASPP before the decoder and the quality head on the memory
/// encoder's features.
pub struct CpuQdmn {
    /// The burn network (a cheap clone sharing its weights), for what the path does not cover.
    net: Qdmn,
    device: Device,
    core: CpuMivosCore,
    concat_conv: PackedConv,
    score: CpuScore,
    aspp: CpuAspp,
}

impl CpuQdmn {
    /// QDMN packed for the CPU; its outputs come back as tensors on `device`.
    pub fn new(net: &Qdmn, device: &Device, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuQdmn {
            net: net.clone(),
            device: device.clone(),
            core: CpuMivosCore::new(&net.rgb_encoder, &net.kv_q_f16, &net.mask_rgb_encoder, &net.kv_m_f16, &net.decoder, opts)?,
            concat_conv: pack(&net.concat_conv, None, "concat_conv", opts)?,
            score: CpuScore::new(&net.score, opts)?,
            aspp: CpuAspp::new(&net.aspp, opts)?,
        })
    }
}

impl MemoryNetwork for CpuQdmn {
    same_network_as_burn!(top_k_read);

    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query {
        if frame.dims()[0] != 1 || previous.as_ref().is_some_and(|p| p.dims()[0] != 1) {
            return self.net.encode_query(frame, previous);
        }
        // The gate: the previous mask resized to f16's grid beside f16, `concat_conv`, σ.
        let gate = |f16: &Nhwc| {
            previous.map(|p| {
                let m = bilinear(&to_nhwc(p), f16.h, f16.w);
                let mut gated = f16.clone();
                gate_pixels(&mut gated, &self.concat_conv.forward(&Nhwc::concat(f16, &m), Fuse::default()));
                gated
            })
        };
        let c = &self.core;
        encode_frame(&c.rgb_encoder, &c.kv_q_f16, c.key_dim, frame, gate, &self.device)
    }

    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding {
        if frame.dims()[0] != 1 {
            return self.net.encode_memory(frame, query, masks, next);
        }
        let (f16, encoding) = self.core.encode_memory(frame, masks, &self.device);
        MemoryEncoding { quality: Some(self.score.forward(&f16, &self.device)), ..encoding }
    }

    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        decode_one(&self.net, query, readout, |q, r| self.core.decoder.decode(q, r, Some(&self.aspp), &self.device))
    }
}

/// IMSFR on the CPU path: the ResNet-101 key encoder and `key_comp` (the key is the query's
/// value), the value encoder run on the frame and on the next one (its gate `mask`), the value
/// encoding γ and `v_pe`, the three readouts on [`TopKRead`] and their fusion gate, STCN's
/// decoder.
pub struct CpuImsfr {
    /// The burn network (a cheap clone sharing its weights), for what the path does not cover.
    net: Imsfr,
    device: Device,
    key_encoder: CpuResNet,
    key_comp: PackedConv,
    value_encoder: CpuValueEncoder,
    /// The value encoder's next-frame gate (`value_encoder.mask`).
    value_gate: PackedConv,
    conv_fusion1v: PackedConv,
    conv_fusion: PackedConv,
    /// The readouts' fusion gate.
    mask: PackedConv,
    decoder: CpuDecoder,
}

impl CpuImsfr {
    /// IMSFR packed for the CPU; its outputs come back as tensors on `device`.
    pub fn new(net: &Imsfr, device: &Device, opts: CpuOptions) -> Result<Self, CpuError> {
        let ve = &net.value_encoder;
        Ok(CpuImsfr {
            net: net.clone(),
            device: device.clone(),
            key_encoder: CpuResNet::new(&net.key_encoder, "key_encoder", opts)?,
            key_comp: pack(&net.key_comp, None, "key_comp", opts)?,
            value_encoder: CpuValueEncoder::new(&ve.trunk, &ve.fuser, opts)?,
            value_gate: pack(&ve.mask, None, "value_encoder.mask", opts)?,
            conv_fusion1v: pack(&net.conv_fusion1v, None, "conv_fusion1v", opts)?,
            conv_fusion: pack(&net.conv_fusion, None, "conv_fusion", opts)?,
            mask: pack(&net.mask, None, "mask", opts)?,
            decoder: CpuDecoder::new(&net.decoder, opts)?,
        })
    }

    /// The three readouts fused, `[K, h, w, C_v]`; `None` where the path does not cover a read.
    fn readouts(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> Result<Option<Nhwc>, MemoryError> {
        let (Selection::TopK(top), None) = (bank.config().selection, bank.config().chunk) else { return Ok(None) };
        let newest = bank.frames().checked_sub(1).ok_or(MemoryError::Empty)?;
        // The sampled memory by top-k; the first and the newest frames (its `v_pe`) in full.
        let reads = [(positions, true, ValueSlot::Value, top), (&[0][..], false, ValueSlot::Value, usize::MAX), (&[newest][..], false, ValueSlot::Aux, usize::MAX)];
        let mut maps = Vec::with_capacity(3);
        for (at, temporary, slot, top) in reads {
            let Some(map) = read_on_cpu(query, bank, at, temporary, slot, top)? else { return Ok(None) };
            maps.push(map);
        }
        let z = Nhwc::concat(&Nhwc::concat(&maps[0], &maps[1]), &maps[2]);
        // The gate sees z plus its spatial means.
        let (c, hw) = (z.c, z.h * z.w);
        let mut gate_in = z;
        for row in gate_in.data.chunks_mut(hw * c) {
            let mut sum = vec![0.0f64; c];
            row.chunks(c).for_each(|px| sum.iter_mut().zip(px).for_each(|(s, &v)| *s += v as f64));
            let mean: Vec<f32> = sum.iter().map(|s| (s / hw as f64) as f32).collect();
            row.chunks_mut(c).for_each(|px| px.iter_mut().zip(&mean).for_each(|(v, m)| *v += m));
        }
        let gate = self.mask.forward(&gate_in, Fuse::default());
        let mut fused = maps[0].clone();
        fused.add_assign(&maps[1]);
        fused.add_assign(&maps[2]);
        fused.data.iter_mut().zip(&gate.data).for_each(|(v, &g)| *v *= 1.0 + sigmoid(g));
        Ok(Some(fused))
    }
}

/// γ(v) on an NHWC map: per pixel `[v, sin(2⁰v), cos(2⁰v), …, sin(2⁵v), cos(2⁵v)]`, each block
/// `C` channels wide.
fn value_encoding(v: &Nhwc) -> Nhwc {
    let c = v.c;
    let blocks = 1 + 2 * PE_FREQUENCIES;
    let mut out = Nhwc::zeros(v.n, v.h, v.w, blocks * c);
    for (px, dst) in v.data.chunks(c).zip(out.data.chunks_mut(blocks * c)) {
        dst[..c].copy_from_slice(px);
        for i in 0..PE_FREQUENCIES {
            let f = (1u32 << i) as f32;
            let (sin, cos) = dst[(1 + 2 * i) * c..(3 + 2 * i) * c].split_at_mut(c);
            for ((s, co), &x) in sin.iter_mut().zip(cos).zip(px) {
                (*s, *co) = (x * f).sin_cos();
            }
        }
    }
    out
}

impl MemoryNetwork for CpuImsfr {
    same_network_as_burn!();

    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query {
        if frame.dims()[0] != 1 {
            return self.net.encode_query(frame, previous);
        }
        let [f4, f8, f16] = self.key_encoder.forward(&to_nhwc(frame));
        let d = &self.device;
        let k16 = to_tensor(self.key_comp.forward(&f16, Fuse::default()), d);
        Query { k16: k16.clone(), v16: k16, features: Features { f4: to_tensor(f4, d), f8: to_tensor(f8, d), f16: to_tensor(f16, d) } }
    }

    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding {
        if frame.dims()[0] != 1 || query.features.f16.dims()[0] != 1 || next.as_ref().is_some_and(|n| n.dims()[0] != 1) {
            return self.net.encode_memory(frame, query, masks, next);
        }
        // Without a following frame the frame gates itself (as the burn network does).
        let next = next.unwrap_or_else(|| frame.clone());
        let ve = &self.value_encoder;
        let mut value = ve.encode(frame, query, masks.clone());
        let gate = self.value_gate.forward(&memory_f16(&ve.trunk, ve.in_channels, next, masks), Fuse::default());
        value.data.iter_mut().zip(&gate.data).for_each(|(v, &g)| *v *= sigmoid(g));
        // v_pe = conv_fusion(v + conv_fusion1v(γ(v))), the sum fused into conv_fusion1v.
        let summed = self.conv_fusion1v.forward(&value_encoding(&value), Fuse { residual: Some(&value), ..Fuse::default() });
        let value_pe = self.conv_fusion.forward(&summed, Fuse::default());
        let d = &self.device;
        MemoryEncoding { key: query.k16.clone(), value: to_tensor(value, d), aux: Some(to_tensor(value_pe, d)), quality: None }
    }

    fn read_memory(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> Result<Tensor<4>, MemoryError> {
        match self.readouts(query, bank, positions)? {
            Some(fused) => Ok(to_tensor(fused, &self.device)),
            None => self.net.read_memory(query, bank, positions),
        }
    }

    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        decode_one(&self.net, query, readout, |q, r| self.decoder.decode(q, r, None, &self.device))
    }
}

/// GSFM's [`SpectralFilter`] on NHWC maps: the spectrum ([`dft2`]), the band kept by GSFM's
/// Gaussian, the two 1×1 convolutions on `[Re, Im]`, the inverse, added to the input.
struct CpuSpectral {
    conv1: PackedConv,
    conv2: PackedConv,
    band: Band,
}

impl CpuSpectral {
    fn new(f: &SpectralFilter, band: Band, name: &str, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuSpectral { conv1: pack(&f.conv1, None, &format!("{name}.conv1"), opts)?, conv2: pack(&f.conv2, None, &format!("{name}.conv2"), opts)?, band })
    }

    fn forward(&self, x: &Nhwc) -> Nhwc {
        // A feature map of a frame is never empty; an empty one passes through unchanged.
        if x.h == 0 || x.w == 0 {
            return x.clone();
        }
        let c = x.c;
        let (mut re, mut im) = dft2(x);
        let g = gaussian_values(x.h, x.w, GSFM_SIGMA);
        let keep: Vec<f32> = match self.band {
            Band::Low => g.iter().map(|v| 1.0 - v).collect(),
            Band::High => g,
        };
        for part in [&mut re, &mut im] {
            for (px, &k) in part.data.chunks_mut(c).zip(keep.iter().cycle()) {
                px.iter_mut().for_each(|v| *v *= k);
            }
        }
        let z = self.conv1.forward(&Nhwc::concat(&re, &im), Fuse { relu: true, ..Fuse::default() });
        let (re, im) = self.conv2.forward(&z, Fuse::default()).split_channels(c);
        let mut y = idft2_real(&re, &im);
        y.add_assign(x);
        y
    }
}

/// [`GsfmDecoder`]: STCN's trunk, then the mask branch fed by the boundary branch and its
/// high-frequency module. Inference keeps the mask logits only, so the boundary prediction
/// (`predict_boundary_1/2`) is not computed.
struct CpuGsfmDecoder {
    trunk: CpuDecoder,
    boundary_1: PackedConv,
    mask_1: PackedConv,
    boundary_2: PackedConv,
    boundary_3: PackedConv,
    fusion_1: PackedConv,
    fusion_2: PackedConv,
    predict_mask: PackedConv,
    hfm: CpuSpectral,
}

impl CpuGsfmDecoder {
    fn new(d: &GsfmDecoder, opts: CpuOptions) -> Result<Self, CpuError> {
        let p = |c: &Conv2d, name: &str| pack(c, None, &format!("decoder.{name}"), opts);
        Ok(CpuGsfmDecoder {
            trunk: CpuDecoder::stcn(&d.compress, &d.up_16_8, &d.up_8_4, &d.pred, opts)?,
            boundary_1: p(&d.boundary_1, "boundary_1")?,
            mask_1: p(&d.mask_1, "mask_1")?,
            boundary_2: p(&d.boundary_2, "boundary_2")?,
            boundary_3: p(&d.boundary_3, "boundary_3")?,
            fusion_1: p(&d.fusion_1, "fusion_1")?,
            fusion_2: p(&d.fusion_2, "fusion_2")?,
            predict_mask: p(&d.predict_mask, "predict_mask")?,
            hfm: CpuSpectral::new(&d.hfm, Band::High, "decoder.hfm", opts)?,
        })
    }

    /// Mask logits `[K, 16h, 16w, 1]`.
    fn forward(&self, x: &Nhwc, f8: &Nhwc, f4: &Nhwc) -> Nhwc {
        let (plain, relu) = (Fuse::default(), Fuse { relu: true, ..Fuse::default() });
        let x = self.trunk.features(x, f8, f4);
        let hfm = self.hfm.forward(&self.boundary_1.forward(&x, plain));
        let m = self.mask_1.forward(&x, plain);
        // b = hfm + relu(fusion_1(m)); m = m + relu(fusion_2(relu(boundary_3(boundary_2(b))))).
        let mut b = self.fusion_1.forward(&m, relu);
        b.add_assign(&hfm);
        let b = self.boundary_3.forward(&self.boundary_2.forward(&b, plain), relu);
        let mut m2 = self.fusion_2.forward(&b, relu);
        m2.add_assign(&m);
        self.trunk.logits(&self.predict_mask.forward(&m2, plain))
    }
}

/// GSFM on the CPU path: STCN's ([`CpuStcn`]) with the low-frequency module on the key encoder's
/// `f16` (before the key projection, the compression and the value encoder's fuser) and the
/// decoder's boundary branch with its high-frequency module.
pub struct CpuGsfm {
    /// The burn network (a cheap clone sharing its weights), for what the path does not cover.
    net: Gsfm,
    device: Device,
    key_encoder: CpuResNet,
    lfm: CpuSpectral,
    /// `key_proj` and `key_comp` as one convolution; the first `key_dim` channels are the key.
    key_heads: PackedConv,
    key_dim: usize,
    value_encoder: CpuValueEncoder,
    decoder: CpuGsfmDecoder,
}

impl CpuGsfm {
    /// GSFM packed for the CPU; its outputs come back as tensors on `device`.
    pub fn new(net: &Gsfm, device: &Device, opts: CpuOptions) -> Result<Self, CpuError> {
        let (key_heads, key_dim) = pack_pair(&net.key_proj.key_proj, &net.key_comp, "key_proj/key_comp", opts)?;
        Ok(CpuGsfm {
            net: net.clone(),
            device: device.clone(),
            key_encoder: CpuResNet::new(&net.key_encoder, "key_encoder", opts)?,
            lfm: CpuSpectral::new(&net.lfm, Band::Low, "lfm", opts)?,
            key_heads,
            key_dim,
            value_encoder: CpuValueEncoder::new(&net.value_encoder.trunk, &net.value_encoder.fuser, opts)?,
            decoder: CpuGsfmDecoder::new(&net.decoder, opts)?,
        })
    }
}

impl MemoryNetwork for CpuGsfm {
    same_network_as_burn!(top_k_read);

    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query {
        if frame.dims()[0] != 1 {
            return self.net.encode_query(frame, previous);
        }
        let [f4, f8, f16] = self.key_encoder.forward(&to_nhwc(frame));
        // The query's f16 is the LFM's output: the heads, the fuser and the decoder see it.
        let f16 = self.lfm.forward(&f16);
        let (k16, v16) = self.key_heads.forward(&f16, Fuse::default()).split_channels(self.key_dim);
        let d = &self.device;
        Query { k16: to_tensor(k16, d), v16: to_tensor(v16, d), features: Features { f4: to_tensor(f4, d), f8: to_tensor(f8, d), f16: to_tensor(f16, d) } }
    }

    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding {
        if frame.dims()[0] != 1 || query.features.f16.dims()[0] != 1 {
            return self.net.encode_memory(frame, query, masks, next);
        }
        let value = self.value_encoder.encode(frame, query, masks);
        MemoryEncoding { key: query.k16.clone(), value: to_tensor(value, &self.device), aux: None, quality: None }
    }

    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        decode_one(&self.net, query, readout, |q, r| {
            let (x, f8, f4) = decoder_inputs(q, r);
            to_tensor(self.decoder.forward(&x, &f8, &f4), &self.device)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memvos_cpu::ConvKind;

    /// `ConvAlgo::F4` runs the largest convolutions by `F(2×2)`; `F2` and `Gemm` are as named.
    #[test]
    fn f4_leaves_the_largest_convolutions_to_f2() {
        let spec = |cin, cout| ConvSpec::new(cin, cout, 3, 1, 1);
        let f4 = CpuOptions::default();
        assert_eq!(f4.winograd_for(&spec(512, 256)), Some(Winograd::F4));
        assert_eq!(f4.winograd_for(&spec(512, 512)), Some(Winograd::F2));
        assert_eq!(f4.winograd_for(&spec(1280, 512)), Some(Winograd::F2));
        assert_eq!(CpuOptions::from(ConvAlgo::F2).winograd_for(&spec(64, 64)), Some(Winograd::F2));
        assert_eq!(CpuOptions::from(ConvAlgo::Gemm).winograd_for(&spec(512, 512)), None);
        // F4All, and the decoders' options, lift the exception; F2 and Gemm stay as they are.
        assert_eq!(CpuOptions::from(ConvAlgo::F4All).winograd_for(&spec(1280, 512)), Some(Winograd::F4));
        assert_eq!(f4.for_decoder().winograd_for(&spec(1024, 512)), Some(Winograd::F4));
        assert_eq!(f4.for_decoder().conv, ConvAlgo::F4All);
        assert_eq!(CpuOptions::from(ConvAlgo::F2).for_decoder().conv, ConvAlgo::F2);
        assert_eq!(CpuOptions::from(ConvAlgo::Gemm).for_decoder().winograd_for(&spec(512, 512)), None);
        assert_eq!(serde_json::from_str::<ConvAlgo>("\"f4all\"").unwrap(), ConvAlgo::F4All);
        // As packed: the kind, and the weights' size (F(2×2): 16 values per 3×3 filter).
        let d = Device::flex();
        let conv = burn::nn::conv::Conv2dConfig::new([512, 512], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&d);
        let packed = pack(&conv, None, "test", f4).unwrap();
        assert_eq!(packed.kind, ConvKind::Winograd(Winograd::F2));
        assert_eq!(packed.weight_bytes(), 4 * 16 * 512 * 512);
    }
}
