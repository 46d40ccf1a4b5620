//! GSFM — "Learning Spatial-Frequency Memory for Video Object Segmentation" (global spectral
//! filter memory; Liu et al., ECCV 2022), yongliu20/GSFM. STCN with spectral modules
//! (methods.md §2.4): a mod_resnet ResNet-50 key encoder (conv biases) whose f16 passes a
//! low-frequency module (LFM) before the key projection, the compression and the value
//! encoder's fuser; and a decoder head with a high-frequency module (HFM) on a boundary branch
//! that feeds the mask branch. Everything else is STCN's: 64-channel keys shared by the
//! objects, L2 affinity, top-k, the ResNet-18 value encoder with CBAM fusion.
//!
//! Reads like the figure: key encoder → LFM → key projection / compression → memory read →
//! decoder (compress, upsampling, boundary/mask head with HFM); value encoder.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use memvos_backbone::{Depth, ResNet, ResNetConfig};
use memvos_memory::Similarity;
use serde::{Deserialize, Serialize};

use crate::blocks::{ResBlock, UpsampleBlock, conv, expand_batch, upsample};
use crate::network::{KeyKind, MemoryEncoding, MemoryNetwork, Method, Query};
use crate::spectral::{Band, SpectralFilter};
use crate::stcn::{KeyProjection, ValueEncoder};

/// The shape of a GSFM network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GsfmConfig {
    /// Key encoder (mod_resnet ResNet-50: conv biases).
    pub key_encoder: ResNetConfig,
    /// Value encoder trunk (ResNet-18 with conv biases, RGB + 2 mask channels).
    pub value_encoder: ResNetConfig,
    /// Key channels `C_k` (published 64).
    pub key_dim: usize,
    /// Value channels `C_v` (published 512).
    pub value_dim: usize,
    /// Decoder widths after `compress` and after the upsampling blocks (512, 256).
    pub decoder: [usize; 2],
}

impl Default for GsfmConfig {
    fn default() -> Self {
        GsfmConfig {
            key_encoder: ResNetConfig::new(Depth::R50, 3, true),
            value_encoder: ResNetConfig::new(Depth::R18, 5, true),
            key_dim: 64,
            value_dim: 512,
            decoder: [512, 256],
        }
    }
}

/// GSFM's decoder: STCN's trunk, then the boundary/mask head at 1/4 (field names are the
/// published ones).
#[derive(Module, Debug)]
pub struct GsfmDecoder {
    /// ResBlock from the readout plus f16 to the compressed width.
    pub compress: ResBlock,
    /// Upsampling 1/16 → 1/8 with the f8 skip.
    pub up_16_8: UpsampleBlock,
    /// Upsampling 1/8 → 1/4 with the f4 skip.
    pub up_8_4: UpsampleBlock,
    /// 3×3 conv to the mask logits at 1/4.
    pub pred: Conv2d,
    /// 3×3 conv opening the boundary branch (the HFM's input).
    pub boundary_1: Conv2d,
    /// 3×3 conv opening the mask branch.
    pub mask_1: Conv2d,
    /// First 3×3 conv on the fused boundary features.
    pub boundary_2: Conv2d,
    /// Second 3×3 conv on the fused boundary features.
    pub boundary_3: Conv2d,
    /// 1×1 conv carrying the mask branch into the boundary branch.
    pub fusion_1: Conv2d,
    /// 1×1 conv carrying the boundary branch into the mask branch.
    pub fusion_2: Conv2d,
    /// 3×3 conv of the boundary prediction.
    pub predict_boundary_1: Conv2d,
    /// 3×3 conv to the boundary logits at 1/4.
    pub predict_boundary_2: Conv2d,
    /// 3×3 conv of the mask prediction (before `pred`).
    pub predict_mask: Conv2d,
    /// The high-frequency module on `boundary_1`'s output.
    pub hfm: SpectralFilter,
}

/// The decoder's outputs: mask logits, boundary logits (both full resolution), and the
/// intermediate maps the parity fixture stores.
#[derive(Clone, Debug)]
pub struct GsfmDecoded {
    /// Mask logits `[K, 1, H, W]`.
    pub mask: Tensor<4>,
    /// Boundary logits `[K, 1, H, W]`.
    pub boundary: Tensor<4>,
    /// `boundary_1`'s output (the HFM's input), `[K, 256, 4h, 4w]`.
    pub boundary_1: Tensor<4>,
    /// The HFM's output.
    pub hfm: Tensor<4>,
}

impl GsfmDecoder {
    fn new(input: usize, f8: usize, f4: usize, widths: [usize; 2], device: &Device) -> Self {
        let [mid, c] = widths;
        GsfmDecoder {
            compress: ResBlock::new(input, mid, device),
            up_16_8: UpsampleBlock::new(f8, mid, c, device),
            up_8_4: UpsampleBlock::new(f4, c, c, device),
            pred: conv(c, 1, 3, device),
            boundary_1: conv(c, c, 3, device),
            mask_1: conv(c, c, 3, device),
            boundary_2: conv(c, c, 3, device),
            boundary_3: conv(c, c, 3, device),
            fusion_1: conv(c, c, 1, device),
            fusion_2: conv(c, c, 1, device),
            predict_boundary_1: conv(c, c, 3, device),
            predict_boundary_2: conv(c, 1, 3, device),
            predict_mask: conv(c, c, 3, device),
            hfm: SpectralFilter::new(c, device),
        }
    }

    /// `f16` `[K, 2·C_v, h, w]` and the query's skips → mask and boundary logits.
    pub fn forward(&self, f16: Tensor<4>, f8: Tensor<4>, f4: Tensor<4>) -> GsfmDecoded {
        let x = self.compress.forward(f16);
        let x = self.up_16_8.forward(f8, x);
        let x = self.up_8_4.forward(f4, x);
        let boundary_1 = self.boundary_1.forward(x.clone());
        let hfm = self.hfm.forward(boundary_1.clone(), Band::High);
        let m = self.mask_1.forward(x);
        let b = hfm.clone() + relu(self.fusion_1.forward(m.clone()));
        let b = relu(self.boundary_3.forward(self.boundary_2.forward(b)));
        let m = m + relu(self.fusion_2.forward(b.clone()));
        let m = self.predict_mask.forward(m);
        let mask = upsample(self.pred.forward(relu(m)), 4);
        let boundary = upsample(self.predict_boundary_2.forward(relu(self.predict_boundary_1.forward(b))), 4);
        GsfmDecoded { mask, boundary, boundary_1, hfm }
    }
}

/// The GSFM evaluation network; field names are the `state_dict` prefixes of its checkpoints.
#[derive(Module, Debug)]
pub struct Gsfm {
    /// The query (key) encoder: ResNet-50 to layer3.
    pub key_encoder: ResNet,
    /// f16 → key.
    pub key_proj: KeyProjection,
    /// 1×1 conv compressing f16 for the decoder (the query's `v16`).
    pub key_comp: Conv2d,
    /// The value encoder (ResNet-18 on the frame and masks, fused with f16).
    pub value_encoder: ValueEncoder,
    /// The decoder with its boundary head and HFM.
    pub decoder: GsfmDecoder,
    /// The low-frequency module on the key encoder's f16.
    pub lfm: SpectralFilter,
}

impl Gsfm {
    /// The network of the reference code with burn's default initialisation.
    pub fn new(device: &Device) -> Self {
        Self::with_config(&GsfmConfig::default(), device)
    }

    /// A network of this shape with burn's default initialisation.
    pub fn with_config(cfg: &GsfmConfig, device: &Device) -> Self {
        let [f4, f8, f16] = cfg.key_encoder.channels();
        Gsfm {
            key_encoder: cfg.key_encoder.init(device),
            key_proj: KeyProjection { key_proj: conv(f16, cfg.key_dim, 3, device) },
            key_comp: conv(f16, cfg.value_dim, 3, device),
            value_encoder: ValueEncoder::new(cfg.value_encoder, f16, cfg.value_dim, device),
            decoder: GsfmDecoder::new(2 * cfg.value_dim, f8, f4, cfg.decoder, device),
            lfm: SpectralFilter::new(f16, device),
        }
    }

    /// The full decoder output (mask and boundary logits) for readouts `[K, C_v, h, w]`.
    pub fn decode_all(&self, query: &Query, readout: Tensor<4>) -> GsfmDecoded {
        let k = readout.dims()[0];
        let x = Tensor::cat(vec![readout, expand_batch(&query.v16, k)], 1);
        self.decoder.forward(x, expand_batch(&query.features.f8, k), expand_batch(&query.features.f4, k))
    }

    /// The key encoder's raw f16 and the query (whose `features.f16` is the LFM's output).
    pub fn encode_key(&self, frame: Tensor<4>) -> (Tensor<4>, Query) {
        let mut features = self.key_encoder.forward(frame);
        let raw = features.f16.clone();
        features.f16 = self.lfm.forward(raw.clone(), Band::Low);
        let k16 = self.key_proj.key_proj.forward(features.f16.clone());
        let v16 = self.key_comp.forward(features.f16.clone());
        (raw, Query { k16, v16, features })
    }
}

impl MemoryNetwork for Gsfm {
    fn method(&self) -> Method {
        Method::Gsfm
    }

    fn key_kind(&self) -> KeyKind {
        KeyKind::Shared
    }

    fn similarity(&self) -> Similarity {
        Similarity::L2
    }

    fn encode_query(&self, frame: Tensor<4>, _previous: Option<Tensor<4>>) -> Query {
        self.encode_key(frame).1
    }

    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, _next: Option<Tensor<4>>) -> MemoryEncoding {
        let value = self.value_encoder.encode(frame, query.features.f16.clone(), masks);
        MemoryEncoding { key: query.k16.clone(), value, aux: None, quality: None }
    }

    /// The mask logits (inference discards the boundary branch's output).
    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        self.decode_all(query, readout).mask
    }
}
