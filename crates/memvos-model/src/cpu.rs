//! The CPU inference path: the networks' blocks rebuilt on [`memvos_cpu`]'s kernels, with
//! BatchNorm folded into the convolutions and every weight packed once, when the path is built,
//! and activations kept NHWC from a trunk's input to the decoder's logits.
//!
//! [`accelerate`] wraps a loaded network into one that implements the same [`MemoryNetwork`]
//! trait and runs on these kernels when the device is burn's CPU backend without autodiff; burn's
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


use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use memvos_backbone::{Block, Features, ResNet};
pub use memvos_cpu::WINOGRAD_MIN_PIXELS;
use memvos_cpu::{Affinity, BatchNormFold, ConvSpec, Fuse, Nhwc, PackedConv, TopKRead, Winograd, bilinear, max_pool_3x3_s2};
pub use memvos_cpu::Precision;
use memvos_memory::bench::{Kernel, ReadKernel, VALUE_CHANNELS, Workload};
use memvos_memory::{KernelError, MemoryBank, MemoryError, Selection, Similarity, ValueSlot};
use serde::{Deserialize, Serialize};

use crate::AnyNetwork;
use crate::blocks::{Cbam, Decoder, FeatureFusionBlock, ResBlock, UpsampleBlock};
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
    /// 3×3 stride-1 convolutions by Winograd `F(4×4, 3×3)` (the default).
    F4,
    /// By Winograd `F(2×2, 3×3)`: fewer savings, smaller rounding error.
    F2,
    /// Every convolution as a plain matrix product of patches (im2col): the most exact.
    Gemm,
}

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
    /// products still accumulate in float32, see [`Precision`]).
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
    fn winograd(&self) -> Option<Winograd> {
        match self.conv {
            ConvAlgo::F4 => Some(Winograd::F4),
            ConvAlgo::F2 => Some(Winograd::F2),
            ConvAlgo::Gemm => None,
        }
    }
}

/// Whether `device` runs the CPU path: burn's CPU backend (flex) without autodiff.
pub fn runs_on(device: &Device) -> bool {
    !device.is_autodiff() && *device == Device::flex()
}

/// The network behind the CPU path when it covers `net`'s method and `device` is the CPU; `None`
/// otherwise (use `net.network()`).
pub fn accelerate(net: &AnyNetwork, device: &Device, opts: CpuOptions) -> Result<Option<Box<dyn MemoryNetwork>>, CpuError> {
    if !runs_on(device) {
        return Ok(None);
    }
    Ok(match net {
        AnyNetwork::Stcn(n) => Some(Box::new(CpuStcn::new(n, device, opts)?)),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Tensors in and out.

fn floats<const D: usize>(t: Tensor<D>, name: &str) -> Result<Vec<f32>, CpuError> {
    t.into_data().try_into_vec_as::<f32>().map_err(|e| CpuError::Tensor { name: name.into(), reason: format!("{e:?}") })
}

/// A `[N, C, H, W]` tensor as an NHWC map.
pub fn to_nhwc(t: Tensor<4>) -> Nhwc {
    let [n, c, h, w] = t.dims();
    // The networks' activations are float32 on the CPU backend, which this path requires.
    let v = floats(t, "activation").expect("float activations on the CPU backend");
    Nhwc::from_nchw(&v, n, c, h, w)
}

/// An NHWC map as a `[N, C, H, W]` tensor on `device`.
pub fn to_tensor(x: &Nhwc, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(x.to_nchw(), [x.n, x.c, x.h, x.w]), device)
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
    if kh != kw || conv.stride[0] != conv.stride[1] || conv.dilation != [1, 1] || conv.groups != 1 {
        return Err(bad(format!("a {kh}x{kw} conv with stride {:?}, dilation {:?}, groups {} is not covered", conv.stride, conv.dilation, conv.groups)));
    }
    let spec = ConvSpec { cin, cout, k: kh, stride: conv.stride[0], pad };
    let bias = conv.bias.as_ref().map(|b| floats(b.val(), name)).transpose()?;
    Ok((spec, floats(conv.weight.val(), name)?, bias))
}

fn pack(conv: &Conv2d, bn: Option<&BatchNorm>, name: &str, opts: CpuOptions) -> Result<PackedConv, CpuError> {
    let (spec, weight, bias) = parts(conv, name)?;
    let bn_vals = bn
        .map(|bn| -> Result<_, CpuError> { Ok((floats(bn.gamma.val(), name)?, floats(bn.beta.val(), name)?, floats(bn.running_mean.value(), name)?, floats(bn.running_var.value(), name)?, bn.epsilon)) })
        .transpose()?;
    let fold = bn_vals.as_ref().map(|(g, b, m, v, eps)| BatchNormFold { gamma: g, beta: b, mean: m, var: v, eps: *eps });
    Ok(PackedConv::new(spec, &weight, bias.as_deref(), fold, opts.winograd()).with_winograd_from(opts.winograd_from).with_precision(opts.precision))
}

/// Two convolutions of one input as one, their output channels concatenated (`a`'s first).
fn pack_pair(a: &Conv2d, b: &Conv2d, name: &str, opts: CpuOptions) -> Result<(PackedConv, usize), CpuError> {
    let (sa, mut wa, ba) = parts(a, name)?;
    let (sb, wb, bb) = parts(b, name)?;
    if (sa.cin, sa.k, sa.stride, sa.pad) != (sb.cin, sb.k, sb.stride, sb.pad) {
        return Err(CpuError::Tensor { name: name.into(), reason: format!("{sa:?} and {sb:?} differ in more than their outputs") });
    }
    wa.extend(wb);
    let zeros = |c: usize| vec![0.0; c];
    let mut bias = ba.unwrap_or_else(|| zeros(sa.cout));
    bias.extend(bb.unwrap_or_else(|| zeros(sb.cout)));
    Ok((PackedConv::new(ConvSpec { cout: sa.cout + sb.cout, ..sa }, &wa, Some(&bias), None, opts.winograd()).with_winograd_from(opts.winograd_from).with_precision(opts.precision), sa.cout))
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
        let spatial = self.spatial.forward(&pooled, Fuse::default());
        for (px, &s) in gated.data.chunks_mut(c).zip(&spatial.data) {
            let sc = sigmoid(s);
            px.iter_mut().for_each(|v| *v *= sc);
        }
        gated
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

/// [`UpsampleBlock`]: `out_conv(skip_conv(skip) + up×2(up))`.
struct CpuUpsample {
    skip_conv: PackedConv,
    out_conv: CpuResBlock,
}

impl CpuUpsample {
    fn new(u: &UpsampleBlock, name: &str, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuUpsample { skip_conv: pack(&u.skip_conv, None, &format!("{name}.skip_conv"), opts)?, out_conv: CpuResBlock::new(&u.out_conv, &format!("{name}.out_conv"), opts)? })
    }

    /// `skip` of one batch row (the query's, shared by the objects) or of `up`'s rows.
    fn forward(&self, skip: &Nhwc, up: &Nhwc) -> Nhwc {
        let mut up2 = bilinear(up, 2 * up.h, 2 * up.w);
        let x = if skip.n == up.n {
            self.skip_conv.forward(skip, Fuse { residual: Some(&up2), ..Fuse::default() })
        } else {
            up2.add_broadcast(&self.skip_conv.forward(skip, Fuse::default()));
            up2
        };
        self.out_conv.forward(&x)
    }
}

/// STCN's [`Decoder`].
struct CpuDecoder {
    compress: CpuResBlock,
    up_16_8: CpuUpsample,
    up_8_4: CpuUpsample,
    pred: PackedConv,
}

impl CpuDecoder {
    fn new(d: &Decoder, opts: CpuOptions) -> Result<Self, CpuError> {
        Ok(CpuDecoder {
            compress: CpuResBlock::new(&d.compress, "decoder.compress", opts)?,
            up_16_8: CpuUpsample::new(&d.up_16_8, "decoder.up_16_8", opts)?,
            up_8_4: CpuUpsample::new(&d.up_8_4, "decoder.up_8_4", opts)?,
            pred: pack(&d.pred, None, "decoder.pred", opts)?,
        })
    }

    /// Logits `[K, 16h, 16w, 1]` from `x` `[K, h, w, C]` and the query's skips (one row each).
    fn forward(&self, x: &Nhwc, f8: &Nhwc, f4: &Nhwc) -> Nhwc {
        let x = self.compress.forward(x);
        let x = self.up_16_8.forward(f8, &x);
        let x = self.up_8_4.forward(f4, &x);
        let p = self.pred.forward(&x, Fuse { relu_input: true, ..Fuse::default() });
        bilinear(&p, 4 * p.h, 4 * p.w)
    }
}

// ---------------------------------------------------------------------------------------------
// Networks.

/// STCN on the CPU path.
pub struct CpuStcn {
    /// The burn network (a cheap clone sharing its weights), for what the path does not cover.
    net: Stcn,
    device: Device,
    key_encoder: CpuResNet,
    /// `key_proj` and `key_comp` as one convolution; the first `key_dim` channels are the key.
    key_heads: PackedConv,
    key_dim: usize,
    value_trunk: CpuResNet,
    value_in: usize,
    fuser: CpuFuser,
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
            value_trunk: CpuResNet::new(&net.value_encoder.trunk, "value_encoder", opts)?,
            value_in: net.value_encoder.trunk.conv1.weight.dims()[1],
            fuser: CpuFuser::new(&net.value_encoder.fuser, "value_encoder.fuser", opts)?,
            decoder: CpuDecoder::new(&net.decoder, opts)?,
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
        Ok(Box::new(move || {
            let read = TopKRead { keys: &keys, values: &values, query: &query, ck, n, m, objects: 1, cv: VALUE_CHANNELS, top: self.top, affinity: Affinity::L2 };
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

impl CpuStcn {
    /// The top-k read on [`TopKRead`] when the bank reads top-k in one piece with one query;
    /// `None` leaves the read (and its error messages) to the burn path.
    fn read_topk(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> Result<Option<Tensor<4>>, MemoryError> {
        let cfg = bank.config();
        let (Selection::TopK(top), None) = (cfg.selection, cfg.chunk) else { return Ok(None) };
        let [b, ck, h, w] = query.k16.dims();
        if b != 1 || top == 0 {
            return Ok(None);
        }
        let (keys, values) = bank.contents(Some(positions), true, ValueSlot::Value)?;
        let ([1, kc, n], [objects, cv, vn]) = (keys.dims(), values.dims()) else { return Ok(None) };
        if kc != ck || vn != n {
            return Ok(None);
        }
        let (Ok(keys), Ok(values), Ok(q)) = (floats(keys, "memory keys"), floats(values, "memory values"), floats(query.k16.clone(), "query key")) else {
            return Ok(None);
        };
        let affinity = match cfg.similarity {
            Similarity::L2 => Affinity::L2,
            Similarity::Dot => Affinity::Dot,
        };
        let out = TopKRead { keys: &keys, values: &values, query: &q, ck, n, m: h * w, objects, cv, top, affinity }.run();
        Ok(Some(Tensor::from_data(TensorData::new(out, [objects, cv, h, w]), &self.device)))
    }
}

impl MemoryNetwork for CpuStcn {
    // What the network is comes from the burn network it was built from.
    fn method(&self) -> Method {
        self.net.method()
    }

    fn key_kind(&self) -> KeyKind {
        self.net.key_kind()
    }

    fn similarity(&self) -> Similarity {
        self.net.similarity()
    }

    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query {
        if frame.dims()[0] != 1 {
            return self.net.encode_query(frame, previous);
        }
        let [f4, f8, f16] = self.key_encoder.forward(&to_nhwc(frame));
        let heads = self.key_heads.forward(&f16, Fuse::default());
        let (k16, v16) = heads.split_channels(self.key_dim);
        let d = &self.device;
        Query { k16: to_tensor(&k16, d), v16: to_tensor(&v16, d), features: Features { f4: to_tensor(&f4, d), f8: to_tensor(&f8, d), f16: to_tensor(&f16, d) } }
    }

    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding {
        if frame.dims()[0] != 1 || query.features.f16.dims()[0] != 1 {
            return self.net.encode_memory(frame, query, masks, next);
        }
        let k = masks.dims()[0];
        let m = floats(masks, "masks").expect("float masks on the CPU backend");
        let x = value_input(&to_nhwc(frame), &m, k, self.value_in);
        let [_, _, f16] = self.value_trunk.forward(&x);
        // The query's features are read from the query itself (one source of truth).
        let value = self.fuser.forward(&f16, &to_nhwc(query.features.f16.clone()));
        MemoryEncoding { key: query.k16.clone(), value: to_tensor(&value, &self.device), aux: None, quality: None }
    }

    fn read_memory(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> Result<Tensor<4>, MemoryError> {
        match self.read_topk(query, bank, positions)? {
            Some(r) => Ok(r),
            None => self.net.read_memory(query, bank, positions),
        }
    }

    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        if query.v16.dims()[0] != 1 {
            return MemoryNetwork::decode(&self.net, query, readout);
        }
        let r = to_nhwc(readout);
        let x = Nhwc::concat(&r, &to_nhwc(query.v16.clone()).repeat(r.n));
        let logits = self.decoder.forward(&x, &to_nhwc(query.features.f8.clone()), &to_nhwc(query.features.f4.clone()));
        to_tensor(&logits, &self.device)
    }
}
