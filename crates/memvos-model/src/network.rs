//! The one trait every memory network implements, so the [`crate::Propagator`] can drive any of
//! them: encode the query frame, encode memory for `K` objects, read memory, decode. Adding a
//! method is one file implementing [`MemoryNetwork`] plus its weight-name table.
//!
//! The split follows the methods' common figure (methods.md §1.7):
//!
//! ```text
//! frame t ──encode_query──▶ Query { k16, v16, f16/f8/f4 }
//!                                 │            ▲ read_memory (per object group, policy's positions)
//! memory bank ◀──encode_memory── frame t−1, its probabilities (and frame t, for IMSFR)
//!                                 ▼
//!                     decode(query, readout) ──▶ logits [K, 1, H, W]
//! ```
//!
//! Keys are either shared by all objects (STCN, GSFM, IMSFR: an image-only key encoder, one
//! affinity for every object) or one per object (MiVOS, QDMN: the mask-aware memory encoder gives
//! each object its own keys and hence its own affinity); [`KeyKind`] says which.

use std::fmt;

use burn::tensor::Tensor;
use memvos_backbone::Features;
use memvos_memory::{MemoryBank, MemoryError, Similarity};
use serde::{Deserialize, Serialize};

use crate::propagator::{Benchmark, PropagatorConfig};

/// What the query (key) encoder gives for one frame. Named as the reference code names it
/// (`k16`, `qv16`, `qf16`, `qf8`, `qf4`).
#[derive(Clone, Debug)]
pub struct Query {
    /// Query key `[1, C_k, h, w]`.
    pub k16: Tensor<4>,
    /// Query value, the half of the decoder input that comes from the frame itself
    /// (`[1, C_v, h, w]`; STCN's "f16_thin").
    pub v16: Tensor<4>,
    /// Trunk features: `f16` as the memory encoder should see it (after GSFM's low-frequency
    /// module, say), and the decoder's `f8`/`f4` skips.
    pub features: Features,
}

/// What the memory encoder gives for one frame and `K` objects.
#[derive(Clone, Debug)]
pub struct MemoryEncoding {
    /// Memory key: `[1, C_k, h, w]` shared by the objects ([`KeyKind::Shared`]) or
    /// `[K, C_k, h, w]` ([`KeyKind::PerObject`]).
    pub key: Tensor<4>,
    /// Memory values `[K, C_v, h, w]`.
    pub value: Tensor<4>,
    /// A second value per object for a network that reads some memory with other values
    /// (IMSFR's `v_pe` for the latest stored frame), `[K, C_v, h, w]`.
    pub aux: Option<Tensor<4>>,
    /// Per-object quality scores of the segmentation being memorised (QDMN's quality head).
    pub quality: Option<Vec<f32>>,
}

/// Whether memory keys are shared by the objects or one per object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Image-only keys (STCN, GSFM, IMSFR): one affinity for all objects.
    Shared,
    /// Mask-aware keys (MiVOS, QDMN): one affinity per object.
    PerObject,
}

/// A memory network the [`crate::Propagator`] can drive.
///
/// Tensors are on the network's device; frames are ImageNet-normalised and padded to a multiple
/// of 16 (`[1, 3, H, W]`), masks are aggregated probabilities `[K, 1, H, W]` at the same size.
/// A [`Query`] is all a network knows of a frame between its calls: what it reads in
/// [`Self::encode_memory`] and [`Self::decode`] comes from the query's tensors, so a wrapper that
/// edits them is heard on every path. Networks are `Send + Sync`, so a stream can own one behind
/// an `Arc` and move to another thread.
pub trait MemoryNetwork: Send + Sync {
    /// Which built-in method this is, or the one it derives from (a network from outside memvos
    /// returns the method whose defaults it starts from and says its own [`Self::name`]).
    fn method(&self) -> Method;

    /// The method's name in messages ("STCN").
    fn name(&self) -> &str {
        self.method().name()
    }

    /// The memory schedule and read this method runs with by default on `benchmark` (the
    /// published settings of [`Self::method`] unless the network says otherwise).
    fn default_config(&self, benchmark: Benchmark) -> PropagatorConfig {
        PropagatorConfig::for_method(self.method(), benchmark)
    }

    /// Shared or per-object keys.
    fn key_kind(&self) -> KeyKind;

    /// How memory keys and query keys are compared.
    fn similarity(&self) -> Similarity;

    /// Encodes the query frame. `previous` is the maximum over objects of the previous frame's
    /// probabilities `[1, 1, H, W]`, given when [`Self::uses_previous_mask`] says so (QDMN gates
    /// its query features with it).
    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query;

    /// Encodes frame `frame` with the probabilities `masks` of `K` objects into memory. `query`
    /// is the same frame's [`Query`]; `next` is the following frame, given when
    /// [`Self::uses_next_frame`] says so (IMSFR gates its values with it).
    ///
    /// Several frames at once (training batches): `frame`, `query` and `next` of `F` rows and
    /// `masks` of `F·K` rows, each frame's objects together; keys and values come back with a
    /// row per frame (shared keys) or per object, in the same order.
    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding;

    /// Reads one object group's memory: the stored frames at `positions` (the policy's choice)
    /// plus any temporary entry, `[K_group, C_v, h, w]`. Networks with several readouts
    /// (IMSFR) fuse them here.
    fn read_memory(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> Result<Tensor<4>, MemoryError> {
        bank.read(query.k16.clone(), Some(positions))
    }

    /// Decoder logits `[K, 1, H, W]` (before the sigmoid) from readouts `[K, C_v, h, w]`.
    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4>;

    /// Whether [`MemoryEncoding::quality`] is filled (a quality head).
    fn has_quality_head(&self) -> bool {
        false
    }

    /// Whether [`Self::encode_query`] wants the previous frame's mask.
    fn uses_previous_mask(&self) -> bool {
        false
    }

    /// Whether [`Self::encode_memory`] wants the next frame.
    fn uses_next_frame(&self) -> bool {
        false
    }
}

/// The five methods memvos implements. More may come, so matches need a wildcard arm; a method
/// from outside memvos is a [`crate::registry::MethodEntry`] and names itself through
/// [`MemoryNetwork::name`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// STM as improved in MiVOS (hkchengrex/Mask-Propagation).
    Mivos,
    /// STCN (hkchengrex/STCN).
    Stcn,
    /// QDMN (yongliu20/QDMN).
    Qdmn,
    /// GSFM (yongliu20/GSFM).
    Gsfm,
    /// IMSFR (xinbaiw/IMSFR).
    Imsfr,
}

impl Method {
    /// The five, in the order of the README's table.
    pub const ALL: [Method; 5] = [Method::Mivos, Method::Stcn, Method::Qdmn, Method::Gsfm, Method::Imsfr];

    /// The method's usual spelling ("MiVOS", "STCN", …).
    pub fn name(self) -> &'static str {
        match self {
            Method::Mivos => "MiVOS",
            Method::Stcn => "STCN",
            Method::Qdmn => "QDMN",
            Method::Gsfm => "GSFM",
            Method::Imsfr => "IMSFR",
        }
    }

    /// The lower-case name used on command lines and in configuration files.
    pub fn id(self) -> &'static str {
        match self {
            Method::Mivos => "mivos",
            Method::Stcn => "stcn",
            Method::Qdmn => "qdmn",
            Method::Gsfm => "gsfm",
            Method::Imsfr => "imsfr",
        }
    }

    /// The published checkpoint (file name, or where it is published), if there is one.
    pub fn published_checkpoint(self) -> Option<&'static str> {
        match self {
            Method::Mivos => Some("propagation_model.pth"),
            Method::Stcn => Some("stcn.pth"),
            Method::Qdmn => Some("QDMN s012 (Google Drive id 1fdiGFGol1ecVowPe6gfRHsRs9zCThFXB)"),
            Method::Gsfm | Method::Imsfr => None,
        }
    }

    /// Whether the method's memory keys are shared by the objects or one per object.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Method::Mivos | Method::Qdmn => KeyKind::PerObject,
            Method::Stcn | Method::Gsfm | Method::Imsfr => KeyKind::Shared,
        }
    }

    /// Whether MiVOS's kernelised memory applies (the dot-product methods).
    pub fn supports_kernel(self) -> bool {
        matches!(self, Method::Mivos | Method::Qdmn)
    }

    /// Recognises a checkpoint's method by its top-level key prefixes (methods.md §3.3).
    /// Works on PyTorch names and on memvos's module paths alike.
    pub fn detect<S: AsRef<str>>(keys: &[S]) -> Option<Method> {
        let has = |p: &str| keys.iter().any(|k| k.as_ref().starts_with(p));
        if has("conv_fusion1v.") || (has("key_comp.") && has("mask2.")) {
            Some(Method::Imsfr)
        } else if has("lfm.") || has("decoder.hfm.") {
            Some(Method::Gsfm)
        } else if has("aspp.") || has("score.") || has("concat_conv.") {
            Some(Method::Qdmn)
        } else if has("mask_rgb_encoder.") && has("kv_m_f16.") {
            Some(Method::Mivos)
        } else if has("key_encoder.") && has("value_encoder.") && has("key_proj.") {
            Some(Method::Stcn)
        } else {
            None
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let low = s.to_ascii_lowercase();
        Method::ALL.into_iter().find(|m| m.id() == low).ok_or_else(|| {
            let names: Vec<&str> = Method::ALL.iter().map(|m| m.id()).collect();
            format!("unknown method {s:?} (expected one of {})", names.join(", "))
        })
    }
}

/// The input of a value/memory encoder whose first conv takes `in_channels`: `[RGB, own mask,
/// others]` (5 channels), or `[RGB, own mask]` for a stage-0 (4-channel) encoder.
pub fn encoder_input(in_channels: usize, rgb: Tensor<4>, masks: Tensor<4>, others: Tensor<4>) -> Tensor<4> {
    if in_channels == 4 { Tensor::cat(vec![rgb, masks], 1) } else { Tensor::cat(vec![rgb, masks, others], 1) }
}

/// The value `others` of the value/memory encoders' input: for object `i`, the sum of the other
/// objects' probabilities of the same frame (zero for one object). `masks` `[F·K, 1, H, W]` holds
/// the `K` objects of each of `frames` frames, frame by frame (`frames = 1`: one frame's objects).
pub fn others_of(masks: &Tensor<4>, frames: usize) -> Tensor<4> {
    let [n, c, h, w] = masks.dims();
    let f = frames.max(1);
    let k = n / f;
    if k * f != n || f == 1 {
        return masks.clone().sum_dim(0).expand([n, c, h, w]) - masks.clone();
    }
    let grouped: Tensor<5> = masks.clone().reshape([f, k, c, h, w]);
    let total = grouped.sum_dim(1).expand([f, k, c, h, w]).reshape([n, c, h, w]);
    total - masks.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_method_by_its_keys() {
        let cases: [(&[&str], Option<Method>); 6] = [
            (&["key_encoder.conv1.weight", "value_encoder.conv1.weight", "key_proj.key_proj.weight"], Some(Method::Stcn)),
            (&["mask_rgb_encoder.conv1.weight", "kv_m_f16.key_proj.weight", "rgb_encoder.conv1.weight"], Some(Method::Mivos)),
            (&["mask_rgb_encoder.conv1.weight", "kv_m_f16.key_proj.weight", "aspp.conv1.weight"], Some(Method::Qdmn)),
            (&["key_encoder.conv1.weight", "value_encoder.conv1.weight", "key_proj.key_proj.weight", "lfm.conv1.weight"], Some(Method::Gsfm)),
            (&["key_encoder.conv1.weight", "value_encoder.mask.weight", "key_comp.weight", "conv_fusion1v.weight"], Some(Method::Imsfr)),
            (&["fc.weight"], None),
        ];
        for (keys, want) in cases {
            assert_eq!(Method::detect(keys), want, "{keys:?}");
        }
        for m in Method::ALL {
            assert_eq!(m.id().parse::<Method>(), Ok(m));
        }
        assert!("stm".parse::<Method>().unwrap_err().contains("stcn"));
    }
}
