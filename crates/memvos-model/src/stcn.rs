//! STCN — "Rethinking Space-Time Networks with Improved Memory Coverage for Efficient Video
//! Object Segmentation" (Cheng, Tai, Tang; NeurIPS 2021). Image-only keys shared by all objects,
//! negative squared L2 affinity with top-k 20, a ResNet-18 value encoder fused with the key
//! encoder's features through CBAM (methods.md §2.2). Reads top to bottom like the figure:
//! key encoder → key projection / compression → memory readout → decoder; value encoder.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use memvos_backbone::{Depth, Features, ResNet, ResNetConfig};
use memvos_memory::MemoryBank;

use crate::blocks::{Decoder, FeatureFusionBlock, conv};

/// `key_proj.key_proj`: 3×3 conv 1024 → 64.
#[derive(Module, Debug)]
pub struct KeyProjection {
    pub key_proj: Conv2d,
}

/// The value encoder: a ResNet-18 with conv biases on `[RGB, own mask, others]` (5 channels),
/// fused with the key encoder's f16 of the same frame. PyTorch keeps the trunk's layers directly
/// under `value_encoder.` (see [`crate::weights::stcn_key_renames`]).
#[derive(Module, Debug)]
pub struct ValueEncoder {
    pub trunk: ResNet,
    pub fuser: FeatureFusionBlock,
}

impl ValueEncoder {
    /// `image` `[K, 3, H, W]`, `key_f16` `[K, 1024, h, w]`, `mask` / `others` `[K, 1, H, W]` →
    /// values `[K, 512, h, w]`.
    pub fn forward(&self, image: Tensor<4>, key_f16: Tensor<4>, mask: Tensor<4>, others: Tensor<4>) -> Tensor<4> {
        let x = Tensor::cat(vec![image, mask, others], 1);
        let f16 = self.trunk.forward(x).f16;
        self.fuser.forward(f16, key_f16)
    }
}

/// The STCN evaluation network; field names are the `state_dict` prefixes of `stcn.pth`.
#[derive(Module, Debug)]
pub struct Stcn {
    pub key_encoder: ResNet,
    pub key_proj: KeyProjection,
    pub key_comp: Conv2d,
    pub value_encoder: ValueEncoder,
    pub decoder: Decoder,
}

/// What the key encoder gives for one frame.
#[derive(Clone, Debug)]
pub struct EncodedKey {
    /// Key `[1, 64, h, w]`.
    pub k16: Tensor<4>,
    /// Query value ("f16_thin") `[1, 512, h, w]`.
    pub v16: Tensor<4>,
    /// Trunk features (f16 `[1, 1024, h, w]`, f8, f4).
    pub features: Features,
}

impl Stcn {
    /// A network with burn's default initialisation (load weights into it before use).
    pub fn new(device: &Device) -> Self {
        Stcn {
            key_encoder: ResNetConfig::new(Depth::R50, 3, false).init(device),
            key_proj: KeyProjection { key_proj: conv(1024, 64, 3, device) },
            key_comp: conv(1024, 512, 3, device),
            value_encoder: ValueEncoder {
                trunk: ResNetConfig::new(Depth::R18, 5, true).init(device),
                fuser: FeatureFusionBlock::new(1024 + 256, 512, device),
            },
            decoder: Decoder::new(device),
        }
    }

    /// Key encoder, key projection and compression of a normalised frame `[1, 3, H, W]`.
    pub fn encode_key(&self, frame: Tensor<4>) -> EncodedKey {
        let features = self.key_encoder.forward(frame);
        let k16 = self.key_proj.key_proj.forward(features.f16.clone());
        let v16 = self.key_comp.forward(features.f16.clone());
        EncodedKey { k16, v16, features }
    }

    /// Memory values of `K` objects on one frame: `frame` `[1, 3, H, W]`, `key_f16`
    /// `[1, 1024, h, w]`, `masks` `[K, 1, H, W]` (aggregated probabilities). "Others" of object
    /// `i` is the sum of the other objects' masks (zero for one object). Output `[K, 512, h, w]`.
    pub fn encode_value(&self, frame: Tensor<4>, key_f16: Tensor<4>, masks: Tensor<4>) -> Tensor<4> {
        let [k, _, h, w] = masks.dims();
        let total = masks.clone().sum_dim(0);
        let others = total.expand([k, 1, h, w]) - masks.clone();
        let [_, c, fh, fw] = key_f16.dims();
        let [_, _, ih, iw] = frame.dims();
        self.value_encoder.forward(frame.expand([k, 3, ih, iw]), key_f16.expand([k, c, fh, fw]), masks, others)
    }

    /// Decoder logits `[K, 1, H, W]` from memory readouts `[K, 512, h, w]` and the query frame.
    pub fn decode(&self, readout: Tensor<4>, key: &EncodedKey) -> Tensor<4> {
        let [k, _, h, w] = readout.dims();
        let expand = |t: &Tensor<4>| {
            let [_, c, th, tw] = t.dims();
            t.clone().expand([k, c, th, tw])
        };
        let x = Tensor::cat(vec![readout, key.v16.clone().expand([k, 512, h, w])], 1);
        self.decoder.forward(x, expand(&key.features.f8), expand(&key.features.f4))
    }

    /// Reads `bank` for the query key and decodes: per-object probabilities `[K, 1, H, W]`.
    pub fn segment(&self, bank: &MemoryBank, key: &EncodedKey) -> Result<Tensor<4>, memvos_memory::MemoryError> {
        let readout = bank.read(key.k16.clone(), None)?;
        Ok(sigmoid(self.decode(readout, key)))
    }
}
