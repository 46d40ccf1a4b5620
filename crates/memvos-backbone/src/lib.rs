//! # memvos-backbone
//!
//! ResNet-18/50/101 as torchvision lays them out (v1.5: the bottleneck's stride sits on the
//! 3×3 conv), cut after `layer3`, returning the 1/4, 1/8 and 1/16 features (methods.md §1.3).
//! Options for the memory networks: biases on every conv (the "mod_resnet" of methods.md §1.10)
//! and extra input channels on `conv1` (the masks of a value encoder).
//!
//! Field names are the PyTorch `state_dict` names (`conv1`, `bn1`, `layer1.0.conv2`, …); the
//! `downsample.0`/`downsample.1` of torchvision are `downsample.conv`/`downsample.bn` here (see
//! [`DOWNSAMPLE_RENAMES`]).

#![warn(missing_docs)]

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The regex renames from torchvision's `downsample` sequential to our field names.
pub const DOWNSAMPLE_RENAMES: [(&str, &str); 2] = [(r"\.downsample\.0\.", ".downsample.conv."), (r"\.downsample\.1\.", ".downsample.bn.")];

/// Which ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Depth {
    /// ResNet-18 (BasicBlocks).
    R18,
    /// ResNet-50 (Bottlenecks).
    R50,
    /// ResNet-101 (Bottlenecks).
    R101,
}

impl Depth {
    /// Blocks in layer1..layer3.
    pub fn blocks(self) -> [usize; 3] {
        match self {
            Depth::R18 => [2, 2, 2],
            Depth::R50 => [3, 4, 6],
            Depth::R101 => [3, 4, 23],
        }
    }

    /// Whether its blocks are Bottlenecks (ResNet-50/101) rather than BasicBlocks.
    pub fn bottleneck(self) -> bool {
        !matches!(self, Depth::R18)
    }

    /// Output channels of layer1, layer2, layer3 (f4, f8, f16) at torchvision's width (64).
    pub fn channels(self) -> [usize; 3] {
        ResNetConfig::new(self, 3, false).channels()
    }
}

/// A trunk's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Which ResNet.
    pub depth: Depth,
    /// Input channels of conv1 (3 for RGB, 5 for RGB + own mask + others mask).
    pub in_channels: usize,
    /// Biases on every conv ("mod_resnet"); torchvision's convs have none.
    pub conv_bias: bool,
    /// Channels of the stem and of layer1's blocks (torchvision: 64); layer2 and layer3 use
    /// twice and four times this. Smaller widths make the small networks trained on a CPU.
    #[serde(default = "torchvision_width")]
    pub width: usize,
}

fn torchvision_width() -> usize {
    64
}

fn conv(i: usize, o: usize, k: usize, stride: usize, bias: bool, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([i, o], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(bias)
        .init(device)
}

fn bn(n: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(n).init(device)
}

/// torchvision's `downsample`: a strided 1×1 conv and a BatchNorm.
#[derive(Module, Debug)]
pub struct Downsample {
    /// The strided 1×1 convolution.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

/// A residual block: BasicBlock (two 3×3 convs) or Bottleneck (1×1, 3×3 with the stride, 1×1).
#[derive(Module, Debug)]
pub struct Block {
    /// First convolution (3×3 in a BasicBlock, 1×1 in a Bottleneck).
    pub conv1: Conv2d,
    /// BatchNorm after `conv1`.
    pub bn1: BatchNorm,
    /// Second convolution (3×3; carries the block's stride).
    pub conv2: Conv2d,
    /// BatchNorm after `conv2`.
    pub bn2: BatchNorm,
    /// Third convolution (the Bottleneck's expanding 1×1; `None` in a BasicBlock).
    pub conv3: Option<Conv2d>,
    /// BatchNorm after `conv3`.
    pub bn3: Option<BatchNorm>,
    /// The shortcut's projection when the block changes stride or width.
    pub downsample: Option<Downsample>,
}

impl Block {
    fn new(bottleneck: bool, inp: usize, planes: usize, stride: usize, bias: bool, device: &Device) -> Self {
        let expansion = if bottleneck { 4 } else { 1 };
        let out = planes * expansion;
        let downsample = (stride != 1 || inp != out).then(|| Downsample { conv: conv(inp, out, 1, stride, bias, device), bn: bn(out, device) });
        if bottleneck {
            Block {
                conv1: conv(inp, planes, 1, 1, bias, device),
                bn1: bn(planes, device),
                conv2: conv(planes, planes, 3, stride, bias, device),
                bn2: bn(planes, device),
                conv3: Some(conv(planes, out, 1, 1, bias, device)),
                bn3: Some(bn(out, device)),
                downsample,
            }
        } else {
            Block {
                conv1: conv(inp, planes, 3, stride, bias, device),
                bn1: bn(planes, device),
                conv2: conv(planes, planes, 3, 1, bias, device),
                bn2: bn(planes, device),
                conv3: None,
                bn3: None,
                downsample,
            }
        }
    }

    /// `relu(block(x) + shortcut(x))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let mut out = relu(self.bn1.forward(self.conv1.forward(x)));
        out = self.bn2.forward(self.conv2.forward(out));
        if let (Some(c3), Some(b3)) = (&self.conv3, &self.bn3) {
            out = b3.forward(c3.forward(relu(out)));
        }
        relu(out + identity)
    }
}

/// A ResNet trunk up to `layer3`.
#[derive(Module, Debug)]
pub struct ResNet {
    /// The 7×7 stride-2 stem convolution.
    pub conv1: Conv2d,
    /// The stem's BatchNorm.
    pub bn1: BatchNorm,
    /// 3×3 stride-2 max pooling.
    pub maxpool: MaxPool2d,
    /// Stride-4 blocks.
    pub layer1: Vec<Block>,
    /// Stride-8 blocks.
    pub layer2: Vec<Block>,
    /// Stride-16 blocks.
    pub layer3: Vec<Block>,
}

/// The three feature maps of a trunk.
#[derive(Clone, Debug)]
pub struct Features {
    /// layer1 output, stride 4.
    pub f4: Tensor<4>,
    /// layer2 output, stride 8.
    pub f8: Tensor<4>,
    /// layer3 output, stride 16.
    pub f16: Tensor<4>,
}

impl ResNetConfig {
    /// A trunk at torchvision's width.
    pub fn new(depth: Depth, in_channels: usize, conv_bias: bool) -> Self {
        ResNetConfig { depth, in_channels, conv_bias, width: 64 }
    }

    /// The same trunk with another base width.
    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }

    /// Output channels of layer1, layer2, layer3 (f4, f8, f16).
    pub fn channels(&self) -> [usize; 3] {
        let e = if self.depth.bottleneck() { 4 } else { 1 };
        [self.width * e, 2 * self.width * e, 4 * self.width * e]
    }

    /// The trunk with freshly initialised weights (torchvision's initialisation) on `device`.
    pub fn init(&self, device: &Device) -> ResNet {
        let bottleneck = self.depth.bottleneck();
        let expansion = if bottleneck { 4 } else { 1 };
        let [n1, n2, n3] = self.depth.blocks();
        let bias = self.conv_bias;
        let wd = self.width;
        let mut inp = wd;
        let mut layer = |planes: usize, n: usize, stride: usize| -> Vec<Block> {
            (0..n)
                .map(|i| {
                    let b = Block::new(bottleneck, inp, planes, if i == 0 { stride } else { 1 }, bias, device);
                    inp = planes * expansion;
                    b
                })
                .collect()
        };
        let layer1 = layer(wd, n1, 1);
        let layer2 = layer(2 * wd, n2, 2);
        let layer3 = layer(4 * wd, n3, 2);
        ResNet {
            conv1: conv(self.in_channels, wd, 7, 2, bias, device),
            bn1: bn(wd, device),
            maxpool: MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(),
            layer1,
            layer2,
            layer3,
        }
    }
}

impl ResNet {
    /// Runs the trunk on `[B, C_in, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Features {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let x = self.maxpool.forward(x);
        let f4 = self.layer1.iter().fold(x, |x, b| b.forward(x));
        let f8 = self.layer2.iter().fold(f4.clone(), |x, b| b.forward(x));
        let f16 = self.layer3.iter().fold(f8.clone(), |x, b| b.forward(x));
        Features { f4, f8, f16 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(m: &ResNet) -> usize {
        m.num_params()
    }

    #[test]
    fn shapes_and_parameter_counts() {
        let device = Device::flex();
        // torchvision's parameter counts up to layer3 (no layer4, no fc), BN gamma/beta included,
        // plus burn's count of the BN running statistics (2 x 2240 channels).
        let r18 = ResNetConfig::new(Depth::R18, 3, false).init(&device);
        assert_eq!(count(&r18), 9408 + 128 + 147_968 + 525_568 + 2_099_712 + 2 * 2240);
        let f = r18.forward(Tensor::zeros([1, 3, 64, 96], &device));
        assert_eq!(f.f4.dims(), [1, 64, 16, 24]);
        assert_eq!(f.f8.dims(), [1, 128, 8, 12]);
        assert_eq!(f.f16.dims(), [1, 256, 4, 6]);
        let r50 = ResNetConfig::new(Depth::R50, 5, true).init(&device);
        let f = r50.forward(Tensor::zeros([2, 5, 32, 32], &device));
        assert_eq!(f.f16.dims(), [2, 1024, 2, 2]);
        assert_eq!(r50.layer3.len(), 6);
        assert_eq!(ResNetConfig::new(Depth::R101, 3, false).init(&device).layer3.len(), 23);
        let small = ResNetConfig::new(Depth::R18, 3, false).with_width(16);
        assert_eq!(small.channels(), [16, 32, 64]);
        let f = small.init(&device).forward(Tensor::zeros([1, 3, 32, 32], &device));
        assert_eq!((f.f4.dims()[1], f.f8.dims()[1], f.f16.dims()), (16, 32, [1, 64, 2, 2]));
    }
}
