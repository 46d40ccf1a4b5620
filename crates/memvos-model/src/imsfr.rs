//! IMSFR — "Isogenous Memory Sampling and Frame Relation Mining for Video Object Segmentation"
//! (TIP 2023), xinbaiw/IMSFR. STCN's code base with (methods.md §2.5):
//!
//! - a torchvision ResNet-101 key encoder and no key projection: the key is `key_comp(f16)`
//!   (512 channels), the same tensor as the query value;
//! - frame relation mining in the value encoder: the memory value of frame `t` is gated by the
//!   same ResNet-18 trunk run on frame `t+1` with frame `t`'s masks (`value_encoder.mask`), and a
//!   second value `v_pe = conv_fusion(v + conv_fusion1v(γ(v)))` is made with a sinusoidal
//!   encoding γ of the value itself;
//! - three readouts per object — the (isogenously sampled, [`memvos_memory::Imsfr`]) memory with
//!   top-k, the first frame, and the newest stored frame through its `v_pe` — fused by a gate,
//!   `F = (1 + σ(mask(Z + GAP(Z)))) ⊙ (R_mem + R_first + R_adj)`, `Z = cat[R_mem, R_first, R_adj]`;
//! - STCN's decoder on `cat[F, v_q]`.
//!
//! Reads like the figure: key encoder → key_comp → three readouts → fusion → decoder; value
//! encoder (twice: frame t, and frame t+1 for the gate) → value and `v_pe`.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use memvos_backbone::{Depth, ResNet, ResNetConfig};
use memvos_memory::{MemoryBank, MemoryError, ReadSpec, Selection, Similarity, ValueSlot};
use serde::{Deserialize, Serialize};

use crate::blocks::{Decoder, DecoderWidths, FeatureFusionBlock, conv, expand_batch};
use crate::network::{KeyKind, MemoryEncoding, MemoryNetwork, Method, Query, encoder_input, others_of};

/// Frequencies of the value encoding γ: `2⁰ … 2⁵`.
pub const PE_FREQUENCIES: usize = 6;

/// The shape of an IMSFR network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImsfrConfig {
    /// Key encoder (torchvision ResNet-101).
    pub key_encoder: ResNetConfig,
    /// Value encoder trunk (ResNet-18 with conv biases, RGB + 2 mask channels).
    pub value_encoder: ResNetConfig,
    /// Value channels `C_v`, also the key channels (published 512).
    pub value_dim: usize,
    /// Decoder widths after `compress` and after the upsampling blocks (512, 256).
    pub decoder: [usize; 2],
}

impl Default for ImsfrConfig {
    fn default() -> Self {
        ImsfrConfig { key_encoder: ResNetConfig::new(Depth::R101, 3, false), value_encoder: ResNetConfig::new(Depth::R18, 5, true), value_dim: 512, decoder: [512, 256] }
    }
}

/// IMSFR's value encoder: STCN's (trunk + fuser) plus the next-frame gate conv `mask`.
#[derive(Module, Debug)]
pub struct ImsfrValueEncoder {
    /// The ResNet-18 trunk on the frame and masks.
    pub trunk: ResNet,
    /// Fuses the trunk's f16 with the key encoder's.
    pub fuser: FeatureFusionBlock,
    /// The next-frame gate conv.
    pub mask: Conv2d,
}

/// The memory values of one frame.
#[derive(Clone, Debug)]
pub struct ImsfrValue {
    /// The gate's logits (before the sigmoid), `[K, C_v, h, w]`.
    pub gate_logits: Tensor<4>,
    /// The gated value `v` (global and first-frame memories).
    pub value: Tensor<4>,
    /// `conv_fusion1v(γ(v))`.
    pub pe_proj: Tensor<4>,
    /// `v_pe = conv_fusion(v + pe_proj)` (the "previous frame" memory).
    pub value_pe: Tensor<4>,
}

/// The three readouts and their fusion for one group of objects.
#[derive(Clone, Debug)]
pub struct ImsfrReadout {
    /// The readout of the sampled memory (with any temporary frame).
    pub memory: Tensor<4>,
    /// The readout of the first frame.
    pub first: Tensor<4>,
    /// The readout of the newest stored frame's `v_pe`.
    pub adjacent: Tensor<4>,
    /// The fusion gate's logits.
    pub gate_logits: Tensor<4>,
    /// `(1 + σ(gate)) · (memory + first + adjacent)`: what the decoder reads.
    pub fused: Tensor<4>,
}

/// The IMSFR evaluation network; field names are the `state_dict` prefixes of its eval network.
#[derive(Module, Debug)]
pub struct Imsfr {
    /// The query (key) encoder: ResNet-101 to layer3.
    pub key_encoder: ResNet,
    /// f16 → key (also the decoder's `v16`).
    pub key_comp: Conv2d,
    /// The value encoder with its next-frame gate.
    pub value_encoder: ImsfrValueEncoder,
    /// `conv_fusion1v`: projects the gated value for `v_pe`.
    pub conv_fusion1v: Conv2d,
    /// `conv_fusion`: `v_pe = conv_fusion(v + pe_proj)`.
    pub conv_fusion: Conv2d,
    /// STCN's decoder.
    pub decoder: Decoder,
    /// The fusion gate (used for every object at inference).
    pub mask: Conv2d,
    /// Training's gate for the second object; loaded, unused at inference (as published).
    pub mask2: Conv2d,
}

/// γ(v) = `[v, sin(2⁰v), cos(2⁰v), …, sin(2⁵v), cos(2⁵v)]` along channels, block-major.
pub fn value_encoding(v: Tensor<4>) -> Tensor<4> {
    let mut blocks = vec![v.clone()];
    for i in 0..PE_FREQUENCIES {
        let x = v.clone().mul_scalar((1u32 << i) as f64);
        blocks.push(x.clone().sin());
        blocks.push(x.cos());
    }
    Tensor::cat(blocks, 1)
}

impl Imsfr {
    /// The network of the reference code with burn's default initialisation.
    pub fn new(device: &Device) -> Self {
        Self::with_config(&ImsfrConfig::default(), device)
    }

    /// A network of this shape with burn's default initialisation.
    pub fn with_config(cfg: &ImsfrConfig, device: &Device) -> Self {
        let [f4, f8, f16] = cfg.key_encoder.channels();
        let [_, _, v16] = cfg.value_encoder.channels();
        let cv = cfg.value_dim;
        Imsfr {
            key_encoder: cfg.key_encoder.init(device),
            key_comp: conv(f16, cv, 3, device),
            value_encoder: ImsfrValueEncoder { trunk: cfg.value_encoder.init(device), fuser: FeatureFusionBlock::new(f16 + v16, cv, device), mask: conv(v16, cv, 3, device) },
            conv_fusion1v: conv((1 + 2 * PE_FREQUENCIES) * cv, cv, 1, device),
            conv_fusion: conv(cv, cv, 1, device),
            decoder: Decoder::with_widths(DecoderWidths { input: 2 * cv, f8, f4, compress: cfg.decoder[0], out: cfg.decoder[1] }, device),
            mask: conv(3 * cv, cv, 3, device),
            mask2: conv(3 * cv, cv, 3, device),
        }
    }

    /// Memory values of frame `frame` (`[1, 3, H, W]`, its key-encoder f16 `key_f16`) for `K`
    /// objects' `masks`, gated with the following frame `next`.
    pub fn encode_values(&self, frame: Tensor<4>, key_f16: Tensor<4>, masks: Tensor<4>, next: Tensor<4>) -> ImsfrValue {
        let k = masks.dims()[0];
        let others = others_of(&masks, frame.dims()[0]);
        let ve = &self.value_encoder;
        let cin = ve.trunk.conv1.weight.dims()[1];
        let x = ve.trunk.forward(encoder_input(cin, expand_batch(&frame, k), masks.clone(), others.clone())).f16;
        let v = ve.fuser.forward(x, expand_batch(&key_f16, k));
        let n = ve.trunk.forward(encoder_input(cin, expand_batch(&next, k), masks, others)).f16;
        let gate_logits = ve.mask.forward(n);
        let value = v * sigmoid(gate_logits.clone());
        let pe_proj = self.conv_fusion1v.forward(value_encoding(value.clone()));
        let value_pe = self.conv_fusion.forward(value.clone() + pe_proj.clone());
        ImsfrValue { gate_logits, value, pe_proj, value_pe }
    }

    /// The three readouts of one group's bank and their fusion. `positions` are the policy's
    /// (sampled) stored frames for the top-k read; the first and the newest stored frames are
    /// read with a full softmax, the newest through its `v_pe`.
    pub fn readouts(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> Result<ImsfrReadout, MemoryError> {
        let q = || query.k16.clone();
        let newest = bank.frames().checked_sub(1).ok_or(MemoryError::Empty)?;
        let memory = bank.read_with(q(), ReadSpec { positions: Some(positions), temporary: true, selection: bank.read.selection, slot: ValueSlot::Value })?;
        let first = bank.read_with(q(), ReadSpec { positions: Some(&[0]), temporary: false, selection: Selection::Full, slot: ValueSlot::Value })?;
        let adjacent = bank.read_with(q(), ReadSpec { positions: Some(&[newest]), temporary: false, selection: Selection::Full, slot: ValueSlot::Aux })?;
        let z = Tensor::cat(vec![memory.clone(), first.clone(), adjacent.clone()], 1);
        let pooled = z.clone().mean_dim(3).mean_dim(2);
        let gate_logits = self.mask.forward(z + pooled);
        let fused = (sigmoid(gate_logits.clone()).add_scalar(1.0)) * (memory.clone() + first.clone() + adjacent.clone());
        Ok(ImsfrReadout { memory, first, adjacent, gate_logits, fused })
    }
}

impl MemoryNetwork for Imsfr {
    fn method(&self) -> Method {
        Method::Imsfr
    }

    fn key_kind(&self) -> KeyKind {
        KeyKind::Shared
    }

    fn similarity(&self) -> Similarity {
        Similarity::L2
    }

    fn uses_next_frame(&self) -> bool {
        true
    }

    fn encode_query(&self, frame: Tensor<4>, _previous: Option<Tensor<4>>) -> Query {
        let features = self.key_encoder.forward(frame);
        let k16 = self.key_comp.forward(features.f16.clone());
        Query { k16: k16.clone(), v16: k16, features }
    }

    /// Without a following frame (never the case in a propagator, which never memorises the
    /// last frame) the frame gates itself.
    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding {
        let next = next.unwrap_or_else(|| frame.clone());
        let v = self.encode_values(frame, query.features.f16.clone(), masks, next);
        MemoryEncoding { key: query.k16.clone(), value: v.value, aux: Some(v.value_pe), quality: None }
    }

    fn read_memory(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> Result<Tensor<4>, MemoryError> {
        Ok(self.readouts(query, bank, positions)?.fused)
    }

    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        let k = readout.dims()[0];
        let x = Tensor::cat(vec![readout, expand_batch(&query.v16, k)], 1);
        self.decoder.forward(x, expand_batch(&query.features.f8, k), expand_batch(&query.features.f4, k))
    }
}
