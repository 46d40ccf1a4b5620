//! The training forward pass shared by every method (methods.md §2.6): memorise frame 0 with its
//! ground truth, segment frame 1, memorise frame 1 from its prediction, segment frame 2; loss on
//! frames 1 and 2. It runs on the eval networks' own modules through [`MemoryNetwork`], so one
//! checkpoint serves training and evaluation; [`Trainable`] adds each method's extra outputs
//! (GSFM's boundary map, QDMN's quality scores).
//!
//! Query frames are encoded in one batch; each sample's memory is encoded and read on its own
//! (its objects batched), and the decoder runs on every sample's objects at once. Memory reads
//! use the full softmax, as training does in every reference.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor, TensorData};
use memvos_memory::{MemoryBank, MemoryError, ReadConfig, Selection};
use memvos_model::{Gsfm, Imsfr, KeyKind, MemoryEncoding, MemoryNetwork, Mivos, Qdmn, Query, Stcn};

use crate::data::Batch;
use crate::loss::{aggregate_logits, boundary_loss, boundary_target, bootstrapped_ce, iou_target};

/// A network the trainer can train.
pub trait Trainable: MemoryNetwork + Module + Clone + Send + 'static {
    /// The first conv of the memory (value) encoder, whose input channels grow from 4 (stage 0)
    /// to 5 between stages.
    fn first_conv(&mut self) -> &mut Conv2d;

    /// Decoder logits `[N, 1, H, W]` and, where the method has one, its boundary logits.
    fn decode_train(&self, query: &Query, readout: Tensor<4>) -> (Tensor<4>, Option<Tensor<4>>) {
        (self.decode(query, readout), None)
    }

    /// Quality scores `[F·K, 1]` of frames `[F, 3, H, W]` memorised with `masks` `[F·K, 1, H, W]`
    /// (QDMN).
    fn quality(&self, _frame: Tensor<4>, _masks: Tensor<4>) -> Option<Tensor<2>> {
        None
    }

    /// This network as the trainer keeps it on every device: the same parameters (and so the
    /// same checkpoints and optimiser state) wherever a run trains or resumes. QDMN's quality
    /// head holds its first linear layer in blocks ([`memvos_model::qdmn::Score::split`]), as
    /// wgpu needs; the others are unchanged.
    fn training_layout(self) -> Self {
        self
    }

    /// This network as exported weights hold it: the published layout (QDMN's layer whole).
    fn published_layout(&self) -> Self {
        self.clone()
    }
}

impl Trainable for Stcn {
    fn first_conv(&mut self) -> &mut Conv2d {
        &mut self.value_encoder.trunk.conv1
    }
}

impl Trainable for Mivos {
    fn first_conv(&mut self) -> &mut Conv2d {
        &mut self.mask_rgb_encoder.conv1
    }
}

impl Trainable for Imsfr {
    fn first_conv(&mut self) -> &mut Conv2d {
        &mut self.value_encoder.trunk.conv1
    }
}

impl Trainable for Gsfm {
    fn first_conv(&mut self) -> &mut Conv2d {
        &mut self.value_encoder.trunk.conv1
    }

    fn decode_train(&self, query: &Query, readout: Tensor<4>) -> (Tensor<4>, Option<Tensor<4>>) {
        let d = self.decode_all(query, readout);
        (d.mask, Some(d.boundary))
    }
}

impl Trainable for Qdmn {
    fn first_conv(&mut self) -> &mut Conv2d {
        &mut self.mask_rgb_encoder.conv1
    }

    fn quality(&self, frame: Tensor<4>, masks: Tensor<4>) -> Option<Tensor<2>> {
        Some(self.score.forward(memvos_model::mivos::memory_features(&self.mask_rgb_encoder, frame, masks)))
    }

    fn training_layout(mut self) -> Self {
        let device = self.score.fc2.weight.val().device();
        self.score = self.score.split(&device);
        self
    }

    fn published_layout(&self) -> Self {
        self.joined()
    }
}

/// What one training step computed.
pub struct StepOutput {
    /// The total loss (what is differentiated).
    pub loss: Tensor<1>,
    /// Its parts: segmentation (frames 1 + 2), boundary (GSFM), quality (QDMN).
    pub segmentation: Tensor<1>,
    /// GSFM's boundary loss, when it applies.
    pub boundary: Option<Tensor<1>>,
    /// QDMN's quality loss, when it applies.
    pub quality: Option<Tensor<1>>,
    /// Aggregated probabilities of frames 1 and 2, `[B, K + 1, S, S]`.
    pub probs: [Tensor<4>; 2],
}

/// The batch's tensors on a device.
pub struct BatchTensors {
    /// Frames `t = 0, 1, 2`, each `[B, 3, S, S]`.
    pub frames: [Tensor<4>; 3],
    /// Object masks per frame, `[B, K, S, S]` (target, then second).
    pub masks: [Tensor<4>; 3],
    /// Classes per frame, `[B, S, S]` (0 background, 1 target, 2 second).
    pub classes: [Tensor<3, Int>; 3],
    /// `[B, K, 1, 1]`: 1 for present objects.
    pub selector: Tensor<4>,
}

impl BatchTensors {
    /// The batch as tensors on `device` (`objects` per sample).
    pub fn new(batch: &Batch, objects: usize, device: &Device) -> Self {
        let (b, s) = (batch.size, batch.side);
        let frames5 = Tensor::<5>::from_data(TensorData::new(batch.frames.clone(), [b, 3, 3, s, s]), device);
        let target = Tensor::<4>::from_data(TensorData::new(batch.target.clone(), [b, 3, s, s]), device);
        let second = Tensor::<4>::from_data(TensorData::new(batch.second.clone(), [b, 3, s, s]), device);
        let sel = Tensor::<4>::from_data(TensorData::new(batch.selector.clone(), [b, 1, 1, 1]), device);
        let selector = if objects == 2 { Tensor::cat(vec![sel.ones_like(), sel], 1) } else { sel.ones_like() };
        let frame = |t: usize| frames5.clone().narrow(1, t, 1).reshape([b, 3, s, s]);
        let mask = |t: usize| {
            let tm = target.clone().narrow(1, t, 1);
            if objects == 2 { Tensor::cat(vec![tm, second.clone().narrow(1, t, 1)], 1) } else { tm }
        };
        let class = |t: usize| {
            let m = s * s;
            let v: Vec<i64> = (0..b * m)
                .map(|i| {
                    let (n, p) = (i / m, i % m);
                    let idx = n * 3 * m + t * m + p;
                    if batch.target[idx] > 0.5 {
                        1
                    } else if objects == 2 && batch.selector[n] > 0.5 && batch.second[idx] > 0.5 {
                        2
                    } else {
                        0
                    }
                })
                .collect();
            Tensor::<3, Int>::from_data(TensorData::new(v, [b, s, s]), device)
        };
        BatchTensors { frames: [frame(0), frame(1), frame(2)], masks: [mask(0), mask(1), mask(2)], classes: [class(0), class(1), class(2)], selector }
    }
}

/// Row `i` of a batched query.
fn row(q: &Query, i: usize) -> Query {
    rows(q, i, 1)
}

/// Rows `[start, start + len)` of a batched query.
fn rows(q: &Query, start: usize, len: usize) -> Query {
    let n = |t: &Tensor<4>| t.clone().narrow(0, start, len);
    Query { k16: n(&q.k16), v16: n(&q.v16), features: memvos_backbone::Features { f4: n(&q.features.f4), f8: n(&q.features.f8), f16: n(&q.features.f16) } }
}

/// Settings of a step.
#[derive(Clone, Copy, Debug)]
pub struct StepConfig {
    /// Objects per sample (1 or 2).
    pub objects: usize,
    /// The bootstrapped CE's kept fraction at this iteration.
    pub bootstrap_p: f64,
    /// GSFM's boundary loss weight.
    pub boundary_weight: f64,
    /// QDMN's quality loss weight.
    pub quality_weight: f64,
}

/// The 3-frame training step of one batch.
pub fn forward<M: Trainable>(net: &M, t: &BatchTensors, cfg: StepConfig) -> Result<StepOutput, MemoryError> {
    let [b, _, s, _] = t.frames[0].dims();
    let k = cfg.objects;
    let read = ReadConfig { similarity: net.similarity(), selection: Selection::Full, chunk: None };
    let mut banks: Vec<MemoryBank> = (0..b).map(|_| MemoryBank::new(read)).collect();
    let max_object = |m: Tensor<4>| m.max_dim(1);

    // Query encodings: one batch of all three frames, or frame by frame for a network that gates
    // its query with the previous mask (QDMN).
    let (q0, q1, q2_early) = if net.uses_previous_mask() {
        let q1 = net.encode_query(t.frames[1].clone(), Some(max_object(t.masks[0].clone())));
        // Per-object keys come from the memory encoder: frame 0's query is not needed.
        let q0 = if net.key_kind() == KeyKind::Shared { net.encode_query(t.frames[0].clone(), None) } else { q1.clone() };
        (q0, q1, None)
    } else {
        let q = net.encode_query(Tensor::cat(vec![t.frames[0].clone(), t.frames[1].clone(), t.frames[2].clone()], 0), None);
        (rows(&q, 0, b), rows(&q, b, b), Some(rows(&q, 2 * b, b)))
    };

    let flat = |m: &Tensor<4>| m.clone().reshape([b * k, 1, s, s]);
    let per_object = net.key_kind() == KeyKind::PerObject;
    // Memory of every sample's frame at once; then each sample's own bank and read.
    let remember = |banks: &mut Vec<MemoryBank>, frame: usize, m: MemoryEncoding, query: &Query, read: &[usize]| -> Result<Vec<Tensor<4>>, MemoryError> {
        let mut readouts = Vec::with_capacity(b);
        for (i, bank) in banks.iter_mut().enumerate() {
            let key = if per_object { m.key.clone().narrow(0, i * k, k) } else { m.key.clone().narrow(0, i, 1) };
            let value = m.value.clone().narrow(0, i * k, k);
            let aux = m.aux.as_ref().map(|a| a.clone().narrow(0, i * k, k));
            bank.push_with_aux(frame, None, key, value, aux)?;
            readouts.push(net.read_memory(&row(query, i), bank, read)?);
        }
        Ok(readouts)
    };

    // Frame 0 with its ground truth; segment frame 1.
    let m0 = net.encode_memory(t.frames[0].clone(), &q0, flat(&t.masks[0]), Some(t.frames[1].clone()));
    let readouts = remember(&mut banks, 0, m0, &q1, &[0])?;
    let (logits1, boundary1) = net.decode_train(&q1, Tensor::cat(readouts, 0));
    let prob1 = sigmoid(logits1).reshape([b, k, s, s]) * t.selector.clone();
    let (agg_logits1, agg1) = aggregate_logits(prob1);
    let mut seg = bootstrapped_ce(agg_logits1, t.classes[1].clone(), cfg.bootstrap_p);

    // Frame 1 from its prediction; segment frame 2.
    let predicted1 = agg1.clone().narrow(1, 1, k);
    let q2 = match q2_early {
        Some(q) => q,
        None => net.encode_query(t.frames[2].clone(), Some(max_object(predicted1.clone().detach()))),
    };
    let m1 = net.encode_memory(t.frames[1].clone(), &q1, flat(&predicted1), Some(t.frames[2].clone()));
    let readouts = remember(&mut banks, 1, m1, &q2, &[0, 1])?;
    let (logits2, boundary2) = net.decode_train(&q2, Tensor::cat(readouts, 0));
    let prob2 = sigmoid(logits2).reshape([b, k, s, s]) * t.selector.clone();
    let (agg_logits2, agg2) = aggregate_logits(prob2);
    seg = seg + bootstrapped_ce(agg_logits2, t.classes[2].clone(), cfg.bootstrap_p);
    let mut loss = seg.clone();

    // GSFM: boundary loss per object (absent objects excluded), mean over samples.
    let boundary = match (boundary1, boundary2) {
        (Some(b1), Some(b2)) => {
            let sel: Tensor<1> = t.selector.clone().reshape([b * k]);
            let per = |logits: Tensor<4>, gt: &Tensor<4>| {
                let target = boundary_target(gt.clone().reshape([b * k, 1, s, s]));
                boundary_loss(logits, target) * sel.clone()
            };
            // Two objects: half the sum of both, per sample.
            let scale = if k == 2 { 0.5 } else { 1.0 };
            let l = (per(b1, &t.masks[1]) + per(b2, &t.masks[2])).sum().mul_scalar(scale / b as f64);
            loss = loss + l.clone().mul_scalar(cfg.boundary_weight);
            Some(l)
        }
        _ => None,
    };

    // QDMN: the quality head's score of each memorised frame against its IoU with the truth
    // (mean over present objects).
    let mut quality: Option<Tensor<1>> = None;
    let sel: Tensor<1> = t.selector.clone().reshape([b * k]);
    for (frame_t, pred, gt) in [(1, predicted1, &t.masks[1]), (2, agg2.clone().narrow(1, 1, k), &t.masks[2])] {
        let Some(scores) = net.quality(t.frames[frame_t].clone(), flat(&pred)) else { break };
        let target = iou_target(pred.reshape([b * k, s * s]), gt.clone().reshape([b * k, s * s]));
        let diff: Tensor<1> = scores.reshape([b * k]) - target;
        let mse = (diff.powi_scalar(2) * sel.clone()).sum() / sel.clone().sum().clamp_min(1.0);
        quality = Some(match quality {
            Some(q) => q + mse,
            None => mse,
        });
    }
    if let Some(q) = &quality {
        loss = loss + q.clone().mul_scalar(cfg.quality_weight);
    }
    Ok(StepOutput { loss, segmentation: seg, boundary, quality, probs: [agg1, agg2] })
}

/// Mean IoU of the target's predicted mask (aggregated probability > 0.5) with its ground truth
/// over frames 1 and 2 of every sample whose target is not empty in both (a metric, not a loss).
pub fn target_iou(out: &StepOutput, t: &BatchTensors) -> f64 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for (probs, gt) in out.probs.iter().zip([&t.masks[1], &t.masks[2]]) {
        let [b, _, s, _] = probs.dims();
        let p = probs.clone().detach().narrow(1, 1, 1).reshape([b, s * s]);
        let g = gt.clone().narrow(1, 0, 1).reshape([b, s * s]);
        let union: Vec<f32> = (p.clone().greater_elem(0.5).float() + g.clone().greater_elem(0.5).float()).clamp_max(1.0).sum_dim(1).into_data().try_to_vec::<f32>().unwrap_or_default();
        let iou: Vec<f32> = iou_target(p, g).into_data().try_to_vec::<f32>().unwrap_or_default();
        for (u, i) in union.iter().zip(iou) {
            if *u > 0.0 {
                sum += i as f64;
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}
