//! Where the affinity puts a point of one frame in another (the Mask-Propagation seed's
//! `try_correspondence` view): both frames are encoded as queries, the key at the point (on the
//! 1/16 grid) is compared with every key of the other frame by the network's similarity, and a
//! softmax over those positions gives a heat map, bilinearly resized to the other frame's size.

use burn::tensor::{Device, Tensor, TensorData};
use memvos_data::frame::{Frame, Pad, pad_chw, resize_bilinear};
use memvos_memory::Similarity;
use ndarray::{Array2, Array3};

use crate::network::MemoryNetwork;

/// What can go wrong finding a correspondence.
#[derive(Debug, thiserror::Error)]
pub enum CorrespondError {
    /// The point lies outside the frame.
    #[error("point ({x}, {y}) is outside the {w}x{h} (WxH) frame")]
    Outside {
        /// Column.
        x: usize,
        /// Row.
        y: usize,
        /// The frame's width.
        w: usize,
        /// The frame's height.
        h: usize,
    },
    /// A frame without pixels.
    #[error("empty frame")]
    Empty,
    /// Tensor data could not be read back.
    #[error("tensor data: {0}")]
    Data(String),
}

fn query_key(net: &dyn MemoryNetwork, frame: &Frame, device: &Device) -> Result<(Vec<f32>, [usize; 4]), CorrespondError> {
    let (h, w) = (frame.height(), frame.width());
    let pad = Pad::to_multiple(h, w, 16).map_err(|e| CorrespondError::Data(e.to_string()))?;
    let x = pad_chw(frame.to_normalized().view(), pad);
    let (c, hp, wp) = x.dim();
    let t = Tensor::<4>::from_data(TensorData::new(x.into_raw_vec_and_offset().0, [1, c, hp, wp]), device);
    let k = net.encode_query(t, None).k16;
    let dims = k.dims();
    let v = k.into_data().try_to_vec::<f32>().map_err(|e| CorrespondError::Data(format!("{e:?}")))?;
    Ok((v, dims))
}

/// The heat map `[H, W]` (values in `[0, 1]`, the largest 1) of frame `to` for point `(x, y)` of
/// frame `from`: the softmax over `to`'s positions of the network's affinity to the key at the
/// point.
pub fn correspondence(net: &dyn MemoryNetwork, from: &Frame, to: &Frame, (x, y): (usize, usize), device: &Device) -> Result<Array2<f32>, CorrespondError> {
    let (h, w) = (from.height(), from.width());
    if h == 0 || w == 0 || to.height() == 0 || to.width() == 0 {
        return Err(CorrespondError::Empty);
    }
    if x >= w || y >= h {
        return Err(CorrespondError::Outside { x, y, w, h });
    }
    let (ka, [_, c, ha, wa]) = query_key(net, from, device)?;
    let (kb, [_, _, hb, wb]) = query_key(net, to, device)?;
    // The point's cell on the 1/16 grid of the padded frame.
    let pad = Pad::to_multiple(h, w, 16).map_err(|e| CorrespondError::Data(e.to_string()))?;
    let (gy, gx) = (((y + pad.top) / 16).min(ha - 1), ((x + pad.left) / 16).min(wa - 1));
    let q: Vec<f32> = (0..c).map(|ch| ka[ch * ha * wa + gy * wa + gx]).collect();
    let n = hb * wb;
    let scale = 1.0 / (c as f32).sqrt();
    let mut logits: Vec<f32> = (0..n)
        .map(|p| {
            let dot: f32 = (0..c).map(|ch| q[ch] * kb[ch * n + p]).sum();
            match net.similarity() {
                Similarity::Dot => dot * scale,
                // STCN's negative squared distance without the query's own norm (constant here).
                Similarity::L2 => (2.0 * dot - (0..c).map(|ch| kb[ch * n + p] * kb[ch * n + p]).sum::<f32>()) * scale,
            }
        })
        .collect();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for l in logits.iter_mut() {
        *l = (*l - max).exp();
        sum += *l;
    }
    let peak = logits.iter().copied().fold(0f32, f32::max) / sum.max(f32::MIN_POSITIVE);
    let grid = Array3::from_shape_fn((1, hb, wb), |(_, i, j)| logits[i * wb + j] / sum.max(f32::MIN_POSITIVE) / peak.max(f32::MIN_POSITIVE));
    let padded = resize_bilinear(grid.view(), hb * 16, wb * 16);
    let pb = Pad::to_multiple(to.height(), to.width(), 16).map_err(|e| CorrespondError::Data(e.to_string()))?;
    Ok(Array2::from_shape_fn((to.height(), to.width()), |(i, j)| padded[[0, i + pb.top, j + pb.left]].clamp(0.0, 1.0)))
}

/// `frame` with `heat` drawn over it (a red-to-yellow ramp, transparent where cold) and a cross
/// at `point`, for showing a correspondence.
pub fn heat_overlay(frame: &Frame, heat: &Array2<f32>, point: Option<(usize, usize)>) -> Frame {
    let mut out = frame.clone();
    let (h, w) = (frame.height(), frame.width());
    for y in 0..h.min(heat.nrows()) {
        for x in 0..w.min(heat.ncols()) {
            let v = heat[[y, x]].clamp(0.0, 1.0);
            let a = (v * 1.5).min(0.85);
            let colour = [255.0, 255.0 * v, 0.0];
            for ch in 0..3 {
                let p = &mut out.rgb[[y, x, ch]];
                *p = ((1.0 - a) * *p as f32 + a * colour[ch]).round() as u8;
            }
        }
    }
    if let Some((px, py)) = point {
        for d in -6i64..=6 {
            for (x, y) in [(px as i64 + d, py as i64), (px as i64, py as i64 + d)] {
                if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
                    for ch in 0..3 {
                        out.rgb[[y as usize, x as usize, ch]] = [0, 255, 255][ch];
                    }
                }
            }
        }
    }
    out
}
