//! QDMN — "Learning Quality-aware Dynamic Memory for Video Object Segmentation" (Liu et al.;
//! ECCV 2022), yongliu20/QDMN. Built on MiVOS, not STCN (methods.md §2.3): per-object memory
//! keys from a ResNet-50 memory encoder, dot-product affinity, the MiVOS decoder, plus
//!
//! 1. a gate on the query features from the previous frame's mask (`concat_conv`),
//! 2. ASPP between the memory readout and the decoder,
//! 3. a quality head (`score`) on the memory encoder's features, whose scores decide which
//!    frames the memory keeps ([`memvos_memory::Qdmn`]).
//!
//! Both ResNet-50s carry conv biases ("mod_resnet"). Reads like the figure: query encoder →
//! gate → key/value heads → per-object read → ASPP → decoder; memory encoder → key/value heads
//! and quality head.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};
use memvos_backbone::{Depth, ResNet, ResNetConfig};
use memvos_memory::Similarity;

use crate::blocks::{MivosDecoder, conv, expand_batch, resize_bilinear};
use crate::mivos::{KeyValue, MivosConfig, memory_features};
use crate::network::{KeyKind, MemoryEncoding, MemoryNetwork, Method, Query};

/// The quality head's fixed input size (its first linear layer sees `256 × 12 × 12`).
pub const SCORE_INPUT: usize = 24;

fn conv_nb(i: usize, o: usize, k: usize, dilation: usize, device: &Device) -> Conv2d {
    let p = dilation * (k / 2);
    Conv2dConfig::new([i, o], [k, k]).with_dilation([dilation, dilation]).with_padding(PaddingConfig2d::Explicit(p, p, p, p)).with_bias(false).init(device)
}

/// One ASPP branch: a bias-free (atrous) conv, BatchNorm, ReLU.
#[derive(Module, Debug)]
pub struct AsppBranch {
    /// The conv (1×1, or 3×3 with a dilation).
    pub atrous_conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

impl AsppBranch {
    fn new(i: usize, o: usize, k: usize, dilation: usize, device: &Device) -> Self {
        AsppBranch { atrous_conv: conv_nb(i, o, k, dilation, device), bn: BatchNormConfig::new(o).init(device) }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.atrous_conv.forward(x)))
    }
}

/// ASPP's image-pooling branch: global average → 1×1 conv → BN → ReLU (PyTorch
/// `global_avg_pool.1` / `.2`).
#[derive(Module, Debug)]
pub struct ImagePool {
    /// The 1×1 conv.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

/// DeepLab's atrous spatial pyramid pooling on `[K, 1024, h, w]`: 1×1 and 3×3 with dilations
/// 6, 12, 18, plus image pooling, each 256 channels, concatenated, 1×1 back to 1024, BN, ReLU
/// (the Dropout(0.1) after it is inactive at inference).
#[derive(Module, Debug)]
pub struct Aspp {
    /// 1×1 branch.
    pub aspp1: AsppBranch,
    /// 3×3 branch, dilation 6.
    pub aspp2: AsppBranch,
    /// 3×3 branch, dilation 12.
    pub aspp3: AsppBranch,
    /// 3×3 branch, dilation 18.
    pub aspp4: AsppBranch,
    /// Image-pooling branch.
    pub global_avg_pool: ImagePool,
    /// 1×1 conv of the concatenated branches.
    pub conv1: Conv2d,
    /// Its BatchNorm.
    pub bn1: BatchNorm,
}

impl Aspp {
    /// ASPP on `channels` with branches of `branch` channels.
    pub fn new(channels: usize, branch: usize, device: &Device) -> Self {
        Aspp {
            aspp1: AsppBranch::new(channels, branch, 1, 1, device),
            aspp2: AsppBranch::new(channels, branch, 3, 6, device),
            aspp3: AsppBranch::new(channels, branch, 3, 12, device),
            aspp4: AsppBranch::new(channels, branch, 3, 18, device),
            global_avg_pool: ImagePool { conv: conv_nb(channels, branch, 1, 1, device), bn: BatchNormConfig::new(branch).init(device) },
            conv1: conv_nb(5 * branch, channels, 1, 1, device),
            bn1: BatchNormConfig::new(channels).init(device),
        }
    }

    /// ASPP of `x` `[K, C, h, w]` (same shape out).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [k, _, h, w] = x.dims();
        let pooled = x.clone().mean_dim(3).mean_dim(2);
        let pooled = relu(self.global_avg_pool.bn.forward(self.global_avg_pool.conv.forward(pooled)));
        // Bilinear from 1×1 (align_corners = True) is a broadcast.
        let c = pooled.dims()[1];
        let pooled = pooled.expand([k, c, h, w]);
        let branches = vec![self.aspp1.forward(x.clone()), self.aspp2.forward(x.clone()), self.aspp3.forward(x.clone()), self.aspp4.forward(x), pooled];
        relu(self.bn1.forward(self.conv1.forward(Tensor::cat(branches, 1))))
    }
}

/// The quality assessment head (`score`): the memory encoder's f16 resized to 24×24, three
/// 3×3 convs and a strided one (ReLU after each), flattened channel-major, two linear layers
/// with ReLU (the published head's activations).
#[derive(Module, Debug)]
pub struct Score {
    /// First 3×3 conv.
    pub conv1: Conv2d,
    /// Second 3×3 conv.
    pub conv2: Conv2d,
    /// Third 3×3 conv.
    pub conv3: Conv2d,
    /// The strided 3×3 conv.
    pub conv4: Conv2d,
    /// First linear layer (256·12·12 = 36,864 → 1,024: a 144 MiB weight), except on wgpu.
    pub fc1: Option<Linear>,
    /// The same layer split along its input into blocks of at most [`FC1_BLOCK`] inputs (the
    /// first with the bias), on wgpu, which cannot hold a buffer over 128 MiB
    /// (`maxStorageBufferBindingSize`; lavapipe refuses to allocate it).
    pub fc1_blocks: Vec<Linear>,
    /// Second linear layer, to the score.
    pub fc2: Linear,
}

/// Inputs per block of the split first linear layer (32 MiB of weights).
pub const FC1_BLOCK: usize = 8192;

/// `layer` split along its input into blocks of at most [`FC1_BLOCK`] inputs, on `device`.
fn split_linear(layer: Linear, device: &Device) -> Vec<Linear> {
    let [inputs, outputs] = layer.weight.dims();
    let weight = layer.weight.val();
    (0..inputs)
        .step_by(FC1_BLOCK)
        .map(|start| {
            let n = FC1_BLOCK.min(inputs - start);
            let mut block = LinearConfig::new(n, outputs).with_bias(start == 0).init(device);
            // Detached: each block is a parameter of its own (a leaf when training).
            block.weight = burn::module::Param::from_tensor(weight.clone().narrow(0, start, n).to_device(device).detach());
            if let (Some(b), Some(bias)) = (block.bias.as_mut(), layer.bias.as_ref()) {
                *b = burn::module::Param::from_tensor(bias.val().to_device(device).detach());
            }
            block
        })
        .collect()
}

/// The blocks of [`split_linear`] joined back into one layer on the CPU (for saving), by their
/// values (a training run's blocks live on an autodiff device; the joined layer does not).
fn join_linear(blocks: &[Linear]) -> Linear {
    let cpu = Device::flex();
    let host = |t: Tensor<2>| Tensor::<2>::from_data(t.into_data(), &cpu);
    let weights: Vec<Tensor<2>> = blocks.iter().map(|b| host(b.weight.val())).collect();
    let [_, outputs] = weights[0].dims();
    let inputs = weights.iter().map(|w| w.dims()[0]).sum();
    let mut layer = LinearConfig::new(inputs, outputs).init(&cpu);
    layer.weight = burn::module::Param::from_tensor(Tensor::cat(weights, 0));
    layer.bias = blocks[0].bias.as_ref().map(|b| burn::module::Param::from_tensor(Tensor::<1>::from_data(b.val().into_data(), &cpu)));
    layer
}

impl Score {
    /// The head on `input` channels.
    pub fn new(input: usize, device: &Device) -> Self {
        let half = SCORE_INPUT / 2;
        let cpu = Device::flex();
        Score {
            conv1: conv(input, 256, 3, device),
            conv2: conv(256, 256, 3, device),
            conv3: conv(256, 256, 3, device),
            conv4: Conv2dConfig::new([256, 256], [3, 3]).with_stride([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device),
            fc1: Some(LinearConfig::new(256 * half * half, 1024).init(if crate::is_wgpu(device) { &cpu } else { device })),
            fc1_blocks: Vec::new(),
            fc2: LinearConfig::new(1024, 1).init(device),
        }
        .placed(device)
    }

    /// This head on `device`: the first linear layer split in blocks on wgpu (see
    /// [`Score::fc1_blocks`]), whole elsewhere.
    pub fn placed(mut self, device: &Device) -> Self {
        let whole = !crate::is_wgpu(device);
        match self.fc1.take() {
            Some(fc1) if whole => self.fc1 = Some(fc1),
            Some(fc1) => self.fc1_blocks = split_linear(fc1, device),
            None if whole => self.fc1 = Some(join_linear(&self.fc1_blocks).to_device(device)),
            None => {}
        }
        if whole {
            self.fc1_blocks.clear();
        }
        self
    }

    /// This head with its first linear layer in blocks on `device`, whatever the device: the
    /// layout memvos-train keeps on every device, so that a run's checkpoints and optimiser
    /// state (keyed by parameter) resume on any device, wgpu included.
    pub fn split(mut self, device: &Device) -> Self {
        if let Some(fc1) = self.fc1.take() {
            self.fc1_blocks = split_linear(fc1, device);
        }
        self
    }

    /// This head with its first linear layer whole (on the CPU), as checkpoints store it.
    pub fn joined(&self) -> Self {
        let mut s = self.clone();
        if s.fc1.is_none() {
            s.fc1 = Some(join_linear(&s.fc1_blocks));
            s.fc1_blocks.clear();
        }
        s
    }

    /// The first linear layer (before its ReLU), whole or in blocks.
    pub fn fc1_forward(&self, x: Tensor<2>) -> Tensor<2> {
        match &self.fc1 {
            Some(fc1) => fc1.forward(x),
            None => {
                let mut start = 0;
                let mut y: Option<Tensor<2>> = None;
                for block in &self.fc1_blocks {
                    let n = block.weight.dims()[0];
                    let part = block.forward(x.clone().narrow(1, start, n));
                    y = Some(match y { Some(y) => y + part, None => part });
                    start += n;
                }
                y.expect("a split layer has at least one block")
            }
        }
    }

    /// `conv4`'s output before its ReLU, `[K, 256, 12, 12]`, from f16 `[K, C, h, w]`.
    pub fn conv4_logits(&self, f16: Tensor<4>) -> Tensor<4> {
        let x = resize_bilinear(f16, SCORE_INPUT, SCORE_INPUT);
        let x = relu(self.conv1.forward(x));
        let x = relu(self.conv2.forward(x));
        let x = relu(self.conv3.forward(x));
        self.conv4.forward(x)
    }

    /// Quality scores `[K, 1]` (≥ 0) from f16 `[K, C, h, w]`.
    pub fn forward(&self, f16: Tensor<4>) -> Tensor<2> {
        let x = relu(self.conv4_logits(f16));
        let [k, c, h, w] = x.dims();
        let x: Tensor<2> = x.reshape([k, c * h * w]);
        relu(self.fc2.forward(relu(self.fc1_forward(x))))
    }
}

/// The QDMN evaluation network; field names are the `state_dict` prefixes of the published
/// checkpoint.
#[derive(Module, Debug)]
pub struct Qdmn {
    /// The memory encoder: ResNet-50 on `[RGB, own mask, others]`.
    pub mask_rgb_encoder: ResNet,
    /// The query encoder: ResNet-50 (conv biases) on the frame.
    pub rgb_encoder: ResNet,
    /// Memory key and value projections.
    pub kv_m_f16: KeyValue,
    /// Query key and value projections.
    pub kv_q_f16: KeyValue,
    /// MiVOS's decoder.
    pub decoder: MivosDecoder,
    /// ASPP on the decoder's input (the readout and the query's `v16`).
    pub aspp: Aspp,
    /// The quality assessment head.
    pub score: Score,
    /// The previous-mask gate on the query features.
    pub concat_conv: Conv2d,
}

/// QDMN's shape: MiVOS's, with conv biases in the query encoder too.
pub fn published_config() -> MivosConfig {
    MivosConfig { query_encoder: ResNetConfig::new(Depth::R50, 3, true), ..MivosConfig::published() }
}

impl Qdmn {
    /// The published network with burn's default initialisation (load weights into it).
    pub fn new(device: &Device) -> Self {
        Self::with_config(&published_config(), device)
    }

    /// A network of this shape with burn's default initialisation.
    pub fn with_config(cfg: &MivosConfig, device: &Device) -> Self {
        let [_, _, m16] = cfg.memory_encoder.channels();
        let [_, _, q16] = cfg.query_encoder.channels();
        let decoder_in = 2 * cfg.value_dim;
        Qdmn {
            mask_rgb_encoder: cfg.memory_encoder.init(device),
            rgb_encoder: cfg.query_encoder.init(device),
            kv_m_f16: KeyValue::new(m16, cfg.key_dim, cfg.value_dim, device),
            kv_q_f16: KeyValue::new(q16, cfg.key_dim, cfg.value_dim, device),
            decoder: MivosDecoder::new(cfg.decoder_widths(decoder_in), device),
            aspp: Aspp::new(decoder_in, decoder_in / 4, device),
            score: Score::new(m16, device),
            concat_conv: conv(q16 + 1, 1, 3, device),
        }
    }

    /// This network with its quality head's first layer whole (on the CPU): the published
    /// layout, as checkpoints and exported weights hold it.
    pub fn joined(&self) -> Self {
        let mut q = self.clone();
        q.score = q.score.joined();
        q
    }

    /// The query gate: `previous` `[1, 1, H, W]` resized bilinearly to f16's grid, concatenated
    /// with f16, `concat_conv` → gate logits `[1, 1, h, w]`; returns `(logits, f16 · σ(logits))`.
    pub fn gate(&self, f16: Tensor<4>, previous: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [_, _, h, w] = f16.dims();
        let m = resize_bilinear(previous, h, w);
        let logits = self.concat_conv.forward(Tensor::cat(vec![f16.clone(), m], 1));
        let gated = f16 * sigmoid(logits.clone());
        (logits, gated)
    }
}

impl MemoryNetwork for Qdmn {
    fn method(&self) -> Method {
        Method::Qdmn
    }

    fn key_kind(&self) -> KeyKind {
        KeyKind::PerObject
    }

    fn similarity(&self) -> Similarity {
        Similarity::Dot
    }

    fn uses_previous_mask(&self) -> bool {
        true
    }

    fn has_quality_head(&self) -> bool {
        true
    }

    /// Without a previous mask (the first frame of a video) the features are not gated.
    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query {
        let features = self.rgb_encoder.forward(frame);
        let f16 = match previous {
            Some(p) => self.gate(features.f16.clone(), p).1,
            None => features.f16.clone(),
        };
        let (k16, v16) = self.kv_q_f16.forward(f16);
        Query { k16, v16, features }
    }

    fn encode_memory(&self, frame: Tensor<4>, _query: &Query, masks: Tensor<4>, _next: Option<Tensor<4>>) -> MemoryEncoding {
        let f16 = memory_features(&self.mask_rgb_encoder, frame, masks);
        let scores = memvos_memory::transfers::download(self.score.forward(f16.clone())).try_to_vec::<f32>().ok();
        let (key, value) = self.kv_m_f16.forward(f16);
        MemoryEncoding { key, value, aux: None, quality: scores }
    }

    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        let k = readout.dims()[0];
        let x = self.aspp.forward(Tensor::cat(vec![readout, expand_batch(&query.v16, k)], 1));
        self.decoder.forward(x, expand_batch(&query.features.f8, k), expand_batch(&query.features.f4, k))
    }
}

/// PyTorch `state_dict` name → module path for QDMN: MiVOS's table plus ASPP's image-pooling
/// sequential (`global_avg_pool.1` conv, `.2` BatchNorm).
pub fn key_renames() -> Vec<(&'static str, &'static str)> {
    let mut v = crate::mivos::key_renames();
    v.extend([(r"^aspp\.global_avg_pool\.1\.", "aspp.global_avg_pool.conv."), (r"^aspp\.global_avg_pool\.2\.", "aspp.global_avg_pool.bn.")]);
    v
}

/// Module path → PyTorch name (the inverse of [`key_renames`]).
pub fn key_renames_inverse() -> Vec<(&'static str, &'static str)> {
    let mut v = crate::mivos::key_renames_inverse();
    v.extend([(r"^aspp\.global_avg_pool\.conv\.", "aspp.global_avg_pool.1."), (r"^aspp\.global_avg_pool\.bn\.", "aspp.global_avg_pool.2.")]);
    v
}
