//! Building blocks shared by the memory networks (methods.md §1.10, §2.0): the pre-activation
//! `ResBlock`, CBAM, STCN's feature fusion block, the STCN-style and MiVOS-style upsampling
//! blocks and decoders. Field names are the PyTorch ones.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

/// Conv2d `k×k`, stride 1, "same" padding, with bias.
pub fn conv(i: usize, o: usize, k: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([i, o], [k, k]).with_padding(PaddingConfig2d::Explicit(p, p, p, p)).init(device)
}

/// Bilinear resize with PyTorch's `align_corners = False`.
///
/// On a GPU device under autodiff (training on wgpu or CUDA) it is computed as two products with
/// the interpolation matrices, [`resize_bilinear_by_products`]: burn 0.22's CubeCL backends have
/// no bilinear interpolation backward ("Bilinear interpolation backward is not supported by JIT
/// backend"), and products differentiate everywhere.
pub fn resize_bilinear(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() && device != Device::flex() {
        return resize_bilinear_by_products(x, h, w);
    }
    interpolate(x, InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([h, w]).with_align_corners(false))
}

/// [`resize_bilinear`] as `R_h · x · R_wᵀ`, where row `o` of `R_n` holds the two weights
/// output `o` takes from the input (source `(o + ½)·in/out − ½`, clamped at 0, as PyTorch).
pub fn resize_bilinear_by_products(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    let [_, _, hi, wi] = x.dims();
    let device = x.device();
    let rw = interpolation_matrix(wi, w, &device).transpose();
    let rh = interpolation_matrix(hi, h, &device);
    rh.matmul(x.matmul(rw))
}

/// `[1, 1, out, input]`: the bilinear weights (align_corners = False) of each output position.
fn interpolation_matrix(input: usize, out: usize, device: &Device) -> Tensor<4> {
    let mut m = vec![0f32; out * input];
    if input > 0 {
        for (o, (i0, i1, l)) in memvos_cpu::bilinear_taps(input, out).into_iter().enumerate() {
            m[o * input + i0] += 1.0 - l;
            m[o * input + i1] += l;
        }
    }
    memvos_memory::transfers::upload(burn::tensor::TensorData::new(m, [1, 1, out, input]), device)
}

/// Bilinear ×`f` upsampling (`F.interpolate(scale_factor=f, mode="bilinear", align_corners=False)`).
pub fn upsample(x: Tensor<4>, f: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    resize_bilinear(x, h * f, w * f)
}

/// `r = conv2(relu(conv1(relu(x))))`, `out = (downsample(x) or x) + r`; `downsample` is a 3×3 conv.
#[derive(Module, Debug)]
pub struct ResBlock {
    /// First 3×3 conv.
    pub conv1: Conv2d,
    /// Second 3×3 conv.
    pub conv2: Conv2d,
    /// The shortcut's 3×3 conv when the widths differ.
    pub downsample: Option<Conv2d>,
}

impl ResBlock {
    /// A block from `i` to `o` channels (a shortcut conv when they differ).
    pub fn new(i: usize, o: usize, device: &Device) -> Self {
        ResBlock { conv1: conv(i, o, 3, device), conv2: conv(o, o, 3, device), downsample: (i != o).then(|| conv(i, o, 3, device)) }
    }

    /// The block on `x`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let r = self.conv2.forward(relu(self.conv1.forward(relu(x.clone()))));
        let skip = match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        skip + r
    }
}

/// CBAM's channel gate: a shared MLP (C → C/16 → C) on global average and max pooling, summed,
/// sigmoid, scaling the channels. PyTorch: `ChannelGate.mlp.1` / `mlp.3`.
#[derive(Module, Debug)]
pub struct ChannelGate {
    /// `mlp.1`: C → C/16.
    pub fc1: Linear,
    /// `mlp.3`: C/16 → C.
    pub fc2: Linear,
}

/// CBAM's spatial gate: `[max over channels, mean over channels]` → 7×7 conv → sigmoid → scale.
/// PyTorch: `SpatialGate.spatial.conv`.
#[derive(Module, Debug)]
pub struct SpatialGate {
    /// The 7×7 conv on `[max, mean]`.
    pub conv: Conv2d,
}

/// Convolutional block attention: channel gate, then spatial gate (the gated tensor, not a residual).
#[derive(Module, Debug)]
pub struct Cbam {
    /// The channel gate.
    pub channel_gate: ChannelGate,
    /// The spatial gate.
    pub spatial_gate: SpatialGate,
}

impl Cbam {
    /// CBAM over `channels`.
    pub fn new(channels: usize, device: &Device) -> Self {
        Cbam {
            channel_gate: ChannelGate { fc1: LinearConfig::new(channels, channels / 16).init(device), fc2: LinearConfig::new(channels / 16, channels).init(device) },
            spatial_gate: SpatialGate { conv: conv(2, 1, 7, device) },
        }
    }

    /// The gated tensor.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, _, _] = x.dims();
        let mlp = |v: Tensor<2>| self.channel_gate.fc2.forward(relu(self.channel_gate.fc1.forward(v)));
        let avg: Tensor<2> = x.clone().mean_dim(3).mean_dim(2).reshape([b, c]);
        let max: Tensor<2> = x.clone().max_dim(3).max_dim(2).reshape([b, c]);
        let scale = sigmoid(mlp(avg) + mlp(max)).reshape([b, c, 1, 1]);
        let x = x * scale;
        let pooled = Tensor::cat(vec![x.clone().max_dim(1), x.clone().mean_dim(1)], 1);
        let spatial = sigmoid(self.spatial_gate.conv.forward(pooled));
        x * spatial
    }
}

/// STCN's `fuser`: `x = block1(cat[value features, key f16])`, `x = x + attention(x)`, `block2(x)`.
#[derive(Module, Debug)]
pub struct FeatureFusionBlock {
    /// The first ResBlock, on the concatenation.
    pub block1: ResBlock,
    /// CBAM, added to its input.
    pub attention: Cbam,
    /// The second ResBlock.
    pub block2: ResBlock,
}

impl FeatureFusionBlock {
    /// A fusion block of `i` input channels (values and key features together) to `o`.
    pub fn new(i: usize, o: usize, device: &Device) -> Self {
        FeatureFusionBlock { block1: ResBlock::new(i, o, device), attention: Cbam::new(o, device), block2: ResBlock::new(o, o, device) }
    }

    /// Fuses value features `x` with the frame's key-encoder `f16`.
    pub fn forward(&self, x: Tensor<4>, f16: Tensor<4>) -> Tensor<4> {
        let x = self.block1.forward(Tensor::cat(vec![x, f16], 1));
        let r = self.attention.forward(x.clone());
        self.block2.forward(x + r)
    }
}

/// STCN-style upsampling: `out_conv(skip_conv(skip) + up×2(up))`.
#[derive(Module, Debug)]
pub struct UpsampleBlock {
    /// 3×3 conv on the skip features.
    pub skip_conv: Conv2d,
    /// ResBlock after the sum.
    pub out_conv: ResBlock,
}

impl UpsampleBlock {
    /// A block taking `skip_c` skip channels and `up_c` upsampled ones to `out_c`.
    pub fn new(skip_c: usize, up_c: usize, out_c: usize, device: &Device) -> Self {
        UpsampleBlock { skip_conv: conv(skip_c, up_c, 3, device), out_conv: ResBlock::new(up_c, out_c, device) }
    }

    /// `out_conv(skip_conv(skip) + up×2(up))`.
    pub fn forward(&self, skip: Tensor<4>, up: Tensor<4>) -> Tensor<4> {
        let x = self.skip_conv.forward(skip) + upsample(up, 2);
        self.out_conv.forward(x)
    }
}

/// The STCN decoder (methods.md §2.0): 1024 ch at 1/16 → one logit map at full resolution.
#[derive(Module, Debug)]
pub struct Decoder {
    /// ResBlock from the readout (plus f16) down to the compressed width.
    pub compress: ResBlock,
    /// Upsampling 1/16 → 1/8 with the f8 skip.
    pub up_16_8: UpsampleBlock,
    /// Upsampling 1/8 → 1/4 with the f4 skip.
    pub up_8_4: UpsampleBlock,
    /// 3×3 conv to one logit map (at 1/4, then upsampled ×4).
    pub pred: Conv2d,
}

/// Channel widths of a decoder: its input at 1/16, the f8 and f4 skips, and the widths after
/// `compress` (published 512) and after the upsampling blocks (published 256).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DecoderWidths {
    /// Input channels at 1/16.
    pub input: usize,
    /// Channels of the f8 skip.
    pub f8: usize,
    /// Channels of the f4 skip.
    pub f4: usize,
    /// Width after `compress`.
    pub compress: usize,
    /// Width after the upsampling blocks.
    pub out: usize,
}

impl DecoderWidths {
    /// The published decoders: 1024 in, skips of a ResNet-50 (512, 256), 512 then 256.
    pub const PUBLISHED: DecoderWidths = DecoderWidths { input: 1024, f8: 512, f4: 256, compress: 512, out: 256 };
}

impl Decoder {
    /// The published decoder.
    pub fn new(device: &Device) -> Self {
        Self::with_widths(DecoderWidths::PUBLISHED, device)
    }

    /// A decoder of these widths.
    pub fn with_widths(c: DecoderWidths, device: &Device) -> Self {
        Decoder {
            compress: ResBlock::new(c.input, c.compress, device),
            up_16_8: UpsampleBlock::new(c.f8, c.compress, c.out, device),
            up_8_4: UpsampleBlock::new(c.f4, c.out, c.out, device),
            pred: conv(c.out, 1, 3, device),
        }
    }

    /// The features at 1/4 before the prediction: `f16` `[K, C, h, w]`, `f8` `[K, C8, 2h, 2w]`,
    /// `f4` `[K, C4, 4h, 4w]` → `[K, out, 4h, 4w]`.
    pub fn features(&self, f16: Tensor<4>, f8: Tensor<4>, f4: Tensor<4>) -> Tensor<4> {
        let x = self.compress.forward(f16);
        let x = self.up_16_8.forward(f8, x);
        self.up_8_4.forward(f4, x)
    }

    /// `f16` `[K, 1024, h, w]`, `f8` `[K, 512, 2h, 2w]`, `f4` `[K, 256, 4h, 4w]` → logits `[K, 1, 16h, 16w]`.
    pub fn forward(&self, f16: Tensor<4>, f8: Tensor<4>, f4: Tensor<4>) -> Tensor<4> {
        let x = self.features(f16, f8, f4);
        upsample(self.pred.forward(relu(x)), 4)
    }
}

/// MiVOS-style upsampling (MiVOS, QDMN): the skip path has one more ResBlock,
/// `out_conv(skip_conv2(skip_conv1(skip)) + up×2(up))`.
#[derive(Module, Debug)]
pub struct MivosUpsampleBlock {
    /// 3×3 conv on the skip features.
    pub skip_conv1: Conv2d,
    /// ResBlock on the skip path.
    pub skip_conv2: ResBlock,
    /// ResBlock after the sum.
    pub out_conv: ResBlock,
}

impl MivosUpsampleBlock {
    /// A block taking `skip_c` skip channels and `up_c` upsampled ones to `out_c`.
    pub fn new(skip_c: usize, up_c: usize, out_c: usize, device: &Device) -> Self {
        MivosUpsampleBlock { skip_conv1: conv(skip_c, up_c, 3, device), skip_conv2: ResBlock::new(up_c, up_c, device), out_conv: ResBlock::new(up_c, out_c, device) }
    }

    /// `out_conv(skip_conv2(skip_conv1(skip)) + up×2(up))`.
    pub fn forward(&self, skip: Tensor<4>, up: Tensor<4>) -> Tensor<4> {
        let x = self.skip_conv2.forward(self.skip_conv1.forward(skip)) + upsample(up, 2);
        self.out_conv.forward(x)
    }
}

/// The MiVOS decoder (methods.md §2.0): as STCN's with [`MivosUpsampleBlock`]s.
#[derive(Module, Debug)]
pub struct MivosDecoder {
    /// ResBlock from the readout down to the compressed width.
    pub compress: ResBlock,
    /// Upsampling 1/16 → 1/8 with the f8 skip.
    pub up_16_8: MivosUpsampleBlock,
    /// Upsampling 1/8 → 1/4 with the f4 skip.
    pub up_8_4: MivosUpsampleBlock,
    /// 3×3 conv to one logit map.
    pub pred: Conv2d,
}

impl MivosDecoder {
    /// A decoder of these widths.
    pub fn new(c: DecoderWidths, device: &Device) -> Self {
        MivosDecoder {
            compress: ResBlock::new(c.input, c.compress, device),
            up_16_8: MivosUpsampleBlock::new(c.f8, c.compress, c.out, device),
            up_8_4: MivosUpsampleBlock::new(c.f4, c.out, c.out, device),
            pred: conv(c.out, 1, 3, device),
        }
    }

    /// `f16` `[K, 1024, h, w]` and the query's skips → logits `[K, 1, 16h, 16w]`.
    pub fn forward(&self, f16: Tensor<4>, f8: Tensor<4>, f4: Tensor<4>) -> Tensor<4> {
        let x = self.compress.forward(f16);
        let x = self.up_16_8.forward(f8, x);
        let x = self.up_8_4.forward(f4, x);
        upsample(self.pred.forward(relu(x)), 4)
    }
}

/// A tensor of `b` rows made `k` rows: unchanged when `b = k`; a batch-1 tensor repeated `k`
/// times (a view); otherwise, when `b` divides `k`, each row repeated `k / b` times in place
/// (one frame's features for each of its objects, samples in order, as in a training batch).
pub fn expand_batch(t: &Tensor<4>, k: usize) -> Tensor<4> {
    let [b, c, h, w] = t.dims();
    if b == k {
        t.clone()
    } else if b == 1 || k % b != 0 {
        t.clone().expand([k, c, h, w])
    } else {
        let t5: Tensor<5> = t.clone().reshape([b, 1, c, h, w]);
        t5.expand([b, k / b, c, h, w]).reshape([k, c, h, w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The products' form is burn's bilinear interpolation (PyTorch's, checked by the parity
    /// fixtures) up to float32 rounding, upsampling, downsampling and to one pixel.
    #[test]
    fn resize_by_products_is_bilinear_interpolation() {
        let d = Device::flex();
        let x = Tensor::<4>::random([2, 3, 7, 12], Distribution::Uniform(-1.0, 1.0), &d);
        for (h, w) in [(14, 24), (30, 54), (3, 5), (7, 12), (1, 1), (8, 11)] {
            let a = resize_bilinear(x.clone(), h, w).into_data().try_to_vec::<f32>().unwrap();
            let b = resize_bilinear_by_products(x.clone(), h, w).into_data().try_to_vec::<f32>().unwrap();
            let err = a.iter().zip(&b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(err <= 1e-6, "{h}x{w}: {err}");
        }
    }
}
