//! STM as improved in MiVOS — "Modular Interactive Video Object Segmentation: Interaction-to-Mask,
//! Propagation and Difference-Aware Fusion" (Cheng, Tai, Tang; CVPR 2021), its propagation
//! module (hkchengrex/Mask-Propagation). Mask-aware memory: a ResNet-50 memory encoder on
//! `[RGB, own mask, others]` gives every object its own 128-channel keys and 512-channel
//! values; a torchvision ResNet-50 encodes the query; dot-product affinity `k·q/√128`, top-50
//! (optionally the kernelised memory, σ = 5.6); the MiVOS decoder (methods.md §2.1).
//! Reads like the figure: query encoder → key/value heads → per-object memory read → decoder;
//! memory encoder → key/value heads.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};
use memvos_backbone::{DOWNSAMPLE_RENAMES, Depth, Features, ResNet, ResNetConfig};
use memvos_memory::Similarity;
use serde::{Deserialize, Serialize};

use crate::blocks::{DecoderWidths, MivosDecoder, conv, expand_batch};
use crate::network::{KeyKind, MemoryEncoding, MemoryNetwork, Method, Query, encoder_input, others_of};

/// The shape of a MiVOS network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MivosConfig {
    /// Memory encoder (published: ResNet-50 with conv biases on RGB + 2 mask channels).
    pub memory_encoder: ResNetConfig,
    /// Query encoder (published: torchvision ResNet-50).
    pub query_encoder: ResNetConfig,
    /// Key channels `C_k` (published 128).
    pub key_dim: usize,
    /// Value channels `C_v` (published 512).
    pub value_dim: usize,
    /// Decoder widths after `compress` and after the upsampling blocks (published 512, 256).
    pub decoder: [usize; 2],
}

impl Default for MivosConfig {
    fn default() -> Self {
        Self::published()
    }
}

impl MivosConfig {
    /// The network of the published `propagation_model.pth`.
    pub fn published() -> Self {
        MivosConfig {
            memory_encoder: ResNetConfig::new(Depth::R50, 5, true),
            query_encoder: ResNetConfig::new(Depth::R50, 3, false),
            key_dim: 128,
            value_dim: 512,
            decoder: [512, 256],
        }
    }

    pub(crate) fn decoder_widths(&self, input: usize) -> DecoderWidths {
        let [f4, f8, _] = self.query_encoder.channels();
        DecoderWidths { input, f8, f4, compress: self.decoder[0], out: self.decoder[1] }
    }
}

/// `kv_m_f16` / `kv_q_f16`: 3×3 convs from f16 to the key and to the value.
#[derive(Module, Debug)]
pub struct KeyValue {
    /// 3×3 conv f16 → key.
    pub key_proj: Conv2d,
    /// 3×3 conv f16 → value.
    pub val_proj: Conv2d,
}

impl KeyValue {
    /// Projections from `input` channels to `key_dim` and `value_dim`.
    pub fn new(input: usize, key_dim: usize, value_dim: usize, device: &Device) -> Self {
        KeyValue { key_proj: conv(input, key_dim, 3, device), val_proj: conv(input, value_dim, 3, device) }
    }

    /// `(key, value)` of `f16`.
    pub fn forward(&self, f16: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        (self.key_proj.forward(f16.clone()), self.val_proj.forward(f16))
    }
}

/// The memory encoder's f16 for `K` objects on one frame: `frame` `[1, 3, H, W]`, `masks`
/// `[K, 1, H, W]` → `[K, 1024, h, w]` (input `[RGB, own mask, others]`, or `[RGB, mask]` for a
/// 4-channel stage-0 encoder).
pub fn memory_features(encoder: &ResNet, frame: Tensor<4>, masks: Tensor<4>) -> Tensor<4> {
    let k = masks.dims()[0];
    let frame_rows = frame.dims()[0];
    let rgb = expand_batch(&frame, k);
    let x = encoder_input(encoder.conv1.weight.dims()[1], rgb, masks.clone(), others_of(&masks, frame_rows));
    encoder.forward(x).f16
}

/// The MiVOS propagation network; field names are the `state_dict` prefixes of
/// `propagation_model.pth`.
#[derive(Module, Debug)]
pub struct Mivos {
    /// The memory encoder: ResNet-50 on `[RGB, own mask, others]`.
    pub mask_rgb_encoder: ResNet,
    /// The query encoder: ResNet-50 on the frame.
    pub rgb_encoder: ResNet,
    /// Memory key and value projections.
    pub kv_m_f16: KeyValue,
    /// Query key and value projections.
    pub kv_q_f16: KeyValue,
    /// The decoder.
    pub decoder: MivosDecoder,
}

impl Mivos {
    /// The published network with burn's default initialisation (load weights into it).
    pub fn new(device: &Device) -> Self {
        Self::with_config(&MivosConfig::published(), device)
    }

    /// A network of this shape with burn's default initialisation.
    pub fn with_config(cfg: &MivosConfig, device: &Device) -> Self {
        let [_, _, m16] = cfg.memory_encoder.channels();
        let [_, _, q16] = cfg.query_encoder.channels();
        Mivos {
            mask_rgb_encoder: cfg.memory_encoder.init(device),
            rgb_encoder: cfg.query_encoder.init(device),
            kv_m_f16: KeyValue::new(m16, cfg.key_dim, cfg.value_dim, device),
            kv_q_f16: KeyValue::new(q16, cfg.key_dim, cfg.value_dim, device),
            decoder: MivosDecoder::new(cfg.decoder_widths(2 * cfg.value_dim), device),
        }
    }
}

impl MemoryNetwork for Mivos {
    fn method(&self) -> Method {
        Method::Mivos
    }

    fn key_kind(&self) -> KeyKind {
        KeyKind::PerObject
    }

    fn similarity(&self) -> Similarity {
        Similarity::Dot
    }

    fn encode_query(&self, frame: Tensor<4>, _previous: Option<Tensor<4>>) -> Query {
        let features: Features = self.rgb_encoder.forward(frame);
        let (k16, v16) = self.kv_q_f16.forward(features.f16.clone());
        Query { k16, v16, features }
    }

    fn encode_memory(&self, frame: Tensor<4>, _query: &Query, masks: Tensor<4>, _next: Option<Tensor<4>>) -> MemoryEncoding {
        let f16 = memory_features(&self.mask_rgb_encoder, frame, masks);
        let (key, value) = self.kv_m_f16.forward(f16);
        MemoryEncoding { key, value, aux: None, quality: None }
    }

    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        let k = readout.dims()[0];
        let x = Tensor::cat(vec![readout, expand_batch(&query.v16, k)], 1);
        self.decoder.forward(x, expand_batch(&query.features.f8, k), expand_batch(&query.features.f4, k))
    }
}

/// PyTorch `state_dict` name → module path for MiVOS (and QDMN): the query encoder calls
/// `layer1` `res2`; torchvision's `downsample.0/1` are `downsample.conv/bn`.
pub fn key_renames() -> Vec<(&'static str, &'static str)> {
    let mut v = vec![(r"^rgb_encoder\.res2\.", "rgb_encoder.layer1.")];
    v.extend(DOWNSAMPLE_RENAMES);
    v
}

/// Module path → PyTorch name (the inverse of [`key_renames`]).
pub fn key_renames_inverse() -> Vec<(&'static str, &'static str)> {
    vec![(r"^rgb_encoder\.layer1\.", "rgb_encoder.res2."), (r"\.downsample\.conv\.", ".downsample.0."), (r"\.downsample\.bn\.", ".downsample.1.")]
}
