//! STCN — "Rethinking Space-Time Networks with Improved Memory Coverage for Efficient Video
//! Object Segmentation" (Cheng, Tai, Tang; NeurIPS 2021). Image-only keys shared by all objects,
//! negative squared L2 affinity with top-k 20, a ResNet-18 value encoder fused with the key
//! encoder's features through CBAM (methods.md §2.2). Reads top to bottom like the figure:
//! key encoder → key projection / compression → memory readout → decoder; value encoder.
//!
//! [`StcnConfig::published`] is the network of `stcn.pth`; other configurations (narrower
//! trunks, fewer key channels) are the same network, smaller, as trained on a CPU.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use memvos_backbone::{DOWNSAMPLE_RENAMES, Depth, ResNet, ResNetConfig};
use memvos_memory::{MemoryBank, Similarity};
use serde::{Deserialize, Serialize};

use crate::blocks::{Decoder, DecoderWidths, FeatureFusionBlock, conv, expand_batch};
use crate::network::{KeyKind, MemoryEncoding, MemoryNetwork, Method, Query, encoder_input, others_of};

/// The shape of an STCN network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StcnConfig {
    /// Key encoder (published: torchvision ResNet-50, no conv biases).
    pub key_encoder: ResNetConfig,
    /// Value encoder trunk (published: ResNet-18 with conv biases, RGB + 2 mask channels).
    pub value_encoder: ResNetConfig,
    /// Key channels `C_k` (published 64).
    pub key_dim: usize,
    /// Value channels `C_v` (published 512).
    pub value_dim: usize,
    /// Decoder widths after `compress` and after the upsampling blocks (published 512, 256).
    pub decoder: [usize; 2],
}

impl Default for StcnConfig {
    fn default() -> Self {
        Self::published()
    }
}

impl StcnConfig {
    /// The network of the published `stcn.pth`.
    pub fn published() -> Self {
        StcnConfig {
            key_encoder: ResNetConfig::new(Depth::R50, 3, false),
            value_encoder: ResNetConfig::new(Depth::R18, 5, true),
            key_dim: 64,
            value_dim: 512,
            decoder: [512, 256],
        }
    }

    /// Checks that the sizes make a network (every width at least 1, masks in the input).
    pub fn validate(&self) -> Result<(), String> {
        let widths = [("key_encoder.width", self.key_encoder.width), ("value_encoder.width", self.value_encoder.width), ("key_dim", self.key_dim), ("value_dim", self.value_dim), ("decoder[0]", self.decoder[0]), ("decoder[1]", self.decoder[1])];
        for (name, v) in widths {
            if v == 0 || v > 8192 {
                return Err(format!("STCN config: {name} = {v} is outside 1..=8192"));
            }
        }
        if self.value_dim < 16 {
            return Err(format!("STCN config: value_dim = {} is below 16 (CBAM's hidden layer has value_dim / 16 units)", self.value_dim));
        }
        if self.key_encoder.in_channels != 3 || !(4..=5).contains(&self.value_encoder.in_channels) {
            return Err("STCN config: the key encoder takes 3 channels, the value encoder 4 or 5".into());
        }
        Ok(())
    }

    fn decoder_widths(&self) -> DecoderWidths {
        let [f4, f8, _] = self.key_encoder.channels();
        DecoderWidths { input: 2 * self.value_dim, f8, f4, compress: self.decoder[0], out: self.decoder[1] }
    }
}

/// `key_proj.key_proj`: 3×3 conv 1024 → 64.
#[derive(Module, Debug)]
pub struct KeyProjection {
    /// The 3×3 conv f16 → key.
    pub key_proj: Conv2d,
}

/// The value encoder: a ResNet-18 with conv biases on `[RGB, own mask, others]` (5 channels),
/// fused with the key encoder's f16 of the same frame. PyTorch keeps the trunk's layers directly
/// under `value_encoder.` (see [`key_renames`]).
#[derive(Module, Debug)]
pub struct ValueEncoder {
    /// The ResNet-18 trunk on `[RGB, own mask, others]`.
    pub trunk: ResNet,
    /// Fuses the trunk's f16 with the key encoder's.
    pub fuser: FeatureFusionBlock,
}

impl ValueEncoder {
    /// A value encoder with this trunk, fusing `key_f16` key-encoder channels into `value_dim`.
    pub fn new(trunk: ResNetConfig, key_f16: usize, value_dim: usize, device: &Device) -> Self {
        let [_, _, f16] = trunk.channels();
        ValueEncoder { trunk: trunk.init(device), fuser: FeatureFusionBlock::new(key_f16 + f16, value_dim, device) }
    }

    /// `image` `[K, 3, H, W]`, `key_f16` `[K, 1024, h, w]`, `mask` / `others` `[K, 1, H, W]` →
    /// values `[K, 512, h, w]`. A 4-channel (stage-0) trunk gets no `others`.
    pub fn forward(&self, image: Tensor<4>, key_f16: Tensor<4>, mask: Tensor<4>, others: Tensor<4>) -> Tensor<4> {
        let x = encoder_input(self.trunk.conv1.weight.dims()[1], image, mask, others);
        let f16 = self.trunk.forward(x).f16;
        self.fuser.forward(f16, key_f16)
    }

    /// Values of `K` objects on one frame: `frame` `[1, 3, H, W]`, `key_f16` `[1, C, h, w]`,
    /// `masks` `[K, 1, H, W]`; "others" of object `i` is the sum of the other objects' masks.
    pub fn encode(&self, frame: Tensor<4>, key_f16: Tensor<4>, masks: Tensor<4>) -> Tensor<4> {
        let k = masks.dims()[0];
        let others = others_of(&masks, frame.dims()[0]);
        self.forward(expand_batch(&frame, k), expand_batch(&key_f16, k), masks, others)
    }
}

/// The STCN evaluation network; field names are the `state_dict` prefixes of `stcn.pth`.
#[derive(Module, Debug)]
pub struct Stcn {
    /// The query (key) encoder: ResNet-50 to layer3.
    pub key_encoder: ResNet,
    /// f16 → key.
    pub key_proj: KeyProjection,
    /// 1×1 conv compressing f16 for the decoder (the query's `v16`).
    pub key_comp: Conv2d,
    /// The value encoder.
    pub value_encoder: ValueEncoder,
    /// The decoder.
    pub decoder: Decoder,
}

/// What the key encoder gives for one frame (the [`Query`] of [`MemoryNetwork`]): key `k16`
/// `[1, 64, h, w]`, query value ("f16_thin") `v16` `[1, 512, h, w]` and the trunk features.
pub type EncodedKey = Query;

impl Stcn {
    /// The published network with burn's default initialisation (load weights into it).
    pub fn new(device: &Device) -> Self {
        Self::with_config(&StcnConfig::published(), device)
    }

    /// A network of any [`StcnConfig`].
    pub fn with_config(cfg: &StcnConfig, device: &Device) -> Self {
        let [_, _, f16] = cfg.key_encoder.channels();
        Stcn {
            key_encoder: cfg.key_encoder.init(device),
            key_proj: KeyProjection { key_proj: conv(f16, cfg.key_dim, 3, device) },
            key_comp: conv(f16, cfg.value_dim, 3, device),
            value_encoder: ValueEncoder::new(cfg.value_encoder, f16, cfg.value_dim, device),
            decoder: Decoder::with_widths(cfg.decoder_widths(), device),
        }
    }

    /// Key encoder, key projection and compression of a normalised frame `[1, 3, H, W]`.
    pub fn encode_key(&self, frame: Tensor<4>) -> EncodedKey {
        let features = self.key_encoder.forward(frame);
        let k16 = self.key_proj.key_proj.forward(features.f16.clone());
        let v16 = self.key_comp.forward(features.f16.clone());
        Query { k16, v16, features }
    }

    /// Memory values of `K` objects on one frame: `frame` `[1, 3, H, W]`, `key_f16`
    /// `[1, 1024, h, w]`, `masks` `[K, 1, H, W]` (aggregated probabilities). "Others" of object
    /// `i` is the sum of the other objects' masks (zero for one object). Output `[K, 512, h, w]`.
    pub fn encode_value(&self, frame: Tensor<4>, key_f16: Tensor<4>, masks: Tensor<4>) -> Tensor<4> {
        self.value_encoder.encode(frame, key_f16, masks)
    }

    /// Decoder logits `[K, 1, H, W]` from memory readouts `[K, 512, h, w]` and the query frame.
    pub fn decode(&self, readout: Tensor<4>, key: &EncodedKey) -> Tensor<4> {
        let k = readout.dims()[0];
        let x = Tensor::cat(vec![readout, expand_batch(&key.v16, k)], 1);
        self.decoder.forward(x, expand_batch(&key.features.f8, k), expand_batch(&key.features.f4, k))
    }

    /// Reads `bank` for the query key and decodes: per-object probabilities `[K, 1, H, W]`.
    pub fn segment(&self, bank: &MemoryBank, key: &EncodedKey) -> Result<Tensor<4>, memvos_memory::MemoryError> {
        let readout = bank.read(key.k16.clone(), None)?;
        Ok(sigmoid(self.decode(readout, key)))
    }
}

impl MemoryNetwork for Stcn {
    fn method(&self) -> Method {
        Method::Stcn
    }

    fn key_kind(&self) -> KeyKind {
        KeyKind::Shared
    }

    fn similarity(&self) -> Similarity {
        Similarity::L2
    }

    fn encode_query(&self, frame: Tensor<4>, _previous: Option<Tensor<4>>) -> Query {
        self.encode_key(frame)
    }

    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, _next: Option<Tensor<4>>) -> MemoryEncoding {
        let value = self.encode_value(frame, query.features.f16.clone(), masks);
        MemoryEncoding { key: query.k16.clone(), value, aux: None, quality: None }
    }

    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        Stcn::decode(self, readout, query)
    }
}

/// PyTorch `state_dict` name → module path, for STCN (the whole mapping; every other name is
/// equal). Applied in order. GSFM and IMSFR share it.
pub fn key_renames() -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        (r"^key_encoder\.res2\.", "key_encoder.layer1."),
        (r"^value_encoder\.(conv1|bn1|layer1|layer2|layer3)\.", "value_encoder.trunk.$1."),
        (r"\.attention\.ChannelGate\.mlp\.1\.", ".attention.channel_gate.fc1."),
        (r"\.attention\.ChannelGate\.mlp\.3\.", ".attention.channel_gate.fc2."),
        (r"\.attention\.SpatialGate\.spatial\.conv\.", ".attention.spatial_gate.conv."),
    ];
    v.extend(DOWNSAMPLE_RENAMES);
    v
}

/// Module path → PyTorch name (the inverse of [`key_renames`]), for saving.
pub fn key_renames_inverse() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"^key_encoder\.layer1\.", "key_encoder.res2."),
        (r"^value_encoder\.trunk\.", "value_encoder."),
        (r"\.attention\.channel_gate\.fc1\.", ".attention.ChannelGate.mlp.1."),
        (r"\.attention\.channel_gate\.fc2\.", ".attention.ChannelGate.mlp.3."),
        (r"\.attention\.spatial_gate\.conv\.", ".attention.SpatialGate.spatial.conv."),
        (r"\.downsample\.conv\.", ".downsample.0."),
        (r"\.downsample\.bn\.", ".downsample.1."),
    ]
}
